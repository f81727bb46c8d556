// The TCP and TLS operations under ConnStream (see conn_stream.h), instantiated here once.
#include "conn_stream.h"

#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace playbook::server {

namespace beast = boost::beast;
namespace net = boost::asio;

ConnStream::ConnStream(Tcp tcp) : tcp_(std::make_unique<Tcp>(std::move(tcp))) {}
ConnStream::ConnStream(Tls tls) : tls_(std::make_unique<Tls>(std::move(tls))) {}
ConnStream::ConnStream(ConnStream&&) noexcept = default;
ConnStream::~ConnStream() = default;

ConnStream::Tcp& ConnStream::next_layer() noexcept { return tls_ ? tls_->next_layer() : *tcp_; }

void ConnStream::ReadSome(std::vector<net::mutable_buffer> buffers, IoHandler handler) {
  if (tls_) {
    tls_->async_read_some(buffers, std::move(handler));
  } else {
    tcp_->async_read_some(buffers, std::move(handler));
  }
}

void ConnStream::WriteSome(std::vector<net::const_buffer> buffers, IoHandler handler) {
  if (tls_) {
    tls_->async_write_some(buffers, std::move(handler));
  } else {
    tcp_->async_write_some(buffers, std::move(handler));
  }
}

void ConnStream::Teardown(beast::role_type role, DoneHandler handler) {
  using beast::websocket::async_teardown;
  if (tls_) {
    async_teardown(role, *tls_, std::move(handler));
  } else {
    async_teardown(role, *tcp_, std::move(handler));
  }
}

void ConnStream::Teardown(beast::role_type role, beast::error_code& ec) {
  using beast::websocket::teardown;
  if (tls_) {
    teardown(role, *tls_, ec);
  } else {
    teardown(role, *tcp_, ec);
  }
}

}  // namespace playbook::server

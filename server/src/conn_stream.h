// A server connection's byte stream as one type, TCP or TLS over TCP (after the handshake): the
// HTTP and WebSocket operations above it (http::async_read/async_write, websocket::stream's
// accept, read, write, close and pings) are instantiated once instead of once per stream type,
// and the TCP and TLS operations below it once, in conn_stream.cpp: the completion handler is
// type-erased (one allocation per read or write) and the buffers copied into one type. The reason
// is compile time: the TLS copy of the WebSocket operations was more than half of
// ws_session.cpp's (docs/benchmarks.md, 2026-12-07 session 2). Private to server/.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace playbook::server {

// A completion handler taking Args... behind one type: called once, on its own
// associated executor (the connection's strand here) as the handler it holds would be.
template <class... Args>
class ErasedHandler {
 public:
  using executor_type = boost::asio::any_io_executor;

  template <class Handler, class Executor>
  ErasedHandler(Handler&& h, const Executor& io_executor)
      : executor_(boost::asio::get_associated_executor(h, io_executor)),
        impl_(std::make_unique<Impl<std::decay_t<Handler>>>(std::forward<Handler>(h))) {}

  executor_type get_executor() const noexcept { return executor_; }

  void operator()(Args... args) {
    std::unique_ptr<Base> impl = std::move(impl_);
    impl->Invoke(impl, std::move(args)...);
  }

 private:
  struct Base {
    virtual ~Base() = default;
    // Frees the holder before the upcall (the handler may start the next operation).
    virtual void Invoke(std::unique_ptr<Base>& self, Args... args) = 0;
  };
  template <class Handler>
  struct Impl final : Base {
    explicit Impl(Handler h) : handler(std::move(h)) {}
    void Invoke(std::unique_ptr<Base>& self, Args... args) override {
      Handler h = std::move(handler);
      self.reset();
      std::move(h)(std::move(args)...);
    }
    Handler handler;
  };
  executor_type executor_;
  std::unique_ptr<Base> impl_;
};

using IoHandler = ErasedHandler<boost::beast::error_code, std::size_t>;
using DoneHandler = ErasedHandler<boost::beast::error_code>;

class ConnStream {
 public:
  using Tcp = boost::beast::tcp_stream;
  using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  using executor_type = Tcp::executor_type;

  explicit ConnStream(Tcp tcp);
  explicit ConnStream(Tls tls);  // handshake done, or to be done through tls()
  ConnStream(ConnStream&&) noexcept;
  ~ConnStream();

  executor_type get_executor() noexcept { return next_layer().get_executor(); }
  // The TCP stream under TLS or the stream itself: beast::get_lowest_layer's, for timeouts and close.
  Tcp& next_layer() noexcept;
  // The TLS stream, or null for plain TCP: its handshake and shutdown.
  Tls* tls() noexcept { return tls_.get(); }

  template <class MutableBuffers, class Handler>
  auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    return boost::asio::async_initiate<Handler, void(boost::beast::error_code, std::size_t)>(
        [this](auto h, const MutableBuffers& b) {
          std::vector<boost::asio::mutable_buffer> copy(boost::asio::buffer_sequence_begin(b),
                                                        boost::asio::buffer_sequence_end(b));
          ReadSome(std::move(copy), IoHandler(std::move(h), get_executor()));
        },
        handler, buffers);
  }

  template <class ConstBuffers, class Handler>
  auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    return boost::asio::async_initiate<Handler, void(boost::beast::error_code, std::size_t)>(
        [this](auto h, const ConstBuffers& b) {
          std::vector<boost::asio::const_buffer> copy(boost::asio::buffer_sequence_begin(b),
                                                      boost::asio::buffer_sequence_end(b));
          WriteSome(std::move(copy), IoHandler(std::move(h), get_executor()));
        },
        handler, buffers);
  }

  // The type-erased halves (conn_stream.cpp).
  void ReadSome(std::vector<boost::asio::mutable_buffer> buffers, IoHandler handler);
  void WriteSome(std::vector<boost::asio::const_buffer> buffers, IoHandler handler);
  void Teardown(boost::beast::role_type role, DoneHandler handler);
  void Teardown(boost::beast::role_type role, boost::beast::error_code& ec);

 private:
  std::unique_ptr<Tcp> tcp_;  // exactly one of the two
  std::unique_ptr<Tls> tls_;
};

// The WebSocket close's end of the connection (found by argument-dependent lookup): TLS
// close_notify then TCP, as Beast's own overloads for the two stream types do.
inline void teardown(boost::beast::role_type role, ConnStream& stream, boost::beast::error_code& ec) {
  stream.Teardown(role, ec);
}
template <class Handler>
void async_teardown(boost::beast::role_type role, ConnStream& stream, Handler&& handler) {
  stream.Teardown(role, DoneHandler(std::forward<Handler>(handler), stream.get_executor()));
}

}  // namespace playbook::server

// The synchronous client over Beast's asynchronous operations: every client owns
// a private io_context, and each call runs it until its own operation completes
// or its deadline passes. Beast stays inside this file (the header is a pimpl) so
// that the tools and tests including ws_client.h compile quickly.
//
// Timeouts. Beast marks a WebSocket stream failed after any error, including
// operation_aborted from a cancelled read, so a cancelled read would leave the
// connection unusable. Read therefore never cancels: on timeout it leaves its
// async_read outstanding and the next Read (or any later run of the io_context,
// e.g. during Send) completes it; the frame is kept until Read collects it.
// Connect, Send and Close do cancel on timeout (by closing the socket): a
// half-written frame cannot be resumed, so the connection is closed then.
//
// Server closes during a Send. When a message is too big, the server sends
// close 1009 and may drop the connection while our write is still going (Beast
// 1.74's async teardown reads only one chunk before closing, so the rest of our
// frame meets a reset and the write fails with EPIPE/ECONNRESET). Beast fails
// the stream on that write error, so the close frame would never be read.
// Hence Send keeps a read outstanding while it writes, and the stream under
// the WebSocket (ClientStream) reports a failed write a moment late: the reset
// that fails the write often arrives in the same reactor wake-up as the close
// frame, and Asio completes the write before the read. With the delay the read
// parses the close frame first (the control callback records it, ws.reason()
// keeps the code), and Read reports kClosed with that code.
//
// TLS (wss://, https://). ClientStream carries the TCP stream and, once
// StartTls wrapped it, a Beast ssl_stream over it: one WebSocket type serves
// both schemes. The peer is verified by default (the system's CAs, or the
// file in TlsOptions::ca_file) and its certificate must name the URL's host.
#include "playbook/client/ws_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace playbook::client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxMessageBytes = std::size_t{64} << 20;  // 64 MiB
constexpr const char* kUserAgent = "playbook-client";

// How long a failed write waits before reporting, so that a pending read can
// take in what the server sent before it dropped the connection.
constexpr Millis kWriteErrorGrace{20};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The tcp_stream, or TLS over it after StartTls, with write errors reported
// after kWriteErrorGrace (see the top of this file). Everything else is
// forwarded. next_layer() is always the TCP stream.
class ClientStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  using next_layer_type = beast::tcp_stream;

  explicit ClientStream(net::io_context& ioc) : plain_(ioc) {}

  executor_type get_executor() noexcept { return next_layer().get_executor(); }
  next_layer_type& next_layer() noexcept { return tls_ ? tls_->next_layer() : plain_; }
  const next_layer_type& next_layer() const noexcept { return tls_ ? tls_->next_layer() : plain_; }

  // From now on the bytes go through TLS. REQUIRES: connected, no operation pending.
  TlsStream& StartTls(net::ssl::context& ctx) {
    tls_.emplace(std::move(plain_), ctx);
    return *tls_;
  }
  TlsStream* tls() noexcept { return tls_ ? &*tls_ : nullptr; }

  template <class MutableBuffers, class ReadHandler>
  auto async_read_some(const MutableBuffers& buffers, ReadHandler&& handler) {
    return net::async_initiate<ReadHandler, void(beast::error_code, std::size_t)>(
        [this](auto h, const MutableBuffers& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(h));
          } else {
            plain_.async_read_some(b, std::move(h));
          }
        },
        handler, buffers);
  }

  template <class ConstBuffers, class WriteHandler>
  auto async_write_some(const ConstBuffers& buffers, WriteHandler&& handler) {
    return net::async_initiate<WriteHandler, void(beast::error_code, std::size_t)>(
        [this](auto h, const ConstBuffers& b) {
          auto done = [this, h = std::move(h)](beast::error_code ec, std::size_t n) mutable {
            if (!ec) {
              h(ec, n);
              return;
            }
            auto timer = std::make_shared<net::steady_timer>(get_executor(), kWriteErrorGrace);
            timer->async_wait([timer, h = std::move(h), ec, n](beast::error_code) mutable {
              h(ec, n);
            });
          };
          if (tls_) {
            tls_->async_write_some(b, std::move(done));
          } else {
            plain_.async_write_some(b, std::move(done));
          }
        },
        handler, buffers);
  }

 private:
  beast::tcp_stream plain_;  // moved into tls_ by StartTls
  std::optional<TlsStream> tls_;
};

// Teardown of the closing handshake, found by Beast through ADL: TLS's
// close_notify first when there is TLS.
template <class TeardownHandler>
void async_teardown(beast::role_type role, ClientStream& stream, TeardownHandler&& handler) {
  if (TlsStream* tls = stream.tls()) {
    boost::beast::async_teardown(role, *tls, std::forward<TeardownHandler>(handler));
    return;
  }
  using beast::websocket::async_teardown;
  async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}
[[maybe_unused]] void teardown(beast::role_type role, ClientStream& stream, beast::error_code& ec) {
  if (TlsStream* tls = stream.tls()) {
    boost::beast::teardown(role, *tls, ec);
    return;
  }
  using beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

// Runs `ioc` until `done` is set or `deadline` passes. True when done. Handlers
// of other outstanding operations (a pending read) may run meanwhile.
bool RunUntil(net::io_context& ioc, const bool& done, Clock::time_point deadline) {
  if (ioc.stopped()) ioc.restart();
  while (!done) {
    if (Clock::now() >= deadline) return false;
    // 0 when the deadline passed or nothing is outstanding any more: either
    // way nothing will set `done` in this call.
    if (ioc.run_one_until(deadline) == 0) {
      if (ioc.stopped()) ioc.restart();
      return done;
    }
  }
  return true;
}

// Runs the handlers of cancelled operations (they complete promptly once the
// socket is closed), bounded so that a bug cannot hang the caller.
void Drain(net::io_context& ioc, const bool& done) {
  RunUntil(ioc, done, Clock::now() + std::chrono::seconds(2));
}

std::string HostHeader(const std::string& host, uint16_t port, bool tls) {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

// "host:port" for messages.
std::string Where(const std::string& host, uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::string TimedOut(std::string_view what, Millis timeout) {
  return std::string(what) + ": timed out after " + std::to_string(timeout.count()) + " ms";
}

// Resolves and connects `stream` by `deadline`. On failure returns the status
// and leaves the socket closed.
Status ResolveAndConnect(net::io_context& ioc, beast::tcp_stream& stream, const std::string& host,
                         uint16_t port, Clock::time_point deadline, Millis timeout) {
  const std::string where = Where(host, port);
  tcp::resolver resolver(ioc);
  bool done = false;
  beast::error_code ec;
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(host, std::to_string(port),
                         [&](beast::error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           endpoints = std::move(r);
                           done = true;
                         });
  if (!RunUntil(ioc, done, deadline)) {
    resolver.cancel();
    Drain(ioc, done);
    return Status::IOError(TimedOut("resolve " + host, timeout));
  }
  if (ec) return Status::IOError("resolve " + host + ": " + ec.message());

  done = false;
  stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, done, deadline)) {
    stream.close();
    Drain(ioc, done);
    return Status::IOError(TimedOut("connect to " + where, timeout));
  }
  if (ec) {
    stream.close();
    return Status::IOError("connect to " + where + ": " + ec.message());
  }
  // Requests go out at once: Beast masks a client frame and sends it in pieces
  // of its write buffer, and with Nagle's algorithm each piece after the first
  // waits for the server's (delayed, up to 40 ms) ACK of the one before.
  beast::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  return Status::Ok();
}

// A client TLS context: TLS 1.2 or later, the peer verified against
// `options.ca_file` (else the system's CAs).
Result<std::shared_ptr<net::ssl::context>> MakeTlsContext(const TlsOptions& options) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) {
      return Status::InvalidArgument("cacert", "cannot use '" + options.ca_file +
                                                   "' as the certificates to trust: " + ec.message());
    }
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) return Status::IOError("loading the system's CA certificates: " + ec.message());
  }
  ctx->set_verify_mode(net::ssl::verify_peer);
  return ctx;
}

// "handshake: certificate verify failed" plus what to do about it.
std::string TlsFailure(const beast::error_code& ec, const TlsOptions& options) {
  std::string m = ec.message();
  if (ec.category() == net::error::get_ssl_category() &&
      (m.find("certificate") != std::string::npos || m.find("verify") != std::string::npos)) {
    m += options.ca_file.empty()
             ? " (the server's certificate is not trusted by the system's CAs: pass the CA or the "
               "certificate to trust, e.g. playbook --cacert FILE or PLAYBOOK_CACERT)"
             : " (not trusted by '" + options.ca_file + "', or it does not name the host)";
  }
  return m;
}

// The TLS handshake on `stream`'s connected TCP stream, verifying that the
// peer's certificate names `host`.
Status TlsHandshake(net::io_context& ioc, ClientStream& stream, net::ssl::context& ctx,
                    const std::string& host, const std::string& where, const TlsOptions& options,
                    Clock::time_point deadline, Millis timeout) {
  TlsStream& tls = stream.StartTls(ctx);
  beast::error_code ec;
  net::ip::make_address(host, ec);
  const bool is_address = !ec;
  // SNI for names (never for addresses, RFC 6066).
  if (!is_address && !SSL_set_tlsext_host_name(tls.native_handle(), host.c_str())) {
    return Status::IOError("TLS with " + where + ": cannot set the server name");
  }
  tls.set_verify_callback(net::ssl::host_name_verification(host));
  bool done = false;
  tls.async_handshake(net::ssl::stream_base::client, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, done, deadline)) {
    beast::error_code ignored;
    stream.next_layer().socket().close(ignored);
    Drain(ioc, done);
    return Status::IOError(TimedOut("TLS handshake with " + where, timeout));
  }
  if (ec) {
    beast::error_code ignored;
    stream.next_layer().socket().close(ignored);
    return Status::IOError("TLS handshake with " + where + ": " + TlsFailure(ec, options));
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------
// ParseUrl

Result<Url> ParseUrl(std::string_view text) {
  auto bad = [&](std::string why) {
    return Status::InvalidArgument(
        "url", "'" + std::string(text) + "' is not a ws://, wss://, http:// or https:// URL: " + std::move(why));
  };
  std::string_view rest;
  Url url;
  if (text.substr(0, 5) == "ws://") {
    rest = text.substr(5);
  } else if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else if (text.substr(0, 6) == "wss://") {
    rest = text.substr(6);
    url.tls = true;
  } else if (text.substr(0, 8) == "https://") {
    rest = text.substr(8);
    url.tls = true;
  } else {
    return bad("expected ws://host:port/path (wss:// with TLS) or http://host:port/path (https://)");
  }
  if (url.tls) url.port = 443;
  const std::size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    url.target = std::string(rest.substr(slash));
    if (url.target.front() == '?') url.target.insert(0, "/");
  }
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {  // [v6-address]:port
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated '['");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (url.host.empty()) return bad("no host");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535) {
      return bad("port '" + std::string(port_text) + "' is not a number in 1..65535");
    }
    url.port = static_cast<uint16_t>(value);
  }
  return url;
}

// ---------------------------------------------------------------------------
// WsClient

struct WsClient::Impl {
  // Declared first so that it is destroyed last: the stream refers to it.
  net::io_context ioc{1};
  TlsOptions tls_options;
  std::shared_ptr<net::ssl::context> tls_ctx;  // outlives ws, which uses it
  bool tls_ctx_stale = false;                  // set_tls since it was made
  std::optional<websocket::stream<ClientStream>> ws;
  int handshake_status = 0;
  bool open = false;

  // The outstanding read, which may span several Read calls.
  uint64_t generation = 0;  // bumped per connection; stale handlers are ignored
  bool read_pending = false;
  bool read_done = false;
  bool close_received = false;  // the server's close frame arrived (ws->reason() has it)
  beast::error_code read_ec;
  beast::flat_buffer read_buffer;

  ~Impl() { Shutdown(); }

  // Closes the socket (no close frame) and runs the handlers it aborts.
  void Shutdown() {
    open = false;
    if (!ws) return;
    beast::error_code ec;
    beast::get_lowest_layer(*ws).socket().close(ec);
    if (read_pending) Drain(ioc, read_done);
    ++generation;
    read_pending = false;
    read_done = false;
    ws.reset();
  }

  void StartRead() {
    read_buffer.clear();
    read_done = false;
    read_pending = true;
    ws->async_read(read_buffer, [this, gen = generation](beast::error_code ec, std::size_t) {
      if (gen != generation) return;
      read_ec = ec;
      read_pending = false;
      read_done = true;
    });
  }

  Message TakeRead() {
    Message m;
    read_done = false;
    if (!read_ec) {
      m.kind = ws->got_text() ? Message::Kind::kText : Message::Kind::kBinary;
      m.data = beast::buffers_to_string(read_buffer.data());
      read_buffer.clear();
      return m;
    }
    open = false;
    // After a close frame, the read ends with `closed`, or with
    // operation_aborted when our own write failed on the closing connection.
    if (read_ec == websocket::error::closed || close_received) {
      m.kind = Message::Kind::kClosed;
      m.close_code = static_cast<uint16_t>(ws->reason().code);
      m.error = std::string(ws->reason().reason.c_str());
    } else {
      m.kind = Message::Kind::kError;
      m.error = read_ec.message();
    }
    return m;
  }
};

WsClient::WsClient() : impl_(std::make_unique<Impl>()) {}
WsClient::~WsClient() = default;

int WsClient::handshake_status() const { return impl_->handshake_status; }

void WsClient::set_tls(TlsOptions options) {
  impl_->tls_options = std::move(options);
  impl_->tls_ctx_stale = true;  // a live connection keeps using the old context
}

bool WsClient::is_open() const { return impl_->open && impl_->ws && impl_->ws->is_open(); }

Status WsClient::Connect(const Url& url, std::string_view token, Millis timeout) {
  Impl& d = *impl_;
  d.Shutdown();
  d.handshake_status = 0;
  if (d.tls_ctx_stale) {
    d.tls_ctx.reset();
    d.tls_ctx_stale = false;
  }
  d.ws.emplace(d.ioc);
  const auto deadline = Clock::now() + timeout;
  const std::string where = Where(url.host, url.port);

  Status s = ResolveAndConnect(d.ioc, beast::get_lowest_layer(*d.ws), url.host, url.port, deadline,
                               timeout);
  if (s.ok() && url.tls) {
    if (!d.tls_ctx) {
      auto ctx = MakeTlsContext(d.tls_options);
      if (ctx.ok()) {
        d.tls_ctx = std::move(ctx).value();
      } else {
        s = ctx.status();
      }
    }
    if (s.ok()) {
      s = TlsHandshake(d.ioc, d.ws->next_layer(), *d.tls_ctx, url.host, where, d.tls_options, deadline,
                       timeout);
    }
  }
  if (!s.ok()) {
    d.ws.reset();
    return s;
  }
  const std::string scheme = url.tls ? "wss://" : "ws://";

  d.close_received = false;
  d.ws->control_callback([&d](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::close) d.close_received = true;
  });
  d.ws->read_message_max(kMaxMessageBytes);
  // One frame per message: the server sees the whole size in the first header.
  d.ws->auto_fragment(false);
  // A client frame is masked through this buffer and sent a piece of it at a
  // time (Beast's default 4 KB): an import batch of 2 MB in 32 pieces, not 500.
  d.ws->write_buffer_bytes(64 * 1024);
  d.ws->set_option(websocket::stream_base::decorator(
      [token = std::string(token)](websocket::request_type& req) {
        req.set(http::field::user_agent, kUserAgent);
        if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
      }));

  bool done = false;
  beast::error_code ec;
  websocket::response_type res;
  d.ws->async_handshake(res, HostHeader(url.host, url.port, url.tls), url.target,
                        [&](beast::error_code e) {
                          ec = e;
                          done = true;
                        });
  if (!RunUntil(d.ioc, done, deadline)) {
    beast::error_code ignored;
    beast::get_lowest_layer(*d.ws).socket().close(ignored);
    Drain(d.ioc, done);
    d.ws.reset();
    return Status::IOError(TimedOut("WebSocket handshake with " + where, timeout));
  }
  if (ec) {
    d.handshake_status = static_cast<int>(res.result_int());
    d.ws.reset();
    if (d.handshake_status == 401 || d.handshake_status == 403) {
      return Status::Unauthorized(scheme + where + url.target + " refused the upgrade: HTTP " +
                                  std::to_string(d.handshake_status) + " " +
                                  std::string(res.reason()));
    }
    if (d.handshake_status != 0) {
      return Status::IOError(scheme + where + url.target + " refused the upgrade: HTTP " +
                             std::to_string(d.handshake_status) + " " + std::string(res.reason()));
    }
    return Status::IOError("WebSocket handshake with " + where + ": " + ec.message());
  }
  d.handshake_status = 101;
  d.open = true;
  return Status::Ok();
}

Status WsClient::Send(std::string_view data, Millis timeout, bool binary) {
  Impl& d = *impl_;
  if (!is_open()) return Status::IOError("send: not connected");
  d.ws->binary(binary);
  // Read ahead while writing, so that a close frame sent by the server mid-write
  // is seen (see the top of this file); the frame read is kept for Read.
  if (!d.read_pending && !d.read_done) d.StartRead();
  bool done = false;
  beast::error_code ec;
  d.ws->async_write(net::buffer(data.data(), data.size()), [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!RunUntil(d.ioc, done, Clock::now() + timeout)) {
    // A half-sent frame cannot be resumed: the connection is lost.
    beast::error_code ignored;
    beast::get_lowest_layer(*d.ws).socket().close(ignored);
    Drain(d.ioc, done);
    d.open = false;
    return Status::IOError(TimedOut("send", timeout));
  }
  if (ec) {
    d.open = false;
    // The server closed the connection while we wrote (e.g. 1009, message too
    // big): not a transport failure; the next Read reports the close.
    if (d.close_received) return Status::Ok();
    return Status::IOError("send: " + ec.message());
  }
  return Status::Ok();
}

Message WsClient::Read(Millis timeout) {
  Impl& d = *impl_;
  if (d.read_done) return d.TakeRead();  // completed during an earlier call
  if (!d.read_pending) {
    if (!is_open()) {
      Message m;
      m.kind = Message::Kind::kError;
      m.error = "read: not connected";
      return m;
    }
    d.StartRead();
  }
  if (!RunUntil(d.ioc, d.read_done, Clock::now() + timeout)) {
    Message m;
    m.kind = Message::Kind::kTimeout;
    return m;
  }
  return d.TakeRead();
}

Status WsClient::Close(uint16_t code, Millis timeout) {
  Impl& d = *impl_;
  if (!d.ws) return Status::Ok();
  if (!d.ws->is_open()) {  // already closed by the server or failed
    d.Shutdown();
    return Status::Ok();
  }
  bool done = false;
  beast::error_code ec;
  d.ws->async_close(websocket::close_reason(code), [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  const bool finished = RunUntil(d.ioc, done, Clock::now() + timeout);
  if (!finished) {
    beast::error_code ignored;
    beast::get_lowest_layer(*d.ws).socket().close(ignored);
    Drain(d.ioc, done);
  }
  d.Shutdown();
  if (!finished) return Status::IOError(TimedOut("close", timeout));
  // A pending read may have consumed the server's close frame first; that is
  // still an orderly close.
  if (ec && ec != net::error::operation_aborted && ec != websocket::error::closed) {
    return Status::IOError("close: " + ec.message());
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// HttpRequest

Result<HttpResponse> HttpRequest(const std::string& host, uint16_t port, std::string_view method,
                                 std::string_view target,
                                 const std::map<std::string, std::string>& headers, Millis timeout) {
  Url url;
  url.host = host;
  url.port = port;
  url.target = std::string(target);
  return HttpRequest(url, method, headers, timeout);
}

Result<HttpResponse> HttpRequest(const Url& url, std::string_view method,
                                 const std::map<std::string, std::string>& headers, Millis timeout,
                                 const TlsOptions& tls) {
  const std::string& host = url.host;
  const uint16_t port = url.port;
  const std::string_view target = url.target;
  net::io_context ioc{1};
  std::shared_ptr<net::ssl::context> ctx;  // outlives the stream
  ClientStream stream(ioc);
  const auto deadline = Clock::now() + timeout;
  const std::string where = Where(host, port);
  Status s = ResolveAndConnect(ioc, stream.next_layer(), host, port, deadline, timeout);
  if (!s.ok()) return s;
  if (url.tls) {
    auto made = MakeTlsContext(tls);
    if (!made.ok()) return made.status();
    ctx = std::move(made).value();
    s = TlsHandshake(ioc, stream, *ctx, host, where, tls, deadline, timeout);
    if (!s.ok()) return s;
  }

  http::request<http::string_body> req;
  const beast::string_view method_sv(method.data(), method.size());
  const http::verb verb = http::string_to_verb(method_sv);
  if (verb == http::verb::unknown) {
    req.method_string(method_sv);
  } else {
    req.method(verb);
  }
  req.target(target.empty() ? beast::string_view("/") : beast::string_view(target.data(), target.size()));
  req.version(11);
  req.set(http::field::host, HostHeader(host, port, url.tls));
  req.set(http::field::user_agent, kUserAgent);
  req.set(http::field::connection, "close");
  req.prepare_payload();  // Content-Length: 0 where the method expects a body
  for (const auto& [name, value] : headers) req.set(name, value);

  bool done = false;
  beast::error_code ec;
  const std::string what =
      std::string(method) + (url.tls ? " https://" : " http://") + where + std::string(target);
  auto fail_timeout = [&]() -> Status {
    beast::error_code ignored;
    stream.next_layer().socket().close(ignored);
    Drain(ioc, done);
    return Status::IOError(TimedOut(what, timeout));
  };

  http::async_write(stream, req, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, done, deadline)) return fail_timeout();
  if (ec) return Status::IOError(what + ": sending the request: " + ec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxMessageBytes);
  if (verb == http::verb::head) parser.skip(true);
  done = false;
  http::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, done, deadline)) return fail_timeout();
  if (ec) return Status::IOError(what + ": reading the response: " + ec.message());

  auto& msg = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value(field.value());
    auto [pos, inserted] = out.headers.emplace(name, value);
    if (!inserted) pos->second += ", " + value;  // repeated header: join as HTTP allows
  }
  out.body = std::move(msg.body());
  beast::error_code ignored;
  stream.next_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

}  // namespace playbook::client

// HTTP on the daemon's port: /healthz, /metrics, the dashboard (GET /
// and /web/*), 404 for anything else, and the upgrade to WebSocket at /v1
// (after the Origin and token checks). With [server.tls] the same session runs
// over TLS (its ConnStream holds the TLS stream) after the handshake; a client speaking
// plain HTTP to a TLS port gets one plain 400 and the connection is closed.
#include <boost/asio/dispatch.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conn_stream.h"
#include "connection_count.h"
#include "playbook/server/jsonrpc.h"
#include "playbook/server/version.h"
#include "sessions.h"
#include "shared_state.h"
#include "web_assets.h"
#include "ws_session.h"

namespace playbook::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;

constexpr auto kReadTimeout = std::chrono::seconds(30);
constexpr size_t kHeaderLimit = 16 * 1024;
constexpr size_t kBodyLimit = 64 * 1024;

// Browsers cannot set Authorization on a WebSocket upgrade, so the dashboard
// offers its token as a subprotocol: Sec-WebSocket-Protocol: playbook.v1,
// bearer.TOKEN (the server selects playbook.v1; see ws_session.cpp). Returns
// TOKEN, or nullopt when no "bearer." entry was offered.
std::optional<std::string_view> SubprotocolToken(const http::request<http::string_body>& req) {
  constexpr std::string_view kPrefix = "bearer.";
  for (std::string_view item : OfferedSubprotocols(req)) {
    if (item.size() > kPrefix.size() && item.substr(0, kPrefix.size()) == kPrefix) return item.substr(kPrefix.size());
  }
  return std::nullopt;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// A browser's page may open a WebSocket to any address, the rep's local daemon
// included; its Origin header says whose page it is. Allowed: the daemon's own
// origin (http or https, same host:port as the Host header: the dashboard) and
// the configured server.allowed_origins.
bool OriginAllowed(std::string_view origin, std::string_view host,
                   const std::vector<std::string>& allowed) {
  if (!host.empty()) {
    for (std::string_view scheme : {"http://", "https://"}) {
      if (origin.size() == scheme.size() + host.size() && EqualsIgnoreCase(origin.substr(0, scheme.size()), scheme) &&
          EqualsIgnoreCase(origin.substr(scheme.size()), host)) {
        return true;
      }
    }
  }
  for (const std::string& a : allowed) {
    if (EqualsIgnoreCase(origin, a)) return true;
  }
  return false;
}

// On every answer: no MIME sniffing, no framing, no referrer; a dashboard file
// gets the dashboard's policy, anything else (JSON, text) may load nothing.
template <class Response>
void SetSecurityHeaders(Response& res, bool dashboard) {
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Content-Security-Policy",
          dashboard ? "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                      "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
                    : "default-src 'none'; frame-ancestors 'none'");
}

// Plain TCP or TLS, one type (conn_stream.h); `buffer` holds bytes already read from the
// connection (the TLS detection's).
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(ConnStream stream, beast::flat_buffer buffer, SharedState& state, ConnectionCount count)
      : stream_(std::move(stream)), buffer_(std::move(buffer)), state_(state), count_(std::move(count)) {}

  void Run() {
    if (ConnStream::Tls* tls = stream_.tls()) {
      beast::get_lowest_layer(stream_).expires_after(kReadTimeout);
      tls->async_handshake(net::ssl::stream_base::server, buffer_.data(),
                              beast::bind_front_handler(&HttpSession::OnHandshake, this->shared_from_this()));
    } else {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&HttpSession::DoRead, this->shared_from_this()));
    }
  }

 private:
  void OnHandshake(beast::error_code ec, std::size_t used) {
    if (ec) {
      spdlog::debug("TLS handshake with {} failed: {}", Peer(), ec.message());
      return;
    }
    buffer_.consume(used);
    DoRead();
  }

  void DoRead() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    beast::get_lowest_layer(stream_).expires_after(kReadTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return DoClose();
    if (ec) {
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        return Respond(http::status::payload_too_large, "application/json",
                       R"({"error":"request too large"})", /*keep_alive=*/false);
      }
      return;  // timeout, reset, garbage: drop the connection
    }
    http::request<http::string_body> req = parser_->release();
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    keep_alive_ = req.keep_alive();

    if (state_.metrics.open_connections() > state_.config.server.max_connections) {
      return Respond(http::status::service_unavailable, "application/json",
                     R"({"error":"too many connections"})", false);
    }
    if (websocket::is_upgrade(req)) {
      if (path != "/v1") {
        return Respond(http::status::not_found, "application/json",
                       R"({"error":"not found: the WebSocket endpoint is /v1"})", false);
      }
      // Before the token is looked at: a page of another origin learns nothing about it.
      if (const auto origin = req.find(http::field::origin); origin != req.end()) {
        const std::string_view o(origin->value().data(), origin->value().size());
        const auto host_field = req.find(http::field::host);
        const std::string_view host =
            host_field == req.end() ? std::string_view()
                                    : std::string_view(host_field->value().data(), host_field->value().size());
        if (!OriginAllowed(o, host, state_.config.server.allowed_origins)) {
          state_.metrics.AuthRefused();
          spdlog::info("refused upgrade from {}: origin {} not allowed", Peer(),
                       Serialize(json(std::string(o.substr(0, 256)))));
          return Respond(http::status::forbidden, "application/json",
                         Serialize(json{{"error", "origin not allowed: " + std::string(o) +
                                                      " (the daemon's own origin and server.allowed_origins are)"},
                                        {"origin", std::string(o)}}),
                         false);
        }
      }
      if (state_.draining) {
        return Respond(http::status::service_unavailable, "application/json",
                       R"({"error":"shutting down"})", false);
      }
      // Authorization: Bearer TOKEN, else the subprotocol bearer.TOKEN (browsers).
      const auto auth = req.find(http::field::authorization);
      std::string credential;
      if (auth != req.end()) {
        credential.assign(auth->value().data(), auth->value().size());
      } else if (const auto token = SubprotocolToken(req)) {
        credential = "Bearer " + std::string(*token);
      }
      std::optional<Identity> identity = state_.auth.Identify(credential);
      if (!identity) {
        state_.metrics.AuthRefused();
        spdlog::info("refused upgrade from {}: {} token", Peer(),
                     credential.empty() ? "missing" : "unknown");
        return Respond(http::status::unauthorized, "application/json",
                       credential.empty() ? R"({"error":"missing token: send Authorization: Bearer TOKEN"})"
                                          : R"({"error":"unknown token"})",
                       false, /*bearer_challenge=*/true);
      }
      beast::get_lowest_layer(stream_).expires_never();  // the WebSocket session sets its own timeouts
      StartWsSession(std::move(stream_), std::move(req), std::move(*identity), state_, std::move(count_));
      return;
    }
    if (req.method() == http::verb::get && path == "/healthz") return Healthz();
    if (req.method() == http::verb::get) {
      if (const WebAsset* asset = FindWebAsset(path)) return ServeWebAsset(*asset, PanelCorsOrigin(req, path));
    }
    if (req.method() == http::verb::get && path == "/metrics") {
      const double uptime =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - state_.started).count();
      return Respond(http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
                     state_.metrics.RenderPrometheus(uptime, BuildVersion()), keep_alive_);
    }
    Respond(http::status::not_found, "application/json", R"({"error":"not found"})", keep_alive_);
  }

  void Healthz() {
    if (!state_.draining && !state_.serving.load(std::memory_order_acquire)) {
      // Listening while the engine opens: not an error, not ready either.
      return Respond(http::status::service_unavailable, "application/json",
                     Serialize(json{{"status", "starting"}, {"version", BuildVersion()}}), keep_alive_);
    }
    const Status engine =
        state_.serving.load(std::memory_order_acquire) ? state_.engine->Health() : Status::Ok();
    const bool ok = engine.ok() && !state_.draining;
    json body{{"status", ok ? "ok" : "unavailable"}, {"version", BuildVersion()}};
    if (!engine.ok()) body["reason"] = engine.ToString();
    else if (state_.draining) body["reason"] = "shutting down";
    Respond(ok ? http::status::ok : http::status::service_unavailable, "application/json",
            Serialize(body), keep_alive_);
  }

  // The panel's modules (/panel/*.js) are loaded by CRM pages of other origins, and a module script
  // from another origin needs CORS: a request from one of server.allowed_origins gets that origin
  // back. nullopt: not a panel file (no CORS headers at all); "": a panel file, origin not allowed.
  std::optional<std::string> PanelCorsOrigin(const http::request<http::string_body>& req, std::string_view path) {
    if (!path.starts_with("/panel/")) return std::nullopt;
    const auto origin = req.find(http::field::origin);
    if (origin == req.end()) return std::string();
    const std::string_view o(origin->value().data(), origin->value().size());
    for (const std::string& a : state_.config.server.allowed_origins) {
      if (EqualsIgnoreCase(o, a)) return a;
    }
    return std::string();
  }

  // A dashboard or panel file, never cached stale; same-origin only, except the panel's files for
  // an allowed origin (`cors`, see PanelCorsOrigin).
  void ServeWebAsset(const WebAsset& asset, const std::optional<std::string>& cors) {
    auto& res = res_.emplace(http::status::ok, 11);
    res.set(http::field::server, std::string("playbookd/") + BuildVersion());
    res.set(http::field::content_type,
            beast::string_view(asset.content_type.data(), asset.content_type.size()));
    res.set(http::field::cache_control, "no-cache");
    if (cors) {
      res.set(http::field::vary, "Origin");
      if (!cors->empty()) res.set(http::field::access_control_allow_origin, *cors);
    }
    SetSecurityHeaders(res, /*dashboard=*/true);
    res.keep_alive(keep_alive_);
    res.body().assign(asset.body.data(), asset.body.size());
    res.prepare_payload();
    state_.metrics.HttpResponse(200);
    http::async_write(stream_, res,
                      beast::bind_front_handler(&HttpSession::OnWrite, this->shared_from_this()));
  }

  void Respond(http::status status, std::string_view content_type, std::string body,
               bool keep_alive, bool bearer_challenge = false) {
    auto& res = res_.emplace(status, 11);
    res.set(http::field::server, std::string("playbookd/") + BuildVersion());
    res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    if (bearer_challenge) res.set(http::field::www_authenticate, "Bearer");
    SetSecurityHeaders(res, /*dashboard=*/false);
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    state_.metrics.HttpResponse(static_cast<int>(status));
    http::async_write(stream_, res,
                      beast::bind_front_handler(&HttpSession::OnWrite, this->shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return;
    const bool close = !res_->keep_alive();
    res_.reset();
    if (close || state_.draining) return DoClose();
    DoRead();
  }

  void DoClose() {
    if (ConnStream::Tls* tls = stream_.tls()) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      tls->async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.next_layer().socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
    }
  }

  std::string Peer() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  ConnStream stream_;
  beast::flat_buffer buffer_;
  SharedState& state_;
  ConnectionCount count_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> res_;
  bool keep_alive_ = false;
};

// A TLS port: reads until the first bytes say whether they start a TLS
// handshake; a plain HTTP (or ws://) client gets a plain 400 saying so.
class TlsDetect : public std::enable_shared_from_this<TlsDetect> {
 public:
  TlsDetect(net::ip::tcp::socket socket, SharedState& state)
      : stream_(std::move(socket)), state_(state), count_(&state.metrics) {}

  void Run() {
    stream_.expires_after(kReadTimeout);
    beast::async_detect_ssl(stream_, buffer_,
                            beast::bind_front_handler(&TlsDetect::OnDetect, shared_from_this()));
  }

 private:
  void OnDetect(beast::error_code ec, bool tls) {
    if (ec) return;  // closed or timed out before saying anything
    if (tls) {
      std::make_shared<HttpSession>(ConnStream(ConnStream::Tls(std::move(stream_), *state_.tls)),
                                               std::move(buffer_), state_, std::move(count_))
          ->Run();
      return;
    }
    spdlog::info("refused plain HTTP from {} on the TLS port", Peer());
    state_.metrics.HttpResponse(400);
    static constexpr std::string_view kBody =
        R"({"error":"this port speaks TLS only: use https:// or wss://"})";
    reply_ = "HTTP/1.1 400 Bad Request\r\n"
             "Server: playbookd/" + std::string(BuildVersion()) + "\r\n"
             "Content-Type: application/json\r\n"
             "X-Content-Type-Options: nosniff\r\n"
             "X-Frame-Options: DENY\r\n"
             "Referrer-Policy: no-referrer\r\n"
             "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
             "Connection: close\r\n"
             "Content-Length: " + std::to_string(kBody.size()) + "\r\n\r\n" + std::string(kBody);
    net::async_write(stream_, net::buffer(reply_), [self = shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    });
  }

  std::string Peer() {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  SharedState& state_;
  ConnectionCount count_;
  std::string reply_;
};

}  // namespace

void StartHttpSession(net::ip::tcp::socket socket, SharedState& state) {
  if (state.tls != nullptr) {
    std::make_shared<TlsDetect>(std::move(socket), state)->Run();
    return;
  }
  ConnectionCount count(&state.metrics);
  std::make_shared<HttpSession>(ConnStream(beast::tcp_stream(std::move(socket))),
                                                   beast::flat_buffer(), state, std::move(count))
      ->Run();
}

}  // namespace playbook::server

// Plain HTTP on the daemon's port: /healthz, /metrics, the dashboard (GET /
// and /web/*), 404 for anything else, and the upgrade to WebSocket at /v1
// (after the token check).
#include <boost/asio/dispatch.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

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

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(net::ip::tcp::socket socket, SharedState& state)
      : stream_(std::move(socket)), state_(state), count_(&state.metrics) {}

  void Run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::DoRead, shared_from_this()));
  }

 private:
  void DoRead() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    stream_.expires_after(kReadTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
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
      const std::optional<Role> role = state_.auth.Authenticate(credential);
      if (!role) {
        state_.metrics.AuthRefused();
        spdlog::info("refused upgrade from {}: {} token", Peer(),
                     credential.empty() ? "missing" : "unknown");
        return Respond(http::status::unauthorized, "application/json",
                       credential.empty() ? R"({"error":"missing token: send Authorization: Bearer TOKEN"})"
                                          : R"({"error":"unknown token"})",
                       false, /*bearer_challenge=*/true);
      }
      stream_.expires_never();  // the WebSocket session sets its own timeouts
      StartWsSession(std::move(stream_), std::move(req), *role, state_, std::move(count_));
      return;
    }
    if (req.method() == http::verb::get && path == "/healthz") return Healthz();
    if (req.method() == http::verb::get) {
      if (const WebAsset* asset = FindWebAsset(path)) return ServeWebAsset(*asset);
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
    const Status engine = state_.engine->Health();
    const bool ok = engine.ok() && !state_.draining;
    json body{{"status", ok ? "ok" : "unavailable"}, {"version", BuildVersion()}};
    if (!engine.ok()) body["reason"] = engine.ToString();
    else if (state_.draining) body["reason"] = "shutting down";
    Respond(ok ? http::status::ok : http::status::service_unavailable, "application/json",
            Serialize(body), keep_alive_);
  }

  // A dashboard file: same-origin only, never cached stale.
  void ServeWebAsset(const WebAsset& asset) {
    auto& res = res_.emplace(http::status::ok, 11);
    res.set(http::field::server, std::string("playbookd/") + BuildVersion());
    res.set(http::field::content_type,
            beast::string_view(asset.content_type.data(), asset.content_type.size()));
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "no-referrer");
    res.set("Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    res.keep_alive(keep_alive_);
    res.body().assign(asset.body.data(), asset.body.size());
    res.prepare_payload();
    state_.metrics.HttpResponse(200);
    http::async_write(stream_, res,
                      beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this()));
  }

  void Respond(http::status status, std::string_view content_type, std::string body,
               bool keep_alive, bool bearer_challenge = false) {
    auto& res = res_.emplace(status, 11);
    res.set(http::field::server, std::string("playbookd/") + BuildVersion());
    res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    if (bearer_challenge) res.set(http::field::www_authenticate, "Bearer");
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    state_.metrics.HttpResponse(static_cast<int>(status));
    http::async_write(stream_, res,
                      beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return;
    const bool close = !res_->keep_alive();
    res_.reset();
    if (close || state_.draining) return DoClose();
    DoRead();
  }

  void DoClose() {
    beast::error_code ec;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
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
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> res_;
  bool keep_alive_ = false;
};

}  // namespace

void StartHttpSession(net::ip::tcp::socket socket, SharedState& state) {
  std::make_shared<HttpSession>(std::move(socket), state)->Run();
}

}  // namespace playbook::server

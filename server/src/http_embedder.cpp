// The remote embedder's HTTP client: one connection per request, the whole
// exchange (resolve, connect, send, receive) under one deadline, run on the
// calling thread with an io_context of its own so that no daemon thread can
// wait on a hung endpoint longer than embedder.timeout_ms.
#include "playbook/server/http_embedder.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

#include "http_embedder_text.h"

namespace playbook::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Host names and IPv4 literals: letters, digits, '-', '.', '_'.
bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '-' || c == '.' || c == '_';
}

// 429 and the gateway errors say "try again later"; the rest is a refusal.
bool Transient(unsigned status) { return status == 429 || status == 502 || status == 503 || status == 504; }

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url, const std::string& field) {
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return Status::InvalidArgument(field, "must not hold spaces or control characters");
  }
  if (url.substr(0, 8) == "https://") {
    return Status::InvalidArgument(field, "https:// is not supported: use http:// (on a trusted network, or "
                                          "through a local TLS-terminating proxy)");
  }
  if (url.substr(0, 7) != "http://") {
    return Status::InvalidArgument(field, "expected http://host[:port][/path], got '" + std::string(url) + "'");
  }
  std::string_view rest = url.substr(7);
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpUrl out;
  out.target = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  if (out.target.empty() || out.target == "/") out.target = "/v1/embeddings";
  if (out.target[0] == '?') out.target = "/v1/embeddings" + out.target;
  if (authority.find('@') != std::string_view::npos) {
    return Status::InvalidArgument(field, "user info in the URL is not supported: use embedder.api_key_env");
  }
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {  // [IPv6]
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return Status::InvalidArgument(field, "bad IPv6 host");
    out.host = std::string(authority.substr(1, close - 1));
    for (char c : out.host) {
      if (!(IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.')) {
        return Status::InvalidArgument(field, "bad IPv6 host");
      }
    }
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Status::InvalidArgument(field, "expected ':' and a port after the IPv6 host");
      port = after.substr(1);
      if (port.empty()) return Status::InvalidArgument(field, "empty port");
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return Status::InvalidArgument(field, "empty port");
    }
    if (out.host.empty()) return Status::InvalidArgument(field, "no host");
    for (char c : out.host) {
      if (!IsHostChar(c)) return Status::InvalidArgument(field, "bad host '" + out.host + "'");
    }
  }
  if (!port.empty()) {
    uint32_t p = 0;
    for (char c : port) {
      if (!IsDigit(c) || port.size() > 5) return Status::InvalidArgument(field, "port must be 1..65535");
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) return Status::InvalidArgument(field, "port must be 1..65535");
    out.port = static_cast<uint16_t>(p);
  }
  out.authority = out.host.find(':') != std::string::npos ? "[" + out.host + "]" : out.host;
  if (out.port != 80) out.authority += ":" + std::to_string(out.port);
  return out;
}

Result<std::unique_ptr<HttpEmbedder>> HttpEmbedder::Create(HttpEmbedderOptions options) {
  auto url = ParseHttpUrl(options.url, "embedder.url");
  if (!url.ok()) return url.status();
  if (options.model.empty()) return Status::InvalidArgument("embedder.model", "required with kind = \"http\"");
  if (options.dimension < 1 || options.dimension > 4096) {
    return Status::InvalidArgument("embedder.dimension", "must be 1..4096");
  }
  if (options.batch_size < 1) return Status::InvalidArgument("embedder.batch_size", "must be at least 1");
  if (options.timeout_ms < 1) return Status::InvalidArgument("embedder.timeout_ms", "must be at least 1");
  return std::unique_ptr<HttpEmbedder>(new HttpEmbedder(std::move(options), std::move(url).value()));
}

HttpEmbedder::HttpEmbedder(HttpEmbedderOptions options, HttpUrl url)
    : options_(std::move(options)), url_(std::move(url)),
      where_("embedder http://" + url_.authority + url_.target + ": ") {}

bool HttpEmbedder::Admit(std::string* why) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!tripped_) return true;
  const auto now = Clock::now();
  if (now >= retry_at_ && !probing_) {
    probing_ = true;  // this caller tries again; the others fail at once meanwhile
    return true;
  }
  *why = "unavailable (";
  *why += last_failure_;
  *why += "); not retried for ";
  *why += std::to_string(kRetryAfter.count());
  *why += " ms after a failure";
  return false;
}

void HttpEmbedder::Reached(bool reached, const std::string& failure) const {
  std::lock_guard<std::mutex> lock(mu_);
  probing_ = false;
  tripped_ = !reached;
  if (!reached) {
    retry_at_ = Clock::now() + kRetryAfter;
    last_failure_ = failure;
  }
}

std::string HttpEmbedder::Name() const {
  std::string name = "http:";
  name += options_.model;
  name += "@";
  name += std::to_string(options_.dimension);
  return name;
}

std::vector<std::string> HttpEmbedder::Concepts(std::string_view text) const {
  return options_.concepts ? options_.concepts->Concepts(text) : std::vector<std::string>{};
}

std::vector<std::string> HttpEmbedder::Terms(std::string_view text) const {
  return options_.concepts ? options_.concepts->Terms(text) : models::TextTerms(text);
}

Status HttpEmbedder::EmbedBatch(const std::vector<std::string>& texts, float* out) const {
  for (size_t from = 0; from < texts.size(); from += options_.batch_size) {
    const size_t to = std::min(texts.size(), from + options_.batch_size);
    if (Status s = EmbedRange(texts, from, to, out + from * options_.dimension); !s.ok()) return s;
  }
  return Status::Ok();
}

void HttpEmbedder::Count(Outcome outcome, Clock::duration took) const {
  requests_[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  duration_ns_.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()),
                         std::memory_order_relaxed);
}

void HttpEmbedder::RenderMetrics(std::string* out) const {
  static constexpr const char* kNames[kOutcomeCount] = {"ok", "unreachable", "http_error", "bad_response", "skipped"};
  *out += "# HELP playbook_embedder_requests_total Requests to the remote embedder by result (skipped: failed at "
          "once after an unreachable one).\n# TYPE playbook_embedder_requests_total counter\n";
  uint64_t sent = 0;
  for (int r = 0; r < kOutcomeCount; ++r) {
    const uint64_t n = requests_[static_cast<size_t>(r)].load(std::memory_order_relaxed);
    if (r != kSkipped) sent += n;
    *out += "playbook_embedder_requests_total{result=\"";
    *out += kNames[r];
    *out += "\"} ";
    *out += std::to_string(n);
    *out += "\n";
  }
  *out += "# HELP playbook_embedder_texts_total Texts embedded by the remote embedder.\n"
          "# TYPE playbook_embedder_texts_total counter\n";
  *out += "playbook_embedder_texts_total ";
  *out += std::to_string(texts_.load(std::memory_order_relaxed));
  *out += "\n";
  *out += "# HELP playbook_embedder_request_duration_seconds Requests sent to the remote embedder, whole exchange.\n"
          "# TYPE playbook_embedder_request_duration_seconds summary\n";
  char line[128];
  std::snprintf(line, sizeof line, "playbook_embedder_request_duration_seconds_sum %.6f\n",
                static_cast<double>(duration_ns_.load(std::memory_order_relaxed)) / 1e9);
  *out += line;
  *out += "playbook_embedder_request_duration_seconds_count ";
  *out += std::to_string(sent);
  *out += "\n";
}

Status HttpEmbedder::EmbedRange(const std::vector<std::string>& texts, size_t from, size_t to, float* out) const {
  const std::string& where = where_;
  if (std::string why; !Admit(&why)) {
    Count(kSkipped, Clock::duration::zero());
    return Status::Overloaded(where + why);
  }
  unsigned status = 0;
  std::string body;
  const auto t0 = Clock::now();
  const Status posted = Post(EmbeddingsRequestBody(options_.model, texts, from, to), &status, &body);
  const Clock::duration took = Clock::now() - t0;
  const bool reached = posted.ok() || posted.code() == Status::Code::kInternal;
  Reached(reached, posted.message());
  if (posted.code() == Status::Code::kInternal) {
    Count(kBadResponse, took);
    return Status::Internal(where + posted.message());
  }
  if (!posted.ok()) {
    Count(kUnreachable, took);
    return Status::Overloaded(where + posted.message());
  }
  if (status < 200 || status > 299) {
    std::string m = where;
    m += "HTTP ";
    m += std::to_string(status);
    if (!body.empty()) m += ": " + ErrorBodyReason(body);
    Count(kHttpError, took);
    return Transient(status) ? Status::Overloaded(std::move(m)) : Status::Internal(std::move(m));
  }
  if (Status s = ParseEmbeddingsResponse(body, to - from, options_.dimension, out); !s.ok()) {
    Count(kBadResponse, took);
    return Status::Internal(where + s.message());
  }
  Count(kOk, took);
  texts_.fetch_add(to - from, std::memory_order_relaxed);
  return Status::Ok();
}

Status HttpEmbedder::Post(const std::string& body, unsigned* status, std::string* response) const {
  const auto timeout = std::chrono::milliseconds(options_.timeout_ms);
  const Clock::time_point deadline = Clock::now() + timeout;
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);

  http::request<http::string_body> req{http::verb::post, url_.target, 11};
  req.set(http::field::host, url_.authority);
  req.set(http::field::user_agent, "playbookd");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (!options_.api_key.empty()) req.set(http::field::authorization, "Bearer " + options_.api_key);
  req.body() = body;
  req.prepare_payload();

  // The response's size is bounded by what was asked: each number as up to
  // 40 bytes of text, plus room for the rest ("usage", "model", ...).
  http::response_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  const std::uint64_t body_limit =
      (std::uint64_t{1} << 20) + std::uint64_t{options_.batch_size} * options_.dimension * 40;
  parser.body_limit(body_limit);
  beast::flat_buffer buffer;

  const char* stage = "resolve";  // what was under way when it failed or timed out
  beast::error_code result;
  bool done = false;
  auto fail = [&](beast::error_code ec) {
    result = ec;
    done = true;
  };
  resolver.async_resolve(url_.host, std::to_string(url_.port), [&](beast::error_code ec,
                                                                  tcp::resolver::results_type endpoints) {
    if (ec) return fail(ec);
    stage = "connect";
    stream.expires_at(deadline);
    stream.async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return fail(ec);
      stage = "send the request";
      stream.expires_at(deadline);
      http::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return fail(ec);
        stage = "read the response";
        stream.expires_at(deadline);
        // The header first: Beast 1.74 reports a Content-Length over the body
        // limit there, while a whole-message read went on to read that body
        // (seen here: 2 MiB read past a 1 MiB limit).
        http::async_read_header(stream, buffer, parser, [&](beast::error_code ec, size_t) {
          if (ec) return fail(ec);
          stream.expires_at(deadline);
          http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) { fail(ec); });
        });
      });
    });
  });
  ioc.run_until(deadline);
  bool timed_out = false;
  if (!done) {  // past the deadline (a slow DNS lookup, or the timer not yet fired)
    timed_out = true;
    resolver.cancel();
    beast::error_code ignored;
    stream.socket().close(ignored);
    ioc.restart();
    ioc.run_for(std::chrono::seconds(2));  // the cancelled handlers
  }
  if (timed_out || result == beast::error::timeout) {
    std::string m = stage;
    m += ": timed out after ";
    m += std::to_string(options_.timeout_ms);
    m += " ms (embedder.timeout_ms)";
    return Status::IOError(std::move(m));
  }
  if (result == http::error::body_limit || (!result && parser.get().body().size() > body_limit)) {  // it answered, too much: a bad answer, not an outage
    return Status::Internal("bad response: larger than " + std::to_string(body_limit) +
                            " bytes for " + std::to_string(options_.batch_size) + " embeddings");
  }
  if (result) {
    std::string m = stage;
    m += ": ";
    m += result.message();
    return Status::IOError(std::move(m));
  }
  *status = parser.get().result_int();
  *response = std::move(parser.get().body());
  return Status::Ok();
}

}  // namespace playbook::server

#include "playbook/server/metrics.h"

#include <cstdio>

#include "playbook/server/jsonrpc.h"

namespace playbook::server {
namespace {

void AppendF(std::string& out, const char* fmt, auto... args) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n > 0) out.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

// Label values are method names we registered ([a-z.]) or "unknown"; escape anyway.
std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out;
}

}  // namespace

Metrics::Metrics() { RegisterMethod("unknown"); }

Metrics::Outcome Metrics::OutcomeOfCode(int code) {
  switch (code) {
    case 0: return kOk;
    case ErrorCode::kParseError: return kParseError;
    case ErrorCode::kInvalidRequest: return kInvalidRequest;
    case ErrorCode::kMethodNotFound: return kMethodNotFound;
    case ErrorCode::kInvalidParams: return kInvalidParams;
    case ErrorCode::kUnauthorized: return kUnauthorized;
    case ErrorCode::kNotFound: return kNotFound;
    case ErrorCode::kOverloaded: return kOverloaded;
    default: return kInternalError;
  }
}

const char* Metrics::OutcomeName(Outcome outcome) {
  switch (outcome) {
    case kOk: return "ok";
    case kParseError: return "parse_error";
    case kInvalidRequest: return "invalid_request";
    case kMethodNotFound: return "method_not_found";
    case kInvalidParams: return "invalid_params";
    case kInternalError: return "internal_error";
    case kUnauthorized: return "unauthorized";
    case kNotFound: return "not_found";
    case kOverloaded: return "overloaded";
    case kOutcomeCount: break;
  }
  return "other";
}

int Metrics::RegisterMethod(std::string_view name) {
  for (size_t i = 0; i < methods_.size(); ++i) {
    if (methods_[i].name == name) return static_cast<int>(i);
  }
  methods_.emplace_back();
  methods_.back().name = std::string(name);
  return static_cast<int>(methods_.size() - 1);
}

int Metrics::MethodSlot(std::string_view name) const {
  for (size_t i = 1; i < methods_.size(); ++i) {
    if (methods_[i].name == name) return static_cast<int>(i);
  }
  return kUnknownSlot;
}

void Metrics::RecordRequest(int slot, Outcome outcome, std::chrono::nanoseconds latency) {
  if (slot < 0 || static_cast<size_t>(slot) >= methods_.size()) slot = kUnknownSlot;
  MethodSlotData& m = methods_[static_cast<size_t>(slot)];
  m.outcomes[outcome].fetch_add(1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(latency).count();
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  m.buckets[b].fetch_add(1, std::memory_order_relaxed);  // cumulated when rendered
  m.latency_ns_sum.fetch_add(static_cast<uint64_t>(latency.count()), std::memory_order_relaxed);
}

void Metrics::HttpResponse(int status) {
  if (status >= 200 && status < 300) http_2xx_++;
  else if (status == 401) http_401_++;
  else if (status == 404) http_404_++;
  else if (status >= 400 && status < 500) http_4xx_++;
  else if (status >= 500) http_5xx_++;
}

std::map<std::string, uint64_t> Metrics::RequestsByMethod() const {
  std::map<std::string, uint64_t> out;
  for (const auto& m : methods_) {
    uint64_t n = 0;
    for (const auto& o : m.outcomes) n += o.load(std::memory_order_relaxed);
    out[m.name] = n;
  }
  return out;
}

std::map<std::string, std::map<std::string, uint64_t>> Metrics::OutcomesByMethod() const {
  std::map<std::string, std::map<std::string, uint64_t>> out;
  for (const auto& m : methods_) {
    for (int o = 0; o < kOutcomeCount; ++o) {
      uint64_t n = m.outcomes[static_cast<size_t>(o)].load(std::memory_order_relaxed);
      if (n > 0) out[m.name][OutcomeName(static_cast<Outcome>(o))] = n;
    }
  }
  return out;
}

std::string Metrics::RenderPrometheus(double uptime_seconds, std::string_view version) const {
  std::string out;
  out.reserve(8192);
  out += "# HELP playbook_build_info Build of the running daemon.\n# TYPE playbook_build_info gauge\n";
  out += "playbook_build_info{version=\"" + LabelValue(version) + "\"} 1\n";
  out += "# HELP playbook_uptime_seconds Seconds since the daemon started.\n# TYPE playbook_uptime_seconds gauge\n";
  AppendF(out, "playbook_uptime_seconds %.3f\n", uptime_seconds);

  out += "# HELP playbook_requests_total JSON-RPC requests by method and outcome.\n# TYPE playbook_requests_total counter\n";
  for (const auto& m : methods_) {
    for (int o = 0; o < kOutcomeCount; ++o) {
      uint64_t n = m.outcomes[static_cast<size_t>(o)].load(std::memory_order_relaxed);
      // Every registered method shows its ok line (0 included) so dashboards see it.
      if (n == 0 && o != kOk) continue;
      out += "playbook_requests_total{method=\"" + LabelValue(m.name) + "\",outcome=\"" +
             OutcomeName(static_cast<Outcome>(o)) + "\"} " + std::to_string(n) + "\n";
    }
  }

  out += "# HELP playbook_request_duration_seconds Time from a request's arrival to its response, by method.\n";
  out += "# TYPE playbook_request_duration_seconds histogram\n";
  for (const auto& m : methods_) {
    const std::string label = "method=\"" + LabelValue(m.name) + "\"";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += m.buckets[b].load(std::memory_order_relaxed);
      AppendF(out, "playbook_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n", label.c_str(),
              kBuckets[b], static_cast<unsigned long long>(cumulative));
    }
    cumulative += m.buckets[kBuckets.size()].load(std::memory_order_relaxed);
    AppendF(out, "playbook_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n", label.c_str(),
            static_cast<unsigned long long>(cumulative));
    AppendF(out, "playbook_request_duration_seconds_sum{%s} %.9f\n", label.c_str(),
            static_cast<double>(m.latency_ns_sum.load(std::memory_order_relaxed)) / 1e9);
    AppendF(out, "playbook_request_duration_seconds_count{%s} %llu\n", label.c_str(),
            static_cast<unsigned long long>(cumulative));
  }

  out += "# HELP playbook_connections_open Open TCP connections (HTTP and WebSocket).\n# TYPE playbook_connections_open gauge\n";
  out += "playbook_connections_open " + std::to_string(open_connections_.load()) + "\n";
  out += "# HELP playbook_websockets_open Open WebSocket sessions.\n# TYPE playbook_websockets_open gauge\n";
  out += "playbook_websockets_open " + std::to_string(open_websockets_.load()) + "\n";
  out += "# HELP playbook_connections_total TCP connections accepted.\n# TYPE playbook_connections_total counter\n";
  out += "playbook_connections_total " + std::to_string(connections_total_.load()) + "\n";
  out += "# HELP playbook_frames_too_big_total WebSocket messages over max_frame_bytes (connection closed with 1009).\n";
  out += "# TYPE playbook_frames_too_big_total counter\n";
  out += "playbook_frames_too_big_total " + std::to_string(frames_too_big_.load()) + "\n";
  out += "# HELP playbook_auth_refused_total WebSocket upgrades refused for a missing or unknown token.\n";
  out += "# TYPE playbook_auth_refused_total counter\n";
  out += "playbook_auth_refused_total " + std::to_string(auth_refused_.load()) + "\n";
  out += "# HELP playbook_http_responses_total Plain HTTP responses by status.\n# TYPE playbook_http_responses_total counter\n";
  out += "playbook_http_responses_total{code=\"2xx\"} " + std::to_string(http_2xx_.load()) + "\n";
  out += "playbook_http_responses_total{code=\"401\"} " + std::to_string(http_401_.load()) + "\n";
  out += "playbook_http_responses_total{code=\"404\"} " + std::to_string(http_404_.load()) + "\n";
  out += "playbook_http_responses_total{code=\"4xx\"} " + std::to_string(http_4xx_.load()) + "\n";
  out += "playbook_http_responses_total{code=\"5xx\"} " + std::to_string(http_5xx_.load()) + "\n";
  for (const auto& render : sources_) render(&out);
  return out;
}

}  // namespace playbook::server

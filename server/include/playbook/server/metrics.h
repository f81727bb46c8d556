// The daemon's counters, rendered in the Prometheus text exposition format
// for GET /metrics and summarised for server.stats.
//
// Methods are registered before serving (RegisterMethod is not thread-safe);
// everything else is lock-free and may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace playbook::server {

class Metrics {
 public:
  // How a request ended; one label value each.
  enum Outcome : int {
    kOk = 0,
    kParseError,
    kInvalidRequest,
    kMethodNotFound,
    kInvalidParams,
    kInternalError,
    kUnauthorized,
    kNotFound,
    kOverloaded,
    kOutcomeCount
  };
  // The outcome of a JSON-RPC error code (0 = ok).
  static Outcome OutcomeOfCode(int code);
  static const char* OutcomeName(Outcome outcome);

  // Upper bounds, in seconds, of the latency histogram buckets (+Inf implied).
  static constexpr std::array<double, 16> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

  Metrics();

  // Returns the slot of a method name; requests whose method is not
  // registered (or that have none) count under the slot "unknown".
  // REQUIRES: called before serving starts.
  int RegisterMethod(std::string_view name);
  // The slot of a registered method, or the "unknown" slot.
  int MethodSlot(std::string_view name) const;
  static constexpr int kUnknownSlot = 0;

  void RecordRequest(int slot, Outcome outcome, std::chrono::nanoseconds latency);

  void ConnectionOpened() { open_connections_++; connections_total_++; }
  void ConnectionClosed() { open_connections_--; }
  void WebSocketOpened() { open_websockets_++; }
  void WebSocketClosed() { open_websockets_--; }
  void FrameTooBig() { frames_too_big_++; }
  void AuthRefused() { auth_refused_++; }
  void HttpResponse(int status);

  int64_t open_connections() const { return open_connections_.load(); }
  int64_t open_websockets() const { return open_websockets_.load(); }
  uint64_t connections_total() const { return connections_total_.load(); }
  // Requests per registered method (unknown included), all outcomes.
  std::map<std::string, uint64_t> RequestsByMethod() const;
  // method -> outcome name -> count, non-zero entries only.
  std::map<std::string, std::map<std::string, uint64_t>> OutcomesByMethod() const;

  // Metrics kept elsewhere (e.g. the remote embedder's): `render` appends
  // complete exposition lines (HELP, TYPE, samples) to its argument, from any
  // thread. REQUIRES: called before serving starts.
  void AddSource(std::function<void(std::string*)> render) { sources_.push_back(std::move(render)); }

  // The Prometheus text exposition (version 0.0.4). `uptime_seconds` and
  // `version` are the caller's.
  std::string RenderPrometheus(double uptime_seconds, std::string_view version) const;

 private:
  struct MethodSlotData {
    std::string name;
    std::array<std::atomic<uint64_t>, kOutcomeCount> outcomes{};
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};  // last = +Inf
    std::atomic<uint64_t> latency_ns_sum{0};
  };

  std::deque<MethodSlotData> methods_;  // stable addresses; index = slot
  std::vector<std::function<void(std::string*)>> sources_;  // AddSource
  std::atomic<int64_t> open_connections_{0};
  std::atomic<int64_t> open_websockets_{0};
  std::atomic<uint64_t> connections_total_{0};
  std::atomic<uint64_t> frames_too_big_{0};
  std::atomic<uint64_t> auth_refused_{0};
  // HTTP responses by status class: 2xx, 4xx (401 apart), 5xx.
  std::atomic<uint64_t> http_2xx_{0}, http_401_{0}, http_404_{0}, http_4xx_{0}, http_5xx_{0};
};

}  // namespace playbook::server

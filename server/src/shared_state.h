// What every connection of the server shares: the dispatcher, metrics, auth,
// the worker pool and the registry of open WebSocket sessions (the
// "shared_state" of Beast's chat-multi example). Private to server/.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "playbook/engine/engine.h"
#include "playbook/server/auth.h"
#include "playbook/server/config.h"
#include "playbook/server/dispatch.h"
#include "playbook/server/metrics.h"

namespace boost::asio::ssl {
class context;
}

namespace playbook::server {

class WsSession;

class SharedState {
 public:
  SharedState(const Config& config, Engine* engine, boost::asio::io_context& workers)
      : config(config), engine(engine), auth(config.tokens), dispatcher(&metrics),
        workers_(workers) {}

  const Config& config;
  Engine* const engine;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  Metrics metrics;  // before dispatcher, which registers its methods here
  TokenAuth auth;  // replaced on SIGHUP (server.cpp)
  Dispatcher dispatcher;
  // With [server.tls]: the server's TLS context (owned by the Server); null = plain.
  boost::asio::ssl::context* tls = nullptr;

  // True once a graceful stop began: no new work is accepted.
  std::atomic<bool> draining{false};
  // False while the engine is still opening (the daemon listens at once):
  // JSON-RPC requests are answered -32003 "starting", /healthz 503 "starting".
  // The methods are registered before listening; a request reaches them only
  // once this is true (acquire), after the engine's Init returned.
  std::atomic<bool> serving{true};

  uint64_t NextConnectionId() { return next_connection_id_.fetch_add(1); }

  // Takes a place in the worker queue; false when max_queued_requests are
  // already queued or running, or max_queued_bytes are held (the caller
  // answers overloaded).
  bool TryEnqueue(uint64_t bytes) {
    if (queued_bytes_.load(std::memory_order_relaxed) + bytes > config.server.max_queued_bytes) {
      return false;
    }
    uint32_t n = queued_.load(std::memory_order_relaxed);
    do {
      if (n >= config.server.max_queued_requests) return false;
    } while (!queued_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    queued_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return true;
  }
  // Bytes held for a frame or a response until it is written; TryEnqueue
  // takes the frame's, the session gives them back with ReleaseBytes.
  void HoldBytes(uint64_t n) { queued_bytes_.fetch_add(n, std::memory_order_relaxed); }
  void ReleaseBytes(uint64_t n) { queued_bytes_.fetch_sub(n, std::memory_order_relaxed); }
  uint64_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  // Runs `fn(release)` on a worker. REQUIRES: TryEnqueue returned true. fn
  // calls release() once its work is done and before it hands the answer to
  // the network thread: a client that sends its next request on receiving an
  // answer must find the place free. Post releases it after fn when fn did
  // not (and when fn threw).
  template <class Fn>
  void Post(Fn&& fn) {
    boost::asio::post(workers_, [this, fn = std::forward<Fn>(fn)]() mutable {
      bool released = false;
      auto release = [this, &released] {
        if (released) return;
        released = true;
        queued_.fetch_sub(1, std::memory_order_relaxed);
      };
      try {
        fn(release);
      } catch (...) {
        // HandleFrame answers what it can; this is the last line (bad_alloc
        // while posting the answer). The worker thread goes on.
        spdlog::error("a worker task threw; its frame is not answered");
      }
      release();
    });
  }
  uint32_t queued() const { return queued_.load(std::memory_order_relaxed); }

  void AddSession(uint64_t id, std::weak_ptr<WsSession> s) {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    sessions_.emplace(id, std::move(s));
  }
  void RemoveSession(uint64_t id) {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    sessions_.erase(id);
  }
  // Snapshot of the live sessions.
  std::vector<std::shared_ptr<WsSession>> Sessions() {
    std::vector<std::shared_ptr<WsSession>> out;
    std::lock_guard<std::mutex> lock(sessions_mu_);
    for (auto& [id, w] : sessions_) {
      if (auto s = w.lock()) out.push_back(std::move(s));
    }
    return out;
  }

 private:
  boost::asio::io_context& workers_;
  std::atomic<uint32_t> queued_{0};
  std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> next_connection_id_{1};
  std::mutex sessions_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<WsSession>> sessions_;
};

}  // namespace playbook::server

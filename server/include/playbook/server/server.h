// The daemon's network server: one TCP port serving plain HTTP (/healthz,
// /metrics) and the JSON-RPC WebSocket endpoint (/v1), network threads that
// never run slow work, and a worker pool that runs the requests.
//
// Lifecycle: construct, Start (binds), Run (blocks until SIGTERM/SIGINT or
// Shutdown, then drains in-flight requests, closes connections and returns).
// The engine may still be opening when Start is called (see Start).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "playbook/engine/engine.h"
#include "playbook/engine/status.h"
#include "playbook/server/config.h"

namespace playbook::server {

// Worker threads the server runs: server.worker_threads, or one per core when 0.
uint32_t WorkerThreads(const ServerOptions& options);

class Server {
 public:
  // `engine` must outlive the server.
  Server(Config config, Engine* engine);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on config.server.bind:port. IOError when the address
  // cannot be bound (in use, not local, ...). With engine_open false the
  // engine is still opening (Engine::Create, Init on another thread): until
  // EngineOpened, /healthz answers 503 "starting" and every JSON-RPC request
  // -32003 with reason "starting"; /metrics answers.
  Status Start(bool engine_open = true);
  // Adds lines to GET /metrics (Metrics::AddSource). REQUIRES: before Start.
  void AddMetrics(std::function<void(std::string*)> render);
  // The engine's Init returned OK: requests are served from now on. Any thread.
  void EngineOpened();

  // Runs one JSON-RPC frame in this process, as an admin caller whose audit lines name
  // `caller`, and returns the frame the dispatcher answers: the daemon's own requests
  // (playbookd --load-sample), through the same methods and checks as a client's. Any
  // thread after Start; also before EngineOpened, once the engine's Init returned OK.
  std::optional<std::string> HandleLocalFrame(std::string_view frame, const std::string& caller) const;
  // The port actually bound (the configured one, or the one the OS chose for 0).
  // REQUIRES: Start succeeded.
  uint16_t port() const;

  // Serves until SIGTERM/SIGINT or Shutdown(); then stops accepting, lets
  // in-flight requests finish for up to shutdown_grace_ms, closes every
  // connection (WebSocket close 1001) and returns. Call once.
  void Run();

  // Starts the graceful stop from any thread. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace playbook::server

// The method table and the dispatch of one frame: JSON text in, JSON text
// out. A pure function of the frame, the caller's role and the handlers; no
// sockets, so it is tested without a network.
//
// Thread safety: Add before serving; HandleFrame and RejectFrame may then run
// concurrently on any threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/engine/status.h"
#include "playbook/server/config.h"
#include "playbook/server/jsonrpc.h"

namespace playbook::server {

class Metrics;

// What a handler knows about its caller.
struct CallContext {
  Role role = Role::kAdmin;
  uint64_t connection_id = 0;
  // When the frame arrived; latency is measured from here.
  std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();
  // Sends a notification (a json from MakeNotification) to the caller's
  // connection. Callable from any thread at any time, also after the request
  // was answered; a no-op once the connection is gone. May be empty.
  std::function<void(const json& notification)> notify;
};

// A handler validates its params (ParamReader), calls the engine and returns a
// result, or a Status that ErrorFromStatus turns into the error response.
// It may throw; an exception becomes -32603 and is logged.
using Handler = std::function<Result<json>(const json& params, const CallContext& ctx)>;

struct Method {
  std::string name;  // "assets.upsert"
  Role min_role = Role::kAdmin;
  Handler handler;
};

class Dispatcher {
 public:
  // `metrics` may be null; it must outlive the dispatcher.
  explicit Dispatcher(Metrics* metrics = nullptr);

  // Registers a method. REQUIRES: a new name; called before serving.
  void Add(Method method);
  const Method* Find(std::string_view name) const;
  std::vector<std::string> MethodNames() const;

  // Runs every request of a frame and returns the frame to send back: one
  // response, or an array for a batch, or nullopt when nothing is answered
  // (notifications only). Requests of a batch run in order.
  std::optional<std::string> HandleFrame(std::string_view text, const CallContext& ctx) const;

  // Answers every request of the frame with `error` (e.g. overloaded) without
  // running any; malformed parts still get their own -32700/-32600.
  std::optional<std::string> RejectFrame(std::string_view text, const RpcError& error,
                                         const CallContext& ctx) const;

 private:
  // The response to one entry, or nullopt for a notification.
  std::optional<json> Run(const Entry& entry, const CallContext& ctx,
                          const RpcError* reject) const;
  std::optional<std::string> Handle(std::string_view text, const CallContext& ctx,
                                    const RpcError* reject) const;

  struct Slot {
    Method method;
    int metrics_slot = 0;
  };
  std::vector<Slot> methods_;  // few dozen: a linear scan beats hashing
  Metrics* metrics_;
};

}  // namespace playbook::server

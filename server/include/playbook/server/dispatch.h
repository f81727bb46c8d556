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
  // The name of the token the connection authenticated with ("-" in open
  // mode), for the audit lines; never the token itself.
  std::string token_name = "-";
  uint64_t connection_id = 0;
  // When the frame arrived; latency is measured from here.
  std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();
  // Sends a frame (a notification from MakeNotification, or a deferred
  // response) to the caller's connection. Callable from any thread at any
  // time, also after the request was answered; a no-op once the connection is
  // gone. May be empty.
  std::function<void(const json& notification)> notify;
  // Set by the dispatcher for each request: its id, and whether the handler may
  // answer later (a request with an id, alone in its frame, with notify set).
  json id;
  bool can_defer = false;
};

// What a handler returns when it answers later (ctx.can_defer): no response is
// sent now; the handler, or the background job it started, sends
// MakeResult(ctx.id, ...) or MakeError(ctx.id, ...) through ctx.notify exactly once.
inline json Deferred() { return json(json::value_t::discarded); }

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
  // (notifications only, or a deferred response). Requests of a batch run in
  // order. Never throws: anything thrown below is answered -32603. A response
  // over max_response_bytes is replaced by -32603 errors for its ids.
  std::optional<std::string> HandleFrame(std::string_view text, const CallContext& ctx) const;

  // Answers every request of the frame with `error` (e.g. overloaded) without
  // running any or parsing the frame (RejectFrameText), and counts it once
  // under "unknown". Never throws.
  std::optional<std::string> RejectFrame(std::string_view text, const RpcError& error,
                                         const CallContext& ctx) const;

  // The largest response frame sent (server.max_response_bytes).
  void set_max_response_bytes(size_t n) { max_response_bytes_ = n; }

 private:
  // The response to one entry, or nullopt for a notification.
  // `alone`: the entry is the whole frame (not part of a batch).
  std::optional<json> Run(const Entry& entry, const CallContext& ctx, bool alone) const;
  std::optional<std::string> Handle(std::string_view text, const CallContext& ctx) const;

  struct Slot {
    Method method;
    int metrics_slot = 0;
    // A write method: each call gets an audit line (dispatch.cpp's kWrites
    // table); `count` names the params array whose size the line gives.
    bool writes = false;
    std::string_view count;
  };
  void Audit(const Slot& slot, const json& params, const CallContext& ctx,
             const std::optional<RpcError>& error, bool deferred) const;
  std::vector<Slot> methods_;  // few dozen: a linear scan beats hashing
  Metrics* metrics_;
  size_t max_response_bytes_ = SIZE_MAX;
};

}  // namespace playbook::server

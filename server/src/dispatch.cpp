#include "playbook/server/dispatch.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

#include "playbook/server/auth.h"
#include "playbook/server/metrics.h"

namespace playbook::server {
namespace {

std::string IdText(const json& id) { return Serialize(id); }

// The write methods, audited in the log (one info line per call: who, what,
// how many; never a secret or any content), and the params array each one
// counts. A new method that changes data belongs here.
struct WriteMethod {
  std::string_view method;
  std::string_view count;  // params member whose array size is logged; "" for none
};
constexpr WriteMethod kWrites[] = {
    {"assets.upsert", "assets"},    {"assets.delete", "ids"},  {"feedback.record", "events"},
    {"index.rebuild", ""},          {"aggregates.rebuild", ""}, {"server.backup", ""},
};

}  // namespace

Dispatcher::Dispatcher(Metrics* metrics) : metrics_(metrics) {}

void Dispatcher::Add(Method method) {
  if (Find(method.name) != nullptr) throw std::logic_error("method registered twice: " + method.name);
  Slot slot;
  slot.metrics_slot = metrics_ ? metrics_->RegisterMethod(method.name) : 0;
  for (const WriteMethod& w : kWrites) {
    if (w.method == method.name) {
      slot.writes = true;
      slot.count = w.count;
    }
  }
  slot.method = std::move(method);
  methods_.push_back(std::move(slot));
}

const Method* Dispatcher::Find(std::string_view name) const {
  for (const Slot& s : methods_) {
    if (s.method.name == name) return &s.method;
  }
  return nullptr;
}

std::vector<std::string> Dispatcher::MethodNames() const {
  std::vector<std::string> names;
  for (const Slot& s : methods_) names.push_back(s.method.name);
  return names;
}

std::optional<json> Dispatcher::Run(const Entry& entry, const CallContext& frame_ctx,
                                    bool alone) const {
  CallContext ctx = frame_ctx;
  ctx.id = entry.id;
  ctx.can_defer = alone && entry.has_id && ctx.notify != nullptr;
  const Slot* slot = nullptr;
  for (const Slot& s : methods_) {
    if (!entry.error && s.method.name == entry.method) slot = &s;
  }
  std::optional<RpcError> error = entry.error;
  json result;
  bool deferred = false;
  bool audited = false;
  if (!error) {
    if (slot == nullptr) {
      error = RpcError{kMethodNotFound, "Method not found: " + entry.method, "method",
                       "no method '" + entry.method + "'"};
    } else if (!RoleAllows(ctx.role, slot->method.min_role)) {
      error = RpcError{kUnauthorized,
                       std::string("Unauthorized: role '") + RoleName(ctx.role) +
                           "' may not call " + entry.method,
                       "method",
                       std::string("requires role '") + RoleName(slot->method.min_role) + "'"};
    } else if (!entry.params.is_object()) {
      error = RpcError{kInvalidParams, "Invalid params: params: expected an object", "params",
                       "methods take named params (an object)"};
    } else {
      audited = slot->writes;
      try {
        Result<json> r = slot->method.handler(entry.params, ctx);
        if (r.ok() && r.value().is_discarded()) {
          if (!ctx.can_defer) throw std::logic_error(entry.method + " deferred a request it may not");
          deferred = true;  // answered later through ctx.notify
        } else if (r.ok()) {
          result = std::move(r).value();
        } else {
          error = ErrorFromStatus(r.status());
          if (error->code == kInternalError) {
            spdlog::error("conn={} method={} id={}: {}", ctx.connection_id, entry.method,
                          IdText(entry.id), r.status().ToString());
          }
        }
      } catch (const std::exception& e) {
        spdlog::error("conn={} method={} id={}: exception: {}", ctx.connection_id, entry.method,
                      IdText(entry.id), e.what());
        error = RpcError{kInternalError, std::string("Internal error: ") + e.what(), "", e.what()};
      } catch (...) {
        spdlog::error("conn={} method={} id={}: unknown exception", ctx.connection_id, entry.method,
                      IdText(entry.id));
        error = RpcError{kInternalError, "Internal error: unknown exception", "", "unknown exception"};
      }
    }
  }

  if (audited) Audit(*slot, entry.params, ctx, error, deferred);
  const auto latency = std::chrono::steady_clock::now() - ctx.received;
  if (metrics_ != nullptr) {
    metrics_->RecordRequest(slot ? slot->metrics_slot : Metrics::kUnknownSlot,
                            Metrics::OutcomeOfCode(error ? error->code : 0), latency);
  }
  if (error && error->code != kInternalError) {
    spdlog::info("conn={} method={} id={} error={} {}", ctx.connection_id,
                 entry.method.empty() ? "-" : entry.method, entry.has_id ? IdText(entry.id) : "-",
                 error->code, error->message);
  } else if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("conn={} method={} id={} ok in {} us", ctx.connection_id, entry.method,
                  entry.has_id ? IdText(entry.id) : "-",
                  std::chrono::duration_cast<std::chrono::microseconds>(latency).count());
  }

  if (deferred) return std::nullopt;
  // Notifications are never answered, but a malformed entry is (with id null
  // when it has no usable id).
  if (!entry.has_id && !entry.error) return std::nullopt;
  // entry.id is null when absent or unusable.
  if (error) return MakeError(entry.id, *error);
  return MakeResult(entry.id, std::move(result));
}

// "audit conn=12 role=marketing token=cms-sync method=assets.upsert assets=120 result=ok"
void Dispatcher::Audit(const Slot& slot, const json& params, const CallContext& ctx,
                       const std::optional<RpcError>& error, bool deferred) const {
  std::string counts;
  if (!slot.count.empty()) {
    const auto it = params.find(slot.count);
    if (it != params.end() && it->is_array()) counts = fmt::format(" {}={}", slot.count, it->size());
  }
  const std::string result = error ? fmt::format("error:{}", error->code) : (deferred ? "accepted" : "ok");
  spdlog::info("audit conn={} role={} token={} method={}{} result={}", ctx.connection_id,
               RoleName(ctx.role), ctx.token_name, slot.method.name, counts, result);
}

std::optional<std::string> Dispatcher::Handle(std::string_view text, const CallContext& ctx) const {
  Frame frame = ParseFrame(text);
  if (frame.error) {
    if (metrics_ != nullptr) {
      metrics_->RecordRequest(Metrics::kUnknownSlot, Metrics::OutcomeOfCode(frame.error->code),
                              std::chrono::steady_clock::now() - ctx.received);
    }
    spdlog::info("conn={} error={} {}", ctx.connection_id, frame.error->code, frame.error->message);
    return Serialize(MakeError(json(), *frame.error));
  }
  if (!frame.is_batch) {
    std::optional<json> r = Run(frame.entries.front(), ctx, /*alone=*/true);
    if (!r) return std::nullopt;
    return Serialize(*r);
  }
  json out = json::array();
  for (const Entry& e : frame.entries) {
    if (std::optional<json> r = Run(e, ctx, /*alone=*/false)) out.push_back(std::move(*r));
  }
  if (out.empty()) return std::nullopt;  // a batch of notifications only
  return Serialize(out);
}

std::optional<std::string> Dispatcher::HandleFrame(std::string_view text,
                                                   const CallContext& ctx) const {
  // The boundary: whatever a parser, a handler or the serialiser throws
  // (bad_alloc included) becomes a -32603 answer; the thread goes on.
  try {
    std::optional<std::string> out = Handle(text, ctx);
    if (out && out->size() > max_response_bytes_) {
      spdlog::warn("conn={} response of {} bytes over server.max_response_bytes ({}): answered -32603",
                   ctx.connection_id, out->size(), max_response_bytes_);
      return RejectFrameText(
          text, RpcError{kInternalError,
                         "Internal error: response too large: " + std::to_string(out->size()) +
                             " bytes, over server.max_response_bytes (" +
                             std::to_string(max_response_bytes_) + "); ask for less (limit, with_vectors, fewer ids)",
                         "", "response too large"});
    }
    return out;
  } catch (const std::exception& e) {
    spdlog::error("conn={} frame failed: {}", ctx.connection_id, e.what());
  } catch (...) {
    spdlog::error("conn={} frame failed: unknown exception", ctx.connection_id);
  }
  try {
    return RejectFrameText(text, RpcError{kInternalError, "Internal error", "", "the frame could not be answered"});
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::string> Dispatcher::RejectFrame(std::string_view text, const RpcError& error,
                                                   const CallContext& ctx) const {
  if (metrics_ != nullptr) {
    metrics_->RecordRequest(Metrics::kUnknownSlot, Metrics::OutcomeOfCode(error.code),
                            std::chrono::steady_clock::now() - ctx.received);
  }
  try {
    return RejectFrameText(text, error);
  } catch (...) {  // bad_alloc: nothing to answer with
    return std::nullopt;
  }
}

}  // namespace playbook::server

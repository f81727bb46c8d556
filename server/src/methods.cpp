// Handlers of the server.* and debug.* methods.
#include "playbook/server/methods.h"

#include <thread>

#include "playbook/server/metrics.h"
#include "playbook/server/requests.h"
#include "playbook/server/version.h"

namespace playbook::server {

void AddServerMethods(Dispatcher& dispatcher, StatsSource stats) {
  dispatcher.Add({"server.stats", Role::kAdmin,
                  [stats](const json& params, const CallContext&) -> Result<json> {
                    if (Status s = ParseNoParams(params); !s.ok()) return s;
                    const auto uptime = std::chrono::steady_clock::now() - stats.started;
                    json requests = json::object();
                    for (const auto& [method, n] : stats.metrics->RequestsByMethod()) {
                      requests[method] = n;
                    }
                    json outcomes = json::object();
                    for (const auto& [method, by] : stats.metrics->OutcomesByMethod()) {
                      outcomes[method] = by;
                    }
                    return json{
                        {"version", BuildVersion()},
                        {"uptime_ms",
                         std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count()},
                        {"connections",
                         {{"open", stats.metrics->open_connections()},
                          {"websockets", stats.metrics->open_websockets()},
                          {"total", stats.metrics->connections_total()}}},
                        {"requests", std::move(requests)},
                        {"outcomes", std::move(outcomes)},
                        {"workers", stats.workers ? stats.workers() : json::object()},
                    };
                  }});
}

void AddDebugMethods(Dispatcher& dispatcher) {
  // debug.sleep {"ms": 0..60000, "notify": 0..100}: occupies a worker for ms,
  // sending `notify` debug.progress notifications along the way.
  dispatcher.Add({"debug.sleep", Role::kAdmin,
                  [](const json& params, const CallContext& ctx) -> Result<json> {
                    auto req = ParseDebugSleep(params);
                    if (!req.ok()) return req.status();
                    const int64_t ms = req.value().ms, notify = req.value().notify;
                    const int64_t steps = std::max<int64_t>(notify, 1);
                    for (int64_t i = 1; i <= steps; ++i) {
                      std::this_thread::sleep_for(std::chrono::milliseconds(ms / steps));
                      if (notify > 0 && ctx.notify) {
                        ctx.notify(MakeNotification("debug.progress", {{"done", i}, {"total", notify}}));
                      }
                    }
                    return json{{"slept_ms", ms}};
                  }});
  // debug.fail {"code": "...", "field"?}: answers with the error of that engine code.
  dispatcher.Add({"debug.fail", Role::kAdmin,
                  [](const json& params, const CallContext&) -> Result<json> {
                    auto req = ParseDebugFail(params);
                    if (!req.ok()) return req.status();
                    const std::string& code = req.value().code;
                    const std::string& field = req.value().field;
                    if (code == "invalid_argument") return Status::InvalidArgument(field, "debug.fail");
                    if (code == "not_found") return Status::NotFound("debug.fail");
                    if (code == "overloaded") return Status::Overloaded("debug.fail");
                    if (code == "unauthorized") return Status::Unauthorized("debug.fail");
                    if (code == "internal") return Status::Internal("debug.fail");
                    if (code == "throw") throw std::runtime_error("debug.fail threw");
                    return Status::InvalidArgument(
                        "code",
                        "unknown code '" + code +
                            "'; one of invalid_argument, not_found, overloaded, unauthorized, "
                            "internal, throw");
                  }});
}

}  // namespace playbook::server

// The method table, one group per file of handlers. Each Add* registers its
// methods with the role they require; docs/protocol.md lists them all.
#pragma once

#include <chrono>
#include <functional>

#include "playbook/server/dispatch.h"

namespace playbook {
class Engine;
}

namespace playbook::server {

class Jobs;  // server/src/jobs.h
class Metrics;

// What server.stats reports beyond the metrics.
struct StatsSource {
  const Metrics* metrics = nullptr;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // {"queued": n, "max_queued": m, "workers": w}: the worker pool right now.
  std::function<json()> workers;
};

// server.stats (admin).
void AddServerMethods(Dispatcher& dispatcher, StatsSource stats);

// assets.upsert, assets.get (crm), assets.delete, assets.list (marketing),
// index.status, index.rebuild (admin). `engine` must outlive the dispatcher.
void AddCatalogMethods(Dispatcher& dispatcher, Engine& engine);

// recommend, feedback.record, leads.get (crm).
void AddFeedbackMethods(Dispatcher& dispatcher, Engine& engine);

// reports.* (marketing) and aggregates.rebuild (admin), which runs as a job of `jobs`.
void AddReportMethods(Dispatcher& dispatcher, Engine& engine, Jobs& jobs);

// server.backup (admin): a consistent online backup into a new directory.
void AddBackupMethods(Dispatcher& dispatcher, Engine& engine);

// debug.sleep and debug.fail (admin), for tests: only when [debug] test_methods.
void AddDebugMethods(Dispatcher& dispatcher);

}  // namespace playbook::server

// playbook-bench-reports: report latency over a long history, through the
// engine API on a real RocksDB. Records N feedback events (random leads, reps,
// stages, assets, spread over D days) in synced batches, then times the
// reports over the whole window and with filters.
//
//   build/bin/playbook-bench-reports [--events 1000000] [--assets 10000] [--days 90] [--dir /tmp/pb-bench-reports]
//   build/bin/playbook-bench-reports --open-only --dir DIR   (times opening what a run left)
//   build/bin/playbook-bench-reports --no-ingest --dir DIR   (reports and rebuilds over what a run left)
// With PB_BENCH_SLOW set, feedback calls over 100 ms during the rebuilds are
// printed with their start time, and so are the start and end of the write phase.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "playbook/engine/engine.h"

namespace {
using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a) { return std::chrono::duration<double, std::milli>(Clock::now() - a).count(); }
std::string Name(const char* prefix, uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}
double RssMiB() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double kib = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "VmRSS: %lf kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib / 1024;
}
}  // namespace

int main(int argc, char** argv) {
  size_t events = 1000000, assets = 10000, days = 90;
  std::string dir = "/tmp/pb-bench-reports";
  bool open_only = false;  // time opening an existing --dir, nothing else
  bool reuse = false;      // --no-ingest: report over what an earlier run left in --dir
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--open-only" || a == "--no-ingest") {
      (a == "--open-only" ? open_only : reuse) = true;
      continue;
    }
    if (i + 1 >= argc) break;
    const char* v = argv[++i];
    if (a == "--events") events = std::strtoul(v, nullptr, 10);
    else if (a == "--assets") assets = std::strtoul(v, nullptr, 10);
    else if (a == "--days") days = std::strtoul(v, nullptr, 10);
    else if (a == "--dir") dir = v;
  }
  playbook::EngineOptions o;
  o.data_dir = dir;
  o.dimension = 8;
  o.index.kind = "exact";
  if (open_only) {
    auto t = Clock::now();
    auto e = playbook::Engine::Open(o, nullptr);
    if (!e.ok()) {
      std::fprintf(stderr, "%s\n", e.status().ToString().c_str());
      return 1;
    }
    std::printf("open: %.2f s, RSS %.0f MiB\n", Ms(t) / 1000, RssMiB());
    return 0;
  }
  if (!reuse) std::filesystem::remove_all(dir);
  auto opened = playbook::Engine::Open(o, nullptr);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto engine = std::move(opened).value();
  std::mt19937_64 rng(11);
  for (size_t from = 0; from < assets && !reuse; from += 5000) {
    std::vector<playbook::Asset> batch;
    for (size_t i = from; i < std::min(assets, from + 5000); ++i) {
      playbook::Asset a;
      a.id = "a" + std::to_string(i);
      a.title = "asset " + std::to_string(i);
      a.type = i % 2 ? "case_study" : "objection_script";
      a.stages = {o.stages[i % 5]};
      a.vector.assign(8, 0.f);
      a.vector[i % 8] = 1.f;
      batch.push_back(std::move(a));
    }
    (void)engine->UpsertAssets(std::move(batch));
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const int64_t span = int64_t(days) * 86400000;
  const playbook::EventType kinds[] = {playbook::EventType::kShown, playbook::EventType::kShown, playbook::EventType::kShown,
                                       playbook::EventType::kUsed,  playbook::EventType::kViewed, playbook::EventType::kDismissed,
                                       playbook::EventType::kStageChanged, playbook::EventType::kWon, playbook::EventType::kLost};
  auto t0 = Clock::now();
  size_t sent = 0;
  for (size_t from = 0; from < events && !reuse; from += 1000) {
    std::vector<playbook::Event> batch;
    for (size_t i = from; i < std::min(events, from + 1000); ++i) {
      playbook::Event e;
      e.event_id = "e" + std::to_string(i);
      e.type = kinds[rng() % 9];
      e.lead_id = "lead" + std::to_string(rng() % (events / 20 + 1));
      e.rep_id = "rep" + std::to_string(rng() % 50);
      e.ts = now - span + int64_t(rng() % uint64_t(span));
      if (e.type == playbook::EventType::kStageChanged) {
        e.stage = o.stages[rng() % 5];
      } else if (e.type == playbook::EventType::kShown) {
        e.stage = o.stages[rng() % 5];
        e.asset_id = "a" + std::to_string(rng() % assets);
      } else if (e.type != playbook::EventType::kWon && e.type != playbook::EventType::kLost) {
        e.asset_id = "a" + std::to_string(rng() % assets);
      } else if (e.type == playbook::EventType::kWon) {
        e.amount = double(rng() % 100000);
      }
      if (e.type == playbook::EventType::kDismissed) e.reason = rng() % 2 ? "not relevant" : "客户已经看过";
      batch.push_back(std::move(e));
    }
    auto r = engine->RecordEvents(std::move(batch));
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    sent += r.value().accepted;
  }
  const double ingest_ms = Ms(t0);
  if (!reuse) std::printf("ingest: %zu events over %zu days, %zu assets, in %.1f s (%.0f events/s, synced batches of 1000)\n", sent,
              days, assets, ingest_ms / 1000, double(sent) / (ingest_ms / 1000));
  auto time = [&](const char* name, auto fn) {
    std::vector<double> runs;
    for (int i = 0; i < 7; ++i) {
      auto t = Clock::now();
      fn();
      runs.push_back(Ms(t));
    }
    std::sort(runs.begin(), runs.end());
    std::printf("%-52s median %.1f ms, max %.1f ms\n", name, runs[3], runs.back());
  };
  playbook::ReportQuery all;
  all.from_ms = now - span;
  all.to_ms = now;
  time("reports.assets, 90 days, all assets (limit 100)", [&] { (void)engine->ReportAssets(all); });
  playbook::ReportQuery stage = all;
  stage.stage = "evaluation";
  time("reports.assets, 90 days, stage filter", [&] { (void)engine->ReportAssets(stage); });
  playbook::ReportQuery rep = all;
  rep.rep_id = "rep7";
  time("reports.assets, 90 days, one rep", [&] { (void)engine->ReportAssets(rep); });
  playbook::ReportQuery week = all;
  week.from_ms = now - 7 * 86400000LL;
  time("reports.assets, last 7 days", [&] { (void)engine->ReportAssets(week); });
  time("reports.unused, 90 days", [&] { (void)engine->ReportUnused(all, 10, 0.05); });
  time("reports.dismissals, 90 days", [&] { (void)engine->ReportDismissals(all); });
  time("reports.reps, 90 days", [&] { (void)engine->ReportReps(all); });
  time("reports.funnel, 90 days", [&] { (void)engine->ReportFunnel(all); });
  std::printf("RSS after ingest and reports: %.0f MiB\n", RssMiB());
  // Re-aggregation from the raw log: a check, then a rewrite, each while a
  // client records one event per call, to see the stall it meets.
  for (const bool write : {false, true}) {
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> calls{0};
    double worst_ms = 0, worst_at = 0, write_at = -1;
    const auto started = Clock::now();
    std::thread client([&] {
      for (uint64_t i = 0; !stop; ++i) {
        playbook::Event e;
        e.event_id = Name(write ? "bg-w-" : "bg-c-", i);
        e.type = playbook::EventType::kViewed;
        e.lead_id = Name("lead", i % 1000);
        e.asset_id = Name("a", i % assets);
        auto t = Clock::now();
        (void)engine->RecordEvents({e});
        if (std::getenv("PB_BENCH_SLOW") && Ms(t) > 100) {
          std::fprintf(stderr, "slow call: %.0f ms at %.2f s\n", Ms(t), std::chrono::duration<double>(t - started).count());
        }
        if (Ms(t) > worst_ms) {
          worst_ms = Ms(t);
          worst_at = std::chrono::duration<double>(t - started).count();
        }
        ++calls;
      }
    });
    auto t = Clock::now();
    auto r = engine->Reaggregate(write, [&](const char* phase, uint64_t done, uint64_t total) {
      if (std::getenv("PB_BENCH_SLOW") && std::string(phase) == "write" && (done == 0 || done == total)) {
        std::fprintf(stderr, "write %llu/%llu at %.2f s\n", (unsigned long long)done, (unsigned long long)total,
                     std::chrono::duration<double>(Clock::now() - started).count());
      }
      if (write_at < 0 && std::string(phase) == "write") write_at = std::chrono::duration<double>(Clock::now() - started).count();
    });
    stop = true;
    client.join();
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    std::printf("aggregates.rebuild%s: %llu events of %llu leads, %llu keys, %llu differing, in %.1f s (longest writer pause %.2f s)\n",
                write ? "" : " (check)", (unsigned long long)r.value().events, (unsigned long long)r.value().leads,
                (unsigned long long)r.value().keys, (unsigned long long)r.value().differing, Ms(t) / 1000,
                double(r.value().paused_ms) / 1000);
    std::printf("  meanwhile: %llu feedback calls of one event, slowest %.0f ms (started at %.1f s; writing from %.1f s)\n",
                (unsigned long long)calls.load(), worst_ms, worst_at, write_at);
  }
  time("reports.assets, 90 days, after the rebuild", [&] { (void)engine->ReportAssets(all); });
  // A restart loads every aggregate into memory before serving.
  (void)engine->Close();
  engine.reset();
  auto t = Clock::now();
  auto reopened = playbook::Engine::Open(o, nullptr);
  if (!reopened.ok()) {
    std::fprintf(stderr, "%s\n", reopened.status().ToString().c_str());
    return 1;
  }
  std::printf("reopen (aggregates loaded): %.1f s, RSS %.0f MiB\n", Ms(t) / 1000, RssMiB());
  return 0;
}

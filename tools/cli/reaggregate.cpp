// playbook reaggregate: aggregates.rebuild, with its aggregates.progress
// notifications shown, waiting for the answer (the daemon answers when done).
#include <iostream>
#include <optional>
#include <string>

#include "common.h"

namespace playbook::cli {
int RunReaggregate(Args args);

namespace {

constexpr Millis kDefaultTimeout{3600 * 1000};

void PrintReaggregateUsage(std::ostream& out) {
  out << "Usage: playbook reaggregate [--check] [options]\n\n"
         "Rebuilds every aggregate the reports and the ranking read (usage, outcomes and their\n"
         "attribution, dismissals, funnel) from the raw event log, with the daemon's current\n"
         "settings (e.g. a new [feedback] attribution_window_days), and replaces the live ones.\n"
         "The daemon keeps serving and recording feedback; the feedback writer pauses only at the\n"
         "end, to replay what arrived meanwhile and swap. Prints how many aggregates differed\n"
         "from the live ones. Needs an admin token when tokens are configured.\n\n"
         "Options:\n"
         "  --check            only compare: recompute and count the differences, write nothing\n"
         "  --no-progress      no progress output on stderr\n\n"
      << kConnectionOptions
      << "(--timeout bounds the whole run here; default 1 h)\n"
         "\nExit status: 0 done (with --check: no differences), 1 the daemon returned an error or\n"
         "--check found differences, 2 usage error, 3 connection failure or timeout.\n";
}

}  // namespace

int RunReaggregate(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--url", "--token", "--timeout"}, {"--help", "-h", "--no-progress", "--check"},
                           parsed)) {
    return UsageError("reaggregate: " + *err);
  }
  ConnectionOptions conn = DefaultConnectionOptions();
  conn.timeout = kDefaultTimeout;
  bool show_progress = true, check = false;
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintReaggregateUsage(std::cout);
      return kExitOk;
    }
    if (name == "--no-progress") {
      show_progress = false;
    } else if (name == "--check") {
      check = true;
    } else if (auto err = ApplyConnectionOption(name, value, conn)) {
      return UsageError("reaggregate: " + *err);
    }
  }
  if (!parsed.positional.empty()) return UsageError("reaggregate: takes no arguments");

  RpcConnection rpc(conn);
  if (!rpc.Connect()) return kExitConnection;
  const auto start = Clock::now();
  ProgressDisplay progress("reaggregate", show_progress, Millis(2000));
  std::optional<Clock::time_point> write_start;
  json r = rpc.Call("aggregates.rebuild", json{{"check", check}}, [&](const json& n) {
    if (n.value("method", std::string()) != "aggregates.progress" || !n.contains("params")) return;
    const json& p = n["params"];
    const uint64_t done = p.value("done", uint64_t{0}), total = p.value("total", uint64_t{0});
    const bool writing = p.value("phase", std::string()) == "write";
    if (writing && !write_start) write_start = Clock::now();
    const double elapsed = SecondsSince(writing ? *write_start : start);
    const double fraction = total ? double(done) / double(total) : -1;
    std::string what = std::to_string(done);
    what.append("/").append(std::to_string(total)).append(writing ? " days written" : " events replayed");
    progress.Update(fraction, what, elapsed > 0 ? double(done) / elapsed : -1,
                    fraction > 0.001 && fraction < 1 ? elapsed * (1 - fraction) / fraction : -1, done == total);
  });
  progress.Finish();
  if (r.is_null()) return kExitConnection;
  if (r.contains("error")) {
    std::cerr << "playbook: reaggregate: aggregates.rebuild failed: " << DescribeError(r) << "\n";
    return kExitRpcError;
  }
  const json& x = r["result"];
  const uint64_t differing = x.value("differing", uint64_t{0});
  std::cout << "reaggregate: replayed " << x.value("events", uint64_t{0}) << " events of "
            << x.value("leads", uint64_t{0}) << " leads in " << Fixed(double(x.value("ms", int64_t{0})) / 1000, 2)
            << " s (feedback paused at most " << Fixed(double(x.value("paused_ms", int64_t{0})) / 1000, 2) << " s); "
            << x.value("keys", uint64_t{0}) << " aggregates, " << differing
            << (differing == 1 ? " differs" : " differ") << " from the live ones; "
            << (x.value("written", false) ? "written" : "nothing written (--check)") << std::endl;
  rpc.Close();
  return check && differing > 0 ? kExitRpcError : kExitOk;
}

}  // namespace playbook::cli

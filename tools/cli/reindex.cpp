// playbook reindex: starts index.rebuild, shows its index.progress notifications
// and waits until index.status says the rebuild is over.
#include <algorithm>
#include <iostream>
#include <thread>

#include "common.h"

namespace playbook::cli {
namespace {

constexpr Millis kPollEvery{500};
constexpr Millis kFirstPoll{50};  // then doubling up to kPollEvery
// After index.status says the rebuild is over, how long to wait for the final
// index.progress notification (done == total), which may still be on its way.
constexpr Millis kFinalGrace{1000};
constexpr int kMaxStartAttempts = 3;

void PrintReindexUsage(std::ostream& out) {
  out << "Usage: playbook reindex [options]\n\n"
         "Starts a rebuild of the vector index (index.rebuild: re-embeds what an older embedder\n"
         "made, rebuilds the index, swaps it in), shows its progress on stderr (a bar on a\n"
         "terminal) and waits until index.status reports it finished; prints a summary to stdout.\n"
         "When a rebuild is already running, waits for it and then starts a new one. Needs an\n"
         "admin token when tokens are configured.\n\n"
         "Options:\n"
         "  --no-progress      no progress output on stderr\n\n"
      << kConnectionOptions
      << "(--timeout bounds each request; the rebuild itself may take longer)\n"
         "\nExit status: 0 the rebuild finished, 1 the daemon returned an error, 2 usage error,\n"
         "3 connection failure or timeout.\n";
}

struct Job {
  std::string id;
  uint64_t done = 0, total = 0;
  bool seen = false;        // any index.progress of this job
  bool final_seen = false;  // done == total
};

bool IsProgressOf(const json& n, const std::string& job) {
  return n.value("method", std::string()) == "index.progress" && n.contains("params") &&
         n["params"].is_object() && n["params"].value("job_id", std::string()) == job;
}

}  // namespace

int RunReindex(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--url", "--token", "--timeout"}, {"--help", "-h", "--no-progress"},
                           parsed)) {
    return UsageError("reindex: " + *err);
  }
  ConnectionOptions conn = DefaultConnectionOptions();
  bool show_progress = true;
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintReindexUsage(std::cout);
      return kExitOk;
    }
    if (name == "--no-progress") {
      show_progress = false;
    } else if (auto err = ApplyConnectionOption(name, value, conn)) {
      return UsageError("reindex: " + *err);
    }
  }
  if (!parsed.positional.empty()) return UsageError("reindex: takes no arguments");

  RpcConnection rpc(conn);
  if (!rpc.Connect()) return kExitConnection;
  const auto start = Clock::now();
  std::vector<json> early;  // notifications that came before we knew our job id
  auto keep = [&](const json& n) { early.push_back(n); };

  // Waits until index.status says no rebuild runs. Returns an exit status, or -1.
  auto wait_idle = [&]() -> int {
    while (true) {
      json st = rpc.Call("index.status", json::object(), keep);
      if (st.is_null()) return kExitConnection;
      if (st.contains("error")) {
        std::cerr << "playbook: reindex: index.status failed: " << DescribeError(st) << "\n";
        return kExitRpcError;
      }
      if (!st["result"].value("rebuilding", false)) return -1;
      std::this_thread::sleep_for(kPollEvery);
    }
  };

  Job job;
  for (int attempt = 1;; ++attempt) {
    json r = rpc.Call("index.rebuild", json::object(), keep);
    if (r.is_null()) return kExitConnection;
    if (ErrorCode(r) == -32003 && attempt < kMaxStartAttempts) {
      std::cerr << "reindex: " << DescribeError(r) << "; waiting for the running rebuild to finish\n";
      if (int s = wait_idle(); s >= 0) return s;
      continue;
    }
    if (r.contains("error")) {
      std::cerr << "playbook: reindex: index.rebuild failed: " << DescribeError(r) << "\n";
      return kExitRpcError;
    }
    const json& res = r["result"];
    if (!res.is_object() || !res.contains("job_id") || !res["job_id"].is_string()) {
      std::cerr << "playbook: reindex: index.rebuild answered without a job_id: " << OneLine(r) << "\n";
      return kExitRpcError;
    }
    job.id = res["job_id"].get<std::string>();
    break;
  }

  ProgressDisplay progress("reindex", show_progress, Millis(1000));
  auto on_progress = [&](const json& n) {
    if (!IsProgressOf(n, job.id)) return;
    const json& p = n["params"];
    job.done = p.value("done", uint64_t{0});
    job.total = p.value("total", uint64_t{0});
    job.seen = true;
    const bool final = job.done >= job.total;
    job.final_seen = job.final_seen || final;
    const double elapsed = SecondsSince(start);
    const double fraction = job.total ? static_cast<double>(job.done) / static_cast<double>(job.total) : 1.0;
    const double rate = elapsed > 0 ? static_cast<double>(job.done) / elapsed : -1;
    const double eta = fraction > 0.001 && !final ? elapsed * (1 - fraction) / fraction : -1;
    progress.Update(fraction, std::to_string(job.done) + "/" + std::to_string(job.total) + " assets", rate,
                    eta, /*force=*/final);
  };
  for (const json& n : early) on_progress(n);
  early.clear();

  // Poll index.status until the rebuild is over, showing notifications meanwhile.
  json status;
  std::optional<int64_t> poll;  // the index.status request in flight
  auto poll_sent = Clock::now();
  auto next_poll = Clock::now();
  Millis poll_every = kFirstPoll;
  std::optional<Clock::time_point> over_at;  // when index.status said rebuilding false
  while (true) {
    const auto now = Clock::now();
    if (over_at && (job.final_seen || now - *over_at >= kFinalGrace)) break;
    if (!over_at && !poll && now >= next_poll) {
      poll = rpc.Send("index.status", json::object());
      if (!poll) return kExitConnection;
      poll_sent = now;
    }
    if (poll && now - poll_sent > conn.timeout) {
      progress.Clear();
      std::cerr << "playbook: reindex: " << conn.url << ": no response to index.status within "
                << Seconds(conn.timeout) << "\n";
      return kExitConnection;
    }
    auto ev = rpc.Next(Millis(100));
    switch (ev.kind) {
      case RpcConnection::Event::Kind::kFailed:
        progress.Clear();
        return kExitConnection;
      case RpcConnection::Event::Kind::kIdle:
        break;
      case RpcConnection::Event::Kind::kNotification:
        on_progress(ev.message);
        if (job.final_seen) next_poll = Clock::now();  // the job says it is done: confirm now
        break;
      case RpcConnection::Event::Kind::kResponse:
        if (!poll || ev.id != *poll) break;
        poll.reset();
        if (ev.message.contains("error")) {
          progress.Clear();
          std::cerr << "playbook: reindex: index.status failed: " << DescribeError(ev.message) << "\n";
          return kExitRpcError;
        }
        status = ev.message["result"];
        if (!status.is_object() || !status.value("rebuilding", true)) {
          over_at = Clock::now();
        } else {
          next_poll = Clock::now() + poll_every;
          poll_every = std::min(kPollEvery, poll_every * 2);
        }
        break;
    }
  }
  progress.Finish();
  rpc.Close();
  if (!job.final_seen) {
    std::cerr << "reindex: note: no final index.progress notification (done == total) arrived for "
              << job.id << "\n";
  }
  std::cout << "reindex " << job.id << ": done, " << status.value("assets", json(0)).dump() << " assets, index "
            << status.value("index", std::string("?")) << ", embedder " << status.value("embedder", std::string("?"))
            << ", in " << Fixed(SecondsSince(start), 2) << " s" << std::endl;
  // A remote embedder down or wrong: the index is rebuilt, but with the old
  // vectors of the assets it could not re-embed.
  if (status.contains("reembed_error") && status["reembed_error"].is_string()) {
    std::cerr << "playbook: reindex: " << status.value("stale_vectors", json(0)).dump()
              << " vectors are still stale (made by another embedder): " << status["reembed_error"].get<std::string>()
              << "\n";
    return kExitRpcError;
  }
  return kExitOk;
}

}  // namespace playbook::cli

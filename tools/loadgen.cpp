// playbook-loadgen: drives a running playbookd over the real protocol and
// prints throughput and latency percentiles. Bounded in time and count.
//
//   build/bin/playbook-loadgen [--url URL] [--token T] [--connections N] [--seconds S]
//                              [--pipeline W] [--method M] [--params JSON]
//
// Each connection runs on its own thread and keeps W requests in flight.
// In --params, every "{n}" becomes a number unique to the request (connection
// and sequence), e.g. for idempotency keys:
//   --method feedback.record --params '{"events":[{"event_id":"e{n}","type":"viewed","lead_id":"l{n}","asset_id":"a1"}]}'
// Answers -32003 (shed by an overloaded daemon) are counted apart; the
// latency percentiles are those of the admitted requests.
// --batch B repeats the first element of the params' array member "events" B
// times, each with its own {n}-{i}.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "playbook/client/ws_client.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace client = playbook::client;

struct Options {
  std::string url = "ws://127.0.0.1:7700/v1";
  std::string token;
  int connections = 8;
  double seconds = 5;
  int pipeline = 1;
  std::string method = "server.stats";
  std::string params = "{}";
  int batch = 0;  // >0: build "events" arrays of this many elements from the template
};

// Replaces each "{n}" in `text` with `n`.
std::string Fill(const std::string& text, const std::string& n) {
  std::string out;
  size_t from = 0;
  for (size_t at; (at = text.find("{n}", from)) != std::string::npos; from = at + 3) {
    out.append(text, from, at - from).append(n);
  }
  return out.append(text, from, std::string::npos);
}

bool Parse(int argc, char** argv, Options& o) {
  if (const char* u = std::getenv("PLAYBOOK_URL")) o.url = u;
  if (const char* t = std::getenv("PLAYBOOK_TOKEN")) o.token = t;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "playbook-loadgen: " << a << " needs a value\n";
      return false;
    }
    std::string v = argv[++i];
    if (a == "--url") o.url = v;
    else if (a == "--token") o.token = v;
    else if (a == "--connections") o.connections = std::max(1, std::atoi(v.c_str()));
    else if (a == "--seconds") o.seconds = std::max(0.1, std::atof(v.c_str()));
    else if (a == "--pipeline") o.pipeline = std::max(1, std::atoi(v.c_str()));
    else if (a == "--method") o.method = v;
    else if (a == "--params") o.params = v;
    else if (a == "--batch") o.batch = std::max(1, std::atoi(v.c_str()));
    else {
      std::cerr << "playbook-loadgen: unknown option " << a << "\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!Parse(argc, argv, o)) return 2;
  auto url = client::ParseUrl(o.url);
  if (!url.ok()) {
    std::cerr << url.status().ToString() << "\n";
    return 2;
  }
  std::mutex mu;
  std::vector<double> latencies_us;
  std::atomic<uint64_t> errors{0}, failures{0}, shed{0};
  const auto deadline = Clock::now() + std::chrono::duration<double>(o.seconds);
  const auto start = Clock::now();

  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      client::WsClient ws;
      if (!ws.Connect(url.value(), o.token).ok()) {
        failures++;
        return;
      }
      std::vector<double> local;
      std::vector<Clock::time_point> sent_at;  // by id
      uint64_t next = 0, done = 0;
      auto send = [&] {
        const std::string n = std::to_string(c) + "-" + std::to_string(next);
        std::string params = Fill(o.params, n);
        if (o.batch > 0) {
          // {"events":[TEMPLATE]} -> {"events":[T(n-0),T(n-1),...]}
          const size_t open = o.params.find('['), close = o.params.rfind(']');
          if (open != std::string::npos && close != std::string::npos && close > open) {
            const std::string item = o.params.substr(open + 1, close - open - 1);
            std::string items;
            for (int i = 0; i < o.batch; ++i) items += (i ? "," : "") + Fill(item, n + "-" + std::to_string(i));
            params = o.params.substr(0, open + 1) + items + o.params.substr(close);
          }
        }
        std::string req = "{\"jsonrpc\":\"2.0\",\"id\":" + std::to_string(next) + ",\"method\":\"" +
                          o.method + "\",\"params\":" + params + "}";
        sent_at.push_back(Clock::now());
        ++next;
        return ws.Send(req).ok();
      };
      for (int w = 0; w < o.pipeline; ++w) {
        if (!send()) { failures++; return; }
      }
      while (done < next) {
        client::Message m = ws.Read(std::chrono::milliseconds(10000));
        if (m.kind != client::Message::Kind::kText) { failures++; break; }
        // Ids are numbers we chose; find the id cheaply.
        size_t p = m.data.find("\"id\":");
        uint64_t id = p == std::string::npos ? 0 : std::strtoull(m.data.c_str() + p + 5, nullptr, 10);
        // Shed requests (-32003 overloaded) are counted apart: the latency
        // percentiles are those of the requests the daemon admitted.
        const bool was_shed = m.data.find("\"code\":-32003") != std::string::npos;
        if (was_shed) {
          shed++;
        } else if (id < sent_at.size()) {
          local.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent_at[id]).count());
        }
        if (!was_shed && m.data.find("\"error\"") != std::string::npos) errors++;
        ++done;
        if (Clock::now() < deadline && !send()) { failures++; break; }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_us.insert(latencies_us.end(), local.begin(), local.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) {
    if (latencies_us.empty()) return 0.0;
    return latencies_us[std::min(latencies_us.size() - 1, static_cast<size_t>(q * latencies_us.size()))];
  };
  std::printf("method=%s connections=%d pipeline=%d seconds=%.1f\n", o.method.c_str(), o.connections,
              o.pipeline, elapsed);
  const double total = double(latencies_us.size() + shed.load());
  std::printf("requests=%zu errors=%llu failed_connections=%llu throughput=%.0f req/s\n",
              latencies_us.size(), static_cast<unsigned long long>(errors.load()),
              static_cast<unsigned long long>(failures.load()), latencies_us.size() / elapsed);
  std::printf("shed=%llu (%.1f%% of answers, -32003 overloaded)\n", static_cast<unsigned long long>(shed.load()),
              total > 0 ? 100.0 * double(shed.load()) / total : 0.0);
  std::printf("admitted latency_us p50=%.0f p90=%.0f p99=%.0f max=%.0f\n", pct(0.50), pct(0.90), pct(0.99),
              latencies_us.empty() ? 0.0 : latencies_us.back());
  return failures.load() == 0 ? 0 : 1;
}

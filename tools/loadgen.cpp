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
// --params-file F takes the params from the lines of F instead, request i using
// line i (round robin over the lines, {n} filled as above): the same queries for
// two methods, e.g. assets.search against recommend.
// --trace F writes one line per admitted answer to F: connection, request id, and the
// send and answer times in ns of CLOCK_MONOTONIC (steady_clock; `perf record -k mono`
// stamps its events on the same clock), to line slow calls up with a trace of the daemon.
//
// Generating a benchmark's inputs (deterministic for a --seed; to stdout):
//   --generate assets    --count N [--dim D]   JSON Lines for `playbook import`: ids
//                        gen-0.., clustered unit vectors (200 centres), stages,
//                        types, languages and tags drawn so that a stage holds
//                        about 35% of the catalog and stage+type+language about 2%
//   --generate search    --count Q [--dim D] [--narrow 1] assets.search params lines
//   --generate recommend --count Q [--dim D] [--narrow 1] recommend params lines
//                        (the same Q queries as search for the same seed; each
//                        recommend a new lead "bench-{n}")
//   --generate feedback  --count L [--batch B] [--assets N]  feedback.record params
//                        lines of B realistic events each (viewed, used, and now and
//                        then stage_changed, won or lost) on leads lead-0..9999 and
//                        assets gen-0..N-1
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
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
  std::vector<std::string> param_lines;  // --params-file
  std::string trace;                     // --trace
  // --generate
  std::string generate;
  long count = 1000;
  int dim = 384;
  uint64_t seed = 42;
  bool narrow = false;
  long assets = 100000;
};

// ---- Generated benchmark inputs --------------------------------------------

const char* const kStages[] = {"awareness", "interest", "consideration", "evaluation", "negotiation"};
const char* const kTypes[] = {"case_study",    "roi_calculator", "competitor_comparison", "objection_script",
                              "product_sheet", "whitepaper",     "email_template",        "video"};
constexpr int kCentres = 200;

// The cluster centres, the same for every kind for one seed.
std::vector<std::vector<float>> Centres(const Options& o) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<std::vector<float>> c(kCentres, std::vector<float>(size_t(o.dim)));
  for (auto& v : c) {
    double n = 0;
    for (float& x : v) {
      x = g(rng);
      n += double(x) * x;
    }
    for (float& x : v) x = float(x / std::sqrt(n));
  }
  return c;
}

// A point near a random centre, as a JSON array with 6 decimals.
std::string NearCentre(const std::vector<std::vector<float>>& centres, std::mt19937_64& rng, int dim) {
  std::normal_distribution<float> g(0, 1);
  const auto& c = centres[rng() % centres.size()];
  const float sigma = 0.75f / std::sqrt(float(dim));  // cosine to the centre about 0.8
  std::vector<float> v(static_cast<size_t>(dim));
  double n = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = c[i] + sigma * g(rng);
    n += double(v[i]) * v[i];
  }
  std::string out = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.6f", i ? "," : "", double(v[i] / std::sqrt(n)));
    out += buf;
  }
  return out + "]";
}

int Generate(const Options& o) {
  const auto centres = Centres(o);
  std::mt19937_64 rng(o.seed * 7919 + (o.generate == "assets" ? 1 : o.generate == "feedback" ? 3 : 2));
  auto pick = [&](long n) { return long(rng() % uint64_t(n)); };
  std::string line;
  if (o.generate == "assets") {
    for (long i = 0; i < o.count; ++i) {
      // Each stage with probability 0.35, at least one.
      std::string stages;
      for (int s = 0; s < 5; ++s) {
        if (pick(100) < 35) stages.append(stages.empty() ? "\"" : ",\"").append(kStages[s]).append("\"");
      }
      if (stages.empty()) stages.append("\"").append(kStages[pick(5)]).append("\"");
      line = "{\"id\":\"gen-" + std::to_string(i) + "\",\"title\":\"generated asset " + std::to_string(i) +
             "\",\"url\":\"https://example.com/a/" + std::to_string(i) + "\",\"type\":\"" + kTypes[pick(8)] +
             "\",\"language\":\"" + (pick(2) ? "zh" : "en") + "\",\"stages\":[" + stages + "],\"tags\":[\"t" +
             std::to_string(pick(20)) + "\"],\"vector\":" + NearCentre(centres, rng, o.dim) + "}";
      std::puts(line.c_str());
    }
    return 0;
  }
  if (o.generate == "search" || o.generate == "recommend") {
    // The narrow filter: stage, type and language (about 2% of the catalog).
    const std::string filter = o.narrow ? R"({"types":["case_study"],"language":"zh"})" : "{}";
    for (long i = 0; i < o.count; ++i) {
      const std::string v = NearCentre(centres, rng, o.dim);
      if (o.generate == "search") {
        line = R"({"stage":"evaluation","vector":)" + v + R"(,"k":10,"filter":)" + filter + "}";
      } else {
        line = R"({"lead":{"id":"bench-{n}","stage":"evaluation","vector":)" + v + R"(},"k":10,"filter":)" +
               filter + "}";
      }
      std::puts(line.c_str());
    }
    return 0;
  }
  if (o.generate == "feedback") {
    const int batch = std::max(1, o.batch);
    for (long i = 0; i < o.count; ++i) {
      line = R"({"events":[)";
      for (int j = 0; j < batch; ++j) {
        const long r = pick(100);
        const std::string type = r < 45 ? "viewed" : r < 90 ? "used" : r < 94 ? "stage_changed" : r < 98 ? "won" : "lost";
        std::string e = R"({"event_id":"e{n}-)" + std::to_string(j) + R"(","type":")" + type +
                        R"(","lead_id":"lead-)" + std::to_string(pick(10000)) + "\"";
        if (type == "viewed" || type == "used") e += R"(,"asset_id":"gen-)" + std::to_string(pick(o.assets)) + "\"";
        if (type == "stage_changed") e += R"(,"stage":")" + std::string(kStages[1 + pick(4)]) + "\"";
        if (type == "won") e += R"(,"amount":)" + std::to_string(1000 + pick(50000));
        e += R"(,"rep_id":"rep-)" + std::to_string(pick(50)) + "\"}";
        line.append(j ? "," : "").append(e);
      }
      line += "]}";
      std::puts(line.c_str());
    }
    return 0;
  }
  std::cerr << "playbook-loadgen: --generate takes assets, search, recommend or feedback\n";
  return 2;
}

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
    else if (a == "--params-file") {
      std::ifstream in(v);
      if (!in) {
        std::cerr << "playbook-loadgen: cannot read " << v << "\n";
        return false;
      }
      for (std::string line; std::getline(in, line);) {
        if (!line.empty()) o.param_lines.push_back(line);
      }
      if (o.param_lines.empty()) {
        std::cerr << "playbook-loadgen: " << v << " has no lines\n";
        return false;
      }
    }
    else if (a == "--trace") o.trace = v;
    else if (a == "--generate") o.generate = v;
    else if (a == "--count") o.count = std::max(1L, std::atol(v.c_str()));
    else if (a == "--dim") o.dim = std::max(1, std::atoi(v.c_str()));
    else if (a == "--seed") o.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--assets") o.assets = std::max(1L, std::atol(v.c_str()));
    else if (a == "--narrow") { o.narrow = v == "1" || v == "true"; }
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
  if (!o.generate.empty()) return Generate(o);
  auto url = client::ParseUrl(o.url);
  if (!url.ok()) {
    std::cerr << url.status().ToString() << "\n";
    return 2;
  }
  std::mutex mu;
  std::vector<double> latencies_us;
  struct Traced {
    int conn;
    uint64_t id;
    Clock::time_point sent, answered;
  };
  std::vector<Traced> traced;  // --trace
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
      std::vector<Traced> local_trace;
      std::vector<Clock::time_point> sent_at;  // by id
      uint64_t next = 0, done = 0;
      auto send = [&] {
        const std::string n = std::to_string(c) + "-" + std::to_string(next);
        std::string params = Fill(o.params, n);
        if (!o.param_lines.empty()) {
          params = Fill(o.param_lines[(uint64_t(c) * 7919 + next) % o.param_lines.size()], n);
        } else if (o.batch > 0) {
          // {"events":[TEMPLATE]} -> {"events":[T(n-0),T(n-1),...]}
          const size_t open = o.params.find('['), close = o.params.rfind(']');
          if (open != std::string::npos && close != std::string::npos && close > open) {
            const std::string item = o.params.substr(open + 1, close - open - 1);
            std::string items;
            for (int i = 0; i < o.batch; ++i) {
              std::string suffix = n;
              suffix.append("-").append(std::to_string(i));
              items.append(i ? "," : "").append(Fill(item, suffix));
            }
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
          const auto now = Clock::now();
          local.push_back(std::chrono::duration<double, std::micro>(now - sent_at[id]).count());
          if (!o.trace.empty()) local_trace.push_back({c, id, sent_at[id], now});
        }
        if (!was_shed && m.data.find("\"error\"") != std::string::npos) errors++;
        ++done;
        if (Clock::now() < deadline && !send()) { failures++; break; }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_us.insert(latencies_us.end(), local.begin(), local.end());
      traced.insert(traced.end(), local_trace.begin(), local_trace.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  if (!o.trace.empty()) {
    std::ofstream out(o.trace);
    auto ns = [](Clock::time_point t) {
      return static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
    };
    for (const Traced& t : traced) out << t.conn << ' ' << t.id << ' ' << ns(t.sent) << ' ' << ns(t.answered) << '\n';
    if (!out) std::cerr << "playbook-loadgen: cannot write " << o.trace << "\n";
  }
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

// playbook-bench-frame: what the daemon spends on the JSON of one
// assets.search / recommend call with a 384-number vector (the frames
// tools/bench_hot.sh sends), per call: json::parse of the frame against the
// fast path (ParseJsonFast), the whole ParseFrame, the params (ParseAssetsSearch),
// and an answer of 10 items built as nlohmann objects and serialised.
//
//   build/bin/playbook-bench-frame [reps (20000)]
// Figures are the thread's CPU time per call.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "playbook/server/jsonrpc.h"
#include "playbook/server/requests.h"

using namespace playbook;
using server::json;

namespace {

double ThreadCpuUs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

// The thread's CPU time per call (less moved by a shared machine's load than
// wall time).
template <typename F>
double UsPerCall(int reps, F&& f) {
  for (int i = 0; i < reps / 10; ++i) f();  // warm
  const double t0 = ThreadCpuUs();
  for (int i = 0; i < reps; ++i) f();
  return (ThreadCpuUs() - t0) / reps;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20000;
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0, 0.05f);
  // As tools/gen_hot.py writes them: %.6f.
  std::string vec = "[";
  for (int i = 0; i < 384; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6f", i ? "," : "", double(g(rng)));
    vec += buf;
  }
  vec += "]";
  std::string frame = R"({"jsonrpc":"2.0","id":17,"method":"assets.search","params":{"stage":"evaluation","vector":)";
  frame += vec;
  frame += "}}";

  size_t sink = 0;
  const double nl = UsPerCall(reps, [&] { sink += json::parse(frame).size(); });
  const double fast = UsPerCall(reps, [&] {
    json doc;
    if (!server::ParseJsonFast(frame, &doc)) std::abort();
    sink += doc.size();
  });
  const double whole = UsPerCall(reps, [&] { sink += server::ParseFrame(frame).entries.size(); });
  // What ParseFrame did before the fast path: the depth scan, json::parse,
  // and a copy of the params into the entry.
  const double old_whole = UsPerCall(reps, [&] {
    if (server::DeeperThan(frame, server::kMaxJsonDepth)) std::abort();
    json doc = json::parse(frame);
    json params = doc["params"];
    sink += params.size();
  });
  const server::Frame parsed = server::ParseFrame(frame);
  if (parsed.error || parsed.entries.size() != 1 || parsed.entries[0].error) std::abort();
  const json& params = parsed.entries[0].params;
  const double req = UsPerCall(reps, [&] { sink += server::ParseAssetsSearch(params).value().vector.size(); });
  // The answer: 10 items as the handler built them before (initializer lists:
  // a temporary array per member) and as it builds them now (members emplaced).
  struct Item {
    std::string id, title, type, url;
    float score;
  };
  std::vector<Item> hits;
  for (int i = 0; i < 10; ++i) {
    std::string id = "gen-";
    id += std::to_string(1000 + i);
    std::string title = "Generated asset ";
    title += std::to_string(i);
    title += " about pricing";
    hits.push_back({id, title, "case_study", "https://cdn.example.com/" + id, 0.8123456f - 0.01f * float(i)});
  }
  std::string before_text, after_text;
  const double answer_before = UsPerCall(reps, [&] {
    json items = json::array();
    for (const Item& h : hits) {
      items.push_back(json{{"asset_id", h.id}, {"score", h.score}, {"title", h.title}, {"type", h.type},
                           {"url", h.url}, {"variant_of", json()}});
    }
    before_text = server::Serialize(server::MakeResult(17, json{{"items", std::move(items)}}));
  });
  const double answer = UsPerCall(reps, [&] {
    std::vector<Item> copy = hits;  // the handler moves its hits' strings
    json items(json::value_t::array);
    auto& list = items.get_ref<json::array_t&>();
    list.reserve(copy.size());
    for (Item& h : copy) {
      json& item = list.emplace_back(json::value_t::object);
      auto& o = item.get_ref<json::object_t&>();
      o.emplace("asset_id", std::move(h.id));
      o.emplace("score", h.score);
      o.emplace("title", std::move(h.title));
      o.emplace("type", std::move(h.type));
      o.emplace("url", std::move(h.url));
      o.emplace("variant_of", nullptr);
    }
    after_text = server::Serialize(server::MakeResult(17, json{{"items", std::move(items)}}));
  });
  if (before_text != after_text) std::abort();
  std::printf("frame of %zu bytes (assets.search, d=384, %%.6f), %d reps, us per call:\n", frame.size(), reps);
  std::printf("  json::parse %.1f | ParseJsonFast %.1f | ParseFrame %.1f (its steps before the fast path %.1f) | "
              "ParseAssetsSearch %.1f\n  10-item answer built and serialised: initializer lists %.1f | members emplaced %.1f  (%zu)\n",
              nl, fast, whole, old_whole, req, answer_before, answer, sink % 10);
}

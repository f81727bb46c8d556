// playbook-bench-index: the index at scale, through the engine API on a real
// RocksDB. Generates N clustered unit vectors, upserts them, waits for the
// HNSW build, measures filtered search latency and recall@10 against an exact
// filtered scan, then restarts and measures time to ready and RSS.
//
//   build/bin/playbook-bench-index [--assets 100000] [--dim 384] [--queries 1000]
//                                  [--dir /tmp/pb-bench-index] [--recall on|off] [--rebuild on|off]
//                                  [--recommend] [--filters stage|narrow|both] [--reuse on|off]
//                                  [--ef-construction N]
//
// With --recommend: after the graph is built, times Engine::Search and
// Engine::Recommend (the query vector given, k = 10, a new lead each call,
// default ranking options) on the SAME queries, stage filter then narrow
// filter, one thread, and prints p50/p99, calls/s and process CPU per call of
// both; no recall, no restart. --filters stage (or narrow) runs only that
// filter's part (to profile one). With --reuse on, a --dir that already
// holds the --assets generated assets (and their saved graph) is opened as it is,
// not regenerated: the vectors and queries are the same (fixed seed), and the
// graph build (minutes at 100,000 on a busy box) is skipped.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "playbook/engine/engine.h"

namespace {

using Clock = std::chrono::steady_clock;
using playbook::Asset;
using playbook::AssetFilter;
using playbook::Engine;
using playbook::EngineOptions;

double Secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

long RssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6) / 1024;
  }
  return -1;
}

const std::vector<std::string> kStages = {"awareness", "interest", "consideration", "evaluation", "negotiation"};
const std::vector<std::string> kTypes = {"case_study", "roi_calculator", "competitor_comparison", "objection_script",
                                         "product_sheet", "whitepaper", "email_template", "video"};
const std::vector<std::string> kTags = {"price", "budget", "timing", "competitor", "trust", "risk", "retail", "saas"};

struct Item {
  std::vector<float> v;
  uint32_t stages = 0;
  int type = 0;
  int lang = 0;
  uint32_t tags = 0;
};

bool Passes(const Item& it, int stage, int type, int lang, int tag) {
  if (!(it.stages & (1u << stage))) return false;
  if (type >= 0 && it.type != type) return false;
  if (lang >= 0 && it.lang != lang) return false;
  if (tag >= 0 && !(it.tags & (1u << tag))) return false;
  return true;
}

void Normalize(std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x * x;
  for (auto& x : v) x = float(x / std::sqrt(s));
}

struct Timing {
  double p50_us, p99_us, calls_per_s;
  double cpu_us = 0;  // process CPU (all threads: the writer's too) per call
};

double ProcessCpuSecs() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

Timing Summarise(std::vector<double> lat_us) {
  double total = 0;
  for (double x : lat_us) total += x;
  std::sort(lat_us.begin(), lat_us.end());
  return {lat_us[lat_us.size() / 2], lat_us[lat_us.size() * 99 / 100], 1e6 * double(lat_us.size()) / total};
}

// Engine::Search and Engine::Recommend on the same queries (see the header).
int RecommendAgainstSearch(Engine& engine, const std::vector<std::vector<float>>& centres, size_t queries,
                           uint32_t dim, std::mt19937& rng, const std::string& which) {
  std::normal_distribution<float> g(0, 1);
  for (bool narrow : {false, true}) {
    if (which != "both" && which != (narrow ? "narrow" : "stage")) continue;
    std::vector<std::vector<float>> qs(queries, std::vector<float>(dim));
    std::vector<AssetFilter> filters(queries);
    for (size_t q = 0; q < queries; ++q) {
      const auto& centre = centres[rng() % centres.size()];
      for (uint32_t d = 0; d < dim; ++d) qs[q][d] = centre[d] + 0.6f * g(rng);
      Normalize(qs[q]);
      filters[q].stage = kStages[rng() % kStages.size()];
      if (narrow) {
        filters[q].types = {kTypes[rng() % kTypes.size()]};
        filters[q].language = rng() % 2 ? "en" : "zh";
        filters[q].tags_any = {kTags[rng() % kTags.size()]};
      }
    }
    // Search at recommend's candidate count too (k * candidates_per_item), to
    // tell the retrieval's share of recommend from the rest.
    const size_t candidates = std::max<size_t>(10 * EngineOptions{}.ranking.candidates_per_item, 50);
    std::vector<double> wide_us;
    const double cpu_wide = ProcessCpuSecs();
    for (size_t q = 0; q < queries; ++q) {
      auto ts = Clock::now();
      auto hits = engine.Search(qs[q].data(), filters[q], candidates);
      wide_us.push_back(Secs(ts) * 1e6);
      if (!hits.ok()) return 1;
    }
    Timing w = Summarise(wide_us);
    w.cpu_us = (ProcessCpuSecs() - cpu_wide) * 1e6 / double(queries);
    std::vector<double> search_us, rec_us;
    size_t items = 0;
    const double cpu0 = ProcessCpuSecs();
    for (size_t q = 0; q < queries; ++q) {
      auto ts = Clock::now();
      auto hits = engine.Search(qs[q].data(), filters[q], 10);
      search_us.push_back(Secs(ts) * 1e6);
      if (!hits.ok()) {
        std::fprintf(stderr, "search: %s\n", hits.status().ToString().c_str());
        return 1;
      }
    }
    const double cpu1 = ProcessCpuSecs();
    static size_t lead = 0;
    for (size_t q = 0; q < queries; ++q) {
      playbook::RecommendRequest req;
      req.lead_id = std::string("bench-lead-").append(std::to_string(++lead));
      req.stage = filters[q].stage;
      req.vector = qs[q];
      req.k = 10;
      req.filter = filters[q];
      req.rep_id = "bench-rep";
      auto ts = Clock::now();
      auto rec = engine.Recommend(req);
      rec_us.push_back(Secs(ts) * 1e6);
      if (!rec.ok()) {
        std::fprintf(stderr, "recommend: %s\n", rec.status().ToString().c_str());
        return 1;
      }
      items += rec.value().items.size();
    }
    const double cpu2 = ProcessCpuSecs();
    Timing s = Summarise(search_us), r = Summarise(rec_us);
    s.cpu_us = (cpu1 - cpu0) * 1e6 / double(queries);
    r.cpu_us = (cpu2 - cpu1) * 1e6 / double(queries);
    const char* name = narrow ? "narrow filter (stage+type+language+tag)" : "stage filter";
    std::printf("%s, %zu queries, k=10, one thread:\n", name, queries);
    std::printf("  search:    p50 %.0f us, p99 %.0f us, %.0f calls/s, CPU %.0f us per call\n", s.p50_us, s.p99_us,
                s.calls_per_s, s.cpu_us);
    std::printf("  search, k=%zu (recommend's candidates): p50 %.0f us, p99 %.0f us, %.0f calls/s, CPU %.0f us per call\n",
                candidates, w.p50_us, w.p99_us, w.calls_per_s, w.cpu_us);
    std::printf("  recommend: p50 %.0f us, p99 %.0f us, %.0f calls/s, CPU %.0f us per call (%.1f items per answer)\n",
                r.p50_us, r.p99_us, r.calls_per_s, r.cpu_us, double(items) / double(queries));
    std::printf("  recommend / search: throughput %.0f%%, CPU per call %.2fx\n", 100.0 * r.calls_per_s / s.calls_per_s,
                r.cpu_us / s.cpu_us);
  }
  std::printf("RSS while serving: %ld MiB\n", RssMiB());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 100000, queries = 1000;
  uint32_t dim = 384;
  std::string dir = "/tmp/pb-bench-index";
  bool recall = true, recommend = false, reuse = false, rebuild = true;
  uint32_t ef_construction = playbook::IndexOptions().hnsw_ef_construction;
  std::string filters = "both";  // with --recommend: stage, narrow or both
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--recommend") recommend = true;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--recommend") {
      --i;  // a flag without a value
      continue;
    }
    if (a == "--assets") n = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--dim") dim = uint32_t(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "--queries") queries = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--dir") dir = argv[i + 1];
    else if (a == "--recall") recall = std::string(argv[i + 1]) != "off";
    else if (a == "--filters") filters = argv[i + 1];
    else if (a == "--reuse") reuse = std::string(argv[i + 1]) == "on";
    else if (a == "--rebuild") rebuild = std::string(argv[i + 1]) != "off";
    else if (a == "--ef-construction") ef_construction = uint32_t(std::strtoul(argv[i + 1], nullptr, 10));
  }
  if (!reuse) std::filesystem::remove_all(dir);
  EngineOptions o;
  o.data_dir = dir;
  o.dimension = dim;
  o.index.kind = "auto";
  o.index.hnsw_ef_construction = ef_construction;

  // Clustered data: 200 centres, points around them.
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0, 1);
  std::vector<std::vector<float>> centres(200, std::vector<float>(dim));
  for (auto& c : centres) for (auto& x : c) x = g(rng);
  std::vector<Item> items(n);
  auto normalize = [&](std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += x * x;
    for (auto& x : v) x = float(x / std::sqrt(s));
  };
  for (auto& it : items) {
    const auto& c = centres[rng() % centres.size()];
    it.v.resize(dim);
    for (uint32_t d = 0; d < dim; ++d) it.v[d] = c[d] + 0.6f * g(rng);
    normalize(it.v);
    it.stages = 1u << (rng() % 5);
    if (rng() % 2) it.stages |= 1u << (rng() % 5);
    it.type = int(rng() % kTypes.size());
    it.lang = int(rng() % 2);
    it.tags = (1u << (rng() % kTags.size())) | (rng() % 3 == 0 ? 1u << (rng() % kTags.size()) : 0u);
  }

  auto opened = Engine::Open(o, nullptr);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto engine = std::move(opened).value();
  auto t0 = Clock::now();
  const bool reused = reuse && engine->GetIndexStatus().assets == n;
  if (reused) std::printf("reused %s: %zu assets\n", dir.c_str(), n);
  for (size_t from = 0; from < n && !reused; from += 5000) {
    std::vector<Asset> batch;
    for (size_t i = from; i < std::min(n, from + 5000); ++i) {
      Asset a;
      a.id = "gen-" + std::to_string(i);
      a.title = "generated asset " + std::to_string(i);
      a.type = kTypes[size_t(items[i].type)];
      a.language = items[i].lang ? "en" : "zh";
      for (int s = 0; s < 5; ++s) if (items[i].stages & (1u << s)) a.stages.push_back(kStages[size_t(s)]);
      for (size_t t = 0; t < kTags.size(); ++t) if (items[i].tags & (1u << t)) a.tags.push_back(kTags[t]);
      a.vector = items[i].v;
      batch.push_back(std::move(a));
    }
    auto r = engine->UpsertAssets(std::move(batch));
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  const double upsert_s = Secs(t0);
  std::printf("upsert: %zu assets in %.2f s (%.0f assets/s, synced batches of 5000, engine API)\n", n, upsert_s,
              double(n) / upsert_s);
  // The graph builds in the background (auto kind, past hnsw_min_assets).
  auto tb = Clock::now();
  // Until the graph holds everything, or stops trying: assets left on the
  // exact path with no build running are reported rather than waited for.
  auto idle_since = Clock::now();
  while (engine->GetIndexStatus().exact_assets > 0 && Secs(tb) < 600) {
    if (engine->GetIndexStatus().rebuilding) idle_since = Clock::now();
    if (Secs(idle_since) > 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double ready_s = Secs(tb);
  const auto st = engine->GetIndexStatus();
  std::printf("index: %s, graph ready %.2f s after the last upsert (%.2f s since the first); %llu in the graph, "
              "%llu exact\n",
              st.index.c_str(), ready_s, Secs(t0), static_cast<unsigned long long>(st.ann_assets),
              static_cast<unsigned long long>(st.exact_assets));
  while (engine->GetIndexStatus().rebuilding) std::this_thread::sleep_for(std::chrono::milliseconds(20));

  struct Case {
    const char* name;
    bool narrow;
  };
  if (recommend) {
    const int rc = RecommendAgainstSearch(*engine, centres, queries, dim, rng, filters);
    (void)engine->Close();  // saves the index, for --reuse
    return rc;
  }
  for (Case c : {Case{"stage filter", false}, Case{"narrow filter (stage+type+language+tag)", true}}) {
    std::vector<double> lat;
    double found = 0, expected = 0;
    size_t eligible_sum = 0;
    for (size_t q = 0; q < queries; ++q) {
      std::vector<float> query(dim);
      const auto& centre = centres[rng() % centres.size()];
      for (uint32_t d = 0; d < dim; ++d) query[d] = centre[d] + 0.6f * g(rng);
      normalize(query);
      AssetFilter f;
      const int stage = int(rng() % 5);
      f.stage = kStages[size_t(stage)];
      int type = -1, lang = -1, tag = -1;
      if (c.narrow) {
        type = int(rng() % kTypes.size());
        lang = int(rng() % 2);
        tag = int(rng() % kTags.size());
        f.types = {kTypes[size_t(type)]};
        f.language = lang ? "en" : "zh";
        f.tags_any = {kTags[size_t(tag)]};
      }
      auto ts = Clock::now();
      auto hits = engine->Search(query.data(), f, 10);
      lat.push_back(Secs(ts) * 1e6);
      if (!recall) continue;
      // Exact filtered truth.
      std::vector<std::pair<float, size_t>> truth;
      for (size_t i = 0; i < n; ++i) {
        if (!Passes(items[i], stage, type, lang, tag)) continue;
        float dot = 0;
        for (uint32_t d = 0; d < dim; ++d) dot += items[i].v[d] * query[d];
        truth.emplace_back(dot, i);
      }
      eligible_sum += truth.size();
      const size_t k = std::min<size_t>(10, truth.size());
      std::partial_sort(truth.begin(), truth.begin() + long(k), truth.end(), std::greater<>());
      std::set<std::string> got;
      for (const auto& h : hits.value()) got.insert(h.asset_id);
      for (size_t i = 0; i < k; ++i) found += got.count("gen-" + std::to_string(truth[i].second));
      expected += double(k);
    }
    std::sort(lat.begin(), lat.end());
    std::printf("search, %s (%.1f%% eligible): p50 %.0f us, p99 %.0f us, recall@10 %.3f over %zu queries\n", c.name,
                100.0 * double(eligible_sum) / double(queries) / double(n), lat[lat.size() / 2],
                lat[lat.size() * 99 / 100], expected > 0 ? found / expected : -1.0, queries);
  }
  std::printf("RSS while serving: %ld MiB\n", RssMiB());

  if (rebuild) {  // index.rebuild: the whole graph built anew, on every core
    auto tr0 = Clock::now();
    auto job = engine->StartRebuild(nullptr);
    if (job.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      while (engine->GetIndexStatus().rebuilding) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::printf("full rebuild (index.rebuild) of %zu assets: %.2f s\n", n, Secs(tr0));
    }
  }

  auto tc = Clock::now();
  (void)engine->Close();
  std::printf("close (saves the index): %.2f s\n", Secs(tc));
  engine.reset();
  items.clear();
  items.shrink_to_fit();
  auto tr = Clock::now();
  auto reopened = Engine::Open(o, nullptr);
  const double ready = Secs(tr);
  bool warning = false;
  std::printf("restart: ready in %.2f s (%s)\n", ready, reopened.ok() ? reopened.value()->OpenNote(&warning).c_str() : reopened.status().ToString().c_str());
  return 0;
}

// The catalog and the index through the Engine API, on a real RocksDB in a
// temp dir: validation, idempotence, paging, filters that never leak,
// deletes and updates, save/load, damaged files, rebuild under load.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "playbook/engine/engine.h"
#include "test_embedder.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;
using testing::WordEmbedder;

const std::vector<std::string> kStages = {"awareness", "interest", "consideration", "evaluation",
                                          "negotiation"};

class CatalogTest : public ::testing::Test {
 public:
  CatalogTest() {
    dir_ = fs::temp_directory_path() / ("playbook-catalog-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
    options_.dimension = 32;
  }
  ~CatalogTest() override {
    engine_.reset();
    fs::remove_all(dir_);
  }
  Engine& Open(std::shared_ptr<WordEmbedder> embedder = nullptr) {
    engine_.reset();
    if (!embedder) embedder = std::make_shared<WordEmbedder>(options_.dimension);
    embedder_ = embedder;
    auto e = Engine::Open(options_, embedder);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
    return *engine_;
  }
  static Asset MakeAsset(std::string id, std::string title, std::vector<std::string> stages,
                         std::string type = "case_study") {
    Asset a;
    a.id = std::move(id);
    a.title = std::move(title);
    a.type = std::move(type);
    a.stages = std::move(stages);
    return a;
  }
  std::vector<float> Vec(const std::string& text) {
    std::vector<float> v(options_.dimension);
    EXPECT_TRUE(engine_->Embed(text, v.data()).ok());
    return v;
  }
  std::vector<std::string> SearchIds(const std::string& text, const AssetFilter& f, size_t k) {
    auto q = Vec(text);
    auto hits = engine_->Search(q.data(), f, k);
    EXPECT_TRUE(hits.ok()) << hits.status().ToString();
    std::vector<std::string> ids;
    if (hits.ok()) {
      for (const auto& h : hits.value()) ids.push_back(h.asset_id);
    }
    return ids;
  }

  fs::path dir_;
  EngineOptions options_;
  std::shared_ptr<WordEmbedder> embedder_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(CatalogTest, UpsertCountsCreatedAndUpdatedAndIsIdempotent) {
  Engine& e = Open();
  std::vector<Asset> batch = {MakeAsset("a1", "太贵了 价格 异议 处理", {"evaluation"}),
                              MakeAsset("a2", "ROI calculator payback", {"evaluation", "consideration", "evaluation"})};
  auto first = e.UpsertAssets(batch);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first.value().created, 2u);
  EXPECT_EQ(first.value().updated, 0u);
  auto second = e.UpsertAssets(batch);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value().created, 0u);
  EXPECT_EQ(second.value().updated, 2u);
  EXPECT_EQ(second.value().upserted, 2u);
  EXPECT_EQ(e.GetIndexStatus().assets, 2u);
  std::vector<std::string> missing;
  auto got = e.GetAssets({"a2", "nope", "a1"}, false, &missing);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got.value().size(), 2u);
  EXPECT_EQ(got.value()[0].id, "a2");
  EXPECT_EQ(got.value()[0].stages, (std::vector<std::string>{"consideration", "evaluation"}));  // funnel order, once
  EXPECT_EQ(missing, std::vector<std::string>{"nope"});
  EXPECT_GT(got.value()[0].created_ms, 0);
}

TEST_F(CatalogTest, ValidationNamesTheFieldAndWritesNothing) {
  Engine& e = Open();
  auto expect_field = [&](std::vector<Asset> assets, const std::string& field) {
    auto r = e.UpsertAssets(std::move(assets));
    EXPECT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(r.status().field(), field) << r.status().ToString();
    return r.status().message();
  };
  Asset good = MakeAsset("ok-1", "fine", {"awareness"});
  std::string unknown = expect_field({good, MakeAsset("x", "t", {"awareness", "closing"})}, "assets[1].stages[1]");
  EXPECT_NE(unknown.find("awareness, interest, consideration, evaluation, negotiation"),
            std::string::npos);
  expect_field({MakeAsset("bad id", "t", {"awareness"})}, "assets[0].id");
  expect_field({MakeAsset(std::string(129, 'a'), "t", {"awareness"})}, "assets[0].id");
  expect_field({MakeAsset("x", "", {"awareness"})}, "assets[0].title");
  expect_field({MakeAsset("x", "t", {})}, "assets[0].stages");
  expect_field({MakeAsset("x", "t", {"awareness"}, "Case_Study")}, "assets[0].type");
  Asset dup = good;
  expect_field({good, MakeAsset("y", "t", {"awareness"}), dup}, "assets[2].id");
  Asset vec = MakeAsset("v", "t", {"awareness"});
  vec.vector = std::vector<float>(7, 1.0f);
  expect_field({vec}, "assets[0].vector");
  vec.vector = std::vector<float>(options_.dimension, 0.0f);
  expect_field({vec}, "assets[0].vector");
  Asset tags = MakeAsset("t", "t", {"awareness"});
  tags.tags = {"ok", ""};
  expect_field({tags}, "assets[0].tags[1]");
  // None of the valid assets in those calls was written.
  std::vector<std::string> missing;
  auto got = e.GetAssets({"ok-1", "y"}, false, &missing);
  EXPECT_TRUE(got.value().empty());
  EXPECT_EQ(e.GetIndexStatus().assets, 0u);
  EXPECT_EQ(e.GetIndexStatus().catalog_seq, 0u);
}

TEST_F(CatalogTest, ClientVectorsAreUsedAsIs) {
  Engine& e = Open();
  Asset a = MakeAsset("client-vec", "anything", {"awareness"});
  a.vector.assign(options_.dimension, 0.0f);
  a.vector[3] = 2.0f;
  ASSERT_TRUE(e.UpsertAssets({a}).ok());
  std::vector<float> q(options_.dimension, 0.0f);
  q[3] = 1.0f;
  AssetFilter f;
  f.stage = "awareness";
  auto hits = e.Search(q.data(), f, 1);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits.value().size(), 1u);
  EXPECT_NEAR(hits.value()[0].score, 1.0f, 1e-5);
  std::vector<std::string> missing;
  auto got = e.GetAssets({"client-vec"}, true, &missing);
  EXPECT_TRUE(got.value()[0].vector_supplied);
  EXPECT_EQ(got.value()[0].vector, a.vector);
}

TEST_F(CatalogTest, DeleteMakesAssetsUnreachableAndKeepsNothingSearchable) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("d1", "budget objection script", {"evaluation"}),
                              MakeAsset("d2", "budget planning guide", {"evaluation"})})
                  .ok());
  auto n = e.DeleteAssets({"d1", "d1", "unknown"});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n.value(), 1u);
  EXPECT_EQ(e.DeleteAssets({"d1"}).value(), 0u);
  AssetFilter f;
  f.stage = "evaluation";
  EXPECT_EQ(SearchIds("budget objection script", f, 10), std::vector<std::string>{"d2"});
  std::vector<std::string> missing;
  EXPECT_TRUE(e.GetAssets({"d1"}, false, &missing).value().empty());
  // Upserting it again brings it back, as created.
  auto again = e.UpsertAssets({MakeAsset("d1", "budget objection script", {"evaluation"})});
  EXPECT_EQ(again.value().created, 1u);
}

TEST_F(CatalogTest, UpdatesReplaceTheOldVectorAndFields) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("u", "competitor comparison sheet", {"consideration"})}).ok());
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("u", "roi calculator payback", {"negotiation"})}).ok());
  AssetFilter f;
  f.stage = "consideration";
  EXPECT_TRUE(SearchIds("competitor comparison sheet", f, 10).empty());  // the old stage is gone
  f.stage = "negotiation";
  auto q = Vec("roi calculator payback");
  auto hits = e.Search(q.data(), f, 10);
  ASSERT_EQ(hits.value().size(), 1u);
  EXPECT_NEAR(hits.value()[0].score, 1.0f, 1e-5);  // the new text's vector
}

TEST_F(CatalogTest, ListPagesVisitEveryAssetExactlyOnce) {
  Engine& e = Open();
  std::vector<Asset> assets;
  for (int i = 0; i < 257; ++i) {
    assets.push_back(MakeAsset("asset-" + std::to_string(1000 + i), "title " + std::to_string(i),
                               {kStages[i % 5]}, i % 3 == 0 ? "roi_calculator" : "case_study"));
  }
  ASSERT_TRUE(e.UpsertAssets(assets).ok());
  ASSERT_EQ(e.DeleteAssets({"asset-1000"}).value(), 1u);
  auto collect = [&](ListQuery q) {
    std::vector<std::string> seen;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = e.ListAssets(q);
      EXPECT_TRUE(page.ok());
      for (const auto& a : page.value().assets) seen.push_back(a.id);
      if (!page.value().next_cursor) break;
      q.cursor = *page.value().next_cursor;
    }
    return seen;
  };
  ListQuery all;
  all.limit = 10;
  auto seen = collect(all);
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 256u);
  ListQuery filtered;
  filtered.limit = 7;
  filtered.stage = "interest";
  filtered.type = "roi_calculator";
  size_t expected = 0;
  for (int i = 1; i < 257; ++i) expected += (i % 5 == 1 && i % 3 == 0);
  EXPECT_EQ(collect(filtered).size(), expected);
  ListQuery exact;
  exact.limit = 256;  // exactly one full page: no next cursor
  auto page = e.ListAssets(exact);
  EXPECT_EQ(page.value().assets.size(), 256u);
  EXPECT_FALSE(page.value().next_cursor);
  ListQuery bad;
  bad.stage = "closing";
  EXPECT_EQ(e.ListAssets(bad).status().field(), "stage");
}

// Random catalog, random filters: every hit passes the filter, and the
// result equals a brute-force filtered ranking (exact search).
void CheckFiltersNeverLeak(CatalogTest& t, Engine& e, int assets, int queries, double min_recall) {
  std::mt19937 rng(42);
  const std::vector<std::string> types = {"case_study", "roi_calculator", "objection_script", "whitepaper"};
  const std::vector<std::string> langs = {"zh", "en", ""};
  const std::vector<std::string> tags = {"price", "budget", "timing", "competitor", "trust", "risk"};
  std::map<std::string, Asset> truth;
  std::vector<Asset> batch;
  for (int i = 0; i < assets; ++i) {
    Asset a = CatalogTest::MakeAsset("r" + std::to_string(i), "w" + std::to_string(rng() % 50) + " w" +
                                                                   std::to_string(rng() % 50),
                                     {});
    for (const auto& s : kStages) {
      if (rng() % 3 == 0) a.stages.push_back(s);
    }
    if (a.stages.empty()) a.stages.push_back(kStages[rng() % 5]);
    a.type = types[rng() % types.size()];
    a.language = langs[rng() % langs.size()];
    for (const auto& tag : tags) {
      if (rng() % 4 == 0) a.tags.push_back(tag);
    }
    a.active = rng() % 10 != 0;
    a.vector.resize(32);
    for (auto& x : a.vector) x = float(rng() % 1000) / 1000.0f - 0.5f;
    truth[a.id] = a;
    batch.push_back(a);
  }
  ASSERT_TRUE(e.UpsertAssets(batch).ok());
  std::vector<std::string> deleted;
  for (int i = 0; i < assets; i += 17) deleted.push_back("r" + std::to_string(i));
  ASSERT_TRUE(e.DeleteAssets(deleted).ok());
  for (const auto& id : deleted) truth.erase(id);

  double found = 0, expected_total = 0;
  for (int q = 0; q < queries; ++q) {
    AssetFilter f;
    f.stage = kStages[rng() % 5];
    if (rng() % 2) f.types = {types[rng() % types.size()]};
    if (rng() % 3 == 0) f.language = langs[rng() % 2];
    if (rng() % 3 == 0) f.tags_any = {tags[rng() % tags.size()], tags[rng() % tags.size()]};
    if (rng() % 4 == 0) f.exclude_ids = {"r" + std::to_string(rng() % assets)};
    std::vector<float> query(32);
    for (auto& x : query) x = float(rng() % 1000) / 1000.0f - 0.5f;
    const size_t k = 1 + rng() % 10;
    auto hits = e.Search(query.data(), f, k);
    ASSERT_TRUE(hits.ok());
    auto passes = [&](const Asset& a) {
      if (!a.active) return false;
      if (std::find(a.stages.begin(), a.stages.end(), f.stage) == a.stages.end()) return false;
      if (!f.types.empty() && std::find(f.types.begin(), f.types.end(), a.type) == f.types.end()) return false;
      if (!f.language.empty() && a.language != f.language) return false;
      if (!f.tags_any.empty() && std::none_of(f.tags_any.begin(), f.tags_any.end(), [&](const std::string& t) {
            return std::find(a.tags.begin(), a.tags.end(), t) != a.tags.end();
          })) {
        return false;
      }
      return std::find(f.exclude_ids.begin(), f.exclude_ids.end(), a.id) == f.exclude_ids.end();
    };
    for (const auto& h : hits.value()) {
      auto it = truth.find(h.asset_id);
      ASSERT_NE(it, truth.end()) << "a deleted asset came back: " << h.asset_id;
      ASSERT_TRUE(passes(it->second)) << "asset " << h.asset_id << " leaked through the filter for stage " << f.stage;
    }
    // Brute force.
    std::vector<std::pair<float, std::string>> all;
    double qn = 0;
    for (float x : query) qn += x * x;
    for (const auto& [id, a] : truth) {
      if (!passes(a)) continue;
      double dot = 0, an = 0;
      for (size_t d = 0; d < 32; ++d) {
        dot += a.vector[d] * query[d];
        an += a.vector[d] * a.vector[d];
      }
      all.emplace_back(float(dot / std::sqrt(an * qn)), id);
    }
    std::sort(all.begin(), all.end(), std::greater<>());
    const size_t want = std::min(k, all.size());
    ASSERT_EQ(hits.value().size(), want) << "k results whenever k eligible assets exist";
    std::set<std::string> got;
    for (const auto& h : hits.value()) got.insert(h.asset_id);
    for (size_t i = 0; i < want; ++i) found += got.count(all[i].second);
    expected_total += double(want);
  }
  const double recall = expected_total > 0 ? found / expected_total : 1.0;
  EXPECT_GE(recall, min_recall);
  std::cout << "recall over " << queries << " filtered queries: " << recall << "\n";
  (void)t;
}

TEST_F(CatalogTest, ExactFiltersNeverLeakAndMatchBruteForce) {
  options_.index.kind = "exact";
  Engine& e = Open();
  CheckFiltersNeverLeak(*this, e, 600, 300, 1.0);
}

TEST_F(CatalogTest, HnswFiltersNeverLeakAndKeepRecallHigh) {
  options_.index.kind = "hnsw";
  Engine& e = Open();
  // The first upsert starts a background build; wait for it before measuring.
  CheckFiltersNeverLeak(*this, e, 3000, 5, 0.0);
  for (int i = 0; i < 600 && (e.GetIndexStatus().rebuilding || e.GetIndexStatus().ann_assets == 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(e.GetIndexStatus().ann_assets, 0u) << e.GetIndexStatus().index;
  // Fresh random catalog over the built graph (ids r0.. are upserted again: updates).
  CheckFiltersNeverLeak(*this, e, 3000, 300, 0.95);
}

// The graph's hits are not re-scored: its scores must be the exact scan's
// numbers, bit for bit (the same kernel over the same rows), or an asset
// would rank differently by the path its filter took.
TEST_F(CatalogTest, TheGraphAndTheExactScanScoreAnAssetAlike) {
  options_.index.kind = "hnsw";
  Engine& e = Open();
  std::mt19937 rng(11);
  std::vector<Asset> batch;
  for (int i = 0; i < 2000; ++i) {
    std::string id = "g";
    id += std::to_string(i);
    Asset a = MakeAsset(id, "generated", {"evaluation"}, i % 20 == 0 ? "roi_calculator" : "case_study");
    a.vector.resize(32);
    for (auto& x : a.vector) x = float(rng() % 1000) / 1000.0f - 0.5f;
    batch.push_back(std::move(a));
  }
  ASSERT_TRUE(e.UpsertAssets(batch).ok());
  for (int i = 0; i < 600 && (e.GetIndexStatus().rebuilding || e.GetIndexStatus().exact_assets > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(e.GetIndexStatus().ann_assets, 2000u) << e.GetIndexStatus().index;
  size_t compared = 0;
  for (int q = 0; q < 50; ++q) {
    std::vector<float> query(32);
    for (auto& x : query) x = float(rng() % 1000) / 1000.0f - 0.5f;
    AssetFilter broad;  // every asset eligible: the graph
    broad.stage = "evaluation";
    AssetFilter narrow = broad;  // 5% eligible, under exact_below_fraction: the exact scan
    narrow.types = {"roi_calculator"};
    auto graph = e.Search(query.data(), broad, 200);
    auto exact = e.Search(query.data(), narrow, 100);
    ASSERT_TRUE(graph.ok() && exact.ok());
    std::map<std::string, float> by_graph;
    for (const auto& h : graph.value()) by_graph[h.asset_id] = h.score;
    for (const auto& h : exact.value()) {
      if (auto it = by_graph.find(h.asset_id); it != by_graph.end()) {
        EXPECT_EQ(it->second, h.score) << h.asset_id;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 50u);
}

TEST_F(CatalogTest, RestartLoadsTheSavedIndexWithoutRebuilding) {
  options_.index.kind = "exact";
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("s1", "price objection", {"evaluation"}),
                                     MakeAsset("s2", "case study retail", {"interest"})})
                  .ok());
  ASSERT_TRUE(engine_->DeleteAssets({"s2"}).ok());
  ASSERT_TRUE(engine_->Close().ok());
  Open();
  bool warning = true;
  EXPECT_NE(engine_->OpenNote(&warning).find("index loaded"), std::string::npos) << engine_->OpenNote(&warning);
  EXPECT_FALSE(warning);
  AssetFilter f;
  f.stage = "evaluation";
  EXPECT_EQ(SearchIds("price objection", f, 5), std::vector<std::string>{"s1"});
  EXPECT_EQ(engine_->GetIndexStatus().assets, 1u);
}

TEST_F(CatalogTest, AStopWritesTheIndexFileOnlyWhenTheIndexChanged) {
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("s1", "first save", {"awareness"})}).ok());
  ASSERT_TRUE(engine_->Close().ok());
  const fs::path file = dir_ / "index.pbidx";
  ASSERT_TRUE(fs::exists(file));
  // A marker after the file's end tells whether it was written again (the
  // reader would refuse the file with it, so it is cut off before each open).
  const auto size = fs::file_size(file);
  auto mark = [&] { std::ofstream(file, std::ios::binary | std::ios::app) << "marker"; };
  auto marked = [&] { return fs::file_size(file) == size + 6; };
  auto unmark = [&] { fs::resize_file(file, size); };
  // Opened and stopped, nothing changed: not written.
  Open();
  bool warning = true;
  EXPECT_NE(engine_->OpenNote(&warning).find("index loaded"), std::string::npos) << engine_->OpenNote(nullptr);
  mark();
  ASSERT_TRUE(engine_->Close().ok());
  EXPECT_TRUE(marked()) << "the unchanged index was written again";
  unmark();
  // Searches change nothing either.
  Open();
  AssetFilter f;
  f.stage = "awareness";
  EXPECT_EQ(SearchIds("first save", f, 1), std::vector<std::string>{"s1"});
  mark();
  ASSERT_TRUE(engine_->Close().ok());
  EXPECT_TRUE(marked());
  unmark();
  // A change is saved, and loads.
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("s2", "second save", {"awareness"})}).ok());
  mark();
  ASSERT_TRUE(engine_->Close().ok());
  EXPECT_FALSE(marked());
  Open();
  EXPECT_NE(engine_->OpenNote(&warning).find("index loaded"), std::string::npos) << engine_->OpenNote(nullptr);
  EXPECT_EQ(SearchIds("second save", f, 1), std::vector<std::string>{"s2"});
  // A delete too; and a missing file is written whatever changed.
  ASSERT_EQ(engine_->DeleteAssets({"s1"}).value(), 1u);
  ASSERT_TRUE(engine_->Close().ok());
  Open();
  EXPECT_EQ(engine_->GetIndexStatus().assets, 1u);
  EXPECT_NE(engine_->OpenNote(&warning).find("index loaded"), std::string::npos) << engine_->OpenNote(nullptr);
  fs::remove(file);
  ASSERT_TRUE(engine_->Close().ok());
  EXPECT_TRUE(fs::exists(file));
}

TEST_F(CatalogTest, DamagedIndexFileIsRebuiltWithAWarning) {
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("x1", "discount policy", {"negotiation"})}).ok());
  ASSERT_TRUE(engine_->Close().ok());
  const fs::path file = dir_ / "index.pbidx";
  ASSERT_TRUE(fs::exists(file));
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.write("garbage!", 8);
  }
  Open();
  bool warning = false;
  EXPECT_NE(engine_->OpenNote(&warning).find("not used"), std::string::npos);
  EXPECT_TRUE(warning);
  AssetFilter f;
  f.stage = "negotiation";
  EXPECT_EQ(SearchIds("discount policy", f, 5), std::vector<std::string>{"x1"});
  // A truncated file, too.
  ASSERT_TRUE(engine_->Close().ok());
  fs::resize_file(file, fs::file_size(file) / 2);
  Open();
  EXPECT_EQ(SearchIds("discount policy", f, 5), std::vector<std::string>{"x1"});
}

TEST_F(CatalogTest, StaleIndexFileFromBeforeACrashIsNotUsed) {
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("c1", "first", {"awareness"})}).ok());
  ASSERT_TRUE(engine_->Close().ok());
  const fs::path file = dir_ / "index.pbidx";
  fs::copy_file(file, dir_ / "old.pbidx");
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("c2", "second", {"awareness"})}).ok());
  ASSERT_TRUE(engine_->Close().ok());
  fs::copy_file(dir_ / "old.pbidx", file, fs::copy_options::overwrite_existing);  // as if the last save never happened
  Open();
  bool warning = false;
  EXPECT_NE(engine_->OpenNote(&warning).find("catalog sequence"), std::string::npos) << engine_->OpenNote(&warning);
  AssetFilter f;
  f.stage = "awareness";
  EXPECT_EQ(SearchIds("second", f, 1), std::vector<std::string>{"c2"});
  EXPECT_EQ(engine_->GetIndexStatus().assets, 2u);
}

TEST_F(CatalogTest, RebuildUnderConcurrentSearchesAndUpsertsLosesNothing) {
  options_.index.kind = "hnsw";
  options_.index.hnsw_ef_construction = 200;  // a slower build, so the writers overlap it
  Engine& e = Open();
  std::vector<Asset> base;
  for (int i = 0; i < 6000; ++i) {
    // Built by append: GCC 12 warns falsely (-Wrestrict) on "b" + std::to_string(i) here.
    std::string id = "b", title = "word";
    id += std::to_string(i);
    title += std::to_string(i % 97);
    title += " other";
    title += std::to_string(i % 13);
    base.push_back(MakeAsset(id, title, {kStages[i % 5]}));
  }
  ASSERT_TRUE(e.UpsertAssets(base).ok());
  for (int i = 0; i < 600 && e.GetIndexStatus().rebuilding; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, searches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      std::vector<float> q(options_.dimension);
      EXPECT_TRUE(e.Embed("word5 other3", q.data()).ok());
      AssetFilter f;
      f.stage = "evaluation";
      while (!stop) {
        auto hits = e.Search(q.data(), f, 10);
        if (!hits.ok() || hits.value().size() != 10) errors++;
        searches++;
      }
    });
  }
  std::atomic<uint64_t> progress_calls{0};
  auto job = e.StartRebuild([&](const std::string&, uint64_t, uint64_t) { progress_calls++; });
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(e.GetIndexStatus().rebuilding);
  EXPECT_EQ(e.StartRebuild(nullptr).status().code(), Status::Code::kOverloaded);
  // Writes during the rebuild: new assets, an update, a delete.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(e.UpsertAssets({MakeAsset("new" + std::to_string(i), "fresh during rebuild", {"evaluation"})}).ok());
  }
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("b0", "moved to evaluation during rebuild", {"evaluation"})}).ok());
  ASSERT_EQ(e.DeleteAssets({"b3"}).value(), 1u);  // b3 was at evaluation
  for (int i = 0; i < 1200 && e.GetIndexStatus().rebuilding; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (auto& t : readers) t.join();
  ASSERT_FALSE(e.GetIndexStatus().rebuilding);
  EXPECT_EQ(errors.load(), 0) << "over " << searches.load() << " searches";
  EXPECT_GT(progress_calls.load(), 0u);
  EXPECT_EQ(e.GetIndexStatus().assets, 6000u + 20u - 1u);
  AssetFilter f;
  f.stage = "evaluation";
  auto fresh = SearchIds("fresh during rebuild", f, 20);
  EXPECT_EQ(fresh.size(), 20u);
  for (const auto& id : fresh) EXPECT_EQ(id.rfind("new", 0), 0u) << id;
  EXPECT_EQ(SearchIds("moved to evaluation during rebuild", f, 1), std::vector<std::string>{"b0"});
  for (const auto& id : SearchIds("word3 other3", f, 100)) EXPECT_NE(id, "b3");
}

TEST_F(CatalogTest, TheGraphGrowsWithWhatArrivesAfterItAndTheGrownGraphIsSaved) {
  options_.index.kind = "hnsw";
  options_.index.rebuild_after_adds = 500;
  Engine& e = Open();
  // Until every asset is in the graph and no build runs. An upsert that
  // finds a build running starts none; the build looks again when it ends
  // (CI once saw a last batch left on the exact path here without that).
  auto wait_idle = [&] {
    for (int i = 0; i < 1200; ++i) {
      const IndexStatus st = e.GetIndexStatus();
      if (!st.rebuilding && st.exact_assets == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  auto batch = [&](const std::string& prefix, int from, int to) {
    std::vector<Asset> out;
    for (int i = from; i < to; ++i) {
      std::string id = prefix, title = "word";
      id += std::to_string(i);
      title += std::to_string(i % 89);
      title += " other";
      title += std::to_string(i % 11);
      out.push_back(MakeAsset(id, title, {kStages[size_t(i) % 5]}));
    }
    return out;
  };
  ASSERT_TRUE(e.UpsertAssets(batch("b", 0, 2000)).ok());
  wait_idle();
  ASSERT_EQ(e.GetIndexStatus().ann_assets, 2000u);
  // An import's worth after the graph: batches past rebuild_after_adds, an
  // update and a delete among them. (The update rides in a batch: one
  // upsert alone, under rebuild_after_adds, stays on the exact path.)
  ASSERT_EQ(e.DeleteAssets({"b3"}).value(), 1u);  // b3 was at evaluation
  for (int from = 0; from < 1500; from += 500) {
    auto assets = batch("n", from, from + 500);
    if (from == 1000) assets.push_back(MakeAsset("b0", "moved to evaluation later", {"evaluation"}));
    ASSERT_TRUE(e.UpsertAssets(assets).ok());
  }
  wait_idle();
  // Extended, not rebuilt: the slots kept their numbers, the old b0 among
  // them (hidden), so the graph holds 2000 + 1500 + 1 rows; a rebuild would
  // have compacted it to the 3499 live assets.
  IndexStatus st = e.GetIndexStatus();
  EXPECT_EQ(st.assets, 3499u);
  EXPECT_EQ(st.exact_assets, 0u);
  EXPECT_EQ(st.ann_assets, 3501u);
  AssetFilter f;
  f.stage = "evaluation";
  auto check = [&] {
    EXPECT_EQ(SearchIds("moved to evaluation later", f, 1), std::vector<std::string>{"b0"});
    // n3 (word3 other3, at evaluation) came after the first build.
    const auto ids = SearchIds("word3 other3", f, 100);
    EXPECT_NE(std::find(ids.begin(), ids.end(), "n3"), ids.end());
    for (const auto& id : ids) EXPECT_NE(id, "b3");
  };
  check();
  // The grown graph was saved and loads as it is.
  engine_.reset();
  Engine& again = Open();
  bool warning = true;
  EXPECT_NE(again.OpenNote(&warning).find("index loaded"), std::string::npos) << again.OpenNote(nullptr);
  EXPECT_FALSE(warning);
  for (int i = 0; i < 1200 && again.GetIndexStatus().graph == "loading"; ++i) {  // the graph loads in the background
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(again.GetIndexStatus().graph, "ready");
  EXPECT_EQ(again.GetIndexStatus().ann_assets, 3501u);
  EXPECT_EQ(again.GetIndexStatus().assets, 3499u);
  check();
}

// An upsert that arrives as a build ends (after its last round looked, before
// it is marked done) finds a build running and starts none: the build must
// take it, or a whole import batch stays on the exact path until the next.
TEST_F(CatalogTest, ABatchArrivingAsTheBuildEndsJoinsTheGraph) {
  options_.index.kind = "hnsw";
  options_.index.rebuild_after_adds = 300;
  std::atomic<int> ends{0};
  options_.build_end_test_hook = [this, &ends] {
    if (ends++ != 0) return;  // the first build's end only
    std::vector<Asset> late;
    for (int i = 0; i < 400; ++i) {
      std::string id = "late";
      id += std::to_string(i);
      late.push_back(MakeAsset(id, "late arrival " + id, {kStages[size_t(i) % 5]}));
    }
    ASSERT_TRUE(engine_->UpsertAssets(late).ok());
    EXPECT_TRUE(engine_->GetIndexStatus().rebuilding);  // so the upsert started nothing itself
  };
  Engine& e = Open();
  std::vector<Asset> first;
  for (int i = 0; i < 1000; ++i) {
    std::string id = "a";
    id += std::to_string(i);
    first.push_back(MakeAsset(id, "first import " + id, {kStages[size_t(i) % 5]}));
  }
  ASSERT_TRUE(e.UpsertAssets(first).ok());
  IndexStatus st;
  for (int i = 0; i < 1200; ++i) {
    st = e.GetIndexStatus();
    if (ends.load() >= 2 && !st.rebuilding) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(ends.load(), 2) << "the build ran once more, for the late batch";
  EXPECT_FALSE(st.rebuilding);
  EXPECT_EQ(st.assets, 1400u);
  EXPECT_EQ(st.exact_assets, 0u);
  EXPECT_EQ(st.ann_assets, 1400u);
}

// After an open the saved graph is read in the background: searches are
// answered meanwhile by the exact scan (so exactly: the brute-force answer,
// filters held), the graph then swaps in, and a stop while it is still
// loading keeps the saved graph (nothing, or the old graph's bytes with the
// new slots, is written over the file) so that the next start loads it.
class GraphLoadTest : public CatalogTest {
 public:
  GraphLoadTest() {
    options_.index.kind = "hnsw";
    options_.graph_load_test_hook = [this](const std::atomic<bool>& stopping) {
      ++hook_calls_;
      while (hold_ && !stopping) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    };
  }
  // n assets g0.. with random vectors, stages and types; the graph built and saved.
  void Seed(int n) {
    Engine& e = Open();
    std::mt19937 rng(7);
    std::vector<Asset> batch;
    for (int i = 0; i < n; ++i) {
      std::string id = "g";
      id += std::to_string(i);
      Asset a = MakeAsset(id, "title", {kStages[rng() % 5]}, i % 3 == 0 ? "case_study" : "whitepaper");
      a.vector.resize(options_.dimension);
      for (auto& x : a.vector) x = float(rng() % 1000) / 1000.0f - 0.5f;
      truth_[a.id] = a;
      batch.push_back(a);
    }
    ASSERT_TRUE(e.UpsertAssets(batch).ok());
    WaitGraph(e);
    ASSERT_EQ(e.GetIndexStatus().ann_assets, uint64_t(n));
    ASSERT_TRUE(e.Close().ok());
  }
  static void WaitGraph(Engine& e) {
    for (int i = 0; i < 2400; ++i) {
      const IndexStatus st = e.GetIndexStatus();
      if (!st.rebuilding && st.graph != "loading") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  // The exact answer: the k most similar of the assets passing the filter.
  std::vector<std::string> BruteForce(const std::vector<float>& q, const AssetFilter& f, size_t k) const {
    std::vector<std::pair<double, std::string>> all;
    for (const auto& [id, a] : truth_) {
      if (std::find(a.stages.begin(), a.stages.end(), f.stage) == a.stages.end()) continue;
      if (!f.types.empty() && a.type != f.types[0]) continue;
      double dot = 0, an = 0, qn = 0;
      for (size_t d = 0; d < q.size(); ++d) {
        dot += double(a.vector[d]) * q[d];
        an += double(a.vector[d]) * a.vector[d];
        qn += double(q[d]) * q[d];
      }
      all.emplace_back(dot / std::sqrt(an * qn), id);
    }
    std::sort(all.begin(), all.end(), std::greater<>());
    std::vector<std::string> ids;
    for (size_t i = 0; i < std::min(k, all.size()); ++i) ids.push_back(all[i].second);
    return ids;
  }
  // Searches with random queries and filters; every answer must be the
  // exact one (exact) or hold the filter with recall near it (graph).
  void CheckSearches(Engine& e, bool exact, int queries) {
    std::mt19937 rng(11);
    double found = 0, wanted = 0;
    for (int i = 0; i < queries; ++i) {
      AssetFilter f;
      f.stage = kStages[rng() % 5];
      if (rng() % 2) f.types = {"case_study"};
      std::vector<float> q(options_.dimension);
      for (auto& x : q) x = float(rng() % 1000) / 1000.0f - 0.5f;
      auto hits = e.Search(q.data(), f, 10);
      ASSERT_TRUE(hits.ok()) << hits.status().ToString();
      const auto expected = BruteForce(q, f, 10);
      std::vector<std::string> got;
      for (const auto& h : hits.value()) {
        const Asset& a = truth_.at(h.asset_id);
        ASSERT_NE(std::find(a.stages.begin(), a.stages.end(), f.stage), a.stages.end()) << h.asset_id;
        if (!f.types.empty()) {
          ASSERT_EQ(a.type, f.types[0]) << h.asset_id;
        }
        got.push_back(h.asset_id);
      }
      if (exact) {
        ASSERT_EQ(got, expected) << "query " << i;
      }
      for (const auto& id : expected) found += std::find(got.begin(), got.end(), id) != got.end();
      wanted += double(expected.size());
    }
    EXPECT_GE(found / wanted, exact ? 1.0 : 0.9);
  }

  std::map<std::string, Asset> truth_;
  std::atomic<bool> hold_{true};
  std::atomic<int> hook_calls_{0};
};

TEST_F(GraphLoadTest, SearchesAreExactWhileTheSavedGraphLoadsThenItSwapsIn) {
  ASSERT_NO_FATAL_FAILURE(Seed(3000));
  Engine& e = Open();
  EXPECT_NE(e.OpenNote(nullptr).find("loading it in the background"), std::string::npos) << e.OpenNote(nullptr);
  for (int i = 0; i < 1000 && hook_calls_ == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  IndexStatus st = e.GetIndexStatus();
  EXPECT_EQ(st.graph, "loading");
  EXPECT_FALSE(st.rebuilding);
  EXPECT_EQ(st.assets, 3000u);
  EXPECT_EQ(st.ann_assets, 0u);
  ASSERT_NO_FATAL_FAILURE(CheckSearches(e, /*exact=*/true, 200));
  // A rebuild waits for the load rather than race it.
  auto job = e.StartRebuild(nullptr);
  EXPECT_EQ(job.status().code(), Status::Code::kOverloaded);

  hold_ = false;
  WaitGraph(e);
  st = e.GetIndexStatus();
  EXPECT_EQ(st.graph, "ready");
  EXPECT_EQ(st.ann_assets, 3000u);
  EXPECT_EQ(st.exact_assets, 0u);
  ASSERT_NO_FATAL_FAILURE(CheckSearches(e, /*exact=*/false, 200));
}

TEST_F(GraphLoadTest, AStopDuringTheLoadKeepsTheSavedGraph) {
  ASSERT_NO_FATAL_FAILURE(Seed(3000));
  const fs::path file = dir_ / "index.pbidx";
  const auto size = fs::file_size(file);
  // Nothing changed: the stop writes nothing (the marker after the end stays).
  Engine& e = Open();
  for (int i = 0; i < 1000 && hook_calls_ == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(e.GetIndexStatus().graph, "loading");
  std::ofstream(file, std::ios::binary | std::ios::app) << "marker";
  ASSERT_TRUE(e.Close().ok());
  EXPECT_EQ(fs::file_size(file), size + 6) << "the file was written again";
  fs::resize_file(file, size);

  // Changed during the load (an upsert, a delete): the stop saves the new
  // slots with the old graph's bytes, which still cover the first 3000.
  Engine& changed = Open();
  for (int i = 0; i < 1000 && hook_calls_ < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(changed.GetIndexStatus().graph, "loading");
  Asset late = MakeAsset("late", "title", {"evaluation"}, "case_study");
  late.vector.assign(options_.dimension, 0.25f);
  truth_[late.id] = late;
  ASSERT_TRUE(changed.UpsertAssets({late}).ok());
  ASSERT_EQ(changed.DeleteAssets({"g0"}).value(), 1u);
  truth_.erase("g0");
  ASSERT_NO_FATAL_FAILURE(CheckSearches(changed, /*exact=*/true, 50));
  ASSERT_TRUE(changed.Close().ok());
  EXPECT_GT(fs::file_size(file), size) << "the change was not saved, or the graph was left out";

  hold_ = false;
  Engine& again = Open();
  bool warning = true;
  EXPECT_NE(again.OpenNote(&warning).find("index loaded"), std::string::npos) << again.OpenNote(nullptr);
  EXPECT_FALSE(warning);
  WaitGraph(again);
  const IndexStatus st = again.GetIndexStatus();
  EXPECT_EQ(st.graph, "ready");
  EXPECT_FALSE(st.rebuilding);
  EXPECT_EQ(st.assets, 3000u);
  EXPECT_EQ(st.ann_assets, 3000u);  // the saved graph, not a new one over 3000 live rows
  EXPECT_EQ(st.exact_assets, 1u);   // "late", after it
  ASSERT_NO_FATAL_FAILURE(CheckSearches(again, /*exact=*/false, 200));
  AssetFilter f;
  f.stage = "evaluation";
  const auto hits = again.Search(late.vector.data(), f, 1);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits.value().size(), 1u);
  EXPECT_EQ(hits.value()[0].asset_id, "late");
}

TEST_F(CatalogTest, RebuildReEmbedsVectorsOfAnotherEmbedderVersion) {
  auto v1 = std::make_shared<WordEmbedder>(options_.dimension, "words-v1");
  Open(v1);
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("e1", "alpha beta", {"awareness"}),
                                     MakeAsset("e2", "gamma delta", {"awareness"})})
                  .ok());
  Asset client = MakeAsset("e3", "client", {"awareness"});
  client.vector.assign(options_.dimension, 1.0f);
  ASSERT_TRUE(engine_->UpsertAssets({client}).ok());
  ASSERT_TRUE(engine_->Close().ok());

  auto v2 = std::make_shared<WordEmbedder>(options_.dimension, "words-v2");
  v2->set_salt(12345);
  Open(v2);
  // Counted after the open, by the background pass over the catalog that
  // computes the concepts.
  for (int i = 0; i < 500 && engine_->GetIndexStatus().concepts_pending > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(engine_->GetIndexStatus().stale_vectors, 2u);  // start-up never re-embeds
  ASSERT_TRUE(engine_->StartRebuild(nullptr).ok());
  for (int i = 0; i < 200 && engine_->GetIndexStatus().rebuilding; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(engine_->GetIndexStatus().stale_vectors, 0u);
  std::vector<std::string> missing;
  auto got = engine_->GetAssets({"e1", "e3"}, true, &missing);
  std::vector<float> expect(options_.dimension);
  v2->Embed(models::ComposeAssetText("alpha beta", "", {}), expect.data());
  EXPECT_EQ(got.value()[0].vector, expect);
  EXPECT_EQ(got.value()[1].vector, client.vector);  // the client's vector is never re-embedded
}

// A remote embedder down: upserts needing it fail and write nothing (the
// assets with their own vector in the same call included), one call embeds
// the whole batch, and a rebuild leaves the stale vectors with the reason.
TEST_F(CatalogTest, EmbedderDownFailsUpsertsAndWritesNothing) {
  auto words = std::make_shared<WordEmbedder>(options_.dimension);
  auto flaky = std::make_shared<testing::FlakyEmbedder>(words);
  auto opened = Engine::Open(options_, flaky);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Engine& e = *opened.value();

  std::vector<Asset> assets = {MakeAsset("f1", "alpha", {"evaluation"}), MakeAsset("f2", "beta", {"evaluation"}),
                               MakeAsset("f3", "gamma", {"evaluation"})};
  assets[0].vector.assign(options_.dimension, 0.0f);
  assets[0].vector[1] = 1;
  flaky->set_down(true);
  auto failed = e.UpsertAssets(assets);
  EXPECT_EQ(failed.status().code(), Status::Code::kOverloaded);
  EXPECT_EQ(failed.status().message(), "model down");
  std::vector<std::string> missing;
  ASSERT_TRUE(e.GetAssets({"f1", "f2", "f3"}, false, &missing).ok());
  EXPECT_EQ(missing.size(), 3u);
  EXPECT_EQ(e.GetIndexStatus().catalog_seq, 0u);
  std::vector<float> q(options_.dimension);
  EXPECT_EQ(e.Embed("alpha", q.data()).code(), Status::Code::kOverloaded);

  flaky->set_down(false);
  ASSERT_TRUE(e.UpsertAssets(assets).ok());
  EXPECT_EQ(flaky->calls(), 1);  // f2 and f3 in one batch
  EXPECT_TRUE(e.GetIndexStatus().reembed_error.empty());
}

TEST_F(CatalogTest, RebuildWithTheEmbedderDownKeepsStaleVectorsAndSaysWhy) {
  Open();
  ASSERT_TRUE(engine_->UpsertAssets({MakeAsset("r1", "alpha beta", {"evaluation"})}).ok());
  engine_.reset();
  auto v2 = std::make_shared<WordEmbedder>(options_.dimension, "words-v2");
  v2->set_salt(777);
  auto flaky = std::make_shared<testing::FlakyEmbedder>(v2);
  flaky->set_down(true);
  auto opened = Engine::Open(options_, flaky);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Engine& e = *opened.value();
  for (int i = 0; i < 500 && e.GetIndexStatus().concepts_pending > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(e.GetIndexStatus().stale_vectors, 1u);
  auto wait = [&] {
    for (int i = 0; i < 500 && e.GetIndexStatus().rebuilding; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  ASSERT_TRUE(e.StartRebuild(nullptr).ok());
  wait();
  EXPECT_EQ(e.GetIndexStatus().stale_vectors, 1u);
  EXPECT_EQ(e.GetIndexStatus().reembed_error, "model down");
  EXPECT_EQ(e.GetIndexStatus().assets, 1u);  // still served, with the old vector

  flaky->set_down(false);
  ASSERT_TRUE(e.StartRebuild(nullptr).ok());
  wait();
  EXPECT_EQ(e.GetIndexStatus().stale_vectors, 0u);
  EXPECT_TRUE(e.GetIndexStatus().reembed_error.empty());
}

}  // namespace
}  // namespace playbook

// Feedback, attribution and recommendations through the Engine API on a real
// RocksDB in a temp dir.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <map>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <sstream>

#include "feedback.h"
#include "playbook/engine/engine.h"
#include "storage.h"
#include "test_embedder.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;

int64_t NowForTest() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const std::vector<std::string> kStages = {"awareness", "interest", "consideration", "evaluation", "negotiation"};

class FeedbackTest : public ::testing::Test {
 public:
  FeedbackTest() {
    dir_ = fs::temp_directory_path() / ("playbook-feedback-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
    options_.dimension = 32;
    options_.ranking.explore = false;
  }
  ~FeedbackTest() override {
    engine_.reset();
    fs::remove_all(dir_);
  }
  Engine& Open() {
    engine_.reset();
    auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
    return *engine_;
  }
  static Asset MakeAsset(const std::string& id, const std::string& title, std::vector<std::string> stages,
                         const std::string& type = "objection_script") {
    Asset a;
    a.id = id;
    a.title = title;
    a.type = type;
    a.stages = std::move(stages);
    return a;
  }
  static Event Ev(const std::string& id, EventType type, const std::string& lead, const std::string& asset = "",
                  int64_t ts = 0) {
    Event e;
    e.event_id = id;
    e.type = type;
    e.lead_id = lead;
    e.asset_id = asset;
    e.ts = ts;
    return e;
  }
  Recommendation Rec(const std::string& lead, const std::string& stage, const std::string& context, size_t k,
                     bool exclude_seen = true) {
    RecommendRequest r;
    r.lead_id = lead;
    r.stage = stage;
    r.context = context;
    r.k = k;
    r.exclude_seen = exclude_seen;
    auto rec = engine_->Recommend(r);
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    return rec.ok() ? rec.value() : Recommendation{};
  }

  fs::path dir_;
  EngineOptions options_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(FeedbackTest, RepeatedEventIdsCountOnce) {
  Engine& e = Open();
  auto first = e.RecordEvents({Ev("e1", EventType::kViewed, "lead-1", "a1"), Ev("e1", EventType::kViewed, "lead-1", "a1")});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first.value().accepted, 1u);
  EXPECT_EQ(first.value().duplicates, 1u);
  auto again = e.RecordEvents({Ev("e1", EventType::kViewed, "lead-1", "a1"), Ev("e2", EventType::kUsed, "lead-1", "a1")});
  EXPECT_EQ(again.value().accepted, 1u);
  EXPECT_EQ(again.value().duplicates, 1u);
  EXPECT_EQ(e.GetLead("lead-1").value().history.size(), 2u);
  EXPECT_EQ(first.value().unknown_leads, 1u);   // never seen before
  EXPECT_EQ(first.value().unknown_assets, 1u);  // not in the catalog
}

TEST_F(FeedbackTest, ValidationIsAllOrNothingAndNamesTheField) {
  Engine& e = Open();
  auto field = [&](std::vector<Event> events) {
    auto r = e.RecordEvents(std::move(events));
    EXPECT_FALSE(r.ok());
    return r.status().field();
  };
  Event stage = Ev("s", EventType::kStageChanged, "lead-x");
  stage.stage = "closing";
  EXPECT_EQ(field({Ev("ok", EventType::kUsed, "lead-x", "a"), stage}), "events[1].stage");
  EXPECT_EQ(field({Ev("ok", EventType::kUsed, "lead-x", "")}), "events[0].asset_id");
  EXPECT_EQ(field({Ev("", EventType::kUsed, "lead-x", "a")}), "events[0].event_id");
  Event amount = Ev("m", EventType::kUsed, "lead-x", "a");
  amount.amount = 5;
  EXPECT_EQ(field({amount}), "events[0].amount");
  EXPECT_EQ(field({Ev("f", EventType::kUsed, "lead-x", "a", NowForTest() + 7 * 86400000LL)}), "events[0].ts");
  // Ids are parts of keys separated by NUL bytes.
  std::string nul_lead = "lead";
  nul_lead.push_back('\0');
  EXPECT_EQ(field({Ev("n", EventType::kUsed, nul_lead, "a")}), "events[0].lead_id");
  Event rep = Ev("r", EventType::kUsed, "lead-x", "a");
  rep.rep_id = nul_lead;
  EXPECT_EQ(field({rep}), "events[0].rep_id");
  EXPECT_FALSE(e.GetLead("lead-x").ok());  // nothing written
}

TEST_F(FeedbackTest, OutcomesCreditAssetsUsedWithThatLeadWithinTheWindow) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("x", "x", {"evaluation"}), MakeAsset("y", "y", {"evaluation"}),
                              MakeAsset("old", "old", {"evaluation"})})
                  .ok());
  const int64_t now = NowForTest();
  const int64_t day = 86400000;
  Event a_stage = Ev("a0", EventType::kStageChanged, "A", "", now - 200 * day);
  a_stage.stage = "evaluation";
  Event b_stage = Ev("b0", EventType::kStageChanged, "B", "", now - 10 * day);
  b_stage.stage = "evaluation";
  Event won = Ev("a9", EventType::kWon, "A", "", now);
  won.amount = 1200.5;
  ASSERT_TRUE(e.RecordEvents({a_stage, b_stage, Ev("a1", EventType::kUsed, "A", "old", now - 100 * day),
                              Ev("a2", EventType::kUsed, "A", "x", now - 5 * day), Ev("a3", EventType::kUsed, "A", "x", now - 4 * day),
                              Ev("b1", EventType::kUsed, "B", "y", now - 3 * day), won})
                  .ok());
  EXPECT_EQ(e.GetStats("x", "evaluation").won, 1u);  // once per deal, though used twice
  EXPECT_DOUBLE_EQ(e.GetStats("x", "evaluation").won_amount, 1200.5);
  EXPECT_EQ(e.GetStats("x", "evaluation").used, 2u);
  EXPECT_EQ(e.GetStats("y", "evaluation").won, 0u);    // another lead's asset
  EXPECT_EQ(e.GetStats("old", "evaluation").won, 0u);  // outside the 90-day window
  ASSERT_TRUE(e.RecordEvents({Ev("b9", EventType::kLost, "B", "", now)}).ok());
  EXPECT_EQ(e.GetStats("y", "evaluation").lost, 1u);
  EXPECT_EQ(e.GetStats("x", "evaluation").lost, 0u);
}

TEST_F(FeedbackTest, AdvancingCreditsAssetsUsedSinceThePreviousStageChange) {
  Engine& e = Open();
  const int64_t now = NowForTest();
  Event to_interest = Ev("1", EventType::kStageChanged, "L", "", now - 5000);
  to_interest.stage = "interest";
  Event to_consideration = Ev("3", EventType::kStageChanged, "L", "", now - 1000);
  to_consideration.stage = "consideration";
  Event back = Ev("5", EventType::kStageChanged, "L", "", now);
  back.stage = "interest";
  ASSERT_TRUE(e.RecordEvents({to_interest, Ev("2", EventType::kUsed, "L", "case-1", now - 3000), to_consideration,
                              Ev("4", EventType::kUsed, "L", "roi-1", now - 500), back})
                  .ok());
  EXPECT_EQ(e.GetStats("case-1", "interest").advanced, 1u);
  EXPECT_EQ(e.GetStats("roi-1", "consideration").advanced, 0u);  // moving back is not advancing
  auto lead = e.GetLead("L");
  EXPECT_EQ(lead.value().stage, "interest");
  EXPECT_EQ(lead.value().history.front().event_id, "1");  // oldest first
}

TEST_F(FeedbackTest, OneCallsStageChangesCreditEachUseOnce) {
  Engine& e = Open();
  // All events share the default ts: the recorded order decides what was
  // used "since the previous stage change".
  Event to_interest = Ev("1", EventType::kStageChanged, "L");
  to_interest.stage = "interest";
  Event to_consideration = Ev("3", EventType::kStageChanged, "L");
  to_consideration.stage = "consideration";
  Event to_evaluation = Ev("4", EventType::kStageChanged, "L");
  to_evaluation.stage = "evaluation";
  ASSERT_TRUE(e.RecordEvents({to_interest, Ev("2", EventType::kUsed, "L", "case-1"), to_consideration, to_evaluation}).ok());
  EXPECT_EQ(e.GetStats("case-1", "interest").advanced, 1u);
}

TEST_F(FeedbackTest, EffectivenessIsLearntPerContextTopic) {
  Engine& e = Open();
  // Two assets that read alike; one truly helps price objections, the other timing ones.
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("helps-price", "objection handling guide", {"evaluation"}),
                              MakeAsset("helps-timing", "objection handling guide", {"evaluation"})})
                  .ok());
  options_.ranking.duplicate_similarity = 1.01;
  Engine& e2 = Open();
  int n = 0;
  auto lead_uses = [&](const std::string& topic, const std::string& asset, bool advances) {
    const std::string lead = "lead-" + std::to_string(n++);
    auto rec = Rec(lead, "evaluation", "#" + topic + " objection", 2, /*exclude_seen=*/false);
    ASSERT_EQ(rec.items.size(), 2u);
    std::vector<Event> events = {Ev(lead + "-u", EventType::kUsed, lead, asset)};
    if (advances) {
      Event adv = Ev(lead + "-a", EventType::kStageChanged, lead);
      adv.stage = "negotiation";
      events.push_back(adv);
    }
    ASSERT_TRUE(e2.RecordEvents(events).ok());
  };
  for (int i = 0; i < 25; ++i) {
    lead_uses("price", "helps-price", true);
    lead_uses("price", "helps-timing", false);
    lead_uses("timing", "helps-timing", true);
    lead_uses("timing", "helps-price", false);
  }
  // Per (asset, stage) both advanced half their leads; per topic they differ.
  EXPECT_EQ(e2.GetStats("helps-price", "evaluation").advanced, 25u);
  EXPECT_EQ(e2.GetStats("helps-timing", "evaluation").advanced, 25u);
  EXPECT_EQ(Rec("fresh-1", "evaluation", "#price objection", 2).items[0].asset_id, "helps-price");
  EXPECT_EQ(Rec("fresh-2", "evaluation", "#timing objection", 2).items[0].asset_id, "helps-timing");
}

// Recommend shows what the index holds in memory (no catalog read): the
// asset's title, type, url and the lexicon concepts behind a reason, as of
// its last upsert, after a reopen from the saved index, a reopen that
// rebuilds from the catalog, and a background rebuild.
TEST_F(FeedbackTest, DisplayFieldsAndConceptsFollowUpdatesReopensAndRebuilds) {
  Engine& e = Open();
  Asset roi = MakeAsset("roi", "#price calculator", {"evaluation"}, "roi_calculator");
  roi.url = "https://example.com/roi";
  ASSERT_TRUE(e.UpsertAssets({roi, MakeAsset("sheet", "product sheet #timing", {"evaluation"}, "product_sheet")}).ok());
  int lead = 0;
  auto expect_shown = [&](const std::string& title, const std::string& url, const std::string& concept_id) {
    auto rec = Rec(std::string("lead-").append(std::to_string(++lead)), "evaluation",
                   std::string("#").append(concept_id).append(" objection"), 2, false);
    ASSERT_EQ(rec.items.size(), 2u);
    const RecommendedItem& it = rec.items[0].asset_id == "roi" ? rec.items[0] : rec.items[1];
    EXPECT_EQ(it.asset_id, "roi");
    EXPECT_EQ(it.title, title);
    EXPECT_EQ(it.type, "roi_calculator");
    EXPECT_EQ(it.url, url);
    ASSERT_FALSE(it.reasons.empty());
    EXPECT_EQ(it.reasons[0], std::string("matches the ").append(concept_id).append(" concern in the lead's context"));
  };
  expect_shown("#price calculator", "https://example.com/roi", "price");
  roi.title = "#budget calculator";
  roi.url = "https://example.com/roi-2";
  ASSERT_TRUE(e.UpsertAssets({roi}).ok());
  expect_shown("#budget calculator", "https://example.com/roi-2", "budget");
  // After an open the concepts are computed in the background: wait for them.
  auto concepts_known = [](Engine& opened) {
    for (int i = 0; i < 1000 && opened.GetIndexStatus().concepts_pending > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(opened.GetIndexStatus().concepts_pending, 0u);
  };
  concepts_known(Open());  // loads the index saved at close
  expect_shown("#budget calculator", "https://example.com/roi-2", "budget");
  engine_.reset();
  fs::remove(dir_ / "index.pbidx");
  Engine& rebuilt = Open();  // rebuilt from the stored catalog
  EXPECT_NE(rebuilt.OpenNote(nullptr).find("built from the catalog"), std::string::npos) << rebuilt.OpenNote(nullptr);
  concepts_known(rebuilt);
  expect_shown("#budget calculator", "https://example.com/roi-2", "budget");
  ASSERT_TRUE(rebuilt.StartRebuild(nullptr).ok());
  for (int i = 0; i < 600 && rebuilt.GetIndexStatus().rebuilding; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  expect_shown("#budget calculator", "https://example.com/roi-2", "budget");
}

// A WordEmbedder whose Concepts, off the test's own thread, waits until
// released: the background computation after an open is held, and a
// computation on the opening or answering thread is counted.
class GatedConcepts : public testing::WordEmbedder {
 public:
  explicit GatedConcepts(uint32_t dim) : WordEmbedder(dim) {}
  std::vector<std::string> Concepts(std::string_view text) const override {
    if (std::this_thread::get_id() == owner_) {
      if (text.find("calculator") != std::string_view::npos) ++asset_texts_on_owner_;
    } else {
      for (int i = 0; i < 1000 && !released_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return WordEmbedder::Concepts(text);
  }
  void Release() { released_ = true; }
  int asset_texts_on_owner() const { return asset_texts_on_owner_; }

 private:
  const std::thread::id owner_ = std::this_thread::get_id();
  mutable std::atomic<int> asset_texts_on_owner_{0};
  std::atomic<bool> released_{false};
};

// An open does not compute the assets' lexicon concepts (29 us an asset with
// the built-in lexicon): they come in the background, and until then
// recommend answers the same items without the concept reason.
TEST_F(FeedbackTest, ConceptsAreComputedAfterTheOpenNotOnTheAnswerPath) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("roi", "#price calculator", {"evaluation"}, "roi_calculator"),
                              MakeAsset("tco", "#budget calculator", {"evaluation"}, "roi_calculator")})
                  .ok());
  const auto before = Rec("lead-1", "evaluation", "#price objection", 2, false);
  ASSERT_EQ(before.items.size(), 2u);
  ASSERT_FALSE(before.items[0].reasons.empty());
  EXPECT_EQ(before.items[0].reasons[0], "matches the price concern in the lead's context");
  engine_.reset();

  auto gated = std::make_shared<GatedConcepts>(options_.dimension);
  auto opened = Engine::Open(options_, gated);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  engine_ = std::move(opened).value();
  EXPECT_EQ(gated->asset_texts_on_owner(), 0);  // not at open
  EXPECT_EQ(engine_->GetIndexStatus().concepts_pending, 2u);
  const auto pending = Rec("lead-2", "evaluation", "#price objection", 2, false);
  ASSERT_EQ(pending.items.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(pending.items[i].asset_id, before.items[i].asset_id);
    for (const std::string& r : pending.items[i].reasons) EXPECT_EQ(r.find("concern"), std::string::npos) << r;
  }
  EXPECT_EQ(gated->asset_texts_on_owner(), 0);  // nor on the answer path

  gated->Release();
  for (int i = 0; i < 1000 && engine_->GetIndexStatus().concepts_pending > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(engine_->GetIndexStatus().concepts_pending, 0u);
  const auto after = Rec("lead-3", "evaluation", "#price objection", 2, false);
  ASSERT_EQ(after.items.size(), 2u);
  EXPECT_EQ(after.items[0].asset_id, before.items[0].asset_id);
  ASSERT_FALSE(after.items[0].reasons.empty());
  EXPECT_EQ(after.items[0].reasons[0], "matches the price concern in the lead's context");
  EXPECT_EQ(gated->asset_texts_on_owner(), 0);
}

TEST_F(FeedbackTest, RecommendNeverReturnsIneligibleAssets) {
  Engine& e = Open();
  std::mt19937 rng(3);
  std::vector<Asset> assets;
  std::map<std::string, Asset> by_id;
  const std::vector<std::string> types = {"case_study", "roi_calculator", "objection_script"};
  for (int i = 0; i < 300; ++i) {
    std::string id = "a", body = "price budget w";  // not "literal" + to_string: GCC 12's -Wrestrict
    id += std::to_string(i);
    body += std::to_string(rng() % 20);
    Asset a = MakeAsset(id, body, {kStages[rng() % 5]}, types[rng() % 3]);
    if (rng() % 3 == 0) a.stages.push_back(kStages[rng() % 5]);
    a.language = rng() % 2 ? "zh" : "en";
    a.active = rng() % 8 != 0;
    assets.push_back(a);
    by_id[a.id] = a;
  }
  ASSERT_TRUE(e.UpsertAssets(assets).ok());
  for (int q = 0; q < 200; ++q) {
    RecommendRequest r;
    r.lead_id = "lead-" + std::to_string(q % 17);
    r.stage = kStages[rng() % 5];
    r.context = q % 3 ? "price w" + std::to_string(rng() % 20) : "";
    r.k = 1 + rng() % 10;
    if (rng() % 2) r.filter.types = {types[rng() % 3]};
    if (rng() % 3 == 0) r.filter.language = "zh";
    auto rec = e.Recommend(r);
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    size_t eligible = 0;
    for (const auto& [id, a] : by_id) {
      bool ok = a.active && std::count(a.stages.begin(), a.stages.end(), r.stage) &&
                (r.filter.types.empty() || a.type == r.filter.types[0]) &&
                (r.filter.language.empty() || a.language == r.filter.language);
      eligible += ok;
    }
    std::set<std::string> seen;
    for (const auto& item : rec.value().items) {
      const Asset& a = by_id[item.asset_id];
      EXPECT_TRUE(a.active);
      EXPECT_TRUE(std::count(a.stages.begin(), a.stages.end(), r.stage)) << item.asset_id << " at " << r.stage;
      if (!r.filter.types.empty()) {
        EXPECT_EQ(a.type, r.filter.types[0]);
      }
      if (!r.filter.language.empty()) {
        EXPECT_EQ(a.language, r.filter.language);
      }
      EXPECT_FALSE(item.reasons.empty());
      EXPECT_TRUE(seen.insert(item.asset_id).second) << "an asset twice";
    }
    // Shown assets are not "seen" (only used, viewed, dismissed are), so k
    // items come back whenever k eligible assets exist.
    EXPECT_EQ(rec.value().items.size(), std::min(r.k, eligible));
  }
}

TEST_F(FeedbackTest, ExcludeSeenAndExcludeIdsAndColdStart) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("p1", "太贵了 price one", {"evaluation"}), MakeAsset("p2", "太贵了 price two", {"evaluation"}),
                              MakeAsset("p3", "太贵了 price three", {"evaluation"})})
                  .ok());
  auto cold = Rec("never-seen", "evaluation", "太贵了", 5);  // a lead the engine has never seen
  EXPECT_EQ(cold.items.size(), 3u);
  EXPECT_FALSE(cold.id.empty());
  ASSERT_TRUE(e.RecordEvents({Ev("u1", EventType::kUsed, "L", "p1"), Ev("d1", EventType::kDismissed, "L", "p2")}).ok());
  auto rec = Rec("L", "evaluation", "太贵了", 5);
  ASSERT_EQ(rec.items.size(), 1u);
  EXPECT_EQ(rec.items[0].asset_id, "p3");
  EXPECT_EQ(Rec("L", "evaluation", "太贵了", 5, /*exclude_seen=*/false).items.size(), 3u);
  RecommendRequest r;
  r.lead_id = "other";
  r.stage = "evaluation";
  r.context = "太贵了";
  r.filter.exclude_ids = {"p3", "p1"};
  auto ex = e.Recommend(r);
  ASSERT_EQ(ex.value().items.size(), 1u);
  EXPECT_EQ(ex.value().items[0].asset_id, "p2");
  // Each returned item was recorded as shown, for that lead and recommendation.
  auto lead = e.GetLead("never-seen");
  ASSERT_TRUE(lead.ok());
  EXPECT_EQ(lead.value().history.size(), 3u);
  EXPECT_EQ(lead.value().history[0].recommendation_id, cold.id);
  EXPECT_EQ(lead.value().stage, "evaluation");
  EXPECT_GE(e.GetStats("p1", "evaluation").shown, 1u);
  EXPECT_EQ(e.Recommend(RecommendRequest{"x", "closing", "", {}, 5, {}, true, "", ""}).status().field(), "lead.stage");
}

TEST_F(FeedbackTest, AWinnerRanksAboveALoserAfterThirtyOutcomesEach) {
  Engine& e = Open();
  // Same text, so similarity cannot tell them apart.
  ASSERT_TRUE(e.UpsertAssets({MakeAsset("winner", "budget objection script", {"negotiation"}),
                              MakeAsset("loser", "budget objection script", {"negotiation"})})
                  .ok());
  options_.ranking.duplicate_similarity = 1.01;  // identical text must not collapse the pair
  Engine& e2 = Open();
  std::vector<Event> events;
  for (int i = 0; i < 30; ++i) {
    // Built by append: GCC 12 warns falsely (-Wrestrict) on "w" + std::to_string(i) here.
    const std::string w = std::string("w").append(std::to_string(i)), l = std::string("l").append(std::to_string(i));
    Event sw = Ev(w + "s", EventType::kStageChanged, w);
    sw.stage = "negotiation";
    Event sl = Ev(l + "s", EventType::kStageChanged, l);
    sl.stage = "negotiation";
    events.insert(events.end(), {sw, Ev(w + "u", EventType::kUsed, w, "winner"), Ev(w + "o", EventType::kWon, w),
                                 sl, Ev(l + "u", EventType::kUsed, l, "loser"), Ev(l + "o", EventType::kLost, l)});
  }
  ASSERT_TRUE(e2.RecordEvents(events).ok());
  EXPECT_EQ(e2.GetStats("winner", "negotiation").won, 30u);
  EXPECT_EQ(e2.GetStats("loser", "negotiation").lost, 30u);
  auto rec = Rec("fresh", "negotiation", "budget objection", 2);
  ASSERT_EQ(rec.items.size(), 2u);
  EXPECT_EQ(rec.items[0].asset_id, "winner");
  EXPECT_EQ(rec.items[1].asset_id, "loser");
  EXPECT_NE(rec.items[0].reasons.end(),
            std::find(rec.items[0].reasons.begin(), rec.items[0].reasons.end(), "used in 30 won deals at negotiation"));
  // Thompson sampling with a fixed seed: still the winner first nearly always.
  options_.ranking.explore = true;
  options_.ranking.seed = 7;
  Engine& e3 = Open();
  (void)e3;
  int winner_first = 0;
  for (int i = 0; i < 50; ++i) {
    winner_first +=
        Rec(std::string("t").append(std::to_string(i)), "negotiation", "budget objection", 2).items[0].asset_id == "winner";
  }
  EXPECT_GE(winner_first, 45);
}

TEST_F(FeedbackTest, ConcurrentWritersLoseNothingAndSurviveARestart) {
  Engine& e = Open();
  constexpr int kThreads = 8, kCalls = 50, kPerCall = 4;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> accepted{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        std::vector<Event> batch;
        for (int i = 0; i < kPerCall; ++i) {
          std::string id = "t", lead = "lead-", asset = "asset-";
          id.append(std::to_string(t)).append("-").append(std::to_string(c)).append("-").append(std::to_string(i));
          lead.append(std::to_string(t));
          asset.append(std::to_string(i));
          batch.push_back(Ev(id, EventType::kViewed, lead, asset));
        }
        auto r = e.RecordEvents(batch);
        if (r.ok()) accepted += r.value().accepted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), uint64_t(kThreads * kCalls * kPerCall));
  ASSERT_TRUE(engine_->Close().ok());
  Engine& again = Open();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(again.GetLead("lead-" + std::to_string(t)).value().history.size(), size_t(kCalls * kPerCall));
  }
  EXPECT_EQ(again.GetStats("asset-0", "").viewed, uint64_t(kThreads * kCalls));  // counters survive too
}

// ---------------------------------------------------------------------------
// The feedback store itself (white-box): attribution by event time, the lead
// state that replaces history scans, exclusions from memory.

// A FeedbackStore on its own RocksDB, as the engine opens it.
class Store {
 public:
  Store(const fs::path& dir, const EngineOptions& options) : options_(options) {
    rocksdb::DBOptions dbo;
    dbo.create_if_missing = true;
    dbo.create_missing_column_families = true;
    rocksdb::ColumnFamilyOptions cfo, stats = cfo;
    stats.merge_operator = NewCounterMergeOperator();
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, cfo}, {"events", cfo}, {"event_ids", cfo}, {"leads", cfo}, {"stats", stats}, {"event_seqs", cfo}};
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(dbo, dir.string(), cfs, &handles_, &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(raw);
    storage_ = std::make_unique<StorageState>(raw, handles_[0]);
    store_ = std::make_unique<FeedbackStore>(raw, FeedbackColumns{handles_[0], handles_[1], handles_[2], handles_[3], handles_[4], handles_[5]},
                                             options_, [](const std::string&) { return true; }, storage_.get());
    Status o = store_->Open();
    EXPECT_TRUE(o.ok()) << o.ToString();
  }
  ~Store() {
    store_.reset();
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    db_.reset();
  }
  FeedbackStore& operator*() { return *store_; }
  FeedbackStore* operator->() { return store_.get(); }
  rocksdb::DB* db() { return db_.get(); }
  rocksdb::ColumnFamilyHandle* meta() { return handles_[0]; }
  rocksdb::ColumnFamilyHandle* event_ids() { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* leads() { return handles_[3]; }
  rocksdb::ColumnFamilyHandle* stats() { return handles_[4]; }
  rocksdb::ColumnFamilyHandle* event_seqs() { return handles_[5]; }
  // Stops the feedback store (Close), keeping the database open.
  void StopStore() { store_.reset(); }
  // Every key and value of a column family.
  std::map<std::string, std::string> Dump(rocksdb::ColumnFamilyHandle* cf) {
    std::map<std::string, std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) out[it->key().ToString()] = it->value().ToString();
    EXPECT_TRUE(it->status().ok());
    return out;
  }
  void Record(std::vector<Event> events) {
    const Status valid = ValidateEvents(&events, options_);
    ASSERT_TRUE(valid.ok()) << valid.ToString();
    auto r = store_->Record(std::move(events));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

 private:
  const EngineOptions options_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<StorageState> storage_;
  std::unique_ptr<FeedbackStore> store_;
};

std::string Show(const AssetStageStats& s) {
  std::ostringstream o;
  o << s.shown << ' ' << s.used << ' ' << s.viewed << ' ' << s.dismissed << ' ' << s.won << ' ' << s.lost << ' '
    << s.advanced << ' ' << s.won_amount;
  return o.str();
}

// Everything the store answers about counters, as one text to compare.
std::string Everything(FeedbackStore& f, const EngineOptions& options, const std::vector<std::string>& assets,
                       const std::vector<std::string>& reps, const std::vector<std::string>& leads) {
  std::ostringstream o;
  std::vector<std::string> stages = options.stages;
  stages.push_back("");
  for (const std::string& stage : stages) {
    o << "totals " << stage << ": " << Show(f.StageTotals(stage)) << "\n";
    for (const std::string& a : assets) {
      o << a << " at " << stage << ": " << Show(f.Stats(a, stage)) << " / " << Show(f.Stats(a, stage, "price")) << "\n";
    }
    std::vector<std::string> by_rep = reps;
    by_rep.push_back("");
    for (const std::string& rep : by_rep) {
      auto sums = f.Aggregate(0, INT64_MAX / 2, stage, rep);
      std::sort(sums.by_asset.begin(), sums.by_asset.end(),
                [](const auto& x, const auto& y) { return x.asset_id < y.asset_id; });
      o << "aggregate " << stage << "/" << rep << ": " << sums.leads_won << ' ' << sums.leads_lost << ' '
        << sums.won_amount << "\n";
      for (const auto& a : sums.by_asset) o << "  " << a.asset_id << ' ' << Show(a.stats) << ' ' << a.last_used << "\n";
    }
    auto dismissals = f.Dismissals(0, INT64_MAX / 2, stage);
    std::sort(dismissals.begin(), dismissals.end(),
              [](const auto& x, const auto& y) { return std::tie(x.asset, x.reason) < std::tie(y.asset, y.reason); });
    for (const auto& d : dismissals) o << "dismissed " << stage << ' ' << d.asset << ' ' << d.reason << ' ' << d.count << "\n";
  }
  for (const auto& [key, c] : f.Funnel(0, INT64_MAX / 2)) {
    o << "funnel " << key.size() << ":";
    for (int64_t v : c) o << ' ' << v;
    o << "\n";
  }
  std::map<std::string, std::pair<uint64_t, uint64_t>> closed;
  for (const auto& [rep, s] : f.Reps(0, INT64_MAX / 2, &closed)) o << "rep " << rep << ' ' << Show(s) << "\n";
  for (const auto& [rep, wl] : closed) o << "closed " << rep << ' ' << wl.first << ' ' << wl.second << "\n";
  for (const std::string& lead : leads) {
    std::vector<std::string> seen = f.SeenAssets(lead);
    std::sort(seen.begin(), seen.end());
    o << "seen " << lead << ":";
    for (const std::string& a : seen) o << ' ' << a;
    o << "\n";
  }
  return o.str();
}

class FeedbackStoreTest : public FeedbackTest {
 public:
  fs::path Dir(const std::string& name) {
    fs::create_directories(dir_ / name);
    return dir_ / name;
  }
  static Event Stage(const std::string& id, const std::string& lead, const std::string& stage, int64_t ts) {
    Event e = Ev(id, EventType::kStageChanged, lead, "", ts);
    e.stage = stage;
    return e;
  }
  // A random log of n events (distinct times, in time order) over the leads,
  // assets and reps: every kind of event, retries of some.
  std::vector<Event> RandomLog(std::mt19937& rng, int n, int64_t t0, const std::vector<std::string>& leads,
                               const std::vector<std::string>& assets, const std::vector<std::string>& reps) {
    const int64_t day = 86400000;
    std::vector<Event> log;
    int64_t ts = t0;
    for (int i = 0; i < n; ++i) {
      ts += 1 + int64_t(rng() % (day / 25));  // distinct times: the order by ts is the whole order
      const std::string& lead = leads[rng() % leads.size()];
      const std::string id = std::string("e").append(std::to_string(i));
      const std::string& asset = assets[rng() % assets.size()];
      const int kind = int(rng() % 20);
      Event e;
      if (kind < 7) {
        e = Ev(id, EventType::kUsed, lead, asset, ts);
      } else if (kind < 10) {
        e = Ev(id, EventType::kViewed, lead, asset, ts);
      } else if (kind < 12) {
        e = Ev(id, EventType::kDismissed, lead, asset, ts);
        e.reason = rng() % 2 ? "already sent" : "";
      } else if (kind < 15) {
        e = Stage(id, lead, options_.stages[rng() % options_.stages.size()], ts);
      } else if (kind < 17) {
        e = Ev(id, EventType::kShown, lead, asset, ts);
        e.stage = options_.stages[rng() % options_.stages.size()];
        e.topic = rng() % 2 ? "price" : "";
      } else {
        e = Ev(id, rng() % 2 ? EventType::kWon : EventType::kLost, lead, "", ts);
        if (e.type == EventType::kWon) e.amount = double(rng() % 100000) / 100;
      }
      e.rep_id = reps[rng() % reps.size()];
      log.push_back(e);
      if (rng() % 10 == 0) log.push_back(e);  // a retry: the same event again
    }
    return log;
  }
  // Records the events in calls of 1..40 events.
  static void RecordInCalls(Store& store, const std::vector<Event>& events, std::mt19937& rng) {
    for (size_t i = 0; i < events.size();) {
      const size_t n = std::min(events.size() - i, size_t(1 + rng() % 40));
      store.Record(std::vector<Event>(events.begin() + long(i), events.begin() + long(i + n)));
      i += n;
    }
  }
};

TEST_F(FeedbackStoreTest, AShuffledLogCountsAsTheSameLogInTimeOrderAndAsItsReaggregation) {
  options_.attribution_window_days = 10;  // so that uses leave the window
  const int64_t day = 86400000, t0 = NowForTest() - 60 * day;
  std::mt19937 rng(11);
  const std::vector<std::string> assets = {"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"};
  const std::vector<std::string> reps = {"r0", "r1", "r2"};
  std::vector<std::string> leads;
  for (int l = 0; l < 8; ++l) leads.push_back(std::string("lead-").append(std::to_string(l)));
  const std::vector<Event> log = RandomLog(rng, 1500, t0, leads, assets, reps);
  Store in_order(Dir("in-order"), options_), shuffled(Dir("shuffled"), options_);
  RecordInCalls(in_order, log, rng);
  std::vector<Event> arrival = log;
  std::shuffle(arrival.begin(), arrival.end(), rng);
  RecordInCalls(shuffled, arrival, rng);

  const std::string want = Everything(*in_order, options_, assets, reps, leads);
  EXPECT_EQ(Everything(*shuffled, options_, assets, reps, leads), want);
  EXPECT_EQ(in_order->LogRecordsRead(), 0u);  // in time order: never a history read
  EXPECT_GT(shuffled->LogRecordsRead(), 0u);  // late events re-derived their lead
  for (Store* s : {&in_order, &shuffled}) {
    auto check = (*s)->Reaggregate(false, nullptr);
    ASSERT_TRUE(check.ok()) << check.status().ToString();
    EXPECT_EQ(check.value().differing, 0u);
    EXPECT_EQ(check.value().leads, leads.size());
  }
  // And the numbers are those of the definition, computed here from the whole
  // history of each lead (not from the lead state the store keeps).
  struct Use {
    std::string asset, stage, rep;
    int64_t ts;
  };
  struct Lead {
    std::string stage;
    std::vector<Use> uses;
    size_t since_change = 0;
  };
  std::map<std::string, Lead> state;
  std::map<std::pair<std::string, std::string>, std::array<int64_t, 5>> expected;  // used won lost advanced cents
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> won_by_rep;  // (stage, rep, asset)
  std::vector<Event> by_time = log;
  std::stable_sort(by_time.begin(), by_time.end(), [](const Event& a, const Event& b) { return a.ts < b.ts; });
  std::set<std::string> ids;
  const int64_t window = int64_t(options_.attribution_window_days) * day;
  auto index = [&](const std::string& stage) {
    return int(std::find(options_.stages.begin(), options_.stages.end(), stage) - options_.stages.begin());
  };
  for (const Event& e : by_time) {
    if (!ids.insert(e.event_id).second) continue;
    Lead& lead = state[e.lead_id];
    if (e.type == EventType::kShown) lead.stage = e.stage;
    if (e.type == EventType::kUsed) {
      lead.uses.push_back({e.asset_id, lead.stage, e.rep_id, e.ts});
      expected[{e.asset_id, lead.stage}][0] += 1;
    }
    if (e.type == EventType::kStageChanged) {
      const int from = lead.stage.empty() ? -1 : index(lead.stage), to = index(e.stage);
      std::set<std::pair<std::string, std::string>> once;
      for (size_t i = lead.since_change; from >= 0 && to > from && i < lead.uses.size(); ++i) {
        const std::pair<std::string, std::string> key{lead.uses[i].asset, lead.uses[i].stage};
        if (once.insert(key).second) expected[key][3] += 1;
      }
      lead.since_change = lead.uses.size();
      lead.stage = e.stage;
    }
    if (e.type == EventType::kWon || e.type == EventType::kLost) {
      const bool won = e.type == EventType::kWon;
      const int64_t cents = won ? int64_t(std::llround(e.amount * 100)) : 0;
      std::set<std::pair<std::string, std::string>> once;
      for (const Use& u : lead.uses) {
        if (u.ts < e.ts - window || !once.insert({u.asset, u.stage}).second) continue;
        auto& w = expected[{u.asset, u.stage}];
        w[won ? 1 : 2] += 1;
        w[4] += cents;
        if (won) won_by_rep[{u.stage, u.rep, u.asset}] += 1;
      }
    }
  }
  uint64_t won = 0, advanced = 0;
  for (const std::string& a : assets) {
    for (const std::string& stage : options_.stages) {
      const AssetStageStats got = in_order->Stats(a, stage);
      const auto it = expected.find({a, stage});
      const std::array<int64_t, 5> w = it == expected.end() ? std::array<int64_t, 5>{} : it->second;
      EXPECT_EQ(got.used, uint64_t(w[0])) << a << " at " << stage;
      EXPECT_EQ(got.won, uint64_t(w[1])) << a << " at " << stage;
      EXPECT_EQ(got.lost, uint64_t(w[2])) << a << " at " << stage;
      EXPECT_EQ(got.advanced, uint64_t(w[3])) << a << " at " << stage;
      EXPECT_DOUBLE_EQ(got.won_amount, double(w[4]) / 100.0) << a << " at " << stage;
      won += got.won;
      advanced += got.advanced;
      for (const std::string& rep : reps) {  // the rep of the first use in the window gets the credit
        uint64_t got_won = 0;
        for (const auto& activity : in_order->Aggregate(0, INT64_MAX / 2, stage, rep).by_asset) {
          if (activity.asset_id == a) got_won = activity.stats.won;
        }
        const auto r = won_by_rep.find({stage, rep, a});
        EXPECT_EQ(got_won, r == won_by_rep.end() ? 0u : r->second) << a << " at " << stage << " by " << rep;
      }
    }
  }
  EXPECT_GT(won, 0u);  // attribution happened: the comparisons are not of empty counters
  EXPECT_GT(advanced, 0u);
}

TEST_F(FeedbackStoreTest, ALateUseIsCreditedToAnOutcomeRecordedBeforeIt) {
  Store store(Dir("db"), options_);
  const int64_t t0 = NowForTest() - 100000;
  Event won = Ev("w", EventType::kWon, "L", "", t0 + 20);
  won.amount = 10;
  store.Record({Stage("s", "L", "evaluation", t0), won});
  store.Record({Ev("u", EventType::kUsed, "L", "x", t0 + 10)});  // the CRM syncs it late
  EXPECT_EQ(store->Stats("x", "evaluation").used, 1u);
  EXPECT_EQ(store->Stats("x", "evaluation").won, 1u);
  EXPECT_DOUBLE_EQ(store->Stats("x", "evaluation").won_amount, 10);
  // The funnel: won at evaluation with content, no longer without.
  const auto funnel = store->Funnel(0, INT64_MAX / 2);
  std::string with = "evaluation", without = "evaluation";
  with.push_back('\0');
  with.push_back('1');
  without.push_back('\0');
  without.push_back('0');
  ASSERT_TRUE(funnel.count(with));
  EXPECT_EQ(funnel.at(with)[2], 1);
  EXPECT_EQ(funnel.count(without) ? funnel.at(without)[2] : 0, 0);
  // A use after the outcome, even arriving in the same call, is not credited.
  store.Record({Ev("u2", EventType::kUsed, "L", "y", t0 + 30)});
  EXPECT_EQ(store->Stats("y", "evaluation").won, 0u);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(FeedbackStoreTest, ALateStageChangeRecreditsTheUsesItSeparates) {
  Store store(Dir("db"), options_);
  const int64_t t0 = NowForTest() - 100000;
  store.Record({Stage("1", "L", "interest", t0), Ev("a", EventType::kUsed, "L", "a", t0 + 10),
                Ev("b", EventType::kUsed, "L", "b", t0 + 30), Stage("2", "L", "negotiation", t0 + 40)});
  EXPECT_EQ(store->Stats("a", "interest").advanced, 1u);
  EXPECT_EQ(store->Stats("b", "interest").advanced, 1u);
  store.Record({Stage("late", "L", "consideration", t0 + 20)});
  EXPECT_EQ(store->Stats("a", "interest").advanced, 1u);      // by the late change
  EXPECT_EQ(store->Stats("b", "interest").used, 0u);          // b was used at consideration ...
  EXPECT_EQ(store->Stats("b", "interest").advanced, 0u);
  EXPECT_EQ(store->Stats("b", "consideration").used, 1u);
  EXPECT_EQ(store->Stats("b", "consideration").advanced, 1u);  // ... and advanced the lead from there
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
  auto lead = store->GetLead("L");
  ASSERT_TRUE(lead.ok());
  EXPECT_EQ(lead.value().stage, "negotiation");
}

TEST_F(FeedbackStoreTest, ALeadOfAHundredThousandEventsIsNeverReadBackForInOrderEvents) {
  Store store(Dir("db"), options_);
  constexpr int kEvents = 100000, kPerCall = 1000;
  const int64_t t0 = NowForTest() - 2LL * kEvents * 1000;
  int64_t ts = t0;
  for (int call = 0; call < kEvents / kPerCall; ++call) {
    std::vector<Event> events;
    for (int i = 0; i < kPerCall; ++i) {
      const int n = call * kPerCall + i;
      const std::string id = std::string("e").append(std::to_string(n));
      std::string asset = "a";
      asset.append(std::to_string(n % 7));
      ts += 1000;
      if (n % 500 == 0) {
        events.push_back(Stage(id, "busy", options_.stages[size_t(n / 500) % options_.stages.size()], ts));
      } else {
        events.push_back(Ev(id, n % 3 ? EventType::kUsed : EventType::kViewed, "busy", asset, ts));
      }
    }
    store.Record(std::move(events));
  }
  store.Record({Ev("won", EventType::kWon, "busy", "", ts + 1000)});
  EXPECT_EQ(store->LogRecordsRead(), 0u);
  uint64_t won = 0;
  for (const std::string& stage : options_.stages) won += store->Stats("a1", stage).won;
  EXPECT_GE(won, 1u);
  std::vector<std::string> seen = store->SeenAssets("busy");
  EXPECT_EQ(seen.size(), 7u);
  // A late event re-derives the lead: its log is read once.
  store.Record({Ev("late", EventType::kUsed, "busy", "late-asset", ts - 500)});
  EXPECT_EQ(store->LogRecordsRead(), uint64_t(kEvents) + 1);
  won = 0;
  for (const std::string& stage : options_.stages) won += store->Stats("late-asset", stage).won;
  EXPECT_EQ(won, 1u);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(FeedbackStoreTest, ShownEventsNeverGoBeforeWhatTheLeadAlreadyHas) {
  // A CRM clock an hour ahead: the lead's events are "in the future" when a
  // recommend shows it something. The shown event counts after them (its ts
  // becomes the lead's latest), so the recommend does not re-derive the lead
  // and the use it came after keeps the topic it had.
  Store store(Dir("db"), options_);
  const int64_t ahead = NowForTest() + 3600 * 1000;
  Event shown1 = Ev("s1", EventType::kShown, "lead", "a1", NowForTest());
  shown1.stage = options_.stages[1];
  shown1.topic = "price";
  ASSERT_TRUE(store->RecordShown({shown1}).ok());
  store.Record({Ev("u1", EventType::kUsed, "lead", "a1", ahead)});
  Event shown2 = Ev("s2", EventType::kShown, "lead", "a2", NowForTest());
  shown2.stage = options_.stages[1];
  shown2.topic = "timing";
  ASSERT_TRUE(store->RecordShown({shown2}).ok());
  EXPECT_EQ(store->LogRecordsRead(), 0u);
  auto lead = store->GetLead("lead");
  ASSERT_TRUE(lead.ok());
  ASSERT_EQ(lead.value().history.size(), 3u);
  EXPECT_EQ(lead.value().history[1].event_id, "u1");
  EXPECT_EQ(lead.value().history[2].event_id, "s2");
  EXPECT_EQ(lead.value().history[2].ts, ahead);
  EXPECT_EQ(store->Stats("a1", options_.stages[1], "price").used, 1u);  // not moved to "timing"
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(FeedbackStoreTest, ShownEventsAreLoggedAndCountedWithoutIdempotencyRecords) {
  // recommend's `shown` events are the daemon's own (ids made once per
  // recommendation): logged and counted, but no "event_ids" record, so the
  // ids stay the feedback events' idempotency keys only.
  {
    Store store(Dir("db"), options_);
    std::vector<Event> shown;
    for (const char* a : {"a1", "a2", "a3"}) {
      Event e = Ev(std::string("rec-1:") + a, EventType::kShown, "lead", a, NowForTest());
      e.stage = options_.stages[1];
      shown.push_back(e);
    }
    auto r = store->RecordShown(shown);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r.value().accepted, 3u);
    EXPECT_TRUE(store.Dump(store.event_ids()).empty());
    store.Record({Ev("u1", EventType::kUsed, "lead", "a1"), Ev("v1", EventType::kViewed, "lead", "a2")});
    EXPECT_EQ(store.Dump(store.event_ids()).size(), 2u);
    auto again = store->Record({Ev("u1", EventType::kUsed, "lead", "a1", NowForTest())});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.value().duplicates, 1u);  // the feedback events' ids still are keys
    EXPECT_EQ(store->Stats("a1", options_.stages[1]).shown, 1u);
    EXPECT_EQ(store->Stats("a1", options_.stages[1]).used, 1u);
  }
  Store reopened(Dir("db"), options_);
  auto lead = reopened->GetLead("lead");
  ASSERT_TRUE(lead.ok());
  ASSERT_EQ(lead.value().history.size(), 5u);
  EXPECT_EQ(lead.value().history[0].event_id, "rec-1:a1");
  EXPECT_EQ(lead.value().history[0].type, EventType::kShown);
  EXPECT_EQ(reopened->Stats("a3", options_.stages[1]).shown, 1u);
  EXPECT_EQ(reopened->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(FeedbackStoreTest, ConcurrentShownAndFeedbackCallsAreAllWrittenAndAnswered) {
  // The callers write the queue themselves (one leads a group, the others
  // wait for it): every call is answered with its own result, none is lost.
  Store store(Dir("db"), options_);
  constexpr int kThreads = 6, kCalls = 40;
  std::atomic<uint64_t> shown_accepted{0}, used_accepted{0}, duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        std::string lead = "lead-";
        lead.append(std::to_string(t));
        std::string n = std::to_string(t);
        n.append("-").append(std::to_string(c));
        if ((t + c) % 2 == 0) {
          Event e = Ev(std::string("rec-").append(n).append(":a1"), EventType::kShown, lead, "a1", NowForTest());
          e.stage = options_.stages[1];
          auto r = store->RecordShown({e});
          if (r.ok()) shown_accepted += r.value().accepted;
        } else {
          const std::string id = std::string("u").append(n);
          std::vector<Event> events = {Ev(id, EventType::kUsed, lead, "a1", NowForTest()),
                                       Ev(id, EventType::kUsed, lead, "a1", NowForTest())};
          auto r = store->Record(std::move(events));
          if (r.ok()) {
            used_accepted += r.value().accepted;
            duplicates += r.value().duplicates;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const uint64_t calls = kThreads * kCalls;
  EXPECT_EQ(shown_accepted.load(), calls / 2);
  EXPECT_EQ(used_accepted.load(), calls / 2);
  EXPECT_EQ(duplicates.load(), calls / 2);  // the second of each call's pair
  EXPECT_EQ(store->Stats("a1", options_.stages[1]).shown, calls / 2);
  uint64_t history = 0;
  for (int t = 0; t < kThreads; ++t) history += store->GetLead("lead-" + std::to_string(t)).value().history.size();
  EXPECT_EQ(history, calls);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

// What else the store answers (the org's words, the experiment's cells) and
// every lead's log, as one text to compare.
std::string PhrasesCellsAndLogs(FeedbackStore& f, const std::vector<std::string>& leads) {
  std::ostringstream o;
  std::vector<Derived::PhraseUses> phrases = f.Phrases(NowForTest());
  std::sort(phrases.begin(), phrases.end(),
            [](const auto& x, const auto& y) { return std::tie(x.asset, x.term) < std::tie(y.asset, y.term); });
  for (const auto& p : phrases) o << "phrase " << p.asset << ' ' << p.term << ' ' << p.uses << ' ' << p.support << "\n";
  for (const auto& [cell, c] : f.Experiment(0, INT64_MAX / 2)) {
    o << "cell " << cell.size() << ":";
    for (int64_t v : c) o << ' ' << v;
    o << "\n";
  }
  for (const std::string& lead : leads) {
    auto got = f.GetLead(lead);
    if (!got.ok()) {
      o << "lead " << lead << ": " << got.status().ToString() << "\n";
      continue;
    }
    o << "lead " << lead << " at " << got.value().stage << "\n";
    for (const Event& e : got.value().history) {
      o << "  " << e.event_id << ' ' << EventTypeName(e.type) << ' ' << e.asset_id << ' ' << e.stage << ' ' << e.rep_id
        << ' ' << e.recommendation_id << ' ' << e.topic << ' ' << int(e.arm) << ' ' << e.ts << ' ' << e.same_terms;
      for (const std::string& t : e.terms) o << " [" << t << "]";
      o << "\n";
    }
  }
  return o.str();
}

// Recommendations as recommend records them: k `shown` events of one lead,
// one ts, one recommendation id, the context's terms on the first.
std::vector<std::vector<Event>> Recommendations(std::mt19937& rng, int n, int64_t t0, const std::vector<std::string>& leads,
                                                const std::vector<std::string>& assets, const EngineOptions& options) {
  std::vector<std::vector<Event>> out;
  for (int r = 0; r < n; ++r) {
    const std::string rec = std::string("rec-").append(std::to_string(r));
    const std::string& lead = leads[rng() % leads.size()];
    const std::string stage = options.stages[rng() % options.stages.size()];
    const int64_t ts = t0 + r * 1000;
    const size_t k = 1 + rng() % 5;
    std::vector<Event> shown;
    for (size_t i = 0; i < k; ++i) {
      Event e;
      e.asset_id = assets[(r + i) % assets.size()];
      e.event_id = rec + ":" + e.asset_id;
      if (i == 2) e.event_id = std::string("other-id-").append(std::to_string(r));  // stored as given
      e.type = EventType::kShown;
      e.lead_id = lead;
      e.stage = stage;
      e.rep_id = r % 3 ? "r0" : "";
      e.recommendation_id = rec;
      e.topic = r % 2 ? "price" : "";
      e.arm = lead.back() % 2 ? Arm::kTreatment : Arm::kHoldout;
      e.ts = ts;
      if (i == 0 && r % 4 != 3) e.terms = {"budget", std::string("t").append(std::to_string(r % 3))};
      e.same_terms = i > 0 && r % 4 != 3;
      shown.push_back(e);
    }
    out.push_back(std::move(shown));
  }
  return out;
}

TEST_F(FeedbackStoreTest, ARecommendationsShownEventsAreOneRecordAndStoresOfOneRecordEachCountTheSame) {
  // The same calls into a store that writes runs and one that writes each
  // `shown` event as its own record (the layout before runs): the same
  // counters, logs and re-aggregation, live, after a start that replays the
  // log after the saved counters, and once the old store writes runs too.
  const int64_t t0 = NowForTest() - 5 * 86400000LL;
  std::mt19937 rng(21);
  const std::vector<std::string> assets = {"a0", "a1", "a2", "a3", "a4", "a5"}, reps = {"r0", ""};
  const std::vector<std::string> leads = {"l0", "l1", "l2", "l3"};
  auto recs = Recommendations(rng, 60, t0, leads, assets, options_);
  uint64_t shown_events = 0;
  for (const auto& r : recs) shown_events += r.size();
  // Feedback in between: uses (credited terms, attribution), a stage change, outcomes.
  auto feedback = [&](Store& store, int r) {
    const std::string& lead = recs[size_t(r)][0].lead_id;
    const std::string n = std::to_string(r);
    const int64_t ts = recs[size_t(r)][0].ts + 500;
    if (r % 3 == 0) store.Record({Ev(std::string("u").append(n), EventType::kUsed, lead, recs[size_t(r)][0].asset_id, ts)});
    if (r % 7 == 0) store.Record({Stage(std::string("s").append(n), lead, options_.stages[size_t(r) % options_.stages.size()], ts + 1)});
    if (r % 11 == 0) store.Record({Ev(std::string("w").append(n), r % 2 ? EventType::kWon : EventType::kLost, lead, "", ts + 2)});
  };
  auto record = [&](Store& store, int from, int to) {
    for (int r = from; r < to; ++r) {
      auto got = store->RecordShown(recs[size_t(r)]);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got.value().accepted, recs[size_t(r)].size());
      feedback(store, r);
    }
  };
  auto records = [](Store& store) {
    std::unique_ptr<rocksdb::Iterator> it(store.db()->NewIterator(rocksdb::ReadOptions(), store.event_seqs()));
    size_t entries = 0;
    std::set<std::string> keys;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      EXPECT_TRUE(ForEachSeqEntry(it->key(), it->value(), [&](uint64_t, std::string_view key) {
        ++entries;
        keys.emplace(key);
      }));
    }
    return std::make_pair(entries, keys.size());  // the log's events, the "events" keys they name
  };
  std::string runs_counters, runs_rest;
  {
    Store runs(Dir("runs"), options_), old(Dir("old"), options_);
    old->SetShownRuns(false);
    record(runs, 0, 40);
    record(old, 0, 40);
    // Late events: each lead re-derived from a log of runs (or of one-event records).
    for (Store* store : {&runs, &old}) {
      for (const std::string& lead : leads) {
        store->Record({Ev(lead + "-late-use", EventType::kUsed, lead, "a2", t0 + 5500),
                       Stage(lead + "-late-stage", lead, options_.stages[1], t0 + 12500)});
      }
      EXPECT_GT((*store)->LogRecordsRead(), 0u);
    }
    runs_counters = Everything(*runs, options_, assets, reps, leads);
    runs_rest = PhrasesCellsAndLogs(*runs, leads);
    EXPECT_EQ(Everything(*old, options_, assets, reps, leads), runs_counters);
    EXPECT_EQ(PhrasesCellsAndLogs(*old, leads), runs_rest);
    // One key per recommendation of more than one event, one per event in
    // the old form; one "event_seqs" entry per event in both.
    const auto [runs_entries, runs_keys] = records(runs);
    const auto [old_entries, old_keys] = records(old);
    EXPECT_EQ(runs_entries, old_entries);
    EXPECT_EQ(old_keys, old_entries);
    size_t run_keys_expected = old_keys;
    for (int r = 0; r < 40; ++r) run_keys_expected -= recs[size_t(r)].size() - 1;
    EXPECT_EQ(runs_keys, run_keys_expected);
    EXPECT_LT(runs_keys, old_keys);
    EXPECT_EQ(runs.Dump(runs.event_seqs()).size(), old.Dump(old.event_seqs()).size());
    EXPECT_EQ(runs->Reaggregate(false, nullptr).value().differing, 0u);
    EXPECT_EQ(old->Reaggregate(false, nullptr).value().differing, 0u);
    EXPECT_EQ(runs->Reaggregate(false, nullptr).value().events, old->Reaggregate(false, nullptr).value().events);
    // As a crash would leave them: the counters saved before the events.
    ASSERT_TRUE(runs->SaveAggregates().ok());
    ASSERT_TRUE(old->SaveAggregates().ok());
    runs->PauseSaver(true);
    old->PauseSaver(true);
    record(runs, 40, 50);
    record(old, 40, 50);
    runs->SetSaveAtClose(false);
    old->SetSaveAtClose(false);
  }
  // Each start counts the events after its saved counters from the log.
  Store runs(Dir("runs"), options_), old(Dir("old"), options_);
  runs_counters = Everything(*runs, options_, assets, reps, leads);
  runs_rest = PhrasesCellsAndLogs(*runs, leads);
  EXPECT_EQ(Everything(*old, options_, assets, reps, leads), runs_counters);
  EXPECT_EQ(PhrasesCellsAndLogs(*old, leads), runs_rest);
  EXPECT_EQ(runs->Reaggregate(false, nullptr).value().differing, 0u);
  EXPECT_EQ(old->Reaggregate(false, nullptr).value().differing, 0u);
  // The old store now writes runs beside its one-event records.
  record(runs, 50, 60);
  record(old, 50, 60);
  EXPECT_EQ(Everything(*old, options_, assets, reps, leads), Everything(*runs, options_, assets, reps, leads));
  EXPECT_EQ(PhrasesCellsAndLogs(*old, leads), PhrasesCellsAndLogs(*runs, leads));
  auto x = old->Reaggregate(false, nullptr).value();
  EXPECT_EQ(x.differing, 0u);
  uint64_t feedback_events = 2 * leads.size();  // the late ones
  for (int r = 0; r < 60; ++r) feedback_events += (r % 3 == 0) + (r % 7 == 0) + (r % 11 == 0);
  EXPECT_EQ(x.events, shown_events + feedback_events);
  EXPECT_EQ(runs->Reaggregate(false, nullptr).value().events, x.events);
  // Written again from the log: the same numbers.
  ASSERT_TRUE(old->Reaggregate(true, nullptr).ok());
  EXPECT_EQ(Everything(*old, options_, assets, reps, leads), Everything(*runs, options_, assets, reps, leads));
}

TEST_F(FeedbackStoreTest, AShownRunRoundTripsAndItsDecoderRejectsDamage) {
  std::mt19937 rng(5);
  auto recs = Recommendations(rng, 8, NowForTest(), {"lead"}, {"a0", "a1", "a2", "a3"}, options_);
  for (const auto& rec : recs) {
    std::vector<const Event*> run;
    for (const Event& e : rec) run.push_back(&e);
    if (!ShownRunFits(run.data(), run.size())) {
      EXPECT_EQ(rec.size(), 1u);  // one event is a record of its own
      continue;
    }
    std::string bytes;
    EncodeShownRunTo(run.data(), run.size(), &bytes);
    EXPECT_EQ(uint8_t(bytes[0]), kShownRunFormat);
    std::vector<Event> back = {Event{}};  // appended after what is there
    ASSERT_TRUE(DecodeEventRecord(bytes, &back).ok());
    ASSERT_EQ(back.size(), rec.size() + 1);
    for (size_t i = 0; i < rec.size(); ++i) {
      EXPECT_EQ(EncodeEvent(back[i + 1]), EncodeEvent(rec[i])) << i;  // every field
      EXPECT_EQ(back[i + 1].same_terms, rec[i].same_terms);
    }
    // Every truncation, and bytes after it: a clear error, nothing appended.
    for (size_t n = 1; n < bytes.size(); ++n) {
      std::vector<Event> none;
      Status s = DecodeEventRecord(std::string_view(bytes).substr(0, n), &none);
      EXPECT_EQ(s.code(), Status::Code::kCorruption) << n;
      EXPECT_NE(s.message().find("shown run record"), std::string::npos) << s.message();
      EXPECT_TRUE(none.empty());
    }
    std::vector<Event> none;
    EXPECT_FALSE(DecodeEventRecord(bytes + "x", &none).ok());
    EXPECT_TRUE(none.empty());
    // Any byte changed: an error or a record that encodes again (never UB: ASan, fuzz_records).
    for (size_t i = 1; i < bytes.size(); ++i) {
      std::string damaged = bytes;
      damaged[i] = char(damaged[i] ^ 0xa5);
      std::vector<Event> got;
      if (DecodeEventRecord(damaged, &got).ok()) {
        EXPECT_FALSE(got.empty());
      }
    }
  }
  // Events that differ in what a run shares are not a run.
  std::vector<Event> two = recs[0].size() > 1 ? recs[0] : recs[1];
  two.resize(2);
  std::vector<const Event*> run = {&two[0], &two[1]};
  EXPECT_TRUE(ShownRunFits(run.data(), 2));
  two[1].ts += 1;
  EXPECT_FALSE(ShownRunFits(run.data(), 2));
  two[1].ts -= 1;
  two[1].type = EventType::kUsed;
  EXPECT_FALSE(ShownRunFits(run.data(), 2));
  two[1].type = EventType::kShown;
  two[1].terms = {"other"};
  EXPECT_FALSE(ShownRunFits(run.data(), 2));
  // The old one-event record still decodes.
  std::vector<Event> one;
  ASSERT_TRUE(DecodeEventRecord(EncodeEvent(two[0]), &one).ok());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].event_id, two[0].event_id);
  EXPECT_FALSE(DecodeEventRecord("", &one).ok());
  EXPECT_EQ(one.size(), 1u);
}

// A lead record as the first format wrote it: stage, since, topic.
std::string FirstFormatLead(const std::string& stage, int64_t since) {
  std::string v;
  const uint32_t n = uint32_t(stage.size());
  v.append(reinterpret_cast<const char*>(&n), 4);
  v += stage;
  v.append(reinterpret_cast<const char*>(&since), 8);
  const uint32_t none = 0;
  v.append(reinterpret_cast<const char*>(&none), 4);
  return v;
}

TEST_F(FeedbackStoreTest, FirstFormatLeadRecordsAreRebuiltFromTheirLog) {
  const int64_t t0 = NowForTest() - 100000;
  {
    Store store(Dir("db"), options_);
    store.Record({Stage("s", "old", "evaluation", t0), Ev("u", EventType::kUsed, "old", "x", t0 + 10),
                  Ev("d", EventType::kDismissed, "old", "z", t0 + 11),
                  Stage("s2", "live", "evaluation", t0), Ev("u2", EventType::kUsed, "live", "y", t0 + 10)});
    // As the previous version left them.
    ASSERT_TRUE(store.db()->Put(rocksdb::WriteOptions(), store.leads(), "old", FirstFormatLead("evaluation", t0)).ok());
    ASSERT_TRUE(store.db()->Put(rocksdb::WriteOptions(), store.leads(), "live", FirstFormatLead("evaluation", t0)).ok());
    // The writer counts on from the records it wrote itself (kept in memory),
    // not from what it finds stored meanwhile: no log read; "live" is then
    // stored complete, and only "old" is left for Open to rebuild.
    store.Record({Ev("w2", EventType::kWon, "live", "", t0 + 20)});
    EXPECT_EQ(store->LogRecordsRead(), 0u);
    EXPECT_EQ(store->Stats("y", "evaluation").won, 1u);
  }
  Store store(Dir("db"), options_);  // Open rebuilds the other one
  bool warning = true;
  EXPECT_NE(store->OpenNote(&warning).find("1 rebuilt"), std::string::npos) << store->OpenNote(&warning);
  std::vector<std::string> seen = store->SeenAssets("old");
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"x", "z"}));
  store.Record({Ev("w", EventType::kWon, "old", "", t0 + 20)});
  EXPECT_EQ(store->LogRecordsRead(), 0u);  // rebuilt at Open: in-order events read nothing
  EXPECT_EQ(store->Stats("x", "evaluation").won, 1u);
  EXPECT_EQ(store->GetLead("old").value().stage, "evaluation");
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(FeedbackStoreTest, ExclusionsAreServedFromMemoryAndSurviveARestart) {
  {
    Store store(Dir("db"), options_);
    store.Record({Ev("1", EventType::kUsed, "L", "u"), Ev("2", EventType::kViewed, "L", "v"),
                  Ev("3", EventType::kDismissed, "L", "d"), Ev("4", EventType::kShown, "L", "s"),
                  Ev("5", EventType::kUsed, "L", "u")});
    std::vector<std::string> seen = store->SeenAssets("L");
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<std::string>{"d", "u", "v"}));  // shown is not seen
    EXPECT_TRUE(store->SeenAssets("other").empty());
  }
  Store store(Dir("db"), options_);
  std::vector<std::string> seen = store->SeenAssets("L");
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"d", "u", "v"}));
}

// The counters are kept in memory and saved apart, with the event sequence
// they include: a feedback write puts no counter, and a start counts the
// events after the saved sequence again, so a crash between saves loses none.
TEST_F(FeedbackStoreTest, CountersAreSavedApartAndACrashBetweenSavesLosesNone) {
  options_.attribution_window_days = 10;
  std::mt19937 rng(5);
  const std::vector<std::string> assets = {"a0", "a1", "a2", "a3", "a4"}, reps = {"r0", "r1"},
                                 leads = {"l0", "l1", "l2", "l3", "l4", "l5"};
  std::vector<Event> log = RandomLog(rng, 900, NowForTest() - 40 * 86400000LL, leads, assets, reps);
  std::shuffle(log.begin(), log.end(), rng);  // late events too: their leads are re-derived
  const size_t half = log.size() / 2;
  std::string want;
  {
    Store store(Dir("db"), options_);
    store->SetSaveAtClose(false);  // the end of this block is a crash
    store->PauseSaver(true);       // it saves after a second: a slow machine would save the second half
    RecordInCalls(store, std::vector<Event>(log.begin(), log.begin() + long(half)), rng);
    EXPECT_TRUE(store.Dump(store.stats()).empty());  // written by no feedback call
    ASSERT_TRUE(store->SaveAggregates().ok());
    const uint64_t saved = store->SavedThrough();
    EXPECT_GT(saved, 0u);
    const auto stored = store.Dump(store.stats());
    EXPECT_FALSE(stored.empty());
    RecordInCalls(store, std::vector<Event>(log.begin() + long(half), log.end()), rng);
    EXPECT_EQ(store.Dump(store.stats()), stored);  // still as saved
    EXPECT_EQ(store->SavedThrough(), saved);
    size_t in_order = 0;  // the log in arrival order: every event once, in sequence
    for (const auto& [key, value] : store.Dump(store.event_seqs())) {
      EXPECT_TRUE(ForEachSeqEntry(key, value, [&](uint64_t seq, std::string_view events_key) {
        std::string_view lead;
        uint64_t key_seq = 0;
        EXPECT_TRUE(SplitEventKey(rocksdb::Slice(events_key.data(), events_key.size()), &lead, &key_seq));
        EXPECT_EQ(key_seq, seq);
        EXPECT_EQ(seq, in_order++);
      }));
    }
    EXPECT_EQ(in_order, size_t(store->Reaggregate(false, nullptr).value().events));
    want = Everything(*store, options_, assets, reps, leads);
  }
  {
    Store store(Dir("db"), options_);
    bool warning = false;
    EXPECT_NE(store->OpenNote(&warning).find("events after them counted"), std::string::npos)
        << store->OpenNote(&warning);
    EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
    EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
  }  // a stop saves them
  Store store(Dir("db"), options_);
  bool warning = false;
  EXPECT_EQ(store->OpenNote(&warning).find("after them"), std::string::npos) << store->OpenNote(&warning);
  EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
  store.Record({Ev("late-use", EventType::kUsed, "l0", "a0", NowForTest() - 39 * 86400000LL)});
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

// A store written when every event merged its counters into "stats" (no saved
// sequence, no sequence index) opens with the same numbers and counts on.
TEST_F(FeedbackStoreTest, AStoreWhoseEventsMergedTheirCountersOpensWithTheSameNumbers) {
  std::mt19937 rng(8);
  const std::vector<std::string> assets = {"a0", "a1", "a2"}, reps = {"r0"}, leads = {"l0", "l1", "l2"};
  const std::vector<Event> log = RandomLog(rng, 300, NowForTest() - 20 * 86400000LL, leads, assets, reps);
  std::string want;
  {
    Store store(Dir("db"), options_);
    RecordInCalls(store, log, rng);
    want = Everything(*store, options_, assets, reps, leads);
    store->SetCheckpoints(false);  // "stats" keys only, as then
    store.StopStore();             // saves
    // As the previous version left it: each counter as merge operands.
    rocksdb::WriteBatch batch;
    for (const auto& [key, value] : store.Dump(store.stats())) {
      if (!key.empty() && key[0] == kLastUsedPrefix) continue;  // a put then too
      batch.Delete(store.stats(), key);
      Counters half = DecodeCounters(value), rest = half;
      for (size_t i = 0; i < half.size(); ++i) {
        half[i] /= 2;
        rest[i] -= half[i];
      }
      batch.Merge(store.stats(), key, EncodeCounters(half));
      batch.Merge(store.stats(), key, EncodeCounters(rest));
    }
    batch.Delete(store.meta(), kStatsSeqKey);
    batch.DeleteRange(store.event_seqs(), "", std::string(9, '\xff'));
    ASSERT_TRUE(store.db()->Write(rocksdb::WriteOptions(), &batch).ok());
  }
  Store store(Dir("db"), options_);
  EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
  EXPECT_EQ(store->SavedThrough(), uint64_t(store->Reaggregate(false, nullptr).value().events));
  store.Record({Ev("more", EventType::kUsed, "l1", "a1"), Ev("won", EventType::kWon, "l1")});
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}


// The checkpoint's bytes as stored (its chunks in order), "" when none.
std::string StoredCheckpoint(Store& store) {
  std::string header, blob;
  if (!store.db()->Get(rocksdb::ReadOptions(), store.meta(), kCheckpointKey, &header).ok()) return "";
  EXPECT_EQ(header.size(), 20u);
  uint32_t chunks = 0;
  std::memcpy(&chunks, header.data() + 8, 4);
  for (uint32_t i = 0; i < chunks; ++i) {
    std::string chunk;
    EXPECT_TRUE(store.db()->Get(rocksdb::ReadOptions(), store.meta(), CheckpointChunkKey(i), &chunk).ok());
    blob += chunk;
  }
  return blob;
}

// A log with every kind of counter: the random log's shown events carry
// context terms and an experiment arm (phrases, the experiment's cells).
std::vector<Event> WithTermsAndArms(std::vector<Event> log) {
  for (Event& e : log) {
    if (e.type != EventType::kShown) continue;
    e.terms = e.topic.empty() ? std::vector<std::string>{"budget"} : std::vector<std::string>{"price", "budget"};
    e.arm = e.lead_id.back() % 2 ? Arm::kTreatment : Arm::kHoldout;
  }
  return log;
}

// The counters' checkpoint: a stop writes it, a start reads it back to the
// same counters as a rebuild from the log, and its decoder takes no damage.
TEST_F(FeedbackStoreTest, TheCheckpointRoundTripsExactlyAndItsDecoderRejectsDamage) {
  options_.attribution_window_days = 10;
  std::mt19937 rng(21);
  const std::vector<std::string> assets = {"a0", "a1", "a2", "a3", "a4", "a5"}, reps = {"r0", "r1"},
                                 leads = {"l0", "l1", "l2", "l3", "l4"};
  std::vector<Event> log = WithTermsAndArms(RandomLog(rng, 1200, NowForTest() - 50 * 86400000LL, leads, assets, reps));
  std::shuffle(log.begin(), log.end(), rng);
  std::string want, blob;
  {
    Store store(Dir("db"), options_);
    RecordInCalls(store, log, rng);
    want = Everything(*store, options_, assets, reps, leads);
    store.StopStore();  // writes the checkpoint
    EXPECT_TRUE(store.Dump(store.stats()).empty());  // all in the checkpoint
    blob = StoredCheckpoint(store);
    ASSERT_FALSE(blob.empty());
  }
  {
    Store store(Dir("db"), options_);
    bool warning = true;
    const std::string note = store->OpenNote(&warning);
    EXPECT_NE(note.find("checkpoint ("), std::string::npos) << note;
    EXPECT_NE(note.find(", 0 keys saved since"), std::string::npos) << note;
    EXPECT_FALSE(warning);
    EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
    auto check = store->Reaggregate(false, nullptr);
    ASSERT_TRUE(check.ok());
    EXPECT_EQ(check.value().differing, 0u);
    EXPECT_GT(check.value().keys, 0u);
  }
  // Decoded, encoded again and decoded: the same counters, every kind there.
  Derived a, b;
  uint64_t seq = 0, seq_b = 0;
  ASSERT_TRUE(a.DecodeCheckpoint(blob, &seq).ok());
  EXPECT_GT(seq, 0u);
  std::string again;
  a.EncodeCheckpoint(seq, &again);
  EXPECT_EQ(again.size(), blob.size());
  ASSERT_TRUE(b.DecodeCheckpoint(again, &seq_b).ok());
  EXPECT_EQ(seq_b, seq);
  EXPECT_EQ(a.CountDifferences(b), 0u);
  EXPECT_EQ(a.CountKeys(), b.CountKeys());
  EXPECT_FALSE(a.SumExperiment(0, UINT32_MAX).empty());
  EXPECT_FALSE(a.SumPhrases(0, 30).empty());
  EXPECT_FALSE(a.SumFunnel(0, UINT32_MAX).empty());
  EXPECT_FALSE(a.SumDismissals(0, UINT32_MAX, "").empty());
  // Cut anywhere: Corruption, never a crash or a partial success.
  for (int i = 0; i < 300; ++i) {
    const size_t cut = i < 40 ? size_t(i) : size_t(rng() % blob.size());
    Derived d;
    uint64_t s = 0;
    EXPECT_EQ(d.DecodeCheckpoint(std::string_view(blob).substr(0, cut), &s).code(), Status::Code::kCorruption) << cut;
  }
  // Bytes flipped: an error or counters, never a crash (the sanitizers watch).
  for (int i = 0; i < 300; ++i) {
    std::string damaged = blob;
    damaged[rng() % damaged.size()] ^= char(1 + rng() % 255);
    Derived d;
    uint64_t s = 0;
    (void)d.DecodeCheckpoint(damaged, &s);
  }
}

// A store of the earlier layout ("stats" keys only, no checkpoint) opens with
// the same numbers; the saver then writes the checkpoint, and saves after it
// put their keys over it, zeros included, which a start sets over it.
TEST_F(FeedbackStoreTest, AStoreWithoutACheckpointOpensAndGetsOneAndKeysSavedAfterItAreSetOverIt) {
  options_.attribution_window_days = 10;
  std::mt19937 rng(22);
  const std::vector<std::string> assets = {"a0", "a1", "a2", "a3"}, reps = {"r0", "r1"}, leads = {"l0", "l1", "l2"};
  std::vector<Event> log = WithTermsAndArms(RandomLog(rng, 900, NowForTest() - 40 * 86400000LL, leads, assets, reps));
  const size_t half = log.size() / 2;
  std::string want;
  {
    Store store(Dir("db"), options_);
    store->SetCheckpoints(false);  // the earlier code path: its saves and its stop
    RecordInCalls(store, std::vector<Event>(log.begin(), log.begin() + long(half)), rng);
    want = Everything(*store, options_, assets, reps, leads);
  }
  {
    Store store(Dir("db"), options_);
    EXPECT_TRUE(StoredCheckpoint(store).empty());
    bool warning = true;
    EXPECT_NE(store->OpenNote(&warning).find(" keys read in "), std::string::npos) << store->OpenNote(&warning);
    EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
    EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
    // The saver writes the checkpoint soon, without a new event.
    for (int i = 0; i < 400 && StoredCheckpoint(store).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_FALSE(StoredCheckpoint(store).empty());
    EXPECT_TRUE(store.Dump(store.stats()).empty());
    store->PauseSaver(true);
    store->SetSaveAtClose(false);  // the end of this block is a crash
    // Keys saved over the checkpoint: a dismissal taken back by a late stage
    // change and re-derived lead counters go down, some to zero.
    RecordInCalls(store, std::vector<Event>(log.begin() + long(half), log.end()), rng);
    ASSERT_TRUE(store->SaveAggregates().ok());
    EXPECT_FALSE(store.Dump(store.stats()).empty());
    want = Everything(*store, options_, assets, reps, leads);
  }
  Store store(Dir("db"), options_);
  bool warning = true;
  const std::string note = store->OpenNote(&warning);
  EXPECT_NE(note.find("checkpoint ("), std::string::npos) << note;
  EXPECT_EQ(note.find(", 0 keys saved since"), std::string::npos) << note;
  EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

// The next checkpoint is due by the distinct keys saved since the last one
// (what a start reads beside it), not by every key written: recommend's
// saves rewrite the same keys (the assets shown) each second, and counting
// each write wrote a whole checkpoint of every counter every few seconds. A
// start after a crash still counts every event: the keys saved over the
// checkpoint, then the events after the last save.
TEST_F(FeedbackStoreTest, KeysSavedAgainCountOnceTowardsTheNextCheckpointAndACrashLosesNoEvent) {
  options_.attribution_window_days = 10;
  std::mt19937 rng(23);
  const std::vector<std::string> assets = {"a0", "a1", "a2", "a3"}, reps = {"r0", "r1"}, leads = {"l0", "l1", "l2"};
  const std::vector<Event> log = WithTermsAndArms(RandomLog(rng, 300, NowForTest() - 20 * 86400000LL, leads, assets, reps));
  int n = 0;
  auto shown = [&](int count) {  // a recommend's events: the same few keys again
    std::vector<Event> events;
    for (int i = 0; i < count; ++i) {
      ++n;
      Event e = Ev(std::string("s").append(std::to_string(n)), EventType::kShown, leads[size_t(n) % leads.size()],
                   assets[size_t(n) % assets.size()], NowForTest());
      e.stage = options_.stages[0];
      e.rep_id = reps[0];
      events.push_back(e);
    }
    return events;
  };
  std::string want;
  {
    Store store(Dir("db"), options_);
    store->PauseSaver(true);
    store->SetSaveAtClose(false);  // the end of this block is a crash
    RecordInCalls(store, log, rng);
    ASSERT_TRUE(store->WriteCheckpoint().ok());
    EXPECT_EQ(store->KeysSinceCheckpoint(), 0u);
    uint64_t first = 0;
    for (int save = 0; save < 6; ++save) {
      store.Record(shown(20));
      ASSERT_TRUE(store->SaveAggregates().ok());
      if (save == 0) first = store->KeysSinceCheckpoint();
    }
    EXPECT_GT(first, 0u);
    // The same keys each time: counted once (it was 6 x first).
    EXPECT_EQ(store->KeysSinceCheckpoint(), first);
    EXPECT_EQ(store->KeysSinceCheckpoint(), store.Dump(store.stats()).size());
    store.Record(shown(20));  // after the last save: replayed by the start
    want = Everything(*store, options_, assets, reps, leads);
  }
  Store store(Dir("db"), options_);
  bool warning = true;
  const std::string note = store->OpenNote(&warning);
  EXPECT_NE(note.find("checkpoint ("), std::string::npos) << note;
  EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
  // A start counts the keys it found; saves of them again add nothing.
  store->PauseSaver(true);
  const uint64_t found = store->KeysSinceCheckpoint();
  EXPECT_EQ(found, store.Dump(store.stats()).size());
  ASSERT_TRUE(store->SaveAggregates().ok());
  store.Record(shown(20));
  ASSERT_TRUE(store->SaveAggregates().ok());
  EXPECT_LE(store->KeysSinceCheckpoint(), found + store.Dump(store.stats()).size());
}

// The saver saves recommend's `shown` changes alone every kShownSaveSeconds
// (they change the same keys again and again), a feedback call's within
// kSaveSeconds as before; a start after a crash counts the unsaved `shown`
// events from the log. (Without the longer interval the first wait below
// sees a save; a slow machine can only make it see none.)
TEST_F(FeedbackStoreTest, ShownChangesAloneAreSavedLessOftenAndACrashLosesNone) {
  static_assert(FeedbackStore::kShownSaveSeconds >= 3 * FeedbackStore::kSaveSeconds);
  const std::vector<std::string> assets = {"a1", "a2", "a3"}, reps = {""}, leads = {"lead", "l2"};
  int n = 0;
  auto shown = [&](const std::string& lead) {
    std::vector<Event> events;
    ++n;
    for (const std::string& a : assets) {
      Event e = Ev(std::string("rec-").append(std::to_string(n)).append(":").append(a), EventType::kShown, lead, a,
                   NowForTest());
      e.stage = options_.stages[1];
      events.push_back(e);
    }
    return events;
  };
  std::string want;
  {
    Store store(Dir("db"), options_);
    store->SetSaveAtClose(false);  // the end of this block is a crash
    const uint64_t saved = store->SavedThrough();
    ASSERT_TRUE(store->RecordShown(shown("lead")).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_EQ(store->SavedThrough(), saved);
    store.Record({Ev("u1", EventType::kUsed, "lead", "a1")});
    for (int i = 0; i < 1000 && store->SavedThrough() == saved; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GT(store->SavedThrough(), saved);  // within a second or so, with the `shown` changes
    ASSERT_TRUE(store->RecordShown(shown("l2")).ok());  // unsaved at the crash
    want = Everything(*store, options_, assets, reps, leads);
  }
  Store store(Dir("db"), options_);
  EXPECT_EQ(Everything(*store, options_, assets, reps, leads), want);
  EXPECT_EQ(store->Stats("a2", options_.stages[1]).shown, 2u);
  EXPECT_EQ(store->Reaggregate(false, nullptr).value().differing, 0u);
}

// SIGKILL while checkpoints and saves are written, again and again: every
// start after it loads counters equal to a rebuild from the log. The writing
// process is this binary again (a fresh process: no fork of RocksDB's
// threads), running the test below (disabled: only the kill test runs it)
// on $PLAYBOOK_SAVE_CHILD_DIR.
constexpr uint32_t kKillLogSeed = 30;
TEST_F(FeedbackStoreTest, DISABLED_SavesUntilKilledForTheKillTest) {
  const char* dir = std::getenv("PLAYBOOK_SAVE_CHILD_DIR");
  if (dir == nullptr) GTEST_SKIP() << "the child of AKillWhileTheCountersAreSavedLeavesAConsistentStore";
  options_.attribution_window_days = 10;
  std::mt19937 rng(kKillLogSeed);
  const std::vector<Event> log = WithTermsAndArms(RandomLog(rng, 2000, NowForTest() - 80 * 86400000LL,
                                                            {"l0", "l1", "l2", "l3"}, {"a0", "a1", "a2", "a3", "a4"},
                                                            {"r0", "r1"}));
  Store store(dir, options_);
  store->PauseSaver(true);
  for (size_t i = 0;; i += 20) {
    if (i < log.size()) {
      store.Record(std::vector<Event>(log.begin() + long(i), log.begin() + long(std::min(log.size(), i + 20))));
    }
    (void)((i / 20) % 3 == 0 ? store->WriteCheckpoint() : store->SaveAggregates());
  }
}

TEST_F(FeedbackStoreTest, AKillWhileTheCountersAreSavedLeavesAConsistentStore) {
  options_.attribution_window_days = 10;
  char self[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof self - 1), 0);
  const fs::path dir = Dir("db");
  uint64_t events = 0;
  for (int round = 0; round < 4; ++round) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      setenv("PLAYBOOK_SAVE_CHILD_DIR", dir.c_str(), 1);
      execl(self, self, "--gtest_also_run_disabled_tests",
            "--gtest_filter=FeedbackStoreTest.DISABLED_SavesUntilKilledForTheKillTest", static_cast<char*>(nullptr));
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + 200 * round));
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended before the kill: " << status;
    Store store(dir, options_);
    bool warning = false;
    const std::string note = store->OpenNote(&warning);
    auto check = store->Reaggregate(false, nullptr);
    ASSERT_TRUE(check.ok()) << check.status().ToString();
    EXPECT_EQ(check.value().differing, 0u) << "round " << round << ": " << note;
    events = check.value().events;
    store->SetSaveAtClose(false);  // the next round's child starts from what the kill left
  }
  EXPECT_GT(events, 0u);  // the children wrote
}

// A stop writes the memtables to table files: the next start has no log of
// the feedback to replay before it can serve (a start after a burst of
// ingest spent most of its open replaying it), and nothing is lost.
TEST_F(FeedbackTest, AStopLeavesNoLogToReplayAndTheEventsStay) {
  Engine& e = Open();
  std::vector<Event> batch;
  for (int i = 0; i < 500; ++i) {
    std::string id = "burst-", lead = "lead-";
    id.append(std::to_string(i));
    lead.append(std::to_string(i % 7));
    batch.push_back(Ev(id, EventType::kViewed, lead, "asset-1"));
  }
  ASSERT_TRUE(e.RecordEvents(batch).ok());
  ASSERT_TRUE(engine_->Close().ok());
  uintmax_t log_bytes = 0;
  size_t logs = 0;
  for (const auto& f : fs::directory_iterator(dir_ / "db")) {
    if (f.path().extension() == ".log") {
      ++logs;
      log_bytes += f.file_size();
    }
  }
  EXPECT_GE(logs, 1u);
  EXPECT_EQ(log_bytes, 0u) << "the stop left feedback in the write-ahead log for the next start to replay";
  Engine& again = Open();
  EXPECT_EQ(again.GetStats("asset-1", "").viewed, 500u);
  EXPECT_EQ(again.GetLead("lead-0").value().history.size(), 72u);  // i % 7 == 0 for 72 of 0..499
}

// The event and lead records' bytes, field by field as written before the
// encoders sized them first (stores written by older builds are read with
// the same decoders, and their records compared by bytes in places).
TEST(FeedbackCodecTest, EventAndLeadRecordsKeepTheirByteLayout) {
  auto str = [](std::string* out, const std::string& s) {
    const uint32_t n = uint32_t(s.size());
    out->append(reinterpret_cast<const char*>(&n), 4);
    out->append(s);
  };
  auto raw = [](std::string* out, const auto& v) { out->append(reinterpret_cast<const char*>(&v), sizeof v); };
  Event e;
  e.event_id = "e-1";
  e.type = EventType::kWon;
  e.lead_id = "lead-7";
  e.asset_id = "资产-3";
  e.stage = "谈判";
  e.rep_id = "rep-2";
  e.recommendation_id = "rec-9";
  e.reason = "";
  e.topic = "价格";
  e.arm = Arm::kHoldout;
  e.amount = 1234.5;
  e.ts = 1700000000123;
  e.terms = {"太贵了", "预算"};
  e.same_terms = true;
  std::string want;
  want.push_back(char(kEventFormat));
  want.push_back(char(e.type));
  for (const std::string* f : {&e.event_id, &e.lead_id, &e.asset_id, &e.stage, &e.rep_id, &e.recommendation_id,
                               &e.reason, &e.topic}) {
    str(&want, *f);
  }
  want.push_back(char(e.arm));
  raw(&want, e.amount);
  raw(&want, e.ts);
  raw(&want, uint32_t(2 | 0x80000000u));
  for (const std::string& t : e.terms) str(&want, t);
  EXPECT_EQ(EncodeEvent(e), want);
  std::string reused = "longer bytes from a previous record, to be replaced entirely";
  EncodeEventTo(e, &reused);
  EXPECT_EQ(reused, want);

  LeadState st;
  st.stage = "谈判";
  st.stage_since = 11;
  st.topic = "价格";
  st.latest_ts = 12;
  st.window_ms = 13;
  st.since_change = {{"a-1", "认知", "rep-1", "价格", 14}};
  st.window = {{"a-1", "认知", "rep-1", "价格", 14}, {"a-2", "谈判", "", "", 15}};
  st.seen = {"a-1", "a-2", "a-3"};
  st.recommended = true;
  st.arm = Arm::kTreatment;
  st.assigned_ts = 16;
  st.entry_stage = "认知";
  st.entry_rep = "rep-1";
  st.outcome = 1;
  st.outcome_ts = 17;
  st.outcome_cents = 18;
  st.terms = {"太贵了"};
  st.terms_credited = {"a-1", "a-2"};
  want.assign("\xff\xff\xff\xff", 4);
  want.push_back(char(kLeadFormat));
  str(&want, st.stage);
  raw(&want, st.stage_since);
  str(&want, st.topic);
  raw(&want, st.latest_ts);
  raw(&want, st.window_ms);
  for (const auto* uses : {&st.since_change, &st.window}) {
    raw(&want, uint32_t(uses->size()));
    for (const UseRef& u : *uses) {
      for (const std::string* f : {&u.asset, &u.stage, &u.rep, &u.topic}) str(&want, *f);
      raw(&want, u.ts);
    }
  }
  raw(&want, uint32_t(st.seen.size()));
  for (const std::string& a : st.seen) str(&want, a);
  want.push_back(char(1));
  want.push_back(char(st.arm));
  raw(&want, st.assigned_ts);
  str(&want, st.entry_stage);
  str(&want, st.entry_rep);
  want.push_back(char(st.outcome));
  raw(&want, st.outcome_ts);
  raw(&want, st.outcome_cents);
  for (const auto* list : {&st.terms, &st.terms_credited}) {
    raw(&want, uint32_t(list->size()));
    for (const std::string& t : *list) str(&want, t);
  }
  EXPECT_EQ(EncodeLeadState(st), want);
  LeadState back;
  ASSERT_TRUE(DecodeLeadState(want, &back));
  EXPECT_EQ(EncodeLeadState(back), want);
}

}  // namespace
}  // namespace playbook

// The ranking's bounds (docs/ranking.md): exploration and evidence reorder
// only candidates about as relevant as one another, the rep's language comes
// first among equally relevant ones, and the near-duplicate cut keeps the one
// in the rep's language. Assets and queries carry their own vectors, so each
// asset's similarity to the query is exactly the first coordinate set here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "playbook/engine/engine.h"
#include "test_embedder.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;
constexpr uint32_t kDim = 8;

// The test embedder, and a context's terms: its words (the lexical
// embedder's rule, TextTerms, is tested in models_tests).
class TermsEmbedder : public testing::WordEmbedder {
 public:
  using WordEmbedder::WordEmbedder;
  std::vector<std::string> Terms(std::string_view text) const override {
    std::vector<std::string> out;
    for (size_t i = 0; i < text.size();) {
      const size_t end = std::min(text.find(' ', i), text.size());
      if (end > i) out.emplace_back(text.substr(i, end - i));
      i = end + 1;
    }
    return out;
  }
};

class RecommendTest : public ::testing::Test {
 public:
  RecommendTest() {
    dir_ = fs::temp_directory_path() / ("playbook-recommend-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
    options_.dimension = kDim;
    options_.ranking.explore = true;  // the default: every bound must hold with exploration on
    options_.ranking.seed = 11;
  }
  ~RecommendTest() override {
    engine_.reset();
    fs::remove_all(dir_);
  }
  Engine& Open() {
    engine_.reset();
    auto e = learn_terms_ ? Engine::Open(options_, std::make_shared<TermsEmbedder>(kDim))
                          : Engine::Open(options_, std::make_shared<testing::WordEmbedder>(kDim));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
    return *engine_;
  }
  // An asset whose similarity to Query() is `sim`; its other coordinate is on
  // axis `axis` (1..7), so assets on different axes are not near-duplicates.
  static Asset At(const std::string& id, const std::string& title, double sim, uint32_t axis,
                  std::vector<std::string> stages = {"evaluation"}) {
    Asset a;
    a.id = id;
    a.title = title;
    a.type = "objection_script";
    a.stages = std::move(stages);
    a.vector.assign(kDim, 0.0f);
    a.vector[0] = float(sim);
    a.vector[axis] = float(std::sqrt(1 - sim * sim));
    return a;
  }
  static std::vector<float> Query() {
    std::vector<float> q(kDim, 0.0f);
    q[0] = 1;
    return q;
  }
  static RecommendRequest Request(const std::string& lead, const std::string& stage, const std::string& language,
                                  size_t k) {
    RecommendRequest r;
    r.lead_id = lead;
    r.stage = stage;
    r.vector = Query();
    r.language = language;
    r.k = k;
    return r;
  }
  std::vector<std::string> Ids(const std::string& lead, size_t k, const std::string& language = "",
                               const std::string& context = "", const std::string& stage = "evaluation",
                               std::vector<std::string> exclude = {}) {
    RecommendRequest r = Request(lead, stage, language, k);
    r.context = context;
    r.filter.exclude_ids = std::move(exclude);
    auto rec = engine_->Recommend(r);
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    std::vector<std::string> ids;
    if (rec.ok()) {
      for (const auto& it : rec.value().items) ids.push_back(it.asset_id);
    }
    return ids;
  }
  // A recommend by vector (Query()) with the rep's language and a type filter.
  Result<Recommendation> Ask(const std::string& lead, const std::string& stage, const std::string& language, size_t k,
                             std::vector<std::string> types = {}) {
    RecommendRequest r = Request(lead, stage, language, k);
    r.filter.types = std::move(types);
    return engine_->Recommend(r);
  }
  static std::string Lead(int i) { return std::string("lead-").append(std::to_string(i)); }

  // A use of the asset with the lead (after its recommend).
  void Use(const std::string& lead, const std::string& asset) {
    Event x;
    x.event_id = std::string(lead).append(":used:").append(asset);
    x.type = EventType::kUsed;
    x.lead_id = lead;
    x.asset_id = asset;
    auto r = engine_->RecordEvents({x});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  fs::path dir_;
  EngineOptions options_;
  bool learn_terms_ = false;
  std::unique_ptr<Engine> engine_;
};

TEST_F(RecommendTest, ColdStartExplorationNeverLiftsAClearlyLessRelevantAsset) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({At("best", "alpha", 0.90, 1), At("tied", "beta", 0.899, 2),
                              At("behind", "gamma", 0.84, 3)})
                  .ok());
  int tied_first = 0;
  for (int i = 0; i < 200; ++i) {
    const std::vector<std::string> ids = Ids(Lead(i), 3);
    ASSERT_EQ(ids.size(), 3u);
    // 0.06 below the best: more than the exploration band either way (2 x 0.02).
    EXPECT_EQ(ids[2], "behind") << i;
    tied_first += ids[0] == "tied";
  }
  // Between two about equally relevant new assets, exploration does reorder.
  EXPECT_GT(tied_first, 20);
  EXPECT_LT(tied_first, 180);
}

TEST_F(RecommendTest, EvidenceBuysBoundedSimilarity) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({At("winner", "alpha", 0.80, 1, {"negotiation"}),
                              At("loser", "beta", 0.84, 2, {"negotiation"}),
                              At("much-closer", "gamma", 0.99, 3, {"negotiation"})})
                  .ok());
  std::vector<Event> events;
  auto ev = [](const std::string& id, EventType type, const std::string& lead, const std::string& asset = "") {
    Event x;
    x.event_id = id;
    x.type = type;
    x.lead_id = lead;
    x.asset_id = asset;
    if (type == EventType::kStageChanged) x.stage = "negotiation";
    return x;
  };
  for (int i = 0; i < 30; ++i) {
    const std::string w = std::string("w").append(std::to_string(i)), l = std::string("l").append(std::to_string(i));
    events.insert(events.end(), {ev(w + "s", EventType::kStageChanged, w), ev(w + "u", EventType::kUsed, w, "winner"),
                                 ev(w + "o", EventType::kWon, w), ev(l + "s", EventType::kStageChanged, l),
                                 ev(l + "u", EventType::kUsed, l, "loser"), ev(l + "o", EventType::kLost, l)});
  }
  ASSERT_TRUE(e.RecordEvents(events).ok());
  for (int i = 0; i < 50; ++i) {
    // 30 wins against 30 losses buy the 0.04 the winner is behind ...
    EXPECT_EQ(Ids(Lead(i), 1, "", "", "negotiation", {"much-closer"}), std::vector<std::string>{"winner"}) << i;
    // ... but not the 0.19 to an unrated, much closer asset (the cap at 30
    // observations is 0.2 x 30 / 50 = 0.12, exploration 0.02 either way).
    EXPECT_EQ(Ids(Lead(100 + i), 1, "", "", "negotiation"), std::vector<std::string>{"much-closer"}) << i;
  }
}

TEST_F(RecommendTest, TheRepsLanguageComesFirstAmongEquallyRelevantOnes) {
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({At("en-price", "Price objection script", 0.90, 1),
                              At("zh-price", "价格异议话术", 0.86, 2), At("zh-far", "市场报告", 0.70, 3)})
                  .ok());
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(Ids(Lead(i), 1, "zh").front(), "zh-price");
    EXPECT_EQ(Ids(Lead(i), 1, "zh-CN").front(), "zh-price");
    EXPECT_EQ(Ids(Lead(i), 1, "EN").front(), "en-price");
    // Without lead.language, the context's script decides.
    EXPECT_EQ(Ids(Lead(i), 1, "", "客户说太贵了").front(), "zh-price");
    EXPECT_EQ(Ids(Lead(i), 1, "", "they balked at the sticker price").front(), "en-price");
    // Neither: no preference, the closer one.
    EXPECT_EQ(Ids(Lead(i), 1).front(), "en-price");
    // A clearly less relevant asset is not lifted by its language.
    EXPECT_EQ(Ids(Lead(i), 2, "zh", "", "evaluation", {"zh-price"}).front(), "en-price");
  }
}

TEST_F(RecommendTest, TheNearDuplicateCutKeepsTheRepsLanguage) {
  Engine& e = Open();
  // en and zh are translations to the embedder (cosine 0.98 >= duplicate_similarity 0.97);
  // en is the closer one by more than the language bonus.
  Asset en = At("en-script", "Price objection script", 0.95, 1);
  Asset zh = At("zh-script", "价格异议话术", 0.85, 1);
  ASSERT_GE(en.vector[0] * zh.vector[0] + en.vector[1] * zh.vector[1], 0.97);
  ASSERT_TRUE(e.UpsertAssets({en, zh, At("other", "ROI worksheet", 0.5, 2)}).ok());
  for (int i = 0; i < 20; ++i) {
    const std::vector<std::string> for_zh = Ids(Lead(i), 2, "zh");
    EXPECT_EQ(for_zh, (std::vector<std::string>{"zh-script", "other"}));
    const std::vector<std::string> for_en = Ids(Lead(i), 2, "en");
    EXPECT_EQ(for_en, (std::vector<std::string>{"en-script", "other"}));
  }
}

// Translations declared with variant_of are one content item: one of them is
// returned, the one in the rep's language, at the place of the best one, even
// when the embedder does not see them as near-duplicates.
TEST_F(RecommendTest, OneVariantPerContentItemInTheRepsLanguage) {
  Engine& e = Open();
  Asset en = At("en-script", "Price objection script", 0.95, 1);
  Asset zh = At("zh-script", "价格异议话术", 0.50, 2);  // far apart: no near-duplicate cut
  zh.variant_of = "en-script";
  ASSERT_TRUE(e.UpsertAssets({en, zh, At("other", "ROI worksheet", 0.85, 3), At("zh-other", "案例", 0.6, 4)}).ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Ids(Lead(i), 3, "zh"), (std::vector<std::string>{"zh-script", "other", "zh-other"})) << i;
    EXPECT_EQ(Ids(Lead(i), 3, "en"), (std::vector<std::string>{"en-script", "other", "zh-other"})) << i;
    // No preferred language: the most relevant variant.
    EXPECT_EQ(Ids(Lead(i), 4), (std::vector<std::string>{"en-script", "other", "zh-other"})) << i;
  }
  // The score is the item's place: never rising down the list.
  auto rec = Ask("scores", "evaluation", "zh", 3);
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec.value().items.size(), 3u);
  EXPECT_GE(rec.value().items[0].score, rec.value().items[1].score);
}

TEST_F(RecommendTest, HardFiltersBeatTheVariantPreference) {
  Engine& e = Open();
  Asset en = At("en-script", "Price objection script", 0.95, 1, {"evaluation", "negotiation"});
  Asset zh = At("zh-script", "价格异议话术", 0.60, 2, {"negotiation"});
  zh.variant_of = "en-script";
  zh.type = "case_study";
  ASSERT_TRUE(e.UpsertAssets({en, zh, At("other", "ROI worksheet", 0.5, 3, {"evaluation", "negotiation"})}).ok());
  for (int i = 0; i < 10; ++i) {
    // The zh variant is not eligible at evaluation: the en one may come.
    EXPECT_EQ(Ids(Lead(i), 2, "zh"), (std::vector<std::string>{"en-script", "other"})) << i;
    // At negotiation the zh one is the item's.
    EXPECT_EQ(Ids(Lead(i), 2, "zh", "", "negotiation"), (std::vector<std::string>{"zh-script", "other"})) << i;
    // Excluded, it never comes; the other variant may.
    EXPECT_EQ(Ids(Lead(i), 2, "zh", "", "negotiation", {"zh-script"}), (std::vector<std::string>{"en-script", "other"}))
        << i;
  }
  // A filter on type, likewise.
  auto rec = Ask("typed", "negotiation", "zh", 2, {"objection_script"});
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec.value().items.size(), 2u);
  EXPECT_EQ(rec.value().items[0].asset_id, "en-script");
  EXPECT_EQ(rec.value().items[1].asset_id, "other");
}

// exclude_seen skips the content, not only the asset: once a lead has been
// given the Chinese script, its English translation (or any other variant
// of the item) does not come back in its place; the other lead still gets it.
TEST_F(RecommendTest, ExcludeSeenSkipsTheTranslationsOfWhatTheLeadHasSeen) {
  Engine& e = Open();
  Asset en = At("en-script", "Price objection script", 0.95, 1);
  Asset zh = At("zh-script", "价格异议话术", 0.90, 2);
  zh.variant_of = "en-script";
  Asset fr = At("fr-script", "Objection prix", 0.40, 5);
  fr.variant_of = "zh-script";  // a chain: fr -> zh -> en
  ASSERT_TRUE(e.UpsertAssets({en, zh, fr, At("other", "ROI worksheet", 0.85, 3), At("third", "案例", 0.6, 4)}).ok());
  EXPECT_EQ(Ids("seen-zh", 2, "zh"), (std::vector<std::string>{"zh-script", "other"}));
  Use("seen-zh", "zh-script");
  EXPECT_EQ(Ids("seen-zh", 3, "en"), (std::vector<std::string>{"other", "third"}));
  // Seen through the root, or through the end of the chain: the same.
  Use("seen-en", "en-script");
  EXPECT_EQ(Ids("seen-en", 3, "zh"), (std::vector<std::string>{"other", "third"}));
  Use("seen-fr", "fr-script");
  EXPECT_EQ(Ids("seen-fr", 3), (std::vector<std::string>{"other", "third"}));
  // An unrelated lead still gets the item, in its language.
  EXPECT_EQ(Ids("fresh", 2, "en"), (std::vector<std::string>{"en-script", "other"}));
  // A seen asset without translations excludes only itself.
  Use("seen-other", "other");
  EXPECT_EQ(Ids("seen-other", 2, "en"), (std::vector<std::string>{"en-script", "third"}));
}

TEST_F(RecommendTest, ChainsAndLaterTargetsFormOneContentItem) {
  Engine& e = Open();
  // zh -> fr -> en (the root), and ja -> "de-later" which does not exist yet.
  Asset zh = At("zh-script", "价格异议话术", 0.70, 2);
  zh.variant_of = "fr-script";
  Asset fr = At("fr-script", "Objection prix", 0.90, 3);
  fr.variant_of = "en-script";
  Asset ja = At("ja-script", "Price script (ja)", 0.85, 5);
  ja.variant_of = "de-later";
  ASSERT_TRUE(e.UpsertAssets({zh, fr, At("en-script", "Price objection script", 0.80, 1), ja}).ok());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Ids(Lead(i), 5, "zh"), (std::vector<std::string>{"zh-script", "ja-script"})) << i;
    EXPECT_EQ(Ids(Lead(i), 5, "en"), (std::vector<std::string>{"fr-script", "ja-script"})) << i;
  }
  // The target arrives: ja and de are one item from then on (ja the more relevant).
  Asset de = At("de-later", "Preiseinwand", 0.75, 6);
  ASSERT_TRUE(e.UpsertAssets({de}).ok());
  EXPECT_EQ(Ids("after", 5, "en"), (std::vector<std::string>{"fr-script", "ja-script"}));
}

TEST_F(RecommendTest, VariantCyclesAreRefusedAndNothingIsWritten) {
  Engine& e = Open();
  Asset a = At("a", "alpha", 0.9, 1), b = At("b", "beta", 0.8, 2), c = At("c", "gamma", 0.7, 3);
  a.variant_of = "b";
  b.variant_of = "c";
  ASSERT_TRUE(e.UpsertAssets({a, b, c}).ok());
  // c -> a would close a -> b -> c -> a.
  Asset c2 = c, other = At("d", "delta", 0.5, 4);
  c2.variant_of = "a";
  auto s = e.UpsertAssets({other, c2});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().field(), "assets[1].variant_of");
  EXPECT_NE(s.status().message().find("c -> a -> b -> c"), std::string::npos) << s.status().message();
  std::vector<std::string> missing;
  EXPECT_TRUE(e.GetAssets({"d"}, false, &missing).value().empty());  // nothing written
  EXPECT_EQ(e.GetAssets({"c"}, false, nullptr).value()[0].variant_of, "");
  // Within one call, and to itself.
  Asset x = At("x", "x", 0.5, 5), y = At("y", "y", 0.5, 6);
  x.variant_of = "y";
  y.variant_of = "x";
  EXPECT_EQ(e.UpsertAssets({x, y}).status().field(), "assets[0].variant_of");
  x.variant_of = "x";
  EXPECT_EQ(e.UpsertAssets({x}).status().field(), "assets[0].variant_of");
  x.variant_of = "not an id";
  EXPECT_EQ(e.UpsertAssets({x}).status().field(), "assets[0].variant_of");
  // Relinking b elsewhere then c -> a is fine: no cycle any more.
  b.variant_of = "";
  ASSERT_TRUE(e.UpsertAssets({b}).ok());
  ASSERT_TRUE(e.UpsertAssets({c2}).ok());
  EXPECT_EQ(Ids("lead", 4), std::vector<std::string>{"a"});  // {a, b, c} are one item
  // The links survive a restart (from the saved index).
  Open();
  EXPECT_EQ(Ids("lead2", 4), std::vector<std::string>{"a"});
  EXPECT_EQ(engine_->GetAssets({"c"}, false, nullptr).value()[0].variant_of, "a");
  // ... and from the catalog alone (no index file: rebuilt from the stored records).
  engine_.reset();
  ASSERT_TRUE(fs::remove(dir_ / "index.pbidx"));
  Open();
  EXPECT_EQ(Ids("lead3", 4), std::vector<std::string>{"a"});
}

// recommend reads its counters by asset ordinal, each asset's ordinal
// remembered on its display record: what it reads (the reasons' won deals)
// must be what the counters hold, after a log recorded out of order, assets
// upserted after the ordinals were remembered (with counters only later),
// a deleted asset upserted again (a new display record), and a re-aggregation
// (new counters, numbered anew).
TEST_F(RecommendTest, TheCountersRecommendReadsFollowAShuffledLogNewAssetsDeletesAndAReaggregation) {
  options_.ranking.explore = false;
  Engine& e = Open();
  std::mt19937 rng(5);
  int64_t ts = 1'700'000'000'000;
  int lead = 0;
  // `wins` won leads per asset, each: at evaluation, the asset used, won;
  // recorded in a shuffled order, in calls of up to 5 events.
  auto record_wins = [&](const std::vector<std::pair<std::string, int>>& wins) {
    std::vector<Event> log;
    for (const auto& [asset, n] : wins) {
      for (int i = 0; i < n; ++i) {
        const std::string l = std::string("won-").append(std::to_string(lead++));
        for (EventType type : {EventType::kStageChanged, EventType::kUsed, EventType::kWon}) {
          Event x;
          x.event_id = std::string(l).append(":").append(std::to_string(int(type)));
          x.type = type;
          x.lead_id = l;
          if (type == EventType::kUsed) x.asset_id = asset;
          if (type == EventType::kStageChanged) x.stage = "evaluation";
          x.ts = ts += 1000;
          log.push_back(x);
        }
      }
    }
    std::shuffle(log.begin(), log.end(), rng);
    for (size_t i = 0; i < log.size(); i += 5) {
      auto r = e.RecordEvents(std::vector<Event>(log.begin() + long(i), log.begin() + long(std::min(i + 5, log.size()))));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
  };
  // Every live asset's won deals as recommend's reasons give them (0 without
  // the reason), against the counters.
  auto check = [&](const std::vector<std::string>& live, const char* what) {
    SCOPED_TRACE(what);
    RecommendRequest r = Request(std::string("ask-").append(std::to_string(lead++)), "evaluation", "", 10);
    auto rec = e.Recommend(r);
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    std::vector<std::string> got;
    for (const RecommendedItem& it : rec.value().items) {
      got.push_back(it.asset_id);
      uint64_t won = 0;
      for (const std::string& reason : it.reasons) {
        if (reason.rfind("used in ", 0) == 0) won = std::stoull(reason.substr(8));
      }
      EXPECT_EQ(won, e.GetStats(it.asset_id, "evaluation").won) << it.asset_id;
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, live);
  };
  ASSERT_TRUE(e.UpsertAssets({At("a0", "alpha", 0.9, 1), At("a1", "beta", 0.85, 2), At("a2", "gamma", 0.8, 3),
                              At("a3", "delta", 0.75, 4)})
                  .ok());
  record_wins({{"a0", 1}, {"a1", 2}, {"a2", 3}});
  EXPECT_EQ(e.GetStats("a2", "evaluation").won, 3u);
  check({"a0", "a1", "a2", "a3"}, "a3 without counters");
  check({"a0", "a1", "a2", "a3"}, "again, from the remembered ordinals");
  ASSERT_TRUE(e.UpsertAssets({At("n0", "epsilon", 0.7, 5)}).ok());
  check({"a0", "a1", "a2", "a3", "n0"}, "a new asset");
  record_wins({{"n0", 2}, {"a3", 4}, {"a1", 1}});
  EXPECT_EQ(e.GetStats("a3", "evaluation").won, 4u);
  check({"a0", "a1", "a2", "a3", "n0"}, "counters for assets remembered as absent");
  ASSERT_TRUE(e.DeleteAssets({"a2"}).ok());
  check({"a0", "a1", "a3", "n0"}, "a2 deleted");
  ASSERT_TRUE(e.UpsertAssets({At("a2", "gamma again", 0.8, 3)}).ok());
  record_wins({{"a2", 1}});
  check({"a0", "a1", "a2", "a3", "n0"}, "a2 upserted again");
  auto re = e.Reaggregate(true, nullptr);
  ASSERT_TRUE(re.ok()) << re.status().ToString();
  EXPECT_EQ(re.value().differing, 0u);
  record_wins({{"a0", 2}});
  check({"a0", "a1", "a2", "a3", "n0"}, "after a re-aggregation");
  EXPECT_EQ(e.GetStats("a0", "evaluation").won, 3u);
  EXPECT_EQ(e.GetStats("a2", "evaluation").won, 4u);
}

TEST_F(RecommendTest, ReasonsSayWhyItMatchesAndNewnessOnlyWhenItWasTheReason) {
  options_.ranking.explore = false;
  Engine& e = Open();
  ASSERT_TRUE(e.UpsertAssets({At("a", "alpha", 0.9, 1), At("b", "beta", 0.6, 2)}).ok());
  RecommendRequest r;
  r.lead_id = "lead";
  r.stage = "evaluation";
  r.vector = Query();
  auto rec = e.Recommend(r);
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec.value().items.size(), 2u);
  for (const RecommendedItem& it : rec.value().items) {
    const auto& why = it.reasons;
    EXPECT_NE(std::find(why.begin(), why.end(), "objection script for the evaluation stage"), why.end()) << it.asset_id;
    for (const std::string& reason : why) EXPECT_EQ(reason.find("new:"), std::string::npos) << reason;
  }
  EXPECT_EQ(rec.value().items[0].reasons[0], "close to the lead's context (similarity 0.90)");
}

// The org's own words (docs/ranking.md): the team's phrasing, unknown to the
// embedder, becomes evidence for the asset reps use after it, once it has the
// minimum support, and only among the assets the filters admit.
TEST_F(RecommendTest, TheTeamsOwnWordsAreLearntFromUsesAfterAMinimumSupport) {
  learn_terms_ = true;
  Engine& e = Open();
  // "price" is 0.06 less similar than "other": more than exploration can overturn.
  ASSERT_TRUE(e.UpsertAssets({At("price", "alpha", 0.50, 1), At("other", "beta", 0.56, 2),
                              At("third", "gamma", 0.53, 3)})
                  .ok());
  const std::string jargon = "sharpen your pencil";
  int lead = 0;
  auto first = [&](const std::string& context) { return Ids(Lead(lead++), 3, "", context).at(0); };
  for (int i = 0; i < 20; ++i) ASSERT_EQ(first(jargon), "other") << "cold start, " << i;
  // Two uses after the jargon: below the minimum support (3), nothing changes.
  for (int i = 0; i < 2; ++i) {
    const std::string l = Lead(lead);
    ASSERT_EQ(Ids(l, 3, "", jargon).size(), 3u);
    ++lead;
    Use(l, "price");
  }
  for (int i = 0; i < 20; ++i) ASSERT_EQ(first(jargon), "other") << "below the minimum support, " << i;
  // The third use: the jargon now points at the price script ...
  const std::string l = Lead(lead++);
  ASSERT_EQ(Ids(l, 3, "", jargon).size(), 3u);
  Use(l, "price");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(first(jargon), "price") << "learnt, " << i;
  // ... and says so; a context without the jargon is as before.
  RecommendRequest r;
  r.lead_id = "reasons";
  r.stage = "evaluation";
  r.vector = Query();
  r.context = "they said: sharpen the pencil";
  r.k = 3;
  auto rec = e.Recommend(r);
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec.value().items[0].asset_id, "price");
  const auto& reasons = rec.value().items[0].reasons;
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "your team used this after 'sharpen'"), reasons.end())
      << ::testing::PrintToString(reasons);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(first("call back next week"), "other") << "other words, " << i;
  // A second use with the same lead and context teaches nothing more.
  auto before = e.ReportPhrases({});
  ASSERT_TRUE(before.ok());
  Use(l, "price");
  Event again;
  again.event_id = "again";
  again.type = EventType::kUsed;
  again.lead_id = l;
  again.asset_id = "price";
  ASSERT_TRUE(e.RecordEvents({again}).ok());
  auto report = e.ReportPhrases({});
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report.value().assets.size(), 1u);
  EXPECT_EQ(report.value().assets[0].asset_id, "price");
  ASSERT_EQ(report.value().assets[0].phrases.size(), 3u);
  for (const auto& p : report.value().assets[0].phrases) {
    EXPECT_EQ(p.uses, 3u) << p.term;
    EXPECT_TRUE(p.learned) << p.term;
  }
  // Re-aggregation from the log agrees with the live counting, and a reopen
  // (counters loaded from storage) ranks as before.
  auto check = e.Reaggregate(false, nullptr);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check.value().differing, 0u);
  Engine& reopened = Open();
  EXPECT_EQ(Ids(Lead(lead++), 3, "", jargon).at(0), "price");
  ASSERT_TRUE(reopened.Reaggregate(true, nullptr).ok());
  EXPECT_EQ(Ids(Lead(lead++), 3, "", jargon).at(0), "price");
}

TEST_F(RecommendTest, LearntWordsNeverPushAnAssetPastTheFilters) {
  learn_terms_ = true;
  Engine& e = Open();
  Asset sheet = At("sheet", "delta", 0.48, 4);
  sheet.type = "case_study";
  ASSERT_TRUE(e.UpsertAssets({At("a", "alpha", 0.50, 1), At("b", "beta", 0.56, 2), sheet,
                              At("later", "epsilon", 0.31, 5, {"negotiation"})})
                  .ok());
  const std::string jargon = "sharpen your pencil";
  for (int i = 0; i < 30; ++i) {  // overwhelming support for two assets the filters will exclude
    const std::string l = std::string("teach-").append(std::to_string(i));
    ASSERT_FALSE(Ids(l, 3, "", jargon).empty());
    Use(l, "sheet");
    Use(l, "later");
  }
  for (int i = 0; i < 20; ++i) {
    RecommendRequest r;
    r.lead_id = Lead(i);
    r.stage = "evaluation";
    r.vector = Query();
    r.context = jargon;
    r.k = 3;
    r.filter.types = {"objection_script"};
    const bool exclude_a = i % 2 != 0;
    if (exclude_a) r.filter.exclude_ids = {"a"};
    auto rec = e.Recommend(r);
    ASSERT_TRUE(rec.ok());
    for (const auto& item : rec.value().items) {
      EXPECT_NE(item.asset_id, "sheet") << i;  // not of the requested type
      EXPECT_NE(item.asset_id, "later") << i;  // not at this stage
      if (exclude_a) {
        EXPECT_NE(item.asset_id, "a") << i;  // excluded by the request
      }
    }
  }
  // Without the type filter the learnt asset does come first at its stage.
  EXPECT_EQ(Ids(Lead(99), 3, "", jargon).at(0), "sheet");
}

// An asset the team's words point at is scored even when retrieval does not
// find it (more than 50 assets are more similar), if the filters admit it.
TEST_F(RecommendTest, LearntWordsBringInAnEligibleAssetRetrievalMissed) {
  learn_terms_ = true;
  options_.ranking.candidates_per_item = 1;  // 50 candidates
  Engine& e = Open();
  std::vector<Asset> assets;
  for (int i = 0; i < 60; ++i) {
    std::string id = "filler-";
    id += std::to_string(i);
    assets.push_back(At(id, "filler", 0.55 + 0.0001 * i, 1 + uint32_t(i % 6)));
  }
  assets.push_back(At("price", "alpha", 0.50, 7));
  ASSERT_TRUE(e.UpsertAssets(assets).ok());
  const std::string jargon = "pull the lever";
  auto has_price = [](const std::vector<std::string>& ids) {
    return std::find(ids.begin(), ids.end(), "price") != ids.end();
  };
  for (int i = 0; i < 10; ++i) ASSERT_FALSE(has_price(Ids(Lead(i), 3, "", jargon))) << "cold start, " << i;
  for (int i = 0; i < 3; ++i) {
    const std::string l = std::string("teach-").append(std::to_string(i));
    ASSERT_EQ(Ids(l, 3, "", jargon).size(), 3u);
    Use(l, "price");
  }
  for (int i = 10; i < 30; ++i) ASSERT_EQ(Ids(Lead(i), 3, "", jargon).at(0), "price") << "learnt, " << i;
  // The request's filters still decide.
  EXPECT_FALSE(has_price(Ids(Lead(40), 3, "", jargon, "evaluation", {"price"})));
  EXPECT_FALSE(has_price(Ids(Lead(41), 3, "", jargon, "negotiation")));
}

}  // namespace
}  // namespace playbook

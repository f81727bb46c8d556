// reports.assets' numbers against a hand-computed fixture.
#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "feedback.h"  // engine/src: the counters' merge operator
#include "playbook/engine/engine.h"
#include "test_embedder.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kDay = 86400000;

int64_t DayStart(int64_t ms) { return ms / kDay * kDay; }

class ReportsTest : public ::testing::Test {
 protected:
  ReportsTest() {
    dir_ = fs::temp_directory_path() / ("playbook-reports-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
    options_.dimension = 32;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    d0_ = DayStart(now) - 10 * kDay + kDay / 2;  // noon, ten days ago
    d5_ = d0_ + 5 * kDay;
  }
  ~ReportsTest() override {
    engine_.reset();
    fs::remove_all(dir_);
  }
  void Open() {
    engine_.reset();
    auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }
  static Event Ev(const std::string& id, EventType type, const std::string& lead, const std::string& asset,
                  const std::string& rep, int64_t ts, const std::string& stage = "") {
    Event e;
    e.event_id = id;
    e.type = type;
    e.lead_id = lead;
    e.asset_id = asset;
    e.rep_id = rep;
    e.ts = ts;
    e.stage = stage;
    return e;
  }
  // The fixture:
  //   L1 (rep r1, evaluation, day 0): shown A, B; used A; viewed A; won 1000.
  //   L2 (rep r2, evaluation, day 0): shown A, C; used C; dismissed A; lost.
  //   L3 (rep r1, negotiation, day 5): shown B; used B; won 500.
  void Seed() {
    Asset a, b, c;
    a.id = "A", a.title = "太贵了：价值拆解", a.type = "objection_script", a.stages = {"evaluation"};
    b.id = "B", b.title = "ROI calculator", b.type = "roi_calculator", b.stages = {"evaluation", "negotiation"};
    c.id = "C", c.title = "Competitor comparison", c.type = "competitor_comparison", c.stages = {"evaluation"};
    ASSERT_TRUE(engine_->UpsertAssets({a, b, c}).ok());
    const int64_t t = d0_;
    std::vector<Event> events = {
        Ev("1", EventType::kStageChanged, "L1", "", "r1", t, "evaluation"),
        Ev("2", EventType::kShown, "L1", "A", "r1", t + 1, "evaluation"),
        Ev("3", EventType::kShown, "L1", "B", "r1", t + 2, "evaluation"),
        Ev("4", EventType::kUsed, "L1", "A", "r1", t + 3),
        Ev("5", EventType::kViewed, "L1", "A", "r1", t + 4),
        Ev("6", EventType::kWon, "L1", "", "r1", t + 5),
        Ev("11", EventType::kStageChanged, "L2", "", "r2", t, "evaluation"),
        Ev("12", EventType::kShown, "L2", "A", "r2", t + 1, "evaluation"),
        Ev("13", EventType::kShown, "L2", "C", "r2", t + 2, "evaluation"),
        Ev("14", EventType::kUsed, "L2", "C", "r2", t + 3),
        Ev("15", EventType::kDismissed, "L2", "A", "r2", t + 4),
        Ev("16", EventType::kLost, "L2", "", "r2", t + 5),
        Ev("21", EventType::kStageChanged, "L3", "", "r1", d5_, "negotiation"),
        Ev("22", EventType::kShown, "L3", "B", "r1", d5_ + 1, "negotiation"),
        Ev("23", EventType::kUsed, "L3", "B", "r1", d5_ + 2),
        Ev("24", EventType::kWon, "L3", "", "r1", d5_ + 3),
    };
    events[5].amount = 1000;
    events[15].amount = 500;
    auto r = engine_->RecordEvents(events);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // Duplicates are not counted again.
    ASSERT_EQ(engine_->RecordEvents({events[3], events[14]}).value().duplicates, 2u);
  }
  // Every figure of every report (and the ranking's counters of the seeded
  // assets), as one string to compare before and after.
  std::string Figures() {
    std::ostringstream out;
    ReportQuery q;
    q.limit = 1000;
    for (const char* rep : {"", "r1", "r2"}) {
      for (const char* stage : {"", "evaluation", "negotiation"}) {
        q.rep_id = rep;
        q.stage = stage;
        auto r = engine_->ReportAssets(q).value();
        out << "assets rep=" << rep << " stage=" << stage << " won=" << r.leads_won << " lost=" << r.leads_lost << "\n";
        for (const auto& row : r.rows) {
          out << "  " << row.asset_id << " " << row.shown << " " << row.used << " " << row.viewed << " "
              << row.dismissed << " " << row.won << " " << row.lost << " " << row.influenced_revenue << " "
              << row.last_used.value_or(-1) << "\n";
        }
      }
    }
    const auto reps = engine_->ReportReps(ReportQuery{}).value();
    for (const auto& row : reps) {
      out << "rep " << row.rep_id << " " << row.shown << " " << row.used << " " << row.dismissed << " "
          << row.leads_won << " " << row.leads_lost << "\n";
    }
    const auto funnel = engine_->ReportFunnel(ReportQuery{}).value();
    for (const auto& row : funnel) {
      out << "funnel " << row.stage << " " << row.entered << " " << row.advanced_with_content << " "
          << row.advanced_without_content << " " << row.won_with_content << " " << row.won_without_content << " "
          << row.lost_with_content << " " << row.lost_without_content << "\n";
    }
    const auto dismissals = engine_->ReportDismissals(ReportQuery{}).value();
    for (const auto& row : dismissals.by_asset) {
      out << "dismissed " << row.asset_id << " " << row.reason << " " << row.count << "\n";
    }
    for (const char* asset : {"A", "B", "C"}) {
      for (const char* stage : {"evaluation", "negotiation"}) {
        const AssetStageStats s = engine_->GetStats(asset, stage);
        out << "stats " << asset << " " << stage << " " << s.shown << " " << s.used << " " << s.won << " "
            << s.lost << " " << s.advanced << " " << s.won_amount << "\n";
      }
    }
    return out.str();
  }
  const AssetReportRow* Row(const AssetReport& r, const std::string& id) {
    for (const auto& row : r.rows) {
      if (row.asset_id == id) return &row;
    }
    return nullptr;
  }

  fs::path dir_;
  EngineOptions options_;
  std::unique_ptr<Engine> engine_;
  int64_t d0_ = 0, d5_ = 0;
};

TEST_F(ReportsTest, ExactCountsRatesLiftAndRevenue) {
  Open();
  Seed();
  auto r = engine_->ReportAssets(ReportQuery{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value().leads_won, 2u);
  EXPECT_EQ(r.value().leads_lost, 1u);
  const AssetReportRow* a = Row(r.value(), "A");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->title, "太贵了：价值拆解");
  EXPECT_EQ(a->shown, 2u);
  EXPECT_EQ(a->used, 1u);
  EXPECT_DOUBLE_EQ(a->usage_rate, 0.5);
  EXPECT_EQ(a->viewed, 1u);
  EXPECT_EQ(a->dismissed, 1u);
  EXPECT_EQ(a->won, 1u);
  EXPECT_EQ(a->lost, 0u);
  EXPECT_DOUBLE_EQ(a->win_rate.value(), 1.0);
  EXPECT_DOUBLE_EQ(a->lift.value(), 1.5);  // 1 / (2 of 3 leads won)
  EXPECT_DOUBLE_EQ(a->influenced_revenue, 1000);
  EXPECT_EQ(a->last_used.value(), d0_ + 3);
  const AssetReportRow* b = Row(r.value(), "B");
  EXPECT_EQ(b->shown, 2u);
  EXPECT_EQ(b->used, 1u);
  EXPECT_EQ(b->won, 1u);
  EXPECT_DOUBLE_EQ(b->influenced_revenue, 500);
  const AssetReportRow* c = Row(r.value(), "C");
  EXPECT_EQ(c->used, 1u);
  EXPECT_DOUBLE_EQ(c->usage_rate, 1.0);
  EXPECT_EQ(c->lost, 1u);
  EXPECT_DOUBLE_EQ(c->win_rate.value(), 0.0);
  EXPECT_DOUBLE_EQ(c->lift.value(), 0.0);
  EXPECT_EQ(r.value().totals.used, 3u);
  EXPECT_EQ(r.value().totals.shown, 5u);
  EXPECT_DOUBLE_EQ(r.value().totals.influenced_revenue, 1500);
  // Sorted by used, then id; sort by another column.
  EXPECT_EQ(r.value().rows[0].asset_id, "A");
  ReportQuery by_revenue;
  by_revenue.sort = "influenced_revenue";
  EXPECT_EQ(engine_->ReportAssets(by_revenue).value().rows[0].asset_id, "A");
  by_revenue.sort = "colour";
  EXPECT_EQ(engine_->ReportAssets(by_revenue).status().field(), "sort");
}

TEST_F(ReportsTest, ByContentSumsTranslationsIntoOneItem) {
  Open();
  Seed();
  // C becomes a translation of A (its language given); B stays on its own.
  auto got = engine_->GetAssets({"A", "C"}, false, nullptr);
  ASSERT_TRUE(got.ok());
  Asset a = got.value()[0], c = got.value()[1];
  a.language = "zh";
  c.language = "en";
  c.variant_of = "A";
  ASSERT_TRUE(engine_->UpsertAssets({a, c}).ok());
  ReportQuery q;
  q.by = "content";
  auto r = engine_->ReportAssets(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value().rows.size(), 2u);
  EXPECT_EQ(r.value().matching, 3u);  // assets
  EXPECT_EQ(r.value().content_items, 2u);
  const AssetReportRow* item = Row(r.value(), "A");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->title, "太贵了：价值拆解");  // the root's
  EXPECT_EQ(item->shown, 3u);  // 2 + 1
  EXPECT_EQ(item->used, 2u);
  EXPECT_EQ(item->dismissed, 1u);
  EXPECT_EQ(item->won, 1u);
  EXPECT_EQ(item->lost, 1u);
  EXPECT_DOUBLE_EQ(item->win_rate.value(), 0.5);
  EXPECT_DOUBLE_EQ(item->lift.value(), 0.75);  // 0.5 / (2 of 3 leads won)
  EXPECT_DOUBLE_EQ(item->influenced_revenue, 1000);
  ASSERT_EQ(item->variants.size(), 2u);
  EXPECT_EQ(item->variants[0].asset_id, "A");
  EXPECT_EQ(item->variants[0].language, "zh");
  EXPECT_EQ(item->variants[1].asset_id, "C");
  EXPECT_EQ(item->variants[1].language, "en");
  const AssetReportRow* b = Row(r.value(), "B");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->title, "ROI calculator");
  ASSERT_EQ(b->variants.size(), 1u);
  // The totals are those of the assets, by content or not.
  q.by = "asset";
  EXPECT_EQ(engine_->ReportAssets(q).value().totals.used, r.value().totals.used);
  EXPECT_EQ(engine_->ReportAssets(q).value().rows.size(), 3u);
  // A deleted variant keeps its link in the reports.
  ASSERT_TRUE(engine_->DeleteAssets({"C"}).ok());
  q.by = "content";
  EXPECT_EQ(Row(engine_->ReportAssets(q).value(), "A")->variants.size(), 2u);
  q.by = "language";
  EXPECT_EQ(engine_->ReportAssets(q).status().field(), "by");
}

TEST_F(ReportsTest, FiltersByStageRepTypeAndWindow) {
  Open();
  Seed();
  ReportQuery q;
  q.stage = "negotiation";
  auto neg = engine_->ReportAssets(q).value();
  ASSERT_EQ(neg.rows.size(), 1u);
  EXPECT_EQ(neg.rows[0].asset_id, "B");
  EXPECT_EQ(neg.rows[0].shown, 1u);
  EXPECT_EQ(neg.rows[0].won, 1u);

  ReportQuery rep;
  rep.rep_id = "r2";
  auto r2 = engine_->ReportAssets(rep).value();
  EXPECT_EQ(Row(r2, "A")->shown, 1u);
  EXPECT_EQ(Row(r2, "A")->dismissed, 1u);
  EXPECT_EQ(Row(r2, "A")->used, 0u);
  EXPECT_EQ(Row(r2, "C")->lost, 1u);
  EXPECT_EQ(Row(r2, "B"), nullptr);

  ReportQuery type;
  type.type = "roi_calculator";
  auto t = engine_->ReportAssets(type).value();
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].asset_id, "B");

  // Whole UTC days: from day 1 leaves out day 0, so only L3 counts.
  ReportQuery window;
  window.from_ms = DayStart(d0_) + kDay;
  auto w = engine_->ReportAssets(window).value();
  ASSERT_EQ(w.rows.size(), 1u);
  EXPECT_EQ(w.rows[0].asset_id, "B");
  EXPECT_EQ(w.leads_won, 1u);
  EXPECT_EQ(w.leads_lost, 0u);
  EXPECT_DOUBLE_EQ(w.rows[0].lift.value(), 1.0);
  // The last millisecond of day 0 still includes day 0.
  window.from_ms = 0;
  window.to_ms = DayStart(d0_) + kDay - 1;
  auto day0 = engine_->ReportAssets(window).value();
  EXPECT_EQ(day0.leads_won, 1u);
  EXPECT_EQ(day0.leads_lost, 1u);
  EXPECT_EQ(Row(day0, "B")->shown, 1u);  // the evaluation showing only
}

TEST_F(ReportsTest, TrendBucketsWholeDaysWithTheTotalsOfReportAssets) {
  Open();
  Seed();
  ReportQuery q;
  q.from_ms = d0_;                     // noon: the bucket starts at 00:00 UTC of its day
  q.to_ms = DayStart(d0_) + 6 * kDay;  // seven days: buckets of 3, 3 and 1 days
  auto r = engine_->ReportTrend(q, 3);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::vector<TrendBucket>& b = r.value();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].from_ms, DayStart(d0_));
  EXPECT_EQ(b[0].to_ms, DayStart(d0_) + 3 * kDay - 1);
  EXPECT_EQ(b[1].from_ms, DayStart(d0_) + 3 * kDay);
  EXPECT_EQ(b[2].from_ms, DayStart(d0_) + 6 * kDay);
  EXPECT_EQ(b[2].to_ms, DayStart(d0_) + 7 * kDay - 1);
  // Day 0: L1 and L2 (A, B, A, C shown; A and C used; A viewed and dismissed).
  EXPECT_EQ(b[0].assets, 3u);
  EXPECT_EQ(b[0].totals.shown, 4u);
  EXPECT_EQ(b[0].totals.used, 2u);
  EXPECT_EQ(b[0].totals.viewed, 1u);
  EXPECT_EQ(b[0].totals.dismissed, 1u);
  EXPECT_DOUBLE_EQ(b[0].totals.usage_rate, 0.5);
  // Day 5: L3 (B shown, used, won).
  EXPECT_EQ(b[1].assets, 1u);
  EXPECT_EQ(b[1].totals.shown, 1u);
  EXPECT_EQ(b[1].totals.used, 1u);
  EXPECT_EQ(b[1].totals.won, 1u);
  EXPECT_EQ(b[1].totals.lost, 0u);
  EXPECT_EQ(b[2].assets, 0u);
  EXPECT_EQ(b[2].totals.shown, 0u);
  EXPECT_EQ(b[2].totals.usage_rate, 0.0);
  // Each bucket holds what reports.assets says of its days.
  for (const TrendBucket& x : b) {
    ReportQuery w;
    w.from_ms = x.from_ms;
    w.to_ms = x.to_ms;
    const AssetReportRow t = engine_->ReportAssets(w).value().totals;
    EXPECT_EQ(x.totals.won, t.won);
    EXPECT_EQ(x.totals.lost, t.lost);
    EXPECT_EQ(x.totals.used, t.used);
  }
  // Filters as in reports.assets.
  q.type = "roi_calculator";
  auto roi = engine_->ReportTrend(q, 7).value();
  ASSERT_EQ(roi.size(), 1u);
  EXPECT_EQ(roi[0].totals.shown, 2u);  // B, day 0 and day 5
  EXPECT_EQ(roi[0].totals.used, 1u);
  q.type.clear();
  q.rep_id = "r2";
  auto r2 = engine_->ReportTrend(q, 7).value();
  EXPECT_EQ(r2[0].totals.shown, 2u);
  EXPECT_EQ(r2[0].totals.used, 1u);
  q.rep_id.clear();
  q.stage = "nope";
  EXPECT_EQ(engine_->ReportTrend(q, 7).status().field(), "stage");
  q.stage.clear();
  EXPECT_EQ(engine_->ReportTrend(q, 0).status().field(), "bucket_days");
}

TEST_F(ReportsTest, UnusedContentIncludesAssetsNeverShown) {
  Open();
  Seed();
  Asset idle;
  idle.id = "D", idle.title = "Never shown whitepaper", idle.type = "whitepaper", idle.stages = {"awareness"};
  Asset off = idle;
  off.id = "E", off.active = false;  // inactive: not "unused", just off
  ASSERT_TRUE(engine_->UpsertAssets({idle, off}).ok());
  auto r = engine_->ReportUnused(ReportQuery{}, /*rarely_shown_min=*/2, /*rarely_rate=*/0.6);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value().never_used.size(), 1u);
  EXPECT_EQ(r.value().never_used[0].asset_id, "D");
  EXPECT_EQ(r.value().never_used[0].shown, 0u);
  // A and B were shown twice and used once (50% < 60%); C was used every time.
  ASSERT_EQ(r.value().rarely_used.size(), 2u);
  EXPECT_EQ(r.value().rarely_used[0].asset_id, "A");
  EXPECT_EQ(r.value().rarely_used[1].asset_id, "B");
  ReportQuery neg;
  neg.stage = "negotiation";  // B only is eligible there, and was used
  auto n = engine_->ReportUnused(neg, 2, 0.6).value();
  EXPECT_TRUE(n.never_used.empty());
  EXPECT_TRUE(n.rarely_used.empty());
}

TEST_F(ReportsTest, PerRepUsageAndTheirLeadsWinRate) {
  Open();
  Seed();
  auto r = engine_->ReportReps(ReportQuery{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value().size(), 2u);
  const RepReportRow& r1 = r.value()[0].rep_id == "r1" ? r.value()[0] : r.value()[1];
  const RepReportRow& r2 = r.value()[0].rep_id == "r2" ? r.value()[0] : r.value()[1];
  EXPECT_EQ(r1.shown, 3u);  // A, B for L1; B for L3
  EXPECT_EQ(r1.used, 2u);
  EXPECT_NEAR(r1.usage_rate, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(r1.leads_won, 2u);
  EXPECT_DOUBLE_EQ(r1.win_rate.value(), 1.0);
  EXPECT_EQ(r2.shown, 2u);
  EXPECT_EQ(r2.used, 1u);
  EXPECT_EQ(r2.dismissed, 1u);
  EXPECT_EQ(r2.leads_lost, 1u);
  EXPECT_DOUBLE_EQ(r2.win_rate.value(), 0.0);
}

TEST_F(ReportsTest, FunnelPerStageWithAndWithoutContent) {
  Open();
  Seed();
  // L4 enters at interest, uses nothing, advances to evaluation, is lost there.
  const int64_t t = d5_ + 100;
  ASSERT_TRUE(engine_->RecordEvents({Ev("41", EventType::kStageChanged, "L4", "", "r2", t, "interest"),
                                     Ev("42", EventType::kStageChanged, "L4", "", "r2", t + 1, "evaluation"),
                                     Ev("43", EventType::kLost, "L4", "", "r2", t + 2)})
                  .ok());
  auto r = engine_->ReportFunnel(ReportQuery{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value().size(), 5u);
  const FunnelReportRow& interest = r.value()[1];
  const FunnelReportRow& evaluation = r.value()[3];
  const FunnelReportRow& negotiation = r.value()[4];
  EXPECT_EQ(interest.entered, 1u);
  EXPECT_EQ(interest.advanced_without_content, 1u);
  EXPECT_EQ(evaluation.entered, 3u);  // L1, L2, L4
  EXPECT_EQ(evaluation.won_with_content, 1u);   // L1 used A
  EXPECT_EQ(evaluation.lost_with_content, 1u);  // L2 used C
  EXPECT_EQ(evaluation.lost_without_content, 1u);  // L4
  EXPECT_EQ(negotiation.entered, 1u);
  EXPECT_EQ(negotiation.won_with_content, 1u);  // L3 used B
}

TEST_F(ReportsTest, DismissalReasonsOverallAndPerAsset) {
  Open();
  Seed();  // one dismissal of A by r2 at evaluation, no reason given
  const int64_t t = d5_ + 10;
  Event d1 = Ev("d1", EventType::kDismissed, "L2", "A", "r2", t);
  d1.reason = "客户已经看过";
  Event d2 = Ev("d2", EventType::kDismissed, "L2", "B", "r2", t + 1);
  d2.reason = " 客户已经看过 ";
  Event d3 = Ev("d3", EventType::kDismissed, "L2", "B", "r2", t + 2);
  d3.reason = "not relevant";
  ASSERT_TRUE(engine_->RecordEvents({d1, d2, d3}).ok());
  auto r = engine_->ReportDismissals(ReportQuery{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value().reasons.size(), 3u);
  EXPECT_EQ(r.value().reasons[0].reason, "客户已经看过");
  EXPECT_EQ(r.value().reasons[0].count, 2u);
  uint64_t total = 0;
  for (const auto& x : r.value().by_asset) total += x.count;
  EXPECT_EQ(total, 4u);
  ReportQuery window;
  window.to_ms = DayStart(d0_) + kDay - 1;  // day 0: only the reasonless one
  auto day0 = engine_->ReportDismissals(window).value();
  ASSERT_EQ(day0.reasons.size(), 1u);
  EXPECT_EQ(day0.reasons[0].reason, "(no reason)");
  EXPECT_EQ(day0.by_asset[0].title, "太贵了：价值拆解");
}

TEST_F(ReportsTest, DeletedAssetsKeepTheirHistoryAndAggregatesSurviveARestart) {
  Open();
  Seed();
  ASSERT_EQ(engine_->DeleteAssets({"C"}).value(), 1u);
  ASSERT_TRUE(engine_->Close().ok());
  Open();
  auto r = engine_->ReportAssets(ReportQuery{}).value();
  const AssetReportRow* c = Row(r, "C");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->deleted);
  EXPECT_EQ(c->title, "Competitor comparison");
  EXPECT_EQ(c->used, 1u);
  EXPECT_EQ(Row(r, "A")->used, 1u);
  EXPECT_EQ(r.leads_won, 2u);
}

TEST_F(ReportsTest, ReaggregationFromTheRawLogEqualsTheLiveAggregates) {
  Open();
  Seed();
  const std::string live = Figures();
  ASSERT_NE(live.find("  A 2 1 1 1 1 0 1000"), std::string::npos) << live;  // the fixture is in there

  auto check = engine_->Reaggregate(false, nullptr);
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_EQ(check.value().events, 16u);  // duplicates are not in the log
  EXPECT_EQ(check.value().leads, 3u);
  EXPECT_GT(check.value().keys, 20u);
  EXPECT_EQ(check.value().differing, 0u);
  EXPECT_FALSE(check.value().written);

  std::map<std::string, uint64_t> last_done;  // phase -> done, in order
  std::string phases;
  auto written = engine_->Reaggregate(true, [&](const char* phase, uint64_t done, uint64_t total) {
    if (phases.empty() || phases.substr(phases.rfind(' ') + 1) != phase) phases.append(" ").append(phase);
    last_done[phase] = done;
    EXPECT_LE(done, total);
  });
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_TRUE(written.value().written);
  EXPECT_EQ(written.value().differing, 0u);
  EXPECT_EQ(phases, " replay write");
  EXPECT_EQ(last_done["replay"], 16u);
  EXPECT_EQ(last_done["write"], 2u);  // the fixture's events fall on two days
  EXPECT_EQ(Figures(), live);
  ASSERT_TRUE(engine_->Close().ok());
  Open();
  EXPECT_EQ(Figures(), live);
  EXPECT_EQ(engine_->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(ReportsTest, ReaggregationAppliesANewAttributionWindow) {
  options_.attribution_window_days = 30;
  Open();
  Seed();
  // L4 uses C on day 0 and is won on day 5: inside 30 days, outside 2.
  std::vector<Event> events = {Ev("31", EventType::kStageChanged, "L4", "", "r2", d0_, "evaluation"),
                               Ev("32", EventType::kUsed, "L4", "C", "r2", d0_ + 10),
                               Ev("33", EventType::kWon, "L4", "", "r2", d5_)};
  events[2].amount = 250;
  ASSERT_TRUE(engine_->RecordEvents(events).ok());
  auto c = [&] { return *Row(engine_->ReportAssets(ReportQuery{}).value(), "C"); };
  EXPECT_EQ(c().won, 1u);
  EXPECT_DOUBLE_EQ(c().influenced_revenue, 250);
  EXPECT_EQ(engine_->GetStats("C", "evaluation").won, 1u);

  ASSERT_TRUE(engine_->Close().ok());
  options_.attribution_window_days = 2;
  Open();
  EXPECT_EQ(c().won, 1u);  // the live aggregates keep the window they were counted with
  auto check = engine_->Reaggregate(false, nullptr).value();
  EXPECT_GT(check.differing, 0u);
  EXPECT_EQ(c().won, 1u);  // a check changes nothing
  auto written = engine_->Reaggregate(true, nullptr).value();
  EXPECT_EQ(written.differing, check.differing);
  EXPECT_EQ(c().won, 0u);
  EXPECT_DOUBLE_EQ(c().influenced_revenue, 0);
  EXPECT_EQ(engine_->GetStats("C", "evaluation").won, 0u);  // the ranking's counters too
  EXPECT_EQ(engine_->ReportAssets(ReportQuery{}).value().leads_won, 3u);  // the lead still closed
  ASSERT_TRUE(engine_->Close().ok());
  Open();
  EXPECT_EQ(c().won, 0u);
  EXPECT_EQ(engine_->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(ReportsTest, FeedbackRecordedDuringAReaggregationIsCounted) {
  Open();
  Seed();
  std::mt19937 rng(5);
  auto random_batch = [&](int n, int call) {
    std::vector<Event> batch;
    const EventType kinds[] = {EventType::kShown, EventType::kUsed, EventType::kViewed, EventType::kDismissed,
                               EventType::kStageChanged, EventType::kWon, EventType::kLost};
    for (int i = 0; i < n; ++i) {
      const EventType t = kinds[rng() % 7];
      std::string id = "x";
      id.append(std::to_string(call)).append("-").append(std::to_string(i));
      std::string lead = "lead";
      lead.append(std::to_string(rng() % 300));
      const std::string asset = std::string(1, char('A' + rng() % 3));
      const bool about_asset = t == EventType::kShown || t == EventType::kUsed || t == EventType::kViewed ||
                               t == EventType::kDismissed;
      const std::string stage = t == EventType::kShown || t == EventType::kStageChanged
                                    ? (rng() % 2 ? "evaluation" : "negotiation")
                                    : "";
      batch.push_back(Ev(id, t, lead, about_asset ? asset : "", rng() % 2 ? "r1" : "r2",
                         d0_ + int64_t(rng() % 8) * kDay + int64_t(rng() % 1000), stage));
    }
    return batch;
  };
  for (int call = 0; call < 40; ++call) ASSERT_TRUE(engine_->RecordEvents(random_batch(500, call)).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> calls_during{0};
  std::thread writer([&] {
    std::mt19937 wrng(9);
    for (int call = 1000; !stop; ++call) {
      std::vector<Event> batch = random_batch(20, call);
      if (engine_->RecordEvents(std::move(batch)).ok()) ++calls_during;
    }
  });
  while (calls_during < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int before = calls_during;
  // Also between the days being written, on the very keys being rewritten:
  // counted on top of what is put, not lost under it.
  int between = 0;
  auto written = engine_->Reaggregate(true, [&](const char* phase, uint64_t done, uint64_t total) {
    if (std::string(phase) != "write" || done == total) return;
    std::vector<Event> batch = {Ev("between-" + std::to_string(done), EventType::kUsed, "L1", "A", "r1", d0_ + 7 * kDay),
                                Ev("between-won-" + std::to_string(done), EventType::kWon, "L3", "", "r1", d5_ + kDay)};
    if (engine_->RecordEvents(std::move(batch)).ok()) between += 2;
  });
  const int after = calls_during;
  stop = true;
  writer.join();
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_GT(after - before, 1) << "no feedback was recorded while the log was replayed";
  // Whatever arrived before, during or after: the live aggregates are exactly
  // those of the log.
  auto check = engine_->Reaggregate(false, nullptr).value();
  EXPECT_EQ(check.differing, 0u);
  EXPECT_GE(between, 8);
  EXPECT_EQ(check.events, 16u + 40 * 500 + uint64_t(calls_during) * 20 + uint64_t(between));
  // And what was stored meanwhile (the rewrite and the writer's merges on top
  // of it) is what a restart loads.
  const std::string figures = Figures();
  ASSERT_TRUE(engine_->Close().ok());
  Open();
  EXPECT_EQ(Figures(), figures);
  EXPECT_EQ(engine_->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(ReportsTest, CloseDuringAReaggregationStopsItCleanly) {
  Open();
  Seed();
  std::vector<Event> many;
  for (int i = 0; i < 30000; ++i) {
    std::string id = "m", lead = "lead-m";
    id.append(std::to_string(i));
    lead.append(std::to_string(i % 3000));
    const bool shown = i % 3 != 0;
    many.push_back(Ev(id, shown ? EventType::kShown : EventType::kUsed, lead, "A", "r1", d0_ + i,
                      shown ? "evaluation" : ""));
    if (many.size() == 5000) {
      auto r = engine_->RecordEvents(std::move(many));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      many.clear();
    }
  }
  const std::string live = Figures();
  Result<ReaggregateResult> result = Status::Internal("not run");
  std::atomic<bool> started{false};
  std::thread job([&] {
    result = engine_->Reaggregate(true, [&](const char*, uint64_t, uint64_t) { started = true; });
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(engine_->Close().ok());  // waits for the job to give up or finish
  job.join();
  if (!result.ok()) {
    EXPECT_EQ(result.status().code(), Status::Code::kOverloaded) << result.status().ToString();
  }
  Open();
  EXPECT_EQ(Figures(), live);
  EXPECT_EQ(engine_->Reaggregate(false, nullptr).value().differing, 0u);
}

TEST_F(ReportsTest, AReaggregationInterruptedWhileWritingIsRedoneAtOpen) {
  Open();
  Seed();
  const std::string live = Figures();
  ASSERT_TRUE(engine_->Close().ok());
  engine_.reset();
  {
    // What a crash between the first and the last batch leaves: the marker,
    // and the counters deleted.
    rocksdb::Options o;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(o, options_.data_dir + "/db", &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& n : names) {
      rocksdb::ColumnFamilyOptions cfo;
      if (n == "stats") cfo.merge_operator = NewCounterMergeOperator();
      cfs.emplace_back(n, cfo);
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, options_.data_dir + "/db", cfs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* stats = nullptr;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == "stats") stats = handles[i];
    }
    ASSERT_NE(stats, nullptr);
    rocksdb::WriteBatch batch;
    batch.Put(db->DefaultColumnFamily(), "meta/reaggregating", "1");
    batch.DeleteRange(stats, "", std::string(300, '\xff'));
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  }
  Open();
  EXPECT_EQ(Figures(), live);
  bool warning = false;
  EXPECT_NE(engine_->OpenNote(&warning).find("an interrupted re-aggregation was finished: 16 events replayed"),
            std::string::npos)
      << engine_->OpenNote(&warning);
  EXPECT_TRUE(warning);
  ASSERT_TRUE(engine_->Close().ok());
  Open();  // and the marker is gone: a plain load gives the same
  EXPECT_EQ(Figures(), live);
  EXPECT_NE(engine_->OpenNote(&warning).find("; aggregates loaded in "), std::string::npos);
}

}  // namespace
}  // namespace playbook

// The holdout experiment: assignment, the holdout's baseline ranking, and
// reports.experiment against hand-computed numbers (docs/experiment.md).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "experiment.h"  // engine/src
#include "playbook/engine/engine.h"
#include "test_embedder.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kDay = 86400000;

TEST(ExperimentAssignment, IsDeterministicFromTheIdAndTheSalt) {
  // Computed apart (Python) from the documented hash: FNV-1a 64 of salt, NUL,
  // id; splitmix64's finaliser; the top 53 bits.
  EXPECT_DOUBLE_EQ(AssignmentPoint("lead-1", ""), 0.7003484383585447);
  EXPECT_DOUBLE_EQ(AssignmentPoint("lead-1", "s1"), 0.7935611473958714);
  ExperimentOptions off;
  EXPECT_EQ(AssignArm("lead-1", off), Arm::kNone);
  ExperimentOptions half{0.5, "s1"};
  int holdout = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = "lead-" + std::to_string(i);
    const Arm arm = AssignArm(id, half);
    EXPECT_EQ(arm, AssignArm(id, half));
    holdout += arm == Arm::kHoldout;
  }
  EXPECT_GT(holdout, 4800);
  EXPECT_LT(holdout, 5200);
  EXPECT_EQ(AssignArm("lead-1", ExperimentOptions{0.5, ""}), Arm::kTreatment);  // 0.70 >= 0.5
  EXPECT_EQ(AssignArm("lead-1", ExperimentOptions{0.5, "s1"}), Arm::kTreatment);
}

// The numbers below were computed by hand (Python, from the formulas in
// docs/experiment.md), not by this code.
TEST(ExperimentStatistics, MatchAHandComputedFixture) {
  ExperimentCounts t, h;
  t.leads = 50, t.won = 30, t.lost = 10, t.won_amount = 30000, t.won_amount_sq = 30 * 1000.0 * 1000.0;
  t.days_to_close = 80, t.days_to_close_sq = 160;  // 40 closed, 2 days each
  h.leads = 25, h.won = 10, h.lost = 10, h.won_amount = 10000, h.won_amount_sq = 10 * 1000.0 * 1000.0;
  h.days_to_close = 40, h.days_to_close_sq = 10 * 1 + 10 * 9;  // 1 day and 3 days
  const ExperimentComparison c = CompareArms(t, h);
  EXPECT_EQ(c.treatment.leads, 50u);
  EXPECT_EQ(c.treatment.closed, 40u);
  EXPECT_DOUBLE_EQ(*c.treatment.win_rate, 0.75);
  EXPECT_NEAR(c.treatment.win_rate_ci->lo, 0.5980603857923197, 1e-12);
  EXPECT_NEAR(c.treatment.win_rate_ci->hi, 0.858128813609037, 1e-12);
  EXPECT_DOUBLE_EQ(*c.holdout.win_rate, 0.5);
  EXPECT_NEAR(c.holdout.win_rate_ci->lo, 0.2992980081982123, 1e-12);
  EXPECT_NEAR(c.holdout.win_rate_ci->hi, 0.7007019918017877, 1e-12);
  EXPECT_DOUBLE_EQ(*c.difference, 0.25);
  EXPECT_NEAR(c.difference_ci->lo, -0.0017279004774472528, 1e-12);  // Newcombe: just contains 0
  EXPECT_NEAR(c.difference_ci->hi, 0.47797616069603144, 1e-12);
  EXPECT_NEAR(*c.p_value, 0.05280751141611366, 1e-12);
  EXPECT_FALSE(c.conclusive);
  EXPECT_EQ(*c.closed_leads_needed, 68u);  // 85 + 43 at 80% power, 40 + 20 closed
  EXPECT_DOUBLE_EQ(*c.treatment.revenue_per_closed_lead, 750);
  EXPECT_NEAR(c.treatment.revenue_per_closed_lead_ci->lo, 614.1009491476563, 1e-9);
  EXPECT_NEAR(c.treatment.revenue_per_closed_lead_ci->hi, 885.8990508523437, 1e-9);
  EXPECT_DOUBLE_EQ(*c.revenue_difference, 250);
  EXPECT_DOUBLE_EQ(*c.treatment.mean_days_to_close, 2);
  EXPECT_DOUBLE_EQ(c.treatment.mean_days_to_close_ci->lo, 2);  // no spread
  EXPECT_NEAR(c.holdout.mean_days_to_close_ci->lo, 1.550353424126873, 1e-12);
  EXPECT_NEAR(c.holdout.mean_days_to_close_ci->hi, 2.449646575873127, 1e-12);
  EXPECT_NE(c.note.find("no significant difference yet"), std::string::npos) << c.note;
  EXPECT_NE(c.note.find("68 more closed leads"), std::string::npos) << c.note;

  // Twice the leads at the same rates: conclusive.
  for (ExperimentCounts* x : {&t, &h}) x->won *= 2, x->lost *= 2;
  const ExperimentComparison more = CompareArms(t, h);
  EXPECT_TRUE(more.conclusive);
  EXPECT_GT(more.difference_ci->lo, 0);
  EXPECT_EQ(*more.closed_leads_needed, 0u);
  EXPECT_NE(more.note.find("the recommendations win more deals"), std::string::npos) << more.note;

  // Too small: said plainly, nothing concluded.
  ExperimentCounts few_t, few_h;
  few_t.leads = 3, few_t.won = 2, few_t.lost = 1;
  few_h.leads = 1;
  ExperimentComparison small = CompareArms(few_t, few_h);
  EXPECT_FALSE(small.conclusive);
  EXPECT_FALSE(small.difference.has_value());
  EXPECT_FALSE(small.closed_leads_needed.has_value());
  EXPECT_EQ(small.note, "too small to conclude: no closed lead in the holdout arm yet");
  few_h.won = 1;
  small = CompareArms(few_t, few_h);
  EXPECT_FALSE(small.conclusive);
  EXPECT_EQ(small.note.rfind("too small to conclude: each arm needs at least 5 won and 5 lost leads", 0), 0u)
      << small.note;
}

class ExperimentTest : public ::testing::Test {
 protected:
  ExperimentTest() {
    dir_ = fs::temp_directory_path() / ("playbook-experiment-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
    options_.dimension = 32;
    options_.experiment = {0.5, "fixture"};
    options_.ranking.explore = false;
  }
  ~ExperimentTest() override {
    engine_.reset();
    fs::remove_all(dir_);
  }
  void Open() {
    engine_.reset();
    auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e).value();
  }
  // The first n lead ids with the given arm at the fixture's fraction and salt.
  std::vector<std::string> Leads(Arm arm, size_t n, const std::string& prefix) const {
    std::vector<std::string> out;
    for (int i = 0; out.size() < n; ++i) {
      const std::string id = prefix + std::to_string(i);
      if (AssignArm(id, options_.experiment) == arm) out.push_back(id);
    }
    return out;
  }
  Recommendation Recommend(const std::string& lead, const std::string& rep = "r1") {
    RecommendRequest r;
    r.lead_id = lead;
    r.stage = "evaluation";
    r.rep_id = rep;
    r.k = 3;
    auto rec = engine_->Recommend(r);
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    return rec.ok() ? rec.value() : Recommendation{};
  }
  void Outcome(const std::string& lead, bool won, double amount, int64_t ts, const std::string& id) {
    Event e;
    e.event_id = id;
    e.type = won ? EventType::kWon : EventType::kLost;
    e.lead_id = lead;
    e.amount = won ? amount : 0;
    e.ts = ts;
    auto r = engine_->RecordEvents({e});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  void Seed() {
    // Three assets for the evaluation stage, created in this order: C is the newest.
    for (const char* id : {"A", "B", "C"}) {
      Asset a;
      a.id = id;
      a.title = std::string("asset ") + id;
      a.type = "case_study";
      a.stages = {"evaluation"};
      ASSERT_TRUE(engine_->UpsertAssets({a}).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  }

  fs::path dir_;
  EngineOptions options_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ExperimentTest, TheHoldoutGetsTheBaselineAndNothingRevealsTheArm) {
  Open();
  Seed();
  // A is learnt to win at evaluation (used and won with 30 leads), B to lose
  // (used and lost with 30 others); no experiment then.
  std::vector<Event> evidence;
  for (int i = 0; i < 60; ++i) {
    const bool a = i < 30;
    const std::string lead = "past-" + std::to_string(i), n = std::to_string(i);
    auto ev = [&](const std::string& id, EventType type, const std::string& asset) {
      Event e;
      e.event_id = id;
      e.type = type;
      e.lead_id = lead;
      e.asset_id = asset;
      return e;
    };
    Event st = ev("s" + n, EventType::kStageChanged, ""), used = ev("u" + n, EventType::kUsed, a ? "A" : "B"),
          won = ev("w" + n, a ? EventType::kWon : EventType::kLost, "");
    st.stage = "evaluation";
    won.amount = a ? 100 : 0;
    evidence.insert(evidence.end(), {st, used, won});
  }
  ASSERT_TRUE(engine_->RecordEvents(evidence).ok());
  const std::string treated = Leads(Arm::kTreatment, 1, "t-")[0], held = Leads(Arm::kHoldout, 1, "h-")[0];
  const Recommendation t = Recommend(treated), h = Recommend(held);
  ASSERT_EQ(t.items.size(), 3u);
  ASSERT_EQ(h.items.size(), 3u);
  EXPECT_EQ(t.items[0].asset_id, "A");  // what was learnt
  EXPECT_EQ(t.items[2].asset_id, "B");
  // The baseline: no context, so equal relevance; then recency, newest first.
  EXPECT_EQ(h.items[0].asset_id, "C");
  EXPECT_EQ(h.items[1].asset_id, "B");
  EXPECT_EQ(h.items[2].asset_id, "A");
  bool learnt_reason = false;
  for (const auto& item : t.items) {
    for (const auto& r : item.reasons) learnt_reason |= r.find("won deal") != std::string::npos;
  }
  EXPECT_TRUE(learnt_reason);
  for (const auto& item : h.items) {
    for (const auto& r : item.reasons) {
      EXPECT_EQ(r.find("won deal"), std::string::npos) << r;
      EXPECT_EQ(r.find("reps use it"), std::string::npos) << r;
      EXPECT_EQ(r.find("new:"), std::string::npos) << r;
    }
  }
  // The arm is recorded with the lead's events (for reports), not shown to the CRM.
  auto lead = engine_->GetLead(held);
  ASSERT_TRUE(lead.ok());
  ASSERT_FALSE(lead.value().history.empty());
  for (const Event& e : lead.value().history) EXPECT_EQ(e.arm, Arm::kHoldout);
  auto before = engine_->GetLead("past-0");
  ASSERT_TRUE(before.ok());
  for (const Event& e : before.value().history) EXPECT_EQ(e.arm, Arm::kNone);
}

TEST_F(ExperimentTest, ReportCountsTheLeadsAssignedAndTheirLatestOutcomes) {
  Open();
  Seed();
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const std::vector<std::string> treated = Leads(Arm::kTreatment, 5, "t-"), held = Leads(Arm::kHoldout, 4, "h-");
  for (const auto& l : treated) Recommend(l, "r1");
  for (const auto& l : held) Recommend(l, "r2");
  // An outcome before the first recommend does not count; neither does a lead
  // first recommended while the experiment was off ("past", before).
  const int64_t later = now + kDay / 2;  // half a day after assignment
  // Treatment: 3 won (1000, 2000, 3000), 1 lost; the fifth open.
  Outcome(treated[0], true, 1000, later, "o1");
  Outcome(treated[1], true, 2000, later, "o2");
  Outcome(treated[2], false, 0, later, "o3");
  Outcome(treated[2], true, 3000, later + 1000, "o3b");  // re-opened and won: the latest counts
  Outcome(treated[3], false, 0, later, "o4");
  // Holdout: 1 won (500), 2 lost; the fourth open.
  Outcome(held[0], true, 500, later, "o5");
  Outcome(held[1], false, 0, later, "o6");
  Outcome(held[2], false, 0, later, "o7");

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    auto r = engine_->ReportExperiment(ExperimentQuery{});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const ExperimentComparison& c = r.value().overall;
    EXPECT_EQ(c.treatment.leads, 5u);
    EXPECT_EQ(c.treatment.won, 3u);
    EXPECT_EQ(c.treatment.lost, 1u);
    EXPECT_EQ(c.treatment.closed, 4u);
    EXPECT_DOUBLE_EQ(*c.treatment.win_rate, 0.75);
    EXPECT_DOUBLE_EQ(*c.treatment.revenue_per_closed_lead, 1500);  // 6000 / 4
    EXPECT_EQ(c.holdout.leads, 4u);
    EXPECT_EQ(c.holdout.won, 1u);
    EXPECT_EQ(c.holdout.lost, 2u);
    EXPECT_NEAR(*c.holdout.win_rate, 1.0 / 3, 1e-12);
    EXPECT_NEAR(*c.holdout.revenue_per_closed_lead, 500.0 / 3, 1e-9);
    EXPECT_NEAR(*c.holdout.mean_days_to_close, 0.5, 0.01);  // minutes, from the recommend to the outcome
    EXPECT_NEAR(*c.difference, 0.75 - 1.0 / 3, 1e-12);
    EXPECT_FALSE(c.conclusive);
    EXPECT_EQ(c.note.rfind("too small to conclude", 0), 0u) << c.note;
  };
  check("live");
  auto by_rep = engine_->ReportExperiment(ExperimentQuery{0, INT64_MAX / 2, "rep"});
  ASSERT_TRUE(by_rep.ok());
  ASSERT_EQ(by_rep.value().groups.size(), 2u);
  EXPECT_EQ(by_rep.value().groups[0].key, "r1");
  EXPECT_EQ(by_rep.value().groups[0].comparison.treatment.leads, 5u);
  EXPECT_EQ(by_rep.value().groups[0].comparison.holdout.leads, 0u);
  auto bad = engine_->ReportExperiment(ExperimentQuery{0, 1, "asset"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "by");
  // A window of other days assigns no lead.
  auto empty = engine_->ReportExperiment(ExperimentQuery{now - 10 * kDay, now - 5 * kDay, ""});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty.value().overall.treatment.leads + empty.value().overall.holdout.leads, 0u);

  // Re-aggregated from the raw log: the same counters.
  auto re = engine_->Reaggregate(false, nullptr);
  ASSERT_TRUE(re.ok());
  EXPECT_EQ(re.value().differing, 0u);

  // Another fraction later: the leads keep their arms (and are not assigned again).
  options_.experiment = {0.0, "another"};
  Open();
  check("reopened with the experiment off");
  for (const auto& l : held) Recommend(l, "r2");
  const Recommendation again = Recommend(held[3], "r2");
  ASSERT_FALSE(again.items.empty());
  EXPECT_EQ(again.items[0].asset_id, "C");  // still the baseline
  check("recommended again");
  auto lead = engine_->GetLead(held[3]);
  ASSERT_TRUE(lead.ok());
  for (const Event& e : lead.value().history) EXPECT_EQ(e.arm, Arm::kHoldout);
  // A new lead while off: out of the experiment.
  Recommend("new-lead");
  check("a new lead while off");
  ASSERT_TRUE(engine_->Reaggregate(true, nullptr).ok());
  check("after a re-aggregation");
}

}  // namespace
}  // namespace playbook

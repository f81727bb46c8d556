// `playbook reaggregate` and aggregates.rebuild against the real daemon: the
// aggregates rebuilt from the raw log equal the live ones; after a change of
// the attribution window, --check finds the difference and a rebuild applies
// it, and the result survives a restart. See docs/protocol.md.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

constexpr const char* kAdmin = "reagg-admin-token-0123456789";
constexpr const char* kMarketing = "reagg-marketing-token-0123456789";
constexpr int64_t kDay = 86400000;

std::string Config(int window_days) {
  return std::string("[[auth.tokens]]\nrole = \"admin\"\ntoken = \"") + kAdmin +
         "\"\n[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"" + kMarketing +
         "\"\n[funnel]\nattribution_window_days = " + std::to_string(window_days) + "\n";
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

class Reaggregate : public ::testing::Test {
 protected:
  void StartDaemon(int window_days, const std::string& data_dir = "") {
    DaemonOptions o = WithConfig(Config(window_days));
    o.data_dir = data_dir;
    d_ = std::make_unique<Daemon>(o);
    ASSERT_TRUE(d_->Start()) << d_->log();
  }
  void TearDown() override {
    if (HasFailure() && d_) std::cerr << "---- daemon log ----\n" << d_->log() << "\n";
  }
  CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {Daemon::CliPath(), "reaggregate", "--no-progress"});
    return RunCommand(args, {"PLAYBOOK_URL=" + d_->ws_url(), std::string("PLAYBOOK_TOKEN=") + kAdmin});
  }
  // The seeded deal: lead-1 uses the price script on day 0 and is won on day
  // 5 (10,000); lead-2 uses the ROI calculator and is lost the same day.
  void Seed() {
    TestClient c(d_->ws_url(), kAdmin);
    json assets = json::array({
        {{"id", "zh-price-01"}, {"title", "太贵了：价值拆解话术"}, {"type", "objection_script"},
         {"stages", {"evaluation", "negotiation"}}},
        {{"id", "en-roi-01"}, {"title", "ROI calculator"}, {"type", "roi_calculator"}, {"stages", {"evaluation"}}},
    });
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", assets}}).contains("result"));
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    const int64_t t0 = now - 20 * kDay;
    json events = json::array({
        {{"event_id", "s1"}, {"type", "stage_changed"}, {"lead_id", "lead-1"}, {"stage", "evaluation"}, {"ts", t0}},
        {{"event_id", "u1"}, {"type", "used"}, {"lead_id", "lead-1"}, {"asset_id", "zh-price-01"},
         {"rep_id", "rep-zhang"}, {"ts", t0 + 1}},
        {{"event_id", "w1"}, {"type", "won"}, {"lead_id", "lead-1"}, {"rep_id", "rep-zhang"}, {"amount", 10000},
         {"ts", t0 + 5 * kDay}},
        {{"event_id", "s2"}, {"type", "stage_changed"}, {"lead_id", "lead-2"}, {"stage", "evaluation"}, {"ts", t0}},
        {{"event_id", "u2"}, {"type", "used"}, {"lead_id", "lead-2"}, {"asset_id", "en-roi-01"},
         {"rep_id", "rep-li"}, {"ts", t0 + 2}},
        {{"event_id", "d2"}, {"type", "dismissed"}, {"lead_id", "lead-2"}, {"asset_id", "zh-price-01"},
         {"rep_id", "rep-li"}, {"reason", "客户已经看过"}, {"ts", t0 + 3}},
        {{"event_id", "l2"}, {"type", "lost"}, {"lead_id", "lead-2"}, {"rep_id", "rep-li"}, {"ts", t0 + 4}},
    });
    json r = c.Call("feedback.record", {{"events", events}});
    ASSERT_TRUE(r.contains("result")) << r;
    ASSERT_EQ(r["result"]["accepted"], 7);
  }
  json AssetsReport() {
    TestClient c(d_->ws_url(), kMarketing);
    json r = c.Call("reports.assets", {{"sort", "used"}});
    EXPECT_TRUE(r.contains("result")) << r;
    return r["result"];
  }
  static json RowOf(const json& report, const std::string& id) {
    for (const json& row : report["rows"]) {
      if (row["asset_id"] == id) return row;
    }
    return json();
  }
  std::unique_ptr<Daemon> d_;
};

TEST_F(Reaggregate, RebuiltAggregatesEqualTheLiveOnes) {
  StartDaemon(30);
  Seed();
  const json before = AssetsReport();
  ASSERT_EQ(RowOf(before, "zh-price-01")["won"], 1) << before;
  ASSERT_EQ(RowOf(before, "zh-price-01")["dismissed"], 1) << before;

  CommandResult check = Cli({"--check"});
  ASSERT_EQ(check.exit_code, 0) << Describe(check);
  EXPECT_NE(check.out.find("replayed 7 events of 2 leads"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find(" 0 differ from the live ones; nothing written"), std::string::npos) << check.out;

  CommandResult run = Cli({});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find(" 0 differ from the live ones; written"), std::string::npos) << run.out;
  EXPECT_EQ(AssetsReport(), before);

  // The method itself: its fields, its notifications' name, its role.
  TestClient admin(d_->ws_url(), kAdmin);
  json r = admin.Call("aggregates.rebuild", {{"check", true}});
  ASSERT_TRUE(r.contains("result")) << r;
  EXPECT_EQ(r["result"]["events"], 7);
  EXPECT_EQ(r["result"]["leads"], 2);
  EXPECT_EQ(r["result"]["differing"], 0);
  EXPECT_EQ(r["result"]["written"], false);
  EXPECT_GT(r["result"]["keys"].get<int>(), 10);
  EXPECT_LE(r["result"]["paused_ms"].get<int64_t>(), r["result"]["ms"].get<int64_t>());
  json bad = admin.Call("aggregates.rebuild", {{"check", "yes"}});
  ASSERT_TRUE(bad.contains("error")) << bad;
  EXPECT_EQ(bad["error"]["code"], -32602);
  EXPECT_NE(bad["error"].dump().find("check"), std::string::npos) << bad;
  TestClient marketing(d_->ws_url(), kMarketing);
  EXPECT_EQ(marketing.Call("aggregates.rebuild")["error"]["code"], -32001);
}

TEST_F(Reaggregate, ANewAttributionWindowIsAppliedToTheWholeHistory) {
  StartDaemon(30);
  Seed();
  const std::string data_dir = d_->data_dir();
  ASSERT_EQ(d_->Stop(), 0);
  // The same data with a 2-day window: lead-1's win came 5 days after the use.
  DaemonOptions o = WithConfig(Config(2));
  o.data_dir = data_dir;
  auto second = std::make_unique<Daemon>(o);
  ASSERT_TRUE(second->Start()) << second->log();
  std::swap(d_, second);
  EXPECT_EQ(RowOf(AssetsReport(), "zh-price-01")["won"], 1);  // counted with the old window

  CommandResult check = Cli({"--check"});
  EXPECT_EQ(check.exit_code, 1) << Describe(check);
  EXPECT_EQ(check.out.find(" 0 differ"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("nothing written"), std::string::npos) << check.out;
  EXPECT_EQ(RowOf(AssetsReport(), "zh-price-01")["won"], 1);

  CommandResult run = Cli({});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("; written"), std::string::npos) << run.out;
  json after = AssetsReport();
  EXPECT_EQ(RowOf(after, "zh-price-01")["won"], 0) << after;
  EXPECT_EQ(RowOf(after, "zh-price-01")["influenced_revenue"], 0) << after;
  EXPECT_EQ(RowOf(after, "zh-price-01")["dismissed"], 1) << after;
  EXPECT_EQ(after["totals"]["used"], 2) << after;

  // A restart reads the rewritten aggregates.
  ASSERT_EQ(d_->Stop(), 0);
  auto third = std::make_unique<Daemon>(o);
  ASSERT_TRUE(third->Start()) << third->log();
  std::swap(d_, third);
  EXPECT_EQ(AssetsReport(), after);
  EXPECT_EQ(Cli({"--check"}).exit_code, 0);
}

}  // namespace
}  // namespace playbook::testing

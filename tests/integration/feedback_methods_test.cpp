// recommend, feedback.record and leads.get over the real protocol against the
// real daemon, durability with a real SIGKILL included.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

json Catalog() {
  return json::array({
      {{"id", "zh-price-01"}, {"title", "太贵了：一分钱一分货，价值拆解话术"}, {"type", "objection_script"}, {"stages", {"evaluation", "negotiation"}}, {"language", "zh"}, {"url", "https://example.com/zh-price-01"}},
      {{"id", "zh-budget-01"}, {"title", "没有预算：分期付款与小范围试点方案"}, {"type", "objection_script"}, {"stages", {"evaluation"}}, {"language", "zh"}},
      {{"id", "en-roi-01"}, {"title", "ROI calculator: payback in six months"}, {"type", "roi_calculator"}, {"stages", {"consideration", "evaluation"}}, {"language", "en"}},
      {{"id", "en-case-01"}, {"title", "Retail case study: 30% more qualified leads"}, {"type", "case_study"}, {"stages", {"interest"}}, {"language", "en"}},
  });
}

const char* kCrm = "crm-token-0123456789abcdef";

class FeedbackMethods : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = std::make_unique<Daemon>(WithConfig(std::string("[[auth.tokens]]\nrole = \"crm\"\ntoken = \"") + kCrm +
                                             "\"\n[[auth.tokens]]\nrole = \"admin\"\ntoken = \"admin-token-0123456789abcd\"\n"
                                             "[ranking]\nexplore = false\n"));
    ASSERT_TRUE(d_->Start()) << d_->log();
    TestClient admin(d_->ws_url(), "admin-token-0123456789abcd");
    ASSERT_TRUE(admin.Call("assets.upsert", {{"assets", Catalog()}}).contains("result"));
    crm_ = std::make_unique<TestClient>(d_->ws_url(), kCrm);
    ASSERT_TRUE(crm_->connected());
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << d_->log() << "\n";
  }
  std::unique_ptr<Daemon> d_;
  std::unique_ptr<TestClient> crm_;
};

TEST_F(FeedbackMethods, RecommendAnswersEligibleItemsWithReasons) {
  json r = crm_->Call("recommend", {{"lead", {{"id", "lead-1"}, {"stage", "evaluation"}, {"context", "客户说价格有点高"}}}, {"k", 2}, {"rep_id", "rep-7"}});
  ASSERT_TRUE(r.contains("result")) << r;
  const json& res = r["result"];
  EXPECT_TRUE(res["recommendation_id"].is_string());
  ASSERT_EQ(res["items"].size(), 2u);
  EXPECT_EQ(res["items"][0]["asset_id"], "zh-price-01");
  for (const auto& item : res["items"]) {
    for (const char* f : {"asset_id", "title", "type", "url", "score", "reasons"}) EXPECT_TRUE(item.contains(f)) << f;
    EXPECT_FALSE(item["reasons"].empty());
    EXPECT_NE(item["asset_id"], "en-case-01");  // interest only
  }
  // Shown items are recorded for the lead under that recommendation.
  json lead = crm_->Call("leads.get", {{"id", "lead-1"}})["result"];
  EXPECT_EQ(lead["stage"], "evaluation");
  ASSERT_EQ(lead["history"].size(), 2u);
  EXPECT_EQ(lead["history"][0]["type"], "shown");
  EXPECT_EQ(lead["history"][0]["recommendation_id"], res["recommendation_id"]);
  EXPECT_EQ(lead["history"][0]["rep_id"], "rep-7");
  // A filter narrows, never widens.
  json en = crm_->Call("recommend", {{"lead", {{"id", "lead-2"}, {"stage", "evaluation"}}}, {"filter", {{"language", "en"}}}})["result"];
  ASSERT_EQ(en["items"].size(), 1u);
  EXPECT_EQ(en["items"][0]["asset_id"], "en-roi-01");
}

TEST_F(FeedbackMethods, InvalidInputNamesTheFieldAndWritesNothing) {
  EXPECT_EQ(ErrorField(crm_->Call("recommend", {{"k", 3}})), "lead");
  EXPECT_EQ(ErrorField(crm_->Call("recommend", {{"lead", {{"id", "l"}, {"stage", "closing"}}}})), "lead.stage");
  EXPECT_EQ(ErrorField(crm_->Call("recommend", {{"lead", {{"id", "l"}, {"stage", "evaluation"}, {"colour", 1}}}})), "lead.colour");
  EXPECT_EQ(ErrorField(crm_->Call("recommend", {{"lead", {{"id", "l"}, {"stage", "evaluation"}}}, {"k", 0}})), "k");
  EXPECT_EQ(ErrorField(crm_->Call("recommend", {{"lead", {{"id", "l"}, {"stage", "evaluation"}, {"vector", {1, 2}}}}})), "lead.vector");
  json events = json::array({
      {{"event_id", "ok-1"}, {"type", "used"}, {"lead_id", "lead-9"}, {"asset_id", "zh-price-01"}},
      {{"event_id", "bad-1"}, {"type", "opened"}, {"lead_id", "lead-9"}, {"asset_id", "zh-price-01"}},
  });
  json bad = crm_->Call("feedback.record", {{"events", events}});
  EXPECT_EQ(ErrorCode(bad), -32602);
  EXPECT_EQ(ErrorField(bad), "events[1].type");
  events[1]["type"] = "stage_changed";
  events[1].erase("asset_id");
  EXPECT_EQ(ErrorField(crm_->Call("feedback.record", {{"events", events}})), "events[1].stage");
  json missing = crm_->Call("leads.get", {{"id", "lead-9"}});
  EXPECT_EQ(ErrorCode(missing), -32002);  // nothing was written
}

TEST_F(FeedbackMethods, AcknowledgedEventsSurviveSigkill) {
  int sent = 0;
  for (int call = 0; call < 20; ++call) {
    json events = json::array();
    for (int i = 0; i < 10; ++i, ++sent) {
      events.push_back({{"event_id", "k-" + std::to_string(sent)}, {"type", "viewed"}, {"lead_id", "lead-kill"},
                        {"asset_id", "zh-price-01"}});
    }
    json r = crm_->Call("feedback.record", {{"events", events}});
    ASSERT_EQ(r["result"]["accepted"], 10) << r;
  }
  const std::string data = d_->data_dir();
  d_->Kill();  // SIGKILL right after the last acknowledgement
  Daemon again(WithDataDir(data));
  ASSERT_TRUE(again.Start()) << again.log();
  TestClient c(again.ws_url());
  json lead = c.Call("leads.get", {{"id", "lead-kill"}})["result"];
  EXPECT_EQ(lead["history"].size(), size_t(sent));
  json resend = c.Call("feedback.record", {{"events", {{{"event_id", "k-0"}, {"type", "viewed"}, {"lead_id", "lead-kill"}, {"asset_id", "zh-price-01"}}}}});
  EXPECT_EQ(resend["result"]["duplicates"], 1);
  EXPECT_EQ(resend["result"]["accepted"], 0);
}

TEST_F(FeedbackMethods, ConcurrentWritersOverTheWireLoseNothing) {
  constexpr int kClients = 8, kCalls = 25, kPerCall = 4;
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      TestClient c(d_->ws_url(), kCrm);
      for (int call = 0; call < kCalls; ++call) {
        json events = json::array();
        for (int i = 0; i < kPerCall; ++i) {
          // Built by append: GCC 12 warns falsely (-Wrestrict) on "c" + std::to_string(t).
          std::string id = "c", lead = "lead-c";
          id.append(std::to_string(t)).append("-").append(std::to_string(call)).append("-").append(std::to_string(i));
          lead.append(std::to_string(t));
          events.push_back({{"event_id", id}, {"type", "used"}, {"lead_id", lead}, {"asset_id", "en-roi-01"}});
        }
        json r = c.Call("feedback.record", {{"events", events}}, 30s);
        if (r.contains("result")) accepted += r["result"]["accepted"].get<int>();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), kClients * kCalls * kPerCall);
  for (int t = 0; t < kClients; ++t) {
    EXPECT_EQ(crm_->Call("leads.get", {{"id", "lead-c" + std::to_string(t)}})["result"]["history"].size(), size_t(kCalls * kPerCall));
  }
}

TEST_F(FeedbackMethods, ReportsAssetsCountsWhatTheClientSent) {
  json rec = crm_->Call("recommend", {{"lead", {{"id", "lead-r"}, {"stage", "evaluation"}, {"context", "太贵了"}}}, {"k", 2}, {"rep_id", "rep-1"}});
  ASSERT_TRUE(rec.contains("result")) << rec;
  json events = json::array({
      {{"event_id", "r1"}, {"type", "used"}, {"lead_id", "lead-r"}, {"asset_id", "zh-price-01"}, {"rep_id", "rep-1"}},
      {{"event_id", "r2"}, {"type", "won"}, {"lead_id", "lead-r"}, {"amount", 2500}},
  });
  ASSERT_TRUE(crm_->Call("feedback.record", {{"events", events}}).contains("result"));
  ASSERT_EQ(crm_->Call("feedback.record", {{"events", events}})["result"]["duplicates"], 2);
  TestClient admin(d_->ws_url(), "admin-token-0123456789abcd");
  EXPECT_EQ(ErrorCode(crm_->Call("reports.assets")), -32001);  // marketing and admin only
  json report = admin.Call("reports.assets", {{"sort", "influenced_revenue"}});
  ASSERT_TRUE(report.contains("result")) << report;
  const json& row = report["result"]["rows"][0];
  EXPECT_EQ(row["asset_id"], "zh-price-01");
  EXPECT_EQ(row["shown"], 1);
  EXPECT_EQ(row["used"], 1);
  EXPECT_EQ(row["usage_rate"], 1.0);
  EXPECT_EQ(row["won"], 1);
  EXPECT_EQ(row["win_rate"], 1.0);
  EXPECT_EQ(row["influenced_revenue"], 2500.0);
  EXPECT_TRUE(row["last_used"].is_number());
  EXPECT_EQ(report["result"]["totals"]["leads_won"], 1);
  EXPECT_EQ(ErrorField(admin.Call("reports.assets", {{"sort", "colour"}})), "sort");
  EXPECT_EQ(ErrorField(admin.Call("reports.assets", {{"stage", "closing"}})), "stage");

  // reports.trend: the same totals per bucket, in one call.
  constexpr int64_t kDay = 86400000;
  const int64_t today = row["last_used"].get<int64_t>() / kDay * kDay;
  EXPECT_EQ(ErrorCode(crm_->Call("reports.trend", {{"from", today}, {"to", today}})), -32001);
  json trend = admin.Call("reports.trend", {{"from", today - 13 * kDay}, {"to", today + 5}, {"bucket_days", 7}});
  ASSERT_TRUE(trend.contains("result")) << trend;
  EXPECT_EQ(trend["result"]["bucket_days"], 7);
  const json& buckets = trend["result"]["buckets"];
  ASSERT_EQ(buckets.size(), 2u) << trend;
  EXPECT_EQ(buckets[0]["from"], today - 13 * kDay);
  EXPECT_EQ(buckets[0]["used"], 0);
  EXPECT_EQ(buckets[1]["from"], today - 6 * kDay);
  EXPECT_EQ(buckets[1]["to"], today + kDay - 1);
  json week = admin.Call("reports.assets", {{"from", today - 6 * kDay}, {"to", today}});
  const json& t = week["result"]["totals"];
  EXPECT_EQ(buckets[1]["assets"], t["assets"]) << trend << week;
  EXPECT_EQ(buckets[1]["shown"], t["shown"]);
  EXPECT_EQ(buckets[1]["used"], 1);
  EXPECT_EQ(buckets[1]["usage_rate"], t["usage_rate"]);
  EXPECT_EQ(buckets[1]["won"], 1);
  EXPECT_EQ(ErrorField(admin.Call("reports.trend", {{"from", 0}, {"to", today}, {"bucket_days", 1}})), "bucket_days");
  EXPECT_EQ(ErrorField(admin.Call("reports.trend", {{"to", today}})), "from");
  EXPECT_EQ(ErrorField(admin.Call("reports.trend", {{"from", today}, {"to", today}, {"stage", "closing"}})), "stage");
}

}  // namespace
}  // namespace playbook::testing

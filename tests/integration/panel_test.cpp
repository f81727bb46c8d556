// The CRM panel (<playbook-recommendations>, clients/js/src/panel.ts, served at /panel/ with a demo
// lead screen) against the real playbookd in headless Chromium (support/chromium.h): the panel shows
// the lead's stage and the recommended items with their reasons; clicking "use" records a `used`
// event that reports.assets counts, and "not useful" with a picked reason one that
// reports.dismissals counts. Also: the files come from the binary, and CRM pages of an allowed
// origin may load the panel's modules (CORS). See docs/clients.md, "The panel".
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/chromium.h"
#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCrmToken = "crm-token-panel-0123456789";
constexpr const char* kMarketingToken = "marketing-token-panel-0123456789";
constexpr const char* kCrmOrigin = "https://crm.example.com";
constexpr const char* kPanel = "document.querySelector('playbook-recommendations')";

class Panel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon(WithConfig(std::string("[server]\nallowed_origins = [\"") + kCrmOrigin +
                                    "\"]\n[[auth.tokens]]\nrole = \"crm\"\ntoken = \"" + kCrmToken +
                                    "\"\n[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"" + kMarketingToken +
                                    "\"\n"));
    ASSERT_TRUE(daemon_->Start()) << daemon_->log();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon_->log() << "\n";
  }
  static client::HttpResponse Get(const std::string& target, const std::string& origin = "") {
    std::map<std::string, std::string> headers;
    if (!origin.empty()) headers["Origin"] = origin;
    auto r = client::HttpRequest(daemon_->host(), daemon_->port(), "GET", target, headers);
    EXPECT_TRUE(r.ok()) << target << ": " << r.status().ToString();
    return r.ok() ? r.value() : client::HttpResponse{};
  }
  static Daemon* daemon_;
};
Daemon* Panel::daemon_ = nullptr;

// The tests that drive Chromium (a suite of their own: tools/test.sh leaves them out of the sanitized
// run, like the dashboard's).
class PanelBrowser : public Panel {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(Chromium::kPath)) {
      GTEST_FAIL() << Chromium::kPath << " is missing: install it with tools/install-deps.sh (apt-get install chromium).";
    }
  }
  // Seeds three zh assets for evaluation (idempotent: each test calls it), starts the browser on the
  // demo page with the crm token and waits until the panel has rendered.
  static void SeedAndOpenDemo(TestClient& marketing, Chromium& browser) {
    ASSERT_TRUE(marketing.connected());
    json upsert = marketing.Call(
        "assets.upsert",
        {{"assets",
          {{{"id", "panel-price"}, {"title", "价格异议应对话术"}, {"type", "objection_script"},
            {"stages", {"evaluation"}}, {"language", "zh"}, {"body", "太贵了 预算 价格"}},
           {{"id", "panel-roi"}, {"title", "ROI 计算器"}, {"type", "roi_calculator"},
            {"stages", {"evaluation"}}, {"language", "zh"}, {"body", "投资回报 预算"}},
           {{"id", "panel-case"}, {"title", "制造业客户案例"}, {"type", "case_study"},
            {"stages", {"evaluation"}}, {"language", "zh"}}}}});
    ASSERT_EQ(upsert["result"]["upserted"], 3) << upsert.dump();
    ASSERT_TRUE(browser.Start()) << browser.Diagnostics();
    const std::string url = "http://127.0.0.1:" + std::to_string(daemon_->port()) + "/panel/#token=" + kCrmToken;
    ASSERT_TRUE(browser.Open(url, 1280, 900)) << browser.Diagnostics();
    ASSERT_TRUE(browser.WaitUntil(kPanel + std::string("?.dataset.state === 'ready'"), 30s))
        << "state: " << browser.EvaluateString(kPanel + std::string("?.dataset.state")) << "\n"
        << browser.EvaluateString(kPanel + std::string("?.shadowRoot?.innerHTML")) << browser.Diagnostics();
  }
};

TEST_F(Panel, ServesTheDemoAndTheModulesFromTheBinary) {
  for (const char* page : {"/panel/", "/panel", "/panel/index.html"}) {
    client::HttpResponse r = Get(page);
    EXPECT_EQ(r.status, 200) << page;
    EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8") << page;
    EXPECT_NE(r.body.find("<playbook-recommendations"), std::string::npos) << page;
  }
  for (const char* file : {"/panel/panel.js", "/panel/client.js", "/panel/outbox.js", "/panel/indexeddb.js",
                           "/panel/protocol.js", "/panel/demo.js"}) {
    client::HttpResponse r = Get(file);
    EXPECT_EQ(r.status, 200) << file;
    EXPECT_EQ(r.headers["content-type"], "text/javascript; charset=utf-8") << file;
  }
  EXPECT_EQ(Get("/panel/nope.js").status, 404);
}

TEST_F(Panel, AnAllowedCrmOriginMayLoadTheModulesOthersMayNot) {
  client::HttpResponse allowed = Get("/panel/panel.js", kCrmOrigin);
  EXPECT_EQ(allowed.headers["access-control-allow-origin"], kCrmOrigin);
  EXPECT_EQ(allowed.headers["vary"], "Origin");
  client::HttpResponse other = Get("/panel/panel.js", "https://evil.example.com");
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.headers.count("access-control-allow-origin"), 0u);
  EXPECT_EQ(other.headers["vary"], "Origin");
  // The dashboard stays same-origin.
  EXPECT_EQ(Get("/web/app.js", kCrmOrigin).headers.count("access-control-allow-origin"), 0u);
}

TEST_F(PanelBrowser, UseAndNotUsefulClicksAppearInTheReports) {
  TestClient marketing(daemon_->ws_url(), kMarketingToken);
  Chromium browser;
  ASSERT_NO_FATAL_FAILURE(SeedAndOpenDemo(marketing, browser));
  const std::string root = std::string(kPanel) + ".shadowRoot";
  EXPECT_EQ(browser.EvaluateString(root + ".querySelector('.stage').textContent"), "阶段: evaluation");
  EXPECT_EQ(browser.Evaluate(root + ".querySelectorAll('li[data-asset-id]').length").value_or(0), 3);
  // The lead's notes say "太贵了": the price script comes with its reasons.
  EXPECT_GT(browser.Evaluate(root + ".querySelectorAll('ul.reasons li').length").value_or(0), 0);
  EXPECT_EQ(browser.Evaluate(root + ".querySelectorAll('a.title[href]').length").value_or(-1), 0);  // no urls given

  // "use" on the price script.
  const std::string price = root + ".querySelector('li[data-asset-id=\"panel-price\"]')";
  ASSERT_TRUE(browser.Evaluate(price + ".querySelector('button.use').click(), true").has_value())
      << browser.Diagnostics();
  // "not useful" on the case study, reason "内容过时" (the second of the picker).
  const std::string case_row = root + ".querySelector('li[data-asset-id=\"panel-case\"]')";
  ASSERT_TRUE(browser.Evaluate(case_row + ".querySelector('button.dismiss').click(), true").has_value());
  ASSERT_TRUE(browser
                  .Evaluate("(() => { const s = " + case_row +
                            ".querySelector('.picker select'); s.selectedIndex = 1; s.onchange();" + case_row +
                            ".querySelector('button.send').click(); return true; })()")
                  .has_value())
      << browser.Diagnostics();
  // Acknowledged by the daemon (after its synced write): the rows say so.
  ASSERT_TRUE(browser.WaitUntil(price + ".dataset.sent === 'true' && " + case_row + ".dataset.sent === 'true'", 30s))
      << browser.EvaluateString(root + ".innerHTML") << browser.Diagnostics();
  EXPECT_EQ(browser.EvaluateString(price + ".dataset.feedback"), "used");
  EXPECT_EQ(browser.EvaluateString(case_row + ".dataset.feedback"), "dismissed");
  EXPECT_TRUE(browser.errors().empty()) << ::testing::PrintToString(browser.errors());

  json assets = marketing.Call("reports.assets", {{"stage", "evaluation"}});
  int used = -1, dismissed = -1;
  for (const json& row : assets["result"]["rows"]) {
    if (row["asset_id"] == "panel-price") used = row["used"].get<int>();
    if (row["asset_id"] == "panel-case") dismissed = row["dismissed"].get<int>();
  }
  EXPECT_EQ(used, 1) << assets.dump();
  EXPECT_EQ(dismissed, 1) << assets.dump();
  json dismissals = marketing.Call("reports.dismissals", json::object());
  ASSERT_EQ(dismissals["result"]["by_asset"].size(), 1u) << dismissals.dump();
  EXPECT_EQ(dismissals["result"]["by_asset"][0]["asset_id"], "panel-case");
  EXPECT_EQ(dismissals["result"]["by_asset"][0]["reason"], "内容过时");
  // The rep of the demo and the recommendation the items came from travel with the events.
  TestClient crm(daemon_->ws_url(), kCrmToken);
  json lead = crm.Call("leads.get", {{"id", "demo-lead-1"}});
  int tagged = 0;
  for (const json& e : lead["result"]["history"]) {
    if (e["type"] == "used" || e["type"] == "dismissed") {
      EXPECT_EQ(e.value("rep_id", ""), "demo-rep") << e.dump();
      EXPECT_EQ(e.value("recommendation_id", "").rfind("rec-", 0), 0u) << e.dump();
      ++tagged;
    }
  }
  EXPECT_EQ(tagged, 2) << lead.dump();
}

TEST_F(PanelBrowser, FeedbackQueuedInIndexedDbWhileTheDaemonIsUnreachableIsSentAfterAReload) {
  TestClient marketing(daemon_->ws_url(), kMarketingToken);
  Chromium browser;
  ASSERT_NO_FATAL_FAILURE(SeedAndOpenDemo(marketing, browser));
  // An outbox on the panel's IndexedDB store whose client cannot reach the daemon: the event is
  // stored, not sent.
  std::optional<json> id = browser.Evaluate(R"((async () => {
    const { PlaybookClient } = await import("/panel/client.js");
    const { FeedbackOutbox } = await import("/panel/outbox.js");
    const { IndexedDbOutboxStore } = await import("/panel/indexeddb.js");
    const client = new PlaybookClient({ url: "ws://127.0.0.1:1/v1", connectTimeoutMs: 200 });
    const outbox = new FeedbackOutbox(client, new IndexedDbOutboxStore("playbook-panel-outbox"));
    const e = await outbox.used("reload-lead", "panel-roi");
    await new Promise((r) => setTimeout(r, 300));
    const pending = outbox.pending;
    await outbox.close();
    client.close();
    return pending === 1 ? e.event_id : "pending " + pending;
  })())");
  ASSERT_TRUE(id.has_value() && id->is_string()) << browser.Diagnostics();
  const std::string event_id = id->get<std::string>();
  ASSERT_EQ(event_id.size(), 36u) << event_id;
  TestClient crm(daemon_->ws_url(), kCrmToken);
  EXPECT_EQ(crm.Call("leads.get", {{"id", "reload-lead"}})["error"]["code"], -32002);  // nothing sent

  // The page reloads (the rep navigates): the panel's outbox finds the event and sends it.
  ASSERT_TRUE(browser.Evaluate("location.reload(), true").has_value());
  std::vector<std::string> seen;
  for (int i = 0; i < 300 && seen.empty(); ++i) {
    json lead = crm.Call("leads.get", {{"id", "reload-lead"}});
    if (lead.contains("result")) {
      for (const json& e : lead["result"]["history"]) seen.push_back(e["event_id"].get<std::string>());
    }
    if (seen.empty()) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(seen, std::vector<std::string>{event_id}) << browser.Diagnostics();
  // Acknowledged: gone from IndexedDB.
  EXPECT_TRUE(browser.WaitUntil(R"((async () => {
    const { IndexedDbOutboxStore } = await import("/panel/indexeddb.js");
    const store = new IndexedDbOutboxStore("playbook-panel-outbox");
    const left = (await store.load()).length;
    await store.close();
    return left === 0;
  })())", 10s)) << browser.Diagnostics();
}

}  // namespace
}  // namespace playbook::testing

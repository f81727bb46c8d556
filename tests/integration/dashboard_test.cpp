// The dashboard (GET /, server/web/) against the real playbookd, in a real
// browser: headless Chromium (/usr/bin/chromium, installed by
// tools/install-deps.sh), driven over the DevTools protocol
// (support/chromium.h), loads the page with a token in the URL fragment, the
// page speaks the WebSocket protocol with the token as a subprotocol, and once
// the page says it has rendered (body data-state "ready" or "login") the DOM
// must show the numbers seeded through the protocol and no error may have been
// logged. Also: the static files, and the subprotocol handshake on the wire.
// See docs/dashboard.md.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "support/chromium.h"
#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCrmToken = "crm-token-dash-0123456789";
constexpr const char* kMarketingToken = "marketing-token-dash-0123456789";
constexpr const char* kAdminToken = "admin-token-dash-0123456789ab";

const char* const kZhTitle = "制造业客户案例：六个月降低三成采购成本";

// The viewport of every page load and screenshot.
constexpr int kWidth = 1280;
constexpr int kHeight = 900;
// The docs' picture (docs/dashboard.png): the same width, tall enough for the
// whole page on the sample catalog.
constexpr int kDocsHeight = 2480;
// How long a page may take to render its data before the test fails.
constexpr auto kRenderDeadline = 30s;

// The holdout at a half, with a salt that puts dash-lead-1 in the treatment
// arm and dash-lead-2 in the holdout (AssignmentPoint: 0.54 and 0.06). A
// funnel with a stage of its own ("renewal"), which the page must offer.
std::string TokensConfig() {
  std::string c = "[funnel]\nstages = [\"awareness\", \"interest\", \"consideration\", \"evaluation\", ";
  c += "\"negotiation\", \"renewal\"]\n";
  c += "[experiment]\nholdout_fraction = 0.5\nsalt = \"dash-2\"\n[[auth.tokens]]\nrole = \"crm\"\ntoken = \"";
  c += kCrmToken;
  c += "\"\n[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"";
  c += kMarketingToken;
  c += "\"\n[[auth.tokens]]\nrole = \"admin\"\ntoken = \"";
  c += kAdminToken;
  c += "\"\n";
  return c;
}

// How many calls of `method` the daemon has answered (server.stats).
int64_t Calls(TestClient& admin, const std::string& method) {
  json stats = admin.Call("server.stats");
  const json& n = stats["result"]["requests"];
  return n.contains(method) ? n[method].get<int64_t>() : 0;
}

// The page's body data-state, and its whole DOM.
std::string State(Chromium& browser) {
  return browser.EvaluateString("document.body.dataset.state");
}
std::string Dom(Chromium& browser) {
  return browser.EvaluateString("document.documentElement.outerHTML");
}

// Loads `url` in a fresh tab of `browser` and waits until the page has
// settled: app.js sets body data-state to "ready" once every panel has been
// rendered from the daemon's answers (or the failure listed in #errors), and
// to "login" when it shows the sign-in form. No fixed sleep, no retry.
::testing::AssertionResult Render(Chromium& browser, const std::string& url,
                                  int height = kHeight) {
  if (!browser.Open(url, kWidth, height)) {
    return ::testing::AssertionFailure() << "loading " << url << ": " << browser.Diagnostics();
  }
  const char* settled = "['ready', 'login'].includes(document.body?.dataset.state)";
  if (!browser.WaitUntil(settled, kRenderDeadline)) {
    return ::testing::AssertionFailure()
           << "the page did not render within " << kRenderDeadline.count()
           << " s: data-state is \"" << State(browser) << "\"\n"
           << browser.Diagnostics();
  }
  return ::testing::AssertionSuccess();
}

// Fails (does not skip) without Chromium: tools/install-deps.sh installs it.
::testing::AssertionResult StartBrowser(Chromium& browser) {
  if (!std::filesystem::exists(Chromium::kPath)) {
    return ::testing::AssertionFailure()
           << Chromium::kPath << " is missing: the dashboard test needs headless Chromium. "
           << "Install it with tools/install-deps.sh (apt-get install chromium).";
  }
  if (!browser.Start()) return ::testing::AssertionFailure() << browser.Diagnostics();
  return ::testing::AssertionSuccess();
}

// Width and height from a PNG's IHDR chunk.
std::pair<int, int> PngSize(const std::string& png) {
  if (png.size() < 24) return {0, 0};
  auto be32 = [&](std::size_t at) {
    int v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(png[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  return static_cast<bool>(out.flush());
}

// The text of the element that starts with `open_tag_prefix` up to the
// first `close_tag` after it ("" when absent).
std::string Between(const std::string& dom, const std::string& open_tag_prefix,
                    const std::string& close_tag) {
  const size_t at = dom.find(open_tag_prefix);
  if (at == std::string::npos) return "";
  const size_t body = dom.find('>', at);
  if (body == std::string::npos) return "";
  const size_t end = dom.find(close_tag, body);
  return dom.substr(body + 1, end == std::string::npos ? std::string::npos : end - body - 1);
}

// The <tr data-asset="id"> row of the asset table.
std::string AssetRow(const std::string& dom, const std::string& asset_id) {
  return Between(dom, "<tr data-asset=\"" + asset_id + "\"", "</tr>");
}

// The text of the cell of column `col` in `row` ("<missing>" when absent).
std::string Cell(const std::string& row, const std::string& col) {
  std::smatch m;
  const std::regex re("data-col=\"" + col + "\"[^>]*>([^<]*)<");
  if (!std::regex_search(row, m, re)) return "<missing>";
  return m[1].str();
}

// A screenshot that outlives the test: $PLAYBOOK_SCREENSHOT_DIR, else the
// gtest temp dir.
std::string ScreenshotPath() {
  const char* dir = std::getenv("PLAYBOOK_SCREENSHOT_DIR");
  std::string base = dir && *dir ? dir : ::testing::TempDir();
  if (!base.empty() && base.back() != '/') base += '/';
  return base + "playbook-dashboard-" + std::to_string(::getpid()) + ".png";
}

class Dashboard : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon(WithConfig(TokensConfig()));
    ASSERT_TRUE(daemon_->Start()) << daemon_->log();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon_->log() << "\n";
  }
  static std::string PageUrl(const std::string& fragment = "") {
    return "http://127.0.0.1:" + std::to_string(daemon_->port()) + "/" + fragment;
  }
  // A raw upgrade request offering `protocols` in Sec-WebSocket-Protocol.
  static client::HttpResponse Upgrade(const std::string& protocols) {
    std::map<std::string, std::string> headers = {
        {"Connection", "Upgrade"},
        {"Upgrade", "websocket"},
        {"Sec-WebSocket-Version", "13"},
        {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
    if (!protocols.empty()) headers["Sec-WebSocket-Protocol"] = protocols;
    auto r = client::HttpRequest(daemon_->host(), daemon_->port(), "GET", "/v1", headers);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : client::HttpResponse{};
  }
  static Daemon* daemon_;
};
Daemon* Dashboard::daemon_ = nullptr;

TEST_F(Dashboard, ServesThePageAndItsFilesFromTheBinary) {
  auto page = client::HttpGet(daemon_->host(), daemon_->port(), "/");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page.value().status, 200);
  EXPECT_EQ(page.value().headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(page.value().headers["content-security-policy"].find("default-src 'self'"),
            std::string::npos);
  EXPECT_NE(page.value().body.find("<div id=\"errors\""), std::string::npos);
  // Everything the page loads comes from the daemon: no other origin named.
  for (const char* file : {"/", "/web/app.js", "/web/style.css"}) {
    auto r = client::HttpGet(daemon_->host(), daemon_->port(), file);
    ASSERT_TRUE(r.ok()) << file;
    EXPECT_EQ(r.value().status, 200) << file;
    std::string body = r.value().body;
    const std::string svg_ns = "http://www.w3.org/2000/svg";  // a name, never fetched
    for (size_t at; (at = body.find(svg_ns)) != std::string::npos;) body.erase(at, svg_ns.size());
    EXPECT_EQ(body.find("https://"), std::string::npos) << file;
    EXPECT_EQ(body.find("http://"), std::string::npos) << file;
  }
  auto js = client::HttpGet(daemon_->host(), daemon_->port(), "/web/app.js");
  ASSERT_TRUE(js.ok());
  EXPECT_EQ(js.value().headers["content-type"], "text/javascript; charset=utf-8");
  auto missing = client::HttpGet(daemon_->host(), daemon_->port(), "/web/nope.js");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing.value().status, 404);
}

TEST_F(Dashboard, BrowsersAuthenticateWithABearerSubprotocol) {
  // The server selects playbook.v1 and authenticates with the bearer entry.
  client::HttpResponse ok = Upgrade(std::string("playbook.v1, bearer.") + kMarketingToken);
  EXPECT_EQ(ok.status, 101);
  EXPECT_EQ(ok.headers["sec-websocket-protocol"], "playbook.v1");
  client::HttpResponse unknown = Upgrade("playbook.v1, bearer.not-a-token");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.headers["www-authenticate"], "Bearer");
  EXPECT_EQ(Upgrade("playbook.v1").status, 401);
  // The Authorization header still works and selects no subprotocol unasked.
  TestClient header_client(daemon_->ws_url(), kMarketingToken);
  EXPECT_TRUE(header_client.connected()) << header_client.connect_status().ToString();
}

TEST_F(Dashboard, BrowserShowsTheSeededNumbersWithoutErrors) {
  Chromium browser;
  ASSERT_TRUE(StartBrowser(browser));

  // Seed through the protocol: three assets (one with a Chinese title), two
  // leads that are each shown all three, then what the reps did.
  TestClient marketing(daemon_->ws_url(), kMarketingToken);
  ASSERT_TRUE(marketing.connected());
  json upsert = marketing.Call(
      "assets.upsert",
      {{"assets",
        {{{"id", "dash-roi"}, {"title", "ROI calculator for manufacturing"},
          {"type", "roi_calculator"}, {"stages", {"evaluation"}}, {"language", "en"}},
         {{"id", "dash-zh"}, {"title", kZhTitle}, {"type", "case_study"},
          {"stages", {"evaluation"}}, {"language", "zh"}},
         {{"id", "dash-idle"}, {"title", "Competitor comparison vs Acme"},
          {"type", "competitor_comparison"}, {"stages", {"evaluation"}}}}}});
  ASSERT_EQ(upsert["result"]["created"], 3) << upsert.dump();

  TestClient crm(daemon_->ws_url(), kCrmToken);
  ASSERT_TRUE(crm.connected());
  for (const char* lead : {"dash-lead-1", "dash-lead-2"}) {
    json rec = crm.Call("recommend", {{"lead", {{"id", lead}, {"stage", "evaluation"}}},
                                      {"k", 3}, {"rep_id", "rep-1"}});
    ASSERT_EQ(rec["result"]["items"].size(), 3u) << rec.dump();
  }
  json fb = crm.Call(
      "feedback.record",
      {{"events",
        {{{"event_id", "d1"}, {"type", "used"}, {"lead_id", "dash-lead-1"},
          {"asset_id", "dash-roi"}, {"rep_id", "rep-1"}},
         {{"event_id", "d2"}, {"type", "viewed"}, {"lead_id", "dash-lead-1"},
          {"asset_id", "dash-roi"}},
         {{"event_id", "d3"}, {"type", "won"}, {"lead_id", "dash-lead-1"}, {"amount", 48000}},
         {{"event_id", "d4"}, {"type", "used"}, {"lead_id", "dash-lead-2"},
          {"asset_id", "dash-zh"}, {"rep_id", "rep-1"}},
         {{"event_id", "d5"}, {"type", "dismissed"}, {"lead_id", "dash-lead-2"},
          {"asset_id", "dash-idle"}, {"reason", "too long"}},
         {{"event_id", "d6"}, {"type", "lost"}, {"lead_id", "dash-lead-2"}}}}});
  ASSERT_EQ(fb["result"]["accepted"], 6) << fb.dump();

  TestClient admin(daemon_->ws_url(), kAdminToken);
  const int64_t trend_calls = Calls(admin, "reports.trend"), asset_calls = Calls(admin, "reports.assets");
  ASSERT_TRUE(Render(browser, PageUrl(std::string("#token=") + kMarketingToken)));
  ASSERT_EQ(State(browser), "ready") << Dom(browser).substr(0, 4000) << browser.Diagnostics();
  const std::string dom = Dom(browser);
  ASSERT_FALSE(dom.empty()) << browser.Diagnostics();
  // One reports.trend call per refresh (not one reports.assets call per week):
  // as many trend calls as table loads.
  const int64_t trends = Calls(admin, "reports.trend") - trend_calls;
  EXPECT_GE(trends, 1);
  EXPECT_EQ(Calls(admin, "reports.assets") - asset_calls, trends);
  // The stage choices are the daemon's [funnel] stages.
  const std::string stages = Between(dom, "<select id=\"f-stage\"", "</select>");
  EXPECT_NE(stages.find("<option value=\"renewal\">renewal</option>"), std::string::npos) << stages;

  // Nothing logged as an error by the browser: script errors, console.error,
  // failed loads, CSP violations.
  EXPECT_TRUE(browser.errors().empty())
      << "the page logged errors:\n" << ::testing::PrintToString(browser.errors());
  // No script error, console.error or failed call.
  const size_t errors_at = dom.find("<div id=\"errors\"");
  ASSERT_NE(errors_at, std::string::npos);
  EXPECT_EQ(Between(dom, "<div id=\"errors\"", "</div>"), "")
      << "the page reported errors: " << dom.substr(errors_at, 2000);

  // The table shows what was seeded.
  const std::string roi = AssetRow(dom, "dash-roi");
  ASSERT_FALSE(roi.empty()) << dom;
  EXPECT_NE(roi.find("ROI calculator for manufacturing"), std::string::npos);
  EXPECT_EQ(Cell(roi, "shown"), "2") << roi;
  EXPECT_EQ(Cell(roi, "used"), "1") << roi;
  EXPECT_EQ(Cell(roi, "usage_rate"), "50.0%") << roi;
  EXPECT_EQ(Cell(roi, "viewed"), "1") << roi;
  EXPECT_EQ(Cell(roi, "won"), "1") << roi;
  EXPECT_EQ(Cell(roi, "lost"), "0") << roi;
  EXPECT_EQ(Cell(roi, "win_rate"), "100.0%") << roi;
  EXPECT_EQ(Cell(roi, "influenced_revenue"), "48,000") << roi;

  const std::string zh = AssetRow(dom, "dash-zh");
  ASSERT_FALSE(zh.empty()) << dom;
  EXPECT_NE(zh.find(kZhTitle), std::string::npos) << zh;  // UTF-8 intact end to end
  EXPECT_EQ(Cell(zh, "shown"), "2") << zh;
  EXPECT_EQ(Cell(zh, "used"), "1") << zh;
  EXPECT_EQ(Cell(zh, "lost"), "1") << zh;
  EXPECT_EQ(Cell(zh, "win_rate"), "0.0%") << zh;

  const std::string idle = AssetRow(dom, "dash-idle");
  ASSERT_FALSE(idle.empty()) << dom;
  EXPECT_EQ(Cell(idle, "shown"), "2") << idle;
  EXPECT_EQ(Cell(idle, "used"), "0") << idle;
  EXPECT_EQ(Cell(idle, "dismissed"), "1") << idle;
  EXPECT_EQ(Cell(idle, "win_rate"), "—") << idle;

  // The other views: the shown-but-never-used asset is listed as unused; the
  // scatter has one dot per asset; the trend's current week counts both uses;
  // dismissals show the reason, or say the report is not available.
  const std::string unused = Between(dom, "<div id=\"unused\"", "</ul>");
  EXPECT_NE(unused.find("Competitor comparison vs Acme"), std::string::npos) << unused;
  // The daemon's definition: every never_used and rarely_used asset of
  // reports.unused over the page's range, and the counts on the headings.
  {
    json u = marketing.Call("reports.unused", {{"from", 0}});
    ASSERT_TRUE(u.contains("result")) << u;
    const std::string box = Between(dom, "<div id=\"unused\"", "</section>");
    size_t shown_never = 0, never_shown = 0;
    for (const json& r : u["result"]["never_used"]) {
      EXPECT_NE(box.find(r["title"].get<std::string>()), std::string::npos) << r << box;
      ++(r["shown"].get<int64_t>() > 0 ? shown_never : never_shown);
    }
    for (const json& r : u["result"]["rarely_used"]) {
      EXPECT_NE(box.find(r["title"].get<std::string>()), std::string::npos) << r << box;
    }
    EXPECT_NE(box.find("Shown, never used (" + std::to_string(shown_never) + ")"), std::string::npos) << box;
    EXPECT_NE(box.find("Shown often, rarely used (" + std::to_string(u["result"]["rarely_used"].size()) + ")"),
              std::string::npos) << box;
    EXPECT_NE(box.find("Never shown in this range (" + std::to_string(never_shown) + ")"), std::string::npos) << box;
  }
  const std::string scatter = Between(dom, "<div id=\"scatter\"", "</svg>");
  size_t dots = 0;
  for (size_t at = scatter.find("data-asset=\""); at != std::string::npos;
       at = scatter.find("data-asset=\"", at + 1)) {
    ++dots;
  }
  EXPECT_EQ(dots, 3u) << scatter;
  EXPECT_NE(dom.find("used 2, shown 6"), std::string::npos) << "trend bars: " << Between(dom, "<div id=\"trend\"", "</svg>");
  const std::string dismissals = Between(dom, "<div id=\"dismissals\"", "</section>");
  EXPECT_TRUE(dismissals.find("too long") != std::string::npos ||
              dismissals.find("Not available") != std::string::npos)
      << dismissals;

  // "Is it working?": dash-lead-1 (treatment) won, dash-lead-2 (holdout) lost.
  const std::string experiment = Between(dom, "<div id=\"experiment\"", "</section>");
  const std::string treated = Between(experiment, "<div class=\"card\" id=\"exp-treatment\"", "</div></div>");
  EXPECT_NE(treated.find(">100.0%<"), std::string::npos) << experiment;
  EXPECT_NE(treated.find("won 1 of 1 closed"), std::string::npos) << experiment;
  const std::string held = Between(experiment, "<div class=\"card\" id=\"exp-holdout\"", "</div></div>");
  EXPECT_NE(held.find(">0.0%<"), std::string::npos) << experiment;
  EXPECT_NE(held.find("won 0 of 1 closed"), std::string::npos) << experiment;
  const std::string diff = Between(experiment, "<div class=\"card\" id=\"exp-difference\"", "</div></div>");
  EXPECT_NE(diff.find("+100.0 points"), std::string::npos) << experiment;
  EXPECT_NE(diff.find("95% CI "), std::string::npos) << experiment;
  const std::string needed = Between(experiment, "<div class=\"card\" id=\"exp-needed\"", "</div></div>");
  EXPECT_NE(needed.find("Closed leads still needed"), std::string::npos) << experiment;
  EXPECT_NE(Between(experiment, "<p class=\"exp-note\"", "</p>").find("too small to conclude"), std::string::npos)
      << experiment;

  // The screenshot, of the fixed viewport.
  const std::string png = browser.Screenshot();
  ASSERT_FALSE(png.empty()) << browser.Diagnostics();
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(PngSize(png), std::make_pair(kWidth, kHeight));
  EXPECT_GT(png.size(), 10000u);
  const std::string shot = ScreenshotPath();
  ASSERT_TRUE(WriteFile(shot, png)) << shot;
  std::cout << "dashboard screenshot: " << shot << "\n";
  RecordProperty("screenshot", shot);

  // Translations as one: a Chinese variant of dash-roi, used once, joins its row.
  json variant = marketing.Call("assets.upsert", {{"assets", {{{"id", "dash-roi-zh"}, {"title", "制造业ROI计算器"},
                                                              {"type", "roi_calculator"}, {"stages", {"evaluation"}},
                                                              {"language", "zh"}, {"variant_of", "dash-roi"}}}}});
  ASSERT_EQ(variant["result"]["created"], 1) << variant.dump();
  json use = crm.Call("feedback.record", {{"events", {{{"event_id", "d7"}, {"type", "used"}, {"lead_id", "dash-lead-3"},
                                                       {"asset_id", "dash-roi-zh"}}}}});
  ASSERT_EQ(use["result"]["accepted"], 1) << use.dump();
  const int64_t by_content_calls = Calls(admin, "reports.assets");
  browser.EvaluateString("(document.getElementById('f-content').click(), 'clicked')");
  ASSERT_TRUE(browser.WaitUntil("document.body.dataset.state === 'ready'", kRenderDeadline)) << browser.Diagnostics();
  EXPECT_EQ(Calls(admin, "reports.assets"), by_content_calls + 1);
  const std::string rolled = Dom(browser);
  const std::string item = AssetRow(rolled, "dash-roi");
  ASSERT_FALSE(item.empty()) << rolled;
  EXPECT_EQ(Cell(item, "used"), "2") << item;
  EXPECT_NE(item.find("dash-roi (en), dash-roi-zh (zh)"), std::string::npos) << item;
  EXPECT_TRUE(AssetRow(rolled, "dash-roi-zh").empty()) << rolled;
  EXPECT_NE(rolled.find("content items"), std::string::npos);
  EXPECT_TRUE(browser.errors().empty()) << ::testing::PrintToString(browser.errors());
}

TEST_F(Dashboard, AsksForATokenAndRefusesWrongOnes) {
  Chromium browser;
  ASSERT_TRUE(StartBrowser(browser));
  // No token: the sign-in form.
  ASSERT_TRUE(Render(browser, PageUrl()));
  EXPECT_EQ(State(browser), "login");
  EXPECT_TRUE(browser.errors().empty()) << ::testing::PrintToString(browser.errors());
  EXPECT_EQ(Between(Dom(browser), "<div id=\"errors\"", "</div>"), "");

  // An unknown token: refused at the handshake, back to the form with a
  // reason. The browser logs the refused handshake, nothing else.
  ASSERT_TRUE(Render(browser, PageUrl("#token=not-a-token")));
  EXPECT_EQ(State(browser), "login");
  const std::string wrong = Dom(browser);
  EXPECT_NE(Between(wrong, "<p id=\"login-msg\"", "</p>").find("refused"), std::string::npos)
      << wrong;
  for (const std::string& e : browser.errors()) {
    EXPECT_NE(e.find("WebSocket connection to 'ws://127.0.0.1:"), std::string::npos) << e;
  }

  // A crm token connects but may not read reports.
  ASSERT_TRUE(Render(browser, PageUrl(std::string("#token=") + kCrmToken)));
  EXPECT_EQ(State(browser), "login");
  const std::string crm = Dom(browser);
  EXPECT_NE(Between(crm, "<p id=\"login-msg\"", "</p>").find("marketing or admin"),
            std::string::npos)
      << crm;
  EXPECT_TRUE(browser.errors().empty()) << ::testing::PrintToString(browser.errors());
}

// Not run by default: takes docs/dashboard.png from a daemon that already runs
// with data (docs/dashboard.md says which): with PLAYBOOK_DASHBOARD_URL
// (e.g. http://127.0.0.1:7700/#token=T) and PLAYBOOK_SCREENSHOT (the PNG to
// write) set, run integration_tests --gtest_also_run_disabled_tests
// --gtest_filter='DashboardDocs.*'.
TEST(DashboardDocs, DISABLED_ScreenshotOfARunningDaemon) {
  const char* url = std::getenv("PLAYBOOK_DASHBOARD_URL");
  const char* out = std::getenv("PLAYBOOK_SCREENSHOT");
  ASSERT_TRUE(url && out) << "set PLAYBOOK_DASHBOARD_URL and PLAYBOOK_SCREENSHOT";
  Chromium browser;
  ASSERT_TRUE(StartBrowser(browser));
  ASSERT_TRUE(Render(browser, url, kDocsHeight));
  EXPECT_EQ(State(browser), "ready");
  EXPECT_TRUE(browser.errors().empty()) << ::testing::PrintToString(browser.errors());
  const std::string png = browser.Screenshot();
  ASSERT_FALSE(png.empty()) << browser.Diagnostics();
  ASSERT_TRUE(WriteFile(out, png)) << out;
  std::cout << "dashboard screenshot: " << out << "\n";
}

}  // namespace
}  // namespace playbook::testing

// Security of the HTTP side and of tokens, against the real playbookd: the
// security headers on every kind of HTTP answer, the Origin check on the
// WebSocket upgrade, the audit line of each write call, and the token reload
// on SIGHUP. See docs/protocol.md (Transport) and docs/operations.md.
#include <gtest/gtest.h>

#include <csignal>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kMarketingToken = "marketing-token-sec-0123456789";
constexpr const char* kCrmToken = "crm-token-sec-0123456789abcdef";
constexpr const char* kAdminToken = "admin-token-sec-0123456789abc";

std::string Token(const std::string& role, const std::string& token, const std::string& name = "") {
  std::string t = "[[auth.tokens]]\nrole = \"" + role + "\"\ntoken = \"" + token + "\"\n";
  if (!name.empty()) t += "name = \"" + name + "\"\n";
  return t;
}

void ExpectSecurityHeaders(const client::HttpResponse& r, const std::string& what, bool dashboard = false) {
  auto header = [&](const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string("<missing>") : it->second;
  };
  EXPECT_EQ(header("x-content-type-options"), "nosniff") << what;
  EXPECT_EQ(header("x-frame-options"), "DENY") << what;
  EXPECT_EQ(header("referrer-policy"), "no-referrer") << what;
  const std::string csp = header("content-security-policy");
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << what << ": " << csp;
  if (dashboard) {
    EXPECT_NE(csp.find("default-src 'self'"), std::string::npos) << what << ": " << csp;
  } else {
    EXPECT_EQ(csp, "default-src 'none'; frame-ancestors 'none'") << what;
  }
}

std::map<std::string, std::string> UpgradeHeaders() {
  return {{"Connection", "Upgrade"},
          {"Upgrade", "websocket"},
          {"Sec-WebSocket-Version", "13"},
          {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
}

// Lines of the daemon's log that contain `needle`.
std::vector<std::string> LogLines(const Daemon& d, const std::string& needle) {
  std::vector<std::string> out;
  const std::string log = d.log();
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(start, end - start);
    if (line.find(needle) != std::string::npos) out.push_back(line);
    start = end + 1;
  }
  return out;
}

// Waits (bounded) until the log holds a line with `needle`.
bool WaitForLog(const Daemon& d, const std::string& needle) {
  for (int i = 0; i < 500; ++i) {
    if (!LogLines(d, needle).empty()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

json SampleAsset(const std::string& id) {
  return {{"id", id}, {"title", "Case study " + id}, {"type", "case_study"}, {"stages", {"awareness"}}};
}

class Security : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- daemon log ----\n" << daemon_->log() << "\n";
  }
  Daemon* Start(DaemonOptions options) {
    owned_ = std::make_unique<Daemon>(std::move(options));
    daemon_ = owned_.get();
    EXPECT_TRUE(daemon_->Start()) << daemon_->log();
    return daemon_;
  }
  client::HttpResponse Request(const std::string& method, const std::string& target,
                               const std::map<std::string, std::string>& headers = {}) {
    auto r = client::HttpRequest(daemon_->host(), daemon_->port(), method, target, headers);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : client::HttpResponse{};
  }
  std::unique_ptr<Daemon> owned_;
  Daemon* daemon_ = nullptr;
};

TEST_F(Security, EveryHttpAnswerCarriesTheSecurityHeaders) {
  Start(WithConfig("[server]\nmax_connections = 2\n" + Token("crm", kCrmToken)));

  client::HttpResponse health = Request("GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  ExpectSecurityHeaders(health, "/healthz");
  client::HttpResponse metrics = Request("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  ExpectSecurityHeaders(metrics, "/metrics");
  client::HttpResponse missing = Request("GET", "/nope");
  EXPECT_EQ(missing.status, 404);
  ExpectSecurityHeaders(missing, "404");
  client::HttpResponse post = Request("POST", "/healthz");
  EXPECT_EQ(post.status, 404);
  ExpectSecurityHeaders(post, "404 for POST");
  client::HttpResponse page = Request("GET", "/");
  EXPECT_EQ(page.status, 200);
  ExpectSecurityHeaders(page, "the dashboard", /*dashboard=*/true);
  client::HttpResponse js = Request("GET", "/web/app.js");
  EXPECT_EQ(js.status, 200);
  ExpectSecurityHeaders(js, "app.js", /*dashboard=*/true);

  client::HttpResponse unauthorized = Request("GET", "/v1", UpgradeHeaders());
  EXPECT_EQ(unauthorized.status, 401);
  ExpectSecurityHeaders(unauthorized, "401");
  auto wrong_path = UpgradeHeaders();
  client::HttpResponse ws404 = Request("GET", "/elsewhere", wrong_path);
  EXPECT_EQ(ws404.status, 404);
  ExpectSecurityHeaders(ws404, "404 for an upgrade elsewhere");

  client::HttpResponse too_large = Request("GET", "/healthz", {{"X-Padding", std::string(20000, 'a')}});
  EXPECT_EQ(too_large.status, 413);
  ExpectSecurityHeaders(too_large, "413");

  // max_connections = 2: with two WebSockets open, a third connection is refused 503.
  TestClient first(daemon_->ws_url(), kCrmToken);
  TestClient second(daemon_->ws_url(), kCrmToken);
  ASSERT_TRUE(first.connected()) << first.connect_status().ToString();
  ASSERT_TRUE(second.connected()) << second.connect_status().ToString();
  client::HttpResponse busy = Request("GET", "/healthz");
  EXPECT_EQ(busy.status, 503);
  ExpectSecurityHeaders(busy, "503");
}

TEST_F(Security, UpgradeChecksTheOriginBeforeTheToken) {
  Start(WithConfig("[server]\nallowed_origins = [\"https://crm.example.com\"]\n" +
                   Token("crm", kCrmToken)));
  const std::string self_host = "127.0.0.1:" + std::to_string(daemon_->port());
  auto upgrade = [&](const std::string& origin, const std::string& token) {
    auto h = UpgradeHeaders();
    if (!origin.empty()) h["Origin"] = origin;
    if (!token.empty()) h["Authorization"] = "Bearer " + token;
    return Request("GET", "/v1", h);
  };

  // No Origin (the CLI, server-side plugins): only the token counts.
  EXPECT_EQ(upgrade("", kCrmToken).status, 101);
  EXPECT_EQ(upgrade("", "wrong-token").status, 401);
  // The daemon's own origin (the dashboard), over http or https, and the allowed one.
  EXPECT_EQ(upgrade("http://" + self_host, kCrmToken).status, 101);
  EXPECT_EQ(upgrade("https://" + self_host, kCrmToken).status, 101);
  EXPECT_EQ(upgrade("https://crm.example.com", kCrmToken).status, 101);
  EXPECT_EQ(upgrade("https://CRM.example.com", kCrmToken).status, 101);

  // Any other origin: 403 naming it, whether the token is good, bad or absent.
  for (const std::string& token : {std::string(kCrmToken), std::string("wrong-token"), std::string()}) {
    for (const std::string& origin :
         {std::string("https://evil.example"), std::string("http://crm.example.com"),
          std::string("https://crm.example.com:8443"), std::string("null"),
          std::string("http://127.0.0.1:1"), "http://" + self_host + ".evil.example"}) {
      client::HttpResponse r = upgrade(origin, token);
      EXPECT_EQ(r.status, 403) << origin << " token=" << token;
      ExpectSecurityHeaders(r, "403");
      json body = json::parse(r.body, nullptr, false);
      ASSERT_TRUE(body.is_object()) << r.body;
      EXPECT_EQ(body["origin"], origin);
      EXPECT_NE(body["error"].get<std::string>().find(origin), std::string::npos) << r.body;
      EXPECT_EQ(r.headers.count("www-authenticate"), 0u) << "the token check must not run";
    }
  }
  // The daemon goes on.
  TestClient c(daemon_->ws_url(), kCrmToken);
  ASSERT_TRUE(c.connected()) << c.connect_status().ToString();
  EXPECT_EQ(ErrorCode(c.Call("assets.get", {{"ids", {"none"}}})), 0);
}

TEST_F(Security, EveryWriteCallLeavesOneAuditLine) {
  Start(WithConfig(Token("marketing", kMarketingToken, "cms-sync") + Token("crm", kCrmToken) +
                   Token("admin", kAdminToken, "ops")));
  TestClient marketing(daemon_->ws_url(), kMarketingToken);
  TestClient crm(daemon_->ws_url(), kCrmToken);
  TestClient admin(daemon_->ws_url(), kAdminToken);
  ASSERT_TRUE(marketing.connected() && crm.connected() && admin.connected());

  json assets = json::array();
  for (int i = 0; i < 3; ++i) assets.push_back(SampleAsset("sec-asset-" + std::to_string(i)));
  EXPECT_EQ(ErrorCode(marketing.Call("assets.upsert", {{"assets", assets}})), 0);
  json events = json::array();
  for (int i = 0; i < 2; ++i) {
    events.push_back({{"event_id", "sec-ev-" + std::to_string(i)}, {"type", "used"}, {"lead_id", "L1"},
                      {"asset_id", "sec-asset-0"}});
  }
  EXPECT_EQ(ErrorCode(crm.Call("feedback.record", {{"events", events}})), 0);
  EXPECT_EQ(ErrorCode(marketing.Call("assets.delete", {{"ids", {"sec-asset-1", "sec-asset-2"}}})), 0);
  // A refused write is audited with its error.
  EXPECT_EQ(ErrorCode(marketing.Call("assets.upsert", {{"assets", {{{"id", "x"}}}}})), -32602);
  // Reads are not audited.
  EXPECT_EQ(ErrorCode(crm.Call("assets.get", {{"ids", {"sec-asset-0"}}})), 0);
  EXPECT_EQ(ErrorCode(admin.Call("index.status")), 0);

  ASSERT_TRUE(WaitForLog(*daemon_, "method=assets.delete"));
  const std::vector<std::string> audit = LogLines(*daemon_, " audit ");
  ASSERT_EQ(audit.size(), 4u) << daemon_->log();
  EXPECT_NE(audit[0].find("role=marketing token=cms-sync method=assets.upsert assets=3 result=ok"),
            std::string::npos) << audit[0];
  EXPECT_NE(audit[0].find(" info "), std::string::npos) << audit[0];
  EXPECT_NE(audit[1].find("role=crm token=token-1 method=feedback.record events=2 result=ok"),
            std::string::npos) << audit[1];
  EXPECT_NE(audit[2].find("role=marketing token=cms-sync method=assets.delete ids=2 result=ok"),
            std::string::npos) << audit[2];
  EXPECT_NE(audit[3].find("method=assets.upsert assets=1 result=error:-32602"), std::string::npos)
      << audit[3];
  const std::string log = daemon_->log();
  for (const char* secret : {kMarketingToken, kCrmToken, kAdminToken, "Case study"}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " appears in the log";
  }
}

TEST_F(Security, SighupReloadsTheTokens) {
  Start(WithConfig(Token("admin", kAdminToken, "ops") + Token("crm", kCrmToken, "old-crm")));
  TestClient kept(daemon_->ws_url(), kCrmToken);
  ASSERT_TRUE(kept.connected());

  const std::string kNewToken = "new-marketing-token-0123456789";
  ASSERT_TRUE(daemon_->RewriteConfig("[server]\nmax_connections = 77\n" +
                                     Token("admin", kAdminToken, "ops") +
                                     Token("marketing", kNewToken, "new-mkt")));
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(WaitForLog(*daemon_, "tokens reloaded")) << daemon_->log();
  EXPECT_TRUE(daemon_->running());
  EXPECT_FALSE(LogLines(*daemon_, "server.max_connections").empty())
      << "a changed key other than the tokens is named as needing a restart";

  // The new token is accepted with its role; the removed one is refused.
  TestClient fresh(daemon_->ws_url(), kNewToken);
  ASSERT_TRUE(fresh.connected()) << fresh.connect_status().ToString();
  EXPECT_EQ(ErrorCode(fresh.Call("assets.upsert", {{"assets", {SampleAsset("reloaded-1")}}})), 0);
  TestClient removed(daemon_->ws_url(), kCrmToken);
  EXPECT_FALSE(removed.connected());
  EXPECT_EQ(removed.ws().handshake_status(), 401);
  // The connection opened before keeps the role it authenticated with.
  EXPECT_EQ(ErrorCode(kept.Call("assets.get", {{"ids", {"none"}}})), 0);
  EXPECT_EQ(ErrorCode(kept.Call("assets.upsert", {{"assets", {SampleAsset("x")}}})), -32001);
  EXPECT_FALSE(LogLines(*daemon_, "token=new-mkt method=assets.upsert").empty());

  // A bad file keeps the tokens in force and says why.
  ASSERT_TRUE(daemon_->RewriteConfig(Token("admin", kAdminToken) + "[[auth.tokens]]\nrole = \"boss\"\ntoken = \"t\"\n"));
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(WaitForLog(*daemon_, "auth.tokens[1].role")) << daemon_->log();
  TestClient still(daemon_->ws_url(), kNewToken);
  EXPECT_TRUE(still.connected()) << still.connect_status().ToString();

  // Removing every token would open the daemon to everyone: refused too.
  ASSERT_TRUE(daemon_->RewriteConfig(""));
  daemon_->Signal(SIGHUP);
  ASSERT_TRUE(WaitForLog(*daemon_, "would remove every token")) << daemon_->log();
  TestClient anonymous(daemon_->ws_url(), "");
  EXPECT_FALSE(anonymous.connected());
  EXPECT_EQ(anonymous.ws().handshake_status(), 401);

  EXPECT_TRUE(daemon_->running());
  EXPECT_EQ(daemon_->Stop(), 0);
  const std::string log = daemon_->log();
  for (const std::string& secret : {std::string(kAdminToken), std::string(kCrmToken), kNewToken}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "a token appears in the log";
  }
}

}  // namespace
}  // namespace playbook::testing

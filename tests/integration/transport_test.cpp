// The transport contract against the real playbookd over real sockets:
// HTTP endpoints, every error code, batches, notifications, frame limits,
// auth, many connections. See docs/protocol.md.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCrmToken = "crm-token-0123456789abcdef";
constexpr const char* kMarketingToken = "marketing-token-0123456789";
constexpr const char* kAdminToken = "admin-token-0123456789abcd";

std::string TokensConfig() {
  return std::string("[[auth.tokens]]\nrole = \"crm\"\ntoken = \"") + kCrmToken +
         "\"\n[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"" + kMarketingToken +
         "\"\n[[auth.tokens]]\nrole = \"admin\"\ntoken = \"" + kAdminToken + "\"\n";
}

// One daemon for the tests that do not need their own config.
class Transport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon();
    ASSERT_TRUE(daemon_->Start()) << daemon_->log();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << daemon_->log() << "\n";
  }
  static client::HttpResponse Get(const std::string& target) {
    auto r = client::HttpGet(daemon_->host(), daemon_->port(), target);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : client::HttpResponse{};
  }
  static Daemon* daemon_;
};
Daemon* Transport::daemon_ = nullptr;

TEST_F(Transport, HealthzAnswers200WithJson) {
  client::HttpResponse r = Get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  json body = json::parse(r.body);
  EXPECT_EQ(body["status"], "ok");
  EXPECT_TRUE(body["version"].is_string());
}

TEST_F(Transport, MetricsCountRequestsByMethodAndOutcome) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Call("server.stats").contains("result"));
  ASSERT_EQ(ErrorCode(c.Call("server.stats", {{"bogus", 1}})), -32602);
  client::HttpResponse r = Get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers["content-type"].find("text/plain"), std::string::npos);
  EXPECT_NE(r.body.find("# TYPE playbook_requests_total counter"), std::string::npos);
  EXPECT_NE(r.body.find("playbook_requests_total{method=\"server.stats\",outcome=\"invalid_params\"}"),
            std::string::npos);
  EXPECT_NE(r.body.find("# TYPE playbook_request_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(r.body.find("playbook_request_duration_seconds_bucket{method=\"server.stats\",le=\"+Inf\"}"),
            std::string::npos);
  // This test's WebSocket is open while the metrics are read.
  EXPECT_EQ(r.body.find("playbook_websockets_open 0\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("playbook_connections_open "), std::string::npos);
}

TEST_F(Transport, AnythingElseIs404) {
  EXPECT_EQ(Get("/nope").status, 404);  // "/" is the dashboard (dashboard_test.cpp)
  EXPECT_EQ(Get("/v2").status, 404);
  EXPECT_EQ(Get("/v1").status, 404);  // without an upgrade
  EXPECT_EQ(Get("/healthz/x").status, 404);
  auto post = client::HttpRequest(daemon_->host(), daemon_->port(), "POST", "/healthz");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post.value().status, 404);
  client::WsClient ws;
  client::Url url{daemon_->host(), daemon_->port(), "/elsewhere"};
  EXPECT_FALSE(ws.Connect(url, "").ok());
  EXPECT_EQ(ws.handshake_status(), 404);
}

TEST_F(Transport, ServerStatsReportsUptimeConnectionsRequestsVersion) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Call("server.stats").contains("result"));
  json r = c.Call("server.stats");  // counts the first, which was answered before this one ran
  ASSERT_TRUE(r.contains("result")) << r;
  const json& s = r["result"];
  EXPECT_TRUE(s["version"].is_string());
  EXPECT_GE(s["uptime_ms"].get<int64_t>(), 0);
  EXPECT_GE(s["connections"]["websockets"].get<int64_t>(), 1);
  EXPECT_GE(s["requests"]["server.stats"].get<int64_t>(), 1);
}

TEST_F(Transport, EveryErrorCodeAndTheConnectionGoesOn) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  auto still_serving = [&] { EXPECT_TRUE(c.Call("server.stats").contains("result")); };

  json parse = c.SendRaw(R"({"jsonrpc":"2.0","id":1,"method":)");
  EXPECT_EQ(ErrorCode(parse), -32700);
  EXPECT_TRUE(parse["id"].is_null());
  still_serving();

  json invalid = c.SendRaw(R"({"jsonrpc":"1.0","id":"v","method":"server.stats"})");
  EXPECT_EQ(ErrorCode(invalid), -32600);
  EXPECT_EQ(ErrorField(invalid), "jsonrpc");
  EXPECT_EQ(invalid["id"], "v");
  still_serving();

  json missing = c.Call("assets.teleport");
  EXPECT_EQ(ErrorCode(missing), -32601);
  still_serving();

  json params = c.Call("debug.sleep", {{"ms", -5}});
  EXPECT_EQ(ErrorCode(params), -32602);
  EXPECT_EQ(ErrorField(params), "ms");
  still_serving();

  json internal = c.Call("debug.fail", {{"code", "internal"}});
  EXPECT_EQ(ErrorCode(internal), -32603);
  EXPECT_EQ(ErrorCode(c.Call("debug.fail", {{"code", "throw"}})), -32603);
  still_serving();

  EXPECT_EQ(ErrorCode(c.Call("debug.fail", {{"code", "not_found"}})), -32002);
  EXPECT_EQ(ErrorCode(c.Call("debug.fail", {{"code", "overloaded"}})), -32003);
  json named = c.Call("debug.fail", {{"code", "invalid_argument"}, {"field", "assets[3].stages"}});
  EXPECT_EQ(ErrorCode(named), -32602);
  EXPECT_EQ(ErrorField(named), "assets[3].stages");
  still_serving();

  // A binary frame is refused, not fatal.
  ASSERT_TRUE(c.ws().Send("\x01\x02", 5s, /*binary=*/true).ok());
  EXPECT_EQ(ErrorCode(c.Read()), -32600);
  still_serving();
}

TEST_F(Transport, BatchIsAnsweredInOneFrame) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  json batch = json::array({
      {{"jsonrpc", "2.0"}, {"id", "a"}, {"method", "server.stats"}},
      {{"jsonrpc", "2.0"}, {"method", "server.stats"}},  // notification: no answer
      {{"jsonrpc", "2.0"}, {"id", 2.5}, {"method", "nope"}},
      {{"jsonrpc", "2.0"}, {"id", nullptr}, {"method", "debug.sleep"}, {"params", {{"ms", 1}}}},
  });
  json r = c.SendRaw(batch.dump());
  ASSERT_TRUE(r.is_array()) << r;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0]["id"], "a");
  EXPECT_TRUE(r[0].contains("result"));
  EXPECT_EQ(r[1]["id"], 2.5);
  EXPECT_EQ(r[1]["error"]["code"], -32601);
  EXPECT_TRUE(r[2]["id"].is_null());
  EXPECT_EQ(r[2]["result"]["slept_ms"], 1);
  EXPECT_EQ(ErrorCode(c.SendRaw("[]")), -32600);
}

TEST_F(Transport, NotificationsGetNoResponse) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"method", "server.stats"}}));
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"method", "no.such.method"}}));
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", 99}, {"method", "server.stats"}}));
  json first = c.Read();
  EXPECT_EQ(first["id"], 99) << "the notifications were answered: " << first;
  EXPECT_TRUE(c.Read(300ms).is_null()) << "nothing else may arrive";
}

TEST_F(Transport, ResponsesMayComeOutOfOrderAndCarryTheirIds) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", "slow"}, {"method", "debug.sleep"}, {"params", {{"ms", 600}}}}));
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", "fast"}, {"method", "debug.sleep"}, {"params", {{"ms", 0}}}}));
  json first = c.Read(5s);
  json second = c.Read(5s);
  EXPECT_EQ(first["id"], "fast");
  EXPECT_EQ(second["id"], "slow");
}

TEST_F(Transport, ServerNotificationsReachTheCaller) {
  TestClient c(daemon_->ws_url());
  ASSERT_TRUE(c.connected());
  json r = c.Call("debug.sleep", {{"ms", 30}, {"notify", 3}});
  ASSERT_TRUE(r.contains("result")) << r;
  ASSERT_EQ(c.notifications().size(), 3u);
  EXPECT_EQ(c.notifications()[0]["method"], "debug.progress");
  EXPECT_FALSE(c.notifications()[0].contains("id"));
  EXPECT_EQ(c.notifications()[2]["params"]["done"], 3);
}

TEST_F(Transport, OversizedFrameClosesOnlyItsConnectionWith1009) {
  TestClient bystander(daemon_->ws_url());
  TestClient big(daemon_->ws_url());
  ASSERT_TRUE(bystander.connected());
  ASSERT_TRUE(big.connected());

  // Exactly at the limit (4 MiB) is served: an error naming the padding field.
  const size_t limit = 4 * 1024 * 1024;
  std::string head = R"({"jsonrpc":"2.0","id":1,"method":"server.stats","params":{"pad":")";
  std::string at_limit = head + std::string(limit - head.size() - 3, 'x') + "\"}}";
  ASSERT_EQ(at_limit.size(), limit);
  json ok = big.SendRaw(at_limit, 20s);
  EXPECT_EQ(ErrorField(ok), "pad") << ok;

  std::string over = head + std::string(limit - head.size() - 2, 'x') + "\"}}";
  ASSERT_EQ(over.size(), limit + 1);
  Status sent = big.ws().Send(over, 20s);
  ASSERT_TRUE(sent.ok()) << sent.ToString();
  client::Message m = big.ws().Read(10s);
  ASSERT_EQ(m.kind, client::Message::Kind::kClosed) << m.data << m.error;
  EXPECT_EQ(m.close_code, 1009);

  EXPECT_TRUE(bystander.Call("server.stats").contains("result"));
  TestClient newcomer(daemon_->ws_url());
  EXPECT_TRUE(newcomer.Call("server.stats").contains("result"));
  EXPECT_NE(Get("/metrics").body.find("playbook_frames_too_big_total 1\n"), std::string::npos);
}

TEST_F(Transport, FiveHundredConnectionsAtOnce) {
  constexpr int kConnections = 500;
  std::vector<std::unique_ptr<TestClient>> clients;
  clients.reserve(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(std::make_unique<TestClient>(daemon_->ws_url()));
    ASSERT_TRUE(clients.back()->connected())
        << "connection " << i << ": " << clients.back()->connect_status().ToString();
  }
  // Every connection has a request in flight before any answer is read.
  for (int i = 0; i < kConnections; ++i) {
    ASSERT_TRUE(clients[static_cast<size_t>(i)]->Send(
        {{"jsonrpc", "2.0"}, {"id", i}, {"method", "server.stats"}}));
  }
  int answered = 0;
  int64_t max_open = 0;
  for (int i = 0; i < kConnections; ++i) {
    json r = clients[static_cast<size_t>(i)]->Read(20s);
    if (r["id"] == i && r.contains("result")) {
      ++answered;
      max_open = std::max(max_open, r["result"]["connections"]["websockets"].get<int64_t>());
    }
  }
  EXPECT_EQ(answered, kConnections);
  EXPECT_GE(max_open, kConnections);
  clients.clear();
  EXPECT_EQ(Get("/healthz").status, 200);
}

// Tests with their own daemon and config.

TEST(TransportAuth, TokensDecideWhoGetsInAndWhatTheyMayCall) {
  Daemon d(WithConfig(TokensConfig()));
  ASSERT_TRUE(d.Start()) << d.log();
  const client::Url url{d.host(), d.port(), "/v1"};

  client::WsClient none;
  EXPECT_EQ(none.Connect(url, "").code(), Status::Code::kUnauthorized);
  EXPECT_EQ(none.handshake_status(), 401);
  client::WsClient wrong;
  EXPECT_FALSE(wrong.Connect(url, "crm-token-0123456789abcdeX").ok());
  EXPECT_EQ(wrong.handshake_status(), 401);

  TestClient crm(d.ws_url(), kCrmToken);
  ASSERT_TRUE(crm.connected());
  json forbidden = crm.Call("server.stats");
  EXPECT_EQ(ErrorCode(forbidden), -32001);
  EXPECT_EQ(ErrorCode(crm.Call("debug.sleep")), -32001);
  // Unknown methods are still -32601, whatever the role.
  EXPECT_EQ(ErrorCode(crm.Call("no.such")), -32601);

  TestClient marketing(d.ws_url(), kMarketingToken);
  ASSERT_TRUE(marketing.connected());
  EXPECT_EQ(ErrorCode(marketing.Call("server.stats")), -32001);

  TestClient admin(d.ws_url(), kAdminToken);
  ASSERT_TRUE(admin.connected());
  EXPECT_TRUE(admin.Call("server.stats").contains("result"));

  // Health and metrics stay open to probes; tokens never reach the log.
  EXPECT_EQ(client::HttpGet(d.host(), d.port(), "/healthz").value().status, 200);
  EXPECT_NE(client::HttpGet(d.host(), d.port(), "/metrics").value().body.find(
                "playbook_auth_refused_total 2\n"),
            std::string::npos);
  ASSERT_EQ(d.Stop(), 0);
  for (const char* t : {kCrmToken, kMarketingToken, kAdminToken, "crm-token-0123456789abcdeX"}) {
    EXPECT_EQ(d.log().find(t), std::string::npos) << "token in the log";
  }
}

TEST(TransportLimits, FullQueueAnswersOverloadedAndRecovers) {
  Daemon d(WithConfig("[server]\nworker_threads = 1\nmax_queued_requests = 1\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", "busy"}, {"method", "debug.sleep"}, {"params", {{"ms", 500}}}}));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", "shed"}, {"method", "server.stats"}}));
  json shed = c.Read(5s);
  EXPECT_EQ(shed["id"], "shed");
  EXPECT_EQ(ErrorCode(shed), -32003);
  json busy = c.Read(5s);
  EXPECT_EQ(busy["id"], "busy");
  EXPECT_TRUE(busy.contains("result"));
  EXPECT_TRUE(c.Call("server.stats").contains("result"));  // recovered
}

TEST(TransportLimits, ConfiguredFrameLimitApplies) {
  Daemon d(WithConfig("[server]\nmax_frame_bytes = 2048\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.ws().Send(std::string(2049, ' ')).ok());
  client::Message m = c.ws().Read(5s);
  ASSERT_EQ(m.kind, client::Message::Kind::kClosed);
  EXPECT_EQ(m.close_code, 1009);
}

}  // namespace
}  // namespace playbook::testing

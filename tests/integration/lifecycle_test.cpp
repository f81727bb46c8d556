// Start-up refusals, graceful stop and restart of the real playbookd.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

TEST(Lifecycle, SigtermExitsZero) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_NE(d.log().find("storage flushed"), std::string::npos) << d.log();
}

TEST(Lifecycle, SigintExitsZero) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  d.Signal(SIGINT);
  EXPECT_EQ(d.Wait(20s), 0) << d.log();
}

TEST(Lifecycle, SigtermLetsInFlightRequestsFinishAndRefusesNewOnes) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", "long"}, {"method", "debug.sleep"}, {"params", {{"ms", 1500}}}}));
  std::this_thread::sleep_for(200ms);
  d.Signal(SIGTERM);
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", "late"}, {"method", "server.stats"}}));
  json late = c.Read(5s);
  EXPECT_EQ(late["id"], "late");
  EXPECT_EQ(ErrorCode(late), -32003);
  json done = c.Read(5s);
  EXPECT_EQ(done["id"], "long");
  EXPECT_EQ(done["result"]["slept_ms"], 1500);
  client::Message closed = c.ws().Read(5s);
  EXPECT_EQ(closed.kind, client::Message::Kind::kClosed);
  EXPECT_EQ(closed.close_code, 1001);  // going away
  EXPECT_EQ(d.Wait(20s), 0) << d.log();
}

TEST(Lifecycle, GracePeriodBoundsTheStop) {
  Daemon d(WithConfig("[server]\nshutdown_grace_ms = 200\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "debug.sleep"}, {"params", {{"ms", 3000}}}}));
  std::this_thread::sleep_for(100ms);
  d.Signal(SIGTERM);
  client::Message m = c.ws().Read(2s);  // closed after the grace period, not after the sleep
  EXPECT_EQ(m.kind, client::Message::Kind::kClosed);
  EXPECT_EQ(d.Wait(20s), 0) << d.log();
  EXPECT_NE(d.log().find("grace period over"), std::string::npos) << d.log();
}

TEST(Lifecycle, RestartsOnTheSameDataDir) {
  TempDir data;
  {
    Daemon first(WithDataDir(data.path()));
    ASSERT_TRUE(first.Start()) << first.log();
    ASSERT_EQ(first.Stop(), 0);
  }
  Daemon second(WithDataDir(data.path()));
  ASSERT_TRUE(second.Start()) << second.log();
  TestClient c(second.ws_url());
  EXPECT_TRUE(c.Call("server.stats").contains("result"));
}

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

DaemonOptions LoadingSample(const std::string& data_dir, const std::string& file) {
  DaemonOptions o;
  o.data_dir = data_dir;
  o.args = {"--load-sample", file};
  return o;
}

// --load-sample, as tools/run.sh starts the daemon: the first start over a data dir imports the
// file before requests are served (the first recommend already finds it); later starts leave
// the catalog alone, so a deleted sample asset stays deleted.
TEST(Lifecycle, LoadSampleImportsOnceBeforeServing) {
  const std::string sample = std::string(PLAYBOOK_DATA_DIR) + "/catalog/sample.jsonl";
  TempDir data;
  {
    Daemon first(LoadingSample(data.path(), sample));
    ASSERT_TRUE(first.Start()) << first.log();
    TestClient c(first.ws_url());
    json r = c.Call("recommend", {{"lead", {{"id", "lead-42"}, {"stage", "evaluation"}, {"context", "客户说太贵了"}}},
                                  {"k", 3}});
    ASSERT_TRUE(r.contains("result")) << r.dump();
    ASSERT_FALSE(r["result"]["items"].empty()) << r.dump();
    EXPECT_EQ(r["result"]["items"][0]["asset_id"], "zh-objection-price-01") << r.dump();
    EXPECT_EQ(c.Call("index.status")["result"]["assets"], 106);
    EXPECT_EQ(FileText(data.path() + "/.sample-loaded"), "loaded 106 assets from " + sample + "\n");
    EXPECT_NE(first.log().find("token=--load-sample method=assets.upsert assets=106 result=ok"), std::string::npos)
        << first.log();
    EXPECT_EQ(c.Call("assets.delete", {{"ids", {"zh-objection-price-01"}}})["result"]["deleted"], 1);
    ASSERT_EQ(first.Stop(), 0) << first.log();
  }
  Daemon second(LoadingSample(data.path(), sample));
  ASSERT_TRUE(second.Start()) << second.log();
  TestClient c(second.ws_url());
  EXPECT_EQ(c.Call("index.status")["result"]["assets"], 105);
  EXPECT_NE(second.log().find("sample catalog: not loaded again"), std::string::npos) << second.log();
}

// A file that cannot be read is a warning: the daemon serves and writes no marker, so the next
// start tries again. A data dir whose catalog already holds assets (made before the sample
// existed) gets only the marker.
TEST(Lifecycle, LoadSampleLeavesAFilledCatalogAloneAndSurvivesABadFile) {
  const std::string sample = std::string(PLAYBOOK_DATA_DIR) + "/catalog/sample.jsonl";
  TempDir data;
  {
    Daemon missing(LoadingSample(data.path(), data.path() + "/no-such.jsonl"));
    ASSERT_TRUE(missing.Start()) << missing.log();
    EXPECT_NE(missing.log().find("sample catalog: not loaded (tried again at the next start)"), std::string::npos)
        << missing.log();
    EXPECT_FALSE(std::filesystem::exists(data.path() + "/.sample-loaded"));
    ASSERT_EQ(missing.Stop(), 0) << missing.log();
  }
  {
    Daemon plain(WithDataDir(data.path()));
    ASSERT_TRUE(plain.Start()) << plain.log();
    TestClient c(plain.ws_url());
    json asset = {{"id", "mine"}, {"title", "Our own case study"}, {"type", "case_study"}, {"stages", {"evaluation"}}};
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", {asset}}}).contains("result"));
    ASSERT_EQ(plain.Stop(), 0) << plain.log();
  }
  Daemon d(LoadingSample(data.path(), sample));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  EXPECT_EQ(c.Call("index.status")["result"]["assets"], 1);
  EXPECT_EQ(FileText(data.path() + "/.sample-loaded"), "not loaded: the catalog already holds assets\n");
}

// The generated config ends in [debug]: this line goes there. Holds the
// daemon in "starting" (listening, the data dir not opened) for 1.5 s.
DaemonOptions SlowToOpen() {
  DaemonOptions o = WithConfig("open_delay_ms = 1500\n");
  o.wait_until_serving = false;
  return o;
}

TEST(Lifecycle, ListensAtOnceAndSaysStartingUntilTheDataDirIsOpen) {
  Daemon d(SlowToOpen());
  ASSERT_TRUE(d.Start()) << d.log();

  auto health = client::HttpGet(d.host(), d.port(), "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health.value().status, 503);
  const json starting = json::parse(health.value().body);
  EXPECT_EQ(starting["status"], "starting");
  EXPECT_TRUE(starting["version"].is_string());
  EXPECT_EQ(client::HttpGet(d.host(), d.port(), "/metrics").value().status, 200);

  // A request while starting: answered at once, -32003 "starting", and the
  // connection stays open.
  TestClient c(d.ws_url());
  ASSERT_TRUE(c.connected());
  const json early = c.Call("index.status");
  EXPECT_EQ(ErrorCode(early), -32003) << early.dump();
  EXPECT_EQ(early["error"]["data"]["reason"], "starting") << early.dump();
  ASSERT_TRUE(c.Send(json::array({{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "server.stats"}},
                                  {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "server.stats"}}})));
  const json batch = c.Read(5s);
  ASSERT_TRUE(batch.is_array()) << batch.dump();
  ASSERT_EQ(batch.size(), 2u);
  for (const json& r : batch) EXPECT_EQ(r["error"]["data"]["reason"], "starting") << batch.dump();

  // Then it serves, on the same connection.
  int status = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
    status = client::HttpGet(d.host(), d.port(), "/healthz").value().status;
    if (status == 200) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(status, 200) << d.log();
  EXPECT_EQ(json::parse(client::HttpGet(d.host(), d.port(), "/healthz").value().body)["status"], "ok");
  const json later = c.Call("index.status");
  EXPECT_TRUE(later.contains("result")) << later.dump();
  EXPECT_EQ(d.Stop(), 0) << d.log();
}

TEST(Lifecycle, StopsCleanlyWhileStarting) {
  Daemon d(SlowToOpen());
  ASSERT_TRUE(d.Start()) << d.log();
  d.Signal(SIGTERM);
  EXPECT_EQ(d.Wait(20s), 0) << d.log();
  EXPECT_NE(d.log().find("storage flushed"), std::string::npos) << d.log();
}

TEST(Lifecycle, RefusesADataDirInUse) {
  Daemon first;
  ASSERT_TRUE(first.Start()) << first.log();
  Daemon second(WithDataDir(first.data_dir()));
  EXPECT_FALSE(second.Start());
  EXPECT_EQ(second.Wait(10s), 1);
  EXPECT_NE(second.log().find("in use"), std::string::npos) << second.log();
  // It listened while opening; the reason is still the last thing it says.
  const std::string log = second.log();
  ASSERT_NE(log.find("cannot open the data dir"), std::string::npos) << log;
  EXPECT_GT(log.rfind("cannot open the data dir"), log.rfind("server stopped")) << log;
}

TEST(Lifecycle, RefusesAPortInUse) {
  Daemon first;
  ASSERT_TRUE(first.Start()) << first.log();
  Daemon second(WithArgs({"--port", std::to_string(first.port())}));
  EXPECT_FALSE(second.Start());
  EXPECT_EQ(second.Wait(10s), 1);
  EXPECT_NE(second.log().find("cannot listen"), std::string::npos) << second.log();
}

TEST(Lifecycle, BadConfigStopsStartNamingTheKey) {
  struct Case {
    const char* toml;
    const char* key;
  } cases[] = {
      {"[server]\nprot = 7700\n", "server.prot"},
      {"[server]\nport = \"7700\"\n", "server.port"},
      {"[funnel]\nstages = []\n", "funnel.stages"},
      {"[funnel]\nstages = [\"awareness\", \"awareness\"]\n", "funnel.stages[1]"},
      {"[[auth.tokens]]\nrole = \"boss\"\ntoken = \"abcdefabcdefabcdef\"\n", "auth.tokens[0].role"},
  };
  for (const Case& c : cases) {
    Daemon d(WithConfig(c.toml));
    EXPECT_FALSE(d.Start()) << c.toml;
    EXPECT_EQ(d.Wait(10s), 1) << c.toml;
    EXPECT_NE(d.log().find(c.key), std::string::npos) << c.toml << "\n" << d.log();
  }
}

TEST(Lifecycle, RefusesToBindBeyondLoopbackWithoutTokens) {
  Daemon d(WithArgs({"--bind", "0.0.0.0"}));
  EXPECT_FALSE(d.Start());
  EXPECT_EQ(d.Wait(10s), 1);
  EXPECT_NE(d.log().find("without auth tokens"), std::string::npos) << d.log();
}

TEST(Lifecycle, StartupSummaryNamesVersionPortDataDirStagesDimension) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  const std::string log = d.log();
  EXPECT_NE(log.find("listening on ws://127.0.0.1:" + std::to_string(d.port()) + "/v1"), std::string::npos) << log;
  EXPECT_NE(log.find("stages=[awareness,interest,consideration,evaluation,negotiation]"), std::string::npos);
  EXPECT_NE(log.find("dimension=384"), std::string::npos);
  EXPECT_NE(log.find(d.data_dir()), std::string::npos);
}

}  // namespace
}  // namespace playbook::testing

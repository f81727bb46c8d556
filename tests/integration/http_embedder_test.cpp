// [embedder] kind = "http" through the real daemon: assets embedded by a
// model behind an OpenAI-compatible endpoint (a fake one this test starts,
// tests/support/fake_embedder.h), in batches; an endpoint down, hung or wrong
// fails upserts precisely and writes nothing, while recommend with a client
// vector keeps working; a changed model is re-embedded by `playbook reindex`.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/daemon.h"
#include "support/fake_embedder.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;
using Mode = FakeEmbeddingServer::Mode;

constexpr uint32_t kDim = 16;

// What the daemon embeds for an asset without body or tags (models::ComposeAssetText).
std::string AssetText(const std::string& title) { return title + "\n" + title + "\n"; }

json Asset(const std::string& id, const std::string& title) {
  return {{"id", id}, {"title", title}, {"type", "objection_script"}, {"stages", {"evaluation"}}};
}

json Assets(int n, const std::string& prefix = "a") {
  json out = json::array();
  for (int i = 0; i < n; ++i) out.push_back(Asset(prefix + std::to_string(i), "price objection script " + std::to_string(i)));
  return out;
}

// A request that did not reach the endpoint makes the daemon fail embedding
// calls at once for a second (HttpEmbedder::kRetryAfter); then it tries again.
void WaitForRetry() { std::this_thread::sleep_for(1100ms); }

std::string Reason(const json& r) {
  return r.contains("error") ? r["error"]["data"].value("reason", std::string()) : std::string();
}

class HttpEmbedderDaemon : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()); }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- daemon log ----\n" << daemon_->log() << "\n";
  }

  static std::string Config(const std::string& url, const std::string& model) {
    return "[embedder]\nkind = \"http\"\nurl = \"" + url + "\"\nmodel = \"" + model +
           "\"\ndimension = 16\nbatch_size = 4\ntimeout_ms = 500\n";
  }
  // Starts (or restarts over the same data) the daemon with `model`.
  void StartDaemon(const std::string& model) {
    std::string data_dir;
    if (daemon_) {
      data_dir = daemon_->data_dir();
      ASSERT_EQ(daemon_->Stop(), 0) << daemon_->log();
      kept_.push_back(std::move(daemon_));  // its temp dir holds the data
    }
    DaemonOptions o = WithConfig(Config(server_.url(), model));
    o.data_dir = data_dir;
    daemon_ = std::make_unique<Daemon>(o);
    ASSERT_TRUE(daemon_->Start()) << daemon_->log();
    client_ = std::make_unique<TestClient>(daemon_->ws_url());
    ASSERT_TRUE(client_->connected());
  }
  json Call(const std::string& method, const json& params) { return client_->Call(method, params, 20s); }
  json Ok(const std::string& method, const json& params) {
    json r = Call(method, params);
    EXPECT_TRUE(r.contains("result")) << method << ": " << r;
    return r.contains("result") ? r["result"] : json();
  }
  json Status() {
    // Stale vectors are counted by a background pass after a start: wait for it.
    json st;
    for (int i = 0; i < 200; ++i) {
      st = Ok("index.status", json::object());
      if (st.value("concepts_pending", 1) == 0) break;
      std::this_thread::sleep_for(20ms);
    }
    return st;
  }
  void ExpectVectors(const json& ids, const std::string& model) {
    json got = Ok("assets.get", {{"ids", ids}, {"with_vectors", true}});
    ASSERT_EQ(got["assets"].size(), ids.size());
    for (const json& a : got["assets"]) {
      const auto want = FakeEmbeddingServer::VectorFor(AssetText(a["title"].get<std::string>()), model, kDim);
      ASSERT_EQ(a["vector"].size(), kDim);
      for (uint32_t j = 0; j < kDim; ++j) EXPECT_NEAR(a["vector"][j].get<double>(), want[j], 1e-5) << a["id"];
      EXPECT_EQ(a["vector_source"], "embedder");
    }
  }

  FakeEmbeddingServer server_{kDim};
  std::unique_ptr<Daemon> daemon_;
  std::vector<std::unique_ptr<Daemon>> kept_;
  std::unique_ptr<TestClient> client_;
};

TEST_F(HttpEmbedderDaemon, UpsertEmbedsThroughTheEndpointInBatches) {
  StartDaemon("m1");
  json st = Status();
  EXPECT_EQ(st["embedder"], "http:m1@16");
  EXPECT_EQ(st["dimension"], kDim);  // index.dimension follows embedder.dimension

  json r = Ok("assets.upsert", {{"assets", Assets(10)}});
  EXPECT_EQ(r["upserted"], 10);
  EXPECT_EQ(server_.batch_sizes(), (std::vector<size_t>{4, 4, 2}));  // batch_size = 4
  EXPECT_EQ(server_.last_model(), "m1");
  ExpectVectors({"a0", "a5", "a9"}, "m1");

  // The context of a recommend and a search's query go to the model too.
  server_.ResetCounts();
  json rec = Ok("recommend", {{"lead", {{"id", "L1"}, {"stage", "evaluation"}, {"context", "price objection script 3"}}}});
  ASSERT_FALSE(rec["items"].empty());
  EXPECT_EQ(rec["items"][0]["asset_id"], "a3");
  json found = Ok("assets.search", {{"stage", "evaluation"}, {"query", "price objection script 7"}, {"k", 1}});
  ASSERT_EQ(found["items"].size(), 1u);
  EXPECT_EQ(found["items"][0]["asset_id"], "a7");
  EXPECT_EQ(server_.batch_sizes(), (std::vector<size_t>{1, 1}));

  auto metrics = client::HttpGet(daemon_->host(), daemon_->port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics.value().body.find("playbook_embedder_requests_total{result=\"ok\"} 5\n"), std::string::npos)
      << metrics.value().body;
  EXPECT_NE(metrics.value().body.find("playbook_embedder_texts_total 12\n"), std::string::npos);
}

TEST_F(HttpEmbedderDaemon, EndpointDownFailsUpsertsAndWritesNothing) {
  StartDaemon("m1");
  server_.Stop();

  // One asset with a vector, two without: the whole call fails, nothing is written.
  json assets = Assets(3);
  std::vector<float> v(kDim, 0.0f);
  v[2] = 1;
  assets[0]["vector"] = v;
  json r = Call("assets.upsert", {{"assets", assets}});
  EXPECT_EQ(ErrorCode(r), -32003) << r;
  EXPECT_NE(Reason(r).find("embedder " + server_.url() + ": connect: Connection refused"), std::string::npos) << r;
  EXPECT_EQ(Ok("assets.get", {{"ids", {"a0", "a1", "a2"}}})["missing"].size(), 3u);
  EXPECT_EQ(Status()["assets"], 0);

  // Assets with their own vectors need no model.
  json own = Assets(2, "v");
  own[0]["vector"] = v;
  std::vector<float> w(kDim, 0.0f);
  w[7] = 1;
  own[1]["vector"] = w;
  EXPECT_EQ(Ok("assets.upsert", {{"assets", own}})["upserted"], 2);

  // recommend: with a vector it works; with only a context it says why not; with neither it ranks by stage.
  json rec = Ok("recommend", {{"lead", {{"id", "L1"}, {"stage", "evaluation"}, {"vector", w}, {"context", "太贵了"}}},
                              {"k", 1}});
  ASSERT_EQ(rec["items"].size(), 1u);
  EXPECT_EQ(rec["items"][0]["asset_id"], "v1");
  json text_only = Call("recommend", {{"lead", {{"id", "L2"}, {"stage", "evaluation"}, {"context", "太贵了"}}}});
  EXPECT_EQ(ErrorCode(text_only), -32003) << text_only;
  EXPECT_NE(Reason(text_only).find("Connection refused"), std::string::npos) << text_only;
  EXPECT_EQ(Ok("recommend", {{"lead", {{"id", "L3"}, {"stage", "evaluation"}}}})["items"].size(), 2u);

  // Back up: the same upsert goes through.
  ASSERT_TRUE(server_.Start());
  WaitForRetry();
  EXPECT_EQ(Ok("assets.upsert", {{"assets", assets}})["upserted"], 3);
}

TEST_F(HttpEmbedderDaemon, HungOrWrongEndpointIsRefusedAndWritesNothing) {
  StartDaemon("m1");
  server_.set_mode(Mode::kHang);
  json hung = Call("assets.upsert", {{"assets", Assets(2)}});
  EXPECT_EQ(ErrorCode(hung), -32003) << hung;
  EXPECT_NE(Reason(hung).find("read the response: timed out after 500 ms (embedder.timeout_ms)"), std::string::npos)
      << hung;
  server_.set_mode(Mode::kOk);
  json soon = Call("assets.upsert", {{"assets", Assets(2)}});  // fails at once: no second wait
  EXPECT_EQ(ErrorCode(soon), -32003) << soon;
  EXPECT_NE(Reason(soon).find("unavailable (read the response: timed out"), std::string::npos) << soon;
  WaitForRetry();

  const std::vector<std::pair<Mode, std::string>> bad = {
      {Mode::kWrongDimension, "data[0].embedding has 15 numbers, expected 16"},
      {Mode::kWrongCount, "\"data\" has 1 entries for 2 inputs"},
      {Mode::kNonFinite, "is not finite as float32"},
      {Mode::kNotJson, "bad response: not JSON"},
      {Mode::kHttp500, "HTTP 500: CUDA out of memory"},
  };
  for (const auto& [mode, says] : bad) {
    server_.set_mode(mode);
    json r = Call("assets.upsert", {{"assets", Assets(2)}});
    EXPECT_EQ(ErrorCode(r), -32603) << r;
    EXPECT_NE(Reason(r).find(says), std::string::npos) << r;
  }
  EXPECT_EQ(Ok("assets.get", {{"ids", {"a0", "a1"}}})["missing"].size(), 2u);
  server_.set_mode(Mode::kOk);
  EXPECT_EQ(Ok("assets.upsert", {{"assets", Assets(2)}})["upserted"], 2);
}

TEST_F(HttpEmbedderDaemon, ModelChangeIsDetectedAndReindexReembeds) {
  StartDaemon("m1");
  ASSERT_EQ(Ok("assets.upsert", {{"assets", Assets(6)}})["upserted"], 6);
  ASSERT_NO_FATAL_FAILURE(StartDaemon("m2"));
  json st = Status();
  EXPECT_EQ(st["embedder"], "http:m2@16");
  EXPECT_EQ(st["stale_vectors"], 6);

  // The model down: reindex rebuilds the index but says the vectors stay stale.
  server_.Stop();
  const std::vector<std::string> env = {"PLAYBOOK_URL", "PLAYBOOK_TOKEN"};
  CommandResult failed = RunCommand({Daemon::CliPath(), "reindex", "--no-progress", "--url", daemon_->ws_url()}, env,
                                    60000ms);
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  EXPECT_NE(failed.err.find("6 vectors are still stale"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("Connection refused"), std::string::npos) << failed.err;
  EXPECT_EQ(Status()["stale_vectors"], 6);
  ExpectVectors({"a0", "a5"}, "m1");

  ASSERT_TRUE(server_.Start());
  WaitForRetry();
  server_.ResetCounts();
  CommandResult r = RunCommand({Daemon::CliPath(), "reindex", "--no-progress", "--url", daemon_->ws_url()}, env,
                               60000ms);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("embedder http:m2@16"), std::string::npos) << r.out;
  st = Status();
  EXPECT_EQ(st["stale_vectors"], 0);
  EXPECT_TRUE(st["reembed_error"].is_null()) << st;
  EXPECT_EQ(server_.batch_sizes(), (std::vector<size_t>{4, 2}));
  ExpectVectors({"a0", "a1", "a2", "a3", "a4", "a5"}, "m2");
}

TEST_F(HttpEmbedderDaemon, ImportEmbedsEachCallInBatches) {
  StartDaemon("m1");
  const std::string file = std::string(PLAYBOOK_DATA_DIR) + "/catalog/sample.jsonl";
  CommandResult r = RunCommand({Daemon::CliPath(), "import", "--no-progress", "--batch", "50", "--url",
                                daemon_->ws_url(), file},
                               {"PLAYBOOK_URL", "PLAYBOOK_TOKEN"}, 60000ms);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json st = Status();
  const int assets = st["assets"].get<int>();
  EXPECT_GT(assets, 100);
  // Calls of 50, 50 and the rest, each embedded 4 texts per request.
  size_t texts = 0;
  for (size_t n : server_.batch_sizes()) {
    EXPECT_LE(n, 4u);
    texts += n;
  }
  EXPECT_EQ(texts, size_t(assets));
  EXPECT_EQ(server_.requests(), 2 * 13 + (assets - 100 + 3) / 4);
  EXPECT_EQ(st["stale_vectors"], 0);
}

TEST(HttpEmbedderConfig, BadConfigStopsTheStartNamingTheKey) {
  struct Case {
    std::string toml;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"[embedder]\nkind = \"http\"\nmodel = \"m\"\ndimension = 16\n", "embedder.url: required"},
      {"[embedder]\nkind = \"http\"\nurl = \"https://x/v1/embeddings\"\nmodel = \"m\"\ndimension = 16\n",
       "https:// is not supported"},
      {"[index]\ndimension = 384\n[embedder]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nmodel = \"m\"\n"
       "dimension = 16\n",
       "embedder.dimension: 16 differs from index.dimension 384"},
      {"[embedder]\nurl = \"http://127.0.0.1:9/\"\n", "embedder.url: only with kind = \"http\""},
      {"[embedder]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nmodel = \"m\"\ndimension = 16\n"
       "api_key_env = \"PLAYBOOK_TEST_SURELY_UNSET_KEY\"\n",
       "the environment variable PLAYBOOK_TEST_SURELY_UNSET_KEY is not set"},
  };
  for (const Case& c : cases) {
    Daemon d(WithConfig(c.toml));
    EXPECT_FALSE(d.Start()) << c.toml;
    EXPECT_NE(d.log().find(c.says), std::string::npos) << c.toml << "\n" << d.log();
  }
}

}  // namespace
}  // namespace playbook::testing

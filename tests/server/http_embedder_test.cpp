// The remote embedder: its URL rules, its response checks, and its client
// against a fake endpoint on loopback (tests/support/fake_embedder.h).
#include "playbook/server/http_embedder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "support/fake_embedder.h"

namespace playbook::server {
namespace {

using testing::FakeEmbeddingServer;
using Mode = FakeEmbeddingServer::Mode;

TEST(HttpUrl, ParsesHostPortAndPath) {
  auto u = ParseHttpUrl("http://127.0.0.1:11434/v1/embeddings", "f");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u.value().host, "127.0.0.1");
  EXPECT_EQ(u.value().port, 11434);
  EXPECT_EQ(u.value().target, "/v1/embeddings");
  EXPECT_EQ(u.value().authority, "127.0.0.1:11434");

  auto bare = ParseHttpUrl("http://embed.internal", "f");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare.value().port, 80);
  EXPECT_EQ(bare.value().target, "/v1/embeddings");
  EXPECT_EQ(bare.value().authority, "embed.internal");

  auto v6 = ParseHttpUrl("http://[::1]:8080/embed?x=1", "f");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6.value().host, "::1");
  EXPECT_EQ(v6.value().target, "/embed?x=1");
  EXPECT_EQ(v6.value().authority, "[::1]:8080");
}

TEST(HttpUrl, RefusesWhatItCannotServe) {
  for (const char* bad : {"https://api.example.com/v1/embeddings", "ftp://x", "127.0.0.1:80", "http://",
                          "http://:80/", "http://h:0/", "http://h:65536/", "http://h:8a/", "http://u:p@h/",
                          "http://h /x", "http://[::1/x", "http://h:/x"}) {
    auto u = ParseHttpUrl(bad, "embedder.url");
    EXPECT_FALSE(u.ok()) << bad;
    if (!u.ok()) {
      EXPECT_EQ(u.status().field(), "embedder.url") << bad;
    }
  }
  EXPECT_NE(ParseHttpUrl("https://h/", "f").status().message().find("not supported"), std::string::npos);
}

// A response of `n` entries of `dim` numbers, each 1 (index i for entry i).
std::string Ones(size_t n, uint32_t dim) {
  std::string s = R"({"data":[)";
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ",";
    s += R"({"index":)" + std::to_string(i) + R"(,"embedding":[)";
    for (uint32_t j = 0; j < dim; ++j) s += j ? ",1" : "1";
    s += "]}";
  }
  return s + "]}";
}

TEST(EmbeddingsResponse, AcceptsAndNormalises) {
  std::vector<float> out(2 * 4);
  ASSERT_TRUE(ParseEmbeddingsResponse(Ones(2, 4), 2, 4, out.data()).ok());
  for (float x : out) EXPECT_FLOAT_EQ(x, 0.5f);
  // Rows by "index", whatever the order; no "index" = by position.
  const std::string swapped = R"({"data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,0]}]})";
  std::vector<float> two(4);
  ASSERT_TRUE(ParseEmbeddingsResponse(swapped, 2, 2, two.data()).ok());
  EXPECT_EQ(two, (std::vector<float>{1, 0, 0, 1}));
  ASSERT_TRUE(ParseEmbeddingsResponse(R"({"data":[{"embedding":[0,5]}],"usage":{}})", 1, 2, two.data()).ok());
  EXPECT_EQ(two[0], 0.0f);
  EXPECT_EQ(two[1], 1.0f);
}

TEST(EmbeddingsResponse, RefusesWithAReasonNamingWhatIsWrong) {
  struct Case {
    std::string body;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"", "not JSON"},
      {"<html>\xff</html>", "not JSON"},
      {"[]", "expected a JSON object, got an array"},
      {R"({"object":"list"})", "no \"data\""},
      {R"({"error":{"message":"model not found"}})", "model not found"},
      {R"({"data":{}})", "\"data\" is an object"},
      {Ones(1, 4), "\"data\" has 1 entries for 2 inputs"},
      {Ones(3, 4), "\"data\" has 3 entries for 2 inputs"},
      {R"({"data":[1,2]})", "data[0] is a number"},
      {R"({"data":[{"index":0,"embedding":[1,1,1,1]},{"index":0,"embedding":[1,1,1,1]}]})", "data[1].index 0 repeats"},
      {R"({"data":[{"index":2,"embedding":[1,1,1,1]},{"index":0,"embedding":[1,1,1,1]}]})", "data[0].index must be"},
      {R"({"data":[{"index":-1,"embedding":[1,1,1,1]},{"index":0,"embedding":[1,1,1,1]}]})", "data[0].index must be"},
      {R"({"data":[{"index":0.5,"embedding":[1,1,1,1]},{"index":0,"embedding":[1,1,1,1]}]})", "data[0].index must be"},
      {R"({"data":[{"index":0},{"index":1,"embedding":[1,1,1,1]}]})", "data[0] has no \"embedding\""},
      {R"({"data":[{"index":0,"embedding":"AAAA"},{"index":1,"embedding":[1,1,1,1]}]})",
       "data[0].embedding is a string"},
      {R"({"data":[{"index":0,"embedding":[1,1,1]},{"index":1,"embedding":[1,1,1,1]}]})",
       "data[0].embedding has 3 numbers, expected 4"},
      {R"({"data":[{"index":0,"embedding":[1,1,1,1]},{"index":1,"embedding":[1,1,"x",1]}]})",
       "data[1].embedding[2] is a string"},
      {R"({"data":[{"index":0,"embedding":[1,1,1e39,1]},{"index":1,"embedding":[1,1,1,1]}]})",
       "data[0].embedding[2] is not finite as float32"},
      {R"({"data":[{"index":0,"embedding":[1,1,1e999,1]}]})", "not JSON"},
      {R"({"data":[{"index":0,"embedding":[0,0,0,0]},{"index":1,"embedding":[1,1,1,1]}]})",
       "data[0].embedding is all zeros"},
      {std::string(200, '['), "nests deeper"},
  };
  for (const Case& c : cases) {
    std::vector<float> out(2 * 4);
    const Status s = ParseEmbeddingsResponse(c.body, 2, 4, out.data());
    EXPECT_EQ(s.code(), Status::Code::kInternal) << c.body;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << c.body << " -> " << s.message();
    for (char ch : s.message()) {  // safe for a log line and a JSON-RPC error
      EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << s.message();
    }
  }
}

TEST(EmbeddingsRequest, IsTheOpenAiShape) {
  const std::vector<std::string> texts = {"a", "太贵了", "c\"d", "bad \xff utf8"};
  const std::string body = EmbeddingsRequestBody("bge-m3", texts, 1, 4);
  EXPECT_EQ(body, "{\"input\":[\"太贵了\",\"c\\\"d\",\"bad \xEF\xBF\xBD utf8\"],\"model\":\"bge-m3\"}");
}

class HttpEmbedderTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kDim = 16;
  void SetUp() override { ASSERT_TRUE(server_.Start()); }

  std::unique_ptr<HttpEmbedder> Make(uint32_t batch_size = 4, uint32_t timeout_ms = 2000, std::string key = "") {
    HttpEmbedderOptions o;
    o.url = server_.url();
    o.model = "test-model";
    o.dimension = kDim;
    o.batch_size = batch_size;
    o.timeout_ms = timeout_ms;
    o.api_key = std::move(key);
    auto made = HttpEmbedder::Create(std::move(o));
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? std::move(made).value() : nullptr;
  }

  FakeEmbeddingServer server_{kDim};
};

TEST_F(HttpEmbedderTest, EmbedsInBatchesInOrder) {
  auto e = Make(/*batch_size=*/4, 2000, "sk-secret");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->Name(), "http:test-model@16");
  std::vector<std::string> texts;
  for (int i = 0; i < 10; ++i) texts.push_back("text number " + std::to_string(i));
  std::vector<float> out(texts.size() * kDim);
  ASSERT_TRUE(e->EmbedBatch(texts, out.data()).ok());
  EXPECT_EQ(server_.batch_sizes(), (std::vector<size_t>{4, 4, 2}));
  EXPECT_EQ(server_.last_model(), "test-model");
  EXPECT_EQ(server_.last_authorization(), "Bearer sk-secret");
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto want = FakeEmbeddingServer::VectorFor(texts[i], "test-model", kDim);
    for (uint32_t j = 0; j < kDim; ++j) EXPECT_NEAR(out[i * kDim + j], want[j], 1e-6) << i;
  }
  std::string metrics;
  e->RenderMetrics(&metrics);
  EXPECT_NE(metrics.find("playbook_embedder_requests_total{result=\"ok\"} 3\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("playbook_embedder_texts_total 10\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("playbook_embedder_request_duration_seconds_count 3\n"), std::string::npos) << metrics;
}

TEST_F(HttpEmbedderTest, BadAnswersAreInternalErrorsNamingTheEndpoint) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::vector<std::string> texts = {"one", "two"};
  std::vector<float> out(2 * kDim);
  const std::vector<std::pair<Mode, std::string>> cases = {
      {Mode::kHttp500, "HTTP 500: CUDA out of memory"},
      {Mode::kNotJson, "bad response: not JSON"},
      {Mode::kWrongDimension, "has 15 numbers, expected 16"},
      {Mode::kWrongCount, "\"data\" has 1 entries for 2 inputs"},
      {Mode::kNonFinite, "is not finite as float32"},
      {Mode::kDuplicateIndex, "repeats"},
      {Mode::kHuge, "bad response: larger than 1051136 bytes for 4 embeddings"},
  };
  for (const auto& [mode, says] : cases) {
    server_.set_mode(mode);
    const Status s = e->EmbedBatch(texts, out.data());
    EXPECT_EQ(s.code(), Status::Code::kInternal) << says;
    EXPECT_NE(s.message().find("embedder " + server_.url() + ": "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
  }
  server_.set_mode(Mode::kHttp503);
  const Status busy = e->EmbedBatch(texts, out.data());
  EXPECT_EQ(busy.code(), Status::Code::kOverloaded);
  EXPECT_NE(busy.message().find("HTTP 503: model is loading"), std::string::npos) << busy.message();
  std::string metrics;
  e->RenderMetrics(&metrics);
  EXPECT_NE(metrics.find("{result=\"http_error\"} 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("{result=\"bad_response\"} 6\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("playbook_embedder_texts_total 0\n"), std::string::npos) << metrics;
}

TEST_F(HttpEmbedderTest, DownAndHungEndpointsFailWithinTheTimeout) {
  auto e = Make(4, /*timeout_ms=*/300);
  ASSERT_NE(e, nullptr);
  std::vector<float> out(kDim);
  server_.set_mode(Mode::kHang);
  const auto t0 = std::chrono::steady_clock::now();
  const Status hung = e->EmbedBatch({"hello"}, out.data());
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(hung.code(), Status::Code::kOverloaded);
  EXPECT_NE(hung.message().find("read the response: timed out after 300 ms"), std::string::npos) << hung.message();
  // Bounded, not timed: the deadline held (far below the fake's 5 s socket timeout).
  EXPECT_LT(took, std::chrono::seconds(4));
  server_.set_mode(Mode::kOk);

  // Right after, calls fail at once without a request (no thread waits on it again).
  const int asked = server_.requests();
  const Status soon = e->EmbedBatch({"hello"}, out.data());
  EXPECT_EQ(soon.code(), Status::Code::kOverloaded);
  EXPECT_NE(soon.message().find("unavailable (read the response: timed out after 300 ms"), std::string::npos)
      << soon.message();
  EXPECT_EQ(server_.requests(), asked);

  server_.Stop();
  std::this_thread::sleep_for(HttpEmbedder::kRetryAfter + std::chrono::milliseconds(100));
  const Status down = e->EmbedBatch({"hello"}, out.data());
  EXPECT_EQ(down.code(), Status::Code::kOverloaded);
  EXPECT_NE(down.message().find("connect: Connection refused"), std::string::npos) << down.message();

  ASSERT_TRUE(server_.Start());  // the same port: back up, and it works again once retried
  std::this_thread::sleep_for(HttpEmbedder::kRetryAfter + std::chrono::milliseconds(100));
  EXPECT_TRUE(e->EmbedBatch({"hello"}, out.data()).ok());
  EXPECT_EQ(server_.requests(), asked + 1);
  std::string metrics;
  e->RenderMetrics(&metrics);
  EXPECT_NE(metrics.find("{result=\"unreachable\"} 2\n"), std::string::npos) << metrics;  // hung, refused
  EXPECT_NE(metrics.find("{result=\"skipped\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("playbook_embedder_request_duration_seconds_count 3\n"), std::string::npos) << metrics;
}

TEST(HttpEmbedder, CreateChecksItsOptions) {
  HttpEmbedderOptions o;
  o.url = "http://127.0.0.1:1/";
  o.dimension = 8;
  EXPECT_EQ(HttpEmbedder::Create(o).status().field(), "embedder.model");
  o.model = "m";
  o.url = "https://x/";
  EXPECT_EQ(HttpEmbedder::Create(o).status().field(), "embedder.url");
  o.url = "http://127.0.0.1:1/";
  o.dimension = 0;
  EXPECT_EQ(HttpEmbedder::Create(o).status().field(), "embedder.dimension");
  o.dimension = 8;
  EXPECT_TRUE(HttpEmbedder::Create(o).ok());
}

}  // namespace
}  // namespace playbook::server

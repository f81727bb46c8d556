#include <gtest/gtest.h>

#include "playbook/server/auth.h"
#include "playbook/server/metrics.h"

namespace playbook::server {
namespace {

using std::chrono::microseconds;

TEST(Metrics, PrometheusTextHasCountersHistogramAndGauges) {
  Metrics m;
  int slot = m.RegisterMethod("server.stats");
  EXPECT_EQ(m.MethodSlot("server.stats"), slot);
  EXPECT_EQ(m.MethodSlot("nope"), Metrics::kUnknownSlot);
  m.RecordRequest(slot, Metrics::kOk, microseconds(300));
  m.RecordRequest(slot, Metrics::kOk, microseconds(2000));
  m.RecordRequest(slot, Metrics::kInvalidParams, microseconds(50));
  m.ConnectionOpened();
  m.ConnectionOpened();
  m.ConnectionClosed();
  std::string text = m.RenderPrometheus(12.5, "0.1.0");
  EXPECT_NE(text.find("playbook_requests_total{method=\"server.stats\",outcome=\"ok\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("playbook_requests_total{method=\"server.stats\",outcome=\"invalid_params\"} 1\n"),
            std::string::npos);
  // Cumulative buckets: 50us and 300us are <= 0.0005; all three <= 0.0025.
  EXPECT_NE(text.find("playbook_request_duration_seconds_bucket{method=\"server.stats\",le=\"0.0005\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("playbook_request_duration_seconds_bucket{method=\"server.stats\",le=\"0.0025\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("playbook_request_duration_seconds_bucket{method=\"server.stats\",le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("playbook_request_duration_seconds_count{method=\"server.stats\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("playbook_connections_open 1\n"), std::string::npos);
  EXPECT_NE(text.find("playbook_connections_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("playbook_build_info{version=\"0.1.0\"} 1\n"), std::string::npos);
  // Every line is a comment or "name{labels} value".
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "text must end with a newline";
    std::string line = text.substr(start, end - start);
    if (line[0] != '#') {
      EXPECT_NE(line.rfind(' '), std::string::npos) << line;
    }
    start = end + 1;
  }
}

TEST(Metrics, OutcomeOfEveryProtocolCode) {
  EXPECT_EQ(Metrics::OutcomeOfCode(0), Metrics::kOk);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32700), Metrics::kParseError);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32600), Metrics::kInvalidRequest);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32601), Metrics::kMethodNotFound);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32602), Metrics::kInvalidParams);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32603), Metrics::kInternalError);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32001), Metrics::kUnauthorized);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32002), Metrics::kNotFound);
  EXPECT_EQ(Metrics::OutcomeOfCode(-32003), Metrics::kOverloaded);
}

TEST(TokenAuth, BearerTokensMapToRoles) {
  TokenAuth auth({{Role::kCrm, "crm-token-aaaaaaaaaaaa"}, {Role::kAdmin, "admin-token-bbbbbbbbbb"}});
  EXPECT_FALSE(auth.open());
  EXPECT_EQ(auth.Authenticate("Bearer crm-token-aaaaaaaaaaaa"), Role::kCrm);
  EXPECT_EQ(auth.Authenticate("bearer admin-token-bbbbbbbbbb"), Role::kAdmin);
  EXPECT_EQ(auth.Authenticate("Bearer crm-token-aaaaaaaaaaab"), std::nullopt);
  EXPECT_EQ(auth.Authenticate("Bearer crm-token-aaaaaaaaaaa"), std::nullopt);  // a prefix
  EXPECT_EQ(auth.Authenticate("crm-token-aaaaaaaaaaaa"), std::nullopt);         // no scheme
  EXPECT_EQ(auth.Authenticate("Basic crm-token-aaaaaaaaaaaa"), std::nullopt);
  EXPECT_EQ(auth.Authenticate(""), std::nullopt);
  EXPECT_EQ(auth.Authenticate("Bearer "), std::nullopt);
}

TEST(TokenAuth, NoTokensMeansOpenAdmin) {
  TokenAuth auth({});
  EXPECT_TRUE(auth.open());
  EXPECT_EQ(auth.Authenticate(""), Role::kAdmin);
}

TEST(TokenAuth, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

}  // namespace
}  // namespace playbook::server

// The params parsers without an engine: every number is range-checked where it
// is converted, and every error names its field. And the overload path's scan
// for ids, which must answer each id without parsing the frame.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "playbook/base/vector_base64.h"
#include "playbook/server/requests.h"

namespace playbook::server {
namespace {

std::string FieldOf(const Status& s) { return s.ok() ? "<ok>" : s.field(); }

template <class T>
std::string FieldOf(const Result<T>& r) {
  return r.ok() ? "<ok>" : r.status().field();
}

json Recommend(json lead_extra = json::object(), json extra = json::object()) {
  json lead{{"id", "lead-1"}, {"stage", "evaluation"}, {"context", "客户说太贵了"}};
  lead.update(lead_extra);
  json p{{"lead", lead}};
  p.update(extra);
  return p;
}

json Won(json amount) {
  return json{{"events", {{{"event_id", "e1"}, {"type", "won"}, {"lead_id", "l1"}, {"amount", amount}}}}};
}

TEST(Requests, RecommendReadsEveryField) {
  auto r = ParseRecommend(Recommend({{"vector", {0.5, -0.25}}},
                                    {{"k", 3}, {"filter", {{"language", "zh"}, {"types", {"objection_script"}}}},
                                     {"exclude_ids", {"a"}}, {"rep_id", "rep-7"}, {"exclude_seen", false}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value().lead_id, "lead-1");
  EXPECT_EQ(r.value().context, "客户说太贵了");
  EXPECT_EQ(r.value().k, 3u);
  EXPECT_EQ(r.value().vector, (std::vector<float>{0.5f, -0.25f}));
  EXPECT_EQ(r.value().filter.language, "zh");
  EXPECT_EQ(r.value().filter.exclude_ids, std::vector<std::string>{"a"});
  EXPECT_FALSE(r.value().exclude_seen);
}

TEST(Requests, AVectorElementBeyondFloat32IsRefusedByIndex) {
  // 1e39 is a finite double but inf as float32: scores would turn NaN.
  auto r = ParseRecommend(Recommend({{"vector", {0.1, 1e39}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(FieldOf(r), "lead.vector[1]");
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend({{"vector", {-3.5e38}}}))), "lead.vector[0]");
  EXPECT_TRUE(ParseRecommend(Recommend({{"vector", {3.4e38, -1e-45}}})).ok());
  json upsert{{"assets", {{{"id", "a"}, {"title", "t"}, {"type", "case_study"}, {"stages", {"evaluation"}},
                           {"vector", {1, 2, 1e300}}}}}};
  EXPECT_EQ(FieldOf(ParseAssetsUpsert(upsert)), "assets[0].vector[2]");
  EXPECT_EQ(FieldOf(ParseAssetsSearch(json{{"stage", "evaluation"}, {"vector", {1e40}}})), "vector[0]");
}

template <class T>
std::string Reason(const Result<T>& r) {
  return r.ok() ? "<ok>" : r.status().message();
}

TEST(VectorBase64, EncodesLittleEndianFloat32AndDecodesItBack) {
  const float v[2] = {1.0f, 0.5f};
  EXPECT_EQ(EncodeVectorBase64(v, 2), "AACAPwAAAD8=");  // the example in docs/protocol.md
  // Every padding case (1, 2, 3 floats = 4, 8, 12 bytes: 1, 2, 0 '=') and odd values.
  const std::vector<float> odd = {-0.0f, 3.4e38f, -1e-45f, 0.1f, -123.456f, 7.0f};
  for (size_t n = 0; n <= odd.size(); ++n) {
    const std::string text = EncodeVectorBase64(odd.data(), n);
    EXPECT_EQ(text.size() % 4, 0u);
    std::vector<float> back;
    std::string why;
    ASSERT_TRUE(DecodeVectorBase64(text, 100, &back, &why)) << why;
    ASSERT_EQ(back.size(), n);
    if (n > 0) {  // no memcmp of an empty vector's null data
      EXPECT_EQ(std::memcmp(back.data(), odd.data(), n * sizeof(float)), 0) << text;
    }
  }
}

TEST(Requests, AVectorMayBeBase64Float32Everywhere) {
  const std::vector<float> v = {0.5f, -0.25f, 3.0f};
  const std::string b64 = EncodeVectorBase64(v.data(), v.size());
  auto rec = ParseRecommend(Recommend({{"vector", b64}}));
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_EQ(rec.value().vector, v);
  json upsert{{"assets", {{{"id", "a"}, {"title", "t"}, {"type", "case_study"}, {"stages", {"evaluation"}},
                           {"vector", b64}}}}};
  auto up = ParseAssetsUpsert(upsert);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(up.value()[0].vector, v);
  auto search = ParseAssetsSearch(json{{"stage", "evaluation"}, {"vector", b64}});
  ASSERT_TRUE(search.ok()) << search.status().ToString();
  EXPECT_EQ(search.value().vector, v);
}

TEST(Requests, BadBase64VectorsAreRefusedNamingTheField) {
  auto upsert = [](const json& vector) {
    return ParseAssetsUpsert(json{{"assets", {{{"id", "a"}, {"title", "t"}, {"type", "case_study"},
                                               {"stages", {"evaluation"}}}, {{"id", "b"}, {"title", "t"},
                                               {"type", "case_study"}, {"stages", {"evaluation"}}, {"vector", vector}}}}});
  };
  // Not a multiple of 4 characters (padding missing).
  auto r = upsert("AACAPwAAAD8");
  EXPECT_EQ(FieldOf(r), "assets[1].vector");
  EXPECT_EQ(Reason(r), "not base64: 11 characters, not a multiple of 4 (is the '=' padding missing?)");
  // A character outside the alphabet, and its offset; URL-safe base64 is not this one.
  r = upsert("AACAPwAA*D8=");
  EXPECT_EQ(FieldOf(r), "assets[1].vector");
  EXPECT_EQ(Reason(r), "not base64: '*' at offset 8");
  EXPECT_EQ(Reason(upsert("AACAPwAA_D8=")), "not base64: '_' at offset 8");
  EXPECT_EQ(Reason(upsert("AACA\nwAAAD8=")), "not base64: byte 0x0a at offset 4");  // no whitespace
  EXPECT_EQ(Reason(upsert("AAC\x01PwAAAD8=")), "not base64: byte 0x01 at offset 3");
  EXPECT_EQ(Reason(upsert("AACAPwA AD8=")), "not base64: ' ' at offset 7");
  // Padding in the middle.
  EXPECT_EQ(Reason(upsert("AA==AAAAAAA=")), "not base64: '=' before the end at offset 2");
  // Whole base64, but not whole float32 values: 6 bytes, 5 bytes.
  r = upsert("AACAPwAA");
  EXPECT_EQ(FieldOf(r), "assets[1].vector");
  EXPECT_EQ(Reason(r), "base64 of 6 bytes, not a whole number of float32 values (a multiple of 4 bytes)");
  EXPECT_EQ(Reason(upsert("AACAPwA=")), "base64 of 5 bytes, not a whole number of float32 values (a multiple of 4 bytes)");
  // Non-finite floats name their element.
  const float bad[3] = {1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
  r = upsert(EncodeVectorBase64(bad, 3));
  EXPECT_EQ(FieldOf(r), "assets[1].vector[1]");
  EXPECT_EQ(Reason(r), "must be a finite number, got NaN (decoded from base64)");
  const float neg_inf[2] = {0.0f, -std::numeric_limits<float>::infinity()};
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend({{"vector", EncodeVectorBase64(neg_inf, 2)}}))), "lead.vector[1]");
  EXPECT_EQ(Reason(ParseRecommend(Recommend({{"vector", EncodeVectorBase64(neg_inf, 2)}}))),
            "must be a finite number, got -inf (decoded from base64)");
  // Neither an array nor a string.
  EXPECT_EQ(Reason(upsert(json{{"x", 1}})), "expected an array of numbers or a base64 string of float32, got an object");
  EXPECT_EQ(FieldOf(ParseAssetsSearch(json{{"stage", "evaluation"}, {"vector", "AAAA*AAA"}})), "vector");
}

TEST(Requests, ABase64VectorIsBoundedLikeAnArray) {
  // More floats than any vector may hold: refused from the length, before decoding.
  const std::vector<float> big(100000, 1.0f);
  auto r = ParseRecommend(Recommend({{"vector", EncodeVectorBase64(big.data(), big.size())}}));
  EXPECT_EQ(FieldOf(r), "lead.vector");
  json arr = json::array();
  for (size_t i = 0; i < big.size(); ++i) arr.push_back(1.0);
  auto a = ParseRecommend(Recommend({{"vector", arr}}));
  EXPECT_EQ(FieldOf(a), "lead.vector");
  EXPECT_EQ(Reason(r), Reason(a));
}

TEST(Requests, IntegersAreRangeCheckedBeforeTheyAreConverted) {
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend(json::object(), {{"k", 1e300}}))), "k");  // no UB cast
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend(json::object(), {{"k", -1e300}}))), "k");
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend(json::object(), {{"k", 18446744073709551615ull}}))), "k");
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend(json::object(), {{"k", 2.5}}))), "k");
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend(json::object(), {{"k", 0}}))), "k");
  auto five = ParseRecommend(Recommend(json::object(), {{"k", 5.0}}));
  ASSERT_TRUE(five.ok());
  EXPECT_EQ(five.value().k, 5u);
  EXPECT_EQ(FieldOf(ParseAssetsList(json{{"limit", 1e19}})), "limit");
  EXPECT_EQ(FieldOf(ParseDebugSleep(json{{"ms", -9.3e18}})), "ms");
}

TEST(Requests, AmountsAndTimestampsHaveTheDocumentedBounds) {
  EXPECT_TRUE(ParseFeedbackRecord(Won(0)).ok());
  EXPECT_TRUE(ParseFeedbackRecord(Won(kMaxAmount)).ok());
  EXPECT_TRUE(ParseFeedbackRecord(Won(12345.67)).ok());
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(Won(kMaxAmount * 1.0001))), "events[0].amount");
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(Won(1e308))), "events[0].amount");
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(Won(-0.01))), "events[0].amount");
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(Won("100"))), "events[0].amount");

  json ts = Won(1);
  ts["events"][0]["ts"] = kMaxTimestampMs + 1;
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(ts)), "events[0].ts");
  ts["events"][0]["ts"] = 1.5e18;
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(ts)), "events[0].ts");
  EXPECT_EQ(FieldOf(ParseReportsAssets(json{{"from", -1}})), "from");
  EXPECT_EQ(FieldOf(ParseReportWindow(json{{"to", kMaxTimestampMs + 1}})), "to");
  EXPECT_EQ(FieldOf(ParseReportsUnused(json{{"max_usage_rate", 1.5}})), "max_usage_rate");
}

TEST(Requests, ListsAreBoundedAndNamed) {
  json events = json::array();
  for (size_t i = 0; i <= kMaxEventsPerCall; ++i) {
    std::string id = "e";  // appended, not "e" + ...: GCC 12 warns falsely
    id.append(std::to_string(i));
    events.push_back({{"event_id", id}, {"type", "used"}, {"lead_id", "l"}, {"asset_id", "a"}});
  }
  auto r = ParseFeedbackRecord(json{{"events", events}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(FieldOf(r), "events");
  EXPECT_NE(r.status().message().find("more than 10000"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(json{{"events", json::array()}})), "events");
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(json{{"events", "all"}})), "events");
  EXPECT_EQ(FieldOf(ParseFeedbackRecord(json{{"events", {{{"event_id", "e"}, {"type", "shown"}, {"lead_id", "l"}}}}})),
            "events[0].type");
  EXPECT_EQ(FieldOf(ParseAssetsUpsert(json{{"assets", {{{"id", "a"}, {"colour", "red"}}}}})), "assets[0].title");
  EXPECT_EQ(FieldOf(ParseAssetsGet(json{{"ids", json::array({1})}})), "ids[0]");
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend({{"attributes", {{"tier", 3}}}}))), "lead.attributes.tier");
  EXPECT_EQ(FieldOf(ParseRecommend(Recommend(json::object(), {{"filter", {{"colour", "x"}}}}))), "filter.colour");
  EXPECT_EQ(FieldOf(ParseAssetsSearch(json{{"stage", "evaluation"}})), "query");
}

TEST(Requests, ReportsExperimentTakesAWindowAndABreakdown) {
  auto q = ParseReportsExperiment(json{{"from", 86400000}, {"to", 172800000}, {"by", "rep"}});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q.value().from_ms, 86400000);
  EXPECT_EQ(q.value().to_ms, 172800000);
  EXPECT_EQ(q.value().by, "rep");
  EXPECT_EQ(ParseReportsExperiment(json::object()).value().by, "");
  EXPECT_EQ(FieldOf(ParseReportsExperiment(json{{"by", "asset"}})), "by");
  EXPECT_EQ(FieldOf(ParseReportsExperiment(json{{"by", 3}})), "by");
  EXPECT_EQ(FieldOf(ParseReportsExperiment(json{{"from", -1}})), "from");
  EXPECT_EQ(FieldOf(ParseReportsExperiment(json{{"arm", "holdout"}})), "arm");
}

TEST(Requests, ReportsTrendNeedsAWindowAndCapsTheBuckets) {
  constexpr int64_t kDay = 86400000;
  auto q = ParseReportsTrend(json{{"from", 10 * kDay + 5}, {"to", 20 * kDay}, {"bucket_days", 3}, {"type", "case_study"}});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q.value().bucket_days, 3u);
  EXPECT_EQ(q.value().query.from_ms, 10 * kDay + 5);
  EXPECT_EQ(q.value().query.type, "case_study");
  EXPECT_EQ(ParseReportsTrend(json{{"from", 0}, {"to", 0}}).value().bucket_days, 7u);
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"to", kDay}})), "from");
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 0}})), "to");
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 2 * kDay}, {"to", kDay}})), "to");
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 0}, {"to", kDay}, {"bucket_days", 0}})), "bucket_days");
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 0}, {"to", kDay}, {"bucket_days", 367}})), "bucket_days");
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 0}, {"to", kDay}, {"bucket_days", "7"}})), "bucket_days");
  // 366 daily buckets are fine, 367 are not.
  EXPECT_TRUE(ParseReportsTrend(json{{"from", 0}, {"to", 365 * kDay}, {"bucket_days", 1}}).ok());
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 0}, {"to", 366 * kDay}, {"bucket_days", 1}})), "bucket_days");
  EXPECT_EQ(FieldOf(ParseReportsTrend(json{{"from", 0}, {"to", kDay}, {"limit", 5}})), "limit");
}

TEST(Requests, ReportsPhrasesNamesTheBadField) {
  auto q = ParseReportsPhrases(json::object());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q.value().limit, 20u);
  EXPECT_EQ(q.value().asset_id, "");
  EXPECT_EQ(ParseReportsPhrases(json{{"asset_id", "a1"}, {"limit", 1000}}).value().limit, 1000u);
  EXPECT_EQ(FieldOf(ParseReportsPhrases(json{{"limit", 0}})), "limit");
  EXPECT_EQ(FieldOf(ParseReportsPhrases(json{{"limit", 1001}})), "limit");
  EXPECT_EQ(FieldOf(ParseReportsPhrases(json{{"limit", 2.5}})), "limit");
  EXPECT_EQ(FieldOf(ParseReportsPhrases(json{{"asset_id", 7}})), "asset_id");
  EXPECT_EQ(FieldOf(ParseReportsPhrases(json{{"from", 0}})), "from");
}

TEST(Requests, EveryMethodHasAParserAndUnknownOnesAreNotFound) {
  const std::vector<std::string> names = ParsedMethods();
  for (const char* m : {"recommend", "feedback.record", "leads.get", "assets.upsert", "assets.get",
                        "assets.delete", "assets.list", "assets.search", "index.status", "index.rebuild",
                        "aggregates.rebuild", "reports.assets", "reports.unused", "reports.dismissals",
                        "reports.funnel", "reports.reps", "reports.experiment", "reports.trend", "reports.phrases",
                        "server.stats", "server.backup"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
  }
  EXPECT_TRUE(CheckParams("index.status", json::object()).ok());
  EXPECT_EQ(FieldOf(CheckParams("index.status", json{{"x", 1}})), "x");
  EXPECT_EQ(CheckParams("no.such", json::object()).code(), Status::Code::kNotFound);
  EXPECT_EQ(FieldOf(CheckParams("leads.get", json::array())), "params");
}

// ---- The overload path's scan -------------------------------------------------------

json Reject(std::string_view text) {
  auto out = RejectFrameText(text, RpcError{kOverloaded, "Overloaded", "", "queue full"});
  return out ? json::parse(*out) : json("<none>");
}

TEST(RejectFrameText, AnswersEachIdWithoutParsingTheRest) {
  json r = Reject(R"({"jsonrpc":"2.0","method":"recommend","params":{"lead":{"id":"x","v":[1,2,{"id":5}]}},"id":"r-1"})");
  EXPECT_EQ(r["id"], "r-1");  // the top-level id, not the nested one
  EXPECT_EQ(r["error"]["code"], -32003);
  r = Reject(R"([{"id":1,"method":"a"}, {"method":"notify"}, 7, {"id":null}, {"id":{"x":1}}])");
  ASSERT_TRUE(r.is_array()) << r;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0]["id"], 1);
  EXPECT_TRUE(r[1]["id"].is_null());
  EXPECT_TRUE(r[2]["id"].is_null());  // an unusable id is answered with null
  EXPECT_EQ(Reject(R"({"jsonrpc":"2.0","method":"x"})"), json("<none>"));  // a notification
  EXPECT_EQ(Reject(R"({"id":"a\"}b","method":"x"})")["id"], "a\"}b");
  EXPECT_TRUE(Reject(R"({"id":1e999})")["id"].is_null());  // beyond a double: null, no throw
}

TEST(RejectFrameText, MalformedTextGetsOneErrorWithIdNull) {
  for (std::string_view bad : {"", "{", "[", "[]", "{\"id\":1", "{\"id\":1}x", "[{\"id\":1},]", "\"", "{\"id\"1}",
                               "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}) {
    json r = Reject(bad);
    ASSERT_TRUE(r.is_object()) << bad << " -> " << r;
    EXPECT_TRUE(r["id"].is_null()) << bad;
    EXPECT_EQ(r["error"]["code"], -32003) << bad;
  }
  std::string deep(100000, '[');
  EXPECT_TRUE(Reject(deep)["id"].is_null());  // bounded depth: no stack overflow
}

TEST(Requests, RecommendReadsTheRepsLanguageAndNamesABadOne) {
  EXPECT_EQ(ParseRecommend(Recommend()).value().language, "");  // optional: the context's script decides
  for (const char* tag : {"zh", "en", "zh-CN", "zh-Hans-CN", "yue", "EN-gb"}) {
    auto r = ParseRecommend(Recommend({{"language", tag}}));
    ASSERT_TRUE(r.ok()) << tag << ": " << r.status().ToString();
    EXPECT_EQ(r.value().language, tag);
  }
  EXPECT_TRUE(ParseRecommend(Recommend({{"language", nullptr}})).ok());
  for (const json& bad : {json(""), json("z"), json("chinese"), json("zh_CN"), json("zh-"), json("zh--CN"),
                          json("zh-toolongtag"), json("中文"), json(7), json::array({"zh"})}) {
    auto r = ParseRecommend(Recommend({{"language", bad}}));
    EXPECT_EQ(FieldOf(r), "lead.language") << bad.dump();
  }
  EXPECT_NE(Reason(ParseRecommend(Recommend({{"language", "chinese"}}))).find("language tag"), std::string::npos);
}

}  // namespace
}  // namespace playbook::server

// Framing details below the dispatcher: ParseFrame, the builders, the status mapping.
#include <gtest/gtest.h>

#include "playbook/server/jsonrpc.h"

namespace playbook::server {
namespace {

TEST(JsonRpc, ParseFrameSeparatesSingleAndBatch) {
  Frame single = ParseFrame(R"({"jsonrpc":"2.0","id":1,"method":"a.b"})");
  EXPECT_FALSE(single.error);
  EXPECT_FALSE(single.is_batch);
  ASSERT_EQ(single.entries.size(), 1u);
  EXPECT_EQ(single.entries[0].method, "a.b");
  EXPECT_TRUE(single.entries[0].has_id);
  EXPECT_TRUE(single.entries[0].params.is_object());

  Frame batch = ParseFrame(R"([{"jsonrpc":"2.0","method":"a.b"},{"jsonrpc":"2.0","id":null,"method":"c"}])");
  EXPECT_TRUE(batch.is_batch);
  ASSERT_EQ(batch.entries.size(), 2u);
  EXPECT_FALSE(batch.entries[0].has_id);  // a notification
  EXPECT_TRUE(batch.entries[1].has_id);   // id null is still an id
  EXPECT_TRUE(batch.entries[1].id.is_null());
}

TEST(JsonRpc, ErrorsCarryFieldAndReasonInData) {
  json e = MakeError(json(5), RpcError{kInvalidParams, "Invalid params: k: too big", "k", "too big"});
  EXPECT_EQ(e["jsonrpc"], "2.0");
  EXPECT_EQ(e["id"], 5);
  EXPECT_EQ(e["error"]["code"], -32602);
  EXPECT_EQ(e["error"]["data"]["field"], "k");
  EXPECT_EQ(e["error"]["data"]["reason"], "too big");
  json bare = MakeError(json(), RpcError{kInternalError, "Internal error", "", ""});
  EXPECT_FALSE(bare["error"].contains("data"));
  EXPECT_TRUE(bare.contains("id"));
  EXPECT_TRUE(bare["id"].is_null());
}

TEST(JsonRpc, StatusMapping) {
  EXPECT_EQ(ErrorFromStatus(Status::InvalidArgument("a.b", "bad")).code, -32602);
  EXPECT_EQ(ErrorFromStatus(Status::InvalidArgument("a.b", "bad")).field, "a.b");
  EXPECT_EQ(ErrorFromStatus(Status::NotFound("x")).code, -32002);
  EXPECT_EQ(ErrorFromStatus(Status::Overloaded("x")).code, -32003);
  EXPECT_EQ(ErrorFromStatus(Status::Unauthorized("x")).code, -32001);
  EXPECT_EQ(ErrorFromStatus(Status::Corruption("x")).code, -32603);
  EXPECT_EQ(ErrorFromStatus(Status::IOError("x")).code, -32603);
  EXPECT_EQ(ErrorFromStatus(Status::Internal("x")).code, -32603);
}

TEST(JsonRpc, SerializeReplacesInvalidUtf8InsteadOfThrowing) {
  json v = std::string("ok \xff end");
  std::string out;
  EXPECT_NO_THROW(out = Serialize(v));
  EXPECT_NE(out.find("ok"), std::string::npos);
  EXPECT_EQ(out.find('\xff'), std::string::npos);
}

TEST(JsonRpc, NotificationHasNoId) {
  json n = MakeNotification("index.progress", {{"job_id", "j1"}, {"done", 1}, {"total", 2}});
  EXPECT_FALSE(n.contains("id"));
  EXPECT_EQ(n["method"], "index.progress");
  EXPECT_EQ(n["params"]["total"], 2);
}

TEST(JsonRpc, FastParseBuildsWhatNlohmannBuilds) {
  const char* accepted[] = {
      R"({"jsonrpc":"2.0","id":7,"method":"assets.search","params":{"stage":"evaluation","vector":[0.034910,-0.018783,1e-3,-2.5E+2,0,-0,12,-12,0.0,-0.0,1.7976931348623157e308,4.9e-324]}})",
      R"( [ {"a" : true , "b":false,"c":null,"d":[],"e":{}} , "太贵了 ü €" ] )",
      R"({"k":1,"k":2})",  // the last wins
      R"(123456789012345678)", R"(-123456789012345678)", R"("")", "\"\xF0\x9F\x98\x80\"",
      R"(0.1000000000000000055511151231257827021181583404541015625)", R"(2.2250738585072011e-308)",
  };
  for (const char* text : accepted) {
    json fast;
    ASSERT_TRUE(ParseJsonFast(text, &fast)) << text;
    EXPECT_TRUE(SameJsonDocument(fast, json::parse(text))) << text << "\n" << fast.dump();
  }
  // Declined: outside the subset (nlohmann parses them) or not JSON (nlohmann says why).
  const char* declined[] = {
      R"("a\"b")", R"("\u00e9")", R"(1234567890123456789)", R"(18446744073709551616)", R"(-9223372036854775809)",
      R"(1e999)", R"(1e-400)", "\xEF\xBB\xBF{}", R"({"a":1,})", R"([1,])", R"([01])", R"([1.])", R"([.5])",
      R"([-])", R"([+1])", R"(tru)", R"(nul)", R"({"a" 1})", R"({a:1})", "", " ", R"({} {})", "\"\x01\"",
      "\"\xC0\x80\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xE4\xB8\"", R"([1,2)", R"("abc)", R"(NaN)",
  };
  for (const char* text : declined) {
    json fast = "untouched";
    EXPECT_FALSE(ParseJsonFast(text, &fast)) << text;
    EXPECT_EQ(fast, "untouched") << text;
  }
  // Frames the fast path declines keep nlohmann's own verdict and message.
  Frame escaped = ParseFrame(R"({"jsonrpc":"2.0","id":"a\"b","method":"x"})");
  ASSERT_FALSE(escaped.error);
  EXPECT_EQ(escaped.entries[0].id, "a\"b");
  Frame overflow = ParseFrame(R"({"jsonrpc":"2.0","id":1,"method":"x","params":[1e999]})");
  ASSERT_TRUE(overflow.error);
  EXPECT_EQ(overflow.error->code, kParseError);
  EXPECT_NE(overflow.error->message.find("number overflow"), std::string::npos) << overflow.error->message;
  Frame trailing = ParseFrame(R"({"jsonrpc":"2.0","id":1,"method":"x"},)");
  ASSERT_TRUE(trailing.error);
  EXPECT_NE(trailing.error->message.find("syntax error"), std::string::npos) << trailing.error->message;
}

}  // namespace
}  // namespace playbook::server

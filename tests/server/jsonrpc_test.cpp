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

}  // namespace
}  // namespace playbook::server

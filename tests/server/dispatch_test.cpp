// The JSON-RPC layer end to end without sockets: frame text in, frame text out.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "playbook/server/dispatch.h"
#include "playbook/server/metrics.h"
#include "playbook/server/params.h"

namespace playbook::server {
namespace {

class DispatchTest : public ::testing::Test {
 protected:
  DispatchTest() : d_(&metrics_) {
    // echo {"value"?}: returns its params.
    d_.Add({"test.echo", Role::kCrm, [](const json& p, const CallContext&) -> Result<json> {
              ParamReader r(p);
              const json* v = r.Raw("value");
              if (Status s = r.Finish(); !s.ok()) return s;
              return json{{"value", v ? *v : json()}};
            }});
    d_.Add({"test.admin", Role::kAdmin,
            [](const json&, const CallContext&) -> Result<json> { return json("admin ok"); }});
    d_.Add({"test.marketing", Role::kMarketing,
            [](const json&, const CallContext&) -> Result<json> { return json("marketing ok"); }});
    d_.Add({"test.fail", Role::kCrm, [](const json& p, const CallContext&) -> Result<json> {
              const std::string code = p.value("code", "");
              if (code == "invalid") return Status::InvalidArgument("assets[3].stages", "unknown stage 'foo'");
              if (code == "not_found") return Status::NotFound("no lead 'l-1'");
              if (code == "overloaded") return Status::Overloaded("busy");
              if (code == "io") return Status::IOError("disk on fire");
              if (code == "throw") throw std::runtime_error("boom");
              return json(nullptr);
            }});
    d_.Add({"test.count", Role::kCrm, [this](const json&, const CallContext&) -> Result<json> {
              return json(++calls_);
            }});
  }

  json Handle(const std::string& text, Role role = Role::kAdmin) {
    CallContext ctx;
    ctx.role = role;
    std::optional<std::string> out = d_.HandleFrame(text, ctx);
    if (!out) return json("<no response>");
    return json::parse(*out);
  }

  Metrics metrics_;
  Dispatcher d_;
  int calls_ = 0;
};

TEST_F(DispatchTest, ValidRequestGetsResultWithItsId) {
  json r = Handle(R"({"jsonrpc":"2.0","id":7,"method":"test.echo","params":{"value":"太贵了"}})");
  EXPECT_EQ(r["jsonrpc"], "2.0");
  EXPECT_EQ(r["id"], 7);
  EXPECT_EQ(r["result"]["value"], "太贵了");
  EXPECT_FALSE(r.contains("error"));
}

TEST_F(DispatchTest, AbsentParamsReadAsEmptyObject) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo"})");
  EXPECT_TRUE(r["result"]["value"].is_null());
}

TEST_F(DispatchTest, IdsOfEveryAllowedTypeAreEchoedExactly) {
  for (const char* id : {R"("abc")", R"("")", "0", "-12", "9007199254740993", "18446744073709551615",
                         "1.5", "null", R"("中文-id")"}) {
    json r = Handle(std::string(R"({"jsonrpc":"2.0","method":"test.echo","id":)") + id + "}");
    EXPECT_EQ(r["id"], json::parse(id)) << id;
    EXPECT_EQ(r["id"].type(), json::parse(id).type()) << id;
    EXPECT_TRUE(r.contains("result")) << id;
  }
}

TEST_F(DispatchTest, IdsOfOtherTypesAreInvalidRequestsWithNullId) {
  for (const char* id : {"{}", "[1]", "true", "false"}) {
    json r = Handle(std::string(R"({"jsonrpc":"2.0","method":"test.echo","id":)") + id + "}");
    EXPECT_EQ(r["error"]["code"], -32600) << id;
    EXPECT_TRUE(r["id"].is_null()) << id;
    EXPECT_EQ(r["error"]["data"]["field"], "id") << id;
  }
}

TEST_F(DispatchTest, NotificationGetsNoResponseButRuns) {
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","method":"test.count"})"), "<no response>");
  EXPECT_EQ(calls_, 1);
  // Not even for errors.
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","method":"no.such"})"), "<no response>");
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","method":"test.fail","params":{"code":"invalid"}})"),
            "<no response>");
}

TEST_F(DispatchTest, MalformedNotificationIsAnsweredWithNullId) {
  json r = Handle(R"({"jsonrpc":"2.0","method":1})");
  EXPECT_EQ(r["error"]["code"], -32600);
  EXPECT_TRUE(r["id"].is_null());
  EXPECT_EQ(r["error"]["data"]["field"], "method");
}

TEST_F(DispatchTest, ParseErrorHasNullIdAndSaysWhere) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo")");
  EXPECT_EQ(r["error"]["code"], -32700);
  EXPECT_TRUE(r["id"].is_null());
  EXPECT_NE(r["error"]["data"]["reason"].get<std::string>().find("column"), std::string::npos);
  EXPECT_EQ(Handle("")["error"]["code"], -32700);
  EXPECT_EQ(Handle("\xff\xfe")["error"]["code"], -32700);
}

TEST_F(DispatchTest, InvalidRequestsNameTheMember) {
  struct Case {
    const char* text;
    const char* field;
  } cases[] = {
      {R"({"id":1,"method":"test.echo"})", "jsonrpc"},
      {R"({"jsonrpc":"1.0","id":1,"method":"test.echo"})", "jsonrpc"},
      {R"({"jsonrpc":2.0,"id":1,"method":"test.echo"})", "jsonrpc"},
      {R"({"jsonrpc":"2.0","id":1})", "method"},
      {R"({"jsonrpc":"2.0","id":1,"method":""})", "method"},
      {R"({"jsonrpc":"2.0","id":1,"method":["x"]})", "method"},
      {R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":"x"})", "params"},
      {R"({"jsonrpc":"2.0","id":1,"method":"test.echo","extra":1})", "extra"},
      {R"("just a string")", ""},
      {R"(42)", ""},
  };
  for (const Case& c : cases) {
    json r = Handle(c.text);
    EXPECT_EQ(r["error"]["code"], -32600) << c.text;
    EXPECT_EQ(r["error"]["data"].value("field", ""), c.field) << c.text;
  }
  // A usable id is still echoed, so the client can match the error.
  EXPECT_EQ(Handle(R"({"jsonrpc":"1.0","id":"x","method":"test.echo"})")["id"], "x");
}

TEST_F(DispatchTest, MethodNotFound) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"assets.nope"})");
  EXPECT_EQ(r["error"]["code"], -32601);
  EXPECT_EQ(r["error"]["data"]["field"], "method");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("assets.nope"), std::string::npos);
}

TEST_F(DispatchTest, RolesNest) {
  const char* admin = R"({"jsonrpc":"2.0","id":1,"method":"test.admin"})";
  const char* marketing = R"({"jsonrpc":"2.0","id":1,"method":"test.marketing"})";
  const char* crm = R"({"jsonrpc":"2.0","id":1,"method":"test.echo"})";
  EXPECT_EQ(Handle(admin, Role::kCrm)["error"]["code"], -32001);
  EXPECT_EQ(Handle(admin, Role::kMarketing)["error"]["code"], -32001);
  EXPECT_EQ(Handle(admin, Role::kAdmin)["result"], "admin ok");
  EXPECT_EQ(Handle(marketing, Role::kCrm)["error"]["code"], -32001);
  EXPECT_EQ(Handle(marketing, Role::kMarketing)["result"], "marketing ok");
  EXPECT_EQ(Handle(marketing, Role::kAdmin)["result"], "marketing ok");
  EXPECT_TRUE(Handle(crm, Role::kCrm).contains("result"));
  // A forbidden call does not run.
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.count"})", Role::kCrm)["result"], 1);
}

TEST_F(DispatchTest, ParamsMustBeAnObject) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":[1,2]})");
  EXPECT_EQ(r["error"]["code"], -32602);
  EXPECT_EQ(r["error"]["data"]["field"], "params");
}

TEST_F(DispatchTest, UnknownParamIsNamed) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"valeu":1}})");
  EXPECT_EQ(r["error"]["code"], -32602);
  EXPECT_EQ(r["error"]["data"]["field"], "valeu");
}

TEST_F(DispatchTest, StatusCodesMapToProtocolCodes) {
  auto fail = [&](const char* code) {
    return Handle(std::string(R"({"jsonrpc":"2.0","id":"f","method":"test.fail","params":{"code":")") +
                  code + "\"}}");
  };
  json invalid = fail("invalid");
  EXPECT_EQ(invalid["error"]["code"], -32602);
  EXPECT_EQ(invalid["error"]["data"]["field"], "assets[3].stages");
  EXPECT_EQ(invalid["error"]["data"]["reason"], "unknown stage 'foo'");
  EXPECT_EQ(invalid["id"], "f");
  EXPECT_EQ(fail("not_found")["error"]["code"], -32002);
  EXPECT_EQ(fail("overloaded")["error"]["code"], -32003);
  EXPECT_EQ(fail("io")["error"]["code"], -32603);
  json thrown = fail("throw");
  EXPECT_EQ(thrown["error"]["code"], -32603);
  EXPECT_EQ(thrown["id"], "f");
}

TEST_F(DispatchTest, BatchIsAnsweredInOneArrayWithoutNotifications) {
  json r = Handle(R"([
    {"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"value":1}},
    {"jsonrpc":"2.0","method":"test.count"},
    {"jsonrpc":"2.0","id":"b","method":"no.such"},
    1,
    {"jsonrpc":"2.0","id":3,"method":"test.fail","params":{"code":"not_found"}}
  ])");
  ASSERT_TRUE(r.is_array());
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0]["id"], 1);
  EXPECT_EQ(r[0]["result"]["value"], 1);
  EXPECT_EQ(r[1]["id"], "b");
  EXPECT_EQ(r[1]["error"]["code"], -32601);
  EXPECT_TRUE(r[2]["id"].is_null());
  EXPECT_EQ(r[2]["error"]["code"], -32600);
  EXPECT_EQ(r[2]["error"]["data"]["field"], "[3]");
  EXPECT_EQ(r[3]["id"], 3);
  EXPECT_EQ(r[3]["error"]["code"], -32002);
  EXPECT_EQ(calls_, 1);
}

TEST_F(DispatchTest, BatchOfNotificationsOnlyGetsNoResponse) {
  EXPECT_EQ(Handle(R"([{"jsonrpc":"2.0","method":"test.count"},{"jsonrpc":"2.0","method":"test.count"}])"),
            "<no response>");
  EXPECT_EQ(calls_, 2);
}

TEST_F(DispatchTest, EmptyBatchIsOneInvalidRequest) {
  json r = Handle("[]");
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["error"]["code"], -32600);
  EXPECT_TRUE(r["id"].is_null());
}

TEST_F(DispatchTest, DeepNestingIsRefusedWithoutParsing) {
  std::string deep = R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"value":)";
  deep += std::string(100000, '[') + std::string(100000, ']') + "}}";
  EXPECT_EQ(Handle(deep)["error"]["code"], -32600);
  // Brackets inside strings do not count.
  std::string shallow = R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"value":")" +
                        std::string(500, '[') + "\"}}";
  EXPECT_TRUE(Handle(shallow).contains("result"));
}

TEST_F(DispatchTest, RejectFrameAnswersEveryRequestWithoutRunningIt) {
  CallContext ctx;
  RpcError busy{kOverloaded, "Overloaded", "", "queue full"};
  auto out = d_.RejectFrame(
      R"([{"jsonrpc":"2.0","id":1,"method":"test.count"},{"jsonrpc":"2.0","method":"test.count"},{"jsonrpc":"2.0","id":2,"method":"no.such"}])",
      busy, ctx);
  ASSERT_TRUE(out);
  json r = json::parse(*out);
  ASSERT_EQ(r.size(), 2u);  // the notification gets nothing
  EXPECT_EQ(r[0]["id"], 1);
  EXPECT_EQ(r[0]["error"]["code"], -32003);
  EXPECT_EQ(r[1]["id"], 2);
  EXPECT_EQ(r[1]["error"]["code"], -32003);  // the frame is not read: no method lookup either
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(metrics_.OutcomesByMethod()["unknown"]["overloaded"], 1u);
}

TEST_F(DispatchTest, AHandlerThatThrowsAnythingIsAnsweredAndTheCallerGoesOn) {
  d_.Add({"test.throw_int", Role::kCrm,
          [](const json&, const CallContext&) -> Result<json> { throw 42; }});
  json r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.throw_int"})");
  EXPECT_EQ(r["error"]["code"], -32603) << r;
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","id":2,"method":"test.echo"})")["id"], 2);
}

TEST_F(DispatchTest, ANumberBeyondADoubleIsAParseErrorNotACrash) {
  json r = Handle(R"({"jsonrpc":"2.0","id":1e999,"method":"test.echo"})");
  EXPECT_EQ(r["error"]["code"], -32700) << r;
  EXPECT_TRUE(r["id"].is_null());
  r = Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"value":-1e400}})");
  EXPECT_EQ(r["error"]["code"], -32700) << r;
}

TEST_F(DispatchTest, ABatchOverTheLimitIsOneInvalidRequest) {
  std::string batch = "[";
  for (size_t i = 0; i <= kMaxBatch; ++i) {
    batch += (i ? "," : "") + std::string(R"({"jsonrpc":"2.0","id":)") + std::to_string(i) + R"(,"method":"test.count"})";
  }
  batch += "]";
  json r = Handle(batch);
  ASSERT_TRUE(r.is_object()) << r;
  EXPECT_EQ(r["error"]["code"], -32600);
  EXPECT_NE(r["error"]["message"].get<std::string>().find("at most 100"), std::string::npos) << r;
  EXPECT_EQ(calls_, 0);
}

TEST_F(DispatchTest, AResponseOverTheLimitBecomesAnErrorForItsId) {
  d_.set_max_response_bytes(200);
  json r = Handle(R"({"jsonrpc":"2.0","id":"big","method":"test.echo","params":{"value":")" +
                  std::string(300, 'x') + R"("}})");
  EXPECT_EQ(r["id"], "big");
  EXPECT_EQ(r["error"]["code"], -32603) << r;
  EXPECT_NE(r["error"]["message"].get<std::string>().find("max_response_bytes"), std::string::npos);
  EXPECT_EQ(Handle(R"({"jsonrpc":"2.0","id":3,"method":"test.echo","params":{"value":1}})")["result"]["value"], 1);
}

TEST_F(DispatchTest, AHandlerMayAnswerLaterOnlyWhenAlone) {
  d_.Add({"test.later", Role::kCrm, [](const json&, const CallContext& ctx) -> Result<json> {
            if (!ctx.can_defer) return json("inline");
            ctx.notify(MakeResult(ctx.id, json("later")));
            return Deferred();
          }});
  std::vector<json> sent;
  CallContext ctx;
  ctx.notify = [&](const json& frame) { sent.push_back(frame); };
  EXPECT_FALSE(d_.HandleFrame(R"({"jsonrpc":"2.0","id":9,"method":"test.later"})", ctx));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["id"], 9);
  EXPECT_EQ(sent[0]["result"], "later");
  auto batch = d_.HandleFrame(R"([{"jsonrpc":"2.0","id":1,"method":"test.later"}])", ctx);
  ASSERT_TRUE(batch);
  EXPECT_EQ(json::parse(*batch)[0]["result"], "inline");
}

TEST_F(DispatchTest, MetricsCountEachRequestByMethodAndOutcome) {
  Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo"})");
  Handle(R"({"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"x":1}})");
  Handle(R"({"jsonrpc":"2.0","id":1,"method":"no.such"})");
  Handle("{");
  auto by = metrics_.OutcomesByMethod();
  EXPECT_EQ(by["test.echo"]["ok"], 1u);
  EXPECT_EQ(by["test.echo"]["invalid_params"], 1u);
  EXPECT_EQ(by["unknown"]["method_not_found"], 1u);
  EXPECT_EQ(by["unknown"]["parse_error"], 1u);
}

TEST(ParamReader, NamesNestedPathsAndUnknownFields) {
  json p = json::parse(R"({"ids":["a",""],"k":5})");
  ParamReader r(p, "lead");
  r.Strings("ids", true);
  Status s = r.Finish();
  EXPECT_EQ(s.field(), "lead.ids[1]");

  ParamReader r2(p);
  r2.Strings("ids", false);
  EXPECT_FALSE(r2.Finish().ok());

  json q = json::parse(R"({"k":5,"z":true})");
  ParamReader r3(q);
  EXPECT_EQ(r3.Int("k", 1, 1, 100), 5);
  Status s3 = r3.Finish();
  EXPECT_EQ(s3.field(), "z");
  EXPECT_EQ(s3.message(), "unknown field");
}

TEST(ParamReader, ChecksTypesAndRanges) {
  json p = json::parse(R"({"k":101,"b":"yes","s":3,"f":2.5,"big":18446744073709551615})");
  {
    ParamReader r(p);
    r.Int("k", 5, 1, 100);
    EXPECT_EQ(r.Finish().field(), "k");
  }
  {
    ParamReader r(p);
    r.Bool("b", false);
    EXPECT_EQ(r.Finish().field(), "b");
  }
  {
    ParamReader r(p);
    r.OptString("s");
    EXPECT_EQ(r.Finish().field(), "s");
  }
  {
    ParamReader r(p);
    r.OptInt("f", 0, 10);
    EXPECT_EQ(r.Finish().field(), "f");
  }
  {
    ParamReader r(p);
    r.OptInt("big", 0, 10);
    EXPECT_EQ(r.Finish().field(), "big");
  }
  {
    ParamReader r(p);
    EXPECT_EQ(r.String("missing"), "");
    EXPECT_EQ(r.Finish().field(), "missing");
  }
  ParamReader not_object(json::array(), "");
  EXPECT_EQ(not_object.Finish().field(), "params");
}

}  // namespace
}  // namespace playbook::server

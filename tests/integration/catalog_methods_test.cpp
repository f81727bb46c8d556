// assets.* and index.* over the real protocol against the real daemon:
// validation, roles, paging, search filters, restart with the saved index,
// rebuild under concurrent searches.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

json Asset(const std::string& id, const std::string& title, std::vector<std::string> stages,
           const std::string& type = "objection_script", const std::string& language = "zh") {
  return {{"id", id}, {"title", title}, {"type", type}, {"stages", stages}, {"language", language}};
}

json SampleAssets() {
  return json::array({
      Asset("zh-price-01", "太贵了：一分钱一分货的价值说明", {"evaluation", "negotiation"}),
      Asset("zh-budget-01", "没有预算时如何分期与试点", {"evaluation"}),
      Asset("en-roi-01", "ROI calculator: payback in 6 months", {"consideration", "evaluation"}, "roi_calculator", "en"),
      Asset("en-case-01", "Retail case study: 30% more qualified leads", {"interest", "consideration"}, "case_study", "en"),
      Asset("en-vs-01", "Competitor comparison: us vs. the cheaper vendor", {"evaluation"}, "competitor_comparison", "en"),
  });
}

class CatalogMethods : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(d_.Start()) << d_.log();
    c_ = std::make_unique<TestClient>(d_.ws_url());
    ASSERT_TRUE(c_->connected());
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << d_.log() << "\n";
  }
  json Ok(const std::string& method, const json& params) {
    json r = c_->Call(method, params, 30s);
    EXPECT_TRUE(r.contains("result")) << method << ": " << r;
    return r.contains("result") ? r["result"] : json();
  }
  Daemon d_;
  std::unique_ptr<TestClient> c_;
};

TEST_F(CatalogMethods, UpsertGetDeleteRoundTrip) {
  json r = Ok("assets.upsert", {{"assets", SampleAssets()}});
  EXPECT_EQ(r["upserted"], 5);
  EXPECT_EQ(r["created"], 5);
  EXPECT_EQ(r["updated"], 0);
  json again = Ok("assets.upsert", {{"assets", SampleAssets()}});
  EXPECT_EQ(again["created"], 0);
  EXPECT_EQ(again["updated"], 5);

  json got = Ok("assets.get", {{"ids", {"en-roi-01", "nope", "zh-price-01"}}});
  ASSERT_EQ(got["assets"].size(), 2u);
  EXPECT_EQ(got["assets"][0]["id"], "en-roi-01");
  EXPECT_EQ(got["assets"][0]["type"], "roi_calculator");
  EXPECT_EQ(got["assets"][1]["title"], "太贵了：一分钱一分货的价值说明");
  EXPECT_EQ(got["missing"], json::array({"nope"}));

  EXPECT_EQ(Ok("assets.delete", {{"ids", {"en-roi-01", "nope"}}})["deleted"], 1);
  EXPECT_EQ(Ok("assets.get", {{"ids", {"en-roi-01"}}})["missing"], json::array({"en-roi-01"}));
  EXPECT_EQ(Ok("index.status", json::object())["assets"], 4);
}

TEST_F(CatalogMethods, InvalidAssetNamesTheFieldAndWritesNothing) {
  json assets = SampleAssets();
  assets[2]["stages"] = {"consideration", "closing"};
  json r = c_->Call("assets.upsert", {{"assets", assets}});
  EXPECT_EQ(ErrorCode(r), -32602);
  EXPECT_EQ(ErrorField(r), "assets[2].stages[1]");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("awareness, interest, consideration, evaluation, negotiation"),
            std::string::npos);
  EXPECT_EQ(Ok("assets.get", {{"ids", {"zh-price-01"}}})["missing"].size(), 1u);

  assets = SampleAssets();
  assets[1]["colour"] = "red";
  EXPECT_EQ(ErrorField(c_->Call("assets.upsert", {{"assets", assets}})), "assets[1].colour");
  assets = SampleAssets();
  assets[3]["stages"] = "interest";
  EXPECT_EQ(ErrorField(c_->Call("assets.upsert", {{"assets", assets}})), "assets[3].stages");
  assets = SampleAssets();
  assets[0]["vector"] = {1, 2, 3};
  EXPECT_EQ(ErrorField(c_->Call("assets.upsert", {{"assets", assets}})), "assets[0].vector");
  assets = SampleAssets();
  assets[4].erase("title");
  EXPECT_EQ(ErrorField(c_->Call("assets.upsert", {{"assets", assets}})), "assets[4].title");
  EXPECT_EQ(ErrorField(c_->Call("assets.upsert", json::object())), "assets");
  EXPECT_EQ(ErrorField(c_->Call("assets.get", {{"ids", "x"}})), "ids");
  EXPECT_EQ(ErrorField(c_->Call("assets.list", {{"limit", 1001}})), "limit");
  EXPECT_EQ(ErrorField(c_->Call("assets.list", {{"stage", "closing"}})), "stage");
  EXPECT_EQ(Ok("index.status", json::object())["assets"], 0);
}

TEST_F(CatalogMethods, ListPagingVisitsEveryAssetOnce) {
  json assets = json::array();
  for (int i = 0; i < 250; ++i) {
    assets.push_back(Asset("list-" + std::to_string(1000 + i), "asset " + std::to_string(i),
                           {i % 2 ? "interest" : "evaluation"}, i % 3 ? "case_study" : "video", "en"));
  }
  ASSERT_EQ(Ok("assets.upsert", {{"assets", assets}})["upserted"], 250);
  std::set<std::string> seen;
  json params = {{"limit", 33}};
  int pages = 0;
  while (true) {
    json page = Ok("assets.list", params);
    for (const auto& a : page["assets"]) EXPECT_TRUE(seen.insert(a["id"].get<std::string>()).second);
    ++pages;
    if (page["next_cursor"].is_null()) break;
    params["cursor"] = page["next_cursor"];
    ASSERT_LT(pages, 100);
  }
  EXPECT_EQ(seen.size(), 250u);
  EXPECT_EQ(pages, 8);
  json videos = Ok("assets.list", {{"type", "video"}, {"stage", "interest"}, {"limit", 1000}});
  for (const auto& a : videos["assets"]) {
    EXPECT_EQ(a["type"], "video");
    EXPECT_NE(std::find(a["stages"].begin(), a["stages"].end(), "interest"), a["stages"].end());
  }
  EXPECT_EQ(videos["assets"].size(), 42u);  // odd i divisible by 3 in 0..249
}

TEST_F(CatalogMethods, SearchNeverReturnsAnotherStageOrFilteredOutAsset) {
  Ok("assets.upsert", {{"assets", SampleAssets()}});
  json hits = Ok("assets.search", {{"stage", "evaluation"}, {"query", "太贵了"}, {"k", 10}});
  std::set<std::string> ids;
  for (const auto& h : hits["items"]) ids.insert(h["asset_id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"zh-price-01", "zh-budget-01", "en-roi-01", "en-vs-01"}));
  EXPECT_EQ(hits["items"][0]["asset_id"], "zh-price-01");
  json en = Ok("assets.search", {{"stage", "evaluation"}, {"query", "price"}, {"filter", {{"language", "en"}, {"types", {"roi_calculator"}}}}});
  ASSERT_EQ(en["items"].size(), 1u);
  EXPECT_EQ(en["items"][0]["asset_id"], "en-roi-01");
  json none = Ok("assets.search", {{"stage", "awareness"}, {"query", "太贵了"}});
  EXPECT_TRUE(none["items"].empty());
  EXPECT_EQ(ErrorField(c_->Call("assets.search", {{"stage", "closing"}, {"query", "x"}})), "stage");
  EXPECT_EQ(ErrorField(c_->Call("assets.search", {{"stage", "evaluation"}})), "query");
}

// assets.search answers from the index's display records, not the catalog:
// they must be what the last upsert said, exactly the fields assets.get shows,
// at once after an upsert that changes them and after a delete.
TEST_F(CatalogMethods, SearchItemsCarryTheUpsertedDisplayFields) {
  json assets = SampleAssets();
  for (auto& a : assets) a["url"] = "https://cdn.example.com/" + a["id"].get<std::string>();
  assets[2]["variant_of"] = "zh-price-01";
  Ok("assets.upsert", {{"assets", assets}});
  auto expect_as_stored = [&](const json& result, size_t count) {
    ASSERT_EQ(result["items"].size(), count) << result;
    std::vector<std::string> ids;
    for (const auto& h : result["items"]) ids.push_back(h["asset_id"].get<std::string>());
    json got = Ok("assets.get", {{"ids", ids}});
    ASSERT_EQ(got["assets"].size(), count) << got;
    for (size_t i = 0; i < count; ++i) {
      const json& item = result["items"][i];
      const json& a = got["assets"][i];
      EXPECT_EQ(item.size(), 6u) << item;  // asset_id, score, title, type, url, variant_of
      EXPECT_EQ(item["title"], a["title"]) << item;
      EXPECT_EQ(item["type"], a["type"]) << item;
      EXPECT_EQ(item["url"], a["url"]) << item;
      EXPECT_EQ(item["variant_of"], a["variant_of"]) << item;
      EXPECT_TRUE(item["score"].is_number_float()) << item;
    }
  };
  const json search = {{"stage", "evaluation"}, {"query", "太贵了"}, {"k", 10}};
  json first = Ok("assets.search", search);
  expect_as_stored(first, 4);
  bool saw_variant = false;
  for (const auto& h : first["items"]) {
    if (h["asset_id"] == "en-roi-01") {
      saw_variant = true;
      EXPECT_EQ(h["variant_of"], "zh-price-01");
      EXPECT_EQ(h["url"], "https://cdn.example.com/en-roi-01");
      EXPECT_EQ(h["type"], "roi_calculator");
    } else {
      EXPECT_TRUE(h["variant_of"].is_null()) << h;
    }
  }
  EXPECT_TRUE(saw_variant);

  // A new title, type, url and no variant_of any more: the next search shows them.
  json changed = Asset("en-roi-01", "ROI calculator, second edition", {"consideration", "evaluation"},
                       "case_study", "en");
  changed["url"] = "https://cdn.example.com/roi-v2";
  Ok("assets.upsert", {{"assets", {changed}}});
  json second = Ok("assets.search", search);
  expect_as_stored(second, 4);
  for (const auto& h : second["items"]) {
    if (h["asset_id"] == "en-roi-01") {
      EXPECT_EQ(h["title"], "ROI calculator, second edition");
      EXPECT_EQ(h["type"], "case_study");
      EXPECT_EQ(h["url"], "https://cdn.example.com/roi-v2");
      EXPECT_TRUE(h["variant_of"].is_null()) << h;
    }
  }

  // A deleted asset is gone from the items; the others keep their fields.
  EXPECT_EQ(Ok("assets.delete", {{"ids", {"zh-price-01"}}})["deleted"], 1);
  json third = Ok("assets.search", search);
  expect_as_stored(third, 3);
  for (const auto& h : third["items"]) EXPECT_NE(h["asset_id"], "zh-price-01");
}

TEST(CatalogRoles, CrmMayGetButNotWriteMarketingMayWriteButNotRebuild) {
  Daemon d(WithConfig(
      "[[auth.tokens]]\nrole = \"crm\"\ntoken = \"crm-token-aaaaaaaaaaaaaaaa\"\n"
      "[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"mkt-token-bbbbbbbbbbbbbbbb\"\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient crm(d.ws_url(), "crm-token-aaaaaaaaaaaaaaaa");
  TestClient mkt(d.ws_url(), "mkt-token-bbbbbbbbbbbbbbbb");
  EXPECT_EQ(ErrorCode(crm.Call("assets.upsert", {{"assets", SampleAssets()}})), -32001);
  EXPECT_TRUE(mkt.Call("assets.upsert", {{"assets", SampleAssets()}}).contains("result"));
  EXPECT_TRUE(crm.Call("assets.get", {{"ids", {"zh-price-01"}}}).contains("result"));
  EXPECT_EQ(ErrorCode(crm.Call("assets.list")), -32001);
  EXPECT_EQ(ErrorCode(crm.Call("assets.delete", {{"ids", {"zh-price-01"}}})), -32001);
  EXPECT_TRUE(mkt.Call("assets.list").contains("result"));
  EXPECT_EQ(ErrorCode(mkt.Call("index.status")), -32001);
  EXPECT_EQ(ErrorCode(mkt.Call("index.rebuild")), -32001);
}

TEST(CatalogRestart, SavedIndexIsLoadedAndServesTheSameResults) {
  TempDir data;
  json before;
  {
    Daemon d(WithDataDir(data.path()));
    ASSERT_TRUE(d.Start()) << d.log();
    TestClient c(d.ws_url());
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", SampleAssets()}}).contains("result"));
    before = c.Call("assets.search", {{"stage", "evaluation"}, {"query", "没有预算"}})["result"];
    ASSERT_EQ(d.Stop(), 0);
  }
  Daemon d(WithDataDir(data.path()));
  ASSERT_TRUE(d.Start()) << d.log();
  EXPECT_NE(d.log().find("index loaded"), std::string::npos) << d.log();
  TestClient c(d.ws_url());
  EXPECT_EQ(c.Call("assets.search", {{"stage", "evaluation"}, {"query", "没有预算"}})["result"], before);
  EXPECT_EQ(c.Call("index.status")["result"]["assets"], 5);
}

TEST(CatalogRestart, KilledDaemonRebuildsTheIndexFromTheCatalog) {
  TempDir data;
  {
    Daemon d(WithDataDir(data.path()));
    ASSERT_TRUE(d.Start()) << d.log();
    TestClient c(d.ws_url());
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", SampleAssets()}}).contains("result"));
    d.Kill();  // SIGKILL: no index saved, but every acknowledged asset is in RocksDB
  }
  Daemon d(WithDataDir(data.path()));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  EXPECT_EQ(c.Call("index.status")["result"]["assets"], 5);
  EXPECT_EQ(c.Call("assets.search", {{"stage", "evaluation"}, {"query", "太贵了"}})["result"]["items"][0]["asset_id"],
            "zh-price-01");
}

TEST(CatalogRebuild, RebuildUnderConcurrentSearchesHasZeroErrors) {
  Daemon d(WithConfig("[index]\nkind = \"hnsw\"\nhnsw_ef_construction = 120\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient admin(d.ws_url());
  // Enough assets that a rebuild takes a while.
  for (int batch = 0; batch < 4; ++batch) {
    json assets = json::array();
    for (int i = 0; i < 2000; ++i) {
      const int n = batch * 2000 + i;
      assets.push_back(Asset("gen-" + std::to_string(n), "objection " + std::to_string(n % 37) + " 太贵了 budget " + std::to_string(n % 11),
                             {n % 2 ? "evaluation" : "negotiation"}));
    }
    ASSERT_TRUE(admin.Call("assets.upsert", {{"assets", assets}}, 60s).contains("result"));
  }
  for (int i = 0; i < 600 && admin.Call("index.status")["result"]["rebuilding"] == true; ++i) std::this_thread::sleep_for(50ms);

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, searches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      TestClient c(d.ws_url());
      while (!stop) {
        json r = c.Call("assets.search", {{"stage", "evaluation"}, {"query", "太贵了 budget 3"}, {"k", 10}});
        if (!r.contains("result") || r["result"]["items"].size() != 10) errors++;
        for (const auto& item : r["result"]["items"]) {
          const int n = std::stoi(item["asset_id"].get<std::string>().substr(4));
          if (n % 2 != 1) errors++;  // another stage leaked
        }
        searches++;
      }
    });
  }
  json job = admin.Call("index.rebuild");
  ASSERT_TRUE(job.contains("result")) << job;
  const std::string job_id = job["result"]["job_id"];
  EXPECT_EQ(admin.Call("index.status")["result"]["rebuilding"], true);
  // Writes during the rebuild are kept.
  ASSERT_TRUE(admin.Call("assets.upsert", {{"assets", {Asset("during-1", "written during the rebuild", {"evaluation"})}}}).contains("result"));
  for (int i = 0; i < 1200 && admin.Call("index.status")["result"]["rebuilding"] == true; ++i) std::this_thread::sleep_for(50ms);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0) << "over " << searches.load() << " searches";
  EXPECT_GT(searches.load(), 10);
  bool saw_end = false;
  for (const auto& n : admin.notifications()) {
    EXPECT_EQ(n["method"], "index.progress");
    EXPECT_EQ(n["params"]["job_id"], job_id);
    if (n["params"]["done"] == n["params"]["total"]) saw_end = true;
  }
  EXPECT_TRUE(saw_end) << "no final index.progress among " << admin.notifications().size();
  json status = admin.Call("index.status")["result"];
  EXPECT_EQ(status["assets"], 8001);
  EXPECT_NE(status["index"].get<std::string>().find("hnsw"), std::string::npos) << status;
  EXPECT_EQ(admin.Call("assets.search", {{"stage", "evaluation"}, {"query", "written during the rebuild"}, {"k", 1}})["result"]["items"][0]["asset_id"],
            "during-1");
}

// Translations (variant_of, docs/protocol.md "Content items"): stored and
// returned, one variant per content item in recommend (the rep's language's),
// the reports' roll-up, and bad links refused with the field named and nothing
// written.
TEST_F(CatalogMethods, VariantsFormOneContentItemReportsRollUpBadLinksRefused) {
  auto Asset = [](const std::string& id, const std::string& title, const std::string& body, const std::string& language) {
    json a = playbook::testing::Asset(id, title, {"evaluation"}, "objection_script", language);
    a["body"] = body;
    return a;
  };
  auto Recommended = [&](const std::string& lead, const std::string& language) {
    json r = Ok("recommend", {{"lead", {{"id", lead}, {"stage", "evaluation"}, {"context", "客户说太贵了 price too expensive"},
                                        {"language", language}}},
                              {"k", 5}});
    std::set<std::string> ids;
    for (const json& item : r["items"]) ids.insert(item["asset_id"].get<std::string>());
    return ids;
  };
  // The error of an upsert expected to fail, and that `probe` was not written.
  auto Refused = [&](const json& assets, const std::string& probe) {
    json r = c_->Call("assets.upsert", {{"assets", assets}}, 30s);
    EXPECT_EQ(ErrorCode(r), -32602) << r;
    EXPECT_EQ(Ok("assets.get", {{"ids", {probe}}})["missing"], json::array({probe}));
    return r;
  };
  json en = Asset("en-price", "\"Too expensive\": break the price down", "price too expensive: compare, break down, average", "en");
  en["variant_of"] = "zh-price";
  ASSERT_EQ(Ok("assets.upsert", {{"assets", {Asset("zh-price", "客户说太贵了：拆散法与平均法", "太贵了 价格 拆散法 平均法", "zh"), en,
                                             Asset("en-budget", "No budget: build the business case", "budget", "en")}}})["created"],
            3);
  json got = Ok("assets.get", {{"ids", {"en-price", "zh-price"}}});
  EXPECT_EQ(got["assets"][0]["variant_of"], "zh-price");
  EXPECT_TRUE(got["assets"][1]["variant_of"].is_null());
  const json searched = Ok("assets.search", {{"stage", "evaluation"}, {"query", "太贵了"}});  // alive through the loop
  for (const json& hit : searched["items"]) {
    EXPECT_EQ(hit["variant_of"], hit["asset_id"] == "en-price" ? json("zh-price") : json()) << hit;
  }

  // recommend: one of the two, in the rep's language.
  const std::set<std::string> zh = Recommended("lead-zh", "zh"), en_items = Recommended("lead-en", "en");
  EXPECT_TRUE(zh.count("zh-price") && !zh.count("en-price")) << ::testing::PrintToString(zh);
  EXPECT_TRUE(en_items.count("en-price") && !en_items.count("zh-price")) << ::testing::PrintToString(en_items);

  // Reports: by asset, then by content item.
  Ok("feedback.record", {{"events", {{{"event_id", "u1"}, {"type", "used"}, {"lead_id", "lead-zh"}, {"asset_id", "zh-price"}},
                                     {{"event_id", "u2"}, {"type", "used"}, {"lead_id", "lead-en"}, {"asset_id", "en-price"}}}}});
  json by_asset = Ok("reports.assets", json::object());
  EXPECT_EQ(by_asset["rows"][0]["used"], 1);
  EXPECT_FALSE(by_asset["rows"][0].contains("variants"));
  json by_content = Ok("reports.assets", {{"by", "content"}});
  ASSERT_GE(by_content["rows"].size(), 1u);
  const json& item = by_content["rows"][0];
  EXPECT_EQ(item["asset_id"], "zh-price");
  EXPECT_EQ(item["title"], "客户说太贵了：拆散法与平均法");
  EXPECT_EQ(item["used"], 2);
  EXPECT_EQ(item["shown"], 2);  // one showing for each lead
  EXPECT_EQ(item["variants"], json::parse(R"([{"asset_id":"en-price","language":"en"},{"asset_id":"zh-price","language":"zh"}])"));
  EXPECT_EQ(by_content["totals"]["used"], by_asset["totals"]["used"]);
  EXPECT_EQ(by_content["totals"]["content_items"], by_content["rows"].size());
  EXPECT_EQ(ErrorField(c_->Call("reports.assets", {{"by", "language"}})), "by");

  // Bad links: the field named, nothing of the call written.
  json fresh = Asset("x-new", "New asset", "", "en");
  json self = Asset("y-self", "Self", "", "en");
  self["variant_of"] = "y-self";
  EXPECT_EQ(ErrorField(Refused(json::array({fresh, self}), "x-new")), "assets[1].variant_of");
  json typed = fresh;
  typed["variant_of"] = 42;
  EXPECT_EQ(ErrorField(Refused(json::array({typed}), "x-new")), "assets[0].variant_of");
  typed["variant_of"] = "";
  EXPECT_EQ(ErrorField(Refused(json::array({typed}), "x-new")), "assets[0].variant_of");
  typed["variant_of"] = "not an id";
  EXPECT_EQ(ErrorField(Refused(json::array({typed}), "x-new")), "assets[0].variant_of");
  json cycle = Asset("zh-price", "客户说太贵了：拆散法与平均法", "太贵了", "zh");
  cycle["variant_of"] = "en-price";
  json r = Refused(json::array({fresh, cycle}), "x-new");
  EXPECT_EQ(ErrorField(r), "assets[1].variant_of");
  EXPECT_NE(r.dump().find("would make a cycle: zh-price -> en-price -> zh-price"), std::string::npos) << r;
  EXPECT_TRUE(Ok("assets.get", {{"ids", {"zh-price"}}})["assets"][0]["variant_of"].is_null());
  // A target that does not exist yet is accepted.
  fresh["variant_of"] = "later-asset";
  EXPECT_EQ(Ok("assets.upsert", {{"assets", json::array({fresh})}})["created"], 1);
}

}  // namespace
}  // namespace playbook::testing

// `playbook report` against the real daemon, seeded over the real protocol.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

constexpr const char* kAdmin = "report-admin-token-0123456789";

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// RFC 4180: fields separated by commas, records by CRLF (or LF), quoted
// fields with doubled quotes.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = any = true;
    } else if (c == ',') {
      record.push_back(field);
      field.clear();
      any = true;
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      record.push_back(field);
      records.push_back(record);
      record.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || !field.empty()) {
    record.push_back(field);
    records.push_back(record);
  }
  return records;
}

class CliReport : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = std::make_unique<Daemon>(WithConfig(std::string("[[auth.tokens]]\nrole = \"admin\"\ntoken = \"") + kAdmin +
                                             "\"\n[ranking]\nexplore = false\n"));
    ASSERT_TRUE(d_->Start()) << d_->log();
    TestClient c(d_->ws_url(), kAdmin);
    json assets = json::array({
        {{"id", "zh-price-01"}, {"title", "太贵了：一分钱一分货，价值拆解话术（适用于谈判阶段的长标题示例）"},
         {"type", "objection_script"}, {"stages", {"evaluation", "negotiation"}}, {"language", "zh"}},
        {{"id", "en-roi-01"}, {"title", "ROI calculator, \"payback\" in six months"}, {"type", "roi_calculator"},
         {"stages", {"evaluation"}}, {"language", "en"}},
    });
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", assets}}).contains("result"));
    json rec = c.Call("recommend", {{"lead", {{"id", "lead-1"}, {"stage", "evaluation"}, {"context", "太贵了"}}},
                                    {"k", 2}, {"rep_id", "rep-1"}});
    ASSERT_TRUE(rec.contains("result")) << rec;
    json events = json::array({
        {{"event_id", "e1"}, {"type", "used"}, {"lead_id", "lead-1"}, {"asset_id", "zh-price-01"}, {"rep_id", "rep-1"}},
        {{"event_id", "e2"}, {"type", "dismissed"}, {"lead_id", "lead-1"}, {"asset_id", "en-roi-01"},
         {"rep_id", "rep-1"}, {"reason", "too technical"}},
        {{"event_id", "e3"}, {"type", "won"}, {"lead_id", "lead-1"}, {"amount", 2500}},
    });
    json fb = c.Call("feedback.record", {{"events", events}});
    ASSERT_TRUE(fb.contains("result")) << fb;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "---- daemon log ----\n" << d_->log() << "\n";
  }
  CommandResult Report(std::vector<std::string> args) {
    args.insert(args.begin(), {Daemon::CliPath(), "report"});
    return RunCommand(args, {"PLAYBOOK_URL=" + d_->ws_url(), std::string("PLAYBOOK_TOKEN=") + kAdmin});
  }
  std::unique_ptr<Daemon> d_;
};

TEST_F(CliReport, TableShowsTheSeededAssetAndItsCounts) {
  CommandResult r = Report({"assets"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string& out = r.out;
  EXPECT_NE(out.find("asset_id"), std::string::npos) << out;
  EXPECT_NE(out.find("zh-price-01"), std::string::npos) << out;
  EXPECT_NE(out.find("太贵了"), std::string::npos) << out;
  EXPECT_NE(out.find("…"), std::string::npos) << out;  // the long title is truncated
  EXPECT_NE(out.find("100.0%"), std::string::npos) << out;  // usage and win rate of zh-price-01
  EXPECT_NE(out.find("2500"), std::string::npos) << out;
  EXPECT_NE(out.find("\ntotal"), std::string::npos) << out;
  // The zh-price-01 line: shown 1, used 1; en-roi-01 was dismissed, its win rate is "-".
  const auto line_of = [&](const std::string& id) {
    const auto at = out.find(id);
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_NE(line_of("zh-price-01").find("  1  "), std::string::npos) << out;
  EXPECT_NE(line_of("en-roi-01").find(" - "), std::string::npos) << out;
}

TEST_F(CliReport, CsvParsesBackWithQuotedTitles) {
  CommandResult r = Report({"assets", "--format", "csv", "--sort", "shown"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto records = ParseCsv(r.out);
  ASSERT_EQ(records.size(), 3u) << r.out;
  const auto& header = records[0];
  ASSERT_EQ(header.size(), 15u) << r.out;
  EXPECT_EQ(header[0], "asset_id");
  EXPECT_EQ(header[1], "title");
  bool found = false;
  for (std::size_t i = 1; i < records.size(); ++i) {
    ASSERT_EQ(records[i].size(), header.size()) << r.out;
    if (records[i][0] == "en-roi-01") {
      found = true;
      EXPECT_EQ(records[i][1], "ROI calculator, \"payback\" in six months");
      EXPECT_EQ(records[i][8], "1");  // dismissed
      EXPECT_EQ(records[i][11], "");  // win_rate null
    }
    if (records[i][0] == "zh-price-01") {
      EXPECT_EQ(records[i][4], "1");  // shown
      EXPECT_EQ(records[i][5], "1");  // used
    }
  }
  EXPECT_TRUE(found) << r.out;
}

TEST_F(CliReport, JsonIsTheResult) {
  CommandResult r = Report({"assets", "--format=json", "--from", "2000-01-01", "--limit", "10"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json printed = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(printed.is_discarded()) << r.out;
  TestClient c(d_->ws_url(), kAdmin);
  json direct = c.Call("reports.assets", {{"from", 946684800000}, {"limit", 10}});
  ASSERT_TRUE(direct.contains("result")) << direct;
  EXPECT_EQ(printed, direct["result"]);
}

TEST_F(CliReport, BadSortIsAnErrorNamingTheField) {
  CommandResult r = Report({"assets", "--sort", "colour"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("sort"), std::string::npos) << r.err;
}

TEST_F(CliReport, BadDatesAreUsageErrors) {
  EXPECT_EQ(Report({"assets", "--from", "yesterday"}).exit_code, 2);
  EXPECT_EQ(Report({"assets", "--from", "2024-13-01"}).exit_code, 2);
  EXPECT_EQ(Report({"assets", "--to", "2024-02-30"}).exit_code, 2);
  EXPECT_EQ(Report({"colours"}).exit_code, 2);
  // A window ending before the events holds nothing.
  CommandResult r = Report({"assets", "--to", "2001-01-01", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(json::parse(r.out)["rows"].empty()) << r.out;
}

TEST_F(CliReport, Dismissals) {
  CommandResult r = Report({"dismissals"});  // this daemon has reports.dismissals
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("too technical"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("en-roi-01"), std::string::npos) << r.out;
  CommandResult csv = Report({"dismissals", "--format", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << Describe(csv);
  auto records = ParseCsv(csv.out);
  ASSERT_GE(records.size(), 3u) << csv.out;
  EXPECT_EQ(records[0], (std::vector<std::string>{"asset_id", "title", "reason", "count"}));
}

}  // namespace
}  // namespace playbook::testing

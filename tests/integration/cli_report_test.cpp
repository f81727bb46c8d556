// `playbook report` against the real daemon, seeded over the real protocol.
#include <algorithm>
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

// The first line of `text` containing `needle` ("" when none).
std::string LineWith(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  if (at == std::string::npos) return "";
  const auto start = text.rfind('\n', at);
  const auto from = start == std::string::npos ? 0 : start + 1;
  return text.substr(from, text.find('\n', from) - from);
}

// The first line of `text` that starts with `prefix` ("" when none).
std::string LineStartingWith(const std::string& text, const std::string& prefix) {
  if (text.rfind(prefix, 0) == 0) return text.substr(0, text.find('\n'));
  return LineWith(text, "\n" + prefix);
}

// Words separated by spaces.
std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  std::string word;
  for (char c : line + " ") {
    if (c != ' ') {
      word += c;
    } else if (!word.empty()) {
      out.push_back(word);
      word.clear();
    }
  }
  return out;
}

// The last `n` words of a table line (titles may hold spaces; the numbers end the line).
std::vector<std::string> LastWords(const std::string& line, std::size_t n) {
  std::vector<std::string> w = Words(line);
  if (w.size() > n) w.erase(w.begin(), w.end() - static_cast<std::ptrdiff_t>(n));
  return w;
}

// Terminal columns: CJK ideographs and full-width forms count two.
std::size_t DisplayWidth(const std::string& s) {
  std::size_t w = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : 4;
    char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (std::size_t k = 1; k < len && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    i += len;
    const bool wide = (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
                      (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                      (cp >= 0xFFE0 && cp <= 0xFFE6);
    w += wide ? 2 : 1;
  }
  return w;
}

// The display column at which `needle` starts in `line`.
std::size_t ColumnOf(const std::string& line, const std::string& needle) {
  const auto at = line.find(needle);
  return at == std::string::npos ? std::string::npos : DisplayWidth(line.substr(0, at));
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

TEST_F(CliReport, ByContentRollsTranslationsUp) {
  TestClient c(d_->ws_url(), kAdmin);
  json en = {{"id", "en-price-01"}, {"title", "Too expensive: break the value down"}, {"type", "objection_script"},
             {"stages", {"evaluation"}}, {"language", "en"}, {"variant_of", "zh-price-01"}};
  ASSERT_TRUE(c.Call("assets.upsert", {{"assets", json::array({en})}}).contains("result"));
  json used = {{"event_id", "e9"}, {"type", "used"}, {"lead_id", "lead-2"}, {"asset_id", "en-price-01"}};
  ASSERT_TRUE(c.Call("feedback.record", {{"events", json::array({used})}}).contains("result"));
  CommandResult table = Report({"assets", "--by", "content"});
  ASSERT_EQ(table.exit_code, 0) << Describe(table);
  const auto at = table.out.find("zh-price-01 [en-price-01:en|zh-price-01:zh]");
  ASSERT_NE(at, std::string::npos) << table.out;
  EXPECT_NE(table.out.substr(at, table.out.find('\n', at) - at).find("  2  "), std::string::npos) << table.out;  // used
  CommandResult csv = Report({"assets", "--by", "content", "--format", "csv"});
  ASSERT_EQ(csv.exit_code, 0) << Describe(csv);
  auto records = ParseCsv(csv.out);
  ASSERT_EQ(records[0].size(), 16u) << csv.out;
  EXPECT_EQ(records[0].back(), "variants");
  EXPECT_EQ(records[1][0], "zh-price-01");
  EXPECT_EQ(records[1].back(), "en-price-01:en|zh-price-01:zh");
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

TEST_F(CliReport, OptionsOfOtherReportsAreUsageErrorsNamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"reps", "--stage", "evaluation"}, "reps takes no --stage"},
      {{"funnel", "--stage", "evaluation"}, "funnel takes no --stage"},
      {{"funnel", "--rep", "rep-1"}, "funnel takes no --rep"},
      {{"reps", "--type", "case_study"}, "reps takes no --type"},
      {{"reps", "--limit", "5"}, "reps takes no --limit"},
      {{"dismissals", "--rep", "rep-1"}, "dismissals takes no --rep"},
      {{"dismissals", "--min-shown", "3"}, "dismissals takes no --min-shown"},
      {{"unused", "--sort", "shown"}, "unused takes no --sort"},
      {{"unused", "--limit", "5"}, "unused takes no --limit"},
      {{"unused", "--rep", "rep-1"}, "unused takes no --rep"},
      {{"assets", "--max-usage-rate", "0.1"}, "assets takes no --max-usage-rate"},
      {{"assets", "--min-shown=3"}, "assets takes no --min-shown"},
      {{"funnel", "--max-usage-rate", "0.1"}, "funnel takes no --max-usage-rate"},
      {{"unused", "--max-usage-rate", "1.5"}, "--max-usage-rate must be"},
      {{"unused", "--max-usage-rate", "101%"}, "--max-usage-rate must be"},
      {{"unused", "--max-usage-rate", "abc"}, "--max-usage-rate must be"},
      {{"unused", "--min-shown", "0"}, "--min-shown must be"},
      {{"funnel", "--format", "xml"}, "--format must be"},
      {{"reps", "--from", "2024-02-30"}, "--from '2024-02-30'"},
      {{"experiment", "--stage", "evaluation"}, "experiment takes no --stage"},
      {{"experiment", "--by", "asset"}, "--by must be stage or rep"},
      {{"assets", "--by", "rep"}, "assets --by must be asset or content"},
      {{"dismissals", "--by", "content"}, "dismissals takes no --by"},
      {{"phrases", "--from", "2024-01-01"}, "phrases takes no --from"},
      {{"phrases", "--stage", "evaluation"}, "phrases takes no --stage (it takes --asset, --limit, --format)"},
      {{"phrases", "--limit", "1001"}, "--limit must be an integer in 1..1000"},
      {{"assets", "--asset", "a1"}, "assets takes no --asset"},
      {{}, "assets, unused, dismissals, phrases, reps, funnel or experiment"},
      {{"repz"}, "unknown report 'repz'"},
      {{"reps", "funnel"}, "expected one report"},
  };
  for (const Case& c : cases) {
    // A daemon that does not exist: a usage error must come before any connection (else exit 3).
    std::vector<std::string> args = c.args;
    args.push_back("--url=ws://127.0.0.1:9/v1");
    CommandResult r = Report(args);
    EXPECT_EQ(r.exit_code, 2) << c.says << "\n" << Describe(r);
    EXPECT_NE(r.err.find(c.says), std::string::npos) << Describe(r);
    EXPECT_TRUE(r.out.empty()) << Describe(r);
  }
  CommandResult funnel = Report({"funnel", "--stage", "evaluation"});
  EXPECT_NE(funnel.err.find("reports.funnel has no stage filter: the funnel shows every stage"), std::string::npos)
      << Describe(funnel);
  CommandResult help = Report({"--help"});
  ASSERT_EQ(help.exit_code, 0) << Describe(help);
  for (const char* word : {"unused", "reps", "funnel", "--min-shown", "--max-usage-rate"}) {
    EXPECT_NE(help.out.find(word), std::string::npos) << word << "\n" << help.out;
  }
}

// The org's own words over the real socket: reps use the price script after a
// phrase the lexicon does not know; reports.phrases lists it, recommend learns it.
TEST(CliReportPhrases, ThePhrasesRepsUseBeforeAnAsset) {
  Daemon d(WithConfig(""));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  json assets = json::array({
      {{"id", "zh-price-01"}, {"title", "客户说“太贵了”：比较法、拆散法与平均法"}, {"type", "objection_script"},
       {"stages", {"evaluation"}}, {"language", "zh"}},
      {{"id", "zh-case-01"}, {"title", "案例：一家物流公司三个月收回成本"}, {"type", "case_study"},
       {"stages", {"evaluation"}}, {"language", "zh"}},
  });
  ASSERT_TRUE(c.Call("assets.upsert", {{"assets", assets}}).contains("result"));
  const std::string context = "客户想走绿色通道";  // the team's jargon: no lexicon phrase
  for (int i = 0; i < 3; ++i) {
    const std::string lead = std::string("lead-").append(std::to_string(i));
    json rec = c.Call("recommend", {{"lead", {{"id", lead}, {"stage", "evaluation"}, {"context", context}}}, {"k", 2}});
    ASSERT_TRUE(rec.contains("result")) << rec;
    json used = json::array({{{"event_id", lead + "-u"}, {"type", "used"}, {"lead_id", lead},
                              {"asset_id", "zh-price-01"}}});
    ASSERT_TRUE(c.Call("feedback.record", {{"events", used}}).contains("result"));
  }
  json report = c.Call("reports.phrases", json::object());
  ASSERT_TRUE(report.contains("result")) << report;
  const json& r = report["result"];
  EXPECT_EQ(r["min_support"], 3);
  EXPECT_EQ(r["half_life_days"], 90.0);
  ASSERT_EQ(r["assets"].size(), 1u) << r;
  const json& a = r["assets"][0];
  EXPECT_EQ(a["asset_id"], "zh-price-01");
  EXPECT_EQ(a["title"], "客户说“太贵了”：比较法、拆散法与平均法");
  std::vector<std::string> terms;
  for (const json& p : a["phrases"]) {
    terms.push_back(p["term"].get<std::string>());
    EXPECT_EQ(p["uses"], 3) << p;
    EXPECT_EQ(p["support"], 3.0) << p;
    EXPECT_EQ(p["learned"], true) << p;
  }
  for (const char* t : {"绿色", "色通", "通道"}) {
    EXPECT_NE(std::find(terms.begin(), terms.end(), t), terms.end()) << t << " in " << a;
  }
  EXPECT_EQ(a["uses"], 3 * terms.size());
  // recommend now says why.
  json rec = c.Call("recommend", {{"lead", {{"id", "lead-9"}, {"stage", "evaluation"}, {"context", context}}}, {"k", 1}});
  ASSERT_TRUE(rec.contains("result")) << rec;
  EXPECT_EQ(rec["result"]["items"][0]["asset_id"], "zh-price-01") << rec;
  const std::string reasons = rec["result"]["items"][0]["reasons"].dump();
  EXPECT_NE(reasons.find("your team used this after"), std::string::npos) << reasons;
  // One asset, a limit; a bad limit names the field.
  json one = c.Call("reports.phrases", {{"asset_id", "zh-case-01"}, {"limit", 1}});
  ASSERT_TRUE(one.contains("result")) << one;
  EXPECT_TRUE(one["result"]["assets"].empty());
  json limited = c.Call("reports.phrases", {{"asset_id", "zh-price-01"}, {"limit", 1}});
  ASSERT_EQ(limited["result"]["assets"][0]["phrases"].size(), 1u) << limited;
  json bad = c.Call("reports.phrases", {{"limit", 0}});
  ASSERT_TRUE(bad.contains("error")) << bad;
  EXPECT_EQ(bad["error"]["code"], -32602);
  EXPECT_EQ(bad["error"]["data"]["field"], "limit");
  // The CLI: a row per asset and term.
  CommandResult cli = RunCommand({Daemon::CliPath(), "report", "phrases"}, {"PLAYBOOK_URL=" + d.ws_url()});
  ASSERT_EQ(cli.exit_code, 0) << Describe(cli);
  EXPECT_NE(LineWith(cli.out, "绿色").find("zh-price-01"), std::string::npos) << cli.out;
  EXPECT_EQ(LastWords(LineWith(cli.out, "绿色"), 3), (std::vector<std::string>{"3", "3", "yes"})) << cli.out;
  CommandResult csv = RunCommand({Daemon::CliPath(), "report", "phrases", "--format", "csv", "--limit", "2"},
                                 {"PLAYBOOK_URL=" + d.ws_url()});
  ASSERT_EQ(csv.exit_code, 0) << Describe(csv);
  auto records = ParseCsv(csv.out);
  ASSERT_EQ(records.size(), 3u) << csv.out;
  EXPECT_EQ(records[0], (std::vector<std::string>{"asset_id", "title", "term", "uses", "support", "learned"}));
}

TEST_F(CliReport, ExperimentSaysWhenTheHoldoutIsOff) {
  // lead-1 was recommended with the holdout off: out of the experiment.
  CommandResult r = Report({"experiment"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("holdout fraction 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no lead was assigned to the experiment"), std::string::npos) << r.out;
  CommandResult j = Report({"experiment", "--format", "json", "--by", "rep"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  const json x = json::parse(j.out);
  EXPECT_EQ(x.at("holdout_fraction"), 0.0);
  EXPECT_EQ(x.at("arms").at("treatment").at("leads"), 0);
  EXPECT_EQ(x.at("conclusive"), false);
  EXPECT_EQ(x.at("by"), "rep");
  EXPECT_TRUE(x.at("groups").empty()) << x;
}

// The holdout at a half; the salt puts dash-lead-1 in the treatment and
// dash-lead-2 in the holdout (docs/experiment.md's hash: 0.54 and 0.06).
TEST(CliReportExperiment, TableCsvAndJsonOfBothArms) {
  Daemon d(WithConfig("[experiment]\nholdout_fraction = 0.5\nsalt = \"dash-2\"\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  ASSERT_TRUE(c.Call("assets.upsert", {{"assets", {{{"id", "a1"}, {"title", "ROI calculator"}, {"type", "roi_calculator"},
                                                     {"stages", {"evaluation"}}}}}})
                  .contains("result"));
  for (const char* lead : {"dash-lead-1", "dash-lead-2"}) {
    json rec = c.Call("recommend", {{"lead", {{"id", lead}, {"stage", "evaluation"}}}, {"rep_id", "rep-1"}});
    ASSERT_TRUE(rec.contains("result")) << rec;
    EXPECT_FALSE(rec["result"].contains("arm")) << rec;
  }
  json fb = c.Call("feedback.record", {{"events", {{{"event_id", "w"}, {"type", "won"}, {"lead_id", "dash-lead-1"},
                                                    {"amount", 1000}},
                                                   {{"event_id", "l"}, {"type", "lost"}, {"lead_id", "dash-lead-2"}}}}});
  ASSERT_TRUE(fb.contains("result")) << fb;
  auto report = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {Daemon::CliPath(), "report", "experiment"});
    return RunCommand(args, {"PLAYBOOK_URL=" + d.ws_url()});
  };
  CommandResult t = report({"--by", "stage"});
  ASSERT_EQ(t.exit_code, 0) << Describe(t);
  EXPECT_NE(t.out.find("holdout fraction 0.50"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("difference (treatment - holdout): +100.0 points of win rate"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("conclusive: no"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("too small to conclude"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("stage evaluation:"), std::string::npos) << t.out;
  const auto rows = ParseCsv(report({"--format", "csv"}).out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0], "group");
  EXPECT_EQ(rows[1][1], "treatment");
  EXPECT_EQ(rows[1][4], "1");  // won
  EXPECT_EQ(rows[1][6], "1.0");  // win_rate
  EXPECT_EQ(rows[2][1], "holdout");
  EXPECT_EQ(rows[2][5], "1");  // lost
  const json x = json::parse(report({"--format", "json"}).out);
  EXPECT_EQ(x.at("arms").at("treatment").at("revenue_per_closed_lead"), 1000.0);
  EXPECT_EQ(x.at("difference").at("win_rate"), 1.0);
  EXPECT_TRUE(x.at("difference").at("ci").is_array());
}

// The base seed plus more leads, reps and stages, all today (hand-computed below):
//   lead-1 (base): shown zh-price-01, en-roi-01 to rep-1 at evaluation; rep-1 used zh-price-01,
//                  dismissed en-roi-01; won 2500 (no rep_id).
//   lead-2: 9 recommendations of zh-price-01 to rep-2 at evaluation; rep-2 used it twice; moved to
//           negotiation; won 1000 by rep-2.
//   lead-3: entered interest, moved to consideration, lost by rep-2 (no content).
//   lead-4: entered evaluation; rep-3 used zh-price-01; lost by rep-3.
//   lead-5: entered evaluation, moved to negotiation, lost (no rep_id, no content).
//   lead-6: entered evaluation, won 500 by rep-2 (no content).
//   zh-case-01 (new, eligible at evaluation) is never shown nor used.
// zh-price-01: shown 10, used 4 (usage 0.4), won 2 (lead-1, lead-2), lost 1 (lead-4).
// en-roi-01: shown 1, used 0, dismissed 1.
constexpr const char* kCaseTitle = "制造业客户案例：交付周期缩短三成";

class CliReportFull : public CliReport {
 protected:
  void SetUp() override {
    CliReport::SetUp();
    if (HasFatalFailure()) return;
    TestClient c(d_->ws_url(), kAdmin);
    json asset = {{"id", "zh-case-01"}, {"title", kCaseTitle}, {"type", "case_study"},
                  {"stages", json::array({"evaluation"})}, {"language", "zh"}};
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", json::array({asset})}}).contains("result"));
    for (int i = 0; i < 9; ++i) {
      json rec = c.Call("recommend", {{"lead", {{"id", "lead-2"}, {"stage", "evaluation"}}},
                                      {"k", 1},
                                      {"rep_id", "rep-2"},
                                      {"exclude_seen", false},
                                      {"filter", {{"types", json::array({"objection_script"})}}}});
      ASSERT_TRUE(rec.contains("result")) << rec;
      ASSERT_EQ(rec["result"]["items"].size(), 1u) << rec;
      ASSERT_EQ(rec["result"]["items"][0]["asset_id"], "zh-price-01") << rec;
    }
    auto ev = [](const char* id, const char* type, const char* lead, const json& extra) {
      json e = {{"event_id", id}, {"type", type}, {"lead_id", lead}};
      for (const auto& [k, v] : extra.items()) e[k] = v;
      return e;
    };
    const json none = json::object();
    json events = json::array({
        ev("f1", "used", "lead-2", {{"asset_id", "zh-price-01"}, {"rep_id", "rep-2"}}),
        ev("f2", "used", "lead-2", {{"asset_id", "zh-price-01"}, {"rep_id", "rep-2"}}),
        ev("f3", "stage_changed", "lead-2", {{"stage", "negotiation"}, {"rep_id", "rep-2"}}),
        ev("f4", "won", "lead-2", {{"rep_id", "rep-2"}, {"amount", 1000}}),
        ev("f5", "stage_changed", "lead-3", {{"stage", "interest"}}),
        ev("f6", "stage_changed", "lead-3", {{"stage", "consideration"}}),
        ev("f7", "lost", "lead-3", {{"rep_id", "rep-2"}}),
        ev("f8", "stage_changed", "lead-4", {{"stage", "evaluation"}}),
        ev("f9", "used", "lead-4", {{"asset_id", "zh-price-01"}, {"rep_id", "rep-3"}}),
        ev("f10", "lost", "lead-4", {{"rep_id", "rep-3"}}),
        ev("f11", "stage_changed", "lead-5", {{"stage", "evaluation"}}),
        ev("f12", "stage_changed", "lead-5", {{"stage", "negotiation"}}),
        ev("f13", "lost", "lead-5", none),
        ev("f14", "stage_changed", "lead-6", {{"stage", "evaluation"}}),
        ev("f15", "won", "lead-6", {{"rep_id", "rep-2"}, {"amount", 500}}),
    });
    json fb = c.Call("feedback.record", {{"events", events}});
    ASSERT_TRUE(fb.contains("result")) << fb;
    ASSERT_EQ(fb["result"]["accepted"], 15) << fb;
  }
  // The daemon's own answer to `method` with `params`.
  json Direct(const std::string& method, const json& params) {
    TestClient c(d_->ws_url(), kAdmin);
    json response = c.Call(method, params);
    EXPECT_TRUE(response.contains("result")) << response;
    return response.value("result", json());
  }
};

TEST_F(CliReportFull, UnusedTableHasTwoTitledSections) {
  CommandResult r = Report({"unused"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string& out = r.out;
  EXPECT_NE(out.find("Never used (2): live, active assets not used in the window, most shown first\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("\nShown often but rarely used (0): shown at least 10 times, used in under 5.0% of the "
                     "showings\n  none\n"),
            std::string::npos) << out;
  EXPECT_EQ(out.find("zh-price-01"), std::string::npos) << out;  // used 4 of 10: neither list
  const std::string roi = LineWith(out, "en-roi-01");
  const std::string zh = LineWith(out, "zh-case-01");
  EXPECT_NE(roi.find("ROI calculator, \"payback\" in six months"), std::string::npos) << out;
  EXPECT_EQ(LastWords(roi, 6), (std::vector<std::string>{"roi_calculator", "1", "0", "0.0%", "0", "1"})) << out;
  EXPECT_NE(zh.find(kCaseTitle), std::string::npos) << out;
  EXPECT_EQ(LastWords(zh, 6), (std::vector<std::string>{"case_study", "0", "0", "0.0%", "0", "0"})) << out;
  EXPECT_LT(out.find("en-roi-01"), out.find("zh-case-01")) << out;  // most shown first
  // The Chinese title is two columns a character: the type column lines up under its header.
  const std::string header = LineStartingWith(out, "asset_id");
  ASSERT_FALSE(header.empty()) << out;
  EXPECT_EQ(ColumnOf(zh, "case_study"), ColumnOf(header, "type")) << out;
  EXPECT_EQ(ColumnOf(roi, "roi_calculator"), ColumnOf(header, "type")) << out;
  EXPECT_EQ(DisplayWidth(zh), DisplayWidth(header)) << out;  // the last column is right-aligned
}

TEST_F(CliReportFull, UnusedThresholdsDecideWhatIsRarelyUsed) {
  // 4 uses in 10 showings: under 50%, shown at least 10 (the default min).
  CommandResult r = Report({"unused", "--max-usage-rate", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("Shown often but rarely used (1): shown at least 10 times, used in under 50.0% of the "
                       "showings\n"),
            std::string::npos) << r.out;
  const std::string price = LineWith(r.out, "zh-price-01");
  EXPECT_NE(price.find("太贵了"), std::string::npos) << r.out;
  EXPECT_NE(price.find("…"), std::string::npos) << r.out;  // the long Chinese title is cut
  EXPECT_EQ(LastWords(price, 6), (std::vector<std::string>{"objection_script", "10", "4", "40.0%", "0", "0"}))
      << r.out;
  EXPECT_GT(r.out.find("zh-price-01"), r.out.find("Shown often")) << r.out;
  // Shown 10 < 11; and 40% is not under 40%.
  CommandResult more = Report({"unused", "--min-shown", "11", "--max-usage-rate", "50%"});
  ASSERT_EQ(more.exit_code, 0) << Describe(more);
  EXPECT_NE(more.out.find("rarely used (0): shown at least 11 times, used in under 50.0%"), std::string::npos)
      << more.out;
  EXPECT_EQ(more.out.find("zh-price-01"), std::string::npos) << more.out;
  CommandResult edge = Report({"unused", "--max-usage-rate", "40%"});
  ASSERT_EQ(edge.exit_code, 0) << Describe(edge);
  EXPECT_NE(edge.out.find("rarely used (0)"), std::string::npos) << edge.out;
}

TEST_F(CliReportFull, UnusedCsvSaysWhichListARowIsIn) {
  CommandResult r = Report({"unused", "--format", "csv", "--max-usage-rate", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("\r\n"), std::string::npos);
  auto records = ParseCsv(r.out);
  ASSERT_EQ(records.size(), 4u) << r.out;
  EXPECT_EQ(records[0], (std::vector<std::string>{"list", "asset_id", "title", "type", "deleted", "shown", "used",
                                                  "usage_rate", "viewed", "dismissed", "won", "lost", "win_rate",
                                                  "lift", "influenced_revenue", "last_used"}));
  for (const auto& rec : records) ASSERT_EQ(rec.size(), 16u) << r.out;
  EXPECT_EQ(records[1], (std::vector<std::string>{"never_used", "en-roi-01", "ROI calculator, \"payback\" in six months",
                                                  "roi_calculator", "false", "1", "0", "0.0", "0", "1", "0", "0", "",
                                                  "", "0.0", ""}));
  EXPECT_EQ(records[2], (std::vector<std::string>{"never_used", "zh-case-01", kCaseTitle, "case_study", "false", "0",
                                                  "0", "0.0", "0", "0", "0", "0", "", "", "0.0", ""}));
  const auto& price = records[3];
  EXPECT_EQ(price[0], "rarely_used");
  EXPECT_EQ(price[1], "zh-price-01");
  EXPECT_EQ(price[2].rfind("太贵了：一分钱一分货", 0), 0u) << price[2];  // the whole title, not cut
  EXPECT_EQ(price[5], "10");
  EXPECT_EQ(price[6], "4");
  EXPECT_EQ(price[7], "0.4");
  EXPECT_EQ(price[10], "2");                                    // won: lead-1, lead-2
  EXPECT_EQ(price[11], "1");                                    // lost: lead-4
  EXPECT_EQ(price[12].substr(0, 6), "0.6666") << price[12];     // 2 / 3
  EXPECT_EQ(price[13].substr(0, 6), "1.3333") << price[13];     // over 3 won of 6 closed
  EXPECT_EQ(price[14], "3500.0");                               // 2500 + 1000
  EXPECT_FALSE(price[15].empty());                              // last_used, ms
}

TEST_F(CliReportFull, UnusedJsonIsTheResultAndPassesStageAndType) {
  CommandResult r = Report({"unused", "--format", "json", "--stage", "negotiation"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json printed = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(printed.is_discarded()) << r.out;
  EXPECT_EQ(printed, Direct("reports.unused", {{"stage", "negotiation"}}));
  // At negotiation only zh-price-01 is eligible, and it was never used there.
  ASSERT_EQ(printed["never_used"].size(), 1u) << r.out;
  EXPECT_EQ(printed["never_used"][0]["asset_id"], "zh-price-01");
  EXPECT_EQ(printed["never_used"][0]["shown"], 0);
  EXPECT_TRUE(printed["rarely_used"].empty());

  CommandResult t = Report({"unused", "--format=json", "--type", "case_study", "--min-shown", "3",
                            "--max-usage-rate", "25%"});
  ASSERT_EQ(t.exit_code, 0) << Describe(t);
  printed = json::parse(t.out, nullptr, false);
  EXPECT_EQ(printed, Direct("reports.unused", {{"type", "case_study"}, {"min_shown", 3}, {"max_usage_rate", 0.25}}));
  ASSERT_EQ(printed["never_used"].size(), 1u) << t.out;
  EXPECT_EQ(printed["never_used"][0]["title"], kCaseTitle);

  CommandResult bad = Report({"unused", "--stage", "closing"});  // the daemon checks the stage
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find("stage"), std::string::npos) << bad.err;
}

TEST_F(CliReportFull, RepsTable) {
  CommandResult r = Report({"reps"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string& out = r.out;
  EXPECT_EQ(Words(LineStartingWith(out, "rep ")),
            (std::vector<std::string>{"rep", "shown", "used", "usage", "won", "lost", "win_rate"})) << out;
  // rep-2: 9 shown, 2 used (22.2%), won lead-2 and lead-6, lost lead-3.
  EXPECT_EQ(Words(LineStartingWith(out, "rep-2")),
            (std::vector<std::string>{"rep-2", "9", "2", "22.2%", "2", "1", "66.7%"})) << out;
  // rep-1: 2 shown, 1 used; lead-1's won event had no rep_id.
  EXPECT_EQ(Words(LineStartingWith(out, "rep-1")),
            (std::vector<std::string>{"rep-1", "2", "1", "50.0%", "0", "0", "-"})) << out;
  // rep-3: used without a recommendation (usage 0 when nothing was shown), lost lead-4.
  EXPECT_EQ(Words(LineStartingWith(out, "rep-3")),
            (std::vector<std::string>{"rep-3", "0", "1", "0.0%", "0", "1", "0.0%"})) << out;
  EXPECT_LT(out.find("\nrep-2"), out.find("\nrep-1")) << out;  // most used first
  EXPECT_LT(out.find("\nrep-1"), out.find("\nrep-3")) << out;
  CommandResult empty = Report({"reps", "--to", "2001-01-01"});
  ASSERT_EQ(empty.exit_code, 0) << Describe(empty);
  EXPECT_EQ(empty.out, "no rep activity in the window\n");
}

TEST_F(CliReportFull, RepsCsvAndJson) {
  CommandResult r = Report({"reps", "--format", "csv"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto records = ParseCsv(r.out);
  ASSERT_EQ(records.size(), 4u) << r.out;
  EXPECT_EQ(records[0], (std::vector<std::string>{"rep_id", "shown", "used", "usage_rate", "dismissed", "leads_won",
                                                  "leads_lost", "win_rate"}));
  EXPECT_EQ(records[1],
            (std::vector<std::string>{"rep-2", "9", "2", "0.2222222222222222", "0", "2", "1", "0.6666666666666666"}));
  EXPECT_EQ(records[2], (std::vector<std::string>{"rep-1", "2", "1", "0.5", "1", "0", "0", ""}));
  EXPECT_EQ(records[3], (std::vector<std::string>{"rep-3", "0", "1", "0.0", "0", "0", "1", "0.0"}));

  CommandResult j = Report({"reps", "--format", "json", "--from", "2000-01-01"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  json printed = json::parse(j.out, nullptr, false);
  ASSERT_FALSE(printed.is_discarded()) << j.out;
  EXPECT_EQ(printed, Direct("reports.reps", {{"from", 946684800000}}));
  ASSERT_EQ(printed["rows"].size(), 3u);
  EXPECT_EQ(printed["rows"][0]["rep_id"], "rep-2");
  EXPECT_EQ(printed["rows"][0]["leads_won"], 2);
}

TEST_F(CliReportFull, FunnelTable) {
  CommandResult r = Report({"funnel"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string& out = r.out;
  const std::string groups = out.substr(0, out.find('\n'));
  const std::string header = LineStartingWith(out, "stage");
  EXPECT_EQ(Words(groups), (std::vector<std::string>{"advanced", "won", "lost"})) << out;
  EXPECT_EQ(Words(header), (std::vector<std::string>{"stage", "entered", "with", "content", "without", "with",
                                                     "content", "without", "with", "content", "without"}))
      << out;
  // Each group label stands over its "with content" column.
  EXPECT_EQ(ColumnOf(groups, "advanced"), ColumnOf(header, "with content")) << out;
  EXPECT_EQ(ColumnOf(groups, "lost"), header.rfind("with content")) << out;
  using W = std::vector<std::string>;
  //                                   entered  advanced  won     lost
  EXPECT_EQ(Words(LineStartingWith(out, "awareness")), (W{"awareness", "0", "0", "0", "0", "0", "0", "0"})) << out;
  EXPECT_EQ(Words(LineStartingWith(out, "interest")), (W{"interest", "1", "0", "1", "0", "0", "0", "0"})) << out;
  EXPECT_EQ(Words(LineStartingWith(out, "consideration")), (W{"consideration", "1", "0", "0", "0", "0", "0", "1"}))
      << out;
  EXPECT_EQ(Words(LineStartingWith(out, "evaluation")), (W{"evaluation", "3", "1", "1", "1", "1", "1", "0"})) << out;
  EXPECT_EQ(Words(LineStartingWith(out, "negotiation")), (W{"negotiation", "2", "0", "0", "0", "1", "0", "1"}))
      << out;
  EXPECT_EQ(Words(LineStartingWith(out, "total")), (W{"total", "7", "1", "2", "1", "2", "1", "2"})) << out;
  EXPECT_LT(out.find("\nawareness"), out.find("\nnegotiation")) << out;  // funnel order
  EXPECT_NE(out.find("with content: content was used with the lead while it was at that stage"), std::string::npos);
}

TEST_F(CliReportFull, FunnelCsvAndJson) {
  CommandResult r = Report({"funnel", "--format", "csv"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto records = ParseCsv(r.out);
  using W = std::vector<std::string>;
  ASSERT_EQ(records.size(), 6u) << r.out;
  EXPECT_EQ(records[0], (W{"stage", "entered", "advanced_with_content", "advanced_without_content", "won_with_content",
                           "won_without_content", "lost_with_content", "lost_without_content"}));
  EXPECT_EQ(records[1], (W{"awareness", "0", "0", "0", "0", "0", "0", "0"}));
  EXPECT_EQ(records[2], (W{"interest", "1", "0", "1", "0", "0", "0", "0"}));
  EXPECT_EQ(records[3], (W{"consideration", "1", "0", "0", "0", "0", "0", "1"}));
  EXPECT_EQ(records[4], (W{"evaluation", "3", "1", "1", "1", "1", "1", "0"}));
  EXPECT_EQ(records[5], (W{"negotiation", "2", "0", "0", "0", "1", "0", "1"}));

  CommandResult j = Report({"funnel", "--format", "json"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  json printed = json::parse(j.out, nullptr, false);
  ASSERT_FALSE(printed.is_discarded()) << j.out;
  EXPECT_EQ(printed, Direct("reports.funnel", json::object()));
  ASSERT_EQ(printed["stages"].size(), 5u) << j.out;
  EXPECT_EQ(printed["stages"][3]["won"], (json{{"with_content", 1}, {"without_content", 1}}));

  // A window before the events: every stage, all zero.
  CommandResult old = Report({"funnel", "--format", "csv", "--to", "2001-01-01"});
  ASSERT_EQ(old.exit_code, 0) << Describe(old);
  records = ParseCsv(old.out);
  ASSERT_EQ(records.size(), 6u) << old.out;
  EXPECT_EQ(records[4], (W{"evaluation", "0", "0", "0", "0", "0", "0", "0"}));
}

}  // namespace
}  // namespace playbook::testing

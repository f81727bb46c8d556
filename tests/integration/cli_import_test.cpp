// `playbook import`, `export` and `reindex` against the real daemon, and the
// sample catalog in data/catalog/.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "playbook/base/vector_base64.h"
#include "support/daemon.h"
#include "support/test_client.h"

#ifndef PLAYBOOK_DATA_DIR
#error "PLAYBOOK_DATA_DIR must point at the repository's data/ folder"
#endif

namespace playbook::testing {
namespace {

using nlohmann::json;

const std::string kDataDir = PLAYBOOK_DATA_DIR;
const std::string kSampleJsonl = kDataDir + "/catalog/sample.jsonl";
const std::string kSampleCsv = kDataDir + "/catalog/sample.csv";
const std::vector<std::string> kStages = {"awareness", "interest", "consideration", "evaluation",
                                          "negotiation"};

// No PLAYBOOK_* from the developer's shell ("K" without '=' removes K).
CommandResult Cli(std::vector<std::string> args, std::vector<std::string> env = {}) {
  args.insert(args.begin(), Daemon::CliPath());
  std::vector<std::string> clean = {"PLAYBOOK_URL", "PLAYBOOK_TOKEN"};
  clean.insert(clean.end(), env.begin(), env.end());
  return RunCommand(args, clean, std::chrono::milliseconds(120000));
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The JSON objects of a JSON Lines text (blank and # lines skipped).
std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    out.push_back(json::parse(line));
  }
  return out;
}

// The integer before `word` in the import summary: "106 upserted", "0 failed"...
int64_t SummaryCount(const std::string& out, const std::string& word) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("(\\d+) " + word))) return -1;
  return std::stoll(m[1].str());
}

int64_t AssetCount(const Daemon& d) {
  TestClient c(d.ws_url());
  json st = c.Call("index.status");
  if (!st.contains("result")) return -1;
  return st["result"]["assets"].get<int64_t>();
}

// assets.get of `ids` (with vectors), by id.
std::map<std::string, json> GetAssets(const Daemon& d, const std::vector<std::string>& ids,
                                      std::vector<std::string>* missing = nullptr) {
  TestClient c(d.ws_url());
  json r = c.Call("assets.get", {{"ids", ids}, {"with_vectors", true}});
  std::map<std::string, json> out;
  if (!r.contains("result")) return out;
  for (const json& a : r["result"]["assets"]) out[a["id"].get<std::string>()] = a;
  if (missing) *missing = r["result"]["missing"].get<std::vector<std::string>>();
  return out;
}

// An asset as the daemon would store it: defaults filled, stages as a set.
json Normalised(json a) {
  json n = {{"id", a.value("id", "")},          {"title", a.value("title", "")},
            {"body", a.value("body", "")},      {"url", a.value("url", "")},
            {"language", a.value("language", "")}, {"type", a.value("type", "")},
            {"tags", a.value("tags", json::array())}, {"active", a.value("active", true)}};
  auto stages = a.value("stages", std::vector<std::string>());
  std::sort(stages.begin(), stages.end());
  n["stages"] = stages;
  return n;
}

class CliImport : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.Start()) << d_.log(); }
  std::string Path(const std::string& name) const { return d_.dir() + "/" + name; }
  CommandResult Import(std::vector<std::string> args) {
    args.insert(args.begin(), {"import", "--url", d_.ws_url()});
    return Cli(args);
  }

  Daemon d_;
};

// ---------------------------------------------------------------------------
// The sample catalog

TEST(SampleCatalog, IsWellFormedAndBilingual) {
  const std::vector<json> assets = JsonLines(ReadFile(kSampleJsonl));
  ASSERT_GE(assets.size(), 80u);
  ASSERT_LE(assets.size(), 120u);
  std::set<std::string> ids;
  std::map<std::string, int> by_language;
  std::set<std::string> types;
  for (const json& a : assets) {
    const std::string id = a.value("id", "");
    EXPECT_TRUE(ids.insert(id).second) << "duplicate id " << id;
    EXPECT_TRUE(std::regex_match(id, std::regex("[a-z]{2}-[a-z0-9-]+-\\d{2,4}"))) << id;
    const std::string lang = a.value("language", "");
    EXPECT_EQ(id.substr(0, 3), lang + "-") << id;
    ++by_language[lang];
    EXPECT_FALSE(a.value("title", "").empty()) << id;
    EXPECT_FALSE(a.value("body", "").empty()) << id;
    EXPECT_EQ(a.value("url", "").rfind("https://example.com/", 0), 0u) << id;
    ASSERT_TRUE(a.contains("stages") && !a["stages"].empty()) << id;
    for (const json& s : a["stages"]) {
      EXPECT_NE(std::find(kStages.begin(), kStages.end(), s.get<std::string>()), kStages.end()) << id;
    }
    EXPECT_FALSE(a.value("tags", json::array()).empty()) << id;
    types.insert(a.value("type", ""));
  }
  EXPECT_EQ(by_language.size(), 2u);
  EXPECT_GE(by_language["zh"], static_cast<int>(assets.size() * 2 / 5));
  EXPECT_GE(by_language["en"], static_cast<int>(assets.size() * 2 / 5));
  for (const char* t : {"case_study", "roi_calculator", "competitor_comparison", "objection_script"}) {
    EXPECT_TRUE(types.count(t)) << t;
  }
}

TEST_F(CliImport, SampleCatalogPassesValidation) {
  CommandResult r = Import({kSampleJsonl});
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d_.log();
  EXPECT_EQ(SummaryCount(r.out, "failed"), 0) << r.out;
  EXPECT_TRUE(r.err.find("line ") == std::string::npos) << r.err;
}

TEST_F(CliImport, SampleImportStoresEveryLine) {
  const int64_t lines = static_cast<int64_t>(JsonLines(ReadFile(kSampleJsonl)).size());
  CommandResult r = Import({kSampleJsonl});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(SummaryCount(r.out, "lines read"), lines) << r.out;
  EXPECT_EQ(SummaryCount(r.out, "upserted"), lines) << r.out;
  EXPECT_EQ(SummaryCount(r.out, "created"), lines) << r.out;
  EXPECT_EQ(AssetCount(d_), lines);
}

TEST_F(CliImport, ReimportIsIdempotent) {
  const std::vector<json> sample = JsonLines(ReadFile(kSampleJsonl));
  const int64_t lines = static_cast<int64_t>(sample.size());
  ASSERT_EQ(Import({kSampleJsonl}).exit_code, 0);
  const auto before = GetAssets(d_, {sample[0]["id"], sample[lines - 1]["id"]});

  CommandResult again = Import({"--batch", "7", kSampleJsonl});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(SummaryCount(again.out, "created"), 0) << again.out;
  EXPECT_EQ(SummaryCount(again.out, "updated"), lines) << again.out;
  EXPECT_EQ(AssetCount(d_), lines);
  const auto after = GetAssets(d_, {sample[0]["id"], sample[lines - 1]["id"]});
  ASSERT_EQ(after.size(), 2u);
  for (const auto& [id, a] : after) {
    EXPECT_EQ(Normalised(a), Normalised(before.at(id))) << id;
    EXPECT_EQ(a["created_ms"], before.at(id)["created_ms"]) << id;
  }
}

TEST_F(CliImport, BadLinesAreReportedAndTheRestImported) {
  const std::string file = Path("bad.jsonl");
  WriteFile(file,
            R"({"id":"ok-1","title":"One","type":"case_study","stages":["awareness"]})" "\n"
            R"({"id":"ok-2","title":"Two","type":"case_study","stages":["interest"]})" "\n"
            R"({"id":"bad-3","title": oops})" "\n"
            R"({"id":"ok-4","title":"Four","type":"whitepaper","stages":["interest"]})" "\n"
            R"({"id":"bad-5","title":"Five","type":"case_study","stages":["closing"]})" "\n"
            R"({"id":"ok-6","title":"Six","type":"video","stages":["evaluation","negotiation"]})" "\n");
  CommandResult r = Import({file});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("closing"), std::string::npos) << r.err;  // the daemon's reason
  for (const char* good : {"line 1", "line 2", "line 4", "line 6"}) {
    EXPECT_EQ(r.err.find(good), std::string::npos) << good << " reported:\n" << r.err;
  }
  EXPECT_EQ(SummaryCount(r.out, "upserted"), 4) << r.out;
  EXPECT_EQ(SummaryCount(r.out, "failed"), 2) << r.out;

  std::vector<std::string> missing;
  auto got = GetAssets(d_, {"ok-1", "ok-2", "bad-3", "ok-4", "bad-5", "ok-6"}, &missing);
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(std::set<std::string>(missing.begin(), missing.end()),
            (std::set<std::string>{"bad-3", "bad-5"}));
}

TEST_F(CliImport, VectorsAsArraysOrBase64ArriveExactlyAndBadOnesAreNamed) {
  TestClient c(d_.ws_url());
  const int dim = c.Call("index.status")["result"]["dimension"].get<int>();
  std::vector<float> v(static_cast<std::size_t>(dim));
  for (int i = 0; i < dim; ++i) v[static_cast<std::size_t>(i)] = 0.001f * float(i % 17) - 0.004f;
  json array = json::array();
  for (float x : v) array.push_back(x);
  const std::string b64 = playbook::EncodeVectorBase64(v.data(), v.size());
  const std::vector<float> nan = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  auto line = [](const std::string& id, const json& vector) {
    return json({{"id", id}, {"title", id}, {"type", "video"}, {"stages", {"interest"}}, {"vector", vector}}).dump() +
           "\n";
  };
  const std::string file = Path("vectors.jsonl");
  WriteFile(file, line("as-array", array) + line("as-base64", b64) + line("not-base64", "AAAA*AAAAAA=") +
                      line("nan", playbook::EncodeVectorBase64(nan.data(), nan.size())) +
                      line("beyond-float", json::array({1.0, 1e39})) + line("short", "AACAPwAAAD8="));
  CommandResult r = Import({file});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(SummaryCount(r.out, "upserted"), 2) << r.out;
  EXPECT_EQ(SummaryCount(r.out, "failed"), 4) << r.out;
  // Each bad line with the daemon's reason, naming the field.
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not base64: '*' at offset 4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("vector[1]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("NaN"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3.4e38"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 6"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("got 2"), std::string::npos) << r.err;
  // Both forms stored bit for bit (normalised only for the index).
  auto got = GetAssets(d_, {"as-array", "as-base64"});
  for (const char* id : {"as-array", "as-base64"}) {
    ASSERT_TRUE(got[id].contains("vector")) << id;
    EXPECT_EQ(got[id]["vector_source"], "client");
    EXPECT_EQ(got[id]["vector"].get<std::vector<float>>(), v) << id;
  }
}

// The client reads a vector array where it stands (not through the JSON
// parser) when the line is plain: the same floats either way, and anything
// unusual takes the general way.
TEST_F(CliImport, VectorArraysReadInTheTextArriveAsTheJsonParserReadsThem) {
  TestClient c(d_.ws_url());
  const int dim = c.Call("index.status")["result"]["dimension"].get<int>();
  std::vector<std::string> numbers = {"-0", "0.5E+1", "-1.25e-3", "3", "0.1", "-0.0", "1e-50", "123456789012"};
  std::string array = "[";
  std::vector<float> want;
  for (int i = 0; i < dim; ++i) {
    const std::string& n = numbers[size_t(i) % numbers.size()];
    if (i > 0) array += i % 3 ? "," : " , ";
    array += n;
    want.push_back(float(json::parse(n).get<double>()));
  }
  array += " ]";
  const std::string tail = R"(,"type":"video","stages":["interest"],"vector": )" + array + "}\n";
  const std::string file = Path("text-vectors.jsonl");
  WriteFile(file, R"({"id":"plain","title":"plain")" + tail +
                      // "vector" inside a string, then the real one
                      R"({"id":"in-title","title":"a \"vector\":[1,2] in the title")" + tail +
                      // two "vector" keys: the last counts, as for the JSON parser
                      R"({"id":"twice","vector":[1,2],"title":"twice")" + tail +
                      // not JSON numbers: the daemon names the line
                      R"({"id":"bad","title":"bad","type":"video","stages":["interest"],"vector":[01, 2]})" "\n");
  CommandResult r = Import({file});
  EXPECT_EQ(SummaryCount(r.out, "upserted"), 3) << Describe(r);
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;
  auto got = GetAssets(d_, {"plain", "in-title", "twice"});
  for (const char* id : {"plain", "in-title", "twice"}) {
    ASSERT_TRUE(got[id].contains("vector")) << id;
    const auto v = got[id]["vector"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), want.size()) << id;
    for (size_t i = 0; i < v.size(); ++i) {
      // Bit for bit, the sign of zero included ("-0" is the integer 0, "-0.0" is -0).
      EXPECT_EQ(std::signbit(v[i]), std::signbit(want[i])) << id << " [" << i << "]";
      EXPECT_EQ(v[i], want[i]) << id << " [" << i << "]";
    }
  }
  EXPECT_EQ(got["in-title"]["title"], "a \"vector\":[1,2] in the title");
}

// Found by tests/fuzz (fuzz_jsonl): a number beyond a double made the JSON
// parser throw out_of_range, which the reader did not catch: import aborted.
TEST_F(CliImport, NumberBeyondADoubleIsABadLine) {
  const std::string file = Path("huge.jsonl");
  WriteFile(file,
            R"({"id":"ok-1","title":"One","type":"case_study","stages":["awareness"]})" "\n"
            R"({"id":"big-2","title":"Two","type":"case_study","stages":["interest"],"vector":[1e999]})" "\n"
            R"({"id":"ok-3","title":"Three","type":"video","stages":["interest"]})" "\n");
  CommandResult r = Import({file});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("invalid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(SummaryCount(r.out, "upserted"), 2) << r.out;
  EXPECT_EQ(SummaryCount(r.out, "failed"), 1) << r.out;
}

TEST_F(CliImport, RejectedAssetsInOneBatchAreEachReported) {
  // Three bad assets in one batch: each is reported, the batch resent without it.
  std::string text;
  for (int i = 1; i <= 20; ++i) {
    const std::string stage = (i == 4 || i == 11 || i == 19) ? "nowhere" : "interest";
    text += R"({"id":"b-)" + std::to_string(i) + R"(","title":"T","type":"video","stages":[")" + stage +
            "\"]}\n";
  }
  WriteFile(Path("batch.jsonl"), text);
  CommandResult r = Import({"--batch", "50", Path("batch.jsonl")});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  for (const char* l : {"line 4 ", "line 11 ", "line 19 "}) EXPECT_NE(r.err.find(l), std::string::npos) << r.err;
  EXPECT_EQ(SummaryCount(r.out, "upserted"), 17) << r.out;
  EXPECT_EQ(AssetCount(d_), 17);
}

TEST_F(CliImport, SameIdTwiceTheLastLineWins) {
  WriteFile(Path("dup.jsonl"),
            R"({"id":"d","title":"first","type":"video","stages":["interest"]})" "\n"
            R"({"id":"e","title":"other","type":"video","stages":["interest"]})" "\n"
            R"({"id":"d","title":"second","type":"video","stages":["interest"]})" "\n"
            R"({"id":"d","title":"third","type":"video","stages":["interest"]})" "\n");
  for (const char* batch : {"1", "2", "500"}) {
    CommandResult r = Import({"--batch", batch, Path("dup.jsonl")});
    ASSERT_EQ(r.exit_code, 0) << "--batch " << batch << "\n" << Describe(r);
    EXPECT_EQ(GetAssets(d_, {"d"})["d"]["title"], "third") << "--batch " << batch;
  }
}

TEST_F(CliImport, CommentsBlankLinesAndStdin) {
  WriteFile(Path("c.jsonl"),
            "# a comment\n\n" R"({"id":"s1","title":"T","type":"video","stages":["interest"]})" "\r\n"
            "   \n" R"({"id":"s2","title":"T","type":"video","stages":["interest"]})" "\n");
  CommandResult r = RunCommand({"/bin/sh", "-c",
                                "exec \"$0\" import --url \"$1\" - < \"$2\"", Daemon::CliPath(),
                                d_.ws_url(), Path("c.jsonl")},
                               {"PLAYBOOK_URL", "PLAYBOOK_TOKEN"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(SummaryCount(r.out, "lines read"), 2) << r.out;
  EXPECT_EQ(AssetCount(d_), 2);
}

TEST_F(CliImport, CsvSampleKeepsQuotedFields) {
  CommandResult r = Import({kSampleCsv});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(SummaryCount(r.out, "upserted"), 7) << r.out;
  auto got = GetAssets(d_, {"en-case-saas-02", "en-objection-price-03", "en-email-winback-01",
                            "zh-case-manufacturing-02", "zh-roi-inaction-02", "zh-product-pricing-2021"});
  ASSERT_EQ(got.size(), 6u) << r.out;
  // A comma inside quotes stays in the field.
  EXPECT_EQ(got["en-case-saas-02"]["title"], "Case study: SaaS vendor, 40 reps, one funnel");
  EXPECT_EQ(got["en-case-saas-02"]["tags"], json({"industry:saas", "topic:sla"}));
  // Doubled quotes, a newline inside quotes, and ';' as the list separator.
  EXPECT_EQ(got["en-objection-price-03"]["title"], "\"Your price is 20% higher\": a reply that keeps the deal");
  EXPECT_NE(got["en-objection-price-03"]["body"].get<std::string>().find("for.\nNever"), std::string::npos)
      << got["en-objection-price-03"]["body"];
  EXPECT_EQ(got["en-objection-price-03"]["stages"], json({"evaluation", "negotiation"}));
  EXPECT_EQ(got["zh-case-manufacturing-02"]["title"], "制造业案例：三个月上线，线索转化率提升25%");
  EXPECT_EQ(got["zh-case-manufacturing-02"]["language"], "zh");
  EXPECT_NE(got["zh-roi-inaction-02"]["body"].get<std::string>().find("\"以后再说\""), std::string::npos);
  EXPECT_EQ(got["zh-product-pricing-2021"]["active"], false);
  EXPECT_EQ(got["en-email-winback-01"]["active"], true);  // empty cell: the default
}

TEST_F(CliImport, CsvVariantOfLinksTranslations) {
  WriteFile(Path("v.csv"),
            "id,title,language,type,stages,variant_of\n"
            "zh-v,太贵了,zh,video,interest,\n"        // an empty cell: no link
            "en-v,Too expensive,en,video,interest, zh-v \n"
            "bad-v,Bad,en,video,interest,bad-v\n");  // line 4: its own variant
  CommandResult r = Import({Path("v.csv")});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("variant_of"), std::string::npos) << r.err;
  auto got = GetAssets(d_, {"zh-v", "en-v"});
  EXPECT_TRUE(got["zh-v"]["variant_of"].is_null());
  EXPECT_EQ(got["en-v"]["variant_of"], "zh-v");
}

TEST_F(CliImport, CsvBadRowsAndUnknownColumns) {
  WriteFile(Path("rows.csv"),
            "id,title,type,stages,active\n"
            "r1,\"A, with comma\",video,interest,true\n"
            "r2,B,video,interest,maybe\n"            // line 3: bad boolean
            "r3,\"C\nspans two lines\",video,interest,\n"  // lines 4-5
            "r4,D,video\n"                           // line 6: too few fields
            "r5,E,video,closing,\n");                // line 7: the daemon refuses the stage
  CommandResult r = Import({Path("rows.csv")});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  for (const char* l : {"line 3", "line 6", "line 7"}) EXPECT_NE(r.err.find(l), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("line 4"), std::string::npos) << r.err;
  auto got = GetAssets(d_, {"r1", "r3"});
  EXPECT_EQ(got["r1"]["title"], "A, with comma");
  EXPECT_EQ(got["r3"]["title"], "C\nspans two lines");

  WriteFile(Path("cols.csv"), "id,title,type,stages,colour\nx,X,video,interest,red\n");
  CommandResult cols = Import({Path("cols.csv")});
  EXPECT_EQ(cols.exit_code, 1) << Describe(cols);
  EXPECT_NE(cols.err.find("colour"), std::string::npos) << cols.err;
  EXPECT_EQ(AssetCount(d_), 2);  // nothing of cols.csv
}

TEST_F(CliImport, UsageErrorsSendNothing) {
  EXPECT_EQ(Import({}).exit_code, 2);
  EXPECT_EQ(Import({"--batch", "0", kSampleJsonl}).exit_code, 2);
  EXPECT_EQ(Import({"--batch", "10001", kSampleJsonl}).exit_code, 2);
  EXPECT_EQ(Import({"--format", "xml", kSampleJsonl}).exit_code, 2);
  CommandResult missing = Import({Path("no-such-file.jsonl")});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);
  EXPECT_NE(missing.err.find("no-such-file.jsonl"), std::string::npos) << missing.err;
  EXPECT_EQ(AssetCount(d_), 0);
}

TEST(CliImportAuth, RoleWithoutAssetsUpsertIsRefused) {
  Daemon d(WithConfig("[[auth.tokens]]\nrole = \"crm\"\ntoken = \"crm-token-0123456789abcdef\"\n"
                      "[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"mkt-token-0123456789abcdef\"\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult crm = Cli({"import", "--url", d.ws_url(), "--token", "crm-token-0123456789abcdef", kSampleJsonl});
  EXPECT_EQ(crm.exit_code, 1) << Describe(crm);
  EXPECT_NE(crm.err.find("-32001"), std::string::npos) << crm.err;
  CommandResult mkt = Cli({"import", "--url", d.ws_url(), kSampleJsonl},
                          {"PLAYBOOK_TOKEN=mkt-token-0123456789abcdef"});
  EXPECT_EQ(mkt.exit_code, 0) << Describe(mkt);
  // index.* is admin only.
  CommandResult reindex = Cli({"reindex", "--url", d.ws_url(), "--token", "mkt-token-0123456789abcdef"});
  EXPECT_EQ(reindex.exit_code, 1) << Describe(reindex);
}

TEST(CliImportConnection, NothingListeningExitsThree) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  const std::string url = d.ws_url();
  ASSERT_EQ(d.Stop(), 0);
  CommandResult r = Cli({"import", "--url", url, "--timeout", "5", kSampleJsonl});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find(url), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------
// export

TEST(CliExport, RoundTripReproducesTheCatalog) {
  Daemon a;
  ASSERT_TRUE(a.Start()) << a.log();
  ASSERT_EQ(Cli({"import", "--url", a.ws_url(), kSampleJsonl}).exit_code, 0);
  ASSERT_EQ(Cli({"import", "--url", a.ws_url(), kSampleCsv}).exit_code, 0);
  const std::string first = a.dir() + "/first.jsonl";
  CommandResult ex = Cli({"export", "--url", a.ws_url(), first});
  ASSERT_EQ(ex.exit_code, 0) << Describe(ex);
  EXPECT_TRUE(ex.out.empty()) << ex.out;  // the summary goes to stderr

  // Every asset of the inputs, with the same fields.
  std::map<std::string, json> expected;
  for (const json& j : JsonLines(ReadFile(kSampleJsonl))) expected[j["id"]] = Normalised(j);
  const std::vector<json> exported = JsonLines(ReadFile(first));
  ASSERT_EQ(exported.size(), expected.size() + 7);
  for (const json& e : exported) {
    for (auto it = e.begin(); it != e.end(); ++it) {
      static const std::set<std::string> kInputFields = {"id",   "title",  "body",   "url",   "language",
                                                         "type", "stages", "tags",   "active", "variant_of"};
      EXPECT_TRUE(kInputFields.count(it.key())) << "exported field " << it.key();
    }
    auto want = expected.find(e["id"]);
    if (want != expected.end()) {
      EXPECT_EQ(Normalised(e), want->second) << e["id"];
    }
  }

  // Into a fresh daemon, and out again: the same file.
  Daemon b;
  ASSERT_TRUE(b.Start()) << b.log();
  CommandResult im = Cli({"import", "--url", b.ws_url(), first});
  ASSERT_EQ(im.exit_code, 0) << Describe(im);
  EXPECT_EQ(AssetCount(b), static_cast<int64_t>(exported.size()));
  CommandResult again = Cli({"export", "--url", b.ws_url(), "-"});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(again.out, ReadFile(first));
}

TEST(CliExport, FiltersByStageAndType) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  ASSERT_EQ(Cli({"import", "--url", d.ws_url(), kSampleJsonl}).exit_code, 0);
  std::size_t want_awareness = 0, want_cases = 0;
  for (const json& j : JsonLines(ReadFile(kSampleJsonl))) {
    const auto stages = j["stages"].get<std::vector<std::string>>();
    want_awareness += std::count(stages.begin(), stages.end(), "awareness");
    want_cases += j["type"] == "case_study";
  }
  CommandResult aw = Cli({"export", "--url", d.ws_url(), "--stage", "awareness"});
  ASSERT_EQ(aw.exit_code, 0) << Describe(aw);
  EXPECT_EQ(JsonLines(aw.out).size(), want_awareness);
  CommandResult cs = Cli({"export", "--url", d.ws_url(), "--type=case_study"});
  ASSERT_EQ(cs.exit_code, 0) << Describe(cs);
  EXPECT_EQ(JsonLines(cs.out).size(), want_cases);
  for (const json& j : JsonLines(cs.out)) EXPECT_EQ(j["type"], "case_study");

  CommandResult bad = Cli({"export", "--url", d.ws_url(), "--stage", "closing"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find("closing"), std::string::npos) << bad.err;
}

TEST(CliExport, ClientVectorsAreKeptEmbedderVectorsOnRequest) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  TestClient c(d.ws_url());
  const int dim = c.Call("index.status")["result"]["dimension"].get<int>();
  json vec = json::array();
  for (int i = 0; i < dim; ++i) vec.push_back(i % 7 == 0 ? 0.5 : 0.0);
  const std::string file = d.dir() + "/v.jsonl";
  WriteFile(file, json({{"id", "with-vec"}, {"title", "V"}, {"type", "video"}, {"stages", {"interest"}},
                        {"vector", vec}}).dump() + "\n" +
                      R"({"id":"no-vec","title":"N","type":"video","stages":["interest"]})" "\n");
  ASSERT_EQ(Cli({"import", "--url", d.ws_url(), file}).exit_code, 0);

  CommandResult plain = Cli({"export", "--url", d.ws_url()});
  ASSERT_EQ(plain.exit_code, 0) << Describe(plain);
  std::map<std::string, json> by_id;
  for (const json& j : JsonLines(plain.out)) by_id[j["id"]] = j;
  ASSERT_EQ(by_id.size(), 2u);
  ASSERT_TRUE(by_id["with-vec"].contains("vector")) << plain.out;
  EXPECT_EQ(by_id["with-vec"]["vector"].size(), static_cast<std::size_t>(dim));
  EXPECT_FALSE(by_id["no-vec"].contains("vector"));

  CommandResult all = Cli({"export", "--url", d.ws_url(), "--with-vectors"});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  for (const json& j : JsonLines(all.out)) EXPECT_TRUE(j.contains("vector")) << j["id"];

  // The client's vector survives a round trip into a fresh daemon.
  Daemon e;
  ASSERT_TRUE(e.Start()) << e.log();
  WriteFile(d.dir() + "/plain.jsonl", plain.out);
  ASSERT_EQ(Cli({"import", "--url", e.ws_url(), d.dir() + "/plain.jsonl"}).exit_code, 0);
  auto got = GetAssets(e, {"with-vec", "no-vec"});
  EXPECT_EQ(got["with-vec"]["vector_source"], "client");
  EXPECT_EQ(got["no-vec"]["vector_source"], "embedder");
}

// ---------------------------------------------------------------------------
// reindex

TEST(CliReindex, ShowsProgressAndWaitsForTheEnd) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  ASSERT_EQ(Cli({"import", "--url", d.ws_url(), kSampleJsonl}).exit_code, 0);
  const int64_t n = AssetCount(d);
  CommandResult r = Cli({"reindex", "--url", d.ws_url()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
  // The last index.progress notification, done == total, as a progress line.
  const std::string all = std::to_string(n) + "/" + std::to_string(n);
  EXPECT_NE(r.err.find("reindex: 100%, " + all), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("done, " + std::to_string(n) + " assets"), std::string::npos) << r.out;
  TestClient c(d.ws_url());
  EXPECT_EQ(c.Call("index.status")["result"]["rebuilding"], false);

  CommandResult quiet = Cli({"reindex", "--url", d.ws_url(), "--no-progress"});
  ASSERT_EQ(quiet.exit_code, 0) << Describe(quiet);
  EXPECT_EQ(quiet.err.find("100%"), std::string::npos) << quiet.err;
}

TEST(CliReindex, UsageAndConnectionErrors) {
  EXPECT_EQ(Cli({"reindex", "extra"}).exit_code, 2);
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  const std::string url = d.ws_url();
  ASSERT_EQ(d.Stop(), 0);
  EXPECT_EQ(Cli({"reindex", "--url", url, "--timeout", "5"}).exit_code, 3);
}

}  // namespace
}  // namespace playbook::testing

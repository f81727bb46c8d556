// The README's commands, as a newcomer runs them after tools/run.sh: a fresh daemon with the
// sample catalog loaded, each command of the README's "try" block (tools/readme-commands.sh
// extracts it, so the test cannot drift from the page) run with bash from a folder holding
// build/bin and data/ like the tree, and what each prints checked against what a user would want.
// The only rewrite: the README's port 7700 becomes the test daemon's (PLAYBOOK_URL for the CLI).
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/daemon.h"

#ifndef PLAYBOOK_DATA_DIR
#error "PLAYBOOK_DATA_DIR must point at the repository's data/ folder"
#endif

namespace playbook::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const std::string kDataDir = PLAYBOOK_DATA_DIR;
const std::string kSourceDir = fs::path(kDataDir).parent_path().string();

std::string Describe(const std::string& cmd, const CommandResult& r) {
  return "$ " + cmd + "\nexit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// The README's block `<!-- commands: NAME -->`, one command per line.
std::vector<std::string> ReadmeCommands(const std::string& name) {
  CommandResult r = RunCommand({"bash", kSourceDir + "/tools/readme-commands.sh", name, kSourceDir + "/README.md"});
  EXPECT_EQ(r.exit_code, 0) << "README.md has no block marked '<!-- commands: " << name << " -->'\n" << r.err;
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The README's command that starts with `prefix`, or "" (a failure names it).
std::string ReadmeCommand(const std::string& prefix) {
  for (const std::string& cmd : ReadmeCommands("try")) {
    if (cmd.rfind(prefix, 0) == 0) return cmd;
  }
  ADD_FAILURE() << "the README's try block has no command starting with: " << prefix;
  return "";
}

// A newcomer's shell after tools/run.sh: a daemon serving a fresh data dir into which it loaded
// the sample catalog itself, as run.sh starts it (--load-sample), and a working folder with
// build/bin and data/.
class Newcomer {
 public:
  // False (with a test failure saying why) when the daemon or the sample load failed.
  bool Start() {
    if (!daemon_.Start()) {
      ADD_FAILURE() << "playbookd did not start:\n" << daemon_.log();
      return false;
    }
    if (daemon_.log().find("sample catalog: loaded 106 assets") == std::string::npos) {
      ADD_FAILURE() << "playbookd did not load the sample catalog:\n" << daemon_.log();
      return false;
    }
    fs::create_directories(folder_.path() + "/build");
    fs::create_directory_symlink(fs::path(Daemon::CliPath()).parent_path(), folder_.path() + "/build/bin");
    fs::create_directory_symlink(kDataDir, folder_.path() + "/data");
    return true;
  }

  // Runs one README line with bash from the folder, against this daemon.
  CommandResult Run(std::string cmd) const {
    const std::string readme_port = "127.0.0.1:7700";
    std::string port = "127.0.0.1:";
    port += std::to_string(daemon_.port());
    for (std::size_t at = cmd.find(readme_port); at != std::string::npos; at = cmd.find(readme_port, at)) {
      cmd.replace(at, readme_port.size(), port);
      at += port.size();
    }
    return RunCommand({"bash", "-c", "cd '" + folder_.path() + "' && " + cmd},
                      {"PLAYBOOK_URL=" + daemon_.ws_url(), "PLAYBOOK_TOKEN", "PLAYBOOK_CACERT", "LANG=C.UTF-8"});
  }

 private:
  Daemon daemon_{WithArgs({"--load-sample", kDataDir + "/catalog/sample.jsonl"})};  // as tools/run.sh
  TempDir folder_;
};

json ResultOf(const std::string& cmd, const CommandResult& r) {
  json j = json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("result")) {
    ADD_FAILURE() << "no JSON-RPC result:\n" << Describe(cmd, r);
    return json::object();
  }
  return j["result"];
}

// Lines of `text` that start with `prefix`.
std::vector<std::string> LinesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) found.push_back(line);
  }
  return found;
}

// What each README command must show, keyed by how the command starts. A README command with no
// check here fails the test (add one), and so does a check whose command left the README.
using Check = std::function<void(const std::string& cmd, const CommandResult&)>;

std::vector<std::pair<std::string, Check>> Checks() {
  return {
      {"curl -fsS http://127.0.0.1:7700/healthz",
       [](const std::string& cmd, const CommandResult& r) {
         json j = json::parse(r.out, nullptr, false);
         ASSERT_TRUE(j.is_object()) << Describe(cmd, r);
         EXPECT_EQ(j.value("status", ""), "ok") << r.out;
         // The README shows "0.1.0+<commit>": the version names the commit built.
         CommandResult v = RunCommand({Daemon::DaemonPath(), "--version"});
         EXPECT_EQ("playbookd " + j.value("version", "") + "\n", v.out);
         EXPECT_NE(j.value("version", "").find('+'), std::string::npos) << "no commit in the version: " << r.out;
       }},
      {"build/bin/playbook call recommend",
       [](const std::string& cmd, const CommandResult& r) {
         json result = ResultOf(cmd, r);
         ASSERT_TRUE(result.contains("items") && result["items"].is_array()) << Describe(cmd, r);
         ASSERT_EQ(result["items"].size(), 3u) << Describe(cmd, r);  // "k":3 from 106 assets
         for (const json& item : result["items"]) {
           EXPECT_FALSE(item.value("title", "").empty()) << item.dump();
           EXPECT_FALSE(item.value("url", "").empty()) << item.dump();
           EXPECT_FALSE(item.value("reasons", json::array()).empty()) << item.dump();
         }
         // The first item's identity is ReadmeExample.PriceScriptFirst's.
       }},
      {"build/bin/playbook call feedback.record",
       [](const std::string& cmd, const CommandResult& r) {
         json result = ResultOf(cmd, r);
         EXPECT_EQ(result.value("accepted", -1), 1) << Describe(cmd, r);
         EXPECT_EQ(result.value("unknown_assets", -1), 0) << Describe(cmd, r);
       }},
      {"build/bin/playbook call leads.get",
       [](const std::string& cmd, const CommandResult& r) {
         json result = ResultOf(cmd, r);
         EXPECT_EQ(result.value("id", ""), "lead-42") << Describe(cmd, r);
         EXPECT_EQ(result.value("stage", ""), "evaluation") << Describe(cmd, r);
         int shown = 0;
         int used_price = 0;
         for (const json& e : result.value("history", json::array())) {
           shown += e.value("type", "") == "shown";
           used_price += e.value("type", "") == "used" && e.value("asset_id", "") == "zh-objection-price-01";
         }
         EXPECT_EQ(shown, 3) << "the three recommended assets:\n" << r.out;
         EXPECT_EQ(used_price, 1) << "the feedback line's event:\n" << r.out;
       }},
      {"build/bin/playbook import data/catalog/sample.jsonl",
       [](const std::string& cmd, const CommandResult& r) {
         const std::string said = r.out + r.err;
         EXPECT_NE(said.find("106 upserted"), std::string::npos) << Describe(cmd, r);
         EXPECT_NE(said.find("0 failed"), std::string::npos) << Describe(cmd, r);
       }},
      {"build/bin/playbook report assets",
       [](const std::string& cmd, const CommandResult& r) {
         // The used script has its row, with the three shown ones; the total counts them.
         EXPECT_EQ(LinesStartingWith(r.out, "zh-objection-price-01 ").size(), 1u) << Describe(cmd, r);
         EXPECT_EQ(LinesStartingWith(r.out, "total ").size(), 1u) << Describe(cmd, r);
       }},
      {"build/bin/playbook report unused",
       [](const std::string& cmd, const CommandResult& r) {
         EXPECT_EQ(r.out.rfind("Never used (", 0), 0u) << Describe(cmd, r);
         EXPECT_TRUE(LinesStartingWith(r.out, "zh-objection-price-01 ").empty()) << "it was used:\n" << r.out;
         EXPECT_GT(LinesStartingWith(r.out, "zh-").size(), 10u) << Describe(cmd, r);
       }},
      {"build/bin/playbook reaggregate --check",
       [](const std::string& cmd, const CommandResult& r) {
         EXPECT_NE(r.out.find(", 0 differ from the live ones"), std::string::npos) << Describe(cmd, r);
       }},
      {"curl -fsS http://127.0.0.1:7700/metrics",
       [](const std::string& cmd, const CommandResult& r) {
         // The README's recommend line, counted.
         EXPECT_EQ(r.out, "playbook_requests_total{method=\"recommend\",outcome=\"ok\"} 1\n") << Describe(cmd, r);
       }},
  };
}

TEST(Readme, EveryCommandDoesWhatTheReadmeSaysOnAFreshDaemonWithTheSample) {
  const std::vector<std::string> commands = ReadmeCommands("try");
  ASSERT_FALSE(commands.empty());
  const auto checks = Checks();
  std::vector<bool> checked(checks.size(), false);

  Newcomer newcomer;
  ASSERT_TRUE(newcomer.Start());
  for (const std::string& cmd : commands) {
    SCOPED_TRACE(cmd);
    CommandResult r = newcomer.Run(cmd);
    EXPECT_EQ(r.exit_code, 0) << Describe(cmd, r);
    EXPECT_EQ(r.err.find("rror"), std::string::npos) << "an error on stderr:\n" << Describe(cmd, r);
    std::size_t i = 0;
    while (i < checks.size() && cmd.rfind(checks[i].first, 0) != 0) ++i;
    if (i == checks.size()) {
      ADD_FAILURE() << "a README command without a check in " << __FILE__ << ": add one";
      continue;
    }
    checked[i] = true;
    checks[i].second(cmd, r);
  }
  for (std::size_t i = 0; i < checks.size(); ++i) {
    EXPECT_TRUE(checked[i]) << "checked here but no longer in the README: " << checks[i].first;
  }
}

TEST(Readme, SetUpCommandsAreTheTwoScripts) {
  const std::vector<std::string> setup = ReadmeCommands("setup");
  ASSERT_EQ(setup.size(), 2u);
  EXPECT_EQ(setup[0].rfind("tools/run.sh ", 0), 0u) << setup[0];
  EXPECT_EQ(setup[1].rfind("tools/test.sh ", 0), 0u) << setup[1];
}

// The README's example: "客户说太贵了" (the customer says it is too expensive) at evaluation shows
// the price-objection script first, for every newcomer: the README's recommend line on several
// fresh daemons, each with the sample catalog. Kept apart from the test above because it is the
// ranking's promise (engine/src/recommend.cpp, issue 11), not the README's plumbing: with the
// ranking of main on 2026-12-03 (Thompson-sampling exploration on, no feedback yet) it came
// first only now and then.
TEST(ReadmeExample, PriceScriptFirst) {
  const std::string cmd = ReadmeCommand("build/bin/playbook call recommend");
  ASSERT_FALSE(cmd.empty());
  ASSERT_NE(cmd.find("客户说太贵了"), std::string::npos) << cmd;
  constexpr int kNewcomers = 5;
  for (int n = 0; n < kNewcomers; ++n) {
    Newcomer newcomer;
    ASSERT_TRUE(newcomer.Start());
    CommandResult r = newcomer.Run(cmd);
    ASSERT_EQ(r.exit_code, 0) << Describe(cmd, r);
    json items = ResultOf(cmd, r).value("items", json::array());
    ASSERT_FALSE(items.empty()) << Describe(cmd, r);
    EXPECT_EQ(items[0].value("asset_id", ""), "zh-objection-price-01")
        << "fresh daemon " << n + 1 << " of " << kNewcomers << ":\n" << r.out;
  }
}

}  // namespace
}  // namespace playbook::testing

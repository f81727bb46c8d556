// `playbook simulate` against the real daemon: the simulated sales team runs
// through recommend and feedback.record over the real protocol.
//
// What is asserted at this size (300 leads per arm) and why: the oracle arm
// (the truly best eligible asset) beats the random arm, and the daemon's
// ranking picks content on the lead's topic far more often than random does.
// That the daemon's last-quarter win rate beats the random arm's is NOT
// asserted: with the default [ranking] weights the learned effectiveness term
// is small next to similarity, and at 300 leads (or 5000, docs/simulation.md)
// the daemon's win rate is within noise of the random arm's.
#include <cmath>
#include <map>
#include <regex>
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

// The daemon's exploration is seeded, so a seed gives one run.
const char* const kSeededRanking = "[ranking]\nseed = 42\n";

CommandResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), Daemon::CliPath());
  return RunCommand(args, {"PLAYBOOK_URL", "PLAYBOOK_TOKEN"}, std::chrono::milliseconds(180000));
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

struct ArmRow {
  int leads = 0, won = 0;
  double win_rate = 0, avg_stages = 0, mean_help = 0;
};

// The rows of the final table: "daemon     300     49     0.163     0.122-0.205 ...".
std::map<std::string, ArmRow> FinalTable(const std::string& out) {
  static const std::regex kRow(
      R"(^(daemon|random|oracle)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s+[0-9.]+-[0-9.]+\s+([0-9.]+)\s+\d+%\s+([+-][0-9.]+)\s+\d+%\s*$)");
  std::map<std::string, ArmRow> rows;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, kRow)) continue;
    ArmRow r;
    r.leads = std::stoi(m[2]);
    r.won = std::stoi(m[3]);
    r.win_rate = std::stod(m[4]);
    r.avg_stages = std::stod(m[5]);
    r.mean_help = std::stod(m[6]);
    rows[m[1]] = r;
  }
  return rows;
}

json Arm(const json& result, const std::string& name) {
  for (const json& a : result.at("arms")) {
    if (a.at("arm") == name) return a;
  }
  return json();
}


TEST(Simulate, SmallRunPrintsTheTableWithAllThreeArms) {
  Daemon d(WithConfig(kSeededRanking));
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"simulate", "--url", d.ws_url(), "--leads", "300", "--no-progress"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
  EXPECT_NE(r.out.find("contract checks: ok"), std::string::npos) << r.out;

  const auto rows = FinalTable(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  for (const auto& [arm, row] : rows) {
    EXPECT_EQ(row.leads, 300) << arm;
    EXPECT_NEAR(row.win_rate, row.won / 300.0, 0.0006) << arm;
    EXPECT_GE(row.avg_stages, 0) << arm;
    EXPECT_LE(row.avg_stages, 4) << arm;
  }
  EXPECT_GE(rows.at("oracle").win_rate, rows.at("random").win_rate) << r.out;
  EXPECT_GT(rows.at("oracle").mean_help, rows.at("daemon").mean_help) << r.out;

  // A row every 30 leads (the default is leads / 10), then the learning table.
  EXPECT_NE(r.out.find("  1-30 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  271-300 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("leads 226-300"), std::string::npos) << r.out;
}

TEST(Simulate, OneSeedOneResultAndTheOracleBeatsRandom) {
  json results[2];
  for (json& result : results) {
    Daemon d(WithConfig(kSeededRanking));  // a fresh daemon each time
    ASSERT_TRUE(d.Start()) << d.log();
    CommandResult r = Cli({"simulate", "--url", d.ws_url(), "--leads", "300", "--seed", "5", "--format", "json",
                           "--no-progress"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
    result = json::parse(r.out);
    result.erase("elapsed_s");
  }
  EXPECT_EQ(results[0], results[1]) << "the same seed gave two different runs";

  const json& res = results[0];
  EXPECT_EQ(res.at("contract").at("ok"), true) << res.at("contract").dump();
  EXPECT_EQ(res.at("feedback").at("duplicates"), 0);
  EXPECT_EQ(res.at("feedback").at("accepted"), res.at("feedback").at("events"));
  EXPECT_EQ(res.at("catalog").at("assets"), 60);
  EXPECT_EQ(res.at("catalog").at("created"), 60);
  ASSERT_EQ(res.at("rows").size(), 10u);

  const json daemon = Arm(res, "daemon"), random = Arm(res, "random"), oracle = Arm(res, "oracle");
  for (const json& a : {daemon, random, oracle}) {
    ASSERT_TRUE(a.is_object()) << res.dump();
    EXPECT_EQ(a.at("closed"), 300) << a.dump();
  }
  EXPECT_GT(daemon.at("recommend_calls").get<int>(), 300);
  // The ground truth makes a difference: the oracle wins more than random.
  EXPECT_GE(oracle.at("win_rate").get<double>(), random.at("win_rate").get<double>()) << res.dump();
  EXPECT_GT(oracle.at("mean_help").get<double>(), random.at("mean_help").get<double>() + 0.3);
}

// Does the ranking learn? At 2,000 leads per arm (seeds 1, 2 and 3 measured:
// daemon mean help +0.09..+0.18 against random's -0.05..-0.07, its first item
// the truly best one in 16-19% of calls in the first quarter and 27-35% in the
// last), the content the daemon's reps use helps clearly more than random
// content, and its top pick gets better over time. Deterministic for a seed.
TEST(Simulate, DaemonLearnsToPickHelpfulContent) {
  Daemon d(WithConfig(kSeededRanking));
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"simulate", "--url", d.ws_url(), "--leads", "2000", "--seed", "2", "--format", "json",
                         "--no-progress"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
  const json res = json::parse(r.out);
  const json daemon = Arm(res, "daemon"), random = Arm(res, "random");
  EXPECT_GT(daemon.at("mean_help").get<double>(), random.at("mean_help").get<double>() + 0.05) << r.out;
  EXPECT_GT(daemon.at("last_quarter").at("top1_best_rate").get<double>(),
            daemon.at("first_quarter").at("top1_best_rate").get<double>() + 0.05)
      << r.out;
}

TEST(Simulate, CatalogFileRerunWarningAndRoles) {
  Daemon d(WithConfig(std::string(kSeededRanking) +
                      "[[auth.tokens]]\nrole = \"crm\"\ntoken = \"crm-token-0123456789abcdef\"\n"
                      "[[auth.tokens]]\nrole = \"marketing\"\ntoken = \"mkt-token-0123456789abcdef\"\n"));
  ASSERT_TRUE(d.Start()) << d.log();

  // A crm token may not upsert the simulation's catalog.
  CommandResult crm = Cli({"simulate", "--url", d.ws_url(), "--token", "crm-token-0123456789abcdef", "--leads",
                           "10", "--no-progress"});
  EXPECT_EQ(crm.exit_code, 1) << Describe(crm);
  EXPECT_NE(crm.err.find("-32001"), std::string::npos) << crm.err;

  // The sample catalog, under the simulation's prefix.
  const std::string sample = std::string(PLAYBOOK_DATA_DIR) + "/catalog/sample.jsonl";
  CommandResult file = Cli({"simulate", "--url", d.ws_url(), "--token", "mkt-token-0123456789abcdef", "--leads",
                            "30", "--catalog", sample, "--format", "json", "--no-progress"});
  ASSERT_EQ(file.exit_code, 0) << Describe(file);
  const json res = json::parse(file.out);
  EXPECT_EQ(res.at("catalog").at("source"), sample);
  EXPECT_GE(res.at("catalog").at("assets").get<int>(), 80);
  EXPECT_EQ(res.at("catalog").at("prefix"), "sim-1-");

  // The same seed again: the daemon already holds its assets and feedback.
  CommandResult again = Cli({"simulate", "--url", d.ws_url(), "--token", "mkt-token-0123456789abcdef", "--leads",
                             "30", "--catalog", sample, "--no-progress"});
  EXPECT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_NE(again.err.find("already in the daemon"), std::string::npos) << again.err;
}

// The built-in holdout (docs/experiment.md) measured by the simulation: the
// daemon splits the daemon arm's leads into treatment and holdout, and the run
// ends with reports.experiment over its window. RANKING_FOR_LIFT makes the
// learnt evidence weigh as much as similarity, so that the lift is large enough
// to show at this size (the defaults' lift is a few points: docs/simulation.md).
const char* const kHoldoutConfig = "[experiment]\nholdout_fraction = 0.2\nsalt = \"sim\"\n";
const char* const kRankingForLift = "[ranking]\nseed = 42\nevidence_max = 1.0\nevidence_half = 5\n";

json HoldoutRun(const std::string& config, std::vector<std::string> extra) {
  Daemon d(WithConfig(config));
  EXPECT_TRUE(d.Start()) << d.log();
  std::vector<std::string> args = {"simulate", "--url", d.ws_url(), "--holdout", "0.2", "--format", "json",
                                   "--no-progress"};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = Cli(args);
  EXPECT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
  return r.exit_code == 0 ? json::parse(r.out) : json();
}

// At 6000 leads seeds 1-4 all gave intervals clear of 0 (lower ends +4.9, +2.4, +2.4, +8.1
// points); at 3000, one in four did not (docs/simulation.md).
TEST(Simulate, HoldoutLiftExcludesZeroWhenTheDaemonLearns) {
  const json res = HoldoutRun(std::string(kRankingForLift) + kHoldoutConfig,
                              {"--leads", "6000", "--seed", "1", "--follow", "1", "--k", "1", "--learn-from", "daemon"});
  ASSERT_TRUE(res.is_object());
  const json& x = res.at("experiment");
  ASSERT_TRUE(x.is_object()) << res.dump();
  const json &t = x.at("arms").at("treatment"), &h = x.at("arms").at("holdout");
  // Every daemon-arm lead was recommended (assigned) and closed; about a fifth are held out.
  EXPECT_EQ(t.at("leads").get<int>() + h.at("leads").get<int>(), 6000) << x.dump();
  EXPECT_EQ(t.at("closed").get<int>() + h.at("closed").get<int>(), 6000) << x.dump();
  EXPECT_NEAR(h.at("leads").get<double>() / 6000, 0.2, 0.02) << x.dump();
  EXPECT_GT(x.at("difference").at("ci")[0].get<double>(), 0) << x.dump();
  EXPECT_EQ(x.at("conclusive"), true) << x.dump();
}

TEST(Simulate, HoldoutLiftContainsZeroWhenTheRankingIsRandom) {
  const json res = HoldoutRun(std::string(kRankingForLift) + kHoldoutConfig,
                              {"--leads", "3000", "--seed", "3", "--follow", "1", "--k", "1", "--learn-from", "daemon",
                               "--random-ranking"});
  ASSERT_TRUE(res.is_object());
  const json& x = res.at("experiment");
  ASSERT_TRUE(x.is_object()) << res.dump();
  EXPECT_EQ(x.at("arms").at("treatment").at("closed").get<int>() + x.at("arms").at("holdout").at("closed").get<int>(),
            3000)
      << x.dump();
  const json& ci = x.at("difference").at("ci");
  EXPECT_LE(ci[0].get<double>(), 0) << x.dump();
  EXPECT_GE(ci[1].get<double>(), 0) << x.dump();
  EXPECT_EQ(x.at("conclusive"), false) << x.dump();
}

TEST(Simulate, HoldoutMustMatchTheDaemon) {
  Daemon d(WithConfig(kSeededRanking));  // the holdout off
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"simulate", "--url", d.ws_url(), "--holdout", "0.2", "--leads", "10", "--no-progress"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("holdout_fraction is 0.00"), std::string::npos) << r.err;
}

TEST(Simulate, UsageErrorsSendNothing) {
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
           {"--follow", "1.5"},
           {"--leads", "0"},
           {"--k", "101"},
           {"--format", "xml"},
           {"--learn-from", "nobody"},
           {"--holdout", "0.6"},
           {"--holdout", "x"},
           {"--catalog", "/no/such/file.jsonl"},
           {"extra"}}) {
    bad.insert(bad.begin(), {"simulate", "--url", "ws://127.0.0.1:9/v1"});
    CommandResult r = Cli(bad);
    EXPECT_EQ(r.exit_code, 2) << bad[3] << "\n" << Describe(r);
  }
  CommandResult help = Cli({"simulate", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--follow"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace playbook::testing

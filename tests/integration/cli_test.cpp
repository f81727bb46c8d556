// The command-line tool `playbook` against the real daemon.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/daemon.h"

namespace playbook::testing {
namespace {

using nlohmann::json;

constexpr const char* kAdminToken = "test-admin-token-0123456789";

// The environment every CLI run starts from: no PLAYBOOK_* leaking in from the
// developer's shell ("K" without '=' removes K).
std::vector<std::string> CleanEnv(std::vector<std::string> extra = {}) {
  std::vector<std::string> env = {"PLAYBOOK_URL", "PLAYBOOK_TOKEN"};
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

CommandResult Cli(std::vector<std::string> args, std::vector<std::string> env = {}) {
  args.insert(args.begin(), Daemon::CliPath());
  return RunCommand(args, CleanEnv(std::move(env)));
}

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

json ParseOut(const CommandResult& r) {
  json j = json::parse(r.out, nullptr, false);
  return j.is_discarded() ? json() : j;
}

// A loopback port with nothing listening: bind port 0, read it, close.
uint16_t UnusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

DaemonOptions WithAdminToken() {
  DaemonOptions o;
  o.extra_config = std::string("[[auth.tokens]]\nrole = \"admin\"\ntoken = \"") + kAdminToken + "\"\n";
  return o;
}

TEST(Cli, VersionPrintsTheBuildVersion) {
  CommandResult r = Cli({"--version"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.rfind("playbook ", 0), 0u) << r.out;
  ASSERT_GT(r.out.size(), std::string("playbook \n").size()) << r.out;
  EXPECT_EQ(r.out.back(), '\n');
  EXPECT_TRUE(isdigit(static_cast<unsigned char>(r.out[9]))) << r.out;  // "playbook 0.1.0..."
}

TEST(Cli, HelpListsTheSubcommands) {
  CommandResult r = Cli({"--help"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const char* word : {"call", "import", "export", "reindex", "--url", "--batch", "--with-vectors"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  }

  CommandResult none = Cli({});
  EXPECT_EQ(none.exit_code, 2) << Describe(none);
  EXPECT_NE(none.err.find("call"), std::string::npos) << none.err;
}

TEST(Cli, EverySubcommandHasItsOwnHelp) {
  for (const char* sub : {"call", "import", "export", "reindex"}) {
    CommandResult r = Cli({sub, "--help"});
    ASSERT_EQ(r.exit_code, 0) << sub << "\n" << Describe(r);
    EXPECT_EQ(r.out.rfind(std::string("Usage: playbook ") + sub, 0), 0u) << r.out;
    EXPECT_NE(r.out.find("--url"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Exit status"), std::string::npos) << sub << "\n" << r.out;
  }
}

TEST(Cli, UnknownSubcommandOrOptionIsAUsageError) {
  CommandResult r = Cli({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;

  CommandResult opt = Cli({"call", "--bogus", "server.stats"});
  EXPECT_EQ(opt.exit_code, 2) << Describe(opt);
  EXPECT_NE(opt.err.find("--bogus"), std::string::npos) << opt.err;

  CommandResult missing = Cli({"call"});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);

  for (const char* sub : {"import", "export", "reindex"}) {
    CommandResult bogus = Cli({sub, "--bogus"});
    EXPECT_EQ(bogus.exit_code, 2) << sub << "\n" << Describe(bogus);
    EXPECT_NE(bogus.err.find("--bogus"), std::string::npos) << bogus.err;
  }
}

TEST(Cli, BadJsonParamsExitTwoWithoutConnecting) {
  // Nothing listens on this port: had the tool tried to connect, it would exit 3.
  const std::string url = "ws://127.0.0.1:" + std::to_string(UnusedPort()) + "/v1";
  CommandResult r = Cli({"call", "--url", url, "server.stats", "{not json"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("JSON-PARAMS"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Cli, NothingListeningExitsThree) {
  const std::string url = "ws://127.0.0.1:" + std::to_string(UnusedPort()) + "/v1";
  CommandResult r = Cli({"call", "--url", url, "--timeout", "5", "server.stats"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find(url), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Cli, MalformedUrlIsRefused) {
  CommandResult r = Cli({"call", "--url", "tcp://nowhere", "server.stats"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("tcp://nowhere"), std::string::npos) << r.err;
}

TEST(Cli, CallServerStatsPrintsTheResult) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"call", "--url", d.ws_url(), "server.stats", "{}"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
  json response = ParseOut(r);
  ASSERT_TRUE(response.is_object()) << r.out;
  EXPECT_EQ(response["jsonrpc"], "2.0");
  EXPECT_EQ(response["id"], 1);
  ASSERT_TRUE(response.contains("result")) << r.out;
  ASSERT_TRUE(response["result"].is_object()) << r.out;
  EXPECT_TRUE(response["result"].contains("version")) << r.out;
  EXPECT_TRUE(response["result"].contains("uptime_ms")) << r.out;
  // Pretty-printed with a two-space indent.
  EXPECT_NE(r.out.find("\n  \"result\": {"), std::string::npos) << r.out;
}

TEST(Cli, ParamsDefaultToAnEmptyObject) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"call", "--url=" + d.ws_url(), "server.stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(ParseOut(r).contains("result")) << r.out;
}

TEST(Cli, UnknownMethodExitsOneWithMethodNotFound) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"call", "--url", d.ws_url(), "no.such.method", "{}"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  json response = ParseOut(r);
  ASSERT_TRUE(response.is_object()) << r.out;
  ASSERT_TRUE(response.contains("error")) << r.out;
  EXPECT_EQ(response["error"]["code"], -32601) << r.out;
  EXPECT_FALSE(response.contains("result"));
}

TEST(Cli, PlaybookUrlEnvironmentIsHonoured) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"call", "server.stats"}, {"PLAYBOOK_URL=" + d.ws_url()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(ParseOut(r)["result"].contains("version")) << r.out;

  // --url wins over the environment.
  const std::string dead = "ws://127.0.0.1:" + std::to_string(UnusedPort()) + "/v1";
  CommandResult over = Cli({"call", "--url", d.ws_url(), "server.stats"},
                           {"PLAYBOOK_URL=" + dead});
  EXPECT_EQ(over.exit_code, 0) << Describe(over);

  // And the environment is really used: pointing it nowhere fails.
  CommandResult nowhere = Cli({"call", "--timeout", "5", "server.stats"}, {"PLAYBOOK_URL=" + dead});
  EXPECT_EQ(nowhere.exit_code, 3) << Describe(nowhere);
  EXPECT_NE(nowhere.err.find(dead), std::string::npos) << nowhere.err;
}

TEST(Cli, WithoutTokenIsRefused) {
  Daemon d(WithAdminToken());
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"call", "--url", d.ws_url(), "server.stats"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_TRUE(r.err.find("401") != std::string::npos || r.err.find("token") != std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find(kAdminToken), std::string::npos);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Cli, WrongTokenIsRefusedAndNotEchoed) {
  Daemon d(WithAdminToken());
  ASSERT_TRUE(d.Start()) << d.log();
  const std::string wrong = "wrong-token-abcdefghijklmnop";
  CommandResult r = Cli({"call", "--url", d.ws_url(), "--token", wrong, "server.stats"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_NE(r.err.find("token"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(wrong), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find(wrong), std::string::npos) << r.out;
}

TEST(Cli, TokenOptionIsAccepted) {
  Daemon d(WithAdminToken());
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r =
      Cli({"call", "--url", d.ws_url(), "--token", kAdminToken, "server.stats", "{}"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\ndaemon log:\n" << d.log();
  EXPECT_TRUE(ParseOut(r)["result"].contains("version")) << r.out;
  EXPECT_EQ(r.err.find(kAdminToken), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find(kAdminToken), std::string::npos) << r.out;
}

TEST(Cli, TokenEnvironmentIsAccepted) {
  Daemon d(WithAdminToken());
  ASSERT_TRUE(d.Start()) << d.log();
  CommandResult r = Cli({"call", "--url", d.ws_url(), "server.stats"},
                        {std::string("PLAYBOOK_TOKEN=") + kAdminToken});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(ParseOut(r)["result"].contains("version")) << r.out;
}

}  // namespace
}  // namespace playbook::testing

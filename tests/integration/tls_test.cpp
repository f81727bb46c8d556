// TLS on the daemon's port ([server.tls] cert, key): https and wss against the
// real playbookd with a self-signed certificate made at test time by the
// `openssl` command (tools/install-deps.sh --with-test-tools installs it). The
// client verifies the peer by default: trusting the certificate works, not
// trusting it fails the handshake; plain ws:// to the TLS port fails cleanly.
// See docs/operations.md ("TLS and reverse proxies").
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAdminToken = "admin-token-tls-0123456789abc";

struct Certificate {
  std::string cert, key;
};

// A self-signed certificate for localhost and 127.0.0.1 (an EC key: quick to make).
bool MakeCertificate(const std::string& dir, Certificate* out) {
  out->cert = dir + "/cert.pem";
  out->key = dir + "/key.pem";
  CommandResult r = RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", out->key, "-out",
                                out->cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                                "subjectAltName=DNS:localhost,IP:127.0.0.1"});
  if (r.exit_code != 0) {
    ADD_FAILURE() << "openssl req failed (" << r.exit_code << "): " << r.err;
    return false;
  }
  return true;
}

std::string TlsConfig(const Certificate& c) {
  return "[server.tls]\ncert = \"" + c.cert + "\"\nkey = \"" + c.key + "\"\n[[auth.tokens]]\nrole = \"admin\"\n" +
         "token = \"" + kAdminToken + "\"\nname = \"tls-admin\"\n";
}

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    cert_ = new Certificate();
    ASSERT_TRUE(MakeCertificate(dir_->path(), cert_));
    daemon_ = new Daemon(WithConfig(TlsConfig(*cert_)));
    ASSERT_TRUE(daemon_->Start()) << daemon_->log();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete cert_;
    delete dir_;
    daemon_ = nullptr;
  }
  void TearDown() override {
    if (HasFailure() && daemon_) std::cerr << "---- daemon log ----\n" << daemon_->log() << "\n";
  }
  static client::Url Url(const std::string& text) {
    auto u = client::ParseUrl(text);
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    return u.ok() ? u.value() : client::Url{};
  }
  static client::TlsOptions Trusting() { return client::TlsOptions{cert_->cert}; }
  // Healthy: a trusting wss client can call.
  static void ExpectServing() {
    client::WsClient ws;
    ws.set_tls(Trusting());
    Status s = ws.Connect(Url(daemon_->wss_url()), kAdminToken);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(ws.Send(R"({"jsonrpc":"2.0","id":7,"method":"index.status"})").ok());
    client::Message m = ws.Read();
    ASSERT_EQ(m.kind, client::Message::Kind::kText) << m.error;
    json r = json::parse(m.data);
    EXPECT_EQ(r["id"], 7);
    EXPECT_TRUE(r.contains("result")) << m.data;
    EXPECT_TRUE(ws.Close().ok());
  }

  static TempDir* dir_;
  static Certificate* cert_;
  static Daemon* daemon_;
};
TempDir* Tls::dir_ = nullptr;
Certificate* Tls::cert_ = nullptr;
Daemon* Tls::daemon_ = nullptr;

std::string HttpsUrl(uint16_t port, const std::string& target) {
  return "https://127.0.0.1:" + std::to_string(port) + target;
}

TEST_F(Tls, HttpsHealthzAnswersWithTheSecurityHeaders) {
  auto r = client::HttpRequest(Url(HttpsUrl(daemon_->port(), "/healthz")), "GET", {}, 10000ms, Trusting());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value().status, 200);
  EXPECT_EQ(json::parse(r.value().body)["status"], "ok");
  EXPECT_EQ(r.value().headers["x-content-type-options"], "nosniff");
  EXPECT_EQ(r.value().headers["x-frame-options"], "DENY");
  // The dashboard comes over https too, keep-alive or not.
  auto page = client::HttpRequest(Url(HttpsUrl(daemon_->port(), "/")), "GET", {}, 10000ms, Trusting());
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page.value().status, 200);
}

TEST_F(Tls, WssJsonRpcWorksForAClientTrustingTheCertificate) {
  ExpectServing();
  client::WsClient ws;
  ws.set_tls(Trusting());
  ASSERT_TRUE(ws.Connect(Url(daemon_->wss_url()), kAdminToken).ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(ws.Send(R"({"jsonrpc":"2.0","id":)" + std::to_string(i) +
                        R"(,"method":"debug.sleep","params":{"ms":0}})").ok());
  }
  // Pipelined frames are answered as they finish, in any order: each once.
  std::vector<int> ids;
  for (int i = 0; i < 20; ++i) {
    client::Message m = ws.Read();
    ASSERT_EQ(m.kind, client::Message::Kind::kText) << m.error;
    ids.push_back(json::parse(m.data)["id"].get<int>());
  }
  std::sort(ids.begin(), ids.end());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ids[static_cast<size_t>(i)], i);
  // A wrong token is still refused over TLS.
  client::WsClient wrong;
  wrong.set_tls(Trusting());
  Status s = wrong.Connect(Url(daemon_->wss_url()), "not-the-token");
  EXPECT_EQ(s.code(), Status::Code::kUnauthorized) << s.ToString();
  EXPECT_EQ(wrong.handshake_status(), 401);
}

TEST_F(Tls, AClientThatDoesNotTrustTheCertificateFailsTheHandshake) {
  client::WsClient ws;  // the system's CAs: the self-signed certificate is not among them
  Status s = ws.Connect(Url(daemon_->wss_url()), kAdminToken);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("certificate verify failed"), std::string::npos) << s.ToString();
  EXPECT_EQ(ws.handshake_status(), 0);
  auto r = client::HttpRequest(Url(HttpsUrl(daemon_->port(), "/healthz")), "GET");
  EXPECT_FALSE(r.ok());
  // A certificate that does not name the host fails as well: trust it, but ask for another name.
  client::WsClient other;
  other.set_tls(Trusting());
  client::Url url = Url(daemon_->wss_url());
  url.host = "127.0.0.2";  // also loopback, but not in the certificate
  EXPECT_FALSE(other.Connect(url, kAdminToken, 3000ms).ok());
  ExpectServing();
}

TEST_F(Tls, PlainWebSocketToTheTlsPortFailsCleanly) {
  client::WsClient ws;
  Status s = ws.Connect(Url(daemon_->ws_url()), kAdminToken);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ws.handshake_status(), 400) << s.ToString();
  auto plain = client::HttpGet(daemon_->host(), daemon_->port(), "/healthz");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain.value().status, 400);
  EXPECT_NE(plain.value().body.find("TLS"), std::string::npos) << plain.value().body;
  // Garbage that is neither: the connection is dropped and the daemon goes on.
  auto junk = client::HttpRequest(daemon_->host(), daemon_->port(), "\x16\x03\x01", "/", {}, 3000ms);
  (void)junk;
  EXPECT_TRUE(daemon_->running());
  ExpectServing();
}

TEST_F(Tls, TheCliSpeaksWssWithCacert) {
  const std::vector<std::string> call = {Daemon::CliPath(), "call", "index.status", "--url",
                                         daemon_->wss_url(), "--token", kAdminToken};
  std::vector<std::string> with_flag = call;
  with_flag.insert(with_flag.end(), {"--cacert", cert_->cert});
  CommandResult ok = RunCommand(with_flag, {"PLAYBOOK_CACERT"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("\"catalog_seq\""), std::string::npos) << ok.out;
  CommandResult env = RunCommand(call, {"PLAYBOOK_CACERT=" + cert_->cert});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  CommandResult untrusted = RunCommand(call, {"PLAYBOOK_CACERT"});
  EXPECT_EQ(untrusted.exit_code, 3) << untrusted.out;
  EXPECT_NE(untrusted.err.find("certificate verify failed"), std::string::npos) << untrusted.err;
  EXPECT_NE(untrusted.err.find("--cacert"), std::string::npos) << untrusted.err;
  CommandResult missing = RunCommand(
      {Daemon::CliPath(), "call", "index.status", "--url", daemon_->wss_url(), "--cacert", dir_->path() + "/nope.pem"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("nope.pem"), std::string::npos) << missing.err;
}

// Start is refused with a message naming the key when the files are unusable.
TEST(TlsConfig, UnreadableOrInvalidFilesStopTheStartNamingTheKey) {
  TempDir dir;
  Certificate good;
  ASSERT_TRUE(MakeCertificate(dir.path(), &good));
  const std::string garbage = dir.path() + "/garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  struct Case {
    std::string config, expect;
  };
  const std::vector<Case> cases = {
      {"[server.tls]\ncert = \"" + dir.path() + "/missing.pem\"\nkey = \"" + good.key + "\"\n", "server.tls.cert"},
      {"[server.tls]\ncert = \"" + good.cert + "\"\nkey = \"" + dir.path() + "/missing.pem\"\n", "server.tls.key"},
      {"[server.tls]\ncert = \"" + garbage + "\"\nkey = \"" + good.key + "\"\n", "server.tls.cert"},
      {"[server.tls]\ncert = \"" + good.cert + "\"\nkey = \"" + garbage + "\"\n", "server.tls.key"},
      {"[server.tls]\ncert = \"" + good.cert + "\"\n", "server.tls.key: missing"},
  };
  for (const Case& c : cases) {
    Daemon d(WithConfig(c.config));
    EXPECT_FALSE(d.Start()) << c.config;
    EXPECT_EQ(d.Wait(10000ms), 1) << c.config;
    EXPECT_NE(d.log().find(c.expect), std::string::npos) << c.config << "\n" << d.log();
  }
}

}  // namespace
}  // namespace playbook::testing

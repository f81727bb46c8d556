// playbookd under systemd, without systemd. Type=notify: the test binds the datagram socket a
// service manager would and starts the real playbookd with NOTIFY_SOCKET naming it (a path, or an
// abstract "@name"). The journal: JOURNAL_STREAM naming the daemon's stderr.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

using namespace std::chrono_literals;

// The service manager's end: an AF_UNIX datagram socket bound to `address` ("/path" or "@name").
class NotifyListener {
 public:
  explicit NotifyListener(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address_.data(), address_.size());
    if (address_[0] == '@') addr.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0;
  }
  ~NotifyListener() {
    if (fd_ >= 0) ::close(fd_);
    if (address_[0] == '/') ::unlink(address_.c_str());
  }
  bool bound() const { return bound_; }
  const std::string& address() const { return address_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> Receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

  // Datagrams until one with the line `line`, which is returned (with its other lines); nullopt
  // after `timeout`. The datagrams passed over are appended to `seen`.
  std::optional<std::string> WaitFor(const std::string& line, std::chrono::milliseconds timeout,
                                     std::string* seen = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      std::optional<std::string> m = Receive(left);
      if (!m) return std::nullopt;
      if (HasLine(*m, line)) return m;
      if (seen) *seen += *m + "\n--\n";
    }
  }

  static bool HasLine(const std::string& message, const std::string& line) {
    std::istringstream in(message);
    for (std::string l; std::getline(in, l);) {
      if (l == line) return true;
    }
    return false;
  }

 private:
  std::string address_;
  int fd_ = -1;
  bool bound_ = false;
};

std::string UniqueAbstractName() {
  std::random_device rd;
  return "@playbook-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
}

// The port in the daemon's ready file, 0 when there is none (yet).
uint16_t ReadyFilePort(const Daemon& d) {
  std::ifstream in(d.dir() + "/ready.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = json::parse(ss.str(), nullptr, false);
  if (!j.is_object() || !j.contains("port") || !j["port"].is_number_unsigned()) return 0;
  return j["port"].get<uint16_t>();
}

DaemonOptions NotifyingTo(const std::string& address) {
  DaemonOptions o;
  o.env = {"NOTIFY_SOCKET=" + address};
  o.wait_until_serving = false;
  return o;
}

// READY=1 only once connections are accepted: checked the moment it arrives, on a thread of its
// own while Start waits, by connecting to the port of the ready file (written once listening).
void ExpectReadyThenServingThenStopping(NotifyListener& n) {
  ASSERT_TRUE(n.bound()) << n.address() << ": " << std::strerror(errno);
  Daemon d(NotifyingTo(n.address()));
  std::optional<std::string> ready;
  int health_at_ready = 0;
  std::thread watcher([&] {
    ready = n.WaitFor("READY=1", 30s);
    if (!ready) return;
    const uint16_t port = ReadyFilePort(d);
    if (port == 0) return;
    auto health = client::HttpGet(d.host(), port, "/healthz");
    if (health.ok()) health_at_ready = health.value().status;
  });
  const bool started = d.Start();
  watcher.join();
  ASSERT_TRUE(started) << d.log();
  ASSERT_TRUE(ready.has_value()) << "no READY=1 within 30 s\n" << d.log();
  EXPECT_TRUE(NotifyListener::HasLine(*ready, "STATUS=starting: opening the data dir")) << *ready;
  // Answered at once: 503 "starting" while the data dir opens, 200 once it serves.
  EXPECT_TRUE(health_at_ready == 200 || health_at_ready == 503) << health_at_ready << "\n" << d.log();

  std::string seen;
  EXPECT_TRUE(n.WaitFor("STATUS=serving", 30s, &seen)) << seen << d.log();
  d.Signal(SIGTERM);
  std::optional<std::string> stopping = n.WaitFor("STOPPING=1", 20s, &seen);
  ASSERT_TRUE(stopping.has_value()) << seen << d.log();
  EXPECT_TRUE(NotifyListener::HasLine(*stopping, "STATUS=draining")) << *stopping;
  // The stop may take shutdown_grace_ms (5 s by default) + 32 s: systemd's stop timeout is extended.
  EXPECT_TRUE(NotifyListener::HasLine(*stopping, "EXTEND_TIMEOUT_USEC=37000000")) << *stopping;
  EXPECT_EQ(d.Wait(20s), 0) << d.log();
}

TEST(ServiceNotify, PathSocketGetsReadyWhenListeningAndStoppingAtSigterm) {
  TempDir dir;
  NotifyListener n(dir.path() + "/notify.sock");
  ExpectReadyThenServingThenStopping(n);
}

TEST(ServiceNotify, AbstractSocketGetsReadyAndStopping) {
  NotifyListener n(UniqueAbstractName());
  ExpectReadyThenServingThenStopping(n);
}

// A NOTIFY_SOCKET nobody listens on, or that is malformed, is worth a warning, not a failed start.
TEST(ServiceNotify, UnreachableOrMalformedSocketOnlyWarns) {
  TempDir dir;
  for (const std::string& address : {dir.path() + "/nobody.sock", std::string("relative.sock")}) {
    Daemon d(NotifyingTo(address));
    ASSERT_TRUE(d.Start()) << address << "\n" << d.log();
    EXPECT_NE(d.log().find("NOTIFY_SOCKET"), std::string::npos) << d.log();
    EXPECT_EQ(d.Stop(), 0) << d.log();
  }
}

// Without NOTIFY_SOCKET (not run by systemd) nothing is sent and nothing is said about it.
TEST(ServiceNotify, SilentWithoutNotifySocket) {
  Daemon d;
  ASSERT_TRUE(d.Start()) << d.log();
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_EQ(d.log().find("NOTIFY_SOCKET"), std::string::npos) << d.log();
}

// With stderr the journal (JOURNAL_STREAM = its device:inode, as systemd sets it), each line starts
// with its syslog priority, which journald strips and records (journalctl -p), and no time.
TEST(ServiceJournal, LinesCarryTheirPriorityWhenStderrIsTheJournal) {
  Daemon d;
  { std::ofstream touch(d.log_path()); }
  struct stat st {};
  ASSERT_EQ(::stat(d.log_path().c_str(), &st), 0);
  d.AddEnv("JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
  ASSERT_TRUE(d.Start()) << d.log();
  EXPECT_EQ(d.Stop(), 0) << d.log();
  const std::string log = d.log();
  EXPECT_EQ(log.rfind("<6>info playbookd ", 0), 0u) << log;
  EXPECT_NE(log.find("\n<4>warning debug.* test methods are enabled\n"), std::string::npos) << log;
  EXPECT_NE(log.find("\n<6>info storage flushed; bye\n"), std::string::npos) << log;
}

// A JOURNAL_STREAM that is not stderr (inherited by a child of a service, say) changes nothing.
TEST(ServiceJournal, PlainLinesWhenStderrIsNotTheJournal) {
  Daemon d;
  d.AddEnv("JOURNAL_STREAM=1:2");
  ASSERT_TRUE(d.Start()) << d.log();
  EXPECT_EQ(d.Stop(), 0) << d.log();
  EXPECT_EQ(d.log().find("<6>"), std::string::npos) << d.log();
  EXPECT_NE(d.log().find(" info storage flushed; bye"), std::string::npos) << d.log();
}

}  // namespace
}  // namespace playbook::testing

// NotifySocket's addresses: absolute paths and abstract "@names", refused forms, and
// NotifyServiceManager's reading of $NOTIFY_SOCKET. The daemon's use of it is
// tests/integration/service_test.cpp.
#include "playbook/server/service_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace playbook::server {
namespace {

// A bound AF_UNIX datagram socket ("/path" or "@name"); Receive returns "" after 2 s.
class Receiver {
 public:
  explicit Receiver(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address_.data(), address_.size());
    if (address_[0] == '@') addr.sun_path[0] = '\0';
    bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr),
                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size())) == 0;
  }
  ~Receiver() {
    ::close(fd_);
    if (address_[0] == '/') ::unlink(address_.c_str());
  }
  bool bound() const { return bound_; }
  std::string Receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return "";
    char buf[512];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  std::string address_;
  int fd_ = -1;
  bool bound_ = false;
};

std::string Unique(const char* prefix) {
  return std::string(prefix) + "playbook-notify-unit-" + std::to_string(::getpid());
}

TEST(NotifySocket, SendsOneDatagramToAPath) {
  Receiver r(Unique("/tmp/") + ".sock");
  ASSERT_TRUE(r.bound());
  ASSERT_TRUE(NotifySocket(Unique("/tmp/") + ".sock", "READY=1\nSTATUS=x").ok());
  EXPECT_EQ(r.Receive(), "READY=1\nSTATUS=x");
}

TEST(NotifySocket, SendsToAnAbstractName) {
  Receiver r(Unique("@"));
  ASSERT_TRUE(r.bound());
  ASSERT_TRUE(NotifySocket(Unique("@"), "STOPPING=1").ok());
  EXPECT_EQ(r.Receive(), "STOPPING=1");
}

TEST(NotifySocket, RefusesRelativeEmptyAndTooLongNames) {
  for (const std::string& bad : {std::string("notify.sock"), std::string(""), std::string("@"), std::string("/"),
                                 "/" + std::string(107, 'a'), "@" + std::string(107, 'a')}) {
    const Status s = NotifySocket(bad, "READY=1");
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << bad << ": " << s.ToString();
    EXPECT_EQ(s.field(), "NOTIFY_SOCKET") << bad;
  }
  // 107 bytes is the longest a sockaddr_un takes here; it is tried (and nobody listens).
  EXPECT_EQ(NotifySocket("/" + std::string(106, 'a'), "READY=1").code(), Status::Code::kIOError);
}

TEST(NotifySocket, NobodyListeningIsAnIOError) {
  const Status s = NotifySocket(Unique("/tmp/") + ".nobody", "READY=1");
  EXPECT_EQ(s.code(), Status::Code::kIOError) << s.ToString();
}

TEST(NotifySocket, ManagerSocketComesFromTheEnvironment) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(NotifyServiceManager("READY=1").ok());  // not started by systemd: nothing to do
  Receiver r(Unique("@env-"));
  ASSERT_TRUE(r.bound());
  ::setenv("NOTIFY_SOCKET", Unique("@env-").c_str(), 1);
  EXPECT_TRUE(NotifyServiceManager("READY=1").ok());
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(r.Receive(), "READY=1");
}

}  // namespace
}  // namespace playbook::server

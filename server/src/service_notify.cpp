// sd_notify(3) by hand: what libsystemd's sd_notify does for a plain message (no file
// descriptors, no credentials to pass), so the daemon needs no libsystemd.
#include "playbook/server/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace playbook::server {

Status NotifySocket(std::string_view socket, std::string_view message) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // An abstract name's length is part of the address (no terminating NUL); a path's includes none
  // either: both are passed with their exact length.
  const bool abstract = !socket.empty() && socket.front() == '@';
  if (socket.empty() || (socket.front() != '/' && !abstract)) {
    return Status::InvalidArgument("NOTIFY_SOCKET", "expected an absolute path or @name, got '" +
                                                        std::string(socket) + "'");
  }
  if (socket.size() > sizeof(addr.sun_path) - 1 || socket.size() < 2) {
    return Status::InvalidArgument("NOTIFY_SOCKET", "socket name of " + std::to_string(socket.size()) +
                                                        " bytes: expected 2.." +
                                                        std::to_string(sizeof(addr.sun_path) - 1));
  }
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  if (abstract) addr.sun_path[0] = '\0';
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size());

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(std::string("NOTIFY_SOCKET: socket: ") + std::strerror(errno));
  ssize_t sent;
  do {
    sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
                    addr_len);
  } while (sent < 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (sent < 0) {
    return Status::IOError("NOTIFY_SOCKET: cannot send to '" + std::string(socket) + "': " + std::strerror(err));
  }
  if (static_cast<size_t>(sent) != message.size()) {
    return Status::IOError("NOTIFY_SOCKET: short send to '" + std::string(socket) + "'");
  }
  return Status::Ok();
}

Status NotifyServiceManager(std::string_view message) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') return Status::Ok();
  return NotifySocket(socket, message);
}

}  // namespace playbook::server

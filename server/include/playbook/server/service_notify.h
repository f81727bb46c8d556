// Readiness and stop notifications to the service manager (systemd's Type=notify), without
// libsystemd: the sd_notify(3) protocol is one datagram of "KEY=VALUE" lines sent to the AF_UNIX
// socket named by $NOTIFY_SOCKET, which systemd sets for a notify service.
#pragma once

#include <string_view>

#include "playbook/engine/status.h"

namespace playbook::server {

// Sends `message` (e.g. "READY=1\nSTATUS=serving") to the socket in $NOTIFY_SOCKET.
// OK without sending when the variable is unset or empty (not started by systemd); otherwise what
// NotifySocket returns. Any thread; one datagram per call, so lines of one message arrive together.
Status NotifyServiceManager(std::string_view message);

// Sends `message` as one datagram to `socket`: an absolute path ("/run/systemd/notify") or, with a
// leading '@', a name in Linux's abstract namespace ("@name": the '@' becomes a NUL byte).
// InvalidArgument("NOTIFY_SOCKET") for any other form or a name too long for sockaddr_un (107
// bytes); IOError when the socket cannot be made or the datagram cannot be sent.
Status NotifySocket(std::string_view socket, std::string_view message);

}  // namespace playbook::server

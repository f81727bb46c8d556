// The two kinds of connection: an HTTP session reads requests and serves
// /healthz and /metrics until one asks to upgrade at /v1; then a WebSocket
// session takes the stream over. Both run over TCP, or over TLS when the
// server has a TLS context (SharedState::tls). Private to server/.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "playbook/server/config.h"

namespace playbook::server {

class SharedState;

// Serves an accepted connection. The session keeps itself alive.
void StartHttpSession(boost::asio::ip::tcp::socket socket, SharedState& state);

// A live WebSocket session, as the server sees it at shutdown.
class WsSession {
 public:
  virtual ~WsSession() = default;
  // Closes the session with close code 1001 (going away) once the responses
  // already queued are written. Callable from any thread.
  virtual void GoAway() = 0;
};

}  // namespace playbook::server

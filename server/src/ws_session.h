// Hand-over from the HTTP session to the WebSocket session. Included only by
// the two Beast translation units. Private to server/.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string_view>
#include <vector>

#include "conn_stream.h"
#include "connection_count.h"
#include "playbook/server/auth.h"
#include "playbook/server/config.h"

namespace playbook::server {

class SharedState;

// The entries of the request's Sec-WebSocket-Protocol headers, trimmed; they
// point into `req`.
std::vector<std::string_view> OfferedSubprotocols(
    const boost::beast::http::request<boost::beast::http::string_body>& req);

// Accepts the upgrade `req` on `stream` and serves JSON-RPC frames for a
// caller who authenticated as `who` (kept for the connection's life, whatever
// later token reloads do). The session keeps itself alive.
// `stream` is TCP (ws://) or TLS after its handshake (wss://).
void StartWsSession(ConnStream stream, boost::beast::http::request<boost::beast::http::string_body> req,
                    Identity who, SharedState& state, ConnectionCount count);

}  // namespace playbook::server

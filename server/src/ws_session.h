// Hand-over from the HTTP session to the WebSocket session. Included only by
// the two Beast translation units. Private to server/.
#pragma once

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "connection_count.h"
#include "playbook/server/config.h"

namespace playbook::server {

class SharedState;

// Accepts the upgrade `req` on `stream` and serves JSON-RPC frames for a
// caller with `role`. The session keeps itself alive.
void StartWsSession(boost::beast::tcp_stream stream,
                    boost::beast::http::request<boost::beast::http::string_body> req, Role role,
                    SharedState& state, ConnectionCount count);

}  // namespace playbook::server

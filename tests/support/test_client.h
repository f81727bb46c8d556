// The reusable JSON-RPC test client: a WsClient plus JSON conveniences.
// Later issues extend it with typed helpers for their methods.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "playbook/client/ws_client.h"

namespace playbook::testing {

using nlohmann::json;

class TestClient {
 public:
  // Connects to ws_url with `token` (empty = none). Check connected().
  explicit TestClient(const std::string& ws_url, const std::string& token = "");
  bool connected() const { return status_.ok(); }
  const Status& connect_status() const { return status_; }
  client::WsClient& ws() { return ws_; }

  // Sends one request {"jsonrpc":"2.0","id":<next id>,"method",...} and returns
  // the response object with the same id (notifications arriving meanwhile are
  // appended to notifications()). Returns a json null when the connection
  // closed or nothing came within `timeout`.
  json Call(const std::string& method, const json& params = json::object(),
            std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

  // Sends raw text as one frame and reads one frame back (as parsed JSON, or a
  // null json when closed / timed out / not JSON).
  json SendRaw(const std::string& text,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Sends a JSON value as one frame without reading.
  bool Send(const json& frame);
  // Reads the next frame as JSON (null on close/timeout/non-JSON).
  json Read(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

  std::vector<json>& notifications() { return notifications_; }

 private:
  client::WsClient ws_;
  Status status_;
  int64_t next_id_ = 1;
  std::vector<json> notifications_;
};

// The error code of a response, or 0 when it is a success (or not a response).
int ErrorCode(const json& response);
// error.data.field of an error response, or "".
std::string ErrorField(const json& response);

}  // namespace playbook::testing

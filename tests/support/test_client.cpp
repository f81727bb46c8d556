#include "support/test_client.h"

#include <algorithm>

namespace playbook::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A frame's JSON, or null when it is not JSON.
json Parse(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json() : j;
}

json ParseMessage(const client::Message& m) {
  if (m.kind != client::Message::Kind::kText && m.kind != client::Message::Kind::kBinary) {
    return json();
  }
  return Parse(m.data);
}

bool IsNotification(const json& j) { return j.is_object() && j.contains("method") && !j.contains("id"); }

}  // namespace

TestClient::TestClient(const std::string& ws_url, const std::string& token) {
  auto url = client::ParseUrl(ws_url);
  if (!url.ok()) {
    status_ = url.status();
    return;
  }
  status_ = ws_.Connect(url.value(), token);
}

json TestClient::Call(const std::string& method, const json& params, milliseconds timeout) {
  const int64_t id = next_id_++;
  const json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
  if (!Send(request)) return json();
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return json();
    client::Message m = ws_.Read(left);
    if (m.kind != client::Message::Kind::kText && m.kind != client::Message::Kind::kBinary) {
      return json();  // closed, timed out or failed
    }
    json j = Parse(m.data);
    if (IsNotification(j)) {
      notifications_.push_back(std::move(j));
    } else if (j.is_object() && j.contains("id") && j["id"] == id) {
      return j;
    }
    // Anything else (another id, a batch, not JSON) is not ours: skip it.
  }
}

json TestClient::SendRaw(const std::string& text, milliseconds timeout) {
  if (!ws_.Send(text, timeout).ok()) return json();
  return Read(timeout);
}

bool TestClient::Send(const json& frame) {
  return ws_.Send(frame.dump(-1, ' ', false, json::error_handler_t::replace)).ok();
}

json TestClient::Read(milliseconds timeout) { return ParseMessage(ws_.Read(timeout)); }

int ErrorCode(const json& response) {
  if (!response.is_object()) return 0;
  auto it = response.find("error");
  if (it == response.end() || !it->is_object()) return 0;
  auto code = it->find("code");
  if (code == it->end() || !code->is_number_integer()) return 0;
  return code->get<int>();
}

std::string ErrorField(const json& response) {
  if (!response.is_object()) return "";
  auto it = response.find("error");
  if (it == response.end() || !it->is_object()) return "";
  auto data = it->find("data");
  if (data == it->end() || !data->is_object()) return "";
  auto field = data->find("field");
  if (field == data->end() || !field->is_string()) return "";
  return field->get<std::string>();
}

}  // namespace playbook::testing

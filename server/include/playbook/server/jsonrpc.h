// JSON-RPC 2.0 framing: parsing one WebSocket text frame into requests, and
// building responses. Pure functions: no sockets, no threads, no state.
//
// A frame holds one request object or a batch (a non-empty array of them).
// See docs/protocol.md for the contract this implements.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "playbook/engine/status.h"

namespace playbook::server {

using json = nlohmann::json;

// The error codes of the protocol; fixed.
enum ErrorCode : int {
  kParseError = -32700,
  kInvalidRequest = -32600,
  kMethodNotFound = -32601,
  kInvalidParams = -32602,
  kInternalError = -32603,
  kUnauthorized = -32001,  // unauthorized, or forbidden for this role
  kNotFound = -32002,
  kOverloaded = -32003,  // retry later; nothing was done
};

// An error to put in a response: code, a one-line message, and in `data` the
// offending field (may be empty) and the reason.
struct RpcError {
  int code = kInternalError;
  std::string message;
  std::string field;   // "assets[3].stages"; empty when no single field is at fault
  std::string reason;  // "unknown stage 'foo'"
};

// The one place where engine Status codes become protocol error codes.
// REQUIRES: !status.ok()
RpcError ErrorFromStatus(const Status& status);

// One element of a frame: a well-formed request, or the error that answers it.
struct Entry {
  // The request's id; null when absent or unusable. Meaningful only when has_id.
  json id;
  // False for a notification (no "id" member): it gets no response, unless it
  // is not even a well-formed request (then it is answered with id null).
  bool has_id = false;
  std::string method;
  json params;  // an object (absent params read as {}), or an array
  // Set when the entry is not a well-formed request: it is answered with this.
  std::optional<RpcError> error;
};

struct Frame {
  // Set when the text is not JSON (or nests too deep): the answer is one
  // -32700/-32600 error with id null, and entries is empty.
  std::optional<RpcError> error;
  bool is_batch = false;
  std::vector<Entry> entries;
};

// Frames nested deeper than this are refused before parsing (stack safety).
inline constexpr int kMaxJsonDepth = 128;

// Whether JSON text nests deeper than `limit` brackets. Malformed text is left
// for the parser to report. Also used on the remote embedder's responses.
bool DeeperThan(std::string_view text, int limit);

// Requests in one batch; a larger batch is one -32600 error.
inline constexpr size_t kMaxBatch = 100;

// JSON text to a document exactly as json::parse makes it (the same values
// and value types), for the strict subset requests are made of: true then.
// False when the text is outside that subset (a string with an escape, an
// integer of 19 digits or more, a number a double cannot hold) or not JSON
// at all: json::parse then says which. Never throws. No depth limit beyond
// kMaxJsonDepth: check DeeperThan first.
bool ParseJsonFast(std::string_view text, json* out);
// Same values and same value types all the way down (json's == takes 1, 1u
// and 1.0 as equal): what ParseJsonFast promises against json::parse, checked
// by its tests and the frame fuzz target.
bool SameJsonDocument(const json& a, const json& b);

// Never throws: text that is not JSON, or holds a number beyond a double
// (1e999), is a -32700 frame error.
Frame ParseFrame(std::string_view text);

// The answer to a frame refused as a whole (overloaded, shutting down) without
// parsing it into a document: a scan finds each request's id, and each request
// with an id gets `error`. nullopt when the frame holds notifications only.
// Text that does not scan gets one `error` with id null. Never throws; runs on
// the network thread, in time linear in the text.
std::optional<std::string> RejectFrameText(std::string_view text, const RpcError& error);

json MakeResult(const json& id, json result);
json MakeError(const json& id, const RpcError& error);
// A server-to-client notification {"jsonrpc":"2.0","method":...,"params":...}.
json MakeNotification(std::string_view method, json params);

// Serialises for the wire; invalid UTF-8 in strings is replaced, never thrown.
std::string Serialize(const json& value);

}  // namespace playbook::server

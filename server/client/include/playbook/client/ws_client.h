// A small synchronous client of the daemon's transport: one WebSocket
// connection with timeouts on every step, and one-shot HTTP GETs. Used by the
// command-line tool, the load generator and the integration tests.
//
// Thread safety: one WsClient per thread; distinct clients are independent.
//
// Timeouts: each client runs a private io_context for at most the call's
// timeout. Beast fails a WebSocket stream after any cancelled operation, so a
// Read that times out does not cancel: its read stays outstanding and the next
// Read returns the frame (nothing is lost, the connection stays usable). A Send,
// Connect or Close that times out closes the connection (is_open() turns false).
// Messages up to 64 MiB are accepted; each message is sent as one frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "playbook/base/status.h"

namespace playbook::client {

using Millis = std::chrono::milliseconds;

// ws://host:port/target (also http://, for HttpGet), or with TLS wss:// and
// https://. Port defaults to 80, with TLS to 443.
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
  bool tls = false;  // wss:// or https://
};
// InvalidArgument (field "url") when the text is not such a URL.
Result<Url> ParseUrl(std::string_view text);

// How a TLS connection verifies the server. The peer is always verified: its
// certificate must chain to a trusted one and name the URL's host (or IP).
struct TlsOptions {
  // PEM file of the CA certificates (or the server's own self-signed
  // certificate) to trust; empty: the system's CAs.
  std::string ca_file;
};

struct Message {
  enum class Kind {
    kText,     // data holds a text frame
    kBinary,   // data holds a binary frame
    kClosed,   // the server closed the connection; close_code says why
    kTimeout,  // nothing arrived in time; the connection stays usable
    kError,    // the connection failed; error says how
  };
  Kind kind = Kind::kError;
  std::string data;
  uint16_t close_code = 0;  // for kClosed: 1000 normal, 1001 going away, 1009 too big...
  std::string error;        // for kError
};

class WsClient {
 public:
  WsClient();
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Connects to url and upgrades, sending "Authorization: Bearer <token>"
  // when token is non-empty. When the server refuses the upgrade,
  // returns Unauthorized (401/403) or IOError and handshake_status() holds the
  // HTTP status it answered.
  Status Connect(const Url& url, std::string_view token, Millis timeout = Millis(10000));
  // HTTP status of the last refused upgrade (101 after success, 0 before any answer).
  int handshake_status() const;
  // For wss:// URLs: what to trust. Applies to the next Connect.
  void set_tls(TlsOptions options);

  // Sends one text frame (binary when `binary`). A timeout or error closes the
  // connection. When the server closes the connection during the send (e.g.
  // 1009 for a message over its limit), returns OK and the next Read reports
  // kClosed with the server's code. Frames arriving during the send are kept
  // for Read.
  Status Send(std::string_view data, Millis timeout = Millis(10000), bool binary = false);
  // Reads the next frame. A timeout leaves the connection usable.
  Message Read(Millis timeout = Millis(10000));
  // Sends a close frame with `code` and waits for the server's close.
  Status Close(uint16_t code = 1000, Millis timeout = Millis(5000));
  bool is_open() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// One HTTP/1.1 request on a fresh connection (Connection: close), to
// url.target; over TLS for https:// (or wss://) URLs.
Result<HttpResponse> HttpRequest(const Url& url, std::string_view method,
                                 const std::map<std::string, std::string>& headers = {},
                                 Millis timeout = Millis(10000), const TlsOptions& tls = {});
// The same, plain HTTP to host:port.
Result<HttpResponse> HttpRequest(const std::string& host, uint16_t port, std::string_view method,
                                 std::string_view target,
                                 const std::map<std::string, std::string>& headers = {},
                                 Millis timeout = Millis(10000));
inline Result<HttpResponse> HttpGet(const std::string& host, uint16_t port, std::string_view target,
                                    Millis timeout = Millis(10000)) {
  return HttpRequest(host, port, "GET", target, {}, timeout);
}

}  // namespace playbook::client

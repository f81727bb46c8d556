// Shared pieces of the `playbook` subcommands: exit codes, argument splitting,
// connection options, a pipelining JSON-RPC connection and a progress display.
//
// Every subcommand is one `int RunX(Args)` declared at the bottom and listed in
// the table of tools/playbook.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "playbook/client/ws_client.h"
#include "readers.h"

namespace playbook::cli {

// ordered_json keeps the server's key order when printing and our own key
// order when writing assets.
using json = nlohmann::ordered_json;
using playbook::client::Millis;
using Clock = std::chrono::steady_clock;
using Args = std::span<const std::string>;

constexpr int kExitOk = 0;
constexpr int kExitRpcError = 1;  // also: some lines of an import failed
constexpr int kExitUsage = 2;
constexpr int kExitConnection = 3;

constexpr const char* kDefaultUrl = "ws://127.0.0.1:7700/v1";

extern const std::string_view kConnectionOptions;

// Prints "playbook: MESSAGE" and the hint to --help; returns kExitUsage.
int UsageError(const std::string& message);

// ---------------------------------------------------------------------------
// Arguments

// Options in order ("--opt", value; flags have ""), and positional arguments.
// A lone "-" is positional (stdin/stdout).
struct ParsedArgs {
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> positional;
};

// Understands "--opt VALUE", "--opt=VALUE" and "--" (end of options).
// Returns an error message, or nullopt.
std::optional<std::string> SplitArgs(Args args, std::initializer_list<std::string_view> value_options,
                                     std::initializer_list<std::string_view> flag_options,
                                     ParsedArgs& out);

// Parses a whole decimal integer in [min, max].
std::optional<int64_t> ParseInt(std::string_view text, int64_t min, int64_t max);

// ---------------------------------------------------------------------------
// Connection options, shared by every subcommand that talks to the daemon.

struct ConnectionOptions {
  std::string url;
  std::string token;
  Millis timeout{30000};
  // For wss:// URLs: a PEM file of the CA or certificate to trust; empty: the system's CAs.
  std::string cacert;
};

// $PLAYBOOK_URL (else kDefaultUrl), $PLAYBOOK_TOKEN, 30 s, and --cacert as
// SplitArgs found it, else $PLAYBOOK_CACERT.
ConnectionOptions DefaultConnectionOptions();
// Applies --url/--token/--timeout/--cacert. Returns an error message, or nullopt.
std::optional<std::string> ApplyConnectionOption(const std::string& name, const std::string& value,
                                                 ConnectionOptions& o);

// ---------------------------------------------------------------------------
// Small helpers

// OneLine(json): compact JSON, invalid UTF-8 replaced (readers.h).
Millis Remaining(Clock::time_point deadline);

// Connects within `timeout`, explaining a failure on stderr (a refused or
// missing token without printing it). False when it failed.
bool ConnectOrExplain(playbook::client::WsClient& ws, const ConnectionOptions& o, Millis timeout);
// "1.5 s"
std::string Seconds(Millis ms);
// Seconds since `start` as a double.
double SecondsSince(Clock::time_point start);
// "0.41" / "12.3" / "1234": a short fixed rendering of seconds or rates.
std::string Fixed(double value, int decimals);
// "error -32602: Invalid params: ..." for an error response.
std::string DescribeError(const json& response);
// error.code of an error response, 0 otherwise.
int ErrorCode(const json& response);
bool StderrIsTty();

// ---------------------------------------------------------------------------
// A JSON-RPC connection that may have several requests in flight. Failures are
// explained on stderr (prefixed "playbook: ") once.

class RpcConnection {
 public:
  explicit RpcConnection(ConnectionOptions options);
  ~RpcConnection();

  // Connects; false (explained) on failure.
  bool Connect();
  // Sends {"jsonrpc":"2.0","id":N,"method":METHOD,"params":PARAMS}, where
  // `params_text` is already-serialised JSON. Returns N, or nullopt (explained)
  // when the send failed.
  std::optional<int64_t> SendRaw(std::string_view method, std::string_view params_text);
  std::optional<int64_t> Send(std::string_view method, const json& params);

  struct Event {
    enum class Kind {
      kResponse,      // `message` is a response; `id` is its id
      kNotification,  // `message` is a notification from the server
      kIdle,          // nothing arrived within the wait
      kFailed,        // the connection is gone (explained on stderr)
    };
    Kind kind = Kind::kFailed;
    json message;
    int64_t id = 0;
  };
  // The next frame, waiting at most `wait`. A response that names no request
  // of ours (id null: the server could not parse what we sent) is reported as
  // kFailed, explained.
  Event Next(Millis wait);

  // Sends one request and waits up to options().timeout for its response;
  // notifications arriving meanwhile go to `on_notification` (may be empty)
  // and responses to other requests are dropped. Null json on failure
  // (explained).
  json Call(std::string_view method, const json& params,
            const std::function<void(const json&)>& on_notification = {});

  void Close();
  const ConnectionOptions& options() const { return options_; }

 private:
  ConnectionOptions options_;
  playbook::client::WsClient ws_;
  int64_t next_id_ = 1;
  bool failed_ = false;
};

// ---------------------------------------------------------------------------
// Progress on stderr: a redrawn bar when stderr is a terminal, otherwise a
// plain line at most every `plain_every`.

class ProgressDisplay {
 public:
  // `label` starts every line ("import", "reindex").
  ProgressDisplay(std::string label, bool enabled, Millis plain_every = Millis(2000));
  ~ProgressDisplay();

  // `fraction` in [0,1] or negative when unknown; `what` e.g. "1200/5000 assets";
  // `rate` items/s (negative: not shown); `eta_seconds` negative when unknown.
  // Redraws at most every 100 ms on a terminal unless `force`.
  void Update(double fraction, const std::string& what, double rate, double eta_seconds,
              bool force = false);
  // Clears the bar (on a terminal) so that other text can be written; the next
  // Update draws it again.
  void Clear();
  // Clears the bar for good.
  void Finish();
  bool tty() const { return tty_; }

 private:
  std::string label_;
  bool enabled_;
  bool tty_;
  Millis plain_every_;
  bool drawn_ = false;
  Clock::time_point last_{};
  bool any_ = false;
};

// "12s", "3m04s", "1h02m"
std::string Duration(double seconds);

// ---------------------------------------------------------------------------
// Subcommands

int RunCall(Args args);
int RunImport(Args args);
int RunExport(Args args);
int RunReindex(Args args);

}  // namespace playbook::cli

// Drives headless Chromium (/usr/bin/chromium) over the DevTools protocol
// (CDP) for browser tests. Chromium is started with --remote-debugging-pipe:
// it reads NUL-terminated JSON commands from its fd 3 and writes answers and
// events to its fd 4 (here both ends of one socketpair, so a dead browser
// gives an error instead of SIGPIPE). No port, no polling of files.
//
// Each Open is a fresh tab in a fresh browser context (no cookies or storage
// shared with earlier pages) at a fixed viewport, with Runtime and Log enabled
// before the navigation, so every error the page logs is collected:
// uncaught exceptions, console.error / console.assert, and the browser's own
// log entries at level "error" (failed loads, refused WebSockets, CSP).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "support/daemon.h"

namespace playbook::testing {

class Chromium {
 public:
  static constexpr const char* kPath = "/usr/bin/chromium";

  // Does not start anything; call Start. `command_timeout` bounds the wait
  // for each CDP answer.
  explicit Chromium(std::chrono::milliseconds command_timeout = std::chrono::seconds(30));
  // Browser.close, then SIGKILL to the browser's process group if it lingers.
  ~Chromium();
  Chromium(const Chromium&) = delete;
  Chromium& operator=(const Chromium&) = delete;

  // Starts the browser (flags of /work/shared/STACK.md: no sandbox, no GPU,
  // nothing that reaches the internet) and waits for its first CDP answer.
  bool Start();

  // Closes the previous page, opens a fresh one at a width x height viewport
  // and navigates it to `url`. True once the navigation was committed; the
  // page's scripts may still be running: wait with WaitUntil.
  bool Open(const std::string& url, int width, int height);

  // Evaluates a JavaScript expression in the page (awaiting a promise) and
  // returns its value as JSON; nullopt (see error()) when it threw or the
  // page did not answer within `timeout` (default: the command timeout).
  std::optional<nlohmann::json> Evaluate(const std::string& expression,
                                         std::optional<std::chrono::milliseconds> timeout = {});
  // Evaluate, for an expression whose value is a string ("" otherwise).
  std::string EvaluateString(const std::string& expression);

  // Evaluates `expression` every 50 ms until it is truthy. False (see
  // error()) when `timeout` passed first.
  bool WaitUntil(const std::string& expression, std::chrono::milliseconds timeout);

  // A PNG of the viewport (Page.captureScreenshot, decoded); "" on failure.
  std::string Screenshot();

  // Everything the current page logged as an error, one line each.
  const std::vector<std::string>& errors() const { return errors_; }
  // Every console message and log entry of the current page ("level: text").
  const std::vector<std::string>& console() const { return console_; }
  // What went wrong in the last call that failed.
  const std::string& error() const { return error_; }
  // For failure messages: error(), the page's console and Chromium's output.
  std::string Diagnostics() const;

 private:
  // Sends a command (to the page's session when `to_page`) and returns its
  // result; nullopt with error_ set on an error answer, a closed pipe or
  // when nothing came within `timeout` (default command_timeout_).
  std::optional<nlohmann::json> Call(const std::string& method,
                                     const nlohmann::json& params = nlohmann::json::object(),
                                     bool to_page = true,
                                     std::optional<std::chrono::milliseconds> timeout = {});
  // The next message, waiting until `deadline`; nullopt on timeout or a
  // closed pipe (error_ says which).
  std::optional<nlohmann::json> Read(std::chrono::steady_clock::time_point deadline);
  // Records what an event of the current page says (console, errors).
  void OnEvent(const nlohmann::json& event);
  bool Fail(std::string what);
  void ClosePage();
  void Stop();

  std::chrono::milliseconds command_timeout_;
  TempDir dir_;  // the profile and Chromium's output
  pid_t pid_ = -1;
  int fd_ = -1;         // our end of the pipe socket
  std::string inbox_;   // bytes read, not yet a whole message
  int64_t next_id_ = 1;
  std::string context_id_;  // browser context of the current page
  std::string session_id_;  // CDP session attached to the current page
  bool page_gone_ = false;  // detached or crashed
  std::vector<std::string> errors_;
  std::vector<std::string> console_;
  std::string error_;
};

}  // namespace playbook::testing

// Starts the real playbookd binary for integration tests: a temp data dir, a
// generated config, a free loopback port (the daemon binds port 0 and reports
// the port it got in its --ready-file), and its log kept for failure output.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace playbook::testing {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct DaemonOptions {
  // Extra TOML appended to the generated config (the generated part sets only
  // [debug] test_methods = true). E.g. "[[auth.tokens]]\nrole = \"crm\"\ntoken = \"...\"\n".
  std::string extra_config;
  // Extra command-line arguments.
  std::vector<std::string> args;
  // Environment entries for the daemon: "K=V" sets K, "K" (no '=') removes it.
  std::vector<std::string> env;
  // Reuse this data dir instead of a fresh one (restarts over the same data).
  std::string data_dir;
  // How long Start waits for the ready file.
  std::chrono::milliseconds start_timeout{30000};
  // Start returns once the daemon serves (the ready file's "status" is "ok");
  // false: as soon as it listens (the ready file says "starting" or "ok").
  bool wait_until_serving = true;
};

// Shorthands for the common one-field options (designated initialisers
// would warn under -Wextra for the fields left out).
inline DaemonOptions WithConfig(std::string toml) {
  DaemonOptions o;
  o.extra_config = std::move(toml);
  return o;
}
inline DaemonOptions WithArgs(std::vector<std::string> args) {
  DaemonOptions o;
  o.args = std::move(args);
  return o;
}
inline DaemonOptions WithDataDir(std::string dir) {
  DaemonOptions o;
  o.data_dir = std::move(dir);
  return o;
}

class Daemon {
 public:
  // Does not start anything; call Start.
  explicit Daemon(DaemonOptions options = {});
  // Kills the process (SIGKILL) if it still runs.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts playbookd and waits until it is ready (the ready file says it
  // serves; see DaemonOptions::wait_until_serving). False when it exited or
  // timed out; log() says why.
  bool Start();
  // Sends SIGTERM and waits up to `timeout` for exit. Returns the exit status
  // (WEXITSTATUS), or -1 when it did not exit in time / died by a signal.
  int Stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(20000));
  // Sends `sig` without waiting.
  void Signal(int sig);
  // Waits for exit; like Stop without the signal. Once the process was reaped
  // (also by a failed Start), returns its exit status again.
  int Wait(std::chrono::milliseconds timeout);
  // SIGKILL and reap.
  void Kill();
  bool running() const { return pid_ > 0; }

  uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  // "ws://127.0.0.1:<port>/v1"
  std::string ws_url() const;
  // "wss://127.0.0.1:<port>/v1", for a daemon configured with [server.tls].
  std::string wss_url() const;
  // The config file Start wrote.
  std::string config_path() const;
  // Rewrites the config file as Start does, with `extra_config` in place of
  // the options' (e.g. new [[auth.tokens]] before Signal(SIGHUP)). Atomic (a
  // temp file renamed). False when it cannot be written.
  bool RewriteConfig(const std::string& extra_config);
  const std::string& data_dir() const { return data_dir_; }
  const std::string& dir() const { return dir_.path(); }
  // Everything the daemon wrote to stdout and stderr so far.
  std::string log() const;
  // The file log() reads, the daemon's stdout and stderr (appended to; made by Start if missing).
  std::string log_path() const { return dir_.path() + "/daemon.log"; }
  // Adds an environment entry for the next Start, as DaemonOptions::env.
  void AddEnv(std::string entry) { options_.env.push_back(std::move(entry)); }
  pid_t pid() const { return pid_; }

  // Paths of the binaries under test.
  static std::string DaemonPath();
  static std::string CliPath();

 private:
  DaemonOptions options_;
  TempDir dir_;
  std::string data_dir_;
  pid_t pid_ = -1;
  int exit_code_ = -1;  // of the reaped process; -1 while none was reaped
  uint16_t port_ = 0;
};

// Runs a command (argv[0] is the program path), capturing stdout and stderr
// separately; env entries "K=V" are added to the environment.
struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

}  // namespace playbook::testing

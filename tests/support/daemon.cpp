#include "support/daemon.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

extern char** environ;

namespace playbook::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollInterval{10};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& text, bool append = false) {
  std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  out << text;
  return static_cast<bool>(out.flush());
}

// argv/envp arrays for exec, built before fork (the child may only call
// async-signal-safe functions).
struct CStrings {
  explicit CStrings(const std::vector<std::string>& v) : strings(v) {
    for (auto& s : strings) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
};

// The current environment with `extra` applied: "K=V" sets K; "K" (no '=')
// removes K.
std::vector<std::string> MergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  for (const auto& entry : extra) {
    const std::size_t eq = entry.find('=');
    const std::string key = entry.substr(0, eq);
    std::erase_if(env, [&](const std::string& kv) {
      return kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=';
    });
    if (eq != std::string::npos) env.push_back(entry);
  }
  return env;
}

// Writes a message from a forked child before _exit: async-signal-safe.
void ChildFail(const char* what, const char* path) {
  const int err = errno;
  auto put = [](const char* s) {
    ssize_t n = ::write(2, s, std::strlen(s));
    (void)n;
  };
  put(what);
  put(path);
  put(": ");
  put(std::strerror(err));  // not strictly async-signal-safe; fine in practice
  put("\n");
}

int ExitCodeOf(int wstatus) { return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1; }

}  // namespace

// ---------------------------------------------------------------------------
// TempDir

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::string templ = base + "/playbook-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp(" + templ + "): " + std::strerror(errno));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---------------------------------------------------------------------------
// Daemon

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {
  data_dir_ = options_.data_dir.empty() ? dir_.path() + "/data" : options_.data_dir;
}

Daemon::~Daemon() { Kill(); }

std::string Daemon::DaemonPath() { return PLAYBOOKD_PATH; }
std::string Daemon::CliPath() { return PLAYBOOK_CLI_PATH; }

std::string Daemon::ws_url() const { return "ws://127.0.0.1:" + std::to_string(port_) + "/v1"; }

std::string Daemon::wss_url() const { return "wss://127.0.0.1:" + std::to_string(port_) + "/v1"; }

std::string Daemon::config_path() const { return dir_.path() + "/playbook.toml"; }

bool Daemon::RewriteConfig(const std::string& extra_config) {
  const std::string tmp = config_path() + ".tmp";
  if (!WriteFile(tmp, "[debug]\ntest_methods = true\n" + extra_config)) return false;
  return std::rename(tmp.c_str(), config_path().c_str()) == 0;
}

std::string Daemon::log() const { return ReadFile(log_path()); }

bool Daemon::Start() {
  if (running()) return false;
  const std::string config_path = this->config_path();
  const std::string ready_path = dir_.path() + "/ready.json";
  const std::string log_path = this->log_path();
  auto note = [&](const std::string& text) {
    WriteFile(log_path, "[test support] " + text + "\n", /*append=*/true);
  };

  if (!WriteFile(config_path, "[debug]\ntest_methods = true\n" + options_.extra_config)) {
    note("cannot write " + config_path);
    return false;
  }
  std::error_code ec;
  std::filesystem::remove(ready_path, ec);  // left over from an earlier run
  port_ = 0;

  std::vector<std::string> args = {DaemonPath(), "--config",    config_path, "--data-dir",
                                   data_dir_,    "--port",      "0",         "--bind",
                                   "127.0.0.1",  "--ready-file", ready_path, "--log-level",
                                   "debug"};
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  CStrings argv(args);
  // A NOTIFY_SOCKET of the test's own environment (ctest run by systemd) is not the daemon's.
  std::vector<std::string> env = {"NOTIFY_SOCKET"};
  env.insert(env.end(), options_.env.begin(), options_.env.end());
  CStrings envp(MergedEnv(env));

  const pid_t pid = ::fork();
  if (pid < 0) {
    note(std::string("fork: ") + std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execve(argv.ptrs[0], argv.ptrs.data(), envp.ptrs.data());
    ChildFail("exec ", argv.ptrs[0]);
    ::_exit(127);
  }
  pid_ = pid;

  const auto deadline = Clock::now() + options_.start_timeout;
  while (true) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ = ExitCodeOf(wstatus);
      note("playbookd exited before it was ready (" +
           (WIFEXITED(wstatus) ? "exit status " + std::to_string(WEXITSTATUS(wstatus))
                               : "signal " + std::to_string(WTERMSIG(wstatus))) +
           ")");
      return false;
    }
    const std::string ready = ReadFile(ready_path);
    if (!ready.empty()) {
      const auto j = nlohmann::json::parse(ready, nullptr, false);
      // Written at listen with "status": "starting", again with "ok" once it serves.
      const bool serving = j.is_object() && j.value("status", "") == "ok";
      if (j.is_object() && j.contains("port") && j["port"].is_number_unsigned() &&
          (serving || !options_.wait_until_serving)) {
        const auto port = j["port"].get<uint64_t>();
        if (port > 0 && port <= 65535) {
          port_ = static_cast<uint16_t>(port);
          return true;
        }
      }
      // The daemon writes it atomically, so this should not happen; retry
      // until the deadline in case a writer is not atomic after all.
    }
    if (Clock::now() >= deadline) {
      note("playbookd was not ready after " + std::to_string(options_.start_timeout.count()) +
           " ms" + (ready.empty() ? "" : "; ready file: " + ready));
      Kill();
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void Daemon::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Daemon::Stop(milliseconds timeout) {
  if (pid_ <= 0) return -1;
  Signal(SIGTERM);
  return Wait(timeout);
}

int Daemon::Wait(milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;  // reaped already (by Start or an earlier Wait)
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int wstatus = 0;
    const pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      exit_code_ = ExitCodeOf(wstatus);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) {  // not our child any more
      pid_ = -1;
      return -1;
    }
    if (Clock::now() >= deadline) return -1;  // still running: the destructor kills it
    std::this_thread::sleep_for(kPollInterval);
  }
}

void Daemon::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

// ---------------------------------------------------------------------------
// RunCommand

// Extra env entries "K=V" set K (an empty V sets it empty); an entry "K"
// without '=' removes K from the child's environment.
CommandResult RunCommand(const std::vector<std::string>& argv_in, const std::vector<std::string>& env,
                         milliseconds timeout) {
  CommandResult result;
  if (argv_in.empty()) {
    result.err = "RunCommand: empty argv";
    return result;
  }
  CStrings argv(argv_in);
  CStrings envp(MergedEnv(env));

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }

  const pid_t pid = ::fork();
  if (pid < 0) {
    result.err = std::string("fork: ") + std::strerror(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return result;
  }
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group, so a timeout kills its children too
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execvpe(argv.ptrs[0], argv.ptrs.data(), envp.ptrs.data());
    ChildFail("exec ", argv.ptrs[0]);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, to win the race with exec
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll ignores negative fds
        --open_fds;
      }
    }
  }
  for (auto& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }

  // Both pipes closed: the process has normally exited or is about to.
  int wstatus = 0;
  while (!timed_out) {
    const pid_t r = ::waitpid(pid, &wstatus, WNOHANG);
    if (r == pid) {
      result.exit_code = ExitCodeOf(wstatus);
      return result;
    }
    if (r < 0 && errno != EINTR) return result;
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = -1;
  result.err += "\n[RunCommand] killed after " + std::to_string(timeout.count()) + " ms\n";
  return result;
}

}  // namespace playbook::testing

#include "support/chromium.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace playbook::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollInterval{50};
constexpr milliseconds kCloseGrace{5000};

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string DecodeBase64(const std::string& in) {
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t bits = 0;
  int nbits = 0;
  for (const char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else continue;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out.push_back(static_cast<char>((bits >> nbits) & 0xFF));
    }
  }
  return out;
}

// The text of a Runtime.RemoteObject (a console.* argument).
std::string TextOf(const json& obj) {
  if (obj.contains("value")) {
    return obj["value"].is_string() ? obj["value"].get<std::string>() : obj["value"].dump();
  }
  for (const char* key : {"unserializableValue", "description"}) {
    if (obj.contains(key) && obj[key].is_string()) return obj[key].get<std::string>();
  }
  return obj.value("type", "?");
}

std::string StringAt(const json& obj, const char* key) {
  return obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>() : "";
}

// The end of Chromium's output, without its complaints about the missing
// D-Bus (every start logs a few dozen).
std::string OutputTail(const std::string& path, std::size_t max) {
  std::ifstream in(path, std::ios::binary);
  std::string text;
  for (std::string line; std::getline(in, line);) {
    if (line.find(":ERROR:dbus/") == std::string::npos) text.append(line).append("\n");
  }
  return text.size() > max ? "..." + text.substr(text.size() - max) : text;
}

}  // namespace

Chromium::Chromium(milliseconds command_timeout) : command_timeout_(command_timeout) {}

Chromium::~Chromium() { Stop(); }

bool Chromium::Fail(std::string what) {
  error_ = std::move(what);
  return false;
}

bool Chromium::Start() {
  if (pid_ > 0) return true;
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    return Fail(Errno("socketpair"));
  }
  // Chromium's end goes onto its fds 3 and 4: keep it clear of them until then.
  const int theirs = ::fcntl(ends[1], F_DUPFD_CLOEXEC, 10);
  ::close(ends[1]);
  const std::string log_path = dir_.path() + "/chromium.log";
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (theirs < 0 || log_fd < 0 || null_fd < 0) {
    const std::string why = Errno("fcntl/open");
    for (const int fd : {ends[0], theirs, log_fd, null_fd}) {
      if (fd >= 0) ::close(fd);
    }
    return Fail(why);
  }

  std::vector<std::string> args = {kPath,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-quic",
                                   "--no-first-run",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--disable-dev-shm-usage",
                                   "--hide-scrollbars",
                                   "--user-data-dir=" + dir_.path() + "/profile",
                                   "--remote-debugging-pipe",
                                   "about:blank"};
  std::vector<char*> argv;  // built before fork: the child only calls async-signal-safe functions
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    const std::string why = Errno("fork");
    for (const int fd : {ends[0], theirs, log_fd, null_fd}) ::close(fd);
    return Fail(why);
  }
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group: its renderers are killed with it
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::dup2(theirs, 3);  // CDP in
    ::dup2(theirs, 4);  // CDP out
    ::execv(argv[0], argv.data());
    const char msg[] = "exec /usr/bin/chromium failed\n";
    const ssize_t n = ::write(2, msg, sizeof msg - 1);
    (void)n;
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from here, to win the race with exec
  for (const int fd : {theirs, log_fd, null_fd}) ::close(fd);
  pid_ = pid;
  fd_ = ends[0];
  if (!Call("Browser.getVersion", json::object(), /*to_page=*/false)) {
    const std::string why = "Chromium did not answer over the pipe: " + error_;
    Stop();
    return Fail(why);
  }
  return true;
}

void Chromium::Stop() {
  if (pid_ <= 0) return;
  if (fd_ >= 0) {
    const std::string close_msg =
        json{{"id", next_id_++}, {"method", "Browser.close"}}.dump() + '\0';
    const ssize_t n = ::send(fd_, close_msg.data(), close_msg.size(), MSG_NOSIGNAL);
    (void)n;
  }
  // Waits for the browser to exit without reaping it, so that its process
  // group id cannot be reused before the group is killed below.
  const auto deadline = Clock::now() + kCloseGrace;
  siginfo_t info{};
  while (Clock::now() < deadline) {
    info.si_pid = 0;
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 &&
        errno != EINTR) {
      break;
    }
    if (info.si_pid == pid_) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(-pid_, SIGKILL);  // helpers still running, and the browser if it hung
  ::kill(pid_, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::optional<json> Chromium::Read(Clock::time_point deadline) {
  while (true) {
    const std::size_t end = inbox_.find('\0');
    if (end != std::string::npos) {
      json message = json::parse(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(end),
                                 nullptr, /*allow_exceptions=*/false);
      inbox_.erase(0, end + 1);
      if (message.is_object()) return message;
      continue;
    }
    if (fd_ < 0) return std::nullopt;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) return std::nullopt;
    if (n <= 0) continue;
    char buf[65536];
    const ssize_t got = ::read(fd_, buf, sizeof buf);
    if (got > 0) {
      inbox_.append(buf, static_cast<std::size_t>(got));
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      ::close(fd_);
      fd_ = -1;
      page_gone_ = true;
      return std::nullopt;
    }
  }
}

std::optional<json> Chromium::Call(const std::string& method, const json& params, bool to_page,
                                   std::optional<milliseconds> timeout) {
  if (fd_ < 0) {
    Fail(method + ": Chromium is not running (it exited or closed the pipe)");
    return std::nullopt;
  }
  if (to_page && (session_id_.empty() || page_gone_)) {
    Fail(method + ": no page (none opened, or it crashed or closed)");
    return std::nullopt;
  }
  const int64_t id = next_id_++;
  json request = {{"id", id}, {"method", method}, {"params", params}};
  if (to_page) request["sessionId"] = session_id_;
  std::string wire = request.dump(-1, ' ', false, json::error_handler_t::replace);
  wire.push_back('\0');
  for (std::size_t sent = 0; sent < wire.size();) {
    const ssize_t n = ::send(fd_, wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Fail(method + ": " + Errno("send"));
      return std::nullopt;
    }
    sent += static_cast<std::size_t>(n);
  }
  const milliseconds wait = timeout.value_or(command_timeout_);
  const auto deadline = Clock::now() + wait;
  while (true) {
    std::optional<json> message = Read(deadline);
    if (!message) {
      Fail(method + (fd_ < 0 ? ": Chromium closed the pipe (it exited?)"
                             : ": no answer within " + std::to_string(wait.count()) + " ms"));
      return std::nullopt;
    }
    if (message->contains("method")) {
      OnEvent(*message);
      continue;
    }
    if (message->value("id", int64_t{-1}) != id) continue;  // an answer nobody waits for
    if (message->contains("error")) {
      Fail(method + ": " + (*message)["error"].dump());
      return std::nullopt;
    }
    return message->value("result", json::object());
  }
}

void Chromium::OnEvent(const json& event) {
  const std::string method = event.value("method", "");
  const json params = event.value("params", json::object());
  if (method == "Target.detachedFromTarget" && StringAt(params, "sessionId") == session_id_) {
    page_gone_ = true;
    return;
  }
  if (session_id_.empty() || StringAt(event, "sessionId") != session_id_) return;
  if (method == "Runtime.consoleAPICalled") {
    const std::string type = params.value("type", "log");
    std::string text;
    for (const json& arg : params.value("args", json::array())) {
      if (!text.empty()) text += ' ';
      text += TextOf(arg);
    }
    std::string line = "console.";
    line.append(type).append(": ").append(text);
    console_.push_back(line);
    if (type == "error" || type == "assert") errors_.push_back(line);
  } else if (method == "Runtime.exceptionThrown") {
    const json details = params.value("exceptionDetails", json::object());
    std::string line = "uncaught: ";
    line.append(StringAt(details, "text"));
    if (details.contains("exception")) line.append(" ").append(TextOf(details["exception"]));
    console_.push_back(line);
    errors_.push_back(line);
  } else if (method == "Log.entryAdded") {
    const json entry = params.value("entry", json::object());
    const std::string level = StringAt(entry, "level");
    const std::string url = StringAt(entry, "url");
    std::string line = level;
    line.append(" (").append(StringAt(entry, "source")).append("): ");
    line.append(StringAt(entry, "text"));
    if (!url.empty()) line.append(" [").append(url).append("]");
    console_.push_back(line);
    if (level == "error") errors_.push_back(line);
  } else if (method == "Inspector.targetCrashed") {
    page_gone_ = true;
    errors_.push_back("the page's renderer crashed");
  }
}

void Chromium::ClosePage() {
  if (!context_id_.empty() && fd_ >= 0) {
    Call("Target.disposeBrowserContext", {{"browserContextId", context_id_}}, /*to_page=*/false);
  }
  context_id_.clear();
  session_id_.clear();
  page_gone_ = false;
  errors_.clear();
  console_.clear();
}

bool Chromium::Open(const std::string& url, int width, int height) {
  if (pid_ <= 0 && !Start()) return false;
  ClosePage();
  const auto context = Call("Target.createBrowserContext", json::object(), /*to_page=*/false);
  if (!context) return false;
  context_id_ = StringAt(*context, "browserContextId");
  const auto target = Call("Target.createTarget",
                           {{"url", "about:blank"}, {"browserContextId", context_id_}},
                           /*to_page=*/false);
  if (!target) return false;
  const auto attached = Call("Target.attachToTarget",
                             {{"targetId", StringAt(*target, "targetId")}, {"flatten", true}},
                             /*to_page=*/false);
  if (!attached) return false;
  session_id_ = StringAt(*attached, "sessionId");
  // Listening starts before the page loads: nothing it logs is missed.
  for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable"}) {
    if (!Call(domain)) return false;
  }
  if (!Call("Emulation.setDeviceMetricsOverride",
            {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}})) {
    return false;
  }
  const auto navigated = Call("Page.navigate", {{"url", url}});
  if (!navigated) return false;
  if (!StringAt(*navigated, "errorText").empty()) {
    return Fail("Page.navigate " + url + ": " + StringAt(*navigated, "errorText"));
  }
  return true;
}

std::optional<json> Chromium::Evaluate(const std::string& expression,
                                       std::optional<milliseconds> timeout) {
  const auto answer = Call("Runtime.evaluate",
                           {{"expression", expression},
                            {"returnByValue", true},
                            {"awaitPromise", true}},
                           /*to_page=*/true, timeout);
  if (!answer) return std::nullopt;
  if (answer->contains("exceptionDetails")) {
    const json& details = (*answer)["exceptionDetails"];
    Fail("evaluating `" + expression + "` threw: " + StringAt(details, "text") + " " +
         (details.contains("exception") ? TextOf(details["exception"]) : ""));
    return std::nullopt;
  }
  const json result = answer->value("result", json::object());
  return result.contains("value") ? result["value"] : json(nullptr);
}

std::string Chromium::EvaluateString(const std::string& expression) {
  const auto value = Evaluate(expression);
  return value && value->is_string() ? value->get<std::string>() : "";
}

bool Chromium::WaitUntil(const std::string& expression, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last;
  while (true) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    const auto value = Evaluate("!!(" + expression + ")", std::max(left, milliseconds(1000)));
    if (value && *value == true) return true;
    last = value ? value->dump() : error_;  // an error: e.g. between documents; try again
    if (page_gone_ || fd_ < 0) {
      return Fail("waiting for `" + expression + "`: the page is gone; " + last);
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      return Fail("`" + expression + "` was still not true after " +
                  std::to_string(timeout.count()) + " ms (last: " + last + ")");
    }
    // Sleeps between polls, taking in the page's events meanwhile.
    const auto until = std::min(deadline, now + kPollInterval);
    while (const auto event = Read(until)) {
      if (event->contains("method")) OnEvent(*event);
    }
  }
}

std::string Chromium::Screenshot() {
  const auto shot = Call("Page.captureScreenshot", {{"format", "png"}});
  if (!shot) return "";
  const std::string png = DecodeBase64(StringAt(*shot, "data"));
  if (png.empty()) Fail("Page.captureScreenshot returned no data");
  return png;
}

std::string Chromium::Diagnostics() const {
  std::string out = error_.empty() ? "" : "chromium driver: " + error_ + "\n";
  out += "---- page console (" + std::to_string(console_.size()) + " entries) ----\n";
  for (const auto& line : console_) out.append(line).append("\n");
  out += "---- chromium output ----\n" + OutputTail(dir_.path() + "/chromium.log", 4000);
  return out;
}

}  // namespace playbook::testing

// Shared pieces of the `playbook` subcommands (see common.h).
#include "common.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace playbook::cli {

using playbook::Status;
using playbook::client::Message;

const std::string_view kConnectionOptions =
    "Connection options:\n"
    "  --url URL          daemon WebSocket URL (default: $PLAYBOOK_URL, else ws://127.0.0.1:7700/v1)\n"
    "  --token TOKEN      API token sent as 'Authorization: Bearer' (default: $PLAYBOOK_TOKEN)\n"
    "  --timeout SECONDS  give up on a response after this long (default: 30)\n"
    "  --cacert FILE      for wss:// URLs: trust this CA or certificate (PEM) instead of the\n"
    "                     system's CAs (default: $PLAYBOOK_CACERT); the server is always verified\n";

int UsageError(const std::string& message) {
  std::cerr << "playbook: " << message << "\n(run 'playbook --help' for usage)\n";
  return kExitUsage;
}

// ---------------------------------------------------------------------------
// Arguments

namespace {
// --cacert, taken by SplitArgs for every subcommand that connects (one taking
// --url), so that each need not list it; DefaultConnectionOptions applies it.
std::optional<std::string>& CacertFlag() {
  static std::optional<std::string> flag;
  return flag;
}
}  // namespace

std::optional<std::string> SplitArgs(Args args, std::initializer_list<std::string_view> value_options,
                                     std::initializer_list<std::string_view> flag_options,
                                     ParsedArgs& out) {
  auto is_in = [](std::string_view name, std::initializer_list<std::string_view> set) {
    return std::find(set.begin(), set.end(), name) != set.end();
  };
  const bool connects = is_in("--url", value_options);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      out.positional.insert(out.positional.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                            args.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a;
    std::optional<std::string> value;
    if (const auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    if (connects && name == "--cacert") {
      if (!value) {
        if (i + 1 >= args.size()) return "option " + name + " needs a value";
        value = args[++i];
      }
      if (value->empty()) return "option --cacert is empty";
      CacertFlag() = *value;
    } else if (is_in(name, flag_options)) {
      if (value) return "option " + name + " takes no value";
      out.options.emplace_back(name, "");
    } else if (is_in(name, value_options)) {
      if (!value) {
        if (i + 1 >= args.size()) return "option " + name + " needs a value";
        value = args[++i];
      }
      out.options.emplace_back(name, *value);
    } else {
      return "unknown option '" + name + "'";
    }
  }
  return std::nullopt;
}

std::optional<int64_t> ParseInt(std::string_view text, int64_t min, int64_t max) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return std::nullopt;
  }
  return v;
}

// ---------------------------------------------------------------------------
// Connection options

namespace {
std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
}  // namespace

ConnectionOptions DefaultConnectionOptions() {
  ConnectionOptions o;
  o.url = EnvOr("PLAYBOOK_URL", kDefaultUrl);
  o.token = EnvOr("PLAYBOOK_TOKEN", "");
  o.cacert = CacertFlag() ? *CacertFlag() : EnvOr("PLAYBOOK_CACERT", "");
  return o;
}

std::optional<std::string> ApplyConnectionOption(const std::string& name, const std::string& value,
                                                 ConnectionOptions& o) {
  if (name == "--url") {
    o.url = value;
  } else if (name == "--token") {
    o.token = value;
  } else if (name == "--cacert") {
    if (value.empty()) return std::string("--cacert is empty");
    o.cacert = value;
  } else if (name == "--timeout") {
    std::size_t used = 0;
    double seconds = 0;
    try {
      seconds = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != value.size() || !(seconds > 0) || seconds > 86400 * 365) {
      return "--timeout: '" + value + "' is not a positive number of seconds";
    }
    o.timeout = Millis(static_cast<int64_t>(seconds * 1000 + 0.5));
    if (o.timeout.count() == 0) o.timeout = Millis(1);
  } else {
    return "unknown option '" + name + "'";
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Small helpers

Millis Remaining(Clock::time_point deadline) {
  return std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
}

std::string Seconds(Millis ms) {
  std::string s = std::to_string(static_cast<double>(ms.count()) / 1000.0);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s + " s";
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string Duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60));
  }
  return buf;
}

int ErrorCode(const json& response) {
  if (!response.is_object() || !response.contains("error")) return 0;
  const json& e = response["error"];
  if (!e.is_object() || !e.contains("code") || !e["code"].is_number_integer()) return -1;
  return e["code"].get<int>();
}

std::string DescribeError(const json& response) {
  if (!response.is_object() || !response.contains("error") || !response["error"].is_object()) {
    return "unexpected response " + OneLine(response);
  }
  const json& e = response["error"];
  return "error " + OneLine(e.value("code", json())) + ": " + e.value("message", std::string());
}

bool StderrIsTty() { return ::isatty(STDERR_FILENO) == 1; }

// ---------------------------------------------------------------------------
// RpcConnection

namespace {

}  // namespace

bool ConnectOrExplain(playbook::client::WsClient& ws, const ConnectionOptions& o, Millis timeout) {
  auto url = playbook::client::ParseUrl(o.url);
  if (!url.ok()) {
    std::cerr << "playbook: --url: " << url.status().message() << "\n";
    return false;
  }
  ws.set_tls({o.cacert});
  Status s = ws.Connect(url.value(), o.token, timeout);
  if (s.ok()) return true;
  const int http = ws.handshake_status();
  if (http == 401 || http == 403) {
    std::cerr << "playbook: " << o.url << " refused the connection (HTTP " << http << "): ";
    if (o.token.empty()) {
      std::cerr << "an API token is required but none was given; pass --token or set "
                   "PLAYBOOK_TOKEN\n";
    } else if (http == 401) {
      std::cerr << "the token was refused (unknown token)\n";
    } else {
      std::cerr << "the token was refused (not allowed)\n";
    }
  } else {
    std::cerr << "playbook: cannot connect to " << o.url << ": " << s.message() << "\n";
  }
  return false;
}


RpcConnection::RpcConnection(ConnectionOptions options) : options_(std::move(options)) {}

RpcConnection::~RpcConnection() { Close(); }

bool RpcConnection::Connect() {
  if (!ConnectOrExplain(ws_, options_, options_.timeout)) {
    failed_ = true;
    return false;
  }
  return true;
}

std::optional<int64_t> RpcConnection::SendRaw(std::string_view method, std::string_view params_text) {
  if (failed_) return std::nullopt;
  const int64_t id = next_id_++;
  std::string frame;
  frame.reserve(params_text.size() + method.size() + 64);
  frame += R"({"jsonrpc":"2.0","id":)";
  frame += std::to_string(id);
  frame += R"(,"method":)";
  frame += json(std::string(method)).dump();
  frame += R"(,"params":)";
  frame += params_text;
  frame += '}';
  Status s = ws_.Send(frame, options_.timeout);
  if (!s.ok()) {
    std::cerr << "playbook: " << options_.url << ": " << s.message() << "\n";
    failed_ = true;
    return std::nullopt;
  }
  return id;
}

std::optional<int64_t> RpcConnection::Send(std::string_view method, const json& params) {
  return SendRaw(method, OneLine(params));
}

RpcConnection::Event RpcConnection::Next(Millis wait) {
  Event ev;
  if (failed_) return ev;
  const auto deadline = Clock::now() + wait;
  while (true) {
    Message m = ws_.Read(Remaining(deadline));
    switch (m.kind) {
      case Message::Kind::kText:
      case Message::Kind::kBinary: {
        json j = json::parse(m.data, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          std::cerr << "playbook: ignoring a frame that is not a JSON object (" << m.data.size()
                    << " bytes)\n";
          if (Remaining(deadline).count() == 0) {
            ev.kind = Event::Kind::kIdle;
            return ev;
          }
          continue;
        }
        if (j.contains("method") && !j.contains("id")) {
          ev.kind = Event::Kind::kNotification;
          ev.message = std::move(j);
          return ev;
        }
        if (j.contains("id") && j["id"].is_number_integer()) {
          ev.kind = Event::Kind::kResponse;
          ev.id = j["id"].get<int64_t>();
          ev.message = std::move(j);
          return ev;
        }
        // id null: the server could not tell which request this answers.
        std::cerr << "playbook: " << options_.url << " answered a request it could not read: "
                  << (j.contains("error") ? DescribeError(j) : OneLine(j)) << "\n";
        failed_ = true;
        return ev;
      }
      case Message::Kind::kTimeout:
        ev.kind = Event::Kind::kIdle;
        return ev;
      case Message::Kind::kClosed:
        std::cerr << "playbook: " << options_.url << " closed the connection (close code "
                  << m.close_code << (m.error.empty() ? "" : ": " + m.error) << ")"
                  << (m.close_code == 1009 ? ": a message was larger than the daemon accepts "
                                             "(server.max_frame_bytes); try a smaller --batch"
                                           : "")
                  << "\n";
        failed_ = true;
        return ev;
      case Message::Kind::kError:
        std::cerr << "playbook: " << options_.url << ": connection failed: " << m.error << "\n";
        failed_ = true;
        return ev;
    }
  }
}

json RpcConnection::Call(std::string_view method, const json& params,
                         const std::function<void(const json&)>& on_notification) {
  auto id = Send(method, params);
  if (!id) return json();
  const auto deadline = Clock::now() + options_.timeout;
  while (true) {
    const Millis left = Remaining(deadline);
    if (left.count() == 0) {
      std::cerr << "playbook: " << options_.url << ": no response to " << method << " within "
                << Seconds(options_.timeout) << "\n";
      failed_ = true;
      return json();
    }
    Event ev = Next(left);
    switch (ev.kind) {
      case Event::Kind::kResponse:
        if (ev.id == *id) return std::move(ev.message);
        break;  // an answer to an earlier request nobody waits for any more
      case Event::Kind::kNotification:
        if (on_notification) on_notification(ev.message);
        break;
      case Event::Kind::kIdle:
        break;  // the loop re-checks the deadline
      case Event::Kind::kFailed:
        return json();
    }
  }
}

void RpcConnection::Close() {
  if (ws_.is_open()) (void)ws_.Close(1000, Millis(2000));
}

// ---------------------------------------------------------------------------
// ProgressDisplay

ProgressDisplay::ProgressDisplay(std::string label, bool enabled, Millis plain_every)
    : label_(std::move(label)),
      enabled_(enabled),
      tty_(StderrIsTty()),
      plain_every_(plain_every),
      last_(Clock::now()) {}

ProgressDisplay::~ProgressDisplay() { Finish(); }

void ProgressDisplay::Update(double fraction, const std::string& what, double rate, double eta_seconds,
                             bool force) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (!force) {
    // A terminal is redrawn at most every 100 ms; a log gets a line at most
    // every plain_every_, the first one after a period (short runs stay quiet).
    if (tty_ ? (any_ && now - last_ < Millis(100)) : (now - last_ < plain_every_)) return;
  }
  last_ = now;
  any_ = true;
  std::string line = label_ + ": ";
  if (tty_) {
    constexpr int kWidth = 28;
    if (fraction >= 0) {
      const double f = std::clamp(fraction, 0.0, 1.0);
      const int filled = static_cast<int>(f * kWidth + 0.5);
      line += '[';
      line.append(static_cast<std::size_t>(filled), '#');
      line.append(static_cast<std::size_t>(kWidth - filled), '.');
      line += "] ";
      line += Fixed(f * 100, 0);
      line += "%  ";
    }
  } else if (fraction >= 0) {
    line += Fixed(std::clamp(fraction, 0.0, 1.0) * 100, 0);
    line += "%, ";
  }
  line += what;
  if (rate >= 0) {
    line += tty_ ? "  " : ", ";
    line += Fixed(rate, 0);
    line += " assets/s";
  }
  if (eta_seconds >= 0) {
    line += tty_ ? "  ETA " : ", ETA ";
    line += Duration(eta_seconds);
  }
  if (tty_) {
    std::cerr << "\r\033[K" << line << std::flush;
    drawn_ = true;
  } else {
    std::cerr << line << "\n" << std::flush;
  }
}

void ProgressDisplay::Clear() {
  if (tty_ && drawn_) {
    std::cerr << "\r\033[K" << std::flush;
    drawn_ = false;
  }
}

void ProgressDisplay::Finish() { Clear(); }

}  // namespace playbook::cli

// playbook: the command-line client of playbookd.
//
//   playbook --version
//   playbook call [--url URL] [--token TOKEN] [--timeout SECONDS] METHOD ['JSON-PARAMS']
//
// Exit status: 0 success, 1 the server answered with a JSON-RPC error,
// 2 usage error (nothing was sent), 3 connection, handshake or timeout failure.
//
// main() is a thin dispatch over the table of subcommands below; a new
// subcommand is one function plus one row.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "playbook/client/ws_client.h"
#include "playbook/server/version.h"

namespace {

// ordered_json keeps the server's key order when printing.
using json = nlohmann::ordered_json;
using playbook::Status;
using playbook::client::Message;
using playbook::client::Millis;
using playbook::client::WsClient;
using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnection = 3;

constexpr const char* kDefaultUrl = "ws://127.0.0.1:7700/v1";

using Args = std::span<const std::string>;

// ---------------------------------------------------------------------------
// Usage

struct Subcommand {
  std::string_view name;
  std::string_view synopsis;  // after "playbook <name> "
  std::string_view summary;
  int (*run)(Args args);
};

int RunCall(Args args);

constexpr Subcommand kSubcommands[] = {
    {"call", "[options] METHOD ['JSON-PARAMS']", "send one JSON-RPC request and print the response",
     RunCall},
};

constexpr std::string_view kConnectionOptions =
    "Connection options:\n"
    "  --url URL          daemon WebSocket URL (default: $PLAYBOOK_URL, else ws://127.0.0.1:7700/v1)\n"
    "  --token TOKEN      API token sent as 'Authorization: Bearer' (default: $PLAYBOOK_TOKEN)\n"
    "  --timeout SECONDS  give up after this long (default: 30)\n";

void PrintUsage(std::ostream& out) {
  out << "Usage: playbook <command> [options] [arguments]\n"
         "       playbook --version | --help\n\n"
         "Commands:\n";
  for (const auto& sub : kSubcommands) {
    out << "  " << sub.name << " " << sub.synopsis << "\n      " << sub.summary << "\n";
  }
  out << "\n" << kConnectionOptions
      << "\nExit status: 0 success, 1 the server returned an error, 2 usage error,\n"
         "3 connection, authentication or timeout failure.\n";
}

void PrintCallUsage(std::ostream& out) {
  out << "Usage: playbook call [options] METHOD ['JSON-PARAMS']\n\n"
         "Sends {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":METHOD,\"params\":JSON-PARAMS} (params default {})\n"
         "and prints the response to stdout. Notifications received meanwhile go to stderr.\n\n"
      << kConnectionOptions;
}

int UsageError(const std::string& message) {
  std::cerr << "playbook: " << message << "\n(run 'playbook --help' for usage)\n";
  return kExitUsage;
}

// ---------------------------------------------------------------------------
// Connection options, shared by every subcommand that talks to the daemon.

struct ConnectionOptions {
  std::string url;
  std::string token;
  Millis timeout{30000};
};

std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

ConnectionOptions DefaultConnectionOptions() {
  ConnectionOptions o;
  o.url = EnvOr("PLAYBOOK_URL", kDefaultUrl);
  o.token = EnvOr("PLAYBOOK_TOKEN", "");
  return o;
}

// Splits args into options and positional arguments. Understands "--opt VALUE",
// "--opt=VALUE" and "--" (end of options). `value_options` take a value;
// `flag_options` do not. Returns an error message, or nullopt.
struct ParsedArgs {
  std::vector<std::pair<std::string, std::string>> options;  // in order; flags have ""
  std::vector<std::string> positional;
};

std::optional<std::string> SplitArgs(Args args, std::initializer_list<std::string_view> value_options,
                                     std::initializer_list<std::string_view> flag_options,
                                     ParsedArgs& out) {
  auto is_in = [](std::string_view name, std::initializer_list<std::string_view> set) {
    for (auto s : set) {
      if (s == name) return true;
    }
    return false;
  };
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
    if (is_in(name, flag_options)) {
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

// Applies --url/--token/--timeout. Returns an error message, or nullopt.
std::optional<std::string> ApplyConnectionOption(const std::string& name, const std::string& value,
                                                 ConnectionOptions& o) {
  if (name == "--url") {
    o.url = value;
  } else if (name == "--token") {
    o.token = value;
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

std::string OneLine(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Millis Remaining(Clock::time_point deadline) {
  return std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
}

std::string Seconds(Millis ms) {
  std::string s = std::to_string(static_cast<double>(ms.count()) / 1000.0);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s + " s";
}

// Connects, explaining failures on stderr. False when it failed.
bool ConnectOrExplain(WsClient& ws, const ConnectionOptions& o, Clock::time_point deadline) {
  auto url = playbook::client::ParseUrl(o.url);
  if (!url.ok()) {
    std::cerr << "playbook: --url: " << url.status().message() << "\n";
    return false;
  }
  Status s = ws.Connect(url.value(), o.token, Remaining(deadline));
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

// Sends one request and waits for the response with `id`, printing
// notifications to stderr. Null json on failure (explained on stderr).
json Roundtrip(WsClient& ws, const ConnectionOptions& o, const json& request, const json& id,
               Clock::time_point deadline) {
  Status s = ws.Send(OneLine(request), Remaining(deadline));
  if (!s.ok()) {
    std::cerr << "playbook: " << o.url << ": " << s.message() << "\n";
    return json();
  }
  while (true) {
    const Millis left = Remaining(deadline);
    if (left.count() == 0) {
      std::cerr << "playbook: " << o.url << ": no response within " << Seconds(o.timeout) << "\n";
      return json();
    }
    Message m = ws.Read(left);
    switch (m.kind) {
      case Message::Kind::kText:
      case Message::Kind::kBinary: {
        json j = json::parse(m.data, nullptr, false);
        if (j.is_discarded()) {
          std::cerr << "playbook: ignoring a frame that is not JSON (" << m.data.size() << " bytes)\n";
          continue;
        }
        if (j.is_object() && j.contains("method") && !j.contains("id")) {
          std::cerr << OneLine(j) << "\n";  // a notification, e.g. index.progress
          continue;
        }
        // Ours, or an error the server could not attribute to a request (id null).
        if (j.is_object() && j.contains("id") &&
            (j["id"] == id || (j["id"].is_null() && j.contains("error")))) {
          return j;
        }
        continue;  // not ours
      }
      case Message::Kind::kTimeout:
        std::cerr << "playbook: " << o.url << ": no response within " << Seconds(o.timeout) << "\n";
        return json();
      case Message::Kind::kClosed:
        std::cerr << "playbook: " << o.url << " closed the connection before answering (close code "
                  << m.close_code << (m.error.empty() ? "" : ": " + m.error) << ")\n";
        return json();
      case Message::Kind::kError:
        std::cerr << "playbook: " << o.url << ": connection failed: " << m.error << "\n";
        return json();
    }
  }
}

// ---------------------------------------------------------------------------
// call

int RunCall(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--url", "--token", "--timeout"}, {"--help", "-h"}, parsed)) {
    return UsageError("call: " + *err);
  }
  ConnectionOptions conn = DefaultConnectionOptions();
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintCallUsage(std::cout);
      return kExitOk;
    }
    if (auto err = ApplyConnectionOption(name, value, conn)) return UsageError("call: " + *err);
  }
  if (parsed.positional.empty()) return UsageError("call: missing METHOD");
  if (parsed.positional.size() > 2) {
    return UsageError("call: too many arguments (expected METHOD ['JSON-PARAMS']; quote the JSON)");
  }
  const std::string& method = parsed.positional[0];
  if (method.empty()) return UsageError("call: METHOD is empty");
  json params = json::object();
  if (parsed.positional.size() == 2) {
    try {
      params = json::parse(parsed.positional[1]);
    } catch (const json::parse_error& e) {
      return UsageError("call: JSON-PARAMS is not valid JSON: " + std::string(e.what()));
    }
  }

  const auto deadline = Clock::now() + conn.timeout;
  const json id = 1;
  const json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};

  WsClient ws;
  if (!ConnectOrExplain(ws, conn, deadline)) return kExitConnection;
  json response = Roundtrip(ws, conn, request, id, deadline);
  (void)ws.Close(1000, std::min(Millis(2000), std::max(Millis(200), Remaining(deadline))));
  if (response.is_null()) return kExitConnection;

  std::cout << response.dump(2, ' ', false, json::error_handler_t::replace) << std::endl;
  if (response.contains("error")) {
    const json& e = response["error"];
    if (e.is_object()) {
      std::cerr << "playbook: " << method << " failed: error " << OneLine(e.value("code", json()))
                << ": " << e.value("message", std::string()) << "\n";
    }
    return kExitRpcError;
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------

int Dispatch(Args args) {
  if (args.empty()) {
    PrintUsage(std::cerr);
    return kExitUsage;
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  if (first == "--version" || first == "-V" || first == "version") {
    std::cout << "playbook " << playbook::BuildVersion() << "\n";
    return kExitOk;
  }
  if (!first.empty() && first[0] == '-') return UsageError("unknown option '" + first + "'");
  for (const auto& sub : kSubcommands) {
    if (sub.name == first) return sub.run(args.subspan(1));
  }
  return UsageError("unknown command '" + first + "'");
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return Dispatch(args);
  } catch (const std::exception& e) {
    std::cerr << "playbook: " << e.what() << "\n";
    return kExitConnection;
  }
}

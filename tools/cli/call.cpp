// playbook call [options] METHOD ['JSON-PARAMS']: one request, the response on stdout.
#include <iostream>

#include "common.h"

namespace playbook::cli {
namespace {

using playbook::Status;
using playbook::client::Message;
using playbook::client::WsClient;

void PrintCallUsage(std::ostream& out) {
  out << "Usage: playbook call [options] METHOD ['JSON-PARAMS']\n\n"
         "Sends {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":METHOD,\"params\":JSON-PARAMS} (params default {})\n"
         "and prints the response to stdout. Notifications received meanwhile go to stderr.\n"
         "--timeout bounds the whole exchange, connecting included.\n\n"
      << kConnectionOptions
      << "\nExit status: 0 a result, 1 an error response, 2 usage error (nothing sent),\n"
         "3 connection, authentication or timeout failure.\n";
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

}  // namespace

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
  if (!ConnectOrExplain(ws, conn, Remaining(deadline))) return kExitConnection;
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

}  // namespace playbook::cli

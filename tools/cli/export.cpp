// playbook export [FILE|-]: pages through assets.list and writes JSON Lines that
// `playbook import` reads back: only the fields an upsert takes.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "common.h"

namespace playbook::cli {
namespace {

constexpr int kPageSize = 1000;          // assets.list's maximum
constexpr int kPageSizeVectors = 200;    // keeps pages with vectors around 1-2 MB
constexpr std::size_t kMaxGetIds = 1000;  // assets.get's maximum

void PrintExportUsage(std::ostream& out) {
  out << "Usage: playbook export [options] [FILE|-]\n\n"
         "Writes every asset (or those matching --stage/--type) as JSON Lines to FILE, or to\n"
         "stdout when FILE is - or missing, one asset per line in id order, with the fields\n"
         "import takes: id,title,body,url,language,type,stages,tags,active, and vector when the\n"
         "client supplied it (vector_source \"client\") or with --with-vectors. A summary goes to\n"
         "stderr.\n\n"
         "Options:\n"
         "  --stage STAGE      only assets eligible at this funnel stage\n"
         "  --type TYPE        only assets of this type (e.g. case_study)\n"
         "  --with-vectors     also write the vectors the daemon's embedder made\n\n"
      << kConnectionOptions
      << "\nExit status: 0 success, 1 the daemon returned an error, 2 usage error or FILE not\n"
         "writable, 3 connection failure or timeout.\n";
}

// The fields of one listed asset that an upsert takes, in import's order.
json Exportable(const json& a, bool vector) {
  json out = json::object();
  for (const char* k : {"id", "title", "body", "url", "language", "type", "stages", "tags", "active", "variant_of"}) {
    if (a.contains(k) && !a[k].is_null()) out[k] = a[k];  // variant_of is null when none
  }
  if (vector && a.contains("vector")) out["vector"] = a["vector"];
  return out;
}

}  // namespace

int RunExport(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--url", "--token", "--timeout", "--stage", "--type"},
                           {"--help", "-h", "--with-vectors"}, parsed)) {
    return UsageError("export: " + *err);
  }
  ConnectionOptions conn = DefaultConnectionOptions();
  std::string stage, type;
  bool with_vectors = false;
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintExportUsage(std::cout);
      return kExitOk;
    }
    if (name == "--stage") {
      if (value.empty()) return UsageError("export: --stage is empty");
      stage = value;
    } else if (name == "--type") {
      if (value.empty()) return UsageError("export: --type is empty");
      type = value;
    } else if (name == "--with-vectors") {
      with_vectors = true;
    } else if (auto err = ApplyConnectionOption(name, value, conn)) {
      return UsageError("export: " + *err);
    }
  }
  if (parsed.positional.size() > 1) return UsageError("export: expected at most one FILE");
  const std::string path = parsed.positional.empty() ? "-" : parsed.positional[0];

  // Written to FILE.tmp and renamed at the end: a failed export leaves no half file.
  std::ofstream file;
  const std::string tmp = path + ".tmp";
  if (path != "-") {
    file.open(tmp, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "playbook: export: cannot write " << tmp << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
  }
  std::ostream& out = path == "-" ? std::cout : file;
  auto abandon = [&](int status) {
    if (path != "-") {
      file.close();
      std::remove(tmp.c_str());
    }
    return status;
  };

  const auto start = Clock::now();
  RpcConnection rpc(conn);
  if (!rpc.Connect()) return abandon(kExitConnection);

  int64_t written = 0, with_vector = 0;
  json cursor;  // null: first page
  do {
    json params = {{"limit", with_vectors ? kPageSizeVectors : kPageSize}};
    if (!stage.empty()) params["stage"] = stage;
    if (!type.empty()) params["type"] = type;
    if (with_vectors) params["with_vectors"] = true;
    if (!cursor.is_null()) params["cursor"] = cursor;
    json page = rpc.Call("assets.list", params);
    if (page.is_null()) return abandon(kExitConnection);
    if (page.contains("error")) {
      std::cerr << "playbook: export: assets.list failed: " << DescribeError(page) << "\n";
      return abandon(kExitRpcError);
    }
    const json& result = page["result"];
    if (!result.is_object() || !result.contains("assets") || !result["assets"].is_array()) {
      std::cerr << "playbook: export: assets.list answered without an assets array: " << OneLine(page)
                << "\n";
      return abandon(kExitRpcError);
    }
    const json& assets = result["assets"];

    // Vectors the client supplied are part of the asset: fetch them for this page.
    std::map<std::string, json> client_vectors;
    if (!with_vectors) {
      std::vector<std::string> ids;
      for (const json& a : assets) {
        if (a.value("vector_source", std::string()) == "client") ids.push_back(a.value("id", std::string()));
      }
      for (std::size_t from = 0; from < ids.size(); from += kMaxGetIds) {
        std::vector<std::string> chunk(ids.begin() + static_cast<std::ptrdiff_t>(from),
                                       ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), from + kMaxGetIds)));
        json got = rpc.Call("assets.get", {{"ids", chunk}, {"with_vectors", true}});
        if (got.is_null()) return abandon(kExitConnection);
        if (got.contains("error")) {
          std::cerr << "playbook: export: assets.get failed: " << DescribeError(got) << "\n";
          return abandon(kExitRpcError);
        }
        for (const json& a : got["result"].value("assets", json::array())) {
          if (a.contains("vector")) client_vectors[a.value("id", std::string())] = a["vector"];
        }
      }
    }

    for (const json& a : assets) {
      const bool client = a.value("vector_source", std::string()) == "client";
      json line = Exportable(a, with_vectors);
      if (!with_vectors && client) {
        auto it = client_vectors.find(a.value("id", std::string()));
        // Deleted or changed between the two calls: the next export has it.
        if (it != client_vectors.end()) line["vector"] = it->second;
      }
      if (line.contains("vector")) ++with_vector;
      out << OneLine(line) << '\n';
      ++written;
    }
    if (!out) {
      std::cerr << "playbook: export: writing " << (path == "-" ? "stdout" : tmp) << " failed: "
                << std::strerror(errno) << "\n";
      return abandon(kExitUsage);
    }
    json next = result.value("next_cursor", json());
    if (!next.is_null() && (!next.is_string() || next == cursor)) {
      std::cerr << "playbook: export: assets.list answered a next_cursor that does not advance: "
                << OneLine(next) << "\n";
      return abandon(kExitRpcError);
    }
    cursor = std::move(next);
  } while (!cursor.is_null());
  rpc.Close();

  out.flush();
  if (path != "-") {
    file.close();
    if (!file || std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::cerr << "playbook: export: cannot write " << path << ": " << std::strerror(errno) << "\n";
      std::remove(tmp.c_str());
      return kExitUsage;
    }
  } else if (!out) {
    std::cerr << "playbook: export: writing stdout failed: " << std::strerror(errno) << "\n";
    return kExitUsage;
  }
  std::cerr << "export: " << written << " assets (" << with_vector << " with vectors) written to "
            << (path == "-" ? "stdout" : path) << " in " << Fixed(SecondsSince(start), 2) << " s\n";
  return kExitOk;
}

}  // namespace playbook::cli

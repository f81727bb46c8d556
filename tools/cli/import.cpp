// playbook import FILE: streams assets from JSON Lines or CSV to assets.upsert.
//
// The file is read as it is sent: records go into batches of --batch assets
// (fewer when a batch would pass kMaxBatchBytes), and up to --in-flight batches
// are sent before waiting for an answer. assets.upsert is all-or-nothing per
// call, so when the daemon rejects assets[i] of a batch, that record's line is
// reported, the record dropped and the rest of the batch sent again.
//
// Two records with the same id never travel in the same batch, nor in two
// batches in flight at once (the daemon may run the frames of a connection in
// any order): the later line then waits, so the last line of an id wins.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common.h"
#include "readers.h"

namespace playbook::cli {
namespace {

// Below the daemon's default server.max_frame_bytes (4 MiB), envelope included.
constexpr std::size_t kMaxBatchBytes = std::size_t{3} << 20;
constexpr int kMaxOverloadRetries = 8;

void PrintImportUsage(std::ostream& out) {
  out << "Usage: playbook import [options] FILE|-\n\n"
         "Upserts the assets of FILE (JSON Lines or CSV; '-' reads JSON Lines from stdin) into\n"
         "the running daemon with assets.upsert, in batches over one connection. A bad line\n"
         "(not JSON, or an asset the daemon refuses) is reported on stderr with its line number\n"
         "and skipped; the rest is imported. A summary goes to stdout at the end.\n\n"
         "Options:\n"
         "  --batch N          assets per assets.upsert call, 1..10000 (default: 500)\n"
         "  --format FORMAT    jsonl or csv (default: from the extension: .csv is csv, anything\n"
         "                     else jsonl; stdin is jsonl)\n"
         "  --in-flight N      batches sent before waiting for an answer, 1..64 (default: 4)\n"
         "  --no-progress      no progress output on stderr\n\n"
         "JSON Lines: one asset object per line; blank lines and lines starting with # are skipped.\n"
         "A vector is an array of numbers or a base64 string of little-endian float32 (as the\n"
         "protocol takes it); arrays are sent as base64, which the daemon parses faster.\n"
         "CSV: a header naming columns among id,title,body,url,language,type,stages,tags,active,vector\n"
         "(id, title, type and stages required); stages and tags separated by | or ;, vector by\n"
         "spaces or |; RFC 4180 quoting (commas, \"\"doubled quotes\"\" and newlines inside quotes).\n\n"
      << kConnectionOptions
      << "\nExit status: 0 every line imported, 1 some lines failed (or the daemon refused the\n"
         "import), 2 usage error or unreadable FILE, 3 connection failure or timeout.\n";
}

// ---------------------------------------------------------------------------
// The import

struct Batch {
  std::vector<Record> records;
  std::size_t bytes = 0;
  int overload_retries = 0;
};

struct Totals {
  int64_t read = 0, upserted = 0, created = 0, updated = 0, failed = 0;
};

// "assets[12].stages[0]" -> 12 and "stages[0]"; nullopt when not of that form.
std::optional<std::pair<std::size_t, std::string>> SplitAssetField(const std::string& field) {
  constexpr std::string_view kPrefix = "assets[";
  if (field.rfind(kPrefix, 0) != 0) return std::nullopt;
  const auto close = field.find(']', kPrefix.size());
  if (close == std::string::npos) return std::nullopt;
  auto index = ParseInt(std::string_view(field).substr(kPrefix.size(), close - kPrefix.size()), 0,
                        INT64_MAX);
  if (!index) return std::nullopt;
  std::string rest = field.substr(close + 1);
  if (!rest.empty() && rest.front() == '.') rest.erase(0, 1);
  return std::make_pair(static_cast<std::size_t>(*index), rest);
}

class Importer {
 public:
  Importer(RpcConnection& rpc, Reader& reader, std::string name, std::size_t batch_size,
           std::size_t in_flight, double total_bytes, bool progress)
      : rpc_(rpc),
        reader_(reader),
        name_(std::move(name)),
        batch_size_(batch_size),
        window_(in_flight),
        total_bytes_(total_bytes),
        progress_("import", progress) {}

  // The exit status.
  int Run() {
    start_ = Clock::now();
    std::optional<Record> held;
    bool eof = false;
    while (!fatal_) {
      // Read and send until the window is full or a record must wait.
      while (!fatal_) {
        if (!held && !eof) {
          Record r;
          if (reader_.Next(r)) {
            ++totals_.read;
            held = std::move(r);
          } else {
            eof = true;
          }
        }
        if (!held) break;
        if (!held->error.empty()) {
          Fail(*held, held->error);
          held.reset();
          continue;
        }
        const bool dup_current = !held->id.empty() && current_ids_.count(held->id);
        const bool full = !current_.records.empty() &&
                          (current_.records.size() >= batch_size_ ||
                           current_.bytes + held->text.size() + 1 > kMaxBatchBytes);
        if (dup_current || full) {
          if (inflight_.size() >= window_) break;
          SendCurrent();
          continue;
        }
        if (!held->id.empty() && inflight_ids_.count(held->id)) break;  // wait for that batch
        current_ids_.insert(held->id);
        current_.bytes += held->text.size() + 1;
        current_.records.push_back(std::move(*held));
        held.reset();
      }
      if (fatal_) break;
      if (eof && !held && !current_.records.empty() && inflight_.size() < window_) SendCurrent();
      if (inflight_.empty()) {
        if (eof && !held && current_.records.empty()) break;
        if (fatal_) break;
        continue;  // room in the window again
      }
      if (!AwaitOne()) break;
      ShowProgress(false);
    }
    progress_.Finish();
    if (!fatal_ && reader_.failed()) {
      std::cerr << "playbook: import: " << name_ << ": read error: " << std::strerror(errno) << "\n";
      fatal_exit_ = kExitUsage;
      fatal_ = true;
    }
    PrintSummary();
    if (fatal_) return fatal_exit_;
    return totals_.failed > 0 ? kExitRpcError : kExitOk;
  }

 private:
  void Fail(const Record& r, const std::string& reason) {
    ++totals_.failed;
    progress_.Clear();
    std::cerr << "import: " << name_ << ": line " << r.line;
    if (!r.id.empty()) std::cerr << " (id '" << r.id << "')";
    std::cerr << ": " << reason << "\n";
  }

  void SendCurrent() {
    Batch b = std::move(current_);
    current_ = Batch();
    current_ids_.clear();
    SendBatch(std::move(b));
  }

  void SendBatch(Batch b) {
    std::string params;
    params.reserve(b.bytes + 16);
    params += R"({"assets":[)";
    for (std::size_t i = 0; i < b.records.size(); ++i) {
      if (i) params += ',';
      params += b.records[i].text;
    }
    params += "]}";
    auto id = rpc_.SendRaw("assets.upsert", params);
    if (!id) {
      fatal_ = true;
      fatal_exit_ = kExitConnection;
      return;
    }
    for (const Record& r : b.records) {
      if (!r.id.empty()) ++inflight_ids_[r.id];
    }
    inflight_.emplace(*id, std::move(b));
  }

  // Waits for one response and handles it. False on a fatal failure.
  bool AwaitOne() {
    const auto deadline = Clock::now() + rpc_.options().timeout;
    while (true) {
      const Millis left = Remaining(deadline);
      if (left.count() == 0) {
        std::cerr << "playbook: import: " << rpc_.options().url << ": no response within "
                  << Seconds(rpc_.options().timeout) << "\n";
        fatal_ = true;
        fatal_exit_ = kExitConnection;
        return false;
      }
      auto ev = rpc_.Next(std::min(left, Millis(250)));
      if (ev.kind == RpcConnection::Event::Kind::kFailed) {
        fatal_ = true;
        fatal_exit_ = kExitConnection;
        return false;
      }
      if (ev.kind == RpcConnection::Event::Kind::kIdle) {
        ShowProgress(false);
        continue;
      }
      if (ev.kind == RpcConnection::Event::Kind::kNotification) continue;
      auto it = inflight_.find(ev.id);
      if (it == inflight_.end()) continue;  // not ours (cannot happen)
      Batch b = std::move(it->second);
      inflight_.erase(it);
      for (const Record& r : b.records) {
        if (r.id.empty()) continue;
        if (auto f = inflight_ids_.find(r.id); f != inflight_ids_.end() && --f->second == 0) {
          inflight_ids_.erase(f);
        }
      }
      Handle(std::move(b), ev.message);
      return !fatal_;
    }
  }

  void Handle(Batch b, const json& response) {
    if (!response.contains("error")) {
      const json& res = response.value("result", json::object());
      auto count = [&](const char* k) {
        return res.is_object() && res.contains(k) && res[k].is_number_integer() ? res[k].get<int64_t>() : 0;
      };
      totals_.upserted += count("upserted");
      totals_.created += count("created");
      totals_.updated += count("updated");
      return;
    }
    const int code = ErrorCode(response);
    const json& err = response["error"];
    const json data = err.is_object() ? err.value("data", json::object()) : json::object();
    const std::string field = data.is_object() ? data.value("field", std::string()) : std::string();
    std::string reason = data.is_object() ? data.value("reason", std::string()) : std::string();
    if (reason.empty() && err.is_object()) reason = err.value("message", std::string());

    if (code == -32602) {
      if (auto at = SplitAssetField(field); at && at->first < b.records.size()) {
        const Record bad = std::move(b.records[at->first]);
        b.records.erase(b.records.begin() + static_cast<std::ptrdiff_t>(at->first));
        Fail(bad, (at->second.empty() ? "" : at->second + ": ") + reason);
        if (!b.records.empty()) {
          b.bytes -= std::min(b.bytes, bad.text.size() + 1);
          SendBatch(std::move(b));
        }
        return;
      }
    }
    if (code == -32003 && b.overload_retries < kMaxOverloadRetries) {
      const int64_t ms = std::min<int64_t>(5000, 100LL << b.overload_retries);
      ++b.overload_retries;
      std::this_thread::sleep_for(Millis(ms));
      SendBatch(std::move(b));
      return;
    }
    // Not about one asset: every record of the batch failed for this reason.
    const std::string why = DescribeError(response) + (field.empty() ? "" : " (field " + field + ")");
    if (code == -32001 || code == -32601) {
      progress_.Clear();
      std::cerr << "playbook: import: assets.upsert refused: " << why << "\n";
      totals_.failed += static_cast<int64_t>(b.records.size());
      fatal_ = true;
      fatal_exit_ = kExitRpcError;
      return;
    }
    for (const Record& r : b.records) Fail(r, "assets.upsert failed: " + why);
  }

  void ShowProgress(bool force) {
    const double elapsed = SecondsSince(start_);
    const double rate = elapsed > 0 ? static_cast<double>(totals_.upserted) / elapsed : 0;
    double fraction = -1, eta = -1;
    if (total_bytes_ > 0) {
      // The share of the file read, scaled by the share of what was read that is
      // answered (batches in flight are read but not done).
      const int64_t answered = totals_.upserted + totals_.failed;
      fraction = std::min(1.0, static_cast<double>(reader_.bytes()) / total_bytes_);
      if (totals_.read > 0) fraction *= static_cast<double>(answered) / static_cast<double>(totals_.read);
      if (fraction > 0.001 && elapsed > 0.2) eta = elapsed * (1 - fraction) / fraction;
    }
    std::string what = std::to_string(totals_.read) + " read, " + std::to_string(totals_.upserted) +
                       " upserted";
    if (totals_.failed) what += ", " + std::to_string(totals_.failed) + " failed";
    progress_.Update(fraction, what, rate, eta, force);
  }

  void PrintSummary() {
    const double elapsed = SecondsSince(start_);
    const double rate = elapsed > 0 ? static_cast<double>(totals_.upserted) / elapsed : 0;
    std::cout << "import " << name_ << ": " << totals_.read << " lines read, " << totals_.upserted
              << " upserted (" << totals_.created << " created, " << totals_.updated << " updated), "
              << totals_.failed << " failed in " << Fixed(elapsed, 2) << " s (" << Fixed(rate, 0)
              << " assets/s)";
    if (fatal_) {
      const int64_t unsent = totals_.read - totals_.upserted - totals_.failed;
      std::cout << "; stopped early" << (unsent > 0 ? ", " + std::to_string(unsent) + " lines not imported" : "");
    }
    std::cout << std::endl;
  }

  RpcConnection& rpc_;
  Reader& reader_;
  std::string name_;
  std::size_t batch_size_;
  std::size_t window_;
  double total_bytes_;
  ProgressDisplay progress_;
  Clock::time_point start_;

  Batch current_;
  std::unordered_set<std::string> current_ids_;
  std::map<int64_t, Batch> inflight_;
  std::unordered_map<std::string, int> inflight_ids_;
  Totals totals_;
  bool fatal_ = false;
  int fatal_exit_ = kExitConnection;
};

}  // namespace

int RunImport(Args args) {
  std::ios::sync_with_stdio(false);  // before any I/O: a fast std::cin for '-'
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--url", "--token", "--timeout", "--batch", "--format", "--in-flight"},
                           {"--help", "-h", "--no-progress"}, parsed)) {
    return UsageError("import: " + *err);
  }
  ConnectionOptions conn = DefaultConnectionOptions();
  std::size_t batch = 500, in_flight = 4;
  std::string format;
  bool progress = true;
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintImportUsage(std::cout);
      return kExitOk;
    }
    if (name == "--batch") {
      auto n = ParseInt(value, 1, 10000);
      if (!n) return UsageError("import: --batch: '" + value + "' is not a number in 1..10000");
      batch = static_cast<std::size_t>(*n);
    } else if (name == "--in-flight") {
      auto n = ParseInt(value, 1, 64);
      if (!n) return UsageError("import: --in-flight: '" + value + "' is not a number in 1..64");
      in_flight = static_cast<std::size_t>(*n);
    } else if (name == "--format") {
      if (value != "jsonl" && value != "csv") {
        return UsageError("import: --format: '" + value + "' is not jsonl or csv");
      }
      format = value;
    } else if (name == "--no-progress") {
      progress = false;
    } else if (auto err = ApplyConnectionOption(name, value, conn)) {
      return UsageError("import: " + *err);
    }
  }
  if (parsed.positional.empty()) return UsageError("import: missing FILE (or - for stdin)");
  if (parsed.positional.size() > 1) return UsageError("import: expected one FILE");
  const std::string& path = parsed.positional[0];

  if (format.empty()) {
    auto ends_with = [&](std::string_view ext) {
      if (path.size() < ext.size()) return false;
      std::string tail = path.substr(path.size() - ext.size());
      std::transform(tail.begin(), tail.end(), tail.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return tail == ext;
    };
    format = path != "-" && ends_with(".csv") ? "csv" : "jsonl";
  }

  std::ifstream file;
  std::istream* in = &std::cin;
  double total_bytes = 0;
  std::string name = path == "-" ? "<stdin>" : path;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      std::cerr << "playbook: import: cannot open " << path << ": " << std::strerror(errno) << "\n";
      return kExitUsage;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) total_bytes = static_cast<double>(st.st_size);
    in = &file;
  }

  std::unique_ptr<Reader> reader = format == "csv" ? MakeCsvReader(*in) : MakeJsonlReader(*in);
  if (std::string f = reader->fatal(); !f.empty()) {
    std::cerr << "import: " << name << ": " << f << "\n";
    std::cout << "import " << name << ": nothing imported (the CSV header is not usable)" << std::endl;
    return kExitRpcError;
  }

  RpcConnection rpc(conn);
  if (!rpc.Connect()) return kExitConnection;
  Importer importer(rpc, *reader, name, batch, in_flight, total_bytes, progress);
  const int status = importer.Run();
  rpc.Close();
  return status;
}

}  // namespace playbook::cli

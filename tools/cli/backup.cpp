// playbook backup DIR: server.backup, a consistent online backup written by
// the daemon. playbook restore DIR --data-dir NEW: offline, copies a backup
// into a new data dir after checking it against its manifest (the format is
// described in engine/src/backup.cpp).
#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>

#include "common.h"

namespace playbook::cli {
int RunBackup(Args args);
int RunRestore(Args args);

namespace {

namespace fs = std::filesystem;

constexpr Millis kDefaultBackupTimeout{600 * 1000};

void PrintBackupUsage(std::ostream& out) {
  out << "Usage: playbook backup [options] DIR\n\n"
         "Asks the daemon for a consistent online backup into DIR (server.backup), while it\n"
         "keeps serving: a RocksDB checkpoint of the data, the vector index saved at the same\n"
         "point and a manifest (DIR/BACKUP). DIR must not exist or be empty; it is written by\n"
         "the daemon, so it names a directory on the daemon's machine (a relative DIR is made\n"
         "absolute here). Table files are hard links into the data dir when DIR is on the same\n"
         "file system: copy the backup elsewhere to survive the loss of that disk.\n"
         "Restore it with 'playbook restore DIR --data-dir NEW'. Needs an admin token when\n"
         "tokens are configured.\n\n"
      << kConnectionOptions
      << "(default --timeout here: 600 s)\n"
         "\nExit status: 0 backed up, 1 the daemon returned an error (e.g. DIR not empty),\n"
         "2 usage error, 3 connection failure or timeout.\n";
}

void PrintRestoreUsage(std::ostream& out) {
  out << "Usage: playbook restore DIR --data-dir NEW\n\n"
         "Offline: copies the backup in DIR (written by 'playbook backup') into NEW, a data dir\n"
         "that must not exist or be empty, after checking every file against the backup's\n"
         "manifest. No daemon is needed; start one with [storage] data_dir = NEW afterwards.\n"
         "The index is used as saved when the backup holds it, otherwise the daemon rebuilds it\n"
         "at start from the stored vectors (nothing is re-embedded).\n\n"
         "Options:\n"
         "  --data-dir NEW     the new data dir (required)\n\n"
         "Exit status: 0 restored, 1 the backup is incomplete or damaged, NEW is not empty, or a\n"
         "copy failed, 2 usage error.\n";
}

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? std::to_string(b) + " B" : Fixed(v, 1) + " " + units[u];
}

// fsync of a file or directory.
bool SyncPath(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// "2026-12-02 16:04:08 UTC" from ms since the epoch (the text itself when it is not a number).
std::string UtcTime(const std::string& ms_text) {
  auto ms = ParseInt(ms_text, 0, INT64_MAX);
  if (!ms) return ms_text;
  const std::time_t t = std::time_t(*ms / 1000);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return ms_text;
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

struct Manifest {
  std::map<std::string, std::string> fields;          // key -> value (not "file")
  std::vector<std::pair<std::string, uint64_t>> files;  // relative path, bytes
};

// Reads and checks DIR/BACKUP; an error message, or nullopt.
std::optional<std::string> ReadManifest(const fs::path& dir, Manifest* m) {
  const fs::path path = dir / "BACKUP";
  std::ifstream in(path);
  if (!in) return "no manifest '" + path.string() + "': not a backup written by 'playbook backup', or an unfinished one";
  std::string line;
  size_t n = 0;
  bool ended = false;
  while (std::getline(in, line)) {
    ++n;
    if (ended) return path.string() + ": text after 'end' (line " + std::to_string(n) + ")";
    if (n == 1) {
      if (line != "playbook-backup 1") return path.string() + ": not a playbook backup manifest (version 1)";
      continue;
    }
    if (line == "end") {
      ended = true;
      continue;
    }
    std::istringstream words(line);
    std::string key, value, extra;
    words >> key >> value;
    if (key.empty() || value.empty()) return path.string() + ": malformed line " + std::to_string(n);
    if (key == "file") {
      std::string size;
      words >> size;
      auto bytes = ParseInt(size, 0, INT64_MAX);
      const fs::path rel(value);
      if (!bytes || rel.is_absolute() || value.find("..") != std::string::npos) {
        return path.string() + ": malformed file line " + std::to_string(n);
      }
      m->files.emplace_back(value, uint64_t(*bytes));
    } else {
      m->fields[key] = value;
    }
    if (words >> extra) return path.string() + ": malformed line " + std::to_string(n);
  }
  if (!ended) return path.string() + ": unfinished (no 'end' line): the backup did not complete";
  for (const char* key : {"format", "created_ms", "catalog_seq", "events", "index"}) {
    if (!m->fields.count(key)) return path.string() + ": no '" + key + "' line";
  }
  if (m->files.empty()) return path.string() + ": lists no files";
  bool has_current = false, has_index = false;
  for (const auto& [rel, bytes] : m->files) {
    has_current = has_current || rel == "db/CURRENT";
    has_index = has_index || rel == "index.pbidx";
    std::error_code ec;
    const uint64_t actual = fs::file_size(dir / rel, ec);
    if (ec) return "backup file '" + (dir / rel).string() + "' is missing (" + ec.message() + ")";
    if (actual != bytes) {
      return "backup file '" + (dir / rel).string() + "' has " + std::to_string(actual) + " bytes, the manifest says " +
             std::to_string(bytes);
    }
  }
  if (!has_current) return path.string() + ": lists no db/CURRENT: not a complete checkpoint";
  if (m->fields["index"] != "none" && !has_index) return path.string() + ": names an index file it does not list";
  return std::nullopt;
}

}  // namespace

int RunBackup(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--url", "--token", "--timeout"}, {"--help", "-h"}, parsed)) {
    return UsageError("backup: " + *err);
  }
  ConnectionOptions conn = DefaultConnectionOptions();
  conn.timeout = kDefaultBackupTimeout;
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintBackupUsage(std::cout);
      return kExitOk;
    }
    if (auto err = ApplyConnectionOption(name, value, conn)) return UsageError("backup: " + *err);
  }
  if (parsed.positional.size() != 1 || parsed.positional[0].empty()) {
    return UsageError("backup: expected one argument, the backup directory DIR");
  }
  std::error_code ec;
  const fs::path dir = fs::absolute(parsed.positional[0], ec).lexically_normal();
  if (ec) return UsageError("backup: cannot make '" + parsed.positional[0] + "' absolute: " + ec.message());

  RpcConnection rpc(conn);
  if (!rpc.Connect()) return kExitConnection;
  json r = rpc.Call("server.backup", json{{"dir", dir.string()}});
  if (r.is_null()) return kExitConnection;
  if (r.contains("error")) {
    std::cerr << "playbook: backup: server.backup failed: " << DescribeError(r) << "\n";
    return kExitRpcError;
  }
  const json& x = r["result"];
  std::cout << "backup: " << x.value("files", uint64_t{0}) << " files, " << HumanBytes(x.value("bytes", uint64_t{0}))
            << " in " << x.value("dir", dir.string()) << " in " << Fixed(double(x.value("ms", int64_t{0})) / 1000, 2)
            << " s; catalog sequence " << x.value("catalog_seq", uint64_t{0}) << ", "
            << x.value("events", uint64_t{0}) << " events; index "
            << (x.value("index", false) ? "included" : "left out (rebuilt from the stored vectors at start)")
            << "\nrestore with: playbook restore " << dir.string() << " --data-dir NEW" << std::endl;
  rpc.Close();
  return kExitOk;
}

int RunRestore(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args, {"--data-dir"}, {"--help", "-h"}, parsed)) return UsageError("restore: " + *err);
  std::string target;
  for (const auto& [name, value] : parsed.options) {
    if (name == "--help" || name == "-h") {
      PrintRestoreUsage(std::cout);
      return kExitOk;
    }
    if (name == "--data-dir") target = value;
  }
  if (parsed.positional.size() != 1 || parsed.positional[0].empty()) {
    return UsageError("restore: expected one argument, the backup directory DIR");
  }
  if (target.empty()) return UsageError("restore: --data-dir NEW is required");
  const fs::path dir(parsed.positional[0]);
  const fs::path to(target);

  std::error_code ec;
  if (fs::exists(to, ec)) {
    if (!fs::is_directory(to, ec)) {
      std::cerr << "playbook: restore: --data-dir '" << target << "' exists and is not a directory\n";
      return kExitRpcError;
    }
    if (!fs::is_empty(to, ec)) {
      std::cerr << "playbook: restore: --data-dir '" << target
                << "' is not empty; restore into a new or empty directory (nothing was written)\n";
      return kExitRpcError;
    }
  }
  Manifest m;
  if (auto err = ReadManifest(dir, &m)) {
    std::cerr << "playbook: restore: " << *err << " (nothing was written)\n";
    return kExitRpcError;
  }

  fs::create_directories(to, ec);
  if (ec) {
    std::cerr << "playbook: restore: cannot create '" << target << "': " << ec.message() << "\n";
    return kExitRpcError;
  }
  uint64_t bytes = 0;
  std::vector<fs::path> dirs = {to};
  for (const auto& [rel, size] : m.files) {
    const fs::path from = dir / rel, dest = to / rel;
    if (dest.has_parent_path() && !fs::exists(dest.parent_path())) {
      fs::create_directories(dest.parent_path(), ec);
      dirs.push_back(dest.parent_path());
    }
    if (!ec) fs::copy_file(from, dest, fs::copy_options::none, ec);
    if (ec || fs::file_size(dest, ec) != size || !SyncPath(dest, false)) {
      std::cerr << "playbook: restore: copying '" << from.string() << "' to '" << dest.string()
                << "' failed: " << (ec ? ec.message() : "size differs or sync failed")
                << "; remove '" << target << "' before trying again\n";
      return kExitRpcError;
    }
    bytes += size;
  }
  for (const fs::path& d : dirs) {
    if (!SyncPath(d, true)) {
      std::cerr << "playbook: restore: cannot sync '" << d.string() << "'\n";
      return kExitRpcError;
    }
  }
  const fs::path abs = fs::absolute(to, ec).lexically_normal();
  std::cout << "restore: " << m.files.size() << " files, " << HumanBytes(bytes) << " copied into " << abs.string()
            << "\n  backup of " << UtcTime(m.fields["created_ms"]) << ": catalog sequence "
            << m.fields["catalog_seq"] << ", " << m.fields["events"] << " events, index "
            << (m.fields["index"] == "none" ? "not included (rebuilt at start from the stored vectors)" : "included")
            << "\nnext: set [storage] data_dir = \"" << abs.string()
            << "\" in the daemon's config and start playbookd;\n"
               "      then 'playbook reaggregate --check' should report 0 differing aggregates.\n";
  return kExitOk;
}

}  // namespace playbook::cli

// Online backup: a RocksDB checkpoint, the index saved at the same catalog
// sequence, and a manifest written last.
//
// The manifest (dir/BACKUP) is text, one "key value" per line:
//
//   playbook-backup 1
//   format 2                 the data dir format (engine.cpp kFormatVersion)
//   dimension 384
//   created_ms 1764676800000
//   catalog_seq 42
//   events 123456            the feedback writer's sequence in the checkpoint
//   index index.pbidx        or "index none"
//   file db/000012.sst 4096  one line per file of the backup, path relative to dir, bytes
//   ...
//   end
//
// `playbook restore` (tools/cli/backup.cpp) reads it: a backup whose manifest
// is missing, unfinished (no "end") or names a file of another size is refused.
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/utilities/checkpoint.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "engine_impl.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;

// fsync of a file or directory; false when it could not be synced.
bool SyncPath(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// Whether `inner` is `outer` or lies below it (both made absolute and normal).
bool Within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(inner, ec);
  if (ec) return false;
  const fs::path b = fs::weakly_canonical(outer, ec);
  if (ec) return false;
  auto ai = a.begin(), bi = b.begin();
  for (; bi != b.end(); ++ai, ++bi) {
    if (bi->empty()) continue;  // a trailing separator
    if (ai == a.end() || *ai != *bi) return false;
  }
  return true;
}

int64_t MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
}

// Reads the catalog and event sequences a checkpoint holds, by opening it
// read-only (which also proves it opens).
Status ReadSequences(const std::string& db_dir, uint64_t* catalog_seq, uint64_t* events) {
  rocksdb::DBOptions options;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, db_dir, cfs, &handles, &raw);
  if (!s.ok()) return Status::IOError("the checkpoint in '" + db_dir + "' does not open: " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  auto read = [&](const char* key, uint64_t* out) -> Status {
    std::string v;
    rocksdb::Status g = db->Get(rocksdb::ReadOptions(), handles[0], key, &v);
    *out = 0;
    if (g.IsNotFound()) return Status::Ok();
    if (!g.ok()) return Status::IOError(std::string("reading ") + key + " from the checkpoint: " + g.ToString());
    try {
      *out = std::stoull(v);
    } catch (const std::exception&) {
      return Status::Corruption(std::string(key) + " in the checkpoint is not a number: '" + v + "'");
    }
    return Status::Ok();
  };
  Status r = read("meta/catalog_seq", catalog_seq);
  if (r.ok()) r = read("meta/event_seq", events);
  for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  (void)db->Close();
  return r;
}

}  // namespace

Result<BackupInfo> EngineImpl::Backup(const std::string& dir) {
  const auto start = std::chrono::steady_clock::now();
  if (dir.empty()) return Status::InvalidArgument("dir", "must not be empty");
  const fs::path root(dir);
  if (!root.is_absolute()) {
    return Status::InvalidArgument("dir", "must be an absolute path (it is written by the daemon), got '" + dir + "'");
  }
  std::error_code ec;
  if (fs::exists(root, ec)) {
    if (!fs::is_directory(root, ec)) return Status::InvalidArgument("dir", "'" + dir + "' exists and is not a directory");
    if (!fs::is_empty(root, ec) || ec) {
      return Status::InvalidArgument("dir", "'" + dir + "' is not empty; a backup goes into a new or empty directory");
    }
  }
  if (Within(root, options_.data_dir)) {
    return Status::InvalidArgument("dir", "'" + dir + "' is inside the data dir '" + options_.data_dir + "'");
  }
  fs::create_directories(root, ec);
  if (ec) return Status::IOError("cannot create backup dir '" + dir + "': " + ec.message());

  BackupInfo info;
  info.dir = dir;
  const std::string db_dir = (root / "db").string();
  const std::string index_path = (root / "index.pbidx").string();
  uint64_t saved_seq = 0;
  {
    // Catalog writes hold write_mu_ from their synced write until the index
    // has them, so under it the index is exactly the catalog at catalog_seq_,
    // and so is the checkpoint's catalog. Feedback goes on meanwhile.
    std::lock_guard<std::mutex> lock(write_mu_);
    const auto paused = std::chrono::steady_clock::now();
    if (Status h = Health(); !h.ok()) return h;
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
    if (!s.ok()) return Status::IOError("starting the checkpoint: " + s.ToString());
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    // Flushes the memtables first (log_size_for_flush 0), so the backup is
    // mostly table files (hard links on the same file system) and a short WAL.
    s = checkpoint->CreateCheckpoint(db_dir, /*log_size_for_flush=*/0);
    if (!s.ok()) return Status::IOError("writing the checkpoint into '" + db_dir + "': " + s.ToString());
    saved_seq = catalog_seq_;
    info.created_ms = NowMs();
    info.index_included = index_->Save(index_path, saved_seq, embedder_ ? embedder_->Name() : "").ok();
    info.paused_ms = MsSince(paused);
  }

  if (Status r = ReadSequences(db_dir, &info.catalog_seq, &info.events); !r.ok()) return r;
  if (info.index_included && info.catalog_seq != saved_seq) {
    // Cannot happen while catalog writes hold write_mu_; if it ever does, the
    // index is left out and the restored daemon rebuilds it from the vectors.
    info.index_included = false;
  }
  if (!info.index_included) fs::remove(index_path, ec);
  if (info.index_included && !SyncPath(index_path, false)) {
    return Status::IOError("cannot sync '" + index_path + "'");
  }

  std::string manifest = "playbook-backup 1\nformat 2\ndimension " + std::to_string(options_.dimension) +
                         "\ncreated_ms " + std::to_string(info.created_ms) + "\ncatalog_seq " +
                         std::to_string(info.catalog_seq) + "\nevents " + std::to_string(info.events) +
                         "\nindex " + (info.index_included ? "index.pbidx" : "none") + "\n";
  std::vector<std::pair<std::string, uint64_t>> files;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string rel = fs::relative(it->path(), root, ec).string();
    const uint64_t size = it->file_size(ec);
    if (ec) break;
    files.emplace_back(rel, size);
  }
  if (ec) return Status::IOError("listing the backup in '" + dir + "': " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& [rel, size] : files) {
    if (rel.find_first_of(" \n") != std::string::npos) {
      return Status::IOError("unexpected file name in the backup: '" + rel + "'");
    }
    manifest += "file " + rel + " " + std::to_string(size) + "\n";
    info.bytes += size;
    ++info.files;
  }
  manifest += "end\n";

  const fs::path tmp = root / "BACKUP.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << manifest;
    out.close();
    if (!out) return Status::IOError("cannot write '" + tmp.string() + "'");
  }
  if (!SyncPath(tmp, false)) return Status::IOError("cannot sync '" + tmp.string() + "'");
  fs::rename(tmp, root / "BACKUP", ec);
  if (ec) return Status::IOError("cannot write the manifest '" + (root / "BACKUP").string() + "': " + ec.message());
  if (!SyncPath(root, true)) return Status::IOError("cannot sync '" + dir + "'");
  info.ms = MsSince(start);
  return info;
}

}  // namespace playbook

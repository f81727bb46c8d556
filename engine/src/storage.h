// RocksDB statuses as engine Statuses, and whether the database currently
// accepts writes. Private to engine/.
//
// Reads: anything but NotFound is an error the caller sees (Corruption or
// IOError), never "missing" or zero. Writes: when one fails (a full disk, a
// failing device), RocksDB may stop accepting writes until DB::Resume(); the
// StorageState remembers the failure, Health() reports it, and each write
// first tries to recover (at most once a second) so that freeing space is
// enough to bring writes back without a restart.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "playbook/engine/status.h"

namespace playbook {

// `what` says what was being read or written ("reading asset 'a1'").
inline Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

class StorageState {
 public:
  // `probe_cf` takes one small synced write when recovery is tried.
  StorageState(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* probe_cf) : db_(db), probe_cf_(probe_cf) {}

  // OK when the last write succeeded (or recovery has just worked); else the
  // IOError every write gets meanwhile.
  Status BeforeWrite() {
    if (!failing_.load()) return Status::Ok();
    return TryRecover();
  }

  // The Status for a write's outcome; a failure marks the storage as failing.
  Status AfterWrite(const rocksdb::Status& s, const std::string& what) {
    if (s.ok()) return Status::Ok();
    std::lock_guard<std::mutex> lock(mu_);
    cause_ = what + ": " + s.ToString();
    failing_ = true;
    last_try_ = {};  // the next check tries to recover at once (and learns whether it can)
    return Failure();
  }

  // For Health(): OK, or why writes are refused (tries recovery first).
  Status Check() { return BeforeWrite(); }

  bool failing() const { return failing_.load(); }

 private:
  Status TryRecover() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failing_) return Status::Ok();
    const auto now = std::chrono::steady_clock::now();
    if (stopped_ || now - last_try_ < std::chrono::seconds(1)) return Failure();
    last_try_ = now;
    // Resume clears RocksDB's background error (a no-op when there is none);
    // the probe proves that a synced write goes through again.
    rocksdb::Status s = db_->Resume();
    if (!s.ok() && s.severity() >= rocksdb::Status::Severity::kFatalError) {
      // RocksDB 7.8 treats a failed log write as fatal: only a reopen clears it.
      stopped_ = true;
    }
    if (s.ok()) {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = db_->Put(wo, probe_cf_, "meta/write_probe", std::to_string(NowProbe()));
    }
    if (!s.ok()) {
      last_error_ = s.ToString();
      return Failure();
    }
    failing_ = false;
    cause_.clear();
    last_error_.clear();
    return Status::Ok();
  }

  // REQUIRES: mu_ held.
  Status Failure() const {
    std::string m = "storage is refusing writes (" + cause_ + ")";
    if (stopped_) {
      return Status::IOError(m + "; the database stopped accepting writes until playbookd restarts. Reads are "
                                 "still served and nothing acknowledged is lost: free disk space or fix the "
                                 "device, then restart playbookd");
    }
    if (!last_error_.empty() && last_error_ != cause_) m += "; still failing: " + last_error_;
    return Status::IOError(m + "; the write was not acknowledged. Reads are still served. Free disk space or fix "
                               "the device: writes resume by themselves once a retry succeeds");
  }

  static int64_t NowProbe() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
  }

  rocksdb::DB* const db_;
  rocksdb::ColumnFamilyHandle* const probe_cf_;
  std::atomic<bool> failing_{false};
  bool stopped_ = false;    // RocksDB's error is fatal: a restart is needed
  std::mutex mu_;
  std::string cause_;       // the write that failed first
  std::string last_error_;  // the last recovery attempt's error
  std::chrono::steady_clock::time_point last_try_{};
};

}  // namespace playbook

// The engine's storage core: one RocksDB instance in the data dir.
#include "playbook/engine/engine.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <filesystem>
#include <mutex>
#include <system_error>

namespace playbook {
namespace {

// Bumped when the on-disk layout changes incompatibly; stored under kFormatKey.
constexpr const char* kFormatKey = "meta/format";
constexpr const char* kFormatVersion = "1";
constexpr const char* kDimensionKey = "meta/dimension";

class EngineImpl final : public Engine {
 public:
  EngineImpl(EngineOptions options, std::unique_ptr<rocksdb::DB> db)
      : options_(std::move(options)), db_(std::move(db)) {}

  ~EngineImpl() override { (void)Close(); }

  Status Health() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!db_) return Status::IOError("engine is closed");
    return Status::Ok();
  }

  Status Close() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!db_) return Status::Ok();
    // Every acknowledged write was already synced; FlushWAL(sync) covers
    // anything written without sync, and Close releases the LOCK file.
    rocksdb::Status s = db_->FlushWAL(/*sync=*/true);
    rocksdb::Status c = db_->Close();
    db_.reset();
    if (!s.ok()) return Status::IOError("flush on close: " + s.ToString());
    if (!c.ok()) return Status::IOError("close: " + c.ToString());
    return Status::Ok();
  }

  const EngineOptions& options() const override { return options_; }

 private:
  const EngineOptions options_;
  mutable std::mutex mu_;  // guards db_ against Close
  std::unique_ptr<rocksdb::DB> db_;
};

// Checks or records the format and dimension of a data dir.
Status CheckMeta(rocksdb::DB* db, const EngineOptions& options) {
  std::string format;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), kFormatKey, &format);
  const std::string dim = std::to_string(options.dimension);
  if (s.IsNotFound()) {
    rocksdb::WriteBatch batch;
    batch.Put(kFormatKey, kFormatVersion);
    batch.Put(kDimensionKey, dim);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Write(wo, &batch);
    if (!s.ok()) return Status::IOError("writing data dir metadata: " + s.ToString());
    return Status::Ok();
  }
  if (!s.ok()) return Status::IOError("reading data dir metadata: " + s.ToString());
  if (format != kFormatVersion) {
    return Status::Corruption("data dir format '" + format + "' is not the supported format '" +
                              kFormatVersion + "'");
  }
  std::string stored_dim;
  s = db->Get(rocksdb::ReadOptions(), kDimensionKey, &stored_dim);
  if (!s.ok()) return Status::Corruption("data dir has no stored dimension: " + s.ToString());
  if (stored_dim != dim) {
    return Status::InvalidArgument(
        "index.dimension", "the data dir holds vectors of dimension " + stored_dim +
                               " but the config says " + dim +
                               "; use the stored dimension or a new data dir");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Status::IOError("cannot create data dir '" + options.data_dir + "': " + ec.message());

  rocksdb::Options ro;
  ro.create_if_missing = true;
  ro.IncreaseParallelism(2);
  ro.keep_log_file_num = 5;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(ro, options.data_dir + "/db", &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::IOError("data dir '" + options.data_dir +
                             "' is in use by another process (" + s.ToString() + ")");
    }
    if (s.IsCorruption()) return Status::Corruption("opening the database: " + s.ToString());
    return Status::IOError("opening the database in '" + options.data_dir + "': " + s.ToString());
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  Status meta = CheckMeta(db.get(), options);
  if (!meta.ok()) return meta;
  return std::unique_ptr<Engine>(new EngineImpl(options, std::move(db)));
}

}  // namespace playbook

// Storage faults: RocksDB errors reach the caller as errors (never "missing"
// or zero), a full disk fails writes clearly while reads go on, the engine
// recovers once the fault clears and loses nothing acknowledged; a damaged
// index file is rebuilt with a warning, a damaged database is refused with
// advice. Faults are injected by FaultFS, a RocksDB FileSystem wrapper put
// under the engine through EngineOptions::rocksdb_test_hook.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "playbook/engine/engine.h"
#include "test_embedder.h"

namespace playbook {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// FaultFS: the real file system, with faults switched on and off by a test.

struct Faults {
  enum Read { kNone = 0, kIOError = 1, kCorrupt = 2 };
  std::atomic<int> read{kNone};          // table-file reads: an IOError, or garbled bytes
  std::atomic<bool> disk_full{false};    // appends, syncs and new files fail with ENOSPC
  std::atomic<bool> sync_fails{false};   // only syncs fail (data appended, not made durable)
  std::atomic<bool> hold_syncs{false};   // syncs wait until this is cleared (a very slow disk)
  std::atomic<uint64_t> injected{0};     // faults returned so far
};

class FaultRandomAccessFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile> f, Faults* faults)
      : FSRandomAccessFileOwnerWrapper(std::move(f)), faults_(faults) {}

  rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& options, rocksdb::Slice* result,
                         char* scratch, rocksdb::IODebugContext* dbg) const override {
    const int fault = faults_->read.load();
    if (fault == Faults::kIOError) {
      ++faults_->injected;
      return rocksdb::IOStatus::IOError("injected read error (EIO)");
    }
    rocksdb::IOStatus s = target()->Read(offset, n, options, result, scratch, dbg);
    if (s.ok() && fault == Faults::kCorrupt && result->size() > 0) {
      // Garbled bytes, as a failing disk returns them: RocksDB's block
      // checksums must catch them.
      if (result->data() != scratch) std::memcpy(scratch, result->data(), result->size());
      for (size_t i = 0; i < result->size(); i += 7) scratch[i] = char(scratch[i] ^ 0x5a);
      *result = rocksdb::Slice(scratch, result->size());
      ++faults_->injected;
    }
    return s;
  }
  rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    for (size_t i = 0; i < num_reqs; ++i) {
      reqs[i].status = Read(reqs[i].offset, reqs[i].len, options, &reqs[i].result, reqs[i].scratch, dbg);
    }
    return rocksdb::IOStatus::OK();
  }

 private:
  Faults* faults_;
};

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> f, Faults* faults)
      : FSWritableFileOwnerWrapper(std::move(f)), faults_(faults) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (Full()) return NoSpace();
    return target()->Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* dbg) override {
    if (Full()) return NoSpace();
    return target()->Append(data, o, v, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (Full()) return NoSpace();
    return target()->PositionedAppend(data, offset, o, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* dbg) override {
    if (Full()) return NoSpace();
    return target()->PositionedAppend(data, offset, o, v, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    Hold();
    if (Full() || faults_->sync_fails) return NoSpace();
    return target()->Sync(o, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    Hold();
    if (Full() || faults_->sync_fails) return NoSpace();
    return target()->Fsync(o, dbg);
  }
  rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t n, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override {
    if (Full() || faults_->sync_fails) return NoSpace();
    return target()->RangeSync(offset, n, o, dbg);
  }

 private:
  bool Full() const { return faults_->disk_full.load(); }
  void Hold() const {
    while (faults_->hold_syncs) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  rocksdb::IOStatus NoSpace() const {
    ++faults_->injected;
    return rocksdb::IOStatus::NoSpace("injected: no space left on device");
  }
  Faults* faults_;
};

class FaultFS : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFS(Faults* faults) : FileSystemWrapper(rocksdb::FileSystem::Default()), faults_(faults) {}
  static const char* kClassName() { return "PlaybookFaultFS"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSRandomAccessFile> file;
    rocksdb::IOStatus s = target()->NewRandomAccessFile(f, o, &file, dbg);
    if (s.ok()) r->reset(new FaultRandomAccessFile(std::move(file), faults_));
    return s;
  }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full) return NoSpace();
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, &file, dbg);
    if (s.ok()) r->reset(new FaultWritableFile(std::move(file), faults_));
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full) return NoSpace();
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->ReopenWritableFile(f, o, &file, dbg);
    if (s.ok()) r->reset(new FaultWritableFile(std::move(file), faults_));
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    if (faults_->disk_full) return NoSpace();
    std::unique_ptr<rocksdb::FSWritableFile> file;
    rocksdb::IOStatus s = target()->ReuseWritableFile(f, old, o, &file, dbg);
    if (s.ok()) r->reset(new FaultWritableFile(std::move(file), faults_));
    return s;
  }

 private:
  rocksdb::IOStatus NoSpace() const {
    ++faults_->injected;
    return rocksdb::IOStatus::NoSpace("injected: no space left on device");
  }
  Faults* faults_;
};

// ---------------------------------------------------------------------------

Asset MakeAsset(const std::string& id, const std::string& title, const std::string& stage,
                const std::string& type = "case_study") {
  Asset a;
  a.id = id;
  a.title = title;
  a.type = type;
  a.stages = {stage};
  return a;
}
Event MakeEvent(const std::string& id, EventType type, const std::string& lead, const std::string& asset,
                const std::string& reason = "") {
  Event e;
  e.event_id = id;
  e.type = type;
  e.lead_id = lead;
  e.asset_id = asset;
  e.reason = reason;
  e.rep_id = "rep1";
  return e;
}

class StorageFaultTest : public ::testing::Test {
 protected:
  StorageFaultTest() {
    dir_ = fs::temp_directory_path() / ("playbook-fault-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
    options_.dimension = 64;
    options_.index.kind = "exact";
    options_.ranking.explore = false;
    fs_ = std::make_shared<FaultFS>(&faults_);
    env_ = rocksdb::NewCompositeEnv(fs_);
    options_.rocksdb_test_hook = [this](rocksdb::DBOptions* db, rocksdb::ColumnFamilyOptions* cf) {
      db->env = env_.get();
      // No block cache: every read of a table block reaches the file system
      // (and so the injected faults), not only the first.
      rocksdb::BlockBasedTableOptions table;
      table.no_block_cache = true;
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      cf->table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    };
  }
  ~StorageFaultTest() override {
    faults_.read = Faults::kNone;
    faults_.disk_full = false;
    faults_.sync_fails = false;
    faults_.hold_syncs = false;
    engine_.reset();
    fs::remove_all(dir_);
  }

  Engine& Open() {
    engine_.reset();
    auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    if (!e.ok()) throw std::runtime_error(e.status().ToString());
    engine_ = std::move(e).value();
    return *engine_;
  }
  // The database after a restart: what was written is in table files (a
  // reopen flushes the recovered log), so reads reach the file system.
  Engine& Reopen(bool expect_clean_close = true) {
    const Status closed = engine_->Close();
    if (expect_clean_close) {
      EXPECT_TRUE(closed.ok()) << closed.ToString();
    }
    return Open();
  }

  // Seeds two assets and a lead with a use and a dismissal.
  void Seed() {
    Engine& e = Open();
    ASSERT_TRUE(e.UpsertAssets({MakeAsset("a1", "price objection playbook", "evaluation"),
                                MakeAsset("a2", "retail case study", "evaluation", "guide")})
                    .ok());
    ASSERT_TRUE(e.RecordEvents({MakeEvent("e1", EventType::kUsed, "L1", "a1"),
                                MakeEvent("e2", EventType::kDismissed, "L1", "a2", "too long")})
                    .ok());
  }
  // Waits (bounded) until Health() is OK again: the engine retries at most once a second.
  bool WaitHealthy() {
    for (int i = 0; i < 100; ++i) {
      if (engine_->Health().ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  fs::path dir_;
  EngineOptions options_;
  Faults faults_;
  std::shared_ptr<FaultFS> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<Engine> engine_;
};

bool IsStorageError(const Status& s) {
  return s.code() == Status::Code::kIOError || s.code() == Status::Code::kCorruption;
}

// Every read that reaches a failing table read fails with that error.
void ExpectReadsFail(Engine& e, Status::Code code) {
  std::vector<std::string> missing;
  auto got = e.GetAssets({"a1", "a2"}, false, &missing);
  ASSERT_FALSE(got.ok()) << "GetAssets turned a read error into " << got.value().size() << " assets";
  EXPECT_EQ(got.status().code(), code) << got.status().ToString();
  EXPECT_TRUE(missing.empty()) << "a read error is not 'missing'";

  auto lead = e.GetLead("L1");
  ASSERT_FALSE(lead.ok());
  EXPECT_EQ(lead.status().code(), code) << "GetLead: " << lead.status().ToString() << " (never NotFound)";

  ListQuery lq;
  lq.limit = 10;
  auto page = e.ListAssets(lq);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), code) << page.status().ToString();

  ReportQuery rq;  // rows are described from the catalog
  auto report = e.ReportAssets(rq);
  ASSERT_FALSE(report.ok()) << "ReportAssets returned rows without titles";
  EXPECT_EQ(report.status().code(), code) << report.status().ToString();
  auto dismissals = e.ReportDismissals(rq);
  ASSERT_FALSE(dismissals.ok());
  EXPECT_EQ(dismissals.status().code(), code) << dismissals.status().ToString();
  auto unused = e.ReportUnused(rq, 10, 0.1);
  ASSERT_FALSE(unused.ok());
  EXPECT_EQ(unused.status().code(), code) << unused.status().ToString();

  // Recommend reads no storage: the lead's seen assets (exclude_seen) are in
  // memory, so it still answers, and still excludes a1 (used) and a2 (dismissed).
  RecommendRequest rr;
  rr.lead_id = "L1";
  rr.stage = "evaluation";
  rr.context = "price objection";
  auto rec = e.Recommend(rr);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  EXPECT_TRUE(rec.value().items.empty()) << "recommended " << rec.value().items[0].asset_id << ", which L1 has seen";

  // Writes that must read first fail too, and write nothing.
  auto deleted = e.DeleteAssets({"a1"});
  ASSERT_FALSE(deleted.ok()) << "DeleteAssets treated an unreadable asset as absent";
  EXPECT_EQ(deleted.status().code(), code);
  auto recorded = e.RecordEvents({MakeEvent("e9", EventType::kUsed, "L1", "a2")});
  ASSERT_FALSE(recorded.ok()) << "an unreadable event id or lead was taken as new";
  EXPECT_EQ(recorded.status().code(), code) << recorded.status().ToString();
}


TEST_F(StorageFaultTest, ReadIOErrorsReachTheCallerNeverAsMissingOrZero) {
  Seed();
  Engine& e = Reopen();
  faults_.read = Faults::kIOError;
  ExpectReadsFail(e, Status::Code::kIOError);
  EXPECT_GT(faults_.injected.load(), 0u);
  // Reads do not poison writes: health is about whether writes go through.
  faults_.read = Faults::kNone;
  std::vector<std::string> missing;
  auto got = e.GetAssets({"a1", "a2"}, false, &missing);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got.value().size(), 2u);
  auto lead = e.GetLead("L1");
  ASSERT_TRUE(lead.ok());
  EXPECT_EQ(lead.value().history.size(), 2u);  // e9 was refused, not half-written
  EXPECT_TRUE(e.Health().ok()) << e.Health().ToString();
}

TEST_F(StorageFaultTest, GarbledReadsAreCorruptionNeverMissing) {
  Seed();
  Engine& e = Reopen();
  faults_.read = Faults::kCorrupt;
  ExpectReadsFail(e, Status::Code::kCorruption);
  faults_.read = Faults::kNone;
  auto lead = e.GetLead("L1");
  ASSERT_TRUE(lead.ok()) << lead.status().ToString();
  EXPECT_EQ(lead.value().history.size(), 2u);
}

TEST_F(StorageFaultTest, ReadErrorsAtStartRefuseTheStartWithTheError) {
  Seed();
  ASSERT_TRUE(engine_->Close().ok());
  engine_.reset();
  faults_.read = Faults::kIOError;
  auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_FALSE(e.ok()) << "opened over an unreadable catalog";
  EXPECT_TRUE(IsStorageError(e.status())) << e.status().ToString();
  // Garbled table blocks at start: refused as damaged, with what to do.
  faults_.read = Faults::kCorrupt;
  auto garbled = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_FALSE(garbled.ok()) << "opened over a garbled catalog";
  EXPECT_EQ(garbled.status().code(), Status::Code::kCorruption) << garbled.status().ToString();
  EXPECT_NE(garbled.status().message().find("playbook restore"), std::string::npos) << garbled.status().ToString();
  // The fault was the disk's, not the data's: once reads work it opens with everything.
  faults_.read = Faults::kNone;
  Engine& r = Open();
  EXPECT_EQ(r.GetLead("L1").value().history.size(), 2u);
}

TEST_F(StorageFaultTest, FullDiskFailsWritesClearlyWhileReadsAreServedAndRecovers) {
  Seed();
  Engine& e = *engine_;
  faults_.disk_full = true;

  auto upsert = e.UpsertAssets({MakeAsset("a3", "new asset during the fault", "evaluation")});
  ASSERT_FALSE(upsert.ok());
  EXPECT_EQ(upsert.status().code(), Status::Code::kIOError);
  EXPECT_NE(upsert.status().message().find("space"), std::string::npos) << upsert.status().ToString();
  EXPECT_NE(upsert.status().message().find("not acknowledged"), std::string::npos) << upsert.status().ToString();

  auto recorded = e.RecordEvents({MakeEvent("f1", EventType::kUsed, "L2", "a1")});
  ASSERT_FALSE(recorded.ok());
  EXPECT_EQ(recorded.status().code(), Status::Code::kIOError);
  EXPECT_NE(recorded.status().message().find("refusing writes"), std::string::npos) << recorded.status().ToString();
  auto deleted = e.DeleteAssets({"a2"});
  ASSERT_FALSE(deleted.ok());
  EXPECT_EQ(deleted.status().code(), Status::Code::kIOError);

  const Status during = e.Health();
  ASSERT_FALSE(during.ok()) << "Health() must say that writes are refused";
  EXPECT_EQ(during.code(), Status::Code::kIOError);
  EXPECT_NE(during.message().find("refusing writes"), std::string::npos) << during.ToString();

  // Reads keep being served.
  std::vector<std::string> missing;
  auto got = e.GetAssets({"a1", "a2", "a3"}, true, &missing);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got.value().size(), 2u);  // a2 was not deleted
  EXPECT_EQ(missing, std::vector<std::string>{"a3"});
  auto lead = e.GetLead("L1");
  ASSERT_TRUE(lead.ok()) << lead.status().ToString();
  EXPECT_EQ(lead.value().history.size(), 2u);
  EXPECT_EQ(e.GetLead("L2").status().code(), Status::Code::kNotFound);  // f1 was refused
  std::vector<float> q(options_.dimension);
  ASSERT_TRUE(e.Embed("price objection playbook", q.data()).ok());
  AssetFilter f;
  f.stage = "evaluation";
  auto hits = e.Search(q.data(), f, 5);
  ASSERT_TRUE(hits.ok());
  ASSERT_FALSE(hits.value().empty());
  EXPECT_EQ(hits.value()[0].asset_id, "a1");
  auto report = e.ReportAssets(ReportQuery());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report.value().totals.used, 1u);
  EXPECT_EQ(report.value().totals.dismissed, 1u);
  // Recommend must record what it showed: it fails rather than show unrecorded items.
  RecommendRequest rr;
  rr.lead_id = "L3";
  rr.stage = "evaluation";
  EXPECT_EQ(e.Recommend(rr).status().code(), Status::Code::kIOError);

  // Space is freed. Depending on which write hit the full disk first,
  // RocksDB 7.8 either recovers (the engine retries DB::Resume and a synced
  // probe write at most once a second) or has stopped for good after a
  // failed log write: then Health() and every write say to restart.
  faults_.disk_full = false;
  Status health;
  for (int i = 0; i < 100; ++i) {
    health = e.Health();
    if (health.ok() || health.message().find("restart playbookd") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(health.ok() || health.message().find("restart playbookd") != std::string::npos) << health.ToString();
  std::printf("after a full disk: %s\n", health.ToString().c_str());
  if (!health.ok()) {
    auto refused = e.UpsertAssets({MakeAsset("a3", "new asset after the fault", "evaluation")});
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("restart playbookd"), std::string::npos) << refused.status().ToString();
    ASSERT_TRUE(e.GetLead("L1").ok());  // still reading
  }

  // Writes go through again (after the restart when one was needed).
  Engine& r = health.ok() ? e : Reopen(/*expect_clean_close=*/false);
  EXPECT_TRUE(r.Health().ok()) << r.Health().ToString();
  ASSERT_TRUE(r.UpsertAssets({MakeAsset("a3", "new asset after the fault", "evaluation")}).ok());
  auto again = r.RecordEvents({MakeEvent("f1", EventType::kUsed, "L2", "a1")});  // the client's retry
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again.value().accepted, 1u);
  ASSERT_TRUE(r.Recommend(rr).ok());

  // Nothing acknowledged is lost, nothing refused half-exists, across a restart.
  ASSERT_TRUE(r.Close().ok());
  Open();
  Engine& r2 = *engine_;
  missing.clear();
  got = r2.GetAssets({"a1", "a2", "a3"}, false, &missing);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value().size(), 3u);
  EXPECT_EQ(r2.GetLead("L1").value().history.size(), 2u);
  EXPECT_EQ(r2.GetLead("L2").value().history.size(), 1u);
  auto check = r2.Reaggregate(false, nullptr);
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_EQ(check.value().differing, 0u) << "the live counters disagree with the event log";
}

TEST_F(StorageFaultTest, FailedSyncIsNotAcknowledgedAndARetryCountsOnce) {
  Seed();
  Engine& e = *engine_;
  faults_.sync_fails = true;  // the bytes reach the log; fsync fails
  auto recorded = e.RecordEvents({MakeEvent("s1", EventType::kUsed, "L5", "a1"),
                                  MakeEvent("s2", EventType::kUsed, "L5", "a2")});
  ASSERT_FALSE(recorded.ok()) << "acknowledged without a successful sync";
  EXPECT_EQ(recorded.status().code(), Status::Code::kIOError);
  EXPECT_FALSE(e.Health().ok());
  faults_.sync_fails = false;
  // RocksDB either recovers by itself (the engine's retry, DB::Resume) or
  // stops until a restart; Health() says which, and then a restart it is.
  Status health;
  for (int i = 0; i < 100; ++i) {
    health = e.Health();
    if (health.ok() || health.message().find("restart playbookd") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(health.ok() || health.message().find("restart playbookd") != std::string::npos) << health.ToString();
  std::printf("after a failed sync: %s\n", health.ToString().c_str());
  // The unsynced bytes may come back at the restart (they were written, not
  // acknowledged); the client's retry then finds them and counts nothing twice.
  Engine& r = health.ok() ? e : Reopen(/*expect_clean_close=*/false);
  auto retry = r.RecordEvents({MakeEvent("s1", EventType::kUsed, "L5", "a1"),
                               MakeEvent("s2", EventType::kUsed, "L5", "a2")});
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(retry.value().accepted + retry.value().duplicates, 2u);
  ASSERT_TRUE(r.Close().ok());
  Engine& r2 = Open();
  auto lead = r2.GetLead("L5");
  ASSERT_TRUE(lead.ok());
  EXPECT_EQ(lead.value().history.size(), 2u) << "the failed write came back beside its retry";
  auto check = r2.Reaggregate(false, nullptr);
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check.value().differing, 0u);
  EXPECT_EQ(r2.ReportAssets(ReportQuery()).value().totals.used, 3u);  // e1, s1, s2
}

// recommend answers once its `shown` events are written and counted, before
// they are synced: with every sync held, it still answers, and the reads
// right after it count them; feedback.record still waits for its sync.
TEST_F(StorageFaultTest, RecommendAnswersBeforeItsShownEventsAreSyncedAndReadsCountThem) {
  Seed();
  Engine& e = *engine_;
  RecommendRequest rr;
  rr.lead_id = "L7";
  rr.stage = "evaluation";
  rr.context = "price objection";
  faults_.hold_syncs = true;
  auto rec = std::async(std::launch::async, [&] { return e.Recommend(rr); });
  if (rec.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    faults_.hold_syncs = false;
    rec.wait();
    FAIL() << "recommend waited for the sync of its shown events";
  }
  auto answer = rec.get();
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  const size_t k = answer.value().items.size();
  ASSERT_EQ(k, 2u);  // a1 and a2: new to L7
  // Still held: no sync has completed, and the reads count the shown events.
  auto lead = e.GetLead("L7");
  ASSERT_TRUE(lead.ok()) << lead.status().ToString();
  EXPECT_EQ(lead.value().history.size(), k);
  auto report = e.ReportAssets(ReportQuery());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report.value().totals.shown, k);
  EXPECT_EQ(e.GetStats("a1", "evaluation").shown, 1u);
  EXPECT_EQ(e.GetStats("a2", "evaluation").shown, 1u);

  // Feedback is acknowledged only once synced.
  auto fb = std::async(std::launch::async, [&] {
    return e.RecordEvents({MakeEvent("h1", EventType::kUsed, "L7", "a1")});
  });
  EXPECT_EQ(fb.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "feedback.record answered while every sync was held";
  faults_.hold_syncs = false;
  auto recorded = fb.get();
  ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
  EXPECT_EQ(recorded.value().accepted, 1u);

  // And the shown events were stored: a restart has them.
  Engine& r = Reopen();
  auto again = r.GetLead("L7");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().history.size(), k + 1);
  EXPECT_EQ(r.GetStats("a1", "evaluation").shown, 1u);
  EXPECT_EQ(r.ReportAssets(ReportQuery()).value().totals.shown, k);
}

// feedback.record's groups are written while the one before them waits for its
// sync: with every sync held, a second call is written (its events are read)
// while the first is still unanswered, and neither is answered before its sync.
TEST_F(StorageFaultTest, TheNextFeedbackGroupIsWrittenWhileTheOneBeforeItIsSynced) {
  Seed();
  Engine& e = *engine_;
  auto used = [&] {
    auto report = e.ReportAssets(ReportQuery());
    return report.ok() ? report.value().totals.used : 0;
  };
  ASSERT_EQ(used(), 1u);  // Seed's e1
  // Waits up to 20 s for `used` to reach n.
  auto reaches = [&](uint64_t n) {
    for (int i = 0; i < 2000 && used() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return used() >= n;
  };
  faults_.hold_syncs = true;
  auto first = std::async(std::launch::async, [&] {
    return e.RecordEvents({MakeEvent("p1", EventType::kUsed, "L9", "a1")});
  });
  const bool first_written = reaches(2);
  auto second = std::async(std::launch::async, [&] {
    return e.RecordEvents({MakeEvent("p2", EventType::kUsed, "L10", "a2")});
  });
  const bool second_written = reaches(3);
  const bool answered = first.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready ||
                        second.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready;
  faults_.hold_syncs = false;
  auto a = first.get();
  auto b = second.get();
  EXPECT_TRUE(first_written) << "the first call's events were not written";
  EXPECT_TRUE(second_written) << "the second call was not written while the first one's sync was held";
  EXPECT_FALSE(answered) << "a call was answered while every sync was held";
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a.value().accepted, 1u);
  EXPECT_EQ(b.value().accepted, 1u);
  Engine& r = Reopen();
  EXPECT_EQ(r.ReportAssets(ReportQuery()).value().totals.used, 3u);
  EXPECT_EQ(r.GetLead("L10").value().history.size(), 1u);
}

// A failed sync of `shown` events (their answer already sent) is the storage
// fault the rest handles: Health() reports it, writes are refused until a
// retry succeeds, and the counts stay those of the stored log.
TEST_F(StorageFaultTest, AFailedSyncOfShownEventsIsReportedAsAStorageFault) {
  Seed();
  Engine& e = *engine_;
  faults_.sync_fails = true;
  RecommendRequest rr;
  rr.lead_id = "L8";
  rr.stage = "evaluation";
  rr.context = "price objection";
  auto rec = e.Recommend(rr);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();  // written, not yet synced
  ASSERT_EQ(rec.value().items.size(), 2u);
  Status health;
  for (int i = 0; i < 100 && health.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    health = e.Health();
  }
  ASSERT_FALSE(health.ok()) << "the failed sync of the shown events was not reported";
  EXPECT_NE(health.message().find("syncing the log of shown events"), std::string::npos) << health.ToString();
  faults_.sync_fails = false;
  for (int i = 0; i < 100; ++i) {
    health = e.Health();
    if (health.ok() || health.message().find("restart playbookd") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(health.ok() || health.message().find("restart playbookd") != std::string::npos) << health.ToString();
  Engine& r = health.ok() ? e : Reopen(/*expect_clean_close=*/false);
  if (&r != &e) {
    // After a restart the counters are the stored log's, whatever it kept.
    auto check = r.Reaggregate(false, nullptr);
    ASSERT_TRUE(check.ok());
    EXPECT_EQ(check.value().differing, 0u);
  } else {
    // Recovered in place: the recovery's synced write synced them.
    EXPECT_EQ(r.ReportAssets(ReportQuery()).value().totals.shown, 2u);
    ASSERT_TRUE(r.Close().ok());
    Engine& r2 = Open();
    EXPECT_EQ(r2.ReportAssets(ReportQuery()).value().totals.shown, 2u);
    auto check = r2.Reaggregate(false, nullptr);
    ASSERT_TRUE(check.ok());
    EXPECT_EQ(check.value().differing, 0u);
  }
}

// ---------------------------------------------------------------------------
// The saved index: derived, so any damage means a rebuild with a warning.

class IndexFileFaultTest : public StorageFaultTest {
 protected:
  // Writes a1 and a2, closes (saving the index), damages the file with
  // `damage`, reopens and checks that the engine serves exactly with a warning.
  void DamageAndReopen(const std::function<void(const fs::path&)>& damage, const std::string& note) {
    Seed();
    ASSERT_TRUE(engine_->Close().ok());
    const fs::path file = dir_ / "index.pbidx";
    ASSERT_TRUE(fs::exists(file));
    damage(file);
    Engine& e = Open();
    bool warning = false;
    const std::string open_note = e.OpenNote(&warning);
    EXPECT_TRUE(warning) << open_note;
    EXPECT_NE(open_note.find(note), std::string::npos) << open_note;
    EXPECT_EQ(e.GetIndexStatus().assets, 2u);
    std::vector<float> q(options_.dimension);
    ASSERT_TRUE(e.Embed("retail case study", q.data()).ok());
    AssetFilter f;
    f.stage = "evaluation";
    auto hits = e.Search(q.data(), f, 1);
    ASSERT_TRUE(hits.ok());
    ASSERT_EQ(hits.value().size(), 1u);
    EXPECT_EQ(hits.value()[0].asset_id, "a2");
    // The next clean close saves a good file again.
    ASSERT_TRUE(e.Close().ok());
    Open();
    EXPECT_FALSE(engine_->OpenNote(&warning).empty());
    EXPECT_FALSE(warning) << engine_->OpenNote(&warning);
  }
};

TEST_F(IndexFileFaultTest, EmptyFile) {
  DamageAndReopen([](const fs::path& f) { fs::resize_file(f, 0); }, "not a Playbook index file");
}

TEST_F(IndexFileFaultTest, ShorterThanItsHeader) {
  DamageAndReopen([](const fs::path& f) { fs::resize_file(f, 12); }, "saved index not used");
}

TEST_F(IndexFileFaultTest, TruncatedInTheMiddle) {
  DamageAndReopen([](const fs::path& f) { fs::resize_file(f, fs::file_size(f) / 2); }, "truncated");
}

TEST_F(IndexFileFaultTest, TrailingBytesMakeItTheWrongSize) {
  DamageAndReopen(
      [](const fs::path& f) {
        std::ofstream out(f, std::ios::binary | std::ios::app);
        out << "trailing junk";
      },
      "the wrong size");
}

TEST_F(IndexFileFaultTest, GarbledVectors) {
  DamageAndReopen(
      [](const fs::path& f) {
        std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(std::streamoff(fs::file_size(f) / 2));
        io.write("\xff\xff\xff\xff\xff\xff\xff\xff", 8);
      },
      "checksum mismatch");
}

TEST_F(IndexFileFaultTest, GarbledMagic) {
  DamageAndReopen(
      [](const fs::path& f) {
        std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
        io.write("XXXX", 4);
      },
      "not a Playbook index file");
}

TEST_F(IndexFileFaultTest, InterruptedSaveLeavesAPartialTempFile) {
  // A crash during the save: the temporary file is half written and the
  // previous index was never replaced (here: there was none).
  DamageAndReopen(
      [](const fs::path& f) {
        fs::copy_file(f, fs::path(f.string() + ".tmp"));
        fs::resize_file(fs::path(f.string() + ".tmp"), fs::file_size(f) / 3);
        fs::remove(f);
      },
      "interrupted save");
  EXPECT_FALSE(fs::exists(dir_ / "index.pbidx.tmp"));
}

TEST_F(IndexFileFaultTest, PartialTempFileBesideAGoodIndexIsRemoved) {
  Seed();
  ASSERT_TRUE(engine_->Close().ok());
  {
    std::ofstream out(dir_ / "index.pbidx.tmp", std::ios::binary);
    out << "PBIDX001 half of a save";
  }
  Engine& e = Open();
  bool warning = false;
  const std::string note = e.OpenNote(&warning);
  EXPECT_NE(note.find("index loaded"), std::string::npos) << note;
  EXPECT_NE(note.find("interrupted save"), std::string::npos) << note;
  EXPECT_TRUE(warning);
  EXPECT_FALSE(fs::exists(dir_ / "index.pbidx.tmp"));
  EXPECT_EQ(e.GetIndexStatus().assets, 2u);
}

// ---------------------------------------------------------------------------
// A damaged database is refused at start, with what to do.

void ExpectRefusedWithAdvice(const Result<std::unique_ptr<Engine>>& e, const std::string& what) {
  ASSERT_FALSE(e.ok()) << "opened a damaged database";
  EXPECT_EQ(e.status().code(), Status::Code::kCorruption) << e.status().ToString();
  EXPECT_NE(e.status().message().find(what), std::string::npos) << e.status().ToString();
  EXPECT_NE(e.status().message().find("playbook restore"), std::string::npos) << e.status().ToString();
  EXPECT_NE(e.status().message().find("--data-dir"), std::string::npos) << e.status().ToString();
}

TEST_F(StorageFaultTest, MissingCurrentFileIsRefusedAndNothingIsDeleted) {
  Seed();
  ASSERT_TRUE(engine_->Close().ok());
  engine_.reset();
  const fs::path current = dir_ / "db" / "CURRENT";
  const fs::path saved = dir_ / "CURRENT.saved";
  fs::rename(current, saved);
  auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ExpectRefusedWithAdvice(e, "no CURRENT file");
  EXPECT_FALSE(fs::exists(current)) << "a new database was created over the old one";
  // Nothing was touched: with CURRENT back, every record is there.
  fs::rename(saved, current);
  Engine& r = Open();
  std::vector<std::string> missing;
  auto got = r.GetAssets({"a1", "a2"}, false, &missing);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value().size(), 2u);
  EXPECT_EQ(r.GetLead("L1").value().history.size(), 2u);
}

TEST_F(StorageFaultTest, GarbledManifestIsRefusedWithAdvice) {
  Seed();
  ASSERT_TRUE(engine_->Close().ok());
  engine_.reset();
  fs::path manifest;
  for (const auto& entry : fs::directory_iterator(dir_ / "db")) {
    if (entry.path().filename().string().rfind("MANIFEST-", 0) == 0) manifest = entry.path();
  }
  ASSERT_FALSE(manifest.empty());
  const auto size = fs::file_size(manifest);
  ASSERT_GT(size, 64u);
  {
    std::fstream io(manifest, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(16);
    const std::string junk(size - 32, '\x5a');
    io.write(junk.data(), std::streamsize(junk.size()));
  }
  auto e = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ExpectRefusedWithAdvice(e, "is damaged");
}

TEST_F(StorageFaultTest, AFirstStartThatStoppedBeforeWritingStillOpens) {
  fs::create_directories(dir_ / "db");
  { std::ofstream(dir_ / "db" / "LOG") << "an interrupted first start\n"; }
  Engine& e = Open();
  EXPECT_TRUE(e.Health().ok());
}

}  // namespace
}  // namespace playbook

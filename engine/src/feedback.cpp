// The feedback store: open (counters and leads loaded), close, and the reads
// (counters, reports, a lead's log). The writer is in feedback_writer.cpp,
// re-aggregation in feedback_reaggregate.cpp, the records' encoding in codec.cpp.
#include "feedback.h"

#include <pthread.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <optional>
#include <unordered_set>

namespace playbook {
namespace {

class CounterMerge : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    Counters a = existing ? DecodeCounters(std::string_view(existing->data(), existing->size())) : Counters{};
    const Counters b = DecodeCounters(std::string_view(value.data(), value.size()));
    for (int i = 0; i < kCounters; ++i) a[size_t(i)] = WrapAdd(a[size_t(i)], b[size_t(i)]);
    *new_value = EncodeCounters(a);
    return true;
  }
  const char* Name() const override { return "playbook.counters.v1"; }
};

class EventKeyLeadPrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "playbook.event_key_lead"; }
  // lead \0, without ts and seq (16 bytes).
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - 16);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= 17; }
};

class SinglePrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "playbook.single_prefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return rocksdb::Slice(key.data(), 0); }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};

void PutBE64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(char((v >> (8 * i)) & 0xff));
}

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator() { return std::make_shared<CounterMerge>(); }
std::shared_ptr<const rocksdb::SliceTransform> NewEventKeyLeadPrefix() { return std::make_shared<EventKeyLeadPrefix>(); }
std::shared_ptr<const rocksdb::SliceTransform> NewSinglePrefix() { return std::make_shared<SinglePrefix>(); }

std::string LeadPrefix(const std::string& lead) {
  std::string k = lead;
  k.push_back('\0');
  return k;
}

std::string EventKey(const std::string& lead, int64_t ts, uint64_t seq) {
  std::string k;
  EventKeyTo(&k, lead, ts, seq);
  return k;
}

void EventKeyTo(std::string* k, const std::string& lead, int64_t ts, uint64_t seq) {
  k->assign(lead);
  k->push_back('\0');
  PutBE64(k, uint64_t(ts));
  PutBE64(k, seq);
}

void PutSeq(std::string* out, uint64_t seq) { PutBE64(out, seq); }

std::string SeqKey(uint64_t seq) {
  std::string k;
  PutBE64(&k, seq);
  return k;
}

void AppendSeqEntry(std::string* value, std::string_view events_key) {
  const size_t n = std::min<size_t>(events_key.size(), 0xffff);  // keys are at most 273 bytes
  value->push_back(char(n & 0xff));
  value->push_back(char(n >> 8));
  value->append(events_key.data(), n);
}

bool ForEachSeqEntry(const rocksdb::Slice& key, const rocksdb::Slice& value,
                     const std::function<void(uint64_t, std::string_view)>& fn) {
  if (key.size() != 8) return false;
  uint64_t seq = 0;
  for (size_t i = 0; i < 8; ++i) seq = (seq << 8) | uint8_t(key[i]);
  size_t at = 0;
  while (at < value.size()) {
    if (value.size() - at < 2) return false;
    const size_t n = uint8_t(value[at]) | size_t(uint8_t(value[at + 1])) << 8;
    at += 2;
    if (value.size() - at < n) return false;
    fn(seq++, std::string_view(value.data() + at, n));
    at += n;
  }
  return true;
}

bool SplitEventKey(const rocksdb::Slice& key, std::string_view* lead, uint64_t* seq) {
  if (key.size() < 17 || key[key.size() - 17] != '\0') return false;
  *lead = std::string_view(key.data(), key.size() - 17);
  *seq = 0;
  for (size_t i = key.size() - 8; i < key.size(); ++i) *seq = (*seq << 8) | uint8_t(key[i]);
  return true;
}

FeedbackStore::FeedbackStore(rocksdb::DB* db, FeedbackColumns cfs, const EngineOptions& options,
                             std::function<bool(const std::string&)> asset_known, StorageState* storage)
    : db_(db), cf_(cfs), options_(options), asset_known_(std::move(asset_known)), tally_(options),
      storage_(storage), derived_(std::make_unique<Derived>()) {}

FeedbackStore::~FeedbackStore() { Close(); }

std::string CheckpointChunkKey(uint32_t chunk) {
  std::string k = kCheckpointKey;
  k.push_back('/');
  for (int i = 3; i >= 0; --i) k.push_back(char((chunk >> (8 * i)) & 0xff));
  return k;
}

namespace {
// Bytes per stored value. Each is a table block that RocksDB decompresses
// into a buffer of its own: 1 MiB ones reuse the allocator's memory (16 MiB
// ones were fresh pages each, faulted in).
constexpr size_t kCheckpointChunk = 1 << 20;
constexpr size_t kMaxCheckpointChunk = 256 << 20;  // what a reader accepts (earlier writes)

// This thread's CPU time: the open note gives it beside the wall time, which
// other load on the machine stretches.
int64_t ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string CheckpointHeader(uint64_t seq, uint32_t chunks, uint64_t bytes) {
  std::string h(20, '\0');
  std::memcpy(h.data(), &seq, 8);
  std::memcpy(h.data() + 8, &chunks, 4);
  std::memcpy(h.data() + 12, &bytes, 8);
  return h;
}
}  // namespace

Status FeedbackStore::LoadDerived(Derived* out, std::string* note) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t cpu0 = ThreadCpuMs();
  auto ms = [](auto from) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - from).count());
  };
  std::string header;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf_.meta, kCheckpointKey, &header);
  if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the counters' checkpoint");
  has_checkpoint_ = got.ok();
  if (has_checkpoint_) {
    uint64_t seq = 0, bytes = 0;
    uint32_t chunks = 0;
    if (header.size() != 20) return Status::Corruption("counters' checkpoint: damaged header");
    std::memcpy(&seq, header.data(), 8);
    std::memcpy(&chunks, header.data() + 8, 4);
    std::memcpy(&bytes, header.data() + 12, 8);
    if (bytes > uint64_t(chunks) * kMaxCheckpointChunk) return Status::Corruption("counters' checkpoint: damaged header");
    // One pass over the chunks (an iterator: no lookup each), joined; not
    // left in the block cache (read once).
    std::string blob;
    blob.reserve(std::min<uint64_t>(bytes, uint64_t(1) << 30));  // the header is not trusted either
    rocksdb::ReadOptions once;
    once.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> chunk(db_->NewIterator(once, cf_.meta));
    uint32_t read = 0;
    for (chunk->Seek(CheckpointChunkKey(0)); chunk->Valid() && read < chunks; chunk->Next(), ++read) {
      if (chunk->key() != CheckpointChunkKey(read) || blob.size() + chunk->value().size() > bytes) {
        return Status::Corruption("counters' checkpoint: chunks missing");
      }
      blob.append(chunk->value().data(), chunk->value().size());
    }
    if (!chunk->status().ok()) return FromRocks(chunk->status(), "reading the counters' checkpoint");
    if (blob.size() != bytes) return Status::Corruption("counters' checkpoint: chunks missing");
    const std::string read_ms = ms(t0);
    const auto decoding = std::chrono::steady_clock::now();
    uint64_t blob_seq = 0;
    if (Status s = out->DecodeCheckpoint(blob, &blob_seq); !s.ok()) return s;
    if (blob_seq != seq) return Status::Corruption("counters' checkpoint: sequence unlike its header's");
    *note = "checkpoint (" + std::to_string(bytes >> 20) + " MiB, events below " + std::to_string(seq) + ") read in " +
            read_ms + " ms, decoded in " + ms(decoding) + " ms";
  }
  const auto t1 = std::chrono::steady_clock::now();
  uint64_t keys = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_.stats));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++keys;
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.empty() && key[0] == kLastUsedPrefix) {
      int64_t ts = 0;
      if (it->value().size() == 8) std::memcpy(&ts, it->value().data(), 8);
      out->ApplyLastUsed(std::string(key.substr(1)), ts);  // a maximum: the same over a checkpoint
      continue;
    }
    const Counters c = DecodeCounters(std::string_view(it->value().data(), it->value().size()));
    if (has_checkpoint_) {
      out->Set(key, c);  // saved after the checkpoint: its whole value
    } else {
      out->Apply(key, c);
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading counters");
  keys_at_open_ = keys_since_checkpoint_ = has_checkpoint_ ? keys : 0;
  saved_since_checkpoint_.clear();
  // A store of the earlier layout: the saver writes the checkpoint soon.
  if (!has_checkpoint_ && keys > 0) checkpoint_due_ = true;
  if (has_checkpoint_) {
    *note += ", " + std::to_string(keys) + " keys saved since set in " + ms(t1) + " ms";
  } else {
    *note = std::to_string(keys) + " keys read in " + ms(t1) + " ms";
  }
  *note += "; cpu " + std::to_string(ThreadCpuMs() - cpu0) + " ms";
  return Status::Ok();
}

Status FeedbackStore::LoadLeads(std::string* note) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t cpu0 = ThreadCpuMs();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_.leads));
  uint64_t leads = 0, rebuilt = 0;
  rocksdb::WriteBatch batch;
  auto flush = [&]() -> Status {
    if (batch.Count() == 0) return Status::Ok();
    rocksdb::WriteOptions wo;
    wo.sync = true;
    Status s = storage_->AfterWrite(db_->Write(wo, &batch), "rewriting lead records");
    batch.Clear();
    return s;
  };
  std::unique_lock lock(leads_mu_);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string lead_id = it->key().ToString();
    LeadState st;
    (void)DecodeLeadState(std::string_view(it->value().data(), it->value().size()), &st);
    if (!st.complete || st.window_ms != tally_.window_ms()) {
      // Written by an older version, damaged, or pruned with another window:
      // rebuilt from the log once, and stored so.
      std::vector<std::pair<uint64_t, Event>> log;
      if (Status s = LeadLog(lead_id, nullptr, &log); !s.ok()) return s;
      tally_.Replay(log, &st, nullptr);
      batch.Put(cf_.leads, lead_id, EncodeLeadState(st));
      ++rebuilt;
      if (batch.Count() >= 1000) {
        if (Status s = flush(); !s.ok()) return s;
      }
    }
    SetSeen(lead_id, st);
    ++leads;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading leads");
  if (Status s = flush(); !s.ok()) return s;
  *note = std::to_string(leads) + " leads loaded";
  if (rebuilt > 0) *note += " (" + std::to_string(rebuilt) + " rebuilt from their events)";
  *note += " in " +
           std::to_string(
               std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()) +
           " ms (cpu " + std::to_string(ThreadCpuMs() - cpu0) + " ms)";
  return Status::Ok();
}

Status FeedbackStore::Open() {
  std::string seq;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf_.meta, kEventSeqKey, &seq);
  if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the event sequence");
  if (got.ok()) {
    char* end = nullptr;
    errno = 0;
    next_seq_ = std::strtoull(seq.c_str(), &end, 10);
    if (seq.empty() || errno != 0 || end != seq.c_str() + seq.size()) {
      return Status::Corruption("stored event sequence '" + seq + "' is not a number");
    }
  }
  // The lead records load beside the counters (memo_ and seen_names_ under
  // leads_mu_; the counters into derived_): neither reads what the other
  // writes, and nothing else runs before Open returns.
  std::string leads_note;
  Status leads_status;
  std::thread leads_loader([&] { leads_status = LoadLeads(&leads_note); });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{leads_loader};
  std::string marker, load_note;
  const auto start = std::chrono::steady_clock::now();
  got = db_->Get(rocksdb::ReadOptions(), cf_.meta, kReaggregatingKey, &marker);
  if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the re-aggregation marker");
  if (got.ok()) {
    // A re-aggregation stopped while writing: its counters are partial. Redo
    // it from the log before anything is served (the leads loaded first).
    leads_loader.join();
    if (!leads_status.ok()) return leads_status;
    auto redone = Reaggregate(true, nullptr);
    if (!redone.ok()) return redone.status();
    open_warning_ = true;
    open_note_ = "an interrupted re-aggregation was finished: " + std::to_string(redone.value().events) +
                 " events replayed, " + std::to_string(redone.value().keys) + " aggregates written in " +
                 std::to_string(redone.value().ms) + " ms";
  } else if (Status s = LoadDerived(derived_.get(), &load_note); !s.ok()) {
    return s;
  } else {
    std::string stored;
    got = db_->Get(rocksdb::ReadOptions(), cf_.meta, kStatsSeqKey, &stored);
    if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the sequence of the stored counters");
    uint64_t events = 0, leads = 0;
    if (got.IsNotFound()) {
      // A new store, or one written when every event merged its counters into
      // "stats": they include every event.
      rocksdb::WriteOptions synced;
      synced.sync = true;
      if (Status w = storage_->AfterWrite(db_->Put(synced, cf_.meta, kStatsSeqKey, std::to_string(next_seq_)),
                                          "writing the sequence of the stored counters");
          !w.ok()) {
        return w;
      }
      saved_seq_ = next_seq_;
    } else {
      char* end = nullptr;
      errno = 0;
      const uint64_t seq = std::strtoull(stored.c_str(), &end, 10);
      if (stored.empty() || errno != 0 || end != stored.c_str() + stored.size() || seq > next_seq_) {
        return Status::Corruption("stored counters' event sequence '" + stored + "' is not a number up to " +
                                  std::to_string(next_seq_));
      }
      saved_seq_ = seq;
      if (Status c = CountAfter(seq, &events, &leads); !c.ok()) return c;
    }
    open_note_ = "aggregates loaded";
    if (events > 0) {
      open_note_ += " and " + std::to_string(events) + " events after them counted (" + std::to_string(leads) +
                    " leads)";
    }
    open_note_ += " in " +
                  std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - start).count()) +
                  " ms";
    open_note_ += " (" + load_note + ")";
  }
  if (leads_loader.joinable()) leads_loader.join();
  if (!leads_status.ok()) return leads_status;
  open_note_ += "; " + leads_note;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    open_ = true;  // calls queued meanwhile are written now
    if (!queue_.empty()) queue_.front()->wake.notify_one();
  }
  syncer_ = std::thread([this] { SyncerLoop(); });
  saver_ = std::thread([this] { SaverLoop(); });
  return Status::Ok();
}

Status FeedbackStore::CountAfter(uint64_t from, uint64_t* events, uint64_t* leads) {
  // The leads of the events from `from` on, in arrival order.
  std::unordered_set<std::string> touched;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_.event_seqs));
    // From the group holding `from` (a save is taken between groups: the
    // group starting there).
    it->SeekForPrev(SeqKey(from));
    if (!it->Valid()) it->Seek(SeqKey(from));
    for (; it->Valid(); it->Next()) {
      (void)ForEachSeqEntry(it->key(), it->value(), [&](uint64_t seq, std::string_view key) {
        std::string_view lead;
        uint64_t key_seq = 0;
        if (seq < from || !SplitEventKey(rocksdb::Slice(key.data(), key.size()), &lead, &key_seq)) return;
        touched.emplace(lead);
        ++*events;
      });
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading the events after the stored counters");
  }
  for (const std::string& lead : touched) {
    std::vector<std::pair<uint64_t, Event>> all, before;
    if (Status s = LeadLog(lead, nullptr, &all); !s.ok()) return s;
    for (const auto& [seq, e] : all) {
      if (seq < from) before.emplace_back(seq, e);
    }
    RederiveLead(std::move(before), std::move(all), derived_.get());
  }
  *leads = touched.size();
  return Status::Ok();
}

Status FeedbackStore::SaveAggregates() {
  std::lock_guard<std::mutex> one(save_mu_);
  rocksdb::WriteBatch batch;
  Derived::ChangedValues changed;
  uint64_t seq = 0;
  {
    // Between two groups: the counters are those of the events below seq.
    // The writer waits only for the copy of the changed values.
    std::lock_guard<std::mutex> lock(writer_mu_);
    seq = next_seq_;
    if (seq == saved_seq_) return Status::Ok();  // nothing new
    std::unique_lock write(stats_mu_);
    changed = derived_->TakeChanged();
    feedback_unsaved_ = false;
  }
  // In key order (stable: a key given twice keeps its last value): the
  // changed keys come out of a hash set, and the memtable's skip list inserts
  // a key after a nearby one from where the last insert left off.
  // Over a checkpoint a key gone to zero is put as zeros: it must override
  // the checkpoint's value.
  std::vector<std::pair<std::string, std::optional<std::string>>> records;  // nullopt: delete
  changed.Keys(
      [&](const std::string& key, const Counters& c) {
        records.emplace_back(key, IsZero(c) && !has_checkpoint_ ? std::nullopt
                                                               : std::optional<std::string>(EncodeCounters(c)));
      },
      [&](const std::string& asset, int64_t ts) {
        records.emplace_back(LastUsedKey(asset), std::string(reinterpret_cast<const char*>(&ts), 8));
      });
  std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, value] : records) {
    if (value) {
      batch.Put(cf_.stats, key, *value);
    } else {
      batch.Delete(cf_.stats, key);
    }
  }
  batch.Put(cf_.meta, kStatsSeqKey, std::to_string(seq));
  rocksdb::WriteOptions synced;
  synced.sync = true;
  Status s = storage_->BeforeWrite();
  if (s.ok()) s = storage_->AfterWrite(db_->Write(synced, &batch), "saving the counters");
  if (!s.ok()) {
    std::unique_lock write(stats_mu_);
    derived_->ReturnChanged(changed.changed);  // the next save writes them
    feedback_unsaved_ = true;                  // soon
    return s;
  }
  saved_seq_ = seq;
  saved_since_checkpoint_.insert(changed.changed.begin(), changed.changed.end());
  keys_since_checkpoint_ = keys_at_open_ + saved_since_checkpoint_.size();
  return Status::Ok();
}

Status FeedbackStore::WriteCheckpoint() {
  if (!checkpoints_) return Status::Ok();
  std::lock_guard<std::mutex> one(save_mu_);
  std::string blob;
  uint64_t seq = 0;
  std::vector<Derived::Changed> changed;
  {
    // Between two groups, as SaveAggregates: the writer waits while the
    // counters are encoded; readers go on (shared lock).
    std::lock_guard<std::mutex> lock(writer_mu_);
    seq = next_seq_;
    {
      std::shared_lock read(stats_mu_);
      derived_->EncodeCheckpoint(seq, &blob);
    }
    std::unique_lock write(stats_mu_);
    changed = derived_->TakeChangedKeys();  // all in the checkpoint
  }
  const uint32_t chunks = uint32_t((blob.size() + kCheckpointChunk - 1) / kCheckpointChunk);
  rocksdb::WriteBatch batch;
  // One batch: the old chunks and every "stats" key out, the new chunks, the
  // header and the sequence in. A crash leaves the one before or this one.
  batch.DeleteRange(cf_.meta, std::string(kCheckpointKey) + "/", std::string(kCheckpointKey) + "0");
  batch.DeleteRange(cf_.stats, "", std::string(300, '\xff'));  // keys start with an asset id of <= 128 bytes
  for (uint32_t i = 0; i < chunks; ++i) {
    const size_t at = size_t(i) * kCheckpointChunk;
    batch.Put(cf_.meta, CheckpointChunkKey(i),
              rocksdb::Slice(blob.data() + at, std::min(kCheckpointChunk, blob.size() - at)));
  }
  batch.Put(cf_.meta, kCheckpointKey, CheckpointHeader(seq, chunks, blob.size()));
  batch.Put(cf_.meta, kStatsSeqKey, std::to_string(seq));
  rocksdb::WriteOptions synced;
  synced.sync = true;
  Status s = storage_->BeforeWrite();
  if (s.ok()) s = storage_->AfterWrite(db_->Write(synced, &batch), "saving the counters' checkpoint");
  if (!s.ok()) {
    std::unique_lock write(stats_mu_);
    derived_->ReturnChanged(changed);  // the next save writes them over what is stored
    return s;
  }
  has_checkpoint_ = true;
  keys_at_open_ = keys_since_checkpoint_ = 0;
  saved_since_checkpoint_.clear();
  checkpoint_due_ = false;
  saved_seq_ = seq;
  // Into table files now: a start would otherwise replay the checkpoint from
  // the write-ahead log and flush it to a table file before serving (a stop
  // does not flush the memtables). Its log record covers it until then.
  rocksdb::FlushOptions wait;
  wait.wait = true;
  wait.allow_write_stall = true;
  if (rocksdb::Status f = db_->Flush(wait, {cf_.meta, cf_.stats}); !f.ok()) {
    return storage_->AfterWrite(f, "flushing the counters' checkpoint");
  }
  return Status::Ok();
}

void FeedbackStore::SaverLoop() {
  pthread_setname_np(pthread_self(), "pb-saver");  // names the thread in perf, top -H
  std::unique_lock<std::mutex> lock(saver_mu_);
  auto last = std::chrono::steady_clock::now();
  while (!saver_stopping_) {
    saver_cv_.wait_for(lock, std::chrono::milliseconds(250));
    if (saver_stopping_) break;
    uint64_t next;
    {
      std::lock_guard<std::mutex> w(writer_mu_);
      next = next_seq_;
    }
    const uint64_t unsaved = next - saved_seq_;
    if (reaggregating_ || saver_paused_) continue;
    bool checkpoint = checkpoint_due_;
    if (!checkpoint && unsaved == 0) continue;
    const int every = feedback_unsaved_ ? kSaveSeconds : kShownSaveSeconds;
    if (!checkpoint && unsaved < kSaveEvents && std::chrono::steady_clock::now() - last < std::chrono::seconds(every)) {
      continue;
    }
    lock.unlock();
    if (!checkpoint) {
      (void)SaveAggregates();  // a failed write marks the storage failing; the next save retries
      std::lock_guard<std::mutex> one(save_mu_);
      checkpoint = keys_since_checkpoint_ >= kCheckpointKeys;
    }
    if (checkpoint) (void)WriteCheckpoint();  // failed: the keys go back to the next save
    last = std::chrono::steady_clock::now();
    lock.lock();
  }
}

void FeedbackStore::Close() {
  closing_ = true;
  {
    // A re-aggregation still reading the log gives up; one writing finishes.
    std::unique_lock<std::mutex> lock(reaggregate_mu_);
    reaggregate_cv_.wait(lock, [&] { return !reaggregating_; });
  }
  {
    // New calls fail; the queued ones are written by their callers.
    std::unique_lock<std::mutex> lock(queue_mu_);
    stopping_ = true;
    if (!open_) {  // never opened: nothing is written
      for (Pending* p : queue_) {
        p->result = Status::IOError("the feedback store is closed");
        p->finished = true;
        p->wake.notify_one();
      }
      queue_.clear();
    }
    closed_cv_.wait(lock, [&] { return !writing_ && !syncing_ && queue_.empty() && unsynced_groups_.empty(); });
  }
  {
    std::lock_guard<std::mutex> lock(saver_mu_);
    saver_stopping_ = true;
  }
  saver_cv_.notify_all();
  if (saver_.joinable()) {
    saver_.join();
    // Counted from the log at the next start otherwise. Only after an open:
    // a failed one leaves the store as it found it. Then a checkpoint when
    // the store has none yet or many keys were saved since the last one (a
    // start sets each over it); a few keys are cheaper to save than the
    // whole checkpoint (the stop stays short).
    if (save_at_close_) {
      (void)SaveAggregates();
      bool checkpoint = checkpoint_due_;
      {
        std::lock_guard<std::mutex> one(save_mu_);
        checkpoint = checkpoint || (keys_since_checkpoint_ > 0 && !has_checkpoint_) ||
                     keys_since_checkpoint_ >= kCheckpointAtStopKeys;
      }
      if (checkpoint) (void)WriteCheckpoint();
    }
  }
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    syncer_stopping_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();  // after one last sync of what the writer left
}

// ---------------------------------------------------------------------------
// Reads

std::vector<std::string> FeedbackStore::SeenAssets(const std::string& lead_id) const {
  std::vector<std::string> out;
  std::shared_lock lock(leads_mu_);
  auto it = memo_.find(lead_id);
  if (it == memo_.end()) return out;
  out.reserve(it->second.seen.size());
  for (uint32_t id : it->second.seen) out.push_back(seen_names_.Name(id));
  return out;
}

std::optional<Arm> FeedbackStore::RecordedArm(const std::string& lead_id) const {
  std::shared_lock lock(leads_mu_);
  auto it = memo_.find(lead_id);
  if (it == memo_.end() || !it->second.recommended) return std::nullopt;
  return it->second.arm;
}

Status FeedbackStore::LeadLog(const std::string& lead_id, const rocksdb::Snapshot* snapshot,
                              std::vector<std::pair<uint64_t, Event>>* log) const {
  std::vector<std::pair<uint64_t, Event>>& out = *log;
  const std::string prefix = LeadPrefix(lead_id);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf_.events));
  std::vector<Event> record;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view lead;
    uint64_t seq;
    record.clear();
    // A run of `shown` events: the record key's sequence number, then the next ones.
    if (SplitEventKey(it->key(), &lead, &seq) && lead == lead_id &&
        DecodeEventRecord(std::string_view(it->value().data(), it->value().size()), &record).ok()) {
      for (Event& e : record) out.emplace_back(seq++, std::move(e));
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the events of lead '" + lead_id + "'");
  return Status::Ok();
}

FeedbackStore::AggregateSums FeedbackStore::Aggregate(int64_t from_ms, int64_t to_ms, const std::string& stage,
                                                      const std::string& rep) const {
  AggregateSums out;
  std::shared_lock lock(stats_mu_);
  Derived::AssetSums sums = derived_->SumAssets(DayOf(from_ms), DayOf(to_ms), stage, rep);
  out.leads_won = uint64_t(sums.closed[4]);
  out.leads_lost = uint64_t(sums.closed[5]);
  out.won_amount = double(sums.closed[7]) / 100.0;
  out.by_asset.reserve(sums.by_asset.size());
  const auto& last_used = derived_->last_used();
  for (auto& [asset, c] : sums.by_asset) {
    AssetActivity a;
    AddTo(&a.stats, c);
    if (auto it = last_used.find(asset); it != last_used.end()) a.last_used = it->second;
    a.asset_id = std::move(asset);
    out.by_asset.push_back(std::move(a));
  }
  return out;
}

std::map<std::string, Counters> FeedbackStore::Experiment(int64_t from_ms, int64_t to_ms) const {
  std::shared_lock lock(stats_mu_);
  return derived_->SumExperiment(DayOf(from_ms), DayOf(to_ms));
}

std::map<std::string, std::array<int64_t, 8>> FeedbackStore::Funnel(int64_t from_ms, int64_t to_ms) const {
  std::shared_lock lock(stats_mu_);
  return derived_->SumFunnel(DayOf(from_ms), DayOf(to_ms));
}

std::map<std::string, AssetStageStats> FeedbackStore::Reps(
    int64_t from_ms, int64_t to_ms, std::map<std::string, std::pair<uint64_t, uint64_t>>* closed) const {
  std::map<std::string, AssetStageStats> out;
  std::shared_lock lock(stats_mu_);
  derived_->SumReps(DayOf(from_ms), DayOf(to_ms), &out, closed);
  return out;
}

std::vector<Derived::Dismissal> FeedbackStore::Dismissals(int64_t from_ms, int64_t to_ms,
                                                         const std::string& stage) const {
  std::shared_lock lock(stats_mu_);
  return derived_->SumDismissals(DayOf(from_ms), DayOf(to_ms), stage);
}

Result<std::vector<Event>> FeedbackStore::LeadEvents(const std::string& lead_id) const {
  std::vector<std::pair<uint64_t, Event>> log;
  if (Status s = LeadLog(lead_id, nullptr, &log); !s.ok()) return s;
  std::vector<Event> out;
  out.reserve(log.size());
  for (auto& [seq, e] : log) out.push_back(std::move(e));
  return out;
}

Result<Lead> FeedbackStore::GetLead(const std::string& lead_id) const {
  Lead lead;
  lead.id = lead_id;
  auto history = LeadEvents(lead_id);
  if (!history.ok()) return history.status();
  lead.history = std::move(history).value();
  std::string v;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf_.leads, lead_id, &v);
  if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading lead '" + lead_id + "'");
  const bool known = got.ok();
  if (!known && lead.history.empty()) return Status::NotFound("no lead '" + lead_id + "'");
  if (known) {
    LeadState st;
    (void)DecodeLeadState(v, &st);
    lead.stage = st.stage;
  }
  return lead;
}

AssetStageStats FeedbackStore::Stats(std::string_view asset_id, std::string_view stage, std::string_view topic) const {
  std::shared_lock lock(stats_mu_);
  return derived_->Stats(asset_id, stage, topic);
}

AssetStageStats FeedbackStore::StageTotals(std::string_view stage) const {
  std::shared_lock lock(stats_mu_);
  return derived_->StageTotals(stage);
}

AssetStageStats FeedbackStore::RankingStats(std::string_view stage, std::string_view topic,
                                            const std::string_view* assets, Derived::OrdinalCache* const* caches,
                                            size_t n, AssetStageStats* at_stage, AssetStageStats* at_topic) const {
  std::shared_lock lock(stats_mu_);
  derived_->RankingStats(stage, topic, assets, caches, n, at_stage, at_topic);
  return derived_->StageTotals(stage);
}

void FeedbackStore::PhraseWeights(const std::vector<std::string>& terms, int64_t now_ms,
                                  std::vector<Derived::PhraseWeight>* out) const {
  const RankingOptions& ro = options_.ranking;
  std::shared_lock lock(stats_mu_);
  derived_->PhraseWeights(terms, DayOf(now_ms), ro.phrase_half_life_days, ro.phrase_min_support, out);
}

std::vector<Derived::PhraseUses> FeedbackStore::Phrases(int64_t now_ms) const {
  std::shared_lock lock(stats_mu_);
  return derived_->SumPhrases(DayOf(now_ms), options_.ranking.phrase_half_life_days);
}

}  // namespace playbook

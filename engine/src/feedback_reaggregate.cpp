// Re-aggregation: every derived counter recomputed from the raw event log,
// each lead replayed by event time with the writer's own Tally, compared with
// the live counters and, unless a check, written over them.
#include "feedback.h"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <unordered_set>

namespace playbook {

void FeedbackStore::RederiveLead(std::vector<std::pair<uint64_t, Event>> before,
                                 std::vector<std::pair<uint64_t, Event>> after, Derived* out) const {
  DeltaBuffer deltas;
  tally_.Rederive(before, after, nullptr, &deltas);
  out->Apply(deltas);
}

Status FeedbackStore::ReplayAll(const rocksdb::Snapshot* snapshot, Derived* out, uint64_t total,
                                const ReaggregateProgress& progress, uint64_t* events,
                                uint64_t* leads) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf_.events));
  std::string lead;
  std::vector<std::pair<uint64_t, Event>> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    RederiveLead({}, std::move(batch), out);
    batch.clear();
    ++*leads;
  };
  std::vector<Event> record;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view key_lead;
    uint64_t seq = 0;
    record.clear();
    if (!SplitEventKey(it->key(), &key_lead, &seq) ||
        !DecodeEventRecord(std::string_view(it->value().data(), it->value().size()), &record).ok()) {
      continue;
    }
    if (key_lead != lead) {
      if (closing_) return Status::Overloaded("shutting down: re-aggregation cancelled, nothing written");
      flush();
      lead.assign(key_lead);
    }
    for (Event& e : record) {  // a run of `shown` events: consecutive sequence numbers from the key's
      batch.emplace_back(seq++, std::move(e));
      if (++*events % 10000 == 0 && progress) progress("replay", *events, std::max(total, *events));
    }
  }
  flush();
  if (!it->status().ok()) return Status::IOError("reading events: " + it->status().ToString());
  return Status::Ok();
}

Status FeedbackStore::WriteAggregates(const Derived& d, uint64_t seq, uint64_t* keys,
                                     const ReaggregateProgress& progress) {
  auto fail = [&](const rocksdb::Status& s) {
    // The marker stays: the next start re-aggregates from the log.
    return storage_->AfterWrite(s, "writing the counters (the next start re-aggregates them)");
  };
  rocksdb::WriteOptions synced;
  synced.sync = true;
  {
    // The marker goes with the range delete: until the last key is written
    // it stays, and a start after a crash re-aggregates from the log.
    rocksdb::WriteBatch batch;
    batch.Put(cf_.meta, kReaggregatingKey, "1");
    batch.DeleteRange(cf_.stats, "", std::string(300, '\xff'));  // keys start with an asset id of <= 128 bytes
    // The checkpoint too: the keys below are the counters; the saver writes
    // a checkpoint of them after.
    batch.Delete(cf_.meta, kCheckpointKey);
    batch.DeleteRange(cf_.meta, std::string(kCheckpointKey) + "/", std::string(kCheckpointKey) + "0");
    if (Status b = storage_->BeforeWrite(); !b.ok()) return b;
    if (rocksdb::Status s = db_->Write(synced, &batch); !s.ok()) return fail(s);
    has_checkpoint_ = false;
  }
  // Not through the WAL (the feedback writer's synced writes would have to
  // sync this bulk too): the flush below makes it durable instead.
  rocksdb::WriteOptions unlogged;
  unlogged.disableWAL = true;
  rocksdb::WriteBatch batch;
  rocksdb::Status s;
  auto write = [&] {
    if (s.ok() && batch.Count() > 0) s = db_->Write(unlogged, &batch);
    batch.Clear();
  };
  auto put = [&](const std::string& key, const Counters& c) {
    ++*keys;
    batch.Put(cf_.stats, key, EncodeCounters(c));
    if (batch.Count() >= 20000) write();
  };
  d.EnumerateUndated(put, [&](const std::string& asset, int64_t ts) {
    batch.Put(cf_.stats, LastUsedKey(asset), std::string(reinterpret_cast<const char*>(&ts), 8));
  });
  const std::vector<uint32_t> days = d.Days();
  for (size_t i = 0; i < days.size() && s.ok(); ++i) {
    if (progress) progress("write", i, days.size());  // the writer runs meanwhile
    d.EnumerateDay(days[i], put);
  }
  write();
  if (s.ok() && progress) progress("write", days.size(), days.size());
  if (s.ok()) {
    rocksdb::FlushOptions wait;
    wait.wait = true;
    s = db_->Flush(wait, cf_.stats);
  }
  if (s.ok()) {
    rocksdb::WriteBatch done;
    done.Delete(cf_.meta, kReaggregatingKey);
    done.Put(cf_.meta, kStatsSeqKey, std::to_string(seq));
    s = db_->Write(synced, &done);
  }
  if (!s.ok()) return fail(s);
  saved_seq_ = seq;
  keys_at_open_ = keys_since_checkpoint_ = 0;
  saved_since_checkpoint_.clear();  // ordinals of the Derived replaced
  checkpoint_due_ = true;
  return Status::Ok();
}

Result<ReaggregateResult> FeedbackStore::Reaggregate(bool write,
                                                     const ReaggregateProgress& progress) {
  {
    std::lock_guard<std::mutex> lock(reaggregate_mu_);
    if (closing_) return Status::Overloaded("shutting down");
    if (reaggregating_) return Status::Overloaded("a re-aggregation is already running");
    reaggregating_ = true;
  }
  struct Done {
    FeedbackStore* store;
    ~Done() {
      std::lock_guard<std::mutex> lock(store->reaggregate_mu_);
      store->reaggregating_ = false;
      store->reaggregate_cv_.notify_all();
    }
  } done{this};
  const auto t0 = std::chrono::steady_clock::now();
  ReaggregateResult result;
  const rocksdb::Snapshot* snapshot;
  uint64_t total;
  {
    std::lock_guard<std::mutex> lock(writer_mu_);
    snapshot = db_->GetSnapshot();
    total = next_seq_;
    touched_leads_ = std::make_unique<std::unordered_set<std::string>>();
  }
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* snapshot;
    std::unique_ptr<std::unordered_set<std::string>>* touched;
    std::mutex* mu;
    ~Release() {
      db->ReleaseSnapshot(snapshot);
      std::lock_guard<std::mutex> lock(*mu);
      touched->reset();
    }
  } release{db_, snapshot, &touched_leads_, &writer_mu_};

  auto fresh = std::make_unique<Derived>();
  if (Status s = ReplayAll(snapshot, fresh.get(), total, progress, &result.events, &result.leads); !s.ok()) return s;

  if (closing_) return Status::Overloaded("shutting down: re-aggregation cancelled, nothing written");
  // The writer pauses from here: replay again the leads written to since the
  // snapshot (out with their old events, in with all of them), compare, and
  // swap the recomputed counters in; then a copy of them is written.
  std::chrono::steady_clock::duration longest_pause{};
  std::unique_lock<std::mutex> one_save(save_mu_, std::defer_lock);
  if (write) one_save.lock();  // before writer_mu_, as SaveAggregates
  std::unique_ptr<Derived> copy;
  uint64_t copy_seq = 0;
  {
    std::lock_guard<std::mutex> lock(writer_mu_);
    const auto paused = std::chrono::steady_clock::now();
    for (const std::string& lead : *touched_leads_) {
      std::vector<std::pair<uint64_t, Event>> old_log, new_log;
      if (Status r = LeadLog(lead, snapshot, &old_log); !r.ok()) return r;
      if (Status r = LeadLog(lead, nullptr, &new_log); !r.ok()) return r;
      const uint64_t before = old_log.size(), after = new_log.size();
      RederiveLead(std::move(old_log), std::move(new_log), fresh.get());
      result.events += after - before;
      if (before == 0) ++result.leads;
    }
    {
      std::shared_lock read(stats_mu_);
      result.differing = fresh->CountDifferences(*derived_);
    }
    if (write) {
      fresh->ClearChanged();  // all of it is written below: the saves go on from here
      copy = std::make_unique<Derived>(*fresh);
      copy_seq = next_seq_;
      std::unique_lock swap(stats_mu_);
      derived_ = std::move(fresh);  // the writer counts into it from now on
    }
    longest_pause = std::chrono::steady_clock::now() - paused;
  }
  if (write) {
    if (progress) progress("replay", result.events, result.events);
    if (Status s = WriteAggregates(*copy, copy_seq, &result.keys, progress); !s.ok()) return s;
    result.written = true;
  } else {
    result.keys = fresh->CountKeys();
  }
  if (progress && !write) progress("replay", result.events, result.events);
  result.ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  result.paused_ms = std::chrono::duration_cast<std::chrono::milliseconds>(longest_pause).count();
  return result;
}

}  // namespace playbook

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

void FeedbackStore::ReplayLead(std::vector<std::pair<uint64_t, Event>> events, Derived* out, int sign) const {
  Deltas deltas;
  tally_.Replay(events, nullptr, &deltas);
  for (auto& [key, c] : deltas.counters) {
    if (sign < 0) {
      for (int64_t& v : c) v = int64_t(0 - uint64_t(v));
    }
    out->Apply(key, c);
  }
  if (sign > 0) {
    for (const auto& [asset, ts] : deltas.last_used) out->ApplyLastUsed(asset, ts);
  }
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
    ReplayLead(std::move(batch), out, +1);
    batch.clear();
    ++*leads;
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view key_lead;
    uint64_t seq = 0;
    Event e;
    if (!SplitEventKey(it->key(), &key_lead, &seq) ||
        !DecodeEvent(std::string_view(it->value().data(), it->value().size()), &e)) {
      continue;
    }
    if (key_lead != lead) {
      if (closing_) return Status::Overloaded("shutting down: re-aggregation cancelled, nothing written");
      flush();
      lead.assign(key_lead);
    }
    batch.emplace_back(seq, std::move(e));
    if (++*events % 10000 == 0 && progress) progress("replay", *events, std::max(total, *events));
  }
  flush();
  if (!it->status().ok()) return Status::IOError("reading events: " + it->status().ToString());
  return Status::Ok();
}

// REQUIRES: derived_ holds the recomputed counters and the stored ones were
// range-deleted. Writes derived_ as it is in memory, a day at a time, each
// slice with the writer paused so that memory and storage agree: a delta the
// writer merges afterwards lands on top of the value put. *longest_pause is
// raised to the longest slice.
Status FeedbackStore::WriteDerived(uint64_t* keys, std::chrono::steady_clock::duration* longest_pause,
                                   const ReaggregateProgress& progress) {
  rocksdb::Status s;
  auto slice = [&](const std::function<void(rocksdb::WriteBatch*)>& fill) {
    // A mutex is not fair: with feedback queued, let the writer have its turn
    // before taking the lock again (at most 100 ms), or it could miss many slices.
    bool queued;
    {
      std::lock_guard<std::mutex> q(queue_mu_);
      queued = !queue_.empty();
    }
    const uint64_t groups = groups_written_;
    for (int wait = 0; queued && wait < 100 && groups_written_ == groups && writer_.joinable(); ++wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard<std::mutex> lock(writer_mu_);
    const auto start = std::chrono::steady_clock::now();
    rocksdb::WriteBatch batch;
    fill(&batch);
    // Not through the WAL: the feedback writer's synced writes would then have
    // to sync this bulk too. The flush below makes it durable instead.
    rocksdb::WriteOptions unlogged;
    unlogged.disableWAL = true;
    s = db_->Write(unlogged, &batch);
    *longest_pause = std::max(*longest_pause, std::chrono::steady_clock::now() - start);
  };
  auto put = [&](rocksdb::WriteBatch* batch) {
    return [this, batch, keys](const std::string& key, const Counters& c) {
      ++*keys;
      batch->Put(cf_.stats, key, EncodeCounters(c));
    };
  };
  slice([&](rocksdb::WriteBatch* batch) {
    derived_->EnumerateUndated(put(batch), [&](const std::string& asset, int64_t ts) {
      batch->Put(cf_.stats, LastUsedKey(asset), std::string(reinterpret_cast<const char*>(&ts), 8));
    });
  });
  std::vector<uint32_t> days;
  {
    std::shared_lock read(stats_mu_);
    days = derived_->Days();
  }
  for (size_t i = 0; i < days.size() && s.ok(); ++i) {
    if (progress) progress("write", i, days.size());  // between slices: the writer runs
    // A full memtable while the last one is still being flushed stops every
    // write, the feedback writer's too: let the flush finish first.
    uint64_t flushing = 0;
    for (int wait = 0; wait < 3000 && db_->GetIntProperty(cf_.stats, "rocksdb.num-immutable-mem-table", &flushing) &&
                       flushing > 0;
         ++wait) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    slice([&](rocksdb::WriteBatch* batch) { derived_->EnumerateDay(days[i], put(batch)); });
  }
  if (s.ok() && progress) progress("write", days.size(), days.size());
  if (s.ok()) {
    rocksdb::FlushOptions wait;
    wait.wait = true;
    s = db_->Flush(wait, cf_.stats);  // the unlogged puts, and what the writer merged since, into tables
  }
  if (s.ok()) {
    // Days the writer started since are in storage through its own merges.
    std::lock_guard<std::mutex> lock(writer_mu_);
    rocksdb::WriteBatch batch;
    batch.Delete(cf_.meta, kReaggregatingKey);
    rocksdb::WriteOptions synced;
    synced.sync = true;
    s = db_->Write(synced, &batch);
  }
  if (!s.ok()) {
    // The marker stays: the next start finishes the re-aggregation before it serves.
    return storage_->AfterWrite(s, "writing re-aggregated counters (the next start finishes them)");
  }
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
  // swap the recomputed counters in; then they are written, day by day.
  std::chrono::steady_clock::duration longest_pause{};
  {
    std::lock_guard<std::mutex> lock(writer_mu_);
    const auto paused = std::chrono::steady_clock::now();
    for (const std::string& lead : *touched_leads_) {
      std::vector<std::pair<uint64_t, Event>> old_log, new_log;
      if (Status r = LeadLog(lead, snapshot, &old_log); !r.ok()) return r;
      if (Status r = LeadLog(lead, nullptr, &new_log); !r.ok()) return r;
      const uint64_t before = old_log.size(), after = new_log.size();
      ReplayLead(std::move(old_log), fresh.get(), -1);
      ReplayLead(std::move(new_log), fresh.get(), +1);
      result.events += after - before;
      if (before == 0) ++result.leads;
    }
    {
      std::shared_lock read(stats_mu_);
      result.differing = fresh->CountDifferences(*derived_);
    }
    if (write) {
      // The marker goes with the range delete: until the last slice is
      // written it stays, and a start after a crash re-aggregates again.
      rocksdb::WriteBatch batch;
      batch.Put(cf_.meta, kReaggregatingKey, "1");
      batch.DeleteRange(cf_.stats, "", std::string(300, '\xff'));  // keys start with an asset id of <= 128 bytes
      rocksdb::WriteOptions synced;
      synced.sync = true;
      if (Status s = storage_->AfterWrite(db_->Write(synced, &batch), "starting to write re-aggregated counters");
          !s.ok()) {
        return s;
      }
      std::unique_lock swap(stats_mu_);
      derived_ = std::move(fresh);  // the writer counts into it from now on
    }
    longest_pause = std::chrono::steady_clock::now() - paused;
  }
  if (write) {
    if (progress) progress("replay", result.events, result.events);
    if (Status s = WriteDerived(&result.keys, &longest_pause, progress); !s.ok()) return s;
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

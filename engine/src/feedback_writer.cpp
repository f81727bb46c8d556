// The feedback store's writer: validation, then group commit: the caller at
// the front of the queue takes every queued call, counts its events (tally.h)
// from each lead's state, writes them in one batch, and syncs the log while
// the next group is written.
#include "feedback.h"

#include <pthread.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <string_view>
#include <unordered_set>

namespace playbook {

int64_t NowMs();  // engine.cpp

Status ValidateEvents(std::vector<Event>* events, const EngineOptions& options) {
  if (events->empty()) return Status::InvalidArgument("events", "at least one event");
  if (events->size() > 10000) return Status::InvalidArgument("events", "more than 10000 events in one call");
  const int64_t now = NowMs();
  for (size_t i = 0; i < events->size(); ++i) {
    Event& e = (*events)[i];
    const std::string at = "events[" + std::to_string(i) + "].";
    if (e.event_id.empty() || e.event_id.size() > 256) return Status::InvalidArgument(at + "event_id", "must be 1..256 bytes");
    if (e.lead_id.empty() || e.lead_id.size() > 256) return Status::InvalidArgument(at + "lead_id", "must be 1..256 bytes");
    // Ids are parts of keys separated by NUL bytes.
    for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"event_id", &e.event_id},
                                      {"lead_id", &e.lead_id}, {"asset_id", &e.asset_id}, {"rep_id", &e.rep_id},
                                      {"stage", &e.stage}, {"reason", &e.reason}}) {
      if (value->find('\0') != std::string::npos) return Status::InvalidArgument(at + name, "must not contain NUL characters");
    }
    const bool about_asset = e.type == EventType::kUsed || e.type == EventType::kViewed ||
                             e.type == EventType::kDismissed || e.type == EventType::kShown;
    if (about_asset && (e.asset_id.empty() || e.asset_id.size() > 128)) {
      return Status::InvalidArgument(at + "asset_id", std::string("required for ") + EventTypeName(e.type));
    }
    if (e.type == EventType::kStageChanged) {
      if (std::find(options.stages.begin(), options.stages.end(), e.stage) == options.stages.end()) {
        std::string valid;
        for (const auto& s : options.stages) valid += (valid.empty() ? "" : ", ") + s;
        return Status::InvalidArgument(at + "stage", (e.stage.empty() ? std::string("required for stage_changed")
                                                                      : "unknown stage '" + e.stage + "'") +
                                                         "; valid stages: " + valid);
      }
    } else if (!e.stage.empty() && e.type != EventType::kShown) {
      return Status::InvalidArgument(at + "stage", "only for stage_changed");
    }
    // Reports sum amounts in integer cents: the bound keeps every sum exact.
    if (!(e.amount >= 0 && e.amount <= 1e9)) return Status::InvalidArgument(at + "amount", "must be a number in 0..1000000000");
    if (e.amount != 0 && e.type != EventType::kWon) return Status::InvalidArgument(at + "amount", "only for won");
    if (e.reason.size() > 1000) return Status::InvalidArgument(at + "reason", "longer than 1000 bytes");
    if (!e.reason.empty() && e.type != EventType::kDismissed) return Status::InvalidArgument(at + "reason", "only for dismissed");
    if (e.ts < 0 || e.ts > now + 24 * 3600 * 1000LL) return Status::InvalidArgument(at + "ts", "must be ms since the epoch, not in the future");
    if (e.ts == 0) e.ts = now;
  }
  return Status::Ok();
}

Result<RecordResult> FeedbackStore::Record(std::vector<Event> events) { return Enqueue(std::move(events), true); }

Result<RecordResult> FeedbackStore::RecordShown(std::vector<Event> events) {
  return Enqueue(std::move(events), false);
}

// Group commit without a writer thread: the caller at the front of the queue,
// when no group is being written, takes the queue (its own call first) and
// writes it, under writer_mu_; the others wait, each on its own condition
// variable. When a group is written, the caller then at the front is woken and
// writes the next group. A feedback group then waits for a sync of the log
// that began after its write: one of the waiting groups' callers syncs, for
// every group written before its sync began, while the next groups are
// written, and wakes their callers (no caller is woken for nothing). So the
// fsync is off the serial path and each fsync covers as many groups as were
// written during the one before. A call alone (one recommend at a time) is
// written on its own thread: no hand-off to a writer and back, no future.
Result<RecordResult> FeedbackStore::Enqueue(std::vector<Event> events, bool durable) {
  Pending p;
  p.events = std::move(events);
  p.durable = durable;
  std::unique_lock<std::mutex> lock(queue_mu_);
  if (stopping_) return Status::IOError("the feedback store is closed");
  queue_.push_back(&p);
  // Marks a group's calls finished and wakes their callers. Under the lock: a
  // caller that sees `finished` returns, and its Pending (with its condition
  // variable) is gone.
  auto finish = [&p](const std::vector<Pending*>& group) {
    for (Pending* q : group) {
      q->finished = true;
      if (q != &p) q->wake.notify_one();
    }
  };
  // noexcept: a group that throws (out of memory) ends the process, as it did
  // on the writer thread, rather than leave its callers waiting forever.
  auto write = [this](std::vector<Pending*>& group, bool durable) noexcept {
    std::lock_guard<std::mutex> writing(writer_mu_);
    WriteGroup(group, durable);
    ++groups_written_;
  };
  // Under the lock: who goes on. The caller at the front of the queue writes
  // the next group; a written group's caller syncs the log when no sync is
  // running; Close waits until nothing is written or synced.
  auto next = [this] {
    if (!writing_ && !queue_.empty()) queue_.front()->wake.notify_one();
    if (!syncing_ && !unsynced_groups_.empty()) unsynced_groups_.front().front()->wake.notify_one();
    if (stopping_ && !writing_ && !syncing_ && queue_.empty() && unsynced_groups_.empty()) closed_cv_.notify_all();
  };
  while (!p.finished) {
    if (p.written) {  // waiting for a sync
      if (syncing_) {
        p.wake.wait(lock);
        continue;
      }
      std::vector<std::vector<Pending*>> groups = std::move(unsynced_groups_);
      unsynced_groups_.clear();
      syncing_ = true;
      lock.unlock();
      SyncGroups(groups);
      lock.lock();
      syncing_ = false;
      for (const auto& group : groups) finish(group);
      next();
      continue;
    }
    if (writing_ || !open_ || queue_.empty() || queue_.front() != &p) {
      p.wake.wait(lock);
      continue;
    }
    // Two groups: the `shown` calls, written without a sync and answered at
    // once; then the feedback calls, written, then answered after a sync.
    std::vector<Pending*> shown, synced;
    for (Pending* q : queue_) (q->durable ? synced : shown).push_back(q);
    queue_.clear();
    writing_ = true;
    if (!shown.empty()) {
      lock.unlock();
      write(shown, /*durable=*/false);
      lock.lock();
      finish(shown);
      // A recommend leading does not wait for the feedback calls' fsync: they
      // go back to the front of the queue, and the first of them writes them.
      if (!p.durable) {
        queue_.insert(queue_.begin(), synced.begin(), synced.end());
        synced.clear();
      }
    }
    if (!synced.empty()) {
      lock.unlock();
      write(synced, /*durable=*/true);
      lock.lock();
      bool any = false;  // written: a failed write's calls have their error
      for (Pending* q : synced) any = any || (q->result && q->result->ok());
      if (any) {
        for (Pending* q : synced) q->written = true;
        unsynced_groups_.push_back(std::move(synced));
      } else {
        finish(synced);
      }
    }
    writing_ = false;
    next();
  }
  return std::move(*p.result);
}

// Syncs the log for feedback groups written before it began: their events are
// readable (and counted) from their write on, as recommend's `shown` events
// are before their sync, and their calls are answered "ok" only after it. When
// the sync fails, every call of the groups gets the error (the storage is
// then failing: new writes fail until it recovers, and its recovery persists
// what the memtable holds, so a retry is answered as a duplicate only of
// events that are kept).
//
// The log is never synced after a failed write: RocksDB's log writer asserts
// (Debian's build keeps its assertions) when a sync follows a failed append.
// A failed write marks the storage failing before it returns, so the check
// covers every write that failed before this sync began; one failing while
// this sync starts is the window RocksDB's syncer has as well (its log files
// are preallocated, so a full disk fails the next file, not an append).
void FeedbackStore::SyncGroups(std::vector<std::vector<Pending*>>& groups) {
  uint64_t unsynced_before = 0;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    unsynced_before = unsynced_writes_;
  }
  Status synced = storage_->BeforeWrite();
  if (synced.ok()) synced = storage_->AfterWrite(db_->SyncWAL(), "syncing the log of feedback events");
  if (!synced.ok()) {
    for (auto& group : groups) {
      for (Pending* q : group) {
        if (q->result && q->result->ok()) q->result = synced;
      }
    }
    return;
  }
  std::lock_guard<std::mutex> lock(sync_mu_);
  // The shown events written before this sync began are synced with it.
  if (unsynced_ && unsynced_writes_ == unsynced_before) unsynced_ = false;
}

void FeedbackStore::SyncerLoop() {
  pthread_setname_np(pthread_self(), "pb-syncer");  // names the thread in perf, top -H
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (true) {
    sync_cv_.wait(lock, [&] { return syncer_stopping_ || unsynced_; });
    if (!unsynced_) return;  // stopping, everything synced
    // Writes arriving meanwhile share this sync.
    sync_cv_.wait_until(lock, unsynced_since_ + std::chrono::milliseconds(kShownSyncMs),
                        [&] { return syncer_stopping_ || !unsynced_; });
    if (!unsynced_) continue;  // a synced feedback write covered them
    unsynced_ = false;  // writes from here on wait for the next sync
    lock.unlock();
    // While the storage is failing, the recovery's synced probe write syncs
    // the log (RocksDB's log writer is not used before it).
    if (storage_->BeforeWrite().ok()) {
      (void)storage_->AfterWrite(db_->SyncWAL(), "syncing the log of shown events");
      ++shown_syncs_;
    }
    lock.lock();
  }
}

// One synced WriteBatch for every call in the group: the events, their ids
// and sequence numbers, the touched leads. The counters are counted in memory
// (typed deltas) and saved apart (SaveAggregates). The group's ids and leads
// are looked up by views of the events' own strings (the events outlive the
// group): no per-event string copy, and a cached lead is moved, not copied.
void FeedbackStore::WriteGroup(std::vector<Pending*>& group, bool durable) {
  size_t events = 0;
  for (const Pending* p : group) events += p->events.size();
  std::vector<RecordResult> results(group.size());

  // The group's leads: as stored (from the writer's cache, else read), then
  // counted; their new events in arrival order.
  struct Lead {
    const std::string* id = nullptr;
    bool stored = false;
    LeadState st;
    // The cache's entry, moved from into `st` and written back after the
    // write: one lookup by lead id, not a find, an extract and an insert.
    LeadState* cached = nullptr;
    std::vector<std::pair<uint64_t, Event*>> events;
  };
  std::unordered_map<std::string_view, Lead> leads;
  leads.reserve(events);
  // Nothing is written when a read fails: every call of the group gets the
  // error, and the cache forgets the group's leads (their entries were moved
  // from; they are read again).
  auto fail = [&](const Status& error) {
    for (const auto& [view, lead] : leads) {
      if (lead.cached) lead_cache_.erase(*lead.id);
    }
    for (Pending* p : group) p->result = error;
  };
  // recommend's `shown` events (the group that is not durable) are the daemon's own: each
  // recommendation makes its ids once ("rec-...:asset"), so they are not
  // idempotency keys and have no "event_ids" record, neither looked up nor
  // written (one key of two per event).
  const bool idempotent = durable;
  // One batched MultiGet each for the group's event ids and the leads not in
  // the cache, rather than two point lookups per event.
  std::vector<rocksdb::Slice> ids, lead_keys;
  std::vector<Lead*> to_read;
  if (idempotent) ids.reserve(events);
  for (Pending* p : group) {
    for (const Event& e : p->events) {
      if (idempotent) ids.emplace_back(e.event_id);
      auto [it, added] = leads.try_emplace(e.lead_id);
      if (!added) continue;
      Lead& lead = it->second;
      lead.id = &e.lead_id;
      // A lead the writer stored lately is in memory as stored.
      if (auto c = lead_cache_.find(e.lead_id); c != lead_cache_.end()) {
        lead.cached = &c->second;
        lead.st = std::move(c->second);
        lead.st.known = true;
        lead.stored = true;
      } else {
        lead_keys.emplace_back(e.lead_id);
        to_read.push_back(&lead);
      }
    }
  }
  std::unordered_set<std::string_view> known_ids;
  {
    std::vector<rocksdb::PinnableSlice> values(ids.size());
    std::vector<rocksdb::Status> got(ids.size());
    if (!ids.empty()) {
      db_->MultiGet(rocksdb::ReadOptions(), cf_.event_ids, ids.size(), ids.data(), values.data(), got.data());
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      // An id that cannot be read is neither new nor a duplicate: the group fails.
      if (!got[i].ok() && !got[i].IsNotFound()) {
        return fail(FromRocks(got[i], "reading event id '" + ids[i].ToString() + "'"));
      }
      if (got[i].ok()) known_ids.insert(std::string_view(ids[i].data(), ids[i].size()));
    }
  }
  {
    std::vector<rocksdb::PinnableSlice> values(lead_keys.size());
    std::vector<rocksdb::Status> got(lead_keys.size());
    if (!lead_keys.empty()) {
      db_->MultiGet(rocksdb::ReadOptions(), cf_.leads, lead_keys.size(), lead_keys.data(), values.data(), got.data());
    }
    for (size_t i = 0; i < lead_keys.size(); ++i) {
      if (!got[i].ok() && !got[i].IsNotFound()) {
        return fail(FromRocks(got[i], "reading lead '" + lead_keys[i].ToString() + "'"));
      }
      if (got[i].ok()) {
        // An incomplete state is rebuilt from the log.
        (void)DecodeLeadState(std::string_view(values[i].data(), values[i].size()), &to_read[i]->st);
        to_read[i]->stored = true;
      }
    }
  }

  // The new events, numbered in arrival order, per lead.
  std::unordered_set<std::string_view> ids_in_group;
  if (idempotent) ids_in_group.reserve(events);
  std::vector<std::pair<uint64_t, Event*>> accepted;
  accepted.reserve(events);
  uint64_t seq = next_seq_;
  for (size_t g = 0; g < group.size(); ++g) {
    for (Event& e : group[g]->events) {
      if (idempotent && (!ids_in_group.insert(e.event_id).second || known_ids.count(e.event_id))) {
        results[g].duplicates++;
        continue;
      }
      Lead& lead = leads.find(e.lead_id)->second;
      if (!lead.st.known && e.type != EventType::kShown) results[g].unknown_leads++;
      lead.st.known = true;
      // recommend's `shown` events name the assets it has just answered with
      // (and it reads no counts back): no catalog lookup for them.
      if (idempotent && !e.asset_id.empty() && !asset_known_(e.asset_id)) results[g].unknown_assets++;
      lead.events.emplace_back(seq, &e);
      accepted.emplace_back(seq++, &e);
      results[g].accepted++;
    }
  }
  DeltaBuffer deltas;
  for (auto& [view, lead] : leads) {
    if (lead.events.empty()) continue;
    if (Status s = TallyLead(*lead.id, lead.stored, &lead.st, !durable, lead.events, &deltas); !s.ok()) return fail(s);
  }
  // About what an event writes: no regrowth. The event ids and the leads go
  // into the batch in key order: their keys come in random order, and the
  // memtable's skip list inserts a key after a nearby one from where the last
  // insert left off rather than from the top (the events' keys have insert
  // hints per lead instead).
  rocksdb::WriteBatch batch(events * 256);
  std::string key, value, in_order;  // in_order: the group's record in "event_seqs"
  std::vector<std::pair<std::string_view, uint64_t>> ids_sorted;
  if (idempotent) ids_sorted.reserve(accepted.size());
  // recommend's `shown` events: a recommendation's k events (consecutive
  // sequence numbers, one lead, one ts) are one record, a run, keyed by its
  // first event; each of its events keeps its entry in "event_seqs", naming
  // the run's key. One key instead of k.
  std::vector<const Event*> run;
  for (size_t i = 0; i < accepted.size();) {  // completed by the tally
    const auto& [n, e] = accepted[i];
    size_t end = i + 1;
    if (!durable && shown_runs_) {
      run.assign(1, e);
      while (end < accepted.size() && accepted[end].second->recommendation_id == e->recommendation_id &&
             accepted[end].second->lead_id == e->lead_id) {
        run.push_back(accepted[end++].second);
      }
      if (!ShownRunFits(run.data(), run.size())) end = i + 1;
    }
    EventKeyTo(&key, e->lead_id, e->ts, n);
    if (end - i > 1) {
      EncodeShownRunTo(run.data(), run.size(), &value);
    } else {
      EncodeEventTo(*e, &value);
    }
    batch.Put(cf_.events, key, value);
    for (size_t j = i; j < end; ++j) {
      AppendSeqEntry(&in_order, key);
      if (idempotent) ids_sorted.emplace_back(accepted[j].second->event_id, accepted[j].first);
    }
    i = end;
  }
  std::sort(ids_sorted.begin(), ids_sorted.end());
  for (const auto& [id, n] : ids_sorted) {
    // The id's value is its sequence number (big-endian): only its presence is read.
    key.clear();
    PutSeq(&key, n);
    batch.Put(cf_.event_ids, rocksdb::Slice(id.data(), id.size()), key);
  }
  if (!accepted.empty()) batch.Put(cf_.event_seqs, SeqKey(accepted.front().first), in_order);
  std::vector<const Lead*> written;
  for (const auto& [view, lead] : leads) {
    if (!lead.events.empty()) written.push_back(&lead);
  }
  std::sort(written.begin(), written.end(), [](const Lead* a, const Lead* b) { return *a->id < *b->id; });
  for (const Lead* lead : written) {
    EncodeLeadStateTo(lead->st, &value);
    batch.Put(cf_.leads, *lead->id, value);
  }
  batch.Put(cf_.meta, kEventSeqKey, std::to_string(seq));

  // Not synced here: a durable group's caller syncs the log after it
  // (Enqueue, SyncGroups) while the next group is written; `shown` events are
  // synced by the syncer.
  rocksdb::WriteOptions wo;
  wo.sync = false;
  if (Status ready = storage_->BeforeWrite(); !ready.ok()) return fail(ready);
  if (Status w = storage_->AfterWrite(batch.Count() > 0 ? db_->Write(wo, &batch) : rocksdb::Status::OK(), "writing events");
      !w.ok()) {
    return fail(w);
  }
  if (batch.Count() > 0 && !durable) {
    std::lock_guard<std::mutex> lock(sync_mu_);
    ++unsynced_writes_;
    if (!unsynced_) {
      unsynced_ = true;
      unsynced_since_ = std::chrono::steady_clock::now();
      sync_cv_.notify_one();
    }
  }
  next_seq_ = seq;
  if (durable && !accepted.empty()) feedback_unsaved_ = true;  // saved within kSaveSeconds
  {
    std::unique_lock lock(leads_mu_);
    for (const auto& [view, lead] : leads) {
      if (lead.events.empty()) continue;
      if (touched_leads_) touched_leads_->insert(*lead.id);
      SetSeen(*lead.id, lead.st);
    }
  }
  // Every lead of the group back into the cache, as now stored (a lead whose
  // events were all duplicates unchanged).
  size_t added = 0;
  for (const auto& [view, lead] : leads) added += lead.cached ? 0 : 1;
  if (lead_cache_.size() + added > kLeadCache) {
    lead_cache_.clear();
    for (auto& [view, lead] : leads) lead.cached = nullptr;
  }
  for (auto& [view, lead] : leads) {
    if (lead.cached) {
      *lead.cached = std::move(lead.st);
    } else if (lead.stored || !lead.events.empty()) {  // else nothing stored
      lead_cache_.insert_or_assign(*lead.id, std::move(lead.st));
    }
  }
  if (!deltas.empty()) {
    std::unique_lock lock(stats_mu_);
    derived_->Apply(deltas);
  }
  if (next_seq_ - saved_seq_ >= kSaveEvents) saver_cv_.notify_one();
  for (size_t g = 0; g < group.size(); ++g) group[g]->result = results[g];
}

Status FeedbackStore::TallyLead(const std::string& lead_id, bool stored, LeadState* st, bool shown_at_answer,
                                std::vector<std::pair<uint64_t, Event*>>& events, DeltaBuffer* deltas) {
  // Late: an event earlier (by ts) than one the lead already has. A
  // recommend's `shown` events (shown_at_answer) carry the engine's clock when
  // it answered; when the lead already has later events (a CRM clock ahead of
  // ours, or a ts given up to a day ahead) they take the lead's latest ts
  // instead: what was shown comes after everything the lead had when it was
  // shown, and a recommend never re-derives a lead.
  int64_t latest = st->complete ? st->latest_ts : -1;
  auto scan = [&events, &latest, shown_at_answer] {
    bool any = false;
    for (auto& [n, e] : events) {
      if (shown_at_answer && e->type == EventType::kShown && e->ts < latest) e->ts = latest;
      any = any || e->ts < latest;
      latest = std::max(latest, e->ts);
    }
    return any;
  };
  bool late = scan();
  const bool rebuild = stored && (!st->complete || st->window_ms != tally_.window_ms());
  if (!late && !rebuild) {  // the common case: no history read
    for (auto& [n, e] : events) tally_.Apply(*e, *st, deltas);
    st->known = true;
    return Status::Ok();
  }
  // The lead's log as stored: replayed by event time, it gives the state (and
  // the counters) the lead had before this group.
  std::vector<std::pair<uint64_t, Event>> log;
  if (stored) {
    if (Status s = LeadLog(lead_id, nullptr, &log); !s.ok()) return s;
    log_records_read_ += log.size();
  }
  if (rebuild) {
    tally_.Replay(log, st, nullptr);
    latest = st->latest_ts;
    late = scan();
  }
  if (!late) {
    for (auto& [n, e] : events) tally_.Apply(*e, *st, deltas);
    st->known = true;
    return Status::Ok();
  }
  // Re-derive: out with what the old log counted, in with the old log and the
  // new events, all in (ts, seq) order; the new events take the stage and
  // topic the replay gives them.
  std::vector<std::pair<uint64_t, Event>> all = log;
  for (const auto& [n, e] : events) all.emplace_back(n, *e);
  tally_.Rederive(log, all, st, deltas);
  std::unordered_map<uint64_t, const Event*> completed;
  for (const auto& [n, e] : all) completed.emplace(n, &e);
  for (auto& [n, e] : events) {
    const Event* done = completed.at(n);
    e->stage = done->stage;
    e->topic = done->topic;
    e->arm = done->arm;
  }
  st->known = true;
  return Status::Ok();
}

void FeedbackStore::SetSeen(const std::string& lead_id, const LeadState& st) {
  auto it = memo_.find(lead_id);
  if (it == memo_.end()) {
    if (st.seen.empty() && !st.recommended) return;
    it = memo_.try_emplace(lead_id).first;
  }
  LeadMemo& memo = it->second;
  memo.recommended = st.recommended;
  memo.arm = st.arm;
  // The seen list grows at its end (Tally::Apply): only the new assets are
  // interned. A re-derived lead may list them in another order: from the
  // first that differs on, all again.
  const std::vector<std::string>& assets = st.seen;
  std::vector<uint32_t>& ids = memo.seen;
  size_t same = std::min(ids.size(), assets.size());
  for (size_t i = 0; i < same; ++i) {
    if (seen_names_.Name(ids[i]) != assets[i]) same = i;
  }
  ids.resize(same);
  ids.reserve(assets.size());
  for (size_t i = same; i < assets.size(); ++i) ids.push_back(seen_names_.Intern(assets[i]));
}

}  // namespace playbook

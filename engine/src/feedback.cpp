#include "feedback.h"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <unordered_set>

namespace playbook {

int64_t NowMs();  // engine.cpp

namespace {

constexpr const char* kSeqKey = "meta/event_seq";
// Present while re-aggregated counters are being written: Open finishes the job.
constexpr const char* kReaggregatingKey = "meta/reaggregating";
constexpr uint8_t kEventFormat = 2;  // 2 added the topic; 1 is still read

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

void PutBE64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(char((v >> (8 * i)) & 0xff));
}

void PutStr(std::string* out, const std::string& s) {
  const uint32_t n = uint32_t(s.size());
  out->append(reinterpret_cast<const char*>(&n), 4);
  out->append(s);
}

bool GetStr(std::string_view* in, std::string* s) {
  uint32_t n;
  if (in->size() < 4) return false;
  std::memcpy(&n, in->data(), 4);
  in->remove_prefix(4);
  if (in->size() < n) return false;
  s->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

std::string EncodeEvent(const Event& e) {
  std::string out;
  out.push_back(char(kEventFormat));
  out.push_back(char(e.type));
  PutStr(&out, e.event_id);
  PutStr(&out, e.lead_id);
  PutStr(&out, e.asset_id);
  PutStr(&out, e.stage);
  PutStr(&out, e.rep_id);
  PutStr(&out, e.recommendation_id);
  PutStr(&out, e.reason);
  PutStr(&out, e.topic);
  out.append(reinterpret_cast<const char*>(&e.amount), 8);
  out.append(reinterpret_cast<const char*>(&e.ts), 8);
  return out;
}

bool DecodeEvent(std::string_view in, Event* e) {
  if (in.size() < 2 || (uint8_t(in[0]) != kEventFormat && uint8_t(in[0]) != 1)) return false;
  const bool has_topic = uint8_t(in[0]) >= 2;
  e->type = EventType(uint8_t(in[1]));
  in.remove_prefix(2);
  if (!GetStr(&in, &e->event_id) || !GetStr(&in, &e->lead_id) || !GetStr(&in, &e->asset_id) ||
      !GetStr(&in, &e->stage) || !GetStr(&in, &e->rep_id) || !GetStr(&in, &e->recommendation_id) ||
      !GetStr(&in, &e->reason) || (has_topic && !GetStr(&in, &e->topic)) || in.size() != 16) {
    return false;
  }
  std::memcpy(&e->amount, in.data(), 8);
  std::memcpy(&e->ts, in.data() + 8, 8);
  return true;
}

std::string EncodeLeadState(const LeadState& st) {
  std::string v;
  PutStr(&v, st.stage);
  v.append(reinterpret_cast<const char*>(&st.stage_since), 8);
  PutStr(&v, st.topic);
  return v;
}

bool DecodeLeadState(std::string_view in, LeadState* st) {
  // Lenient, as before: a short record keeps what could be read.
  int64_t since = 0;
  const bool stage_ok = GetStr(&in, &st->stage);
  if (stage_ok && in.size() >= 8) std::memcpy(&since, in.data(), 8);
  in.remove_prefix(std::min<size_t>(8, in.size()));
  const bool topic_ok = in.empty() || GetStr(&in, &st->topic);
  st->stage_since = since;
  st->known = true;
  return stage_ok && topic_ok && in.empty();
}

namespace {

std::string LeadPrefix(const std::string& lead) {
  std::string k = lead;
  k.push_back('\0');
  return k;
}

}  // namespace

const char* EventTypeName(EventType t) {
  switch (t) {
    case EventType::kShown: return "shown";
    case EventType::kUsed: return "used";
    case EventType::kViewed: return "viewed";
    case EventType::kDismissed: return "dismissed";
    case EventType::kStageChanged: return "stage_changed";
    case EventType::kWon: return "won";
    case EventType::kLost: return "lost";
  }
  return "unknown";
}

bool ParseEventType(const std::string& name, EventType* t) {
  for (EventType e : {EventType::kShown, EventType::kUsed, EventType::kViewed, EventType::kDismissed,
                      EventType::kStageChanged, EventType::kWon, EventType::kLost}) {
    if (name == EventTypeName(e)) {
      *t = e;
      return true;
    }
  }
  return false;
}

std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator() { return std::make_shared<CounterMerge>(); }

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

FeedbackStore::FeedbackStore(rocksdb::DB* db, FeedbackColumns cfs, const EngineOptions& options,
                             std::function<bool(const std::string&)> asset_known, StorageState* storage)
    : db_(db), cf_(cfs), options_(options), asset_known_(std::move(asset_known)), tally_(options),
      storage_(storage), derived_(std::make_unique<Derived>()) {}

FeedbackStore::~FeedbackStore() { Close(); }

Status FeedbackStore::LoadDerived(Derived* out) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_.stats));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.empty() && key[0] == kLastUsedPrefix) {
      int64_t ts = 0;
      if (it->value().size() == 8) std::memcpy(&ts, it->value().data(), 8);
      out->ApplyLastUsed(std::string(key.substr(1)), ts);
      continue;
    }
    out->Apply(key, DecodeCounters(std::string_view(it->value().data(), it->value().size())));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading counters");
  return Status::Ok();
}

Status FeedbackStore::Open() {
  std::string seq;
  rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), cf_.meta, kSeqKey, &seq);
  if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the event sequence");
  if (got.ok()) {
    char* end = nullptr;
    errno = 0;
    next_seq_ = std::strtoull(seq.c_str(), &end, 10);
    if (seq.empty() || errno != 0 || end != seq.c_str() + seq.size()) {
      return Status::Corruption("stored event sequence '" + seq + "' is not a number");
    }
  }
  std::string marker;
  const auto start = std::chrono::steady_clock::now();
  got = db_->Get(rocksdb::ReadOptions(), cf_.meta, kReaggregatingKey, &marker);
  if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading the re-aggregation marker");
  if (got.ok()) {
    // A re-aggregation stopped while writing: its counters are partial. Redo
    // it from the log before anything is served.
    auto redone = Reaggregate(true, nullptr);
    if (!redone.ok()) return redone.status();
    open_warning_ = true;
    open_note_ = "an interrupted re-aggregation was finished: " + std::to_string(redone.value().events) +
                 " events replayed, " + std::to_string(redone.value().keys) + " aggregates written in " +
                 std::to_string(redone.value().ms) + " ms";
  } else if (Status s = LoadDerived(derived_.get()); !s.ok()) {
    return s;
  } else {
    open_note_ = "aggregates loaded in " +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start).count()) +
                 " ms";
  }
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

void FeedbackStore::Close() {
  closing_ = true;
  {
    // A re-aggregation still reading the log gives up; one writing finishes.
    std::unique_lock<std::mutex> lock(reaggregate_mu_);
    reaggregate_cv_.wait(lock, [&] { return !reaggregating_; });
  }
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

Result<RecordResult> FeedbackStore::Record(std::vector<Event> events) {
  Pending p;
  p.events = std::move(events);
  auto done = p.done.get_future();
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (stopping_) return Status::IOError("the feedback store is closed");
    queue_.push_back(&p);
  }
  queue_cv_.notify_one();
  return done.get();
}

void FeedbackStore::WriterLoop() {
  while (true) {
    std::vector<Pending*> group;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      group.assign(queue_.begin(), queue_.end());
      queue_.clear();
    }
    std::lock_guard<std::mutex> lock(writer_mu_);
    WriteGroup(group);
    ++groups_written_;
  }
}

// One synced WriteBatch for every call in the group: the events, their ids,
// the touched leads, and the counter deltas (merges). Reads see the database
// plus what this group already wrote (the overlays).
void FeedbackStore::WriteGroup(std::vector<Pending*>& group) {
  rocksdb::WriteBatch batch;
  std::vector<RecordResult> results(group.size());
  std::unordered_set<std::string> ids_in_group;
  std::unordered_map<std::string, LeadState> leads;                  // overlay
  std::unordered_map<std::string, std::vector<Event>> lead_events;  // overlay
  Deltas deltas;
  // Nothing is written when a read fails: every call of the group gets the error.
  auto fail = [&](const Status& error) {
    for (Pending* p : group) p->done.set_value(error);
  };
  Status history_error;

  // One MultiGet each for the group's event ids and leads, rather than two
  // point lookups per event in the writer's loop.
  std::unordered_set<std::string> known_ids;
  {
    std::vector<std::string> ids, lead_ids;
    std::unordered_set<std::string> lead_set;
    for (Pending* p : group) {
      for (const Event& e : p->events) {
        ids.push_back(e.event_id);
        if (lead_set.insert(e.lead_id).second) lead_ids.push_back(e.lead_id);
      }
    }
    std::vector<rocksdb::Slice> keys(ids.begin(), ids.end());
    std::vector<std::string> values;
    auto got = db_->MultiGet(rocksdb::ReadOptions(), std::vector<rocksdb::ColumnFamilyHandle*>(keys.size(), cf_.event_ids),
                             keys, &values);
    for (size_t i = 0; i < ids.size(); ++i) {
      // An id that cannot be read is neither new nor a duplicate: the group fails.
      if (!got[i].ok() && !got[i].IsNotFound()) {
        return fail(FromRocks(got[i], "reading event id '" + ids[i] + "'"));
      }
      if (got[i].ok()) known_ids.insert(ids[i]);
    }
    std::vector<rocksdb::Slice> lead_keys(lead_ids.begin(), lead_ids.end());
    values.clear();
    got = db_->MultiGet(rocksdb::ReadOptions(), std::vector<rocksdb::ColumnFamilyHandle*>(lead_keys.size(), cf_.leads),
                        lead_keys, &values);
    for (size_t i = 0; i < lead_ids.size(); ++i) {
      LeadState st;
      if (!got[i].ok() && !got[i].IsNotFound()) {
        return fail(FromRocks(got[i], "reading lead '" + lead_ids[i] + "'"));
      }
      if (got[i].ok()) (void)DecodeLeadState(values[i], &st);
      leads.emplace(lead_ids[i], std::move(st));
    }
  }

  for (size_t g = 0; g < group.size(); ++g) {
    for (Event& e : group[g]->events) {
      if (!ids_in_group.insert(e.event_id).second || known_ids.count(e.event_id)) {
        results[g].duplicates++;
        continue;
      }
      LeadState& lead = leads[e.lead_id];
      if (!lead.known && e.type != EventType::kShown) results[g].unknown_leads++;
      lead.known = true;
      if (!e.asset_id.empty() && !asset_known_(e.asset_id)) results[g].unknown_assets++;
      // The lead's earlier events: the stored ones and those this group
      // already processed, by ts and then arrival (as re-aggregation sees them).
      auto history = [&] {
        auto stored = LeadEvents(e.lead_id);
        if (!stored.ok()) {
          if (history_error.ok()) history_error = stored.status();
          return std::vector<Event>();
        }
        std::vector<Event> events = std::move(stored).value();
        const auto& pending = lead_events[e.lead_id];
        events.insert(events.end(), pending.begin(), pending.end());
        std::stable_sort(events.begin(), events.end(), [](const Event& x, const Event& y) { return x.ts < y.ts; });
        return events;
      };
      tally_.Apply(e, lead, history, &deltas);
      std::string key = LeadPrefix(e.lead_id);
      PutBE64(&key, uint64_t(e.ts));
      PutBE64(&key, next_seq_++);
      batch.Put(cf_.events, key, EncodeEvent(e));
      batch.Put(cf_.event_ids, e.event_id, key);
      lead_events[e.lead_id].push_back(e);
      results[g].accepted++;
    }
  }
  if (!history_error.ok()) return fail(history_error);
  for (const auto& [id, st] : leads) batch.Put(cf_.leads, id, EncodeLeadState(st));
  for (const auto& [key, c] : deltas.counters) batch.Merge(cf_.stats, key, EncodeCounters(c));
  {
    std::shared_lock lock(stats_mu_);
    for (auto& [asset, ts] : deltas.last_used) {
      auto it = derived_->last_used().find(asset);
      if (it != derived_->last_used().end()) ts = std::max(ts, it->second);
      batch.Put(cf_.stats, LastUsedKey(asset), std::string(reinterpret_cast<const char*>(&ts), 8));
    }
  }
  batch.Put(cf_.meta, kSeqKey, std::to_string(next_seq_));

  rocksdb::WriteOptions wo;
  wo.sync = true;  // acknowledged means durable
  if (Status ready = storage_->BeforeWrite(); !ready.ok()) return fail(ready);
  if (Status w = storage_->AfterWrite(batch.Count() > 0 ? db_->Write(wo, &batch) : rocksdb::Status::OK(), "writing events");
      !w.ok()) {
    return fail(w);
  }
  if (touched_leads_) {
    for (const auto& [lead, events] : lead_events) touched_leads_->insert(lead);
  }
  {
    std::unique_lock lock(stats_mu_);
    for (const auto& [key, c] : deltas.counters) derived_->Apply(key, c);
    for (const auto& [asset, ts] : deltas.last_used) derived_->ApplyLastUsed(asset, ts);
  }
  for (size_t g = 0; g < group.size(); ++g) group[g]->done.set_value(results[g]);
}

// ---------------------------------------------------------------------------
// Re-aggregation

void FeedbackStore::ReplayLead(std::vector<std::pair<uint64_t, Event>> events, Derived* out, int sign) const {
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  LeadState lead;
  Deltas deltas;
  std::vector<std::pair<uint64_t, Event>> seen;  // by (ts, seq), as the live writer reads the history
  for (auto& [seq, e] : events) {
    auto history = [&] {
      std::vector<Event> h;
      h.reserve(seen.size());
      for (const auto& [s, x] : seen) h.push_back(x);
      return h;
    };
    tally_.Apply(e, lead, history, &deltas);
    auto at = std::upper_bound(seen.begin(), seen.end(), std::make_pair(e.ts, seq), [](const auto& k, const auto& x) {
      return k < std::make_pair(x.second.ts, x.first);
    });
    seen.emplace(at, seq, e);
  }
  for (auto& [key, c] : deltas.counters) {
    if (sign < 0) {
      for (int64_t& v : c) v = -v;
    }
    out->Apply(key, c);
  }
  if (sign > 0) {
    for (const auto& [asset, ts] : deltas.last_used) out->ApplyLastUsed(asset, ts);
  }
}

namespace {

// The lead and the arrival sequence of an events-CF key (lead \0 ts seq).
bool SplitEventKey(const rocksdb::Slice& key, std::string_view* lead, uint64_t* seq) {
  if (key.size() < 17 || key[key.size() - 17] != '\0') return false;
  *lead = std::string_view(key.data(), key.size() - 17);
  *seq = 0;
  for (size_t i = key.size() - 8; i < key.size(); ++i) *seq = (*seq << 8) | uint8_t(key[i]);
  return true;
}

}  // namespace

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

Status FeedbackStore::LeadLog(const std::string& lead_id, const rocksdb::Snapshot* snapshot,
                              std::vector<std::pair<uint64_t, Event>>* log) const {
  std::vector<std::pair<uint64_t, Event>>& out = *log;
  const std::string prefix = LeadPrefix(lead_id);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf_.events));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view lead;
    uint64_t seq;
    Event e;
    if (SplitEventKey(it->key(), &lead, &seq) && lead == lead_id &&
        DecodeEvent(std::string_view(it->value().data(), it->value().size()), &e)) {
      out.emplace_back(seq, std::move(e));
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the events of lead '" + lead_id + "'");
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

// ---------------------------------------------------------------------------
// Reads

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
  std::string_view in(v);
  if (known) (void)GetStr(&in, &lead.stage);
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
                                            const std::string_view* assets, size_t n, AssetStageStats* at_stage,
                                            AssetStageStats* at_topic) const {
  std::shared_lock lock(stats_mu_);
  derived_->RankingStats(stage, topic, assets, n, at_stage, at_topic);
  return derived_->StageTotals(stage);
}

}  // namespace playbook

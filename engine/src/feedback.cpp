#include "feedback.h"

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <unordered_set>

namespace playbook {

int64_t NowMs();  // engine.cpp

namespace {

constexpr int kCounters = 8;  // shown used viewed dismissed won lost advanced won_amount(cents)
constexpr const char* kSeqKey = "meta/event_seq";
constexpr uint8_t kEventFormat = 2;  // 2 added the topic; 1 is still read

using Counters = std::array<int64_t, kCounters>;

std::string EncodeCounters(const Counters& c) { return std::string(reinterpret_cast<const char*>(c.data()), sizeof(Counters)); }

Counters DecodeCounters(const rocksdb::Slice& s) {
  Counters c{};
  if (s.size() == sizeof(Counters)) std::memcpy(c.data(), s.data(), sizeof(Counters));
  return c;
}

class CounterMerge : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    Counters a = existing ? DecodeCounters(*existing) : Counters{};
    const Counters b = DecodeCounters(value);
    for (int i = 0; i < kCounters; ++i) a[size_t(i)] += b[size_t(i)];
    *new_value = EncodeCounters(a);
    return true;
  }
  const char* Name() const override { return "playbook.counters.v1"; }
};

void Add(AssetStageStats* s, const Counters& c) {
  s->shown += uint64_t(c[0]);
  s->used += uint64_t(c[1]);
  s->viewed += uint64_t(c[2]);
  s->dismissed += uint64_t(c[3]);
  s->won += uint64_t(c[4]);
  s->lost += uint64_t(c[5]);
  s->advanced += uint64_t(c[6]);
  s->won_amount += double(c[7]) / 100.0;
}

AssetStageStats ToStats(const Counters& c) {
  AssetStageStats s;
  Add(&s, c);
  return s;
}

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

// asset \0 stage, or asset \0 stage \0 topic.
std::string StatsKey(const std::string& asset, const std::string& stage, const std::string& topic = "") {
  std::string k = asset;
  k.push_back('\0');
  k += stage;
  if (!topic.empty()) {
    k.push_back('\0');
    k += topic;
  }
  return k;
}

// The stage of a two-part key; "" for a topic key (not part of stage totals).
std::string StageOfKey(const std::string& key) {
  const size_t a = key.find('\0');
  if (a == std::string::npos || key.find('\0', a + 1) != std::string::npos) return "";
  return key.substr(a + 1);
}

// Aggregate and last-used keys share the stats column family; asset ids
// cannot start with these bytes.
constexpr char kAggregatePrefix = '\x01';
constexpr char kLastUsedPrefix = '\x02';
constexpr char kDismissalPrefix = '\x03';
constexpr char kFunnelPrefix = '\x04';

// Funnel counters per day and stage, split by whether content was used at
// the stage: [0] entered, [1] advanced, [2] won, [3] lost.
std::string FunnelKey(uint32_t day, const std::string& stage, bool with_content) {
  std::string k(1, kFunnelPrefix);
  for (int i = 3; i >= 0; --i) k.push_back(char((day >> (8 * i)) & 0xff));
  k += stage;
  k.push_back('\0');
  k.push_back(with_content ? '1' : '0');
  return k;
}
const std::string kAllReps;

uint32_t DayOf(int64_t ms) { return uint32_t(std::max<int64_t>(0, ms) / 86400000); }

std::string AggregateKey(uint32_t day, const std::string& stage, const std::string& rep, const std::string& asset) {
  std::string k(1, kAggregatePrefix);
  for (int i = 3; i >= 0; --i) k.push_back(char((day >> (8 * i)) & 0xff));
  k += stage;
  k.push_back('\0');
  k += rep;
  k.push_back('\0');
  k += asset;
  return k;
}

std::string LastUsedKey(const std::string& asset) { return std::string(1, kLastUsedPrefix) + asset; }

// A dismissal reason as reported: trimmed, "(no reason)" when empty.
std::string ReasonOf(const std::string& reason) {
  const size_t a = reason.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "(no reason)";
  const size_t b = reason.find_last_not_of(" \t\r\n");
  return reason.substr(a, b - a + 1);
}

std::string DismissalKey(uint32_t day, const std::string& stage, const std::string& asset, const std::string& reason) {
  std::string k(1, kDismissalPrefix);
  for (int i = 3; i >= 0; --i) k.push_back(char((day >> (8 * i)) & 0xff));
  k += stage;
  k.push_back('\0');
  k += asset;
  k.push_back('\0');
  k += ReasonOf(reason);
  return k;
}

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
    if (!std::isfinite(e.amount) || e.amount < 0) return Status::InvalidArgument(at + "amount", "must be a number >= 0");
    if (e.amount != 0 && e.type != EventType::kWon) return Status::InvalidArgument(at + "amount", "only for won");
    if (e.reason.size() > 1000) return Status::InvalidArgument(at + "reason", "longer than 1000 bytes");
    if (!e.reason.empty() && e.type != EventType::kDismissed) return Status::InvalidArgument(at + "reason", "only for dismissed");
    if (e.ts < 0 || e.ts > now + 24 * 3600 * 1000LL) return Status::InvalidArgument(at + "ts", "must be ms since the epoch, not in the future");
    if (e.ts == 0) e.ts = now;
  }
  return Status::Ok();
}

FeedbackStore::FeedbackStore(rocksdb::DB* db, FeedbackColumns cfs, const EngineOptions& options,
                             std::function<bool(const std::string&)> asset_known)
    : db_(db), cf_(cfs), options_(options), asset_known_(std::move(asset_known)) {}

FeedbackStore::~FeedbackStore() { Close(); }

Status FeedbackStore::Open() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_.stats));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string key = it->key().ToString();
    if (!key.empty() && (key[0] == kAggregatePrefix || key[0] == kDismissalPrefix || key[0] == kFunnelPrefix)) {
      AddAggregate(key, DecodeCounters(it->value()));
      continue;
    }
    if (!key.empty() && key[0] == kLastUsedPrefix) {
      int64_t ts = 0;
      if (it->value().size() == 8) std::memcpy(&ts, it->value().data(), 8);
      last_used_[key.substr(1)] = ts;
      continue;
    }
    const size_t nul = key.find('\0');
    if (nul == std::string::npos) continue;
    const Counters c = DecodeCounters(it->value());
    stats_[key] = ToStats(c);
    if (const std::string stage = StageOfKey(key); !stage.empty()) Add(&stage_totals_[stage], c);
  }
  if (!it->status().ok()) return Status::IOError("reading counters: " + it->status().ToString());
  std::string seq;
  if (db_->Get(rocksdb::ReadOptions(), cf_.meta, kSeqKey, &seq).ok()) next_seq_ = std::stoull(seq);
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

void FeedbackStore::Close() {
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
    WriteGroup(group);
  }
}

int FeedbackStore::StageIndex(const std::string& stage) const {
  auto it = std::find(options_.stages.begin(), options_.stages.end(), stage);
  return it == options_.stages.end() ? -1 : int(it - options_.stages.begin());
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
  std::unordered_map<std::string, Counters> deltas;                 // asset \0 stage
  const int64_t window_ms = int64_t(options_.attribution_window_days) * 24 * 3600 * 1000;

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
      if (got[i].ok()) known_ids.insert(ids[i]);
    }
    std::vector<rocksdb::Slice> lead_keys(lead_ids.begin(), lead_ids.end());
    values.clear();
    got = db_->MultiGet(rocksdb::ReadOptions(), std::vector<rocksdb::ColumnFamilyHandle*>(lead_keys.size(), cf_.leads),
                        lead_keys, &values);
    for (size_t i = 0; i < lead_ids.size(); ++i) {
      LeadState st;
      if (got[i].ok()) {
        std::string_view in(values[i]);
        int64_t since = 0;
        if (GetStr(&in, &st.stage) && in.size() >= 8) std::memcpy(&since, in.data(), 8);
        in.remove_prefix(std::min<size_t>(8, in.size()));
        if (!in.empty()) (void)GetStr(&in, &st.topic);
        st.stage_since = since;
        st.known = true;
      }
      leads.emplace(lead_ids[i], std::move(st));
    }
  }
  auto lead_state = [&](const std::string& id) -> LeadState& { return leads[id]; };
  // A lead's events so far, in recorded order: the stored ones (one prefix
  // scan) and those this group already processed.
  auto history = [&](const std::string& lead) {
    std::vector<Event> events = LeadEvents(lead);
    const auto& pending = lead_events[lead];
    events.insert(events.end(), pending.begin(), pending.end());
    return events;
  };
  auto used_between = [](const std::vector<Event>& events, int64_t from, int64_t to) {
    std::vector<Event> used;
    for (const Event& e : events) {
      if (e.type == EventType::kUsed && e.ts >= from && e.ts <= to) used.push_back(e);
    }
    return used;
  };
  // The uses after the lead's last stage change, in recorded order (a call's
  // events share their default ts, so order, not ts, decides).
  auto used_since_change = [](const std::vector<Event>& events) {
    std::vector<Event> used;
    for (const Event& e : events) {
      if (e.type == EventType::kStageChanged) used.clear();
      if (e.type == EventType::kUsed) used.push_back(e);
    }
    return used;
  };
  // Credits field `f` once per distinct asset among `used`, at its stage of
  // use, and at its stage and topic.
  // Report aggregates: by UTC day of `ts`, stage, rep ("" = all reps) and asset.
  std::unordered_map<std::string, Counters> agg_deltas;
  std::unordered_map<std::string, int64_t> last_used;
  auto agg = [&](int64_t ts, const std::string& stage, const std::string& rep, const std::string& asset, int f,
                 int64_t cents) {
    for (const std::string* r : {&kAllReps, &rep}) {
      Counters& c = agg_deltas[AggregateKey(DayOf(ts), stage, *r, asset)];
      c[size_t(f)] += 1;
      c[7] += cents;
      if (rep.empty()) break;
    }
  };
  auto credit = [&](const std::vector<Event>& used, int f, int64_t amount_cents, int64_t outcome_ts) {
    std::set<std::pair<std::string, std::string>> once;
    for (const Event& u : used) {
      if (!once.insert({u.asset_id, u.stage}).second) continue;
      agg(outcome_ts, u.stage, u.rep_id, u.asset_id, f, amount_cents);
      std::vector<std::string> keys = {StatsKey(u.asset_id, u.stage)};
      if (!u.topic.empty()) keys.push_back(StatsKey(u.asset_id, u.stage, u.topic));
      for (const std::string& key : keys) {
        Counters& c = deltas[key];
        c[size_t(f)] += 1;
        if (amount_cents) c[7] += amount_cents;
      }
    }
  };
  // Adds 1 to field `f` of the asset at the stage, and at the stage and topic.
  auto count = [&](const Event& e, int f) {
    agg(e.ts, e.stage, e.rep_id, e.asset_id, f, 0);
    if (e.type == EventType::kDismissed) agg_deltas[DismissalKey(DayOf(e.ts), e.stage, e.asset_id, e.reason)][0] += 1;
    if (f == 1) last_used[e.asset_id] = std::max(last_used[e.asset_id], e.ts);
    deltas[StatsKey(e.asset_id, e.stage)][size_t(f)] += 1;
    if (!e.topic.empty()) deltas[StatsKey(e.asset_id, e.stage, e.topic)][size_t(f)] += 1;
  };

  for (size_t g = 0; g < group.size(); ++g) {
    for (Event& e : group[g]->events) {
      if (!ids_in_group.insert(e.event_id).second || known_ids.count(e.event_id)) {
        results[g].duplicates++;
        continue;
      }
      LeadState& lead = lead_state(e.lead_id);
      if (!lead.known && e.type != EventType::kShown) results[g].unknown_leads++;
      lead.known = true;
      if (!e.asset_id.empty() && !asset_known_(e.asset_id)) results[g].unknown_assets++;
      switch (e.type) {
        case EventType::kShown:
          if (lead.stage != e.stage) {  // the CRM states the lead's stage when it asks
            lead.stage = e.stage;
            lead.stage_since = e.ts;
          }
          lead.topic = e.topic;
          count(e, 0);
          break;
        case EventType::kUsed:
        case EventType::kViewed:
        case EventType::kDismissed:
          e.stage = lead.stage;
          e.topic = lead.topic;
          count(e, e.type == EventType::kUsed ? 1 : e.type == EventType::kViewed ? 2 : 3);
          break;
        case EventType::kStageChanged: {
          const int from = StageIndex(lead.stage), to = StageIndex(e.stage);
          const std::vector<Event> used = used_since_change(history(e.lead_id));
          if (from >= 0 && to > from) {
            credit(used, 6, 0, e.ts);
            agg_deltas[FunnelKey(DayOf(e.ts), lead.stage, !used.empty())][1] += 1;
          }
          if (from != to) agg_deltas[FunnelKey(DayOf(e.ts), e.stage, false)][0] += 1;
          lead.stage = e.stage;
          lead.stage_since = e.ts;
          break;
        }
        case EventType::kWon:
        case EventType::kLost:
          const std::vector<Event> events = history(e.lead_id);
          if (!lead.stage.empty()) {
            agg_deltas[FunnelKey(DayOf(e.ts), lead.stage, !used_since_change(events).empty())]
                      [e.type == EventType::kWon ? 2 : 3] += 1;
          }
          if (e.type == EventType::kWon) {
            const int64_t cents = int64_t(std::llround(e.amount * 100));
            credit(used_between(events, e.ts - window_ms, e.ts), 4, cents, e.ts);
            agg(e.ts, "", e.rep_id, "", 4, cents);  // the lead itself closed: the baseline of lift
          } else {
            credit(used_between(events, e.ts - window_ms, e.ts), 5, 0, e.ts);
            agg(e.ts, "", e.rep_id, "", 5, 0);
          }
          if (e.stage.empty()) e.stage = lead.stage;
          break;
      }
      std::string key = LeadPrefix(e.lead_id);
      PutBE64(&key, uint64_t(e.ts));
      PutBE64(&key, next_seq_++);
      batch.Put(cf_.events, key, EncodeEvent(e));
      batch.Put(cf_.event_ids, e.event_id, key);
      lead_events[e.lead_id].push_back(e);
      results[g].accepted++;
    }
  }
  for (const auto& [id, st] : leads) {
    std::string v;
    PutStr(&v, st.stage);
    v.append(reinterpret_cast<const char*>(&st.stage_since), 8);
    PutStr(&v, st.topic);
    batch.Put(cf_.leads, id, v);
  }
  for (const auto& [key, c] : deltas) batch.Merge(cf_.stats, key, EncodeCounters(c));
  for (const auto& [key, c] : agg_deltas) batch.Merge(cf_.stats, key, EncodeCounters(c));
  {
    std::shared_lock lock(stats_mu_);
    for (auto& [asset, ts] : last_used) {
      auto it = last_used_.find(asset);
      if (it != last_used_.end()) ts = std::max(ts, it->second);
      batch.Put(cf_.stats, LastUsedKey(asset), std::string(reinterpret_cast<const char*>(&ts), 8));
    }
  }
  batch.Put(cf_.meta, kSeqKey, std::to_string(next_seq_));

  rocksdb::WriteOptions wo;
  wo.sync = true;  // acknowledged means durable
  rocksdb::Status s = batch.Count() > 0 ? db_->Write(wo, &batch) : rocksdb::Status::OK();
  if (!s.ok()) {
    for (Pending* p : group) p->done.set_value(Status::IOError("writing events: " + s.ToString()));
    return;
  }
  {
    std::unique_lock lock(stats_mu_);
    for (const auto& [key, c] : deltas) {
      Add(&stats_[key], c);
      if (const std::string stage = StageOfKey(key); !stage.empty()) Add(&stage_totals_[stage], c);
    }
    for (const auto& [key, c] : agg_deltas) AddAggregate(key, c);
    for (const auto& [asset, ts] : last_used) last_used_[asset] = ts;
  }
  for (size_t g = 0; g < group.size(); ++g) group[g]->done.set_value(results[g]);
}

// REQUIRES: stats_mu_ held exclusively (or during Open).
void FeedbackStore::AddAggregate(const std::string& key, const std::array<int64_t, 8>& c) {
  if (key.size() < 5) return;
  uint32_t day = 0;
  for (int i = 1; i <= 4; ++i) day = (day << 8) | uint8_t(key[size_t(i)]);
  if (key[0] == kDismissalPrefix) {
    dismissals_[day][key.substr(5)] += c[0];
    return;
  }
  if (key[0] == kFunnelPrefix) {
    auto& slot = funnel_[day][key.substr(5)];
    for (size_t i = 0; i < 4; ++i) slot[i] += c[i];
    return;
  }
  auto& slot = aggregates_[day][key.substr(5)];
  for (size_t i = 0; i < c.size(); ++i) slot[i] += c[i];
}

FeedbackStore::AggregateSums FeedbackStore::Aggregate(int64_t from_ms, int64_t to_ms, const std::string& stage,
                                                      const std::string& rep) const {
  AggregateSums out;
  const uint32_t first = DayOf(from_ms), last = DayOf(to_ms);
  std::shared_lock lock(stats_mu_);
  for (auto d = aggregates_.lower_bound(first); d != aggregates_.end() && d->first <= last; ++d) {
    for (const auto& [rest, c] : d->second) {
      const size_t a = rest.find('\0'), b = rest.find('\0', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      const std::string_view s(rest.data(), a), r(rest.data() + a + 1, b - a - 1), asset(rest.data() + b + 1);
      if (asset.empty()) {  // a lead closed: the baseline, whatever the filters
        if (s.empty() && r.empty()) {
          out.leads_won += uint64_t(c[4]);
          out.leads_lost += uint64_t(c[5]);
          out.won_amount += double(c[7]) / 100.0;
        }
        continue;
      }
      if (r != rep) continue;  // rep "" is the all-reps row
      if (!stage.empty() && s != stage) continue;
      Add(&out.by_asset[std::string(asset)], c);
    }
  }
  for (const auto& [asset, sum] : out.by_asset) {
    auto it = last_used_.find(asset);
    if (it != last_used_.end()) out.last_used[asset] = it->second;
  }
  return out;
}

std::map<std::string, std::array<int64_t, 8>> FeedbackStore::Funnel(int64_t from_ms, int64_t to_ms) const {
  std::map<std::string, std::array<int64_t, 8>> out;  // stage \0 with -> [entered, advanced, won, lost]
  std::shared_lock lock(stats_mu_);
  for (auto d = funnel_.lower_bound(DayOf(from_ms)); d != funnel_.end() && d->first <= DayOf(to_ms); ++d) {
    for (const auto& [rest, c] : d->second) {
      auto& sum = out[rest];
      for (size_t i = 0; i < 4; ++i) sum[i] += c[i];
    }
  }
  return out;
}

std::map<std::string, AssetStageStats> FeedbackStore::Reps(
    int64_t from_ms, int64_t to_ms, std::map<std::string, std::pair<uint64_t, uint64_t>>* closed) const {
  std::map<std::string, AssetStageStats> out;
  std::shared_lock lock(stats_mu_);
  for (auto d = aggregates_.lower_bound(DayOf(from_ms)); d != aggregates_.end() && d->first <= DayOf(to_ms); ++d) {
    for (const auto& [rest, c] : d->second) {
      const size_t a = rest.find('\0'), b = rest.find('\0', a + 1);
      if (a == std::string::npos || b == std::string::npos || b == a + 1) continue;  // all-reps rows
      const std::string rep = rest.substr(a + 1, b - a - 1);
      if (b + 1 == rest.size()) {  // a lead this rep closed
        (*closed)[rep].first += uint64_t(c[4]);
        (*closed)[rep].second += uint64_t(c[5]);
        continue;
      }
      Add(&out[rep], c);
    }
  }
  return out;
}

std::map<std::pair<std::string, std::string>, uint64_t> FeedbackStore::Dismissals(int64_t from_ms, int64_t to_ms,
                                                                                const std::string& stage) const {
  std::map<std::pair<std::string, std::string>, uint64_t> out;  // (asset, reason) -> count
  std::shared_lock lock(stats_mu_);
  for (auto d = dismissals_.lower_bound(DayOf(from_ms)); d != dismissals_.end() && d->first <= DayOf(to_ms); ++d) {
    for (const auto& [rest, n] : d->second) {
      const size_t a = rest.find('\0'), b = rest.find('\0', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      if (!stage.empty() && rest.compare(0, a, stage) != 0) continue;
      out[{rest.substr(a + 1, b - a - 1), rest.substr(b + 1)}] += uint64_t(n);
    }
  }
  return out;
}

std::vector<Event> FeedbackStore::LeadEvents(const std::string& lead_id) const {
  std::vector<Event> out;
  const std::string prefix = LeadPrefix(lead_id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf_.events));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    Event e;
    if (DecodeEvent(std::string_view(it->value().data(), it->value().size()), &e)) out.push_back(std::move(e));
  }
  return out;
}

Result<Lead> FeedbackStore::GetLead(const std::string& lead_id) const {
  Lead lead;
  lead.id = lead_id;
  lead.history = LeadEvents(lead_id);
  std::string v;
  const bool known = db_->Get(rocksdb::ReadOptions(), cf_.leads, lead_id, &v).ok();
  if (!known && lead.history.empty()) return Status::NotFound("no lead '" + lead_id + "'");
  std::string_view in(v);
  if (known) (void)GetStr(&in, &lead.stage);
  return lead;
}

AssetStageStats FeedbackStore::Stats(const std::string& asset_id, const std::string& stage,
                                     const std::string& topic) const {
  std::shared_lock lock(stats_mu_);
  auto it = stats_.find(StatsKey(asset_id, stage, topic));
  return it == stats_.end() ? AssetStageStats{} : it->second;
}

AssetStageStats FeedbackStore::StageTotals(const std::string& stage) const {
  std::shared_lock lock(stats_mu_);
  auto it = stage_totals_.find(stage);
  return it == stage_totals_.end() ? AssetStageStats{} : it->second;
}

}  // namespace playbook

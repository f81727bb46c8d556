// The engine's stored-record decoders on arbitrary bytes: what RocksDB hands
// back is trusted by nothing. The first byte picks the record kind:
//   0 asset (codec.h; formats 1, 2)  1 vector (codec.h, dimension from the next byte)
//   2 event or run of shown events (codec.h)        3 lead state (codec.h; every format)
//   4 stats counters: a sequence of (key, counters) records of the "stats"
//     column family, applied to a Derived as FeedbackStore::Open loads them,
//     then summed and enumerated as the reports and re-aggregation do.
//   5 an "event_seqs" record (feedback.h): 8 bytes of key, then the value.
//   6 the counters' checkpoint (checkpoint.cpp), decoded as a start reads it,
//     then read and encoded again; kind 4 also round-trips its counters
//     through a checkpoint.
// A record that decodes must encode back to an equal record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "codec.h"
#include "derived.h"
#include "feedback.h"

namespace pb = playbook;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool SameAsset(const pb::Asset& a, const pb::Asset& b) {
  return a.id == b.id && a.title == b.title && a.body == b.body && a.url == b.url && a.language == b.language &&
         a.type == b.type && a.stages == b.stages && a.tags == b.tags && a.active == b.active &&
         a.vector_supplied == b.vector_supplied && a.deleted == b.deleted && a.embedder == b.embedder &&
         a.created_ms == b.created_ms && a.updated_ms == b.updated_ms && a.variant_of == b.variant_of;
}

// Any format decodes to a record that the current format (2: variant_of)
// encodes and decodes back equal; a format-1 record re-encodes as 2.
void Asset(std::string_view in) {
  pb::Asset a;
  if (!pb::DecodeAsset(in, &a).ok()) return;
  const std::string out = pb::EncodeAsset(a);
  Check(uint8_t(out[0]) == pb::kAssetFormat);
  pb::Asset again;
  Check(pb::DecodeAsset(out, &again).ok() && SameAsset(a, again) && pb::EncodeAsset(again) == out);
}

void Vector(std::string_view in) {
  if (in.empty()) return;
  const uint32_t dim = uint8_t(in[0]);
  in.remove_prefix(1);
  std::vector<float> v;
  if (!pb::DecodeVector(in, dim, &v).ok()) return;
  Check(v.size() == dim && pb::EncodeVector(v.data(), dim) == in);
}

// A run of `shown` events (codec.h): decoded, it is a run again, and its
// encoding decodes to the same events and encodes to the same bytes.
void ShownRun(std::string_view in) {
  std::vector<pb::Event> events;
  if (!pb::DecodeEventRecord(in, &events).ok()) return;
  Check(!events.empty());
  if (uint8_t(in[0]) != pb::kShownRunFormat) return;
  std::vector<const pb::Event*> run;
  for (const pb::Event& e : events) run.push_back(&e);
  Check(pb::ShownRunFits(run.data(), run.size()));
  std::string out;
  pb::EncodeShownRunTo(run.data(), run.size(), &out);
  std::vector<pb::Event> again;
  Check(pb::DecodeEventRecord(out, &again).ok() && again.size() == events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    Check(pb::EncodeEvent(again[i]) == pb::EncodeEvent(events[i]) && again[i].same_terms == events[i].same_terms);
  }
  run.clear();
  for (const pb::Event& e : again) run.push_back(&e);
  std::string twice;
  pb::EncodeShownRunTo(run.data(), run.size(), &twice);
  Check(twice == out);
}

void Event(std::string_view in) {
  ShownRun(in);
  pb::Event e;
  if (!pb::DecodeEvent(in, &e)) return;
  (void)pb::EventTypeName(e.type);
  const std::string out = pb::EncodeEvent(e);
  if (uint8_t(in[0]) == pb::kEventFormat) Check(out == in);  // the current format is canonical
  pb::Event again;
  Check(pb::DecodeEvent(out, &again) && pb::EncodeEvent(again) == out);
}

bool SameLead(const pb::LeadState& a, const pb::LeadState& b) {
  return a.stage == b.stage && a.topic == b.topic && a.stage_since == b.stage_since && a.latest_ts == b.latest_ts &&
         a.window_ms == b.window_ms && a.since_change == b.since_change && a.window == b.window && a.seen == b.seen &&
         a.terms == b.terms && a.terms_credited == b.terms_credited;
}

void Lead(std::string_view in) {
  pb::LeadState st;
  if (!pb::DecodeLeadState(in, &st)) return;
  // A record of the first format decodes incomplete (to be rebuilt from the
  // log) and encodes in the current one; one of format 3 decodes complete
  // (no terms) and encodes as 4; the current format (4) is canonical.
  const std::string out = pb::EncodeLeadState(st);
  if (st.complete && uint8_t(in[4]) == pb::kLeadFormat) Check(out == in);
  pb::LeadState again;
  Check(pb::DecodeLeadState(out, &again) && again.complete && SameLead(st, again));
}

// A record of "event_seqs": the first 8 bytes its key. Each entry lies within
// the value, and the sequence numbers follow one another.
void SeqRecord(std::string_view in) {
  if (in.size() < 8) return;
  const rocksdb::Slice key(in.data(), 8), value(in.data() + 8, in.size() - 8);
  uint64_t expected = 0;
  bool first = true;
  size_t bytes = 0;
  const bool ok = pb::ForEachSeqEntry(key, value, [&](uint64_t seq, std::string_view entry) {
    Check(first || seq == expected);
    first = false;
    expected = seq + 1;
    Check(entry.data() >= value.data() && entry.data() + entry.size() <= value.data() + value.size());
    bytes += entry.size() + 2;
  });
  Check(!ok || bytes == value.size());
}

// Records of the "stats" column family, one after another: a flags byte (bit 0:
// a last-used value), a key (a length byte, then the key), then a last-used
// ts (8 bytes) or counters (a length byte, then the value).
struct StatsInput {
  std::string_view in;
  bool Byte(uint8_t* b) {
    if (in.empty()) return false;
    *b = uint8_t(in[0]);
    in.remove_prefix(1);
    return true;
  }
  bool Bytes(size_t n, std::string_view* out) {
    if (in.size() < n) return false;
    *out = in.substr(0, n);
    in.remove_prefix(n);
    return true;
  }
};

void Stats(std::string_view bytes) {
  pb::Derived d;
  StatsInput p{bytes};
  uint8_t flags, len;
  std::string_view key, value;
  while (p.Byte(&flags) && p.Byte(&len) && p.Bytes(len, &key)) {
    if (flags & 1) {
      if (!p.Bytes(8, &value)) break;
      int64_t ts;
      std::memcpy(&ts, value.data(), 8);
      d.ApplyLastUsed(std::string(key), ts);
    } else {
      if (!p.Byte(&len) || !p.Bytes(len, &value)) break;
      d.Apply(key, pb::DecodeCounters(value));
    }
  }
  // Every read the reports make, over every day there is.
  const uint32_t last = std::numeric_limits<uint32_t>::max();
  for (const std::string stage : {"", "awareness"}) {
    (void)d.SumAssets(0, last, stage, "");
    (void)d.SumDismissals(0, last, stage);
    (void)d.StageTotals(stage);
  }
  std::map<std::string, pb::AssetStageStats> reps;
  std::map<std::string, std::pair<uint64_t, uint64_t>> closed;
  d.SumReps(0, last, &reps, &closed);
  (void)d.SumFunnel(0, last);
  // The org's own words, as the ranking and reports.phrases read them.
  std::vector<pb::Derived::PhraseWeight> weights;
  for (const uint32_t today : {0u, 20000u, last}) {
    d.PhraseWeights({"心理", "pencil", ""}, today, 90, 3, &weights);
    for (const auto& w : weights) Check(w.term < 3);
    (void)d.SumPhrases(today, 0.5);
  }
  uint64_t keys = 0;
  pb::Derived copy;
  d.Enumerate([&](const std::string& key, const pb::Counters& c) { ++keys; copy.Apply(key, c); },
              [&](const std::string& asset, int64_t ts) { copy.ApplyLastUsed(asset, ts); });
  Check(keys == d.CountKeys());
  (void)d.CountDifferences(copy);
  // Through a checkpoint and back: the same counters.
  std::string checkpoint;
  d.EncodeCheckpoint(7, &checkpoint);
  pb::Derived back;
  uint64_t seq = 0;
  Check(back.DecodeCheckpoint(checkpoint, &seq).ok() && seq == 7);
  Check(d.CountDifferences(back) == 0 && back.CountKeys() == d.CountKeys());
}

void Checkpoint(std::string_view bytes) {
  pb::Derived d;
  uint64_t seq = 0;
  if (!d.DecodeCheckpoint(bytes, &seq).ok()) return;
  const uint32_t last = std::numeric_limits<uint32_t>::max();
  (void)d.SumAssets(0, last, "", "");
  (void)d.SumDismissals(0, last, "");
  std::map<std::string, pb::AssetStageStats> reps;
  std::map<std::string, std::pair<uint64_t, uint64_t>> closed;
  d.SumReps(0, last, &reps, &closed);
  (void)d.SumPhrases(20000, 0.5);
  std::string again;
  d.EncodeCheckpoint(seq, &again);
  pb::Derived back;
  uint64_t seq_back = 0;
  Check(back.DecodeCheckpoint(again, &seq_back).ok() && seq_back == seq && d.CountDifferences(back) == 0);
}

// With PLAYBOOK_RECORDS_FUZZ_SEEDS=DIR, writes the seed corpus (real records
// made by the engine's encoders) into DIR once, at start.
void WriteSeeds(const std::string& dir) {
  auto put = [&](const std::string& name, char kind, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << kind << bytes;
  };
  pb::Asset zh;
  zh.id = "zh-objection-think-01";
  zh.title = "客户说“我考虑一下”：用询问法找出真正原因";
  zh.body = "客户说要考虑一下，往往是某个细节没讲清楚。先用询问法把原因弄清楚。";
  zh.url = "https://example.com/zh/objection-scripts/think-it-over-01";
  zh.language = "zh";
  zh.type = "objection_script";
  zh.stages = {"consideration", "evaluation", "negotiation"};
  zh.tags = {"objection:think_it_over", "persona:owner"};
  zh.embedder = "lexical-v1";
  zh.created_ms = 1764633600000;
  zh.updated_ms = 1764720000000;
  std::string v1 = pb::EncodeAsset(zh);  // format 1: no variant_of (format 2 appends it)
  v1[0] = 1;
  v1.pop_back();  // the empty variant_of's length
  put("asset_zh_v1", 0, v1);
  zh.variant_of = "en-objection-think-01";
  put("asset_zh", 0, pb::EncodeAsset(zh));
  pb::Asset en;
  en.id = "en-case-logistics-02";
  en.title = "Case study: a logistics firm cut quoting time by 40%";
  en.language = "en";
  en.type = "case_study";
  en.stages = {"evaluation"};
  en.vector_supplied = true;
  en.deleted = true;
  put("asset_en_deleted", 0, pb::EncodeAsset(en));
  const float v[4] = {0.5f, -0.5f, 0.25f, 1e-3f};
  put("vector_4", 1, std::string(1, char(4)) + pb::EncodeVector(v, 4));
  pb::Event used;
  used.event_id = "evt-0001";
  used.type = pb::EventType::kUsed;
  used.lead_id = "lead-42";
  used.asset_id = zh.id;
  used.stage = "consideration";
  used.rep_id = "rep-wang";
  used.recommendation_id = "rec-7f3a";
  used.topic = "objection";
  used.ts = 1764720000000;
  put("event_used", 2, pb::EncodeEvent(used));
  pb::Event won = used;
  won.event_id = "evt-0002";
  won.type = pb::EventType::kWon;
  won.asset_id.clear();
  won.amount = 125000.5;
  put("event_won", 2, pb::EncodeEvent(won));
  pb::Event dismissed = used;
  dismissed.type = pb::EventType::kDismissed;
  dismissed.reason = "已经发过了";
  dismissed.topic.clear();
  // Older formats cut from the current one (no terms: its last 4 bytes are
  // the terms' count, 0).
  std::string e1 = pb::EncodeEvent(dismissed);  // format 1: no topic (and no arm, no terms)
  e1.resize(e1.size() - 4);
  e1[0] = 1;
  e1.erase(e1.size() - 17, 1);
  e1.erase(e1.size() - 20, 4);
  put("event_dismissed_v1", 2, e1);
  std::string v2 = pb::EncodeEvent(used);  // format 2: no arm
  v2.resize(v2.size() - 4);
  v2[0] = 2;
  v2.erase(v2.size() - 17, 1);
  put("event_used_v2", 2, v2);
  std::string v3 = pb::EncodeEvent(used);  // format 3: no terms
  v3.resize(v3.size() - 4);
  v3[0] = 3;
  put("event_used_v3", 2, v3);
  pb::Event shown = used;  // a recommend's first shown event with the context's terms
  shown.event_id = "rec-7f3a:" + zh.id;
  shown.type = pb::EventType::kShown;
  shown.terms = {"心理", "理价", "价位", "sharpen", "pencil"};
  put("event_shown_terms", 2, pb::EncodeEvent(shown));
  shown.terms.clear();  // format 5: a later shown event of the recommendation, its terms stored once
  shown.same_terms = true;
  put("event_shown_same_terms", 2, pb::EncodeEvent(shown));
  {  // a recommendation's shown events as one record: terms on the first, one id not "<rec>:<asset>"
    std::vector<pb::Event> run(3, shown);
    run[0].same_terms = false;
    run[1].asset_id = en.id;
    run[1].event_id = "rec-7f3a:" + en.id;
    run[2].asset_id = "zh-case-02";
    run[2].event_id = "evt-0009";
    std::vector<const pb::Event*> events = {&run[0], &run[1], &run[2]};
    run[0].terms = {"心理", "理价", "价位", "sharpen", "pencil"};
    std::string bytes;
    pb::EncodeShownRunTo(events.data(), events.size(), &bytes);
    put("event_shown_run", 2, bytes);
  }
  pb::Event holdout = used;
  holdout.event_id = "evt-0003";
  holdout.arm = pb::Arm::kHoldout;
  put("event_used_holdout", 2, pb::EncodeEvent(holdout));
  pb::LeadState lead;
  lead.stage = "negotiation";
  lead.topic = "pricing";
  lead.stage_since = 1764720000000;
  put("lead_v1", 3, std::string("\x0b\0\0\0negotiation", 15) + std::string(8, '\x01') + std::string("\x07\0\0\0pricing", 11));
  lead.latest_ts = 1764720000000;
  lead.window_ms = 90LL * 86400000;
  lead.since_change = {{zh.id, "negotiation", "rep-wang", "pricing", 1764710000000}};
  lead.window = {{zh.id, "evaluation", "rep-wang", "", 1764700000000}, lead.since_change[0]};
  lead.seen = {zh.id, en.id};
  std::string lead_v3 = pb::EncodeLeadState(lead);  // format 3: no terms (two empty lists cut)
  lead_v3.resize(lead_v3.size() - 8);
  lead_v3[4] = 3;
  put("lead_v3", 3, lead_v3);
  lead.terms = shown.terms;
  lead.terms_credited = {zh.id};
  put("lead_v4", 3, pb::EncodeLeadState(lead));
  std::string stats;
  auto counters = [&](const std::string& key, pb::Counters c) {
    stats += char(0);
    stats += char(key.size());
    stats += key;
    stats += char(sizeof(c));
    stats += pb::EncodeCounters(c);
  };
  const uint32_t day = pb::DayOf(1764720000000);
  counters(pb::StatsKey(zh.id, "consideration"), {10, 3, 2, 1, 1, 0, 1, 12500050});
  counters(pb::StatsKey(zh.id, "consideration", "objection"), {4, 1, 0, 0, 0, 0, 0, 0});
  counters(pb::AggregateKey(day, "consideration", "", zh.id), {10, 3, 2, 1, 1, 0, 1, 12500050});
  counters(pb::AggregateKey(day, "consideration", "rep-wang", zh.id), {10, 3, 2, 1, 1, 0, 1, 12500050});
  counters(pb::AggregateKey(day + 9, "negotiation", "rep-wang", ""), {0, 0, 0, 0, 1, 0, 0, 12500050});
  counters(pb::DismissalKey(day, "consideration", zh.id, "已经发过了"), {1, 0, 0, 0, 0, 0, 0, 0});
  counters(pb::FunnelKey(day, "consideration", true), {1, 1, 1, 0, 0, 0, 0, 0});
  counters(pb::PhraseKey(day - day % 7, "心理", zh.id), {3, 0, 0, 0, 0, 0, 0, 0});
  counters(pb::PhraseKey(day - day % 7 - 70, "pencil", zh.id), {2, 0, 0, 0, 0, 0, 0, 0});
  const std::string last_used = pb::LastUsedKey(zh.id);
  stats += char(1);
  stats += char(last_used.size());
  stats += last_used;
  stats.append(reinterpret_cast<const char*>(&used.ts), 8);
  put("stats", 4, stats);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool seeded = [] {
    if (const char* dir = std::getenv("PLAYBOOK_RECORDS_FUZZ_SEEDS")) WriteSeeds(dir);
    return true;
  }();
  (void)seeded;
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0: Asset(in); break;
    case 1: Vector(in); break;
    case 2: Event(in); break;
    case 3: Lead(in); break;
    case 4: Stats(in); break;
    case 5: SeqRecord(in); break;
    case 6: Checkpoint(in); break;
  }
  return 0;
}

// The feedback store's derived state: every counter computed from the event
// log, as stored in the "stats" column family (keys below) and as held in
// memory for the ranking and the reports. Private to engine/.
//
// Stats-CF keys (values: 8 little-endian int64 counters, merged by addition,
// except last-used which is one int64 put):
//   asset \0 stage [\0 topic]                 ranking counters
//   \x01 day(BE32) stage \0 rep \0 asset      report counters; rep "" = all
//                                             reps; asset "" = the lead closed
//   \x02 asset                                last use, ms
//   \x03 day stage \0 asset \0 reason         dismissals ([0])
//   \x04 day stage \0 '1'|'0'                 funnel: entered, advanced, won,
//                                             lost; '1' = content used
//   \x05 day arm \0 stage \0 rep              the experiment: leads assigned
//                                             that day to the arm ("treatment",
//                                             "holdout") at that stage by that
//                                             rep, and their outcomes
//                                             (ExperimentField)
//   \x06 day term \0 asset                     the org's own words: uses of
//                                             the asset after a context with
//                                             the term, in the week starting
//                                             on that day ([0])
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "playbook/engine/status.h"
#include "playbook/engine/types.h"

namespace playbook {

// shown used viewed dismissed won lost advanced won_amount(cents)
constexpr int kCounters = 8;
using Counters = std::array<int64_t, kCounters>;

std::string EncodeCounters(const Counters& c);
// Counter addition wraps modulo 2^64 instead of overflowing (undefined): stored
// counters are read back untrusted (signed overflow found by tests/fuzz).
inline int64_t WrapAdd(int64_t a, int64_t b) { return int64_t(uint64_t(a) + uint64_t(b)); }
Counters DecodeCounters(std::string_view s);
inline void Plus(Counters* a, const Counters& b) {
  for (size_t i = 0; i < a->size(); ++i) (*a)[i] = WrapAdd((*a)[i], b[i]);
}
void AddTo(AssetStageStats* s, const Counters& c);
bool IsZero(const Counters& c);

constexpr char kAggregatePrefix = '\x01';
constexpr char kLastUsedPrefix = '\x02';
constexpr char kDismissalPrefix = '\x03';
constexpr char kFunnelPrefix = '\x04';
constexpr char kExperimentPrefix = '\x05';
constexpr char kPhrasePrefix = '\x06';

// The experiment's counters: per assignment day, arm, stage and rep, the leads
// assigned, and of those the latest outcome since assignment: won, lost, won
// amount (cents), won amount squared (whole units), minutes from assignment
// to outcome and their squares.
enum ExperimentField { kExpLeads = 0, kExpWon, kExpLost, kExpCents, kExpAmountSq, kExpMinutes, kExpMinutesSq };

uint32_t DayOf(int64_t ms);
std::string StatsKey(const std::string& asset, const std::string& stage, const std::string& topic = "");
std::string AggregateKey(uint32_t day, std::string_view stage, std::string_view rep, std::string_view asset);
std::string DismissalKey(uint32_t day, std::string_view stage, std::string_view asset, std::string_view reason);
std::string FunnelKey(uint32_t day, std::string_view stage, bool with_content);
std::string LastUsedKey(const std::string& asset);
std::string ExperimentKey(uint32_t day, Arm arm, std::string_view stage, std::string_view rep);
std::string PhraseKey(uint32_t day, std::string_view term, std::string_view asset);
// A dismissal reason as reported: trimmed, "(no reason)" when empty.
std::string ReasonOf(const std::string& reason);

// Strings <-> dense ordinals, so that the cube below holds integers.
class Dictionary {
 public:
  uint32_t Intern(std::string_view s);
  void Reserve(size_t n) {
    ids_.reserve(n);
    names_.reserve(n);
  }
  // UINT32_MAX when absent.
  uint32_t Find(std::string_view s) const;
  const std::string& Name(uint32_t id) const { return names_[id]; }
  // For each id here, the id of the same string in `other` (UINT32_MAX: absent).
  std::vector<uint32_t> MapTo(const Dictionary& other) const;
  size_t size() const { return names_.size(); }
  const std::vector<std::string>& names() const { return names_; }

 private:
  struct Hash {
    using is_transparent = void;  // lookups by string_view allocate nothing
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> ids_;
  std::vector<std::string> names_;
};

class CheckpointReader;  // checkpoint.cpp

// Counters by (day, row, stage, asset), with rows and the rest as ordinals.
// Each add also lands in a week bucket (day / 7), so a long window sums whole
// weeks and only the days at its edges.
class Cube {
 public:
  struct Entry {
    uint32_t asset;
    uint32_t n[kCounters - 1];  // modulo 2^32: negative deltas wrap back
    int64_t cents;
  };
  void Add(uint32_t day, uint32_t row, uint32_t stage, uint32_t asset, const Counters& c);
  // Visits every entry of the cells over the days [first, last] whose (row,
  // stage) passes `want`; an entry may stand for a week.
  template <class Want, class Fn>
  void Visit(uint32_t first, uint32_t last, const Want& want, const Fn& fn) const {
    auto visit = [&](const Bucket& b) {
      for (const auto& [key, cell] : b) {
        const uint32_t row = uint32_t(key >> 32), stage = uint32_t(key);
        if (!want(row, stage)) continue;
        for (const Entry& e : cell.entries) fn(row, stage, e);
      }
    };
    if (days_.empty()) return;
    first = std::max(first, days_.begin()->first);
    last = std::min(last, days_.rbegin()->first);
    // Skips from each day with cells to the next (a damaged stored key can
    // name any day up to 2^32: stepping over the gap took minutes), and is
    // 64-bit so that d + 6 and d += 7 do not wrap (that looped forever).
    // Both found by tests/fuzz.
    uint64_t d = first;
    while (d <= last) {
      const auto next = days_.lower_bound(uint32_t(d));
      if (next == days_.end() || next->first > last) break;
      d = next->first;
      if (d % 7 == 0 && d + 6 <= last) {  // a whole week
        if (auto w = weeks_.find(uint32_t(d / 7)); w != weeks_.end()) visit(w->second);
        d += 7;
        continue;
      }
      visit(next->second);
      ++d;
    }
  }
  // The day-level entry of the cell, or null.
  const Entry* Find(uint32_t day, uint32_t row, uint32_t stage, uint32_t asset) const;
  // The days with any cell, and one day's entries (day level only: weeks are
  // derived), for enumeration.
  std::vector<uint32_t> Days() const;
  void ForDay(uint32_t day, const std::function<void(uint32_t row, uint32_t stage, const Entry&)>& fn) const;
  // The day-level entries of this cube that are non-zero and differ from
  // `other`'s (absent = zero), with this cube's row, stage and asset ids
  // mapped to `other`'s by the vectors (UINT32_MAX: absent there). With
  // `only_absent`, only those that are zero or absent in `other`.
  uint64_t CountNonZero() const;  // day-level entries
  uint64_t CountUnlike(const Cube& other, const std::vector<uint32_t>& rows, const std::vector<uint32_t>& stages,
                       const std::vector<uint32_t>& assets, bool only_absent) const;
  static Counters ToCounters(const Entry& e);
  // The checkpoint (checkpoint.cpp): the day-level non-zero entries, typed;
  // read back into an empty cube (weeks re-summed), rows, stages and assets
  // checked against the dictionaries' sizes. Decode: false when malformed.
  void Encode(std::string* out) const;
  bool Decode(CheckpointReader& in, uint32_t rows, uint32_t stages, uint32_t assets);

 private:
  struct Cell {
    std::vector<Entry> entries;
    std::vector<uint32_t> slots;  // open addressing: index into entries, or UINT32_MAX
    Entry& At(uint32_t asset);
    const Entry* Find(uint32_t asset) const;
    // Builds the slots of `entries` at once; false when an asset is twice.
    bool Index();
  };
  using Bucket = std::unordered_map<uint64_t, Cell>;  // row << 32 | stage
  static void AddTo(Bucket& b, uint32_t row, uint32_t stage, uint32_t asset, const Counters& c);
  std::map<uint32_t, Bucket> days_, weeks_;
};

// What counting one or more events adds to the derived state, typed: the
// counting (tally.h) records it here without building a key or taking a lock,
// and Derived::Apply(const DeltaBuffer&) adds it in one pass, each name mapped
// once. Names are interned here, so recording allocates only for a new name.
class DeltaBuffer {
 public:
  // -1: what is recorded from now on is taken away (re-deriving a lead: out
  // with what its old log counted). A last use is a maximum: never taken back.
  int sign = 1;
  // Field f (+ cents into [7]) of the asset's ranking counters at the stage
  // and, when `topic` is not empty, at the stage for that topic.
  void Ranking(std::string_view asset, std::string_view stage, std::string_view topic, int f, int64_t cents);
  // Field f (+ cents) of the report counters of the day, stage and asset
  // (asset "": the lead itself closed) for all reps and, when not empty, `rep`.
  void Report(uint32_t day, std::string_view stage, std::string_view rep, std::string_view asset, int f,
              int64_t cents);
  void Dismissal(uint32_t day, std::string_view stage, std::string_view asset, std::string_view reason);
  // Field f (entered, advanced, won, lost) of the funnel cell.
  void Funnel(uint32_t day, std::string_view stage, bool with_content, int f);
  void LastUsed(std::string_view asset, int64_t ts);
  // Adds `value` (times sign) to field f (ExperimentField) of the
  // experiment's cell of the assignment day, arm, stage and rep.
  void Experiment(uint32_t day, Arm arm, std::string_view stage, std::string_view rep, int f, int64_t value);
  // One use of the asset after a context with the term, in the week that
  // starts on `week_day` (a day number divisible by 7).
  void Phrase(uint32_t week_day, std::string_view term, std::string_view asset);
  void Clear();
  bool empty() const { return ops_.empty(); }

 private:
  friend class Derived;
  enum class Kind : uint8_t { kRanking, kReport, kDismissal, kFunnel, kLastUsed, kExperiment, kPhrase };
  struct Op {
    Kind kind;
    uint8_t field;
    bool flag;  // funnel: with content
    int8_t sign;
    uint32_t day;
    uint32_t name[3];  // ids in names_: see each kind's method for the order
    int64_t value;     // cents, or a last use's ts
  };
  Dictionary names_;
  std::vector<Op> ops_;
};

// Everything derived from the events. Not thread-safe: the feedback store
// guards it.
class Derived {
 public:
  // Adds a stats-CF key's counters (any kind but last-used).
  void Apply(std::string_view key, const Counters& c);
  // Sets a stats-CF key's counters to `c` (a key saved after the checkpoint
  // this was loaded from holds its whole value): adds c minus what it holds.
  void Set(std::string_view key, const Counters& c);
  // The counters a stats-CF key has here (zero when absent or malformed).
  Counters Held(std::string_view key) const;

  // The checkpoint: everything this holds, as a few typed sections read in
  // one pass (checkpoint.cpp; layout in docs/design.md), with the event
  // sequence it includes (events below `seq`). Little-endian, as the stored
  // counters. Decode reads into an empty Derived; Corruption when the bytes
  // are not a checkpoint (never trusted: bounds and ids checked).
  void EncodeCheckpoint(uint64_t seq, std::string* out) const;
  Status DecodeCheckpoint(std::string_view in, uint64_t* seq);
  // Adds what the buffer recorded (the same counters the keys would carry),
  // and notes the stored keys it changed (below).
  void Apply(const DeltaBuffer& deltas);

  void ApplyLastUsed(const std::string& asset, int64_t ts);
  using CounterFn = std::function<void(const std::string& key, const Counters& c)>;
  using LastUsedFn = std::function<void(const std::string& asset, int64_t ts)>;
  // Every stored key with its counters (zero counters skipped), and every
  // last-used value; stage totals are not stored. In parts: the keys of no
  // day (ranking counters, last use), then the keys of each day.
  void Enumerate(const CounterFn& counters, const LastUsedFn& last_used) const;
  void EnumerateUndated(const CounterFn& counters, const LastUsedFn& last_used) const;
  std::vector<uint32_t> Days() const;
  void EnumerateDay(uint32_t day, const CounterFn& counters) const;
  // The keys Enumerate would give (non-zero counters), without building them.
  uint64_t CountKeys() const;
  // Keys whose counters differ (missing = zero), last-used values included.
  uint64_t CountDifferences(const Derived& other) const;

  // The stored keys changed by Apply(DeltaBuffer) since the last TakeChanged:
  // a save writes only those. A copy of this does not carry them.
  struct Changed {
    uint8_t kind;  // DeltaBuffer's
    uint32_t day, a, b, c;
    bool operator==(const Changed& o) const {
      return kind == o.kind && day == o.day && a == o.a && b == o.b && c == o.c;
    }
  };
  struct ChangedHash {
    size_t operator()(const Changed& k) const {
      uint64_t h = (uint64_t(k.kind) << 32 | k.day) * 0x9E3779B97F4A7C15ull;
      h ^= (uint64_t(k.a) << 32 | k.b) * 0xC2B2AE3D27D4EB4Full;
      h ^= uint64_t(k.c) * 0x165667B19E3779F9ull;
      return size_t(h ^ (h >> 29));
    }
  };
  // What a save writes: the changed keys' values and the names they use,
  // copied under the store's lock (fast), spelled out as keys without it.
  struct ChangedValues {
    std::vector<Changed> changed;
    std::vector<Counters> values;  // per changed; a last use: [0] = ts, [1] = 1 when there is one
    std::vector<std::string> assets, stages, reps, reasons, topics, terms;
    // Each key with its counters (all zero: the key is to be deleted), and
    // each asset's last use.
    void Keys(const CounterFn& counters, const LastUsedFn& last_used) const;
  };
  ChangedValues TakeChanged();
  // The changed keys only (a checkpoint writes all of them).
  std::vector<Changed> TakeChangedKeys() { return changed_.Take(); }
  // Forgets the changes (what a full write of this covers).
  void ClearChanged() { changed_.clear(); }
  // Gives back keys taken whose save failed.
  void ReturnChanged(const std::vector<Changed>& changed);
  size_t ChangedCount() const { return changed_.size(); }

  // Ranking counters: the asset at the stage, or (topic not empty) at the
  // stage for leads whose context had that topic; the sums over the assets at
  // a stage (topic keys not included).
  AssetStageStats Stats(std::string_view asset, std::string_view stage, std::string_view topic = {}) const;
  AssetStageStats StageTotals(std::string_view stage) const;
  // An asset's ordinal here, remembered by its reader (the index's display
  // record keeps one per asset) so that the next ranking needs no hash lookup
  // of its name: this Derived's generation (high 32 bits, 0 = nothing) and
  // the ordinal, or, with bit 31 set, "absent while the asset dictionary had
  // this size". Readers write it (relaxed: any value they read was written
  // whole); an ordinal stays valid for its generation because the dictionary
  // only grows, and every Derived (a copy, a re-aggregation's fresh one, a
  // checkpoint decoded) has a generation of its own.
  using OrdinalCache = std::atomic<uint64_t>;
  // For each of the n assets: its counters at `stage` into at_stage[i] and,
  // when `topic` is not empty, for `topic` into at_topic[i]. Each name is
  // looked up at most once (not at all when caches[i] knows it: caches may be
  // null, and so may any caches[i]), and no string is built. The stage's
  // counters are read from an array by asset ordinal; the topic's only for
  // assets that have any.
  void RankingStats(std::string_view stage, std::string_view topic, const std::string_view* assets,
                    OrdinalCache* const* caches, size_t n, AssetStageStats* at_stage, AssetStageStats* at_topic) const;
  void RankingStats(std::string_view stage, std::string_view topic, const std::string_view* assets, size_t n,
                    AssetStageStats* at_stage, AssetStageStats* at_topic) const {
    RankingStats(stage, topic, assets, nullptr, n, at_stage, at_topic);
  }
  // Whether the arrays by ordinal mark exactly the assets and stages that
  // have topic keys (for tests).
  bool DenseRankingMatchesKeys() const;

  // Reports over the UTC days [first, last].
  struct AssetSums {
    std::vector<std::pair<std::string, Counters>> by_asset;  // assets with any count
    Counters closed{};  // the leads closed (won, lost, cents): the lift baseline
  };
  // stage "" = every stage; rep "" = every rep.
  AssetSums SumAssets(uint32_t first, uint32_t last, const std::string& stage, const std::string& rep) const;
  // rep -> counters over assets and stages; rep -> the leads it closed (won, lost).
  void SumReps(uint32_t first, uint32_t last, std::map<std::string, AssetStageStats>* reps,
               std::map<std::string, std::pair<uint64_t, uint64_t>>* closed) const;
  struct Dismissal {
    std::string asset, reason;
    uint64_t count;
  };
  // Per (asset, reason) with any dismissal, in no particular order.
  std::vector<Dismissal> SumDismissals(uint32_t first, uint32_t last, const std::string& stage) const;
  std::map<std::string, Counters> SumFunnel(uint32_t first, uint32_t last) const;  // stage \0 '1'|'0'
  // The experiment's cells of the assignment days [first, last]: (arm \0
  // stage \0 rep) -> counters (ExperimentField).
  std::map<std::string, Counters> SumExperiment(uint32_t first, uint32_t last) const;
  const std::unordered_map<std::string, int64_t>& last_used() const { return last_used_; }

  // The org's own words. A term's support for an asset as of day `today`: its
  // uses, each weighted 0.5^(age / half_life_days), age = the days from the
  // end of the use's week (first day + 6) to today, 0 before. For the
  // ranking: per asset (copied out) the sum over `terms` of support x share
  // (the asset's part of the term's support over all assets), counting only
  // terms with at least `min_support` uses for it; and the term giving the
  // most (its index in `terms`); of each term only its kPhraseTop strongest
  // assets (by support x share) count. Sorted by weight, highest first;
  // nothing when no term is known.
  static constexpr size_t kPhraseTop = 64;
  struct PhraseWeight {
    std::string asset;
    double weight = 0;
    size_t term = 0;
  };
  void PhraseWeights(const std::vector<std::string>& terms, uint32_t today, double half_life_days,
                     double min_support, std::vector<PhraseWeight>* out) const;
  // For the report: every (asset, term) with uses, all time, and its support.
  struct PhraseUses {
    std::string asset, term;
    uint64_t uses = 0;
    double support = 0;
  };
  std::vector<PhraseUses> SumPhrases(uint32_t today, double half_life_days) const;

 private:
  // A ranking key (asset \0 stage [\0 topic]) as ordinals: asset in assets_,
  // stage in stages_, topic 0 = none, else its id in topics_ + 1.
  struct RankKey {
    uint32_t asset, stage, topic;
    bool operator==(const RankKey& o) const { return asset == o.asset && stage == o.stage && topic == o.topic; }
  };
  struct RankKeyHash {
    size_t operator()(const RankKey& k) const {
      uint64_t h = (uint64_t(k.asset) << 32 | k.stage) * 0x9E3779B97F4A7C15ull + k.topic * 0xC2B2AE3D27D4EB4Full;
      return size_t(h ^ (h >> 31));
    }
  };
  // The key of these names here; false when a name is not known here.
  // topic null: the key without a topic.
  bool FindRankKey(std::string_view asset, std::string_view stage, const std::string_view* topic, RankKey* k) const;
  std::string RankKeyName(const RankKey& k) const;  // as stored
  // Ranking keys of this that are non-zero and differ in `other` (see CountUnlikeKeys).
  uint64_t CountUnlikeRanking(const Derived& other, bool only_absent) const;

  // Adds to a ranking key's counters: without a topic, the arrays by ordinal
  // (the only place they are kept); with one, the map, marking the asset's
  // array entry.
  void AddRanking(const RankKey& k, const Counters& c);
  // A ranking key's counters, null when it has none (a zero array entry may
  // be returned).
  const Counters* FindRanking(const RankKey& k) const;
  // Every ranking key with its counters, zero ones included: the arrays'
  // entries, then the topic map's.
  template <class Fn>
  void ForEachRanking(const Fn& fn) const {
    for (uint32_t s = 0; s < dense_.size(); ++s) {
      for (uint32_t a = 0; a < dense_[s].size(); ++a) fn(RankKey{a, s, 0}, dense_[s][a].c);
    }
    for (const auto& [k, c] : stats_) fn(k, c);
  }
  uint32_t FindAsset(std::string_view name, OrdinalCache* cache) const;

  // The ranking keys with a topic.
  std::unordered_map<RankKey, Counters, RankKeyHash> stats_;
  // The counters without a topic, by stage ordinal then asset ordinal (an
  // array per stage, as long as its highest asset with counters), and whether
  // the asset has any topic key at the stage: the ranking reads one entry per
  // candidate, and the topic map only when there is something. Kept only
  // here (no map entry beside them): recommend's `shown` events add to them
  // without a hash lookup, and saves and checkpoints walk the arrays.
  struct DenseCell {
    Counters c{};
    bool topics = false;
  };
  std::vector<std::vector<DenseCell>> dense_;
  // This object's generation (see OrdinalCache): a new one for every copy.
  struct Generation {
    uint32_t value = Next();
    Generation() = default;
    Generation(const Generation&) : value(Next()) {}
    Generation& operator=(const Generation&) {
      value = Next();
      return *this;
    }
    static uint32_t Next();
  };
  Generation generation_;
  std::vector<Counters> stage_totals_;  // by stage ordinal
  Dictionary topics_;
  Dictionary assets_, reps_, stages_, reasons_;  // reps_: "" (all) is 0
  Cube reports_;                                 // rows: reps
  Cube rep_totals_;  // rows: reps (not "all"); asset 0: content activity, 1: leads closed
  Cube dismissals_;                              // rows: reasons; [0] = count
  std::map<uint32_t, std::unordered_map<std::string, Counters>> funnel_;  // day -> stage \0 with
  std::map<uint32_t, std::unordered_map<std::string, Counters>> experiment_;  // day -> arm \0 stage \0 rep
  // The org's own words, as stored: week day -> term \0 asset -> [0] uses.
  std::map<uint32_t, std::unordered_map<std::string, Counters>> phrases_;
  // And by term (id in terms_) for the ranking: sorted by (asset, day).
  struct PhraseEntry {
    uint32_t asset, day;
    int64_t uses;
  };
  Dictionary terms_;
  std::vector<std::vector<PhraseEntry>> by_term_;
  void AddPhrase(uint32_t day, uint32_t term, uint32_t asset, int64_t uses);
  // A term's assets as PhraseWeights counts them on a day (with its options):
  // (asset, support x share) of those with the minimum support, at most
  // kPhraseTop, the strongest. Computed by the first request after the term's
  // counts changed or the day did (AddPhrase invalidates), so a request reads
  // a short list per term instead of every (asset, week) entry.
  struct TermSummary {
    bool valid = false;
    uint32_t today = 0;
    double half_life_days = 0, min_support = 0;
    std::vector<std::pair<uint32_t, double>> top;
  };
  void SummarizeTerm(uint32_t t, uint32_t today, double half_life_days, double min_support, TermSummary* sum) const;
  // Readers share the store's lock: the summaries have their own. Not copied
  // (a copy computes its own).
  struct Summaries {
    std::mutex mu;
    std::vector<TermSummary> by_term;  // guarded by mu (or the writer's exclusive lock)
    Summaries() = default;
    Summaries(const Summaries&) {}
    Summaries& operator=(const Summaries&) {
      by_term.clear();
      return *this;
    }
  };
  mutable Summaries summaries_;
  std::unordered_map<std::string, int64_t> last_used_;
  // Not copied: a copy is what a save writes, its changes are the original's.
  // Open addressing over a vector of the keys (no node allocated per key, a
  // save takes the vector), the keys in insertion order.
  class ChangedSet {
   public:
    ChangedSet() = default;
    ChangedSet(const ChangedSet&) {}
    ChangedSet& operator=(const ChangedSet&) {
      clear();
      return *this;
    }
    void insert(const Changed& k);
    template <class It>
    void insert(It first, It last) {
      for (; first != last; ++first) insert(*first);
    }
    std::vector<Changed>::const_iterator begin() const { return keys_.begin(); }
    std::vector<Changed>::const_iterator end() const { return keys_.end(); }
    size_t size() const { return keys_.size(); }
    void clear();
    std::vector<Changed> Take() {
      std::vector<Changed> out = std::move(keys_);
      clear();
      return out;
    }

   private:
    std::vector<Changed> keys_;
    std::vector<uint32_t> slots_;  // index into keys_, or UINT32_MAX
  };
  ChangedSet changed_;
};

}  // namespace playbook

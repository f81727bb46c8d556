#include "derived.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>

namespace playbook {

std::string EncodeCounters(const Counters& c) { return std::string(reinterpret_cast<const char*>(c.data()), sizeof(Counters)); }

Counters DecodeCounters(std::string_view s) {
  Counters c{};
  if (s.size() == sizeof(Counters)) std::memcpy(c.data(), s.data(), sizeof(Counters));
  return c;
}

void AddTo(AssetStageStats* s, const Counters& c) {
  s->shown += uint64_t(c[0]);
  s->used += uint64_t(c[1]);
  s->viewed += uint64_t(c[2]);
  s->dismissed += uint64_t(c[3]);
  s->won += uint64_t(c[4]);
  s->lost += uint64_t(c[5]);
  s->advanced += uint64_t(c[6]);
  s->won_amount += double(c[7]) / 100.0;
}

bool IsZero(const Counters& c) {
  for (int64_t v : c) {
    if (v != 0) return false;
  }
  return true;
}

namespace {

void PutDay(std::string* k, uint32_t day) {
  for (int i = 3; i >= 0; --i) k->push_back(char((day >> (8 * i)) & 0xff));
}

// The day of a prefixed key, and the rest split at NULs into `parts`.
bool SplitKey(std::string_view key, uint32_t* day, std::string_view* parts, size_t n) {
  if (key.size() < 5) return false;
  *day = 0;
  for (size_t i = 1; i <= 4; ++i) *day = (*day << 8) | uint8_t(key[i]);
  std::string_view rest = key.substr(5);
  for (size_t i = 0; i + 1 < n; ++i) {
    const size_t z = rest.find('\0');
    if (z == std::string_view::npos) return false;
    parts[i] = rest.substr(0, z);
    rest.remove_prefix(z + 1);
  }
  parts[n - 1] = rest;
  return true;
}


}  // namespace

uint32_t DayOf(int64_t ms) {
  return uint32_t(std::min<int64_t>(std::max<int64_t>(0, ms) / 86400000, UINT32_MAX - 7));
}

std::string StatsKey(const std::string& asset, const std::string& stage, const std::string& topic) {
  std::string k = asset;
  k.push_back('\0');
  k += stage;
  if (!topic.empty()) {
    k.push_back('\0');
    k += topic;
  }
  return k;
}

namespace {
// prefix, day, then the parts joined by NULs.
std::string DayKey(char prefix, uint32_t day, std::initializer_list<std::string_view> parts) {
  std::string k(1, prefix);
  PutDay(&k, day);
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) k.push_back('\0');
    first = false;
    k += p;
  }
  return k;
}
}  // namespace

std::string AggregateKey(uint32_t day, std::string_view stage, std::string_view rep, std::string_view asset) {
  return DayKey(kAggregatePrefix, day, {stage, rep, asset});
}

std::string DismissalKey(uint32_t day, std::string_view stage, std::string_view asset, std::string_view reason) {
  return DayKey(kDismissalPrefix, day, {stage, asset, reason});
}

std::string FunnelKey(uint32_t day, std::string_view stage, bool with_content) {
  return DayKey(kFunnelPrefix, day, {stage, with_content ? "1" : "0"});
}

std::string LastUsedKey(const std::string& asset) { return std::string(1, kLastUsedPrefix) + asset; }

namespace {
// The part of an experiment key after the day: arm \0 stage \0 rep.
std::string ExperimentCell(Arm arm, std::string_view stage, std::string_view rep) {
  std::string cell = ArmName(arm);
  cell.push_back('\0');
  cell += stage;
  cell.push_back('\0');
  cell += rep;
  return cell;
}
}  // namespace

std::string ExperimentKey(uint32_t day, Arm arm, std::string_view stage, std::string_view rep) {
  std::string k(1, kExperimentPrefix);
  PutDay(&k, day);
  return k + ExperimentCell(arm, stage, rep);
}

std::string PhraseKey(uint32_t day, std::string_view term, std::string_view asset) {
  return DayKey(kPhrasePrefix, day, {term, asset});
}

namespace {
std::string PhraseCell(std::string_view term, std::string_view asset) {
  std::string cell(term);
  cell.push_back('\0');
  cell += asset;
  return cell;
}
}  // namespace

std::string ReasonOf(const std::string& reason) {
  const size_t a = reason.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "(no reason)";
  const size_t b = reason.find_last_not_of(" \t\r\n");
  return reason.substr(a, b - a + 1);
}

// ---------------------------------------------------------------------------

uint32_t Dictionary::Intern(std::string_view s) {
  if (auto it = ids_.find(s); it != ids_.end()) return it->second;
  const uint32_t id = uint32_t(names_.size());
  ids_.emplace(std::string(s), id);
  names_.emplace_back(s);
  return id;
}

std::vector<uint32_t> Dictionary::MapTo(const Dictionary& other) const {
  std::vector<uint32_t> ids(names_.size());
  for (uint32_t i = 0; i < names_.size(); ++i) ids[i] = other.Find(names_[i]);
  return ids;
}

uint32_t Dictionary::Find(std::string_view s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? UINT32_MAX : it->second;
}

// ---------------------------------------------------------------------------

namespace {
uint32_t Hash(uint32_t asset) { return asset * 2654435761u; }
}  // namespace

const Cube::Entry* Cube::Cell::Find(uint32_t asset) const {
  if (slots.empty()) return nullptr;
  const size_t mask = slots.size() - 1;
  for (size_t i = Hash(asset) & mask;; i = (i + 1) & mask) {
    if (slots[i] == UINT32_MAX) return nullptr;
    if (entries[slots[i]].asset == asset) return &entries[slots[i]];
  }
}

Cube::Entry& Cube::Cell::At(uint32_t asset) {
  if ((entries.size() + 1) * 2 > slots.size()) {  // keep the load under 1/2
    slots.assign(std::max<size_t>(8, slots.size() * 2), UINT32_MAX);
    const size_t mask = slots.size() - 1;
    for (uint32_t e = 0; e < entries.size(); ++e) {
      size_t i = Hash(entries[e].asset) & mask;
      while (slots[i] != UINT32_MAX) i = (i + 1) & mask;
      slots[i] = e;
    }
  }
  const size_t mask = slots.size() - 1;
  size_t i = Hash(asset) & mask;
  for (; slots[i] != UINT32_MAX; i = (i + 1) & mask) {
    if (entries[slots[i]].asset == asset) return entries[slots[i]];
  }
  slots[i] = uint32_t(entries.size());
  Entry& e = entries.emplace_back();
  std::memset(&e, 0, sizeof e);
  e.asset = asset;
  return e;
}

Counters Cube::ToCounters(const Entry& e) {
  Counters c{};
  for (int i = 0; i < kCounters - 1; ++i) c[size_t(i)] = int64_t(int32_t(e.n[i]));
  c[kCounters - 1] = e.cents;
  return c;
}

void Cube::AddTo(Bucket& b, uint32_t row, uint32_t stage, uint32_t asset, const Counters& c) {
  Entry& e = b[(uint64_t(row) << 32) | stage].At(asset);
  for (int i = 0; i < kCounters - 1; ++i) e.n[i] += uint32_t(c[size_t(i)]);
  e.cents = WrapAdd(e.cents, c[kCounters - 1]);
}

void Cube::Add(uint32_t day, uint32_t row, uint32_t stage, uint32_t asset, const Counters& c) {
  AddTo(days_[day], row, stage, asset, c);
  AddTo(weeks_[day / 7], row, stage, asset, c);
}

std::vector<uint32_t> Cube::Days() const {
  std::vector<uint32_t> days;
  for (const auto& [day, bucket] : days_) days.push_back(day);
  return days;
}

void Cube::ForDay(uint32_t day, const std::function<void(uint32_t, uint32_t, const Entry&)>& fn) const {
  auto d = days_.find(day);
  if (d == days_.end()) return;
  for (const auto& [key, cell] : d->second) {
    for (const Entry& e : cell.entries) fn(uint32_t(key >> 32), uint32_t(key), e);
  }
}

uint64_t Cube::CountNonZero() const {
  uint64_t n = 0;
  for (const auto& [day, bucket] : days_) {
    for (const auto& [key, cell] : bucket) {
      for (const Entry& e : cell.entries) n += IsZero(ToCounters(e)) ? 0 : 1;
    }
  }
  return n;
}

uint64_t Cube::CountUnlike(const Cube& other, const std::vector<uint32_t>& rows, const std::vector<uint32_t>& stages,
                           const std::vector<uint32_t>& assets, bool only_absent) const {
  uint64_t n = 0;
  for (const auto& [day, bucket] : days_) {
    auto od = other.days_.find(day);
    for (const auto& [key, cell] : bucket) {
      const uint32_t row = rows[key >> 32], stage = stages[uint32_t(key)];
      const Cell* oc = nullptr;
      if (od != other.days_.end() && row != UINT32_MAX && stage != UINT32_MAX) {
        auto it = od->second.find((uint64_t(row) << 32) | stage);
        if (it != od->second.end()) oc = &it->second;
      }
      for (const Entry& e : cell.entries) {
        const Counters c = ToCounters(e);
        if (IsZero(c)) continue;
        const Entry* o = oc && assets[e.asset] != UINT32_MAX ? oc->Find(assets[e.asset]) : nullptr;
        const Counters theirs = o ? ToCounters(*o) : Counters{};
        if (only_absent ? IsZero(theirs) : theirs != c) ++n;
      }
    }
  }
  return n;
}

// ---------------------------------------------------------------------------

void Derived::Apply(std::string_view key, const Counters& c) {
  uint32_t day = 0;
  std::string_view p[3];
  if (!key.empty() && key[0] == kAggregatePrefix) {
    if (!SplitKey(key, &day, p, 3)) return;
    if (reps_.size() == 0) reps_.Intern("");
    const uint32_t rep = reps_.Intern(p[1]), stage = stages_.Intern(p[0]);
    reports_.Add(day, rep, stage, assets_.Intern(p[2]), c);
    // Per rep, the assets summed: [0] content, [1] the leads the rep closed.
    if (rep != 0) rep_totals_.Add(day, rep, stage, p[2].empty() ? 1 : 0, c);
  } else if (!key.empty() && key[0] == kDismissalPrefix) {
    if (!SplitKey(key, &day, p, 3)) return;
    dismissals_.Add(day, reasons_.Intern(p[2]), stages_.Intern(p[0]), assets_.Intern(p[1]), c);
  } else if (!key.empty() && key[0] == kFunnelPrefix) {
    if (key.size() < 5 || !SplitKey(key, &day, p, 1)) return;
    Plus(&funnel_[day][std::string(p[0])], c);
  } else if (!key.empty() && key[0] == kExperimentPrefix) {
    if (!SplitKey(key, &day, p, 3) || (p[0] != "treatment" && p[0] != "holdout")) return;
    stages_.Intern(p[1]);
    if (reps_.size() == 0) reps_.Intern("");
    reps_.Intern(p[2]);
    Plus(&experiment_[day][std::string(key.substr(5))], c);
  } else if (!key.empty() && key[0] == kPhrasePrefix) {
    if (!SplitKey(key, &day, p, 2)) return;
    Plus(&phrases_[day][std::string(key.substr(5))], c);
    AddPhrase(day, terms_.Intern(p[0]), assets_.Intern(p[1]), c[0]);
  } else if (!key.empty() && key[0] != kLastUsedPrefix && key.find('\0') != std::string_view::npos) {
    // asset \0 stage [\0 topic]: the topic is the rest, NULs included, so the
    // key enumerates back as it came.
    const size_t a = key.find('\0');
    const std::string_view rest = key.substr(a + 1);
    const size_t b = rest.find('\0');
    const std::string_view stage = rest.substr(0, b);
    const RankKey k{assets_.Intern(key.substr(0, a)), stages_.Intern(stage),
                    b == std::string_view::npos ? 0 : topics_.Intern(rest.substr(b + 1)) + 1};
    AddRanking(k, c);
    if (k.topic == 0 && !stage.empty()) {  // topic keys are not in the stage totals
      if (stage_totals_.size() <= k.stage) stage_totals_.resize(k.stage + 1, Counters{});
      Plus(&stage_totals_[k.stage], c);
    }
  }
}

Counters Derived::Held(std::string_view key) const {
  Counters out{};
  uint32_t day = 0;
  std::string_view p[3];
  auto from_cube = [&](const Cube& cube, uint32_t row, uint32_t stage, uint32_t asset) {
    if (row == UINT32_MAX || stage == UINT32_MAX || asset == UINT32_MAX) return;
    if (const Cube::Entry* e = cube.Find(day, row, stage, asset)) out = Cube::ToCounters(*e);
  };
  auto from_days = [&](const std::map<uint32_t, std::unordered_map<std::string, Counters>>& by_day) {
    auto d = by_day.find(day);
    if (d == by_day.end()) return;
    if (auto it = d->second.find(std::string(key.substr(5))); it != d->second.end()) out = it->second;
  };
  if (!key.empty() && key[0] == kAggregatePrefix) {
    if (SplitKey(key, &day, p, 3)) from_cube(reports_, reps_.Find(p[1]), stages_.Find(p[0]), assets_.Find(p[2]));
  } else if (!key.empty() && key[0] == kDismissalPrefix) {
    if (SplitKey(key, &day, p, 3)) from_cube(dismissals_, reasons_.Find(p[2]), stages_.Find(p[0]), assets_.Find(p[1]));
  } else if (!key.empty() && key[0] == kFunnelPrefix) {
    if (key.size() >= 5 && SplitKey(key, &day, p, 1)) from_days(funnel_);
  } else if (!key.empty() && key[0] == kExperimentPrefix) {
    if (SplitKey(key, &day, p, 3)) from_days(experiment_);
  } else if (!key.empty() && key[0] == kPhrasePrefix) {
    if (SplitKey(key, &day, p, 2)) from_days(phrases_);
  } else if (!key.empty() && key[0] != kLastUsedPrefix && key.find('\0') != std::string_view::npos) {
    const size_t a = key.find('\0');
    const std::string_view rest = key.substr(a + 1);
    const size_t b = rest.find('\0');
    const std::string_view topic = b == std::string_view::npos ? std::string_view() : rest.substr(b + 1);
    RankKey k;
    if (FindRankKey(key.substr(0, a), rest.substr(0, b), b == std::string_view::npos ? nullptr : &topic, &k)) {
      if (const Counters* c = FindRanking(k)) out = *c;
    }
  }
  return out;
}

void Derived::Set(std::string_view key, const Counters& c) {
  const Counters held = Held(key);
  Counters delta;
  for (size_t i = 0; i < delta.size(); ++i) delta[i] = int64_t(uint64_t(c[i]) - uint64_t(held[i]));
  if (!IsZero(delta)) Apply(key, delta);
}

void DeltaBuffer::Ranking(std::string_view asset, std::string_view stage, std::string_view topic, int f,
                          int64_t cents) {
  ops_.push_back({Kind::kRanking, uint8_t(f), false, int8_t(sign), 0,
                  {names_.Intern(asset), names_.Intern(stage), names_.Intern(topic)}, cents});
}

void DeltaBuffer::Report(uint32_t day, std::string_view stage, std::string_view rep, std::string_view asset, int f,
                         int64_t cents) {
  ops_.push_back({Kind::kReport, uint8_t(f), false, int8_t(sign), day,
                  {names_.Intern(stage), names_.Intern(rep), names_.Intern(asset)}, cents});
}

void DeltaBuffer::Dismissal(uint32_t day, std::string_view stage, std::string_view asset, std::string_view reason) {
  ops_.push_back({Kind::kDismissal, 0, false, int8_t(sign), day,
                  {names_.Intern(stage), names_.Intern(asset), names_.Intern(reason)}, 0});
}

void DeltaBuffer::Funnel(uint32_t day, std::string_view stage, bool with_content, int f) {
  ops_.push_back({Kind::kFunnel, uint8_t(f), with_content, int8_t(sign), day, {names_.Intern(stage), 0, 0}, 0});
}

void DeltaBuffer::LastUsed(std::string_view asset, int64_t ts) {
  if (sign < 0) return;  // a maximum is never taken back
  ops_.push_back({Kind::kLastUsed, 0, false, 1, 0, {names_.Intern(asset), 0, 0}, ts});
}

void DeltaBuffer::Experiment(uint32_t day, Arm arm, std::string_view stage, std::string_view rep, int f,
                             int64_t value) {
  ops_.push_back({Kind::kExperiment, uint8_t(f), arm == Arm::kHoldout, int8_t(sign), day,
                  {names_.Intern(stage), names_.Intern(rep), 0}, value});
}

void DeltaBuffer::Phrase(uint32_t week_day, std::string_view term, std::string_view asset) {
  ops_.push_back({Kind::kPhrase, 0, false, int8_t(sign), week_day, {names_.Intern(term), names_.Intern(asset), 0}, 0});
}

void DeltaBuffer::Clear() {
  ops_.clear();
  sign = 1;
}

const Cube::Entry* Cube::Find(uint32_t day, uint32_t row, uint32_t stage, uint32_t asset) const {
  auto d = days_.find(day);
  if (d == days_.end()) return nullptr;
  auto cell = d->second.find(uint64_t(row) << 32 | stage);
  return cell == d->second.end() ? nullptr : cell->second.Find(asset);
}

void Derived::Apply(const DeltaBuffer& d) {
  // Each buffer name's id in the dictionary of its role, looked up once.
  constexpr uint32_t kUnset = UINT32_MAX;
  const size_t n = d.names_.size();
  std::vector<uint32_t> asset(n, kUnset), stage(n, kUnset), rep(n, kUnset), topic(n, kUnset), reason(n, kUnset),
      term(n, kUnset);
  auto id = [&](std::vector<uint32_t>& ids, Dictionary& dict, uint32_t name) {
    uint32_t& v = ids[name];
    if (v == kUnset) v = dict.Intern(d.names_.Name(name));
    return v;
  };
  if (reps_.size() == 0) reps_.Intern("");  // "" (all reps) is 0
  for (const DeltaBuffer::Op& op : d.ops_) {
    Counters c{};
    c[op.field] = op.sign;
    c[7] = op.sign < 0 ? int64_t(0 - uint64_t(op.value)) : op.value;
    const uint8_t kind = uint8_t(op.kind);
    switch (op.kind) {
      case DeltaBuffer::Kind::kRanking: {
        const uint32_t a = id(asset, assets_, op.name[0]), s = id(stage, stages_, op.name[1]);
        AddRanking(RankKey{a, s, 0}, c);
        changed_.insert({kind, 0, a, s, 0});
        if (!d.names_.Name(op.name[1]).empty()) {  // as Apply(key): keys of an empty stage are not in the totals
          if (stage_totals_.size() <= s) stage_totals_.resize(s + 1, Counters{});
          Plus(&stage_totals_[s], c);
        }
        if (!d.names_.Name(op.name[2]).empty()) {
          const uint32_t t = id(topic, topics_, op.name[2]) + 1;
          AddRanking(RankKey{a, s, t}, c);
          changed_.insert({kind, 0, a, s, t});
        }
        break;
      }
      case DeltaBuffer::Kind::kReport: {
        const uint32_t s = id(stage, stages_, op.name[0]), a = id(asset, assets_, op.name[2]);
        reports_.Add(op.day, 0, s, a, c);
        changed_.insert({kind, op.day, 0, s, a});
        if (!d.names_.Name(op.name[1]).empty()) {
          const uint32_t r = id(rep, reps_, op.name[1]);
          reports_.Add(op.day, r, s, a, c);
          changed_.insert({kind, op.day, r, s, a});
          // Per rep, the assets summed: [0] content, [1] the leads the rep closed.
          rep_totals_.Add(op.day, r, s, d.names_.Name(op.name[2]).empty() ? 1 : 0, c);
        }
        break;
      }
      case DeltaBuffer::Kind::kDismissal: {
        c[7] = 0;
        const uint32_t r = id(reason, reasons_, op.name[2]), s = id(stage, stages_, op.name[0]),
                       a = id(asset, assets_, op.name[1]);
        dismissals_.Add(op.day, r, s, a, c);
        changed_.insert({kind, op.day, r, s, a});
        break;
      }
      case DeltaBuffer::Kind::kFunnel: {
        c[7] = 0;
        std::string cell(d.names_.Name(op.name[0]));
        cell.push_back('\0');
        cell.push_back(op.flag ? '1' : '0');
        Plus(&funnel_[op.day][cell], c);
        changed_.insert({kind, op.day, id(stage, stages_, op.name[0]), op.flag, 0});
        break;
      }
      case DeltaBuffer::Kind::kExperiment: {
        Counters e{};
        e[op.field] = op.sign < 0 ? int64_t(0 - uint64_t(op.value)) : op.value;
        const Arm arm = op.flag ? Arm::kHoldout : Arm::kTreatment;
        Plus(&experiment_[op.day][ExperimentCell(arm, d.names_.Name(op.name[0]), d.names_.Name(op.name[1]))], e);
        changed_.insert({kind, op.day, uint32_t(arm), id(stage, stages_, op.name[0]), id(rep, reps_, op.name[1])});
        break;
      }
      case DeltaBuffer::Kind::kPhrase: {
        Counters p{};
        p[0] = op.sign;
        Plus(&phrases_[op.day][PhraseCell(d.names_.Name(op.name[0]), d.names_.Name(op.name[1]))], p);
        const uint32_t t = id(term, terms_, op.name[0]), a = id(asset, assets_, op.name[1]);
        AddPhrase(op.day, t, a, op.sign);
        changed_.insert({kind, op.day, t, a, 0});
        break;
      }
      case DeltaBuffer::Kind::kLastUsed: {
        auto [it, added] = last_used_.try_emplace(d.names_.Name(op.name[0]), op.value);
        if (!added) it->second = std::max(it->second, op.value);
        changed_.insert({kind, 0, id(asset, assets_, op.name[0]), 0, 0});
        break;
      }
    }
  }
}

Derived::ChangedValues Derived::TakeChanged() {
  ChangedValues out;
  out.changed = changed_.Take();
  out.values.reserve(out.changed.size());
  for (const Changed& k : out.changed) {
    Counters c{};
    switch (DeltaBuffer::Kind(k.kind)) {
      case DeltaBuffer::Kind::kRanking:
        if (const Counters* r = FindRanking(RankKey{k.a, k.b, k.c})) c = *r;
        break;
      case DeltaBuffer::Kind::kReport:
        if (const Cube::Entry* e = reports_.Find(k.day, k.a, k.b, k.c)) c = Cube::ToCounters(*e);
        break;
      case DeltaBuffer::Kind::kDismissal:
        if (const Cube::Entry* e = dismissals_.Find(k.day, k.a, k.b, k.c)) c = Cube::ToCounters(*e);
        break;
      case DeltaBuffer::Kind::kFunnel: {
        std::string cell = stages_.Name(k.a);
        cell.push_back('\0');
        cell.push_back(k.b ? '1' : '0');
        if (auto d = funnel_.find(k.day); d != funnel_.end()) {
          if (auto it = d->second.find(cell); it != d->second.end()) c = it->second;
        }
        break;
      }
      case DeltaBuffer::Kind::kExperiment:
        if (auto d = experiment_.find(k.day); d != experiment_.end()) {
          if (auto it = d->second.find(ExperimentCell(Arm(k.a), stages_.Name(k.b), reps_.Name(k.c)));
              it != d->second.end()) {
            c = it->second;
          }
        }
        break;
      case DeltaBuffer::Kind::kPhrase:
        if (auto d = phrases_.find(k.day); d != phrases_.end()) {
          if (auto it = d->second.find(PhraseCell(terms_.Name(k.a), assets_.Name(k.b))); it != d->second.end()) {
            c = it->second;
          }
        }
        break;
      case DeltaBuffer::Kind::kLastUsed:
        if (auto it = last_used_.find(assets_.Name(k.a)); it != last_used_.end()) c = {it->second, 1};
        break;
    }
    out.values.push_back(c);
  }
  out.assets = assets_.names();
  out.stages = stages_.names();
  out.reps = reps_.names();
  out.reasons = reasons_.names();
  out.topics = topics_.names();
  out.terms = terms_.names();
  return out;
}

void Derived::ChangedSet::insert(const Changed& k) {
  if ((keys_.size() + 1) * 2 > slots_.size()) {  // keep the load under 1/2
    slots_.assign(std::max<size_t>(64, slots_.size() * 2), UINT32_MAX);
    const size_t mask = slots_.size() - 1;
    for (uint32_t e = 0; e < keys_.size(); ++e) {
      size_t i = ChangedHash()(keys_[e]) & mask;
      while (slots_[i] != UINT32_MAX) i = (i + 1) & mask;
      slots_[i] = e;
    }
  }
  const size_t mask = slots_.size() - 1;
  size_t i = ChangedHash()(k) & mask;
  for (; slots_[i] != UINT32_MAX; i = (i + 1) & mask) {
    if (keys_[slots_[i]] == k) return;
  }
  slots_[i] = uint32_t(keys_.size());
  keys_.push_back(k);
}

void Derived::ChangedSet::clear() {
  keys_.clear();
  std::fill(slots_.begin(), slots_.end(), UINT32_MAX);
}

void Derived::ReturnChanged(const std::vector<Changed>& changed) { changed_.insert(changed.begin(), changed.end()); }

void Derived::ChangedValues::Keys(const CounterFn& counters, const LastUsedFn& last_used) const {
  for (size_t i = 0; i < changed.size(); ++i) {
    const Changed& k = changed[i];
    const Counters& c = values[i];
    switch (DeltaBuffer::Kind(k.kind)) {
      case DeltaBuffer::Kind::kRanking:
        counters(k.c == 0 ? StatsKey(assets[k.a], stages[k.b]) : StatsKey(assets[k.a], stages[k.b], topics[k.c - 1]), c);
        break;
      case DeltaBuffer::Kind::kReport:
        counters(AggregateKey(k.day, stages[k.b], reps[k.a], assets[k.c]), c);
        break;
      case DeltaBuffer::Kind::kDismissal:
        counters(DismissalKey(k.day, stages[k.b], assets[k.c], reasons[k.a]), c);
        break;
      case DeltaBuffer::Kind::kFunnel:
        counters(FunnelKey(k.day, stages[k.a], k.b != 0), c);
        break;
      case DeltaBuffer::Kind::kExperiment:
        counters(ExperimentKey(k.day, Arm(k.a), stages[k.b], reps[k.c]), c);
        break;
      case DeltaBuffer::Kind::kPhrase:
        counters(PhraseKey(k.day, terms[k.a], assets[k.b]), c);
        break;
      case DeltaBuffer::Kind::kLastUsed:
        if (c[1] != 0) last_used(assets[k.a], c[0]);
        break;
    }
  }
}

void Derived::ApplyLastUsed(const std::string& asset, int64_t ts) {
  auto [it, added] = last_used_.try_emplace(asset, ts);
  if (!added) it->second = std::max(it->second, ts);
}

void Derived::EnumerateUndated(const CounterFn& counters, const LastUsedFn& last_used) const {
  ForEachRanking([&](const RankKey& key, const Counters& c) {
    if (!IsZero(c)) counters(RankKeyName(key), c);
  });
  for (const auto& [asset, ts] : last_used_) last_used(asset, ts);
}

std::vector<uint32_t> Derived::Days() const {
  std::vector<uint32_t> days = reports_.Days(), more = dismissals_.Days();
  days.insert(days.end(), more.begin(), more.end());
  for (const auto& [day, cells] : funnel_) days.push_back(day);
  for (const auto& [day, cells] : experiment_) days.push_back(day);
  for (const auto& [day, cells] : phrases_) days.push_back(day);
  std::sort(days.begin(), days.end());
  days.erase(std::unique(days.begin(), days.end()), days.end());
  return days;
}

void Derived::EnumerateDay(uint32_t day, const CounterFn& counters) const {
  reports_.ForDay(day, [&](uint32_t row, uint32_t stage, const Cube::Entry& e) {
    const Counters c = Cube::ToCounters(e);
    if (!IsZero(c)) counters(AggregateKey(day, stages_.Name(stage), reps_.Name(row), assets_.Name(e.asset)), c);
  });
  dismissals_.ForDay(day, [&](uint32_t row, uint32_t stage, const Cube::Entry& e) {
    const Counters c = Cube::ToCounters(e);
    if (!IsZero(c)) counters(DismissalKey(day, stages_.Name(stage), assets_.Name(e.asset), reasons_.Name(row)), c);
  });
  for (const auto& [prefix, cells] : {std::pair{kFunnelPrefix, &funnel_}, std::pair{kExperimentPrefix, &experiment_},
                                      std::pair{kPhrasePrefix, &phrases_}}) {
    auto d = cells->find(day);
    if (d == cells->end()) continue;
    for (const auto& [rest, c] : d->second) {
      if (IsZero(c)) continue;
      std::string key(1, prefix);
      PutDay(&key, day);
      key += rest;
      counters(key, c);
    }
  }
}

void Derived::Enumerate(const CounterFn& counters, const LastUsedFn& last_used) const {
  EnumerateUndated(counters, last_used);
  for (uint32_t day : Days()) EnumerateDay(day, counters);
}

namespace {

// Keys of `a` that are non-zero and differ in `b` (absent = zero); with
// `only_absent`, only those zero or absent in `b`.
template <class Map>
uint64_t CountUnlikeKeys(const Map& a, const Map& b, bool only_absent) {
  uint64_t n = 0;
  for (const auto& [key, c] : a) {
    if (IsZero(c)) continue;
    auto it = b.find(key);
    const Counters theirs = it == b.end() ? Counters{} : it->second;
    if (only_absent ? IsZero(theirs) : theirs != c) ++n;
  }
  return n;
}

}  // namespace

uint64_t Derived::CountKeys() const {
  uint64_t n = reports_.CountNonZero() + dismissals_.CountNonZero();
  ForEachRanking([&n](const RankKey&, const Counters& c) { n += IsZero(c) ? 0 : 1; });
  for (const auto* by_day : {&funnel_, &experiment_, &phrases_}) {
    for (const auto& [day, cells] : *by_day) {
      for (const auto& [rest, c] : cells) n += IsZero(c) ? 0 : 1;
    }
  }
  return n;
}

uint64_t Derived::CountDifferences(const Derived& other) const {
  uint64_t n = 0;
  const std::unordered_map<std::string, Counters> none;
  for (const bool mine : {true, false}) {  // ours that differ, then theirs that we lack
    const Derived& a = mine ? *this : other;
    const Derived& b = mine ? other : *this;
    n += a.CountUnlikeRanking(b, !mine);
    for (const auto& [ours, theirs] : {std::pair{&a.funnel_, &b.funnel_}, std::pair{&a.experiment_, &b.experiment_},
                                       std::pair{&a.phrases_, &b.phrases_}}) {
      for (const auto& [day, cells] : *ours) {
        auto d = theirs->find(day);
        n += CountUnlikeKeys(cells, d == theirs->end() ? none : d->second, !mine);
      }
    }
    const std::vector<uint32_t> stages = a.stages_.MapTo(b.stages_), assets = a.assets_.MapTo(b.assets_);
    n += a.reports_.CountUnlike(b.reports_, a.reps_.MapTo(b.reps_), stages, assets, !mine);
    n += a.dismissals_.CountUnlike(b.dismissals_, a.reasons_.MapTo(b.reasons_), stages, assets, !mine);
    for (const auto& [asset, ts] : a.last_used_) {
      auto it = b.last_used_.find(asset);
      if (it == b.last_used_.end() || (mine && it->second != ts)) ++n;
    }
  }
  return n;
}

std::string Derived::RankKeyName(const RankKey& k) const {
  std::string key = assets_.Name(k.asset);
  key.push_back('\0');
  key += stages_.Name(k.stage);
  if (k.topic != 0) {
    key.push_back('\0');
    key += topics_.Name(k.topic - 1);
  }
  return key;
}

bool Derived::FindRankKey(std::string_view asset, std::string_view stage, const std::string_view* topic,
                          RankKey* k) const {
  k->asset = assets_.Find(asset);
  k->stage = stages_.Find(stage);
  k->topic = 0;
  if (topic != nullptr) {
    const uint32_t t = topics_.Find(*topic);
    if (t == UINT32_MAX) return false;
    k->topic = t + 1;
  }
  return k->asset != UINT32_MAX && k->stage != UINT32_MAX;
}

uint64_t Derived::CountUnlikeRanking(const Derived& other, bool only_absent) const {
  uint64_t n = 0;
  ForEachRanking([&](const RankKey& key, const Counters& c) {
    if (IsZero(c)) return;
    const std::string_view topic = key.topic == 0 ? std::string_view() : std::string_view(topics_.Name(key.topic - 1));
    RankKey theirs_key;
    Counters theirs{};
    if (other.FindRankKey(assets_.Name(key.asset), stages_.Name(key.stage), key.topic == 0 ? nullptr : &topic,
                          &theirs_key)) {
      if (const Counters* t = other.FindRanking(theirs_key)) theirs = *t;
    }
    if (only_absent ? IsZero(theirs) : theirs != c) ++n;
  });
  return n;
}

AssetStageStats Derived::Stats(std::string_view asset, std::string_view stage, std::string_view topic) const {
  AssetStageStats at_stage, at_topic;
  RankingStats(stage, topic, &asset, 1, &at_stage, &at_topic);
  return topic.empty() ? at_stage : at_topic;
}

uint32_t Derived::Generation::Next() {
  static std::atomic<uint32_t> next{1};
  uint32_t g = next.fetch_add(1, std::memory_order_relaxed);
  while (g == 0) g = next.fetch_add(1, std::memory_order_relaxed);  // 0 = nothing cached (after 2^32 copies)
  return g;
}

void Derived::AddRanking(const RankKey& k, const Counters& c) {
  if (k.topic != 0) Plus(&stats_[k], c);
  if (dense_.size() <= k.stage) dense_.resize(size_t(k.stage) + 1);
  std::vector<DenseCell>& row = dense_[k.stage];
  if (row.size() <= k.asset) {
    // Grown to the dictionary's size (at least), so that a stage's array is
    // reallocated about log(assets) times, not once per new asset.
    row.resize(std::max<size_t>(size_t(k.asset) + 1, std::min<size_t>(assets_.size(), 2 * (size_t(k.asset) + 1))));
  }
  DenseCell& cell = row[k.asset];
  if (k.topic == 0) {
    Plus(&cell.c, c);
  } else {
    cell.topics = true;
  }
}

const Counters* Derived::FindRanking(const RankKey& k) const {
  if (k.topic != 0) {
    auto it = stats_.find(k);
    return it == stats_.end() ? nullptr : &it->second;
  }
  if (k.stage >= dense_.size() || k.asset >= dense_[k.stage].size()) return nullptr;
  return &dense_[k.stage][k.asset].c;
}

uint32_t Derived::FindAsset(std::string_view name, OrdinalCache* cache) const {
  constexpr uint64_t kAbsent = 0x80000000u;
  const uint64_t gen = uint64_t(generation_.value) << 32;
  if (cache != nullptr) {
    const uint64_t v = cache->load(std::memory_order_relaxed);
    if ((v & ~uint64_t(0xFFFFFFFFu)) == gen) {
      const uint64_t low = v & 0xFFFFFFFFu;
      if ((low & kAbsent) == 0) return uint32_t(low);
      if ((low & ~kAbsent) == assets_.size()) return UINT32_MAX;  // nothing interned since it was absent
    }
  }
  const uint32_t a = assets_.Find(name);
  if (cache != nullptr && assets_.size() < kAbsent) {
    cache->store(gen | (a == UINT32_MAX ? kAbsent | assets_.size() : a), std::memory_order_relaxed);
  }
  return a;
}

void Derived::RankingStats(std::string_view stage, std::string_view topic, const std::string_view* assets,
                           OrdinalCache* const* caches, size_t n, AssetStageStats* at_stage,
                           AssetStageStats* at_topic) const {
  const uint32_t s = stages_.Find(stage);
  const uint32_t t = topic.empty() ? UINT32_MAX : topics_.Find(topic);
  const std::vector<DenseCell>* row = s < dense_.size() ? &dense_[s] : nullptr;
  for (size_t i = 0; i < n; ++i) {
    at_stage[i] = AssetStageStats{};
    if (!topic.empty()) at_topic[i] = AssetStageStats{};
    if (row == nullptr) continue;  // no counters at the stage (or an unknown stage)
    const uint32_t a = FindAsset(assets[i], caches == nullptr ? nullptr : caches[i]);
    if (a >= row->size()) continue;
    const DenseCell& cell = (*row)[a];
    AddTo(&at_stage[i], cell.c);
    if (t == UINT32_MAX || !cell.topics) continue;
    if (auto it = stats_.find(RankKey{a, s, t + 1}); it != stats_.end()) AddTo(&at_topic[i], it->second);
  }
}

bool Derived::DenseRankingMatchesKeys() const {
  std::vector<std::vector<bool>> want(dense_.size());
  for (const auto& [k, c] : stats_) {
    if (k.topic == 0 || k.stage >= dense_.size() || k.asset >= dense_[k.stage].size()) return false;
    if (want[k.stage].size() <= k.asset) want[k.stage].resize(size_t(k.asset) + 1);
    want[k.stage][k.asset] = true;
  }
  for (size_t s = 0; s < dense_.size(); ++s) {
    for (size_t a = 0; a < dense_[s].size(); ++a) {
      if (dense_[s][a].topics != (a < want[s].size() && want[s][a])) return false;
    }
  }
  return true;
}

AssetStageStats Derived::StageTotals(std::string_view stage) const {
  AssetStageStats s;
  if (const uint32_t id = stages_.Find(stage); id < stage_totals_.size()) AddTo(&s, stage_totals_[id]);
  return s;
}

Derived::AssetSums Derived::SumAssets(uint32_t first, uint32_t last, const std::string& stage,
                                      const std::string& rep) const {
  AssetSums out;
  const uint32_t all = reps_.Find(""), closed_asset = assets_.Find(""), no_stage = stages_.Find("");
  // The baseline: every lead closed in the window, whatever the filters.
  if (all != UINT32_MAX && closed_asset != UINT32_MAX && no_stage != UINT32_MAX) {
    reports_.Visit(
        first, last, [&](uint32_t r, uint32_t s) { return r == all && s == no_stage; },
        [&](uint32_t, uint32_t, const Cube::Entry& e) {
          if (e.asset == closed_asset) Plus(&out.closed, Cube::ToCounters(e));
        });
  }
  const uint32_t row = reps_.Find(rep), want_stage = stage.empty() ? UINT32_MAX : stages_.Find(stage);
  if (row == UINT32_MAX || (!stage.empty() && want_stage == UINT32_MAX)) return out;
  std::vector<Counters> sums(assets_.size(), Counters{});
  reports_.Visit(
      first, last, [&](uint32_t r, uint32_t s) { return r == row && (stage.empty() || s == want_stage); },
      [&](uint32_t, uint32_t, const Cube::Entry& e) {
        Counters& c = sums[e.asset];
        for (int i = 0; i < kCounters - 1; ++i) c[size_t(i)] = WrapAdd(c[size_t(i)], int32_t(e.n[i]));
        c[kCounters - 1] = WrapAdd(c[kCounters - 1], e.cents);
      });
  for (uint32_t a = 0; a < sums.size(); ++a) {
    if (a != closed_asset && !IsZero(sums[a])) out.by_asset.emplace_back(assets_.Name(a), sums[a]);
  }
  return out;
}

void Derived::SumReps(uint32_t first, uint32_t last, std::map<std::string, AssetStageStats>* reps,
                      std::map<std::string, std::pair<uint64_t, uint64_t>>* closed) const {
  std::vector<Counters> used(reps_.size(), Counters{}), outcomes(reps_.size(), Counters{});
  std::vector<bool> seen(reps_.size(), false), seen_closed(reps_.size(), false);
  rep_totals_.Visit(
      first, last, [](uint32_t, uint32_t) { return true; },
      [&](uint32_t r, uint32_t, const Cube::Entry& e) {
        const bool lead = e.asset == 1;
        Plus(lead ? &outcomes[r] : &used[r], Cube::ToCounters(e));
        (lead ? seen_closed : seen)[r] = true;
      });
  for (uint32_t r = 0; r < reps_.size(); ++r) {
    if (seen[r]) AddTo(&(*reps)[reps_.Name(r)], used[r]);
    if (seen_closed[r]) {
      auto& wl = (*closed)[reps_.Name(r)];
      wl.first += uint64_t(outcomes[r][4]);
      wl.second += uint64_t(outcomes[r][5]);
    }
  }
}

std::vector<Derived::Dismissal> Derived::SumDismissals(uint32_t first, uint32_t last, const std::string& stage) const {
  std::vector<Dismissal> out;
  const uint32_t want_stage = stage.empty() ? UINT32_MAX : stages_.Find(stage);
  if (!stage.empty() && want_stage == UINT32_MAX) return out;
  auto want = [&](uint32_t, uint32_t s) { return stage.empty() || s == want_stage; };
  // Dense per-asset sums for each reason while that stays small (a few
  // reasons, as with a CRM's picklist); a hash map for free-text reasons.
  const size_t assets = assets_.size();
  if (reasons_.size() * assets <= (size_t(1) << 22)) {
    std::vector<std::vector<int64_t>> sums(reasons_.size());
    dismissals_.Visit(first, last, want, [&](uint32_t reason, uint32_t, const Cube::Entry& e) {
      if (sums[reason].empty()) sums[reason].assign(assets, 0);
      sums[reason][e.asset] += int32_t(e.n[0]);
    });
    for (uint32_t r = 0; r < sums.size(); ++r) {
      for (uint32_t a = 0; a < sums[r].size(); ++a) {
        if (sums[r][a] > 0) out.push_back({assets_.Name(a), reasons_.Name(r), uint64_t(sums[r][a])});
      }
    }
    return out;
  }
  std::unordered_map<uint64_t, int64_t> sums;  // asset << 32 | reason
  sums.reserve(4096);
  dismissals_.Visit(first, last, want, [&](uint32_t reason, uint32_t, const Cube::Entry& e) {
    sums[(uint64_t(e.asset) << 32) | reason] += int32_t(e.n[0]);
  });
  out.reserve(sums.size());
  for (const auto& [k, n] : sums) {
    if (n > 0) out.push_back({assets_.Name(uint32_t(k >> 32)), reasons_.Name(uint32_t(k)), uint64_t(n)});
  }
  return out;
}

namespace {
std::map<std::string, Counters> SumDays(const std::map<uint32_t, std::unordered_map<std::string, Counters>>& by_day,
                                        uint32_t first, uint32_t last) {
  std::map<std::string, Counters> out;
  for (auto d = by_day.lower_bound(first); d != by_day.end() && d->first <= last; ++d) {
    for (const auto& [rest, c] : d->second) Plus(&out[rest], c);
  }
  return out;
}
}  // namespace

std::map<std::string, Counters> Derived::SumFunnel(uint32_t first, uint32_t last) const {
  return SumDays(funnel_, first, last);
}

std::map<std::string, Counters> Derived::SumExperiment(uint32_t first, uint32_t last) const {
  return SumDays(experiment_, first, last);
}

void Derived::AddPhrase(uint32_t day, uint32_t term, uint32_t asset, int64_t uses) {
  if (by_term_.size() <= term) by_term_.resize(term + 1);
  // Written with no reader (the writer holds the store's lock exclusively).
  if (term < summaries_.by_term.size()) summaries_.by_term[term].valid = false;
  std::vector<PhraseEntry>& list = by_term_[term];
  auto it = std::lower_bound(list.begin(), list.end(), std::pair{asset, day}, [](const PhraseEntry& e, const auto& k) {
    return e.asset != k.first ? e.asset < k.first : e.day < k.second;
  });
  if (it != list.end() && it->asset == asset && it->day == day) {
    it->uses = WrapAdd(it->uses, uses);
  } else {
    list.insert(it, PhraseEntry{asset, day, uses});
  }
}

namespace {
// A use's weight as of `today`: whole until its week ends (its first day + 6),
// then halved every half_life_days.
double Decay(uint32_t today, uint32_t day, double half_life_days) {
  const uint64_t end = uint64_t(day) + 6;
  return today <= end ? 1.0 : std::exp2(-double(today - end) / std::max(half_life_days, 1e-9));
}
}  // namespace

void Derived::PhraseWeights(const std::vector<std::string>& terms, uint32_t today, double half_life_days,
                            double min_support, std::vector<PhraseWeight>* out) const {
  out->clear();
  std::vector<double> best;                    // per out entry: the strongest term's part
  std::unordered_map<uint32_t, size_t> index;  // asset -> its out entry
  std::lock_guard<std::mutex> lock(summaries_.mu);
  if (summaries_.by_term.size() < by_term_.size()) summaries_.by_term.resize(by_term_.size());
  for (size_t ti = 0; ti < terms.size(); ++ti) {
    const uint32_t t = terms_.Find(terms[ti]);
    if (t == UINT32_MAX || t >= by_term_.size()) continue;
    TermSummary& sum = summaries_.by_term[t];
    if (!sum.valid || sum.today != today || sum.half_life_days != half_life_days || sum.min_support != min_support) {
      SummarizeTerm(t, today, half_life_days, min_support, &sum);
    }
    for (const auto& [asset, part] : sum.top) {
      auto [at, added] = index.try_emplace(asset, out->size());
      const size_t i = at->second;
      if (added) {
        out->push_back({assets_.Name(asset), 0, ti});
        best.push_back(0);
      }
      (*out)[i].weight += part;
      if (part > best[i]) {
        best[i] = part;
        (*out)[i].term = ti;
      }
    }
  }
  std::sort(out->begin(), out->end(), [](const PhraseWeight& a, const PhraseWeight& b) {
    return a.weight != b.weight ? a.weight > b.weight : a.asset < b.asset;
  });
}

void Derived::SummarizeTerm(uint32_t t, uint32_t today, double half_life_days, double min_support,
                            TermSummary* sum) const {
  struct PerAsset {
    uint32_t asset;
    int64_t uses;
    double support;
  };
  thread_local std::vector<PerAsset> per_asset;  // the term's assets, reused
  per_asset.clear();
  double total = 0;
  for (const PhraseEntry& e : by_term_[t]) {  // sorted by asset: one run per asset
    if (e.uses <= 0) continue;
    const double w = double(e.uses) * Decay(today, e.day, half_life_days);
    if (per_asset.empty() || per_asset.back().asset != e.asset) per_asset.push_back({e.asset, 0, 0});
    int64_t& uses = per_asset.back().uses;  // saturating: a damaged stored count must not overflow
    uses = e.uses > std::numeric_limits<int64_t>::max() - uses ? std::numeric_limits<int64_t>::max() : uses + e.uses;
    per_asset.back().support += w;
    total += w;
  }
  sum->top.clear();
  for (const PerAsset& pa : per_asset) {
    if (double(pa.uses) < min_support || total <= 0) continue;
    sum->top.emplace_back(pa.asset, pa.support * (pa.support / total));
  }
  if (sum->top.size() > kPhraseTop) {  // the strongest, ties by asset ordinal
    std::partial_sort(sum->top.begin(), sum->top.begin() + kPhraseTop, sum->top.end(),
                      [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    sum->top.resize(kPhraseTop);
  }
  sum->valid = true;
  sum->today = today;
  sum->half_life_days = half_life_days;
  sum->min_support = min_support;
}

std::vector<Derived::PhraseUses> Derived::SumPhrases(uint32_t today, double half_life_days) const {
  std::vector<PhraseUses> out;
  for (uint32_t t = 0; t < by_term_.size(); ++t) {
    for (const PhraseEntry& e : by_term_[t]) {
      if (e.uses <= 0) continue;
      if (out.empty() || out.back().term != terms_.Name(t) || out.back().asset != assets_.Name(e.asset)) {
        out.push_back({assets_.Name(e.asset), terms_.Name(t), 0, 0});
      }
      out.back().uses += uint64_t(e.uses);
      out.back().support += double(e.uses) * Decay(today, e.day, half_life_days);
    }
  }
  return out;
}

}  // namespace playbook

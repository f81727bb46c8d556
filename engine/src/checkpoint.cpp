// The counters' checkpoint (derived.h): everything Derived holds, in a few
// typed sections that a start reads in one pass, instead of a stats-CF key per
// counter parsed back from strings. Layout (little-endian; u32/u64/i64 fixed
// width; a string is u32 length then bytes; docs/design.md "Feedback"):
//
//   "PBCK" u8 version(1) u64 seq             the events below seq are counted
//   6 dictionaries: assets stages reps reasons topics terms
//                   u32 n, n strings          ids = positions
//   ranking:        u32 n, n x (u32 asset, u32 stage, u32 topic(0 none, else
//                   id + 1), 8 x i64)
//   reports, dismissals (cubes, day level):   u32 days, per day: u32 day,
//                   u32 cells, per cell: u32 row, u32 stage, u32 n, n x
//                   Cube::Entry (u32 asset, 7 x u32, i64 cents: 40 bytes)
//   funnel, experiment, phrases:              u32 days, per day: u32 day,
//                   u32 n, n x (string cell, 8 x i64)
//   last use:       u32 n, n x (string asset, i64 ms)
//   "KCBP"                                    the end
//
// What is derived from these (week buckets, per-rep totals, stage totals, the
// phrases by term) is re-summed while reading. Zero counters are left out.
// Never trusted: every count is bounded by the bytes left, every id by its
// dictionary, and a name twice in a dictionary or an asset twice in a cell is
// damage.
#include <cstring>

#include "derived.h"

namespace playbook {

namespace {

constexpr char kMagic[4] = {'P', 'B', 'C', 'K'};
constexpr char kEnd[4] = {'K', 'C', 'B', 'P'};
constexpr uint8_t kVersion = 1;

static_assert(sizeof(Cube::Entry) == 40, "the checkpoint stores Cube::Entry as 40 bytes");

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
void PutString(std::string* out, std::string_view s) {
  PutU32(out, uint32_t(s.size()));
  out->append(s);
}
void PutCounters(std::string* out, const Counters& c) { out->append(reinterpret_cast<const char*>(c.data()), sizeof c); }

template <class ByDay>
void PutByDay(std::string* out, const ByDay& by_day) {
  PutU32(out, uint32_t(by_day.size()));
  for (const auto& [day, cells] : by_day) {
    PutU32(out, day);
    const size_t at = out->size();
    PutU32(out, 0);
    uint32_t n = 0;
    for (const auto& [cell, c] : cells) {
      if (IsZero(c)) continue;
      PutString(out, cell);
      PutCounters(out, c);
      ++n;
    }
    std::memcpy(out->data() + at, &n, 4);
  }
}

}  // namespace

// Reads the checkpoint's bytes; any read past the end fails it for good.
class CheckpointReader {
 public:
  explicit CheckpointReader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t left() const { return in_.size() - at_; }
  bool Bytes(void* out, size_t n) {
    if (!ok_ || left() < n) return ok_ = false;
    std::memcpy(out, in_.data() + at_, n);
    at_ += n;
    return true;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Bytes(&v, 4);
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Bytes(&v, 8);
    return v;
  }
  std::string_view String() {
    const uint32_t n = U32();
    if (!ok_ || left() < n) {
      ok_ = false;
      return {};
    }
    std::string_view s = in_.substr(at_, n);
    at_ += n;
    return s;
  }
  Counters ReadCounters() {
    Counters c{};
    Bytes(c.data(), sizeof c);
    return c;
  }
  // A count of items of at least `min_bytes` each: false when the bytes left
  // cannot hold them (a damaged count must not reserve gigabytes).
  bool Count(uint32_t* n, size_t min_bytes) {
    *n = U32();
    if (ok_ && uint64_t(*n) * min_bytes > left()) ok_ = false;
    return ok_;
  }
  void Fail() { ok_ = false; }

 private:
  std::string_view in_;
  size_t at_ = 0;
  bool ok_ = true;
};

bool Cube::Cell::Index() {
  size_t size = 8;
  while (size < (entries.size() + 1) * 2) size *= 2;  // the load At keeps: under 1/2
  slots.assign(size, UINT32_MAX);
  const size_t mask = size - 1;
  for (uint32_t e = 0; e < entries.size(); ++e) {
    size_t i = (entries[e].asset * 2654435761u) & mask;  // At's hash
    for (; slots[i] != UINT32_MAX; i = (i + 1) & mask) {
      if (entries[slots[i]].asset == entries[e].asset) return false;
    }
    slots[i] = e;
  }
  return true;
}

void Cube::Encode(std::string* out) const {
  PutU32(out, uint32_t(days_.size()));
  for (const auto& [day, bucket] : days_) {
    PutU32(out, day);
    const size_t cells_at = out->size();
    PutU32(out, 0);
    uint32_t cells = 0;
    for (const auto& [key, cell] : bucket) {
      const size_t at = out->size();
      PutU32(out, uint32_t(key >> 32));
      PutU32(out, uint32_t(key));
      PutU32(out, 0);
      uint32_t n = 0;
      for (const Entry& e : cell.entries) {
        if (IsZero(ToCounters(e))) continue;
        out->append(reinterpret_cast<const char*>(&e), sizeof e);
        ++n;
      }
      if (n == 0) {
        out->resize(at);  // a cell of zeros only: left out
        continue;
      }
      std::memcpy(out->data() + at + 8, &n, 4);
      ++cells;
    }
    std::memcpy(out->data() + cells_at, &cells, 4);
  }
}

bool Cube::Decode(CheckpointReader& in, uint32_t rows, uint32_t stages, uint32_t assets) {
  uint32_t days = 0;
  if (!in.Count(&days, 8)) return false;
  for (uint32_t d = 0; d < days; ++d) {
    const uint32_t day = in.U32();
    uint32_t cells = 0;
    if (!in.Count(&cells, 12)) return false;
    Bucket& bucket = days_[day];
    bucket.reserve(bucket.size() + cells);
    for (uint32_t c = 0; c < cells; ++c) {
      const uint32_t row = in.U32(), stage = in.U32();
      uint32_t n = 0;
      if (!in.Count(&n, sizeof(Entry)) || row >= rows || stage >= stages) return false;
      if (n == 0) continue;
      Cell& cell = bucket[(uint64_t(row) << 32) | stage];
      if (!cell.entries.empty()) return false;  // a cell twice
      cell.entries.resize(n);
      if (!in.Bytes(cell.entries.data(), size_t(n) * sizeof(Entry))) return false;
      for (const Entry& e : cell.entries) {
        if (e.asset >= assets) return false;
      }
      if (!cell.Index()) return false;
      Bucket& week = weeks_[day / 7];
      for (const Entry& e : cell.entries) AddTo(week, row, stage, e.asset, ToCounters(e));
    }
  }
  return true;
}

void Derived::EncodeCheckpoint(uint64_t seq, std::string* out) const {
  out->clear();
  out->append(kMagic, 4);
  out->push_back(char(kVersion));
  PutU64(out, seq);
  for (const Dictionary* dict : {&assets_, &stages_, &reps_, &reasons_, &topics_, &terms_}) {
    PutU32(out, uint32_t(dict->size()));
    for (const std::string& name : dict->names()) PutString(out, name);
  }
  const size_t at = out->size();
  PutU32(out, 0);
  uint32_t n = 0;
  ForEachRanking([&](const RankKey& k, const Counters& c) {
    if (IsZero(c)) return;
    PutU32(out, k.asset);
    PutU32(out, k.stage);
    PutU32(out, k.topic);
    PutCounters(out, c);
    ++n;
  });
  std::memcpy(out->data() + at, &n, 4);
  reports_.Encode(out);
  dismissals_.Encode(out);
  PutByDay(out, funnel_);
  PutByDay(out, experiment_);
  PutByDay(out, phrases_);
  PutU32(out, uint32_t(last_used_.size()));
  for (const auto& [asset, ts] : last_used_) {
    PutString(out, asset);
    PutU64(out, uint64_t(ts));
  }
  out->append(kEnd, 4);
}

Status Derived::DecodeCheckpoint(std::string_view bytes, uint64_t* seq) {
  auto bad = [](const char* what) { return Status::Corruption(std::string("counters' checkpoint: ") + what); };
  CheckpointReader in(bytes);
  generation_ = Generation();  // ordinals remembered for what this held before mean nothing now
  char magic[4] = {};
  uint8_t version = 0;
  if (!in.Bytes(magic, 4) || std::memcmp(magic, kMagic, 4) != 0) return bad("not a checkpoint");
  if (!in.Bytes(&version, 1) || version != kVersion) return bad("unknown version");
  *seq = in.U64();
  for (Dictionary* dict : {&assets_, &stages_, &reps_, &reasons_, &topics_, &terms_}) {
    uint32_t n = 0;
    if (!in.Count(&n, 4)) return bad("truncated dictionary");
    dict->Reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      const std::string_view name = in.String();
      if (!in.ok() || dict->Intern(name) != i) return bad("damaged dictionary");
    }
  }
  if (reps_.size() > 0 && !reps_.Name(0).empty()) return bad("reps do not start with all reps");
  const uint32_t assets = uint32_t(assets_.size()), stages = uint32_t(stages_.size());
  uint32_t n = 0;
  if (!in.Count(&n, 12 + sizeof(Counters))) return bad("truncated ranking counters");
  stats_.reserve(n / 4);  // those with a topic
  stage_totals_.assign(stages, Counters{});
  for (uint32_t i = 0; i < n; ++i) {
    const RankKey k{in.U32(), in.U32(), in.U32()};
    const Counters c = in.ReadCounters();
    if (!in.ok() || k.asset >= assets || k.stage >= stages || k.topic > topics_.size()) {
      return bad("damaged ranking counters");
    }
    if (const Counters* held = FindRanking(k); held != nullptr && !IsZero(*held)) {
      return bad("ranking counters twice");  // only non-zero ones are written
    }
    AddRanking(k, c);
    if (k.topic == 0 && !stages_.Name(k.stage).empty()) Plus(&stage_totals_[k.stage], c);
  }
  if (!reports_.Decode(in, uint32_t(reps_.size()), stages, assets)) return bad("damaged report counters");
  // Per rep, the assets summed: [0] content, [1] the leads the rep closed.
  const uint32_t closed = assets_.Find("");
  for (uint32_t day : reports_.Days()) {
    reports_.ForDay(day, [&](uint32_t row, uint32_t stage, const Cube::Entry& e) {
      if (row != 0) rep_totals_.Add(day, row, stage, e.asset == closed ? 1 : 0, Cube::ToCounters(e));
    });
  }
  if (!dismissals_.Decode(in, uint32_t(reasons_.size()), stages, assets)) return bad("damaged dismissals");
  for (auto* by_day : {&funnel_, &experiment_, &phrases_}) {
    uint32_t days = 0;
    if (!in.Count(&days, 8)) return bad("truncated day counters");
    for (uint32_t d = 0; d < days; ++d) {
      const uint32_t day = in.U32();
      uint32_t cells = 0;
      if (!in.Count(&cells, 4 + sizeof(Counters))) return bad("truncated day counters");
      auto& map = (*by_day)[day];
      map.reserve(map.size() + cells);
      for (uint32_t i = 0; i < cells; ++i) {
        const std::string_view cell = in.String();
        const Counters c = in.ReadCounters();
        if (!in.ok() || !map.emplace(cell, c).second) return bad("damaged day counters");
        if (by_day == &phrases_) {  // term \0 asset
          const size_t z = cell.find('\0');
          if (z == std::string_view::npos) return bad("damaged phrase counters");
          AddPhrase(day, terms_.Intern(cell.substr(0, z)), assets_.Intern(cell.substr(z + 1)), c[0]);
        }
      }
    }
  }
  if (!in.Count(&n, 12)) return bad("truncated last uses");
  last_used_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const std::string_view asset = in.String();
    const int64_t ts = int64_t(in.U64());
    if (!in.ok() || !last_used_.emplace(asset, ts).second) return bad("damaged last uses");
  }
  char end[4] = {};
  if (!in.Bytes(end, 4) || std::memcmp(end, kEnd, 4) != 0 || in.left() != 0) return bad("damaged end");
  return Status::Ok();
}

}  // namespace playbook

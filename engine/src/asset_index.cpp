#include "asset_index.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <queue>
#include <unordered_set>

#include "simd.h"
#include "variants.h"

namespace playbook {

// ---- storage -----------------------------------------------------------------

namespace {

void Normalize(float* v, uint32_t d) {
  double n = 0;
  for (uint32_t i = 0; i < d; ++i) n += double(v[i]) * v[i];
  if (n <= 0) return;
  const float inv = float(1.0 / std::sqrt(n));
  for (uint32_t i = 0; i < d; ++i) v[i] *= inv;
}

// Inner product with the kernel chosen at run time (AVX-512, AVX2 or
// scalar): the graph's distance computer uses the same one, so the exact
// scan and the graph rank on the same numbers.
float Dot(const float* a, const float* b, uint32_t d) { return simd::Dot(a, b, d); }

// Serving threads search with one OpenMP thread: faiss otherwise starts a
// spinning team per query that starves the network threads (STACK.md).
void OneOmpThread() {
  thread_local bool set = false;
  if (!set) {
    omp_set_num_threads(1);
    set = true;
  }
}

// Min-heap of the best k (score, slot).
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {}
  void Push(float s, uint32_t slot) {
    if (heap_.size() < k_) {
      heap_.emplace(s, slot);
    } else if (k_ > 0 && s > heap_.top().first) {
      heap_.pop();
      heap_.emplace(s, slot);
    }
  }
  std::vector<std::pair<float, uint32_t>> Sorted() {
    std::vector<std::pair<float, uint32_t>> out;
    while (!heap_.empty()) {
      out.push_back(heap_.top());
      heap_.pop();
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

 private:
  using Entry = std::pair<float, uint32_t>;
  struct Greater {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    }
  };
  size_t k_;
  std::priority_queue<Entry, std::vector<Entry>, Greater> heap_;
};

}  // namespace

AssetIndex::AssetIndex(uint32_t dimension, std::vector<std::string> stages, IndexOptions options)
    : dim_(dimension), stages_(std::move(stages)), options_(std::move(options)),
      vectors_(std::make_shared<VectorStore>(dimension)) {
  stage_bits_.resize(stages_.size());
}

AssetIndex::~AssetIndex() = default;

uint64_t AssetIndex::StageMask(const std::vector<std::string>& stages) const {
  uint64_t m = 0;
  for (const auto& s : stages) {
    auto it = std::find(stages_.begin(), stages_.end(), s);
    if (it != stages_.end()) m |= uint64_t(1) << (it - stages_.begin());
  }
  return m;
}

uint32_t AssetIndex::Intern(const std::string& s) {
  if (s.empty()) return 0;
  auto [it, inserted] = dict_.emplace(s, uint32_t(dict_.size() + 1));
  return it->second;
}

uint32_t AssetIndex::AddSlotLocked(const SlotFields& f, const float* v, bool normalized) {
  if (auto it = slot_of_.find(f.id); it != slot_of_.end()) KillLocked(it->second);
  Slot s;
  s.id = f.id;
  if (f.display) {
    s.display = f.display;
  } else {
    auto display = std::make_shared<AssetDisplay>();
    display->id = f.id;
    display->type = f.type;
    s.display = std::move(display);
  }
  s.stages = StageMask(f.stages);
  s.type = Intern(f.type);
  s.language = Intern(f.language);
  for (const auto& t : f.tags) s.tags.push_back(Intern(t));
  std::sort(s.tags.begin(), s.tags.end());
  s.active = f.active;
  return AppendSlotLocked(std::move(s), v, normalized);
}

uint32_t AssetIndex::AppendSlotLocked(Slot s, const float* v, bool normalized) {
  float* row = vectors_->Append();
  std::memcpy(row, v, sizeof(float) * dim_);
  if (!normalized) Normalize(row, dim_);
  const uint32_t slot = uint32_t(slots_.size());
  keys_.push_back(Key{s.stages, s.type, s.language, s.active, true});
  const size_t words = slots_.size() / 64 + 1;
  for (size_t b = 0; b < stage_bits_.size(); ++b) {
    if (stage_bits_[b].size() < words) stage_bits_[b].resize(words, 0);
    if (s.active && (s.stages & (uint64_t(1) << b))) {
      stage_bits_[b][slots_.size() / 64] |= uint64_t(1) << (slots_.size() % 64);
    }
  }
  slot_of_[s.id] = slot;
  slots_.push_back(std::move(s));
  ++live_;
  return slot;
}

void AssetIndex::KillLocked(uint32_t slot) {
  Slot& s = slots_[slot];
  if (!s.alive) return;
  s.alive = false;
  keys_[slot].alive = false;
  for (auto& bits : stage_bits_) bits[slot / 64] &= ~(uint64_t(1) << (slot % 64));
  --live_;
  auto it = slot_of_.find(s.id);
  if (it != slot_of_.end() && it->second == slot) slot_of_.erase(it);
  if (recording_) killed_since_snapshot_.push_back(slot);
}

void AssetIndex::Upsert(const std::vector<SlotFields>& fields, const float* vectors) {
  std::unique_lock lock(mu_);
  for (size_t i = 0; i < fields.size(); ++i) AddSlotLocked(fields[i], vectors + i * dim_);
  adds_since_build_ += fields.size();
  ++changes_;
}

void AssetIndex::Remove(const std::vector<std::string>& ids) {
  std::unique_lock lock(mu_);
  ++changes_;
  for (const auto& id : ids) {
    if (auto it = slot_of_.find(id); it != slot_of_.end()) KillLocked(it->second);
  }
}

Result<size_t> AssetIndex::StageIndex(const std::string& stage) const {
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  if (it == stages_.end()) return Status::InvalidArgument("stage", "unknown stage '" + stage + "'");
  return size_t(it - stages_.begin());
}

Result<std::vector<SearchHit>> AssetIndex::Search(const float* query, const AssetFilter& filter,
                                                  size_t k) const {
  auto stage = StageIndex(filter.stage);
  if (!stage.ok()) return stage.status();
  std::vector<float> q;
  if (query != nullptr) {
    q.assign(query, query + dim_);
    Normalize(q.data(), dim_);
  }
  std::vector<std::pair<float, uint32_t>> found;
  std::shared_lock lock(mu_);
  SearchLocked(query ? q.data() : nullptr, filter, stage.value(), k, &found);
  std::vector<SearchHit> hits;
  hits.reserve(found.size());
  for (const auto& [score, slot] : found) hits.push_back({slots_[slot].id, score});
  return hits;
}

Status AssetIndex::SearchForRanking(const float* query, const AssetFilter& filter, size_t k,
                                    RankingHits* out) const {
  auto stage = StageIndex(filter.stage);
  if (!stage.ok()) return stage.status();
  thread_local std::vector<float> q;  // no allocation per request
  q.clear();
  if (query != nullptr) {
    q.assign(query, query + dim_);
    Normalize(q.data(), dim_);
  }
  thread_local std::vector<std::pair<float, uint32_t>> found;
  found.clear();
  std::shared_lock lock(mu_);
  SearchLocked(query ? q.data() : nullptr, filter, stage.value(), k, &found);
  out->hits.clear();
  out->hits.reserve(found.size());
  for (const auto& [score, slot] : found) out->hits.push_back({score, vectors_->row(slot), slots_[slot].display});
  out->store = vectors_;
  return Status::Ok();
}

void AssetIndex::SearchLocked(const float* query, const AssetFilter& filter, size_t stage_index, size_t k,
                              std::vector<std::pair<float, uint32_t>>* out) const {
  // Codes of the filter's values; a value never seen matches nothing.
  auto code = [&](const std::string& s) -> int64_t {
    auto it = dict_.find(s);
    return it == dict_.end() ? -1 : int64_t(it->second);
  };
  std::vector<uint32_t> types, tags;
  for (const auto& t : filter.types) if (int64_t c = code(t); c > 0) types.push_back(uint32_t(c));
  for (const auto& t : filter.tags_any) if (int64_t c = code(t); c > 0) tags.push_back(uint32_t(c));
  if (!filter.types.empty() && types.empty()) return;
  if (!filter.tags_any.empty() && tags.empty()) return;
  int64_t language = 0;
  if (!filter.language.empty()) {
    language = code(filter.language);
    if (language < 0) return;
  }
  std::unordered_set<uint32_t> excluded;
  for (const auto& id : filter.exclude_ids) {
    if (auto it = slot_of_.find(id); it != slot_of_.end()) excluded.insert(it->second);
  }

  const uint32_t n = uint32_t(slots_.size());
  const uint32_t ann_n = ann_ ? uint32_t(ann_->size()) : 0;
  std::vector<uint64_t> bits(stage_bits_[stage_index].begin(), stage_bits_[stage_index].end());
  bits.resize(n / 64 + 1, 0);
  if (!filter.only_ids.empty()) {  // the other filters still apply to these
    std::vector<uint64_t> only(bits.size(), 0);
    for (const auto& id : filter.only_ids) {
      if (auto it = slot_of_.find(id); it != slot_of_.end()) only[it->second / 64] |= uint64_t(1) << (it->second % 64);
    }
    for (size_t w = 0; w < bits.size(); ++w) bits[w] &= only[w];
  }
  const bool more = !types.empty() || language != 0 || !tags.empty() || !excluded.empty();
  uint32_t eligible_ann = 0;
  for (size_t w = 0; w < bits.size(); ++w) {
    uint64_t word = bits[w];
    if (more) {
      for (uint64_t rest = word; rest != 0; rest &= rest - 1) {
        const uint32_t i = uint32_t(w * 64 + uint32_t(__builtin_ctzll(rest)));
        const Key& key = keys_[i];
        bool ok = (types.empty() || std::find(types.begin(), types.end(), key.type) != types.end()) &&
                  (language == 0 || key.language == uint32_t(language));
        if (ok && !tags.empty()) {
          ok = std::any_of(tags.begin(), tags.end(), [&](uint32_t t) {
            return std::binary_search(slots_[i].tags.begin(), slots_[i].tags.end(), t);
          });
        }
        if (ok && !excluded.empty()) ok = !excluded.count(i);
        if (!ok) word &= ~(uint64_t(1) << (i % 64));
      }
      bits[w] = word;
    }
    if (w * 64 < ann_n) {
      const uint32_t below = ann_n - uint32_t(w * 64);
      eligible_ann += uint32_t(__builtin_popcountll(below >= 64 ? word : word & ((uint64_t(1) << below) - 1)));
    }
  }

  if (query == nullptr) {  // no query: the eligible assets themselves
    for (size_t w = 0; w < bits.size() && out->size() < k; ++w) {
      for (uint64_t rest = bits[w]; rest != 0 && out->size() < k; rest &= rest - 1) {
        out->emplace_back(0.0f, uint32_t(w * 64 + uint32_t(__builtin_ctzll(rest))));
      }
    }
    return;
  }

  TopK top(k);
  uint32_t exact_from = 0;
  if (ann_n > 0 && eligible_ann >= options_.exact_below_fraction * ann_n && k > 0) {
    OneOmpThread();
    std::vector<std::pair<float, uint32_t>> found;
    const int ef = int(std::max<size_t>(options_.hnsw_ef_search, k));
    ann_->Search(query, k, reinterpret_cast<const uint8_t*>(bits.data()), (ann_n + 7) / 8, ef, &found);
    // The graph's scores are already the exact path's numbers: the same
    // kernel (simd::Dot) over a copy of the same rows, so no re-scoring
    // (which read every hit's row again from the slots' store, rows the graph
    // walk had not touched: 0.3-0.7 us a row, about 70 us of a recommend's
    // 100 candidates at 100,000 assets).
    for (const auto& [sim, slot] : found) top.Push(sim, slot);
    exact_from = ann_n;
  }
  for (size_t w = exact_from / 64; w < bits.size(); ++w) {
    for (uint64_t rest = bits[w]; rest != 0; rest &= rest - 1) {
      const uint32_t i = uint32_t(w * 64 + uint32_t(__builtin_ctzll(rest)));
      if (i >= exact_from) top.Push(Dot(query, vectors_->row(i), dim_), i);
    }
  }
  *out = top.Sorted();
}

void AssetIndex::ResetLocked() {
  slots_.clear();
  keys_.clear();
  for (auto& b : stage_bits_) b.clear();
  slot_of_.clear();
  vectors_ = std::make_shared<VectorStore>(dim_);
  live_ = 0;
  ++layout_;
}

std::vector<const std::string*> AssetIndex::NamesLocked() const {
  std::vector<const std::string*> names(dict_.size() + 1, nullptr);
  for (const auto& [s, c] : dict_) names[c] = &s;
  return names;
}

SlotFields AssetIndex::FieldsLocked(uint32_t slot, const std::vector<const std::string*>& names) const {
  const Slot& s = slots_[slot];
  auto name = [&](uint32_t c) { return c == 0 ? std::string() : *names[c]; };
  SlotFields f;
  f.id = s.id;
  for (size_t b = 0; b < stages_.size(); ++b) {
    if (s.stages & (uint64_t(1) << b)) f.stages.push_back(stages_[b]);
  }
  f.type = name(s.type);
  f.language = name(s.language);
  for (uint32_t t : s.tags) f.tags.push_back(name(t));
  f.active = s.active;
  f.display = s.display;
  return f;
}

bool AssetIndex::VectorOf(const std::string& id, float* out) const {
  std::shared_lock lock(mu_);
  auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return false;
  std::memcpy(out, vectors_->row(it->second), sizeof(float) * dim_);
  return true;
}

bool AssetIndex::IsLive(const std::string& id) const {
  std::shared_lock lock(mu_);
  return slot_of_.count(id) > 0;
}

std::string AssetIndex::VariantOf(const std::string& id) const {
  std::shared_lock lock(mu_);
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? std::string() : slots_[it->second].display->variant_of;
}

std::vector<std::string> AssetIndex::ContentRoots(const std::vector<std::string_view>& ids) const {
  std::shared_lock lock(mu_);
  auto next = [this](const std::string& id) {
    auto it = slot_of_.find(id);
    return it == slot_of_.end() ? std::string() : slots_[it->second].display->variant_of;
  };
  std::vector<std::string> roots;
  roots.reserve(ids.size());
  for (std::string_view id : ids) roots.push_back(ContentRoot(std::string(id), next));
  return roots;
}

AssetIndex::Snapshot AssetIndex::TakeSnapshot() {
  std::unique_lock lock(mu_);
  Snapshot snap;
  snap.watermark = uint32_t(slots_.size());
  snap.fields.reserve(live_);
  snap.vectors.reserve(size_t(live_) * dim_);
  const auto names = NamesLocked();
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].alive) continue;
    snap.fields.push_back(FieldsLocked(i, names));
    const float* row = vectors_->row(i);
    snap.vectors.insert(snap.vectors.end(), row, row + dim_);
    snap.slots.push_back(i);
  }
  recording_ = true;
  killed_since_snapshot_.clear();
  return snap;
}

void AssetIndex::Install(Snapshot snap, std::unique_ptr<AnnIndex> ann) {
  std::unique_lock lock(mu_);
  // The old slots that changed after the snapshot, before the swap.
  std::unordered_set<uint32_t> killed(killed_since_snapshot_.begin(), killed_since_snapshot_.end());
  std::vector<uint32_t> replay;
  for (uint32_t i = snap.watermark; i < slots_.size(); ++i) {
    if (slots_[i].alive) replay.push_back(i);
  }
  std::vector<SlotFields> replay_fields;
  std::vector<float> replay_vectors;
  const auto names = NamesLocked();
  for (uint32_t i : replay) {
    replay_fields.push_back(FieldsLocked(i, names));
    const float* row = vectors_->row(i);
    replay_vectors.insert(replay_vectors.end(), row, row + dim_);
  }

  // Both the snapshot's rows and the replayed ones are slot rows, normalised
  // already: copied as they are, so the new slots hold exactly the rows the
  // graph was built from (normalising again moves the last bits, and the
  // graph's scores would no longer be the exact scan's).
  ResetLocked();
  for (size_t i = 0; i < snap.fields.size(); ++i) {
    const uint32_t slot = AddSlotLocked(snap.fields[i], snap.vectors.data() + i * dim_, /*normalized=*/true);
    if (killed.count(snap.slots[i])) KillLocked(slot);
  }
  ann_ = std::move(ann);
  for (size_t i = 0; i < replay_fields.size(); ++i) {
    AddSlotLocked(replay_fields[i], replay_vectors.data() + i * dim_, /*normalized=*/true);
  }
  recording_ = false;
  killed_since_snapshot_.clear();
  adds_since_build_ = replay_fields.size();
  ++changes_;
}

void AssetIndex::AbandonSnapshot() {
  std::unique_lock lock(mu_);
  recording_ = false;
  killed_since_snapshot_.clear();
}

bool AssetIndex::TakeExtension(Extension* ext) const {
  std::shared_lock lock(mu_);
  if (!ann_) return false;
  const uint32_t ann_n = uint32_t(ann_->size());
  uint32_t dead = 0;
  for (uint32_t i = 0; i < ann_n; ++i) dead += !keys_[i].alive;
  if (dead > ann_n / 5) return false;
  ext->base = ann_.get();
  ext->from = ann_n;
  ext->count = uint32_t(slots_.size()) - ann_n;
  ext->vectors.resize(size_t(ext->count) * dim_);
  for (uint32_t i = 0; i < ext->count; ++i) {
    std::memcpy(ext->vectors.data() + size_t(i) * dim_, vectors_->row(ann_n + i), sizeof(float) * dim_);
  }
  return true;
}

void AssetIndex::InstallExtension(const Extension& ext, std::unique_ptr<AnnIndex> ann) {
  std::unique_lock lock(mu_);
  if (ann_.get() != ext.base || ann->size() != size_t(ext.from) + ext.count) return;  // not ours to replace
  ann_ = std::move(ann);
  adds_since_build_ = slots_.size() - ann_->size();
  ++changes_;
}

uint64_t AssetIndex::live() const {
  std::shared_lock lock(mu_);
  return live_;
}

uint64_t AssetIndex::ann_size() const {
  std::shared_lock lock(mu_);
  return ann_ ? ann_->size() : 0;
}

uint64_t AssetIndex::exact_size() const {
  std::shared_lock lock(mu_);
  const uint32_t ann_n = ann_ ? uint32_t(ann_->size()) : 0;
  uint64_t n = 0;
  for (uint32_t i = ann_n; i < slots_.size(); ++i) n += slots_[i].alive;
  return n;
}

std::string AssetIndex::Describe() const {
  std::shared_lock lock(mu_);
  return ann_ ? ann_->Describe() + "+exact" : "exact";
}

}  // namespace playbook

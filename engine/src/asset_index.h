// The searchable mirror of the catalog: one slot per asset version, its
// filter fields and its vector, an optional HNSW graph over the first slots,
// and exact scans for everything else. Derived state: rebuilt from RocksDB
// whenever the saved copy does not match. Private to engine/.
//
// Thread safety: Search and the getters may run concurrently with each other
// and with one writer (Upsert, Remove, Install) at a time; the caller
// serialises writers.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <functional>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "playbook/engine/options.h"
#include "playbook/engine/status.h"
#include "playbook/engine/types.h"

namespace playbook {

class AnnIndex;

// What an answer shows of an asset, kept beside its filter fields so that
// recommend reads no storage. Immutable once made, except that its concepts
// are published once; shared by the slot (and the slots a rebuild copies it
// to) and the answers in flight.
struct AssetDisplay {
  AssetDisplay() = default;
  AssetDisplay(const AssetDisplay&) = delete;
  AssetDisplay& operator=(const AssetDisplay&) = delete;
  ~AssetDisplay() { delete concepts_.load(std::memory_order_relaxed); }

  std::string id;
  std::string title;
  std::string type;
  std::string url;
  int64_t created_ms = 0;
  std::string variant_of;  // the asset's variant_of ("" = none)
  // The feedback counters' ordinal of this asset, remembered by recommend
  // (Derived::OrdinalCache): no hash lookup of the id per ranking.
  mutable std::atomic<uint64_t> counters_ordinal{0};

  // The embedder's lexicon concepts in the asset's text (AssetText); empty
  // without a lexicon. Known at once for an upsert; after an open, computed
  // from the stored catalog in the background (EngineImpl::ComputeConcepts),
  // null until then: the answer path never computes them.
  const std::vector<std::string>* concepts() const { return concepts_.load(std::memory_order_acquire); }
  // Publishes the concepts; only the first call counts. Any thread.
  void SetConcepts(std::vector<std::string> concepts) const {
    auto* fresh = new std::vector<std::string>(std::move(concepts));
    const std::vector<std::string>* none = nullptr;
    if (!concepts_.compare_exchange_strong(none, fresh, std::memory_order_acq_rel)) delete fresh;
  }

 private:
  mutable std::atomic<const std::vector<std::string>*> concepts_{nullptr};
};

struct AssetIndexSlot {
  std::string id;
  std::shared_ptr<const AssetDisplay> display;  // never null
  uint64_t stages = 0;  // bit i = stages_[i]
  uint32_t type = 0;
  uint32_t language = 0;  // 0 = none
  std::vector<uint32_t> tags;
  bool active = true;
  bool alive = true;
};

// Rows in fixed-size chunks so that appending never moves a row a reader uses.
class VectorStore {
 public:
  explicit VectorStore(uint32_t dim) : dim_(dim) {}
  const float* row(uint32_t i) const { return chunks_[i / kRows].get() + size_t(i % kRows) * dim_; }
  float* Append() {
    if (n_ % kRows == 0) chunks_.push_back(NewChunk(size_t(kRows) * dim_ * sizeof(float)));
    float* r = chunks_.back().get() + size_t(n_ % kRows) * dim_;
    ++n_;
    return r;
  }
  uint32_t size() const { return n_; }
  // Makes room for n rows in all (a load knows its count).
  void Reserve(uint32_t n) { chunks_.reserve(n / kRows + 1); }

  // Row memory; the graph's rows (ann_index.cpp) use it too.
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  using Chunk = std::unique_ptr<float[], Free>;
  // Not zeroed: every row is written before it is read. Chunks of 2 MiB or
  // more go on transparent huge pages where the kernel offers them: a
  // 100,000-asset load first-touches 150 MB here, and at 4 KiB a page that
  // was about 1 s of page faults on this machine kind (a PVM guest),
  // 0.05-0.4 s on huge pages.
  static Chunk NewChunk(size_t bytes) {
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t align = bytes < kHuge ? 64 : kHuge;
    const size_t rounded = (bytes + align - 1) / align * align;
    auto* p = static_cast<float*>(std::aligned_alloc(align, rounded));
    if (p == nullptr) throw std::bad_alloc();
    if (align == kHuge) (void)::madvise(p, rounded, MADV_HUGEPAGE);
    return Chunk(p);
  }

 private:
  static constexpr uint32_t kRows = 4096;
  uint32_t dim_;
  uint32_t n_ = 0;
  std::vector<Chunk> chunks_;
};


// What a slot knows of its asset: the fields filters look at, and what an
// answer shows of it (null: only the id).
struct SlotFields {
  std::string id;
  std::vector<std::string> stages;
  std::string type;
  std::string language;
  std::vector<std::string> tags;
  bool active = true;
  std::shared_ptr<const AssetDisplay> display;
};

// A search's hits as the ranking reads them: no id copied, no vector copied.
struct RankingHit {
  float score = 0;
  const float* vector = nullptr;  // the normalised row; valid while `store` lives
  std::shared_ptr<const AssetDisplay> asset;
};
struct RankingHits {
  std::vector<RankingHit> hits;
  std::shared_ptr<const VectorStore> store;  // keeps the rows alive after a rebuild swaps it
};

class AssetIndex {
 public:
  AssetIndex(uint32_t dimension, std::vector<std::string> stages, IndexOptions options);
  ~AssetIndex();

  // Adds new versions of assets; older versions of the same ids become
  // unreachable at once. vectors: fields.size() rows of dimension floats
  // (normalised here).
  void Upsert(const std::vector<SlotFields>& fields, const float* vectors);
  // Makes the assets unreachable. Unknown ids are ignored.
  void Remove(const std::vector<std::string>& ids);

  // With query == nullptr: up to k eligible assets, in slot order, score 0.
  Result<std::vector<SearchHit>> Search(const float* query, const AssetFilter& filter,
                                        size_t k) const;
  // Search for the ranking: the same hits in the same order, with each
  // asset's display fields and vector row, read under one lock acquisition.
  Status SearchForRanking(const float* query, const AssetFilter& filter, size_t k, RankingHits* out) const;
  // Copies the live asset's (normalised) vector to out; false when not live.
  bool VectorOf(const std::string& id, float* out) const;
  bool IsLive(const std::string& id) const;
  // The content id (variants.h) of each of ids, over the live assets' links,
  // under one lock acquisition.
  std::vector<std::string> ContentRoots(const std::vector<std::string_view>& ids) const;
  // The variant_of of a live asset; "" when it has none or is not live.
  std::string VariantOf(const std::string& id) const;

  // A consistent copy of the live slots, for a rebuild.
  struct Snapshot {
    std::vector<SlotFields> fields;
    std::vector<float> vectors;     // fields.size() * dimension
    std::vector<uint32_t> slots;    // the slot each came from
    uint32_t watermark = 0;         // slots at the time of the copy
  };
  // Starts recording removals so Install can replay them.
  Snapshot TakeSnapshot();
  // Replaces the index by one built from `snap` (with `ann` over all of its
  // rows, or null for exact only), replaying what changed since TakeSnapshot.
  void Install(Snapshot snap, std::unique_ptr<AnnIndex> ann);
  // Stops recording for a snapshot that will not be installed (a cancelled
  // build): the index, and its graph, stay as they are.
  void AbandonSnapshot();

  // Growing the graph instead of rebuilding it: slots keep their numbers, so
  // the rows past the graph (dead ones too, hidden by the filters) are added
  // to a copy of it, which then replaces it.
  struct Extension {
    const AnnIndex* base = nullptr;  // the graph to extend; valid until the next Install*
    uint32_t from = 0;               // base's size: the first slot to add
    uint32_t count = 0;
    std::vector<float> vectors;      // count rows (normalised)
  };
  // False when there is no graph, or when more than a fifth of its rows are
  // dead (a rebuild compacts them instead). Install*, Load and Extension's
  // user must be one thread (the engine's rebuild thread).
  bool TakeExtension(Extension* ext) const;
  // Swaps in `ann` (ext.base extended by ext's rows).
  void InstallExtension(const Extension& ext, std::unique_ptr<AnnIndex> ann);

  // Save/Load of the derived state, tagged with the catalog sequence and the
  // embedder name it reflects. Load fails (Corruption/NotFound) rather than
  // return anything inconsistent; the caller then rebuilds.
  Status Save(const std::string& path, uint64_t catalog_seq, const std::string& embedder) const;
  struct LoadInfo {
    uint64_t catalog_seq = 0;
    std::string embedder;
  };
  static Result<LoadInfo> PeekFile(const std::string& path);
  // Whether `path` was the file last saved or loaded and holds exactly this
  // index, for this catalog sequence and embedder: a stop then need not
  // write it again.
  bool SavedAs(const std::string& path, uint64_t catalog_seq, const std::string& embedder) const;
  // Loads the slots (fields and vectors): searchable at once, exactly. The
  // file's graph, if any, stays pending (the file kept mapped) until
  // LoadGraph; meanwhile Save writes the pending graph's bytes unchanged
  // (the slots it covers keep their numbers), so a stop during the load
  // never saves a graph-less index over a good file.
  // The file's catalog sequence must be the catalog's (the caller checks it
  // with PeekFile): its slots then are the catalog's live assets.
  Status Load(const std::string& path);
  // The display of every live asset (for the concepts computed after an open).
  std::vector<std::shared_ptr<const AssetDisplay>> LiveDisplays() const;
  // Whether Load left a graph to load.
  bool graph_pending() const;
  // Reads the pending graph and swaps it in (searches switch to it
  // atomically). Ok too when `cancel` turned true meanwhile: the graph then
  // stays pending (a save still writes it). Corruption when it does not
  // check out: then there is no graph and the caller builds one. The caller
  // is the rebuild thread (see TakeExtension).
  Status LoadGraph(const std::atomic<bool>& cancel);

  uint64_t live() const;
  uint64_t ann_size() const;
  uint64_t exact_size() const;  // live slots outside the graph
  uint64_t adds_since_build() const { return adds_since_build_.load(); }
  std::string Describe() const;
  uint32_t dimension() const { return dim_; }
  const IndexOptions& options() const { return options_; }

 private:
  using Slot = AssetIndexSlot;
  // The stage's index, or an error naming it.
  Result<size_t> StageIndex(const std::string& stage) const;
  // The best k (similarity, slot) for `q` (normalised; null: the first k
  // eligible slots, similarity 0). REQUIRES: mu_ held (shared or unique).
  void SearchLocked(const float* q, const AssetFilter& filter, size_t stage_index, size_t k,
                    std::vector<std::pair<float, uint32_t>>* out) const;
  uint32_t AddSlotLocked(const SlotFields& f, const float* v, bool normalized = false);
  // Appends a live slot made by the caller (its id not live; codes interned)
  // with row v, normalised here unless it already is.
  uint32_t AppendSlotLocked(Slot s, const float* v, bool normalized);
  // Empties the slots (keeps the interned names and the graph pointer).
  void ResetLocked();
  // Interned code -> name (index 0 unused), and a slot's fields spelled out.
  std::vector<const std::string*> NamesLocked() const;
  SlotFields FieldsLocked(uint32_t slot, const std::vector<const std::string*>& names) const;
  void KillLocked(uint32_t slot);
  uint64_t StageMask(const std::vector<std::string>& stages) const;
  uint32_t Intern(const std::string& s);
  void RecordSaved(uint64_t changes, const std::string& path, uint64_t catalog_seq,
                   const std::string& embedder) const;

  // The graph of a loaded file, not read yet: its bytes in the file's
  // mapping, over the file's slots (slots_ renumbered since: layout_ moved).
  struct PendingGraph {
    std::shared_ptr<const void> mapping;  // keeps the bytes mapped
    const uint8_t* blob = nullptr;
    size_t size = 0;
    uint32_t slots = 0;    // the file's slot count: the graph covers at most these
    uint64_t layout = 0;   // layout_ at the load
  };

  const uint32_t dim_;
  const std::vector<std::string> stages_;
  const IndexOptions options_;

  mutable std::shared_mutex mu_;  // guards everything below
  std::vector<Slot> slots_;
  // The fields every search reads, packed beside slots_ (same index) so the
  // eligibility scan streams through 24 bytes per slot.
  struct Key {
    uint64_t stages;
    uint32_t type;
    uint32_t language;
    bool active;
    bool alive;
  };
  std::vector<Key> keys_;
  // Per stage, one bit per slot: live, active and eligible for that stage.
  // A search starts from a copy of its stage's words (a memcpy) and checks
  // its other filters only on the bits set there. 64-bit words laid out
  // little-endian are the byte bitmap faiss's IDSelectorBitmap reads.
  std::vector<std::vector<uint64_t>> stage_bits_;
  std::shared_ptr<VectorStore> vectors_;  // shared: ranking answers keep rows alive
  std::unordered_map<std::string, uint32_t> slot_of_;  // id -> live slot
  std::unordered_map<std::string, uint32_t> dict_;     // interned type/language/tag -> code
  std::unique_ptr<AnnIndex> ann_;                      // over slots [0, ann_->size())
  std::shared_ptr<const PendingGraph> pending_graph_;  // set by Load until LoadGraph
  uint64_t layout_ = 0;  // bumped whenever slots are renumbered (ResetLocked)
  uint64_t live_ = 0;
  bool recording_ = false;
  std::vector<uint32_t> killed_since_snapshot_;
  std::atomic<uint64_t> adds_since_build_{0};
  uint64_t changes_ = 0;  // bumped by every change of the slots or the graph

  // What the file last saved or loaded holds (Save is const: its callers
  // are serialised by the engine, saved_mu_ only guards these).
  mutable std::mutex saved_mu_;
  mutable bool saved_ = false;
  mutable uint64_t saved_changes_ = 0, saved_seq_ = 0;
  mutable std::string saved_path_, saved_embedder_;
};

// The faiss HNSW graph; the one place that calls faiss. Immutable once built
// (Extend makes a new one).
class AnnIndex {
 public:
  // Builds over n rows (row i = slot i); progress(done) now and then; a
  // progress that returns false cancels the build (null is returned).
  static std::unique_ptr<AnnIndex> Build(const float* x, size_t n, uint32_t dim,
                                         const IndexOptions& options,
                                         const std::function<bool(size_t)>& progress);
  ~AnnIndex();
  size_t size() const;
  // Up to k (similarity, row) pairs among rows whose bit is set in bitmap.
  void Search(const float* q, size_t k, const uint8_t* bitmap, size_t bitmap_bytes, int ef,
              std::vector<std::pair<float, uint32_t>>* out) const;
  // A copy of this graph with the n rows of x added as rows size()..size()+n-1
  // (faiss's parallel add; far cheaper than building it again). This graph
  // stays searchable meanwhile, unchanged. Only the links are copied: the
  // rows are shared, the new ones appended past this graph's (a second
  // extension of the same graph, while another one lives, copies them).
  // Null when progress cancelled it.
  std::unique_ptr<AnnIndex> Extend(const float* x, size_t n,
                                   const std::function<bool(size_t)>& progress) const;
  std::string Describe() const;
  std::vector<uint8_t> Serialize() const;
  // Serialize()'s bytes appended to *out (no buffer of their own), and about
  // how many there are (to reserve room for them).
  void SerializeTo(std::vector<uint8_t>* out) const;
  size_t SerializedSizeHint() const;
  // Reads a Serialize()d graph; a cancel that turns true stops it between
  // faiss's reads (a Corruption, which the caller then ignores).
  static Result<std::unique_ptr<AnnIndex>> Deserialize(const uint8_t* blob, size_t size, uint32_t dim,
                                                       const std::atomic<bool>* cancel = nullptr);

 private:
  struct Impl;
  explicit AnnIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The index file's checksum over its bytes (a fast 64-bit hash over 8-byte
// words, not cryptographic). Exposed for the tests and the fuzz target that
// build index files of their own.
uint64_t IndexFileChecksum(const uint8_t* p, size_t n);

}  // namespace playbook

// The faiss adapter: an HNSW graph over unit vectors (inner product), searched
// with a bitmap selector. faiss exceptions stop here.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "asset_index.h"
#include "simd.h"

namespace playbook {

namespace {

// The graph's rows: a first block (a loaded file's rows, adopted as they were
// read) and then chunks that never move. Shared by a graph and the graphs
// extended from it: an extension appends its rows past the end of the graph
// it copies, which reads only the rows below its own size, so the graph in
// service is never touched (nor copied: copying 150 MB of rows per extension
// round was most of a bulk import's graph work besides the distances). Only
// one thread appends (the engine's build thread); readers use the chunk table
// of their own storage, never this object's.
class GraphRows {
 public:
  static constexpr size_t kRows = 4096;
  explicit GraphRows(size_t d) : d_(d) {}
  GraphRows(size_t d, std::vector<uint8_t> first) : d_(d), first_(std::move(first)), size_(first_rows()) {}
  size_t first_rows() const { return first_.size() / (d_ * sizeof(float)); }
  const float* first() const { return reinterpret_cast<const float*>(first_.data()); }
  // Rows written: the end of the latest graph over them.
  size_t size() const { return size_; }
  // Forgets the rows past n (written by an extension that was dropped).
  void Truncate(size_t n) { size_ = std::min(size_, std::max(n, first_rows())); }
  // Appends n rows, allocating chunks as needed; their bases go to *table
  // (a storage's own chunk table).
  void Append(const float* x, size_t n, std::vector<const float*>* table) {
    const size_t base = first_rows();
    for (size_t i = 0; i < n; ++i) {
      const size_t r = size_ + i - base;
      while (chunks_.size() <= r / kRows) chunks_.push_back(VectorStore::NewChunk(kRows * d_ * sizeof(float)));
      std::memcpy(chunks_[r / kRows].get() + (r % kRows) * d_, x + i * d_, sizeof(float) * d_);
    }
    size_ += n;
    table->clear();
    for (const auto& c : chunks_) table->push_back(c.get());
  }

 private:
  size_t d_;
  std::vector<uint8_t> first_;
  size_t size_ = 0;
  std::vector<VectorStore::Chunk> chunks_;
};

// The rows a distance computer reads: a view of GraphRows as of its storage.
struct RowView {
  const float* first = nullptr;
  size_t first_rows = 0;
  const float* const* table = nullptr;
  size_t d = 0;
  const float* row(size_t i) const {
    if (i < first_rows) return first + i * d;
    i -= first_rows;
    return table[i / GraphRows::kRows] + (i % GraphRows::kRows) * d;
  }
};

// Inner products with simd::Dot over the graph's rows. Debian's faiss 1.7.3
// computes them with its scalar reference loop; the HNSW graph asks its
// storage for a distance computer (for the build and for every search), so
// this storage is where the SIMD kernels come in. IndexHNSW wraps similarity
// computers in its NegativeDistanceComputer itself, as for IndexFlatIP's own.
class SimdIPComputer final : public faiss::DistanceComputer {
 public:
  explicit SimdIPComputer(RowView rows) : rows_(rows) {}
  void set_query(const float* x) override { q_ = x; }
  float operator()(idx_t i) override { return simd::Dot(q_, rows_.row(size_t(i)), rows_.d); }
  float symmetric_dis(idx_t i, idx_t j) override {
    return simd::Dot(rows_.row(size_t(i)), rows_.row(size_t(j)), rows_.d);
  }

 private:
  RowView rows_;
  const float* q_ = nullptr;
};

// The graph's storage: inner products over GraphRows. Not a faiss index type
// that write_index knows: Serialize writes an IndexFlatIP in its place, so
// the files are standard IndexHNSWFlat files.
struct RowStorage final : faiss::Index {
  RowStorage(faiss::Index::idx_t d, std::shared_ptr<GraphRows> rows)
      : faiss::Index(d, faiss::METRIC_INNER_PRODUCT), rows(std::move(rows)) {
    ntotal = idx_t(this->rows->first_rows());
  }
  // A storage over the same rows as `from`, as it sees them, to grow an
  // extension of its graph; over a copy of them when another extension
  // already grew past `from` (that one may be in use).
  explicit RowStorage(const RowStorage& from) : faiss::Index(from.d, faiss::METRIC_INNER_PRODUCT) {
    if (from.rows->size() == size_t(from.ntotal)) {
      rows = from.rows;
      table = from.table;
      ntotal = from.ntotal;
      return;
    }
    rows = std::make_shared<GraphRows>(size_t(d));
    const RowView view = from.View();
    for (size_t i = 0; i < size_t(from.ntotal); ++i) add(1, view.row(i));
  }
  // A cancelled extension leaves the rows as the graph it grew from saw them.
  void Abandon(size_t base_rows) { rows->Truncate(base_rows); }
  void add(idx_t n, const float* x) override {
    if (rows->size() != size_t(ntotal)) throw std::logic_error("RowStorage: another graph grew past this one");
    rows->Append(x, size_t(n), &table);
    ntotal += n;
  }
  void search(idx_t, const float*, idx_t, float*, idx_t*, const faiss::SearchParameters*) const override {
    throw std::logic_error("RowStorage is searched through its graph");
  }
  void reset() override { throw std::logic_error("RowStorage is never reset"); }
  void reconstruct(idx_t key, float* recons) const override {
    std::memcpy(recons, View().row(size_t(key)), sizeof(float) * size_t(d));
  }
  faiss::DistanceComputer* get_distance_computer() const override { return new SimdIPComputer(View()); }
  RowView View() const { return RowView{rows->first(), rows->first_rows(), table.data(), size_t(d)}; }

  std::shared_ptr<GraphRows> rows;
  std::vector<const float*> table;
};

// Puts a RowStorage in place of the graph's IndexFlatIP storage, taking over
// its rows without copying them.
void UseRowStorage(faiss::IndexHNSW* index) {
  auto* flat = dynamic_cast<faiss::IndexFlat*>(index->storage);
  if (flat == nullptr || flat->metric_type != faiss::METRIC_INNER_PRODUCT ||
      flat->codes.size() != size_t(flat->ntotal) * size_t(flat->d) * sizeof(float)) {
    throw std::runtime_error("the graph's storage is not an inner-product flat index");
  }
  auto rows = std::make_shared<GraphRows>(size_t(flat->d), std::move(flat->codes));
  auto storage = std::make_unique<RowStorage>(flat->d, std::move(rows));
  if (index->own_fields) delete flat;
  index->storage = storage.release();
  index->own_fields = true;
}

}  // namespace

struct AnnIndex::Impl {
  std::unique_ptr<faiss::IndexHNSWFlat> index;
  uint32_t m = 16, ef_construction = 64;
};

AnnIndex::AnnIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AnnIndex::~AnnIndex() = default;

namespace {

// Adds n rows to the graph in chunks, on every core, asking progress (rows
// added so far) between chunks; false when progress cancelled it.
bool AddInChunks(faiss::IndexHNSW* index, const float* x, size_t n, uint32_t dim,
                 const std::function<bool(size_t)>& progress) {
  // The build thread is ours alone: let faiss use every core for it.
  omp_set_num_threads(int(std::max(1u, std::thread::hardware_concurrency())));
  constexpr size_t kChunk = 4096;
  bool done_all = true;
  for (size_t done = 0; done < n;) {
    const size_t m = std::min(kChunk, n - done);
    index->add(faiss::Index::idx_t(m), x + done * dim);
    done += m;
    if (progress && !progress(done)) {
      done_all = false;
      break;
    }
  }
  omp_set_num_threads(1);
  return done_all;
}

}  // namespace

std::unique_ptr<AnnIndex> AnnIndex::Build(const float* x, size_t n, uint32_t dim,
                                          const IndexOptions& options,
                                          const std::function<bool(size_t)>& progress) {
  auto impl = std::make_unique<Impl>();
  impl->m = options.hnsw_m;
  impl->ef_construction = options.hnsw_ef_construction;
  impl->index = std::make_unique<faiss::IndexHNSWFlat>(int(dim), int(options.hnsw_m),
                                                       faiss::METRIC_INNER_PRODUCT);
  UseRowStorage(impl->index.get());
  impl->index->hnsw.efConstruction = int(options.hnsw_ef_construction);
  // Set once, never per query: it is shared by every searching thread.
  impl->index->hnsw.efSearch = int(options.hnsw_ef_search);
  if (!AddInChunks(impl->index.get(), x, n, dim, progress)) return nullptr;
  return std::unique_ptr<AnnIndex>(new AnnIndex(std::move(impl)));
}

std::unique_ptr<AnnIndex> AnnIndex::Extend(const float* x, size_t n,
                                           const std::function<bool(size_t)>& progress) const {
  const faiss::IndexHNSWFlat& from = *impl_->index;
  // The copy's storage first: once the graph is copied it must own a
  // storage of its own before anything can throw (its destructor deletes it).
  // It shares the rows: only the links are copied (about 14 MB at 100,000).
  auto storage = std::make_unique<RowStorage>(static_cast<const RowStorage&>(*from.storage));
  RowStorage* rows = storage.get();
  auto impl = std::make_unique<Impl>();
  impl->m = impl_->m;
  impl->ef_construction = impl_->ef_construction;
  impl->index = std::make_unique<faiss::IndexHNSWFlat>(from);  // the graph's arrays, copied
  impl->index->storage = storage.release();
  impl->index->own_fields = true;
  bool added = false;
  try {
    added = AddInChunks(impl->index.get(), x, n, uint32_t(from.d), progress);
  } catch (...) {
    rows->Abandon(size_t(from.ntotal));
    throw;
  }
  if (!added) {
    rows->Abandon(size_t(from.ntotal));
    return nullptr;
  }
  return std::unique_ptr<AnnIndex>(new AnnIndex(std::move(impl)));
}

size_t AnnIndex::size() const { return size_t(impl_->index->ntotal); }

void AnnIndex::Search(const float* q, size_t k, const uint8_t* bitmap, size_t bitmap_bytes, int ef,
                      std::vector<std::pair<float, uint32_t>>* out) const {
  faiss::IDSelectorBitmap sel(bitmap_bytes, bitmap);
  faiss::SearchParametersHNSW params;
  params.sel = &sel;
  // 1.7.3 caps a filtered search by both the index's and the params' efSearch.
  params.efSearch = ef;
  std::vector<float> d(k);
  std::vector<faiss::Index::idx_t> labels(k, -1);
  try {
    impl_->index->search(1, q, faiss::Index::idx_t(k), d.data(), labels.data(), &params);
  } catch (const faiss::FaissException&) {
    return;  // the caller's exact scan still covers the rows added later
  }
  for (size_t i = 0; i < k; ++i) {
    if (labels[i] >= 0) out->emplace_back(d[i], uint32_t(labels[i]));
  }
}

std::string AnnIndex::Describe() const {
  return "hnsw(M=" + std::to_string(impl_->m) + ",efC=" + std::to_string(impl_->ef_construction) +
         ",efS=" + std::to_string(impl_->index->hnsw.efSearch) + ")";
}

namespace {
// Appends faiss's output to a buffer that may already hold other bytes.
struct AppendWriter : faiss::IOWriter {
  std::vector<uint8_t>* out;
  explicit AppendWriter(std::vector<uint8_t>* out) : out(out) {}
  size_t operator()(const void* p, size_t size, size_t items) override {
    const auto* b = static_cast<const uint8_t*>(p);
    out->insert(out->end(), b, b + size * items);
    return items;
  }
};
}  // namespace

std::vector<uint8_t> AnnIndex::Serialize() const {
  std::vector<uint8_t> out;
  out.reserve(SerializedSizeHint());
  SerializeTo(&out);
  return out;
}

size_t AnnIndex::SerializedSizeHint() const {
  const faiss::IndexHNSWFlat& from = *impl_->index;
  // The rows, and about 2M + M/(M-1) links per row on average.
  const size_t links = size_t(from.ntotal) * (2 * size_t(impl_->m) + 2) * sizeof(int32_t);
  return size_t(from.ntotal) * (size_t(from.d) * sizeof(float) + 2 * sizeof(uint64_t) + sizeof(int32_t)) + links + 4096;
}

void AnnIndex::SerializeTo(std::vector<uint8_t>* out) const {
  // A standard IndexHNSWFlat: this graph's links over an IndexFlatIP holding
  // its rows (write_index knows no other storage).
  const faiss::IndexHNSWFlat& from = *impl_->index;
  const auto& storage = static_cast<const RowStorage&>(*from.storage);
  auto flat = std::make_unique<faiss::IndexFlatIP>(from.d);
  flat->codes.resize(size_t(from.ntotal) * size_t(from.d) * sizeof(float));
  const RowView rows = storage.View();
  for (size_t i = 0; i < size_t(from.ntotal); ++i) {
    std::memcpy(flat->codes.data() + i * size_t(from.d) * sizeof(float), rows.row(i), sizeof(float) * size_t(from.d));
  }
  flat->ntotal = from.ntotal;
  faiss::IndexHNSWFlat copy;
  copy.d = from.d;
  copy.metric_type = from.metric_type;
  copy.ntotal = from.ntotal;
  copy.is_trained = from.is_trained;
  copy.hnsw = from.hnsw;
  copy.storage = flat.release();
  copy.own_fields = true;
  AppendWriter w(out);
  faiss::write_index(&copy, &w);
}

namespace {
// Reads straight from the caller's buffer (VectorIOReader would copy it).
// A cancel ends the input early: faiss then throws at its next read.
struct SpanReader : faiss::IOReader {
  const uint8_t* p;
  size_t n, pos = 0;
  const std::atomic<bool>* cancel;
  SpanReader(const uint8_t* p, size_t n, const std::atomic<bool>* cancel) : p(p), n(n), cancel(cancel) {}
  size_t operator()(void* out, size_t size, size_t items) override {
    if (pos >= n || size == 0) return 0;
    const size_t count = std::min(items, (n - pos) / size);
    // In pieces, so that a stop need not wait for the rows (150 MB at
    // 100,000 x 384) to be copied: faiss throws on a short read.
    constexpr size_t kPiece = size_t(8) << 20;
    size_t done = 0;
    while (done < count * size) {
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return done / size;
      const size_t m = std::min(kPiece, count * size - done);
      std::memcpy(static_cast<uint8_t*>(out) + done, p + pos + done, m);
      done += m;
    }
    pos += done;
    return count;
  }
};
}  // namespace

Result<std::unique_ptr<AnnIndex>> AnnIndex::Deserialize(const uint8_t* blob, size_t size, uint32_t dim,
                                                        const std::atomic<bool>* cancel) {
  try {
    SpanReader r(blob, size, cancel);
    std::unique_ptr<faiss::Index> idx(faiss::read_index(&r));
    auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(idx.get());
    if (hnsw == nullptr || hnsw->d != int(dim)) return Status::Corruption("index blob is not an HNSW index of this dimension");
    idx.release();
    auto impl = std::make_unique<Impl>();
    impl->index.reset(hnsw);
    UseRowStorage(hnsw);
    impl->m = uint32_t(hnsw->hnsw.nb_neighbors(1));
    impl->ef_construction = uint32_t(hnsw->hnsw.efConstruction);
    return std::unique_ptr<AnnIndex>(new AnnIndex(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("reading the HNSW index: ") + e.what());
  }
}

}  // namespace playbook

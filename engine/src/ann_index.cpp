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

// Inner products with simd::Dot over an IndexFlatIP's rows. Debian's faiss
// 1.7.3 computes them with its scalar reference loop; the HNSW graph asks its
// storage for a distance computer (for the build and for every search), so
// this storage is where the SIMD kernels come in. IndexHNSW wraps similarity
// computers in its NegativeDistanceComputer itself, as for IndexFlatIP's own.
class SimdIPComputer final : public faiss::DistanceComputer {
 public:
  SimdIPComputer(const float* base, size_t d) : base_(base), d_(d) {}
  void set_query(const float* x) override { q_ = x; }
  float operator()(idx_t i) override { return simd::Dot(q_, base_ + size_t(i) * d_, d_); }
  float symmetric_dis(idx_t i, idx_t j) override {
    return simd::Dot(base_ + size_t(i) * d_, base_ + size_t(j) * d_, d_);
  }

 private:
  const float* base_;
  size_t d_;
  const float* q_ = nullptr;
};

// An IndexFlatIP in every respect (faiss's write_index stores it as one, so
// the files are standard IndexHNSWFlat files) but for its distance computer.
struct SimdFlatIP final : faiss::IndexFlatIP {
  explicit SimdFlatIP(faiss::Index::idx_t d) : faiss::IndexFlatIP(d) {}
  faiss::DistanceComputer* get_distance_computer() const override {
    return new SimdIPComputer(get_xb(), size_t(d));
  }
};

// Puts a SimdFlatIP in place of the graph's IndexFlatIP storage, taking over
// its rows without copying them.
void UseSimdStorage(faiss::IndexHNSW* index) {
  auto* flat = dynamic_cast<faiss::IndexFlat*>(index->storage);
  if (flat == nullptr || flat->metric_type != faiss::METRIC_INNER_PRODUCT) {
    throw std::runtime_error("the graph's storage is not an inner-product flat index");
  }
  auto simd_storage = std::make_unique<SimdFlatIP>(flat->d);
  simd_storage->codes.swap(flat->codes);
  simd_storage->ntotal = flat->ntotal;
  if (index->own_fields) delete flat;
  index->storage = simd_storage.release();
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
  UseSimdStorage(impl->index.get());
  impl->index->hnsw.efConstruction = int(options.hnsw_ef_construction);
  // Set once, never per query: it is shared by every searching thread.
  impl->index->hnsw.efSearch = int(options.hnsw_ef_search);
  if (!AddInChunks(impl->index.get(), x, n, dim, progress)) return nullptr;
  return std::unique_ptr<AnnIndex>(new AnnIndex(std::move(impl)));
}

std::unique_ptr<AnnIndex> AnnIndex::Extend(const float* x, size_t n,
                                           const std::function<bool(size_t)>& progress) const {
  const faiss::IndexHNSWFlat& from = *impl_->index;
  const auto& rows = static_cast<const faiss::IndexFlat&>(*from.storage);
  // The copy's storage first: once the graph is copied it must own a
  // storage of its own before anything can throw (its destructor deletes it).
  auto storage = std::make_unique<SimdFlatIP>(rows.d);
  storage->codes = rows.codes;
  storage->ntotal = rows.ntotal;
  auto impl = std::make_unique<Impl>();
  impl->m = impl_->m;
  impl->ef_construction = impl_->ef_construction;
  impl->index = std::make_unique<faiss::IndexHNSWFlat>(from);  // the graph's arrays, copied
  impl->index->storage = storage.release();
  impl->index->own_fields = true;
  if (!AddInChunks(impl->index.get(), x, n, uint32_t(from.d), progress)) return nullptr;
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

std::vector<uint8_t> AnnIndex::Serialize() const {
  faiss::VectorIOWriter w;
  faiss::write_index(impl_->index.get(), &w);
  return std::move(w.data);
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
    UseSimdStorage(hnsw);
    impl->m = uint32_t(hnsw->hnsw.nb_neighbors(1));
    impl->ef_construction = uint32_t(hnsw->hnsw.efConstruction);
    return std::unique_ptr<AnnIndex>(new AnnIndex(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("reading the HNSW index: ") + e.what());
  }
}

}  // namespace playbook

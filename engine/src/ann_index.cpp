// The faiss adapter: an HNSW graph over unit vectors (inner product), searched
// with a bitmap selector. faiss exceptions stop here.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "asset_index.h"

namespace playbook {

struct AnnIndex::Impl {
  std::unique_ptr<faiss::IndexHNSWFlat> index;
  uint32_t m = 16, ef_construction = 64;
};

AnnIndex::AnnIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AnnIndex::~AnnIndex() = default;

std::unique_ptr<AnnIndex> AnnIndex::Build(const float* x, size_t n, uint32_t dim,
                                          const IndexOptions& options,
                                          const std::function<bool(size_t)>& progress) {
  auto impl = std::make_unique<Impl>();
  impl->m = options.hnsw_m;
  impl->ef_construction = options.hnsw_ef_construction;
  impl->index = std::make_unique<faiss::IndexHNSWFlat>(int(dim), int(options.hnsw_m),
                                                       faiss::METRIC_INNER_PRODUCT);
  impl->index->hnsw.efConstruction = int(options.hnsw_ef_construction);
  // Set once, never per query: it is shared by every searching thread.
  impl->index->hnsw.efSearch = int(options.hnsw_ef_search);
  // The build thread is ours alone: let faiss use every core for it.
  omp_set_num_threads(int(std::max(1u, std::thread::hardware_concurrency())));
  constexpr size_t kChunk = 4096;
  for (size_t done = 0; done < n;) {
    const size_t m = std::min(kChunk, n - done);
    impl->index->add(faiss::Index::idx_t(m), x + done * dim);
    done += m;
    if (progress && !progress(done)) {
      omp_set_num_threads(1);
      return nullptr;
    }
  }
  omp_set_num_threads(1);
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
struct SpanReader : faiss::IOReader {
  const uint8_t* p;
  size_t n, pos = 0;
  SpanReader(const uint8_t* p, size_t n) : p(p), n(n) {}
  size_t operator()(void* out, size_t size, size_t items) override {
    if (pos >= n || size == 0) return 0;
    const size_t count = std::min(items, (n - pos) / size);
    std::memcpy(out, p + pos, count * size);
    pos += count * size;
    return count;
  }
};
}  // namespace

Result<std::unique_ptr<AnnIndex>> AnnIndex::Deserialize(const uint8_t* blob, size_t size, uint32_t dim) {
  try {
    SpanReader r(blob, size);
    std::unique_ptr<faiss::Index> idx(faiss::read_index(&r));
    auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(idx.get());
    if (hnsw == nullptr || hnsw->d != int(dim)) return Status::Corruption("index blob is not an HNSW index of this dimension");
    idx.release();
    auto impl = std::make_unique<Impl>();
    impl->index.reset(hnsw);
    impl->m = uint32_t(hnsw->hnsw.nb_neighbors(1));
    impl->ef_construction = uint32_t(hnsw->hnsw.efConstruction);
    return std::unique_ptr<AnnIndex>(new AnnIndex(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("reading the HNSW index: ") + e.what());
  }
}

}  // namespace playbook

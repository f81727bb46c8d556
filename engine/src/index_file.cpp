// Saving and loading the derived index: the slots (ids, alive), their vectors
// and the HNSW graph, tagged with the catalog sequence and embedder they
// reflect and protected by a checksum. Anything that does not check out is
// an error and the caller rebuilds from RocksDB.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <utility>

#include "asset_index.h"

namespace playbook {
namespace {

constexpr char kMagic[8] = {'P', 'B', 'I', 'D', 'X', '0', '0', '1'};

class Writer {
 public:
  void U8(uint8_t v) { buf.push_back(v); }
  void U32(uint32_t v) { Bytes(&v, 4); }
  void U64(uint64_t v) { Bytes(&v, 8); }
  void Str(const std::string& s) {
    U32(uint32_t(s.size()));
    Bytes(s.data(), s.size());
  }
  void Bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  }
  std::vector<uint8_t> buf;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool U8(uint8_t* v) { return Bytes(v, 1); }
  bool U32(uint32_t* v) { return Bytes(v, 4); }
  bool U64(uint64_t* v) { return Bytes(v, 8); }
  bool Str(std::string* s) {
    uint32_t len;
    if (!U32(&len) || len > n_ - pos_) return false;
    s->assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return true;
  }
  bool Bytes(void* out, size_t n) {
    if (n > n_ - pos_) return false;
    std::memcpy(out, p_ + pos_, n);
    pos_ += n;
    return true;
  }
  const uint8_t* Take(size_t n) {
    if (n > n_ - pos_) return nullptr;
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

// The file mapped read-only: its bytes are the page cache's, neither copied
// into a buffer nor zeroed first (both were most of a 100,000-asset load).
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  MappedFile& operator=(MappedFile&&) = delete;
  ~MappedFile() {
    if (p_ != nullptr) ::munmap(const_cast<uint8_t*>(p_), n_);
  }
  bool Map(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED) {
        p_ = static_cast<const uint8_t*>(m);
        n_ = size_t(st.st_size);
        ::madvise(m, n_, MADV_SEQUENTIAL);
      }
    }
    ::close(fd);
    return true;
  }
  const uint8_t* data() const { return p_; }
  // The bytes before the checksum.
  size_t size() const { return n_ - 8; }

 private:
  const uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

// verify = false: the magic only, for a look at the header (PeekFile; Load
// verifies the checksum, so a start does not read the whole file twice).
Result<MappedFile> ReadWhole(const std::string& path, bool verify = true) {
  MappedFile f;
  if (!f.Map(path)) return Status::NotFound("no index file at " + path);
  if (f.data() == nullptr || f.size() + 8 < sizeof(kMagic) + 8 ||
      std::memcmp(f.data(), kMagic, sizeof(kMagic)) != 0) {
    return Status::Corruption("not a Playbook index file: " + path);
  }
  if (!verify) return f;
  uint64_t stored;
  std::memcpy(&stored, f.data() + f.size(), 8);
  if (stored != IndexFileChecksum(f.data(), f.size())) {
    return Status::Corruption("checksum mismatch in " + path);
  }
  return f;
}

}  // namespace

uint64_t IndexFileChecksum(const uint8_t* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001B3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

Status AssetIndex::Save(const std::string& path, uint64_t catalog_seq,
                        const std::string& embedder) const {
  Writer w;
  uint64_t changes;
  {
    std::shared_lock lock(mu_);
    changes = changes_;
    w.Bytes(kMagic, sizeof(kMagic));
    w.U32(dim_);
    w.U64(catalog_seq);
    w.Str(embedder);
    w.U32(uint32_t(slots_.size()));
    for (const Slot& s : slots_) {
      w.Str(s.id);
      w.U8(s.alive ? 1 : 0);
    }
    for (uint32_t i = 0; i < slots_.size(); ++i) w.Bytes(vectors_->row(i), sizeof(float) * dim_);
    std::vector<uint8_t> blob = ann_ ? ann_->Serialize() : std::vector<uint8_t>();
    w.U64(blob.size());
    w.Bytes(blob.data(), blob.size());
  }
  w.U64(IndexFileChecksum(w.buf.data(), w.buf.size()));
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IOError("cannot write " + tmp);
  // Synced before the rename: after a power cut the file is either the old
  // one or this complete one, never a renamed file whose bytes never landed.
  const bool ok = std::fwrite(w.buf.data(), 1, w.buf.size(), f) == w.buf.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IOError("cannot write " + path);
  }
  RecordSaved(changes, path, catalog_seq, embedder);
  return Status::Ok();
}

void AssetIndex::RecordSaved(uint64_t changes, const std::string& path, uint64_t catalog_seq,
                             const std::string& embedder) const {
  std::lock_guard<std::mutex> saved(saved_mu_);
  saved_ = true;
  saved_changes_ = changes;
  saved_path_ = path;
  saved_seq_ = catalog_seq;
  saved_embedder_ = embedder;
}

bool AssetIndex::SavedAs(const std::string& path, uint64_t catalog_seq, const std::string& embedder) const {
  std::shared_lock lock(mu_);
  std::lock_guard<std::mutex> saved(saved_mu_);
  return saved_ && saved_changes_ == changes_ && saved_path_ == path && saved_seq_ == catalog_seq &&
         saved_embedder_ == embedder;
}

Result<AssetIndex::LoadInfo> AssetIndex::PeekFile(const std::string& path) {
  auto data = ReadWhole(path, /*verify=*/false);
  if (!data.ok()) return data.status();
  Reader r(data.value().data() + sizeof(kMagic), data.value().size() - sizeof(kMagic));
  uint32_t dim;
  LoadInfo info;
  if (!r.U32(&dim) || !r.U64(&info.catalog_seq) || !r.Str(&info.embedder)) {
    return Status::Corruption("truncated header in " + path);
  }
  return info;
}

Status AssetIndex::Load(const std::string& path,
                        const std::unordered_map<std::string, SlotFields>& live_fields) {
  auto data = ReadWhole(path);
  if (!data.ok()) return data.status();
  Reader r(data.value().data() + sizeof(kMagic), data.value().size() - sizeof(kMagic));
  uint32_t dim, n;
  uint64_t seq;
  std::string embedder;
  if (!r.U32(&dim) || !r.U64(&seq) || !r.Str(&embedder) || !r.U32(&n)) {
    return Status::Corruption("truncated header in " + path);
  }
  if (dim != dim_) return Status::Corruption("index file has dimension " + std::to_string(dim));
  // Each slot takes at least 5 bytes (id length, alive): a count the file
  // cannot hold is refused before anything is allocated for it.
  if (n > r.remaining() / 5) return Status::Corruption("slot count beyond the end of " + path);
  std::vector<std::string> ids(n);
  std::vector<uint8_t> alive(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (!r.Str(&ids[i]) || !r.U8(&alive[i])) return Status::Corruption("truncated slots in " + path);
  }
  const uint8_t* vecs = r.Take(size_t(n) * dim * sizeof(float));
  uint64_t blob_size;
  if (vecs == nullptr || !r.U64(&blob_size)) return Status::Corruption("truncated vectors in " + path);
  const uint8_t* blob = r.Take(blob_size);
  if (blob == nullptr) return Status::Corruption("truncated graph in " + path);
  std::unique_ptr<AnnIndex> ann;
  if (blob_size > 0) {
    auto a = AnnIndex::Deserialize(blob, blob_size, dim_);
    if (!a.ok()) return a.status();
    ann = std::move(a).value();
    if (ann->size() > n) return Status::Corruption("graph larger than the slot table in " + path);
  }

  std::unique_lock lock(mu_);
  ResetLocked();
  size_t matched = 0;
  std::vector<float> row(dim_);
  for (uint32_t i = 0; i < n; ++i) {
    std::memcpy(row.data(), vecs + size_t(i) * dim_ * sizeof(float), dim_ * sizeof(float));
    auto it = alive[i] ? live_fields.find(ids[i]) : live_fields.end();
    if (alive[i] && it == live_fields.end()) {
      return Status::Corruption("index file names asset '" + ids[i] + "' the catalog does not hold");
    }
    if (it != live_fields.end()) {
      AddSlotLocked(it->second, row.data());
      ++matched;
    } else {
      SlotFields dead;
      dead.id = ids[i];
      KillLocked(AddSlotLocked(dead, row.data()));
    }
  }
  // live_: an id named alive twice, or killed by a later dead slot, is live once.
  if (matched != live_fields.size() || live_ != live_fields.size()) {
    return Status::Corruption("index file holds " + std::to_string(matched) + " of the catalog's " +
                              std::to_string(live_fields.size()) + " assets");
  }
  ann_ = std::move(ann);
  adds_since_build_ = ann_ ? n - ann_->size() : n;
  ++changes_;
  RecordSaved(changes_, path, seq, embedder);
  return Status::Ok();
}

}  // namespace playbook

// Saving and loading the derived index: the slots (ids, alive, and for the
// live ones the filter and display fields), their vectors and the HNSW graph,
// tagged with the catalog sequence and embedder they reflect. A start whose
// catalog sequence matches serves from the slots alone, without reading the
// catalog; the graph after them is read in the background. So the layout has
// two checksums: one over everything before the graph (checked before
// anything is served), one over the whole file (checked before the graph is
// read). Anything that does not check out is an error and the caller
// rebuilds from RocksDB.
//
// Layout (little-endian; str = u32 length + bytes):
//   "PBIDX003" u32 dim, u64 catalog_seq, str embedder,
//   u32 stage count, str each (bit b of a slot's stages = stage b here),
//   u32 name count, str each (type/language/tag names; code c = name c-1, 0 = none),
//   u32 slot count, per slot: str id, u8 flags (1 alive, 2 active), and when
//     alive: u64 stages, u32 type, u32 language, u32 tag count, u32 each,
//     str title, str url, i64 created_ms, str variant_of (format 3; a file
//     of format 2 has none, and is read as one whose assets have no variant_of),
//   slot count * dim float32 (normalised rows), u64 checksum of all the above,
//   u64 graph size, the graph (faiss write_index; 0 bytes: none),
//   u64 checksum of all the above.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>
#include <utility>

#include "asset_index.h"

namespace playbook {
namespace {

constexpr char kMagic[8] = {'P', 'B', 'I', 'D', 'X', '0', '0', '3'};
constexpr char kMagicV2[8] = {'P', 'B', 'I', 'D', 'X', '0', '0', '2'};
constexpr char kMagicV1[8] = {'P', 'B', 'I', 'D', 'X', '0', '0', '1'};
constexpr uint8_t kAlive = 1, kActive = 2;

class Writer {
 public:
  void U8(uint8_t v) { buf.push_back(v); }
  void U32(uint32_t v) { Bytes(&v, 4); }
  void U64(uint64_t v) { Bytes(&v, 8); }
  void I64(int64_t v) { Bytes(&v, 8); }
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
  bool I64(int64_t* v) { return Bytes(v, 8); }
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
  // Maps the first n bytes in one pass in the kernel rather than a page
  // fault per 4 KiB as they are read (costly on this machine kind). Best
  // effort: the pages fault in as read otherwise.
  void Populate(size_t n) const {
#ifdef MADV_POPULATE_READ
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    (void)::madvise(const_cast<uint8_t*>(p_), std::min(n_, (n + page - 1) / page * page), MADV_POPULATE_READ);
#else
    (void)n;
#endif
  }
  // The bytes before the checksum.
  size_t size() const { return n_ - 8; }

 private:
  const uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

// verify = false: the magic only (PeekFile for a look at the header; Load,
// which verifies the slots' checksum first and the whole file's later).
Result<MappedFile> ReadWhole(const std::string& path, bool verify = true) {
  MappedFile f;
  if (!f.Map(path)) return Status::NotFound("no index file at " + path);
  if (f.data() != nullptr && f.size() + 8 >= sizeof(kMagic) + 8 &&
      std::memcmp(f.data(), kMagicV1, sizeof(kMagicV1)) == 0) {
    return Status::Corruption("index file " + path + " is in format 1 (before the fields were saved with it)");
  }
  if (f.data() == nullptr || f.size() + 8 < sizeof(kMagic) + 8 ||
      (std::memcmp(f.data(), kMagic, sizeof(kMagic)) != 0 && std::memcmp(f.data(), kMagicV2, sizeof(kMagic)) != 0)) {
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

namespace {
// The checksum's words from p up to the last whole word of n bytes.
uint64_t ChecksumWords(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001B3ull;
    h ^= h >> 29;
  }
  return h;
}

// IndexFileChecksum in pieces, stopping (false) once `cancel` turns true:
// the whole file's, verified before its graph is read, must not hold a stop.
bool ChecksumUnlessCancelled(const uint8_t* p, size_t n, const std::atomic<bool>& cancel, uint64_t* out) {
  constexpr size_t kPiece = size_t(16) << 20;  // a multiple of 8
  uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
  size_t i = 0;
  for (; n - i >= kPiece; i += kPiece) {
    if (cancel.load(std::memory_order_relaxed)) return false;
    h = ChecksumWords(h, p + i, kPiece);
  }
  h = ChecksumWords(h, p + i, n - i);
  for (i += (n - i) / 8 * 8; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  *out = h;
  return true;
}
}  // namespace

uint64_t IndexFileChecksum(const uint8_t* p, size_t n) {
  uint64_t h = ChecksumWords(0x9E3779B97F4A7C15ull ^ n, p, n);
  for (size_t i = n / 8 * 8; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

Status AssetIndex::Save(const std::string& path, uint64_t catalog_seq,
                        const std::string& embedder) const {
  Writer w;
  uint64_t changes;
  {
    std::shared_lock lock(mu_);
    changes = changes_;
    // Room for it all at once: grown by doubling, the buffer (323 MB at
    // 100,000 assets) was copied and first-touched about twice over.
    const size_t graph = ann_ ? ann_->SerializedSizeHint() : pending_graph_ ? pending_graph_->size : 0;
    w.buf.reserve(size_t(slots_.size()) * (sizeof(float) * dim_ + 96) + graph + 4096);
    w.Bytes(kMagic, sizeof(kMagic));
    w.U32(dim_);
    w.U64(catalog_seq);
    w.Str(embedder);
    w.U32(uint32_t(stages_.size()));
    for (const auto& stage : stages_) w.Str(stage);
    const auto names = NamesLocked();
    w.U32(uint32_t(names.size() - 1));
    for (size_t c = 1; c < names.size(); ++c) w.Str(*names[c]);
    w.U32(uint32_t(slots_.size()));
    for (const Slot& s : slots_) {
      w.Str(s.id);
      w.U8(uint8_t((s.alive ? kAlive : 0) | (s.active ? kActive : 0)));
      if (!s.alive) continue;
      w.U64(s.stages);
      w.U32(s.type);
      w.U32(s.language);
      w.U32(uint32_t(s.tags.size()));
      for (uint32_t t : s.tags) w.U32(t);
      w.Str(s.display->title);
      w.Str(s.display->url);
      w.I64(s.display->created_ms);
      w.Str(s.display->variant_of);
    }
    for (uint32_t i = 0; i < slots_.size(); ++i) w.Bytes(vectors_->row(i), sizeof(float) * dim_);
    w.U64(IndexFileChecksum(w.buf.data(), w.buf.size()));
    if (ann_) {
      // Written in place (its size patched in after it): at 100,000 assets
      // a buffer of its own and the copy of it were 165 MB each.
      const size_t at = w.buf.size();
      w.U64(0);
      ann_->SerializeTo(&w.buf);
      const uint64_t size = w.buf.size() - at - sizeof(uint64_t);
      std::memcpy(w.buf.data() + at, &size, sizeof(size));
    } else if (pending_graph_ && pending_graph_->layout == layout_) {
      // Not read yet (a stop during its load): the loaded file's graph, as
      // it was, still covers these slots by their numbers.
      w.U64(pending_graph_->size);
      w.Bytes(pending_graph_->blob, pending_graph_->size);
    } else {
      w.U64(0);
    }
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

Status AssetIndex::Load(const std::string& path) {
  auto data = ReadWhole(path, /*verify=*/false);
  if (!data.ok()) return data.status();
  const uint8_t* base = data.value().data();
  const bool has_variants = std::memcmp(base, kMagic, sizeof(kMagic)) == 0;  // else format 2
  Reader r(base + sizeof(kMagic), data.value().size() - sizeof(kMagic));
  uint32_t dim, n, stage_count, name_count;
  uint64_t seq;
  std::string embedder;
  if (!r.U32(&dim) || !r.U64(&seq) || !r.Str(&embedder) || !r.U32(&stage_count)) {
    return Status::Corruption("truncated header in " + path);
  }
  if (dim != dim_) return Status::Corruption("index file has dimension " + std::to_string(dim));
  // Each string takes at least 4 bytes, each slot at least 5 (id length,
  // flags): a count the file cannot hold is refused before anything is
  // allocated for it.
  if (stage_count > 64) return Status::Corruption("more than 64 stages in " + path);
  std::vector<std::string> file_stages(stage_count);
  for (auto& stage : file_stages) {
    if (!r.Str(&stage)) return Status::Corruption("truncated stages in " + path);
  }
  if (!r.U32(&name_count) || name_count > r.remaining() / 4) return Status::Corruption("name count beyond the end of " + path);
  std::vector<std::string> names(size_t(name_count) + 1);
  for (uint32_t c = 1; c <= name_count; ++c) {
    if (!r.Str(&names[c])) return Status::Corruption("truncated names in " + path);
  }
  if (!r.U32(&n)) return Status::Corruption("truncated header in " + path);
  if (n > r.remaining() / 5) return Status::Corruption("slot count beyond the end of " + path);
  // Where each slot's fields start: read after the checksum over them.
  const size_t slots_at = r.pos();
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t len;
    uint8_t flags;
    if (!r.U32(&len) || r.Take(len) == nullptr || !r.U8(&flags)) return Status::Corruption("truncated slots in " + path);
    if (!(flags & kAlive)) continue;
    uint32_t tags;
    if (r.Take(16) == nullptr || !r.U32(&tags) || tags > r.remaining() / 4 || r.Take(size_t(tags) * 4) == nullptr ||
        !r.U32(&len) || r.Take(len) == nullptr || !r.U32(&len) || r.Take(len) == nullptr || r.Take(8) == nullptr ||
        (has_variants && (!r.U32(&len) || r.Take(len) == nullptr))) {
      return Status::Corruption("truncated slots in " + path);
    }
  }
  const uint8_t* vecs = r.Take(size_t(n) * dim * sizeof(float));
  if (vecs == nullptr) return Status::Corruption("truncated vectors in " + path);
  const size_t slots_end = sizeof(kMagic) + r.pos();
  uint64_t slots_sum, blob_size;
  if (!r.U64(&slots_sum) || !r.U64(&blob_size)) return Status::Corruption("truncated vectors in " + path);
  data.value().Populate(slots_end);
  if (slots_sum != IndexFileChecksum(base, slots_end)) return Status::Corruption("checksum mismatch in " + path);
  const uint8_t* blob = r.Take(blob_size);
  if (blob == nullptr) return Status::Corruption("truncated graph in " + path);
  if (r.remaining() != 0) return Status::Corruption("bytes after the graph in " + path + ": the wrong size");

  std::unique_lock lock(mu_);
  ResetLocked();
  ann_.reset();
  pending_graph_.reset();
  slots_.reserve(n);
  keys_.reserve(n);
  slot_of_.reserve(n);
  vectors_->Reserve(n);
  // The file's stage bits and name codes, as this index's.
  std::vector<uint64_t> stage_bit(stage_count, 0);
  for (size_t b = 0; b < stage_count; ++b) {
    auto it = std::find(stages_.begin(), stages_.end(), file_stages[b]);
    if (it != stages_.end()) stage_bit[b] = uint64_t(1) << (it - stages_.begin());
  }
  std::vector<uint32_t> code(size_t(name_count) + 1, 0);
  for (uint32_t c = 1; c <= name_count; ++c) code[c] = Intern(names[c]);
  Reader slots(base + sizeof(kMagic) + slots_at, slots_end - sizeof(kMagic) - slots_at);
  for (uint32_t i = 0; i < n; ++i) {
    // The rows were saved normalised: copied as they are.
    const float* row = reinterpret_cast<const float*>(vecs + size_t(i) * dim_ * sizeof(float));
    Slot s;
    uint8_t flags = 0;
    (void)slots.Str(&s.id);
    (void)slots.U8(&flags);
    // An id live twice, or named by a dead slot after its live one, is no
    // catalog's: the file is damaged.
    if (slot_of_.count(s.id)) return Status::Corruption("index file names asset '" + s.id + "' twice");
    if (!(flags & kAlive)) {
      SlotFields dead;
      dead.id = std::move(s.id);
      KillLocked(AddSlotLocked(dead, row, /*normalized=*/true));
      continue;
    }
    uint64_t stages = 0;
    uint32_t tag_count = 0;
    (void)slots.U64(&stages);
    (void)slots.U32(&s.type);
    (void)slots.U32(&s.language);
    (void)slots.U32(&tag_count);
    if (s.type > name_count || s.language > name_count) return Status::Corruption("unknown name code in " + path);
    const std::string& type_name = names[s.type];
    s.type = code[s.type];
    s.language = code[s.language];
    s.tags.resize(tag_count);
    for (auto& tag : s.tags) {
      (void)slots.U32(&tag);
      if (tag == 0 || tag > name_count) return Status::Corruption("unknown tag code in " + path);
      tag = code[tag];
    }
    std::sort(s.tags.begin(), s.tags.end());
    for (size_t b = 0; b < stage_count; ++b) {
      if (stages >> b & 1) s.stages |= stage_bit[b];
    }
    s.active = (flags & kActive) != 0;
    auto display = std::make_shared<AssetDisplay>();
    display->id = s.id;
    display->type = type_name;
    (void)slots.Str(&display->title);
    (void)slots.Str(&display->url);
    (void)slots.I64(&display->created_ms);
    if (has_variants) (void)slots.Str(&display->variant_of);
    s.display = std::move(display);
    AppendSlotLocked(std::move(s), row, /*normalized=*/true);
  }
  if (blob_size > 0) {
    auto pending = std::make_shared<PendingGraph>();
    pending->blob = blob;
    pending->size = size_t(blob_size);
    pending->slots = n;
    pending->layout = layout_;
    pending->mapping = std::make_shared<MappedFile>(std::move(data).value());
    pending_graph_ = std::move(pending);
  }
  adds_since_build_ = 0;  // the graph, once in, covers every slot
  ++changes_;
  RecordSaved(changes_, path, seq, embedder);
  return Status::Ok();
}

std::vector<std::shared_ptr<const AssetDisplay>> AssetIndex::LiveDisplays() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<const AssetDisplay>> out;
  out.reserve(live_);
  for (const Slot& s : slots_) {
    if (s.alive) out.push_back(s.display);
  }
  return out;
}

bool AssetIndex::graph_pending() const {
  std::shared_lock lock(mu_);
  return pending_graph_ != nullptr;
}

Status AssetIndex::LoadGraph(const std::atomic<bool>& cancel) {
  std::shared_ptr<const PendingGraph> pending;
  {
    std::shared_lock lock(mu_);
    pending = pending_graph_;
  }
  if (pending == nullptr) return Status::Ok();
  // Outside the lock: searches go on, exactly, while the file's checksum is
  // verified and faiss reads the graph.
  const auto* file = static_cast<const MappedFile*>(pending->mapping.get());
  uint64_t stored, sum = 0;
  std::memcpy(&stored, file->data() + file->size(), 8);
  if (!ChecksumUnlessCancelled(file->data(), file->size(), cancel, &sum)) return Status::Ok();  // stays pending
  Result<std::unique_ptr<AnnIndex>> ann = Status::Corruption("checksum mismatch in the index file's graph");
  if (stored == sum) ann = AnnIndex::Deserialize(pending->blob, pending->size, dim_, &cancel);
  std::unique_lock lock(mu_);
  if (cancel.load()) return Status::Ok();  // stays pending
  if (pending_graph_ != pending) return Status::Ok();  // replaced meanwhile (a Load)
  pending_graph_.reset();
  if (!ann.ok()) return ann.status();
  if (pending->layout != layout_ || ann_) return Status::Ok();  // the slots were rebuilt meanwhile
  if (ann.value()->size() > pending->slots) return Status::Corruption("graph larger than the slot table in the index file");
  ann_ = std::move(ann).value();
  // The rows added since the load stay on the exact path until the rebuild
  // thread extends the graph; changes_ is not bumped: the file holds this.
  adds_since_build_ = slots_.size() - ann_->size();
  return Status::Ok();
}

}  // namespace playbook

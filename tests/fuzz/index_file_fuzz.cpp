// The index file reader (engine/src/index_file.cpp: AssetIndex::PeekFile and
// Load) on arbitrary file contents, then a search over what it loaded.
//
// The input is the file between its magic and its last checksum: this target
// adds both and sets the checksum after the vectors, so that the fuzzer
// reaches the parsing rather than the checksums. The
// HNSW graph blob inside the file is handed to faiss's own reader
// (faiss::read_index), which trusts its input (it allocates any size a
// damaged blob names): the file's checksum is the guard there, and this target
// sets the blob's length to 0 to keep to Playbook's code.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "asset_index.h"

namespace pb = playbook;

namespace {

// The current format (3: variant_of per live slot); format 2 is read by the
// engine's IndexFile tests.
constexpr char kMagic[8] = {'P', 'B', 'I', 'D', 'X', '0', '0', '3'};
constexpr uint32_t kDim = 4;


const std::vector<std::string> kStages = {"awareness", "consideration", "decision"};

pb::SlotFields Fields(const std::string& id, std::vector<std::string> stages) {
  pb::SlotFields f;
  f.id = id;
  f.stages = std::move(stages);
  f.type = "case_study";
  f.language = "zh";
  return f;
}

std::string Path() { return "/tmp/playbook-index-fuzz-" + std::to_string(::getpid()) + ".pbidx"; }

std::unordered_map<std::string, pb::SlotFields> Live() {
  std::unordered_map<std::string, pb::SlotFields> live;
  live["zh-case-01"] = Fields("zh-case-01", {"awareness", "decision"});
  live["en-roi-02"] = Fields("en-roi-02", {"consideration"});
  live["en-case-01"] = Fields("en-case-01", {"awareness"});
  return live;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

bool Init() {
  pb::AssetIndex index(kDim, kStages, pb::IndexOptions{});
  const auto live = Live();
  std::vector<pb::SlotFields> fields;
  for (const auto& [id, f] : live) fields.push_back(f);
  for (pb::SlotFields& f : fields) {
    auto display = std::make_shared<pb::AssetDisplay>();
    display->id = f.id;
    display->title = "title of " + f.id;
    if (f.id == "en-case-01") display->variant_of = "zh-case-01";  // a translation
    f.display = std::move(display);
  }
  const float v[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  index.Upsert(fields, v);
  if (!index.Save(Path(), 7, "lexical-v1").ok()) std::abort();
  const std::vector<uint8_t> file = ReadFile(Path());
  uint64_t stored;
  if (file.size() < 16) std::abort();
  std::memcpy(&stored, file.data() + file.size() - 8, 8);
  if (stored != pb::IndexFileChecksum(file.data(), file.size() - 8)) std::abort();  // the layout this target assumes changed
  if (const char* out = std::getenv("PLAYBOOK_INDEX_FUZZ_SEED")) {
    // Writes a seed for the corpus: the file without magic and checksum.
    std::ofstream(out, std::ios::binary).write(reinterpret_cast<const char*>(file.data()) + 8, long(file.size()) - 16);
  }
  return true;
}

// Walks the layout of index_file.cpp (after the magic) to the slots'
// checksum, sets it, and sets the graph blob's length to 0, dropping the blob
// (see the top of the file). Leaves malformed input alone.
void FixUp(std::vector<uint8_t>* b) {
  size_t pos = 8;
  auto u32 = [&](uint32_t* v) {
    if (b->size() - pos < 4) return false;
    std::memcpy(v, b->data() + pos, 4);
    pos += 4;
    return true;
  };
  auto skip = [&](uint64_t n) {
    if (b->size() - pos < n) return false;
    pos += size_t(n);
    return true;
  };
  auto str = [&] {
    uint32_t len;
    return u32(&len) && skip(len);
  };
  uint32_t dim, count, n;
  if (!u32(&dim) || !skip(8) || !str() || !u32(&count)) return;
  for (uint32_t i = 0; i < count; ++i) {
    if (!str()) return;
  }
  if (!u32(&count)) return;
  for (uint32_t i = 0; i < count; ++i) {
    if (!str()) return;
  }
  if (!u32(&n)) return;
  for (uint32_t i = 0; i < n; ++i) {
    if (!str() || b->size() - pos < 1) return;
    const uint8_t flags = (*b)[pos++];
    uint32_t tags;
    if ((flags & 1) && (!skip(16) || !u32(&tags) || !skip(uint64_t(tags) * 4) || !str() || !str() || !skip(8) || !str())) {
      return;
    }
  }
  if (!skip(uint64_t(n) * dim * sizeof(float)) || b->size() - pos < 16) return;
  const uint64_t sum = pb::IndexFileChecksum(b->data(), pos);
  std::memcpy(b->data() + pos, &sum, 8);
  std::memset(b->data() + pos + 8, 0, 8);
  b->resize(pos + 16);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = Init();
  (void)init;
  std::vector<uint8_t> file(kMagic, kMagic + 8);
  file.insert(file.end(), data, data + size);
  FixUp(&file);
  const uint64_t sum = pb::IndexFileChecksum(file.data(), file.size());
  file.insert(file.end(), reinterpret_cast<const uint8_t*>(&sum), reinterpret_cast<const uint8_t*>(&sum) + 8);
  const std::string path = Path();
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(file.data()), long(file.size()));
  }
  (void)pb::AssetIndex::PeekFile(path);
  pb::AssetIndex index(kDim, kStages, pb::IndexOptions{});
  if (index.Load(path).ok()) {
    // What loaded is searchable, and only live assets come back.
    const float q[] = {0.5f, 0.5f, 0, 0};
    for (const std::string& stage : kStages) {
      pb::AssetFilter filter;
      filter.stage = stage;
      auto hits = index.Search(q, filter, 10);
      if (!hits.ok()) std::abort();
      std::vector<std::string_view> ids;
      for (const auto& h : hits.value()) {
        if (!index.IsLive(h.asset_id)) std::abort();
        ids.push_back(h.asset_id);
      }
      // Content items over whatever links the file holds (cycles included): a
      // root each, and no endless walk.
      if (index.ContentRoots(ids).size() != ids.size()) std::abort();
    }
  }
  std::remove(path.c_str());
  return 0;
}

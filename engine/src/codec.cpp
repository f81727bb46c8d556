#include "codec.h"

#include <cstring>

namespace playbook {
namespace {

constexpr uint8_t kAssetFormat = 1;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(char(v | 0x80));
    v >>= 7;
  }
  out->push_back(char(v));
}

void PutString(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

void PutI64(std::string* out, int64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

struct Input {
  std::string_view in;
  bool ok = true;
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && ok; shift += 7) {
      if (in.empty()) break;
      const uint8_t b = uint8_t(in.front());
      in.remove_prefix(1);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  std::string String() {
    const uint64_t n = Varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  int64_t I64() {
    if (in.size() < 8) {
      ok = false;
      return 0;
    }
    int64_t v;
    std::memcpy(&v, in.data(), 8);
    in.remove_prefix(8);
    return v;
  }
  std::vector<std::string> Strings() {
    const uint64_t n = Varint();
    std::vector<std::string> v;
    for (uint64_t i = 0; i < n && ok; ++i) v.push_back(String());
    return v;
  }
};

}  // namespace

std::string EncodeAsset(const Asset& a) {
  std::string out;
  out.push_back(char(kAssetFormat));
  PutString(&out, a.id);
  PutString(&out, a.title);
  PutString(&out, a.body);
  PutString(&out, a.url);
  PutString(&out, a.language);
  PutString(&out, a.type);
  PutVarint(&out, a.stages.size());
  for (const auto& s : a.stages) PutString(&out, s);
  PutVarint(&out, a.tags.size());
  for (const auto& t : a.tags) PutString(&out, t);
  out.push_back(char((a.active ? 1 : 0) | (a.vector_supplied ? 2 : 0) | (a.deleted ? 4 : 0)));
  PutString(&out, a.embedder);
  PutI64(&out, a.created_ms);
  PutI64(&out, a.updated_ms);
  return out;
}

Status DecodeAsset(std::string_view bytes, Asset* a) {
  if (bytes.empty() || uint8_t(bytes[0]) != kAssetFormat) {
    return Status::Corruption("asset record of unknown format");
  }
  Input in{bytes.substr(1)};
  a->id = in.String();
  a->title = in.String();
  a->body = in.String();
  a->url = in.String();
  a->language = in.String();
  a->type = in.String();
  a->stages = in.Strings();
  a->tags = in.Strings();
  if (in.in.empty()) return Status::Corruption("truncated asset record");
  const uint8_t flags = uint8_t(in.in.front());
  in.in.remove_prefix(1);
  a->active = flags & 1;
  a->vector_supplied = flags & 2;
  a->deleted = flags & 4;
  a->embedder = in.String();
  a->created_ms = in.I64();
  a->updated_ms = in.I64();
  if (!in.ok) return Status::Corruption("truncated asset record");
  return Status::Ok();
}

std::string EncodeVector(const float* v, uint32_t dim) {
  return std::string(reinterpret_cast<const char*>(v), sizeof(float) * dim);
}

Status DecodeVector(std::string_view bytes, uint32_t dim, std::vector<float>* out) {
  if (bytes.size() != sizeof(float) * dim) return Status::Corruption("vector of the wrong size");
  out->resize(dim);
  if (dim > 0) std::memcpy(out->data(), bytes.data(), bytes.size());  // data() may be null at 0
  return Status::Ok();
}

}  // namespace playbook

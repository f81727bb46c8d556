#include "playbook/base/vector_base64.h"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

namespace playbook {
namespace {

static_assert(std::endian::native == std::endian::little, "vectors travel as little-endian float32");

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kBad = 0xff;

constexpr std::array<uint8_t, 256> MakeValues() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = kBad;
  for (uint8_t i = 0; i < 64; ++i) t[uint8_t(kAlphabet[i])] = i;
  return t;
}
constexpr std::array<uint8_t, 256> kValues = MakeValues();

std::string Shown(char c) {
  const auto u = uint8_t(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 15];
}

}  // namespace

std::string EncodeVectorBase64(const float* v, size_t n) {
  const auto* p = reinterpret_cast<const uint8_t*>(v);
  const size_t bytes = n * sizeof(float);
  std::string out;
  out.resize((bytes + 2) / 3 * 4);
  char* o = out.data();
  size_t i = 0;
  for (; i + 3 <= bytes; i += 3) {
    const uint32_t w = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8 | p[i + 2];
    *o++ = kAlphabet[w >> 18];
    *o++ = kAlphabet[(w >> 12) & 63];
    *o++ = kAlphabet[(w >> 6) & 63];
    *o++ = kAlphabet[w & 63];
  }
  if (i < bytes) {
    const bool two = i + 1 < bytes;
    const uint32_t w = uint32_t(p[i]) << 16 | (two ? uint32_t(p[i + 1]) << 8 : 0u);
    *o++ = kAlphabet[w >> 18];
    *o++ = kAlphabet[(w >> 12) & 63];
    *o++ = two ? kAlphabet[(w >> 6) & 63] : '=';
    *o++ = '=';
  }
  return out;
}

bool DecodeVectorBase64(std::string_view text, size_t max_items, std::vector<float>* out, std::string* why) {
  out->clear();
  if (text.size() % 4 != 0) {
    *why = "not base64: " + std::to_string(text.size()) + " characters, not a multiple of 4 (is the '=' padding missing?)";
    return false;
  }
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  const size_t bytes = text.size() / 4 * 3 - pad;
  if (bytes % sizeof(float) != 0) {
    *why = "base64 of " + std::to_string(bytes) +
           " bytes, not a whole number of float32 values (a multiple of 4 bytes)";
    return false;
  }
  if (bytes / sizeof(float) > max_items) {
    *why = "more than " + std::to_string(max_items) + " numbers";
    return false;
  }
  std::vector<uint8_t> raw(bytes + 2);  // the last group may write 2 bytes past `bytes`
  uint8_t* o = raw.data();
  const size_t body = text.size() - pad;
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t w = 0;
    for (size_t j = 0; j < 4; ++j) {
      const size_t at = i + j;
      uint8_t v = 0;
      if (at < body) {
        v = kValues[uint8_t(text[at])];
        if (v == kBad) {
          *why = "not base64: " + (text[at] == '=' ? std::string("'=' before the end") : Shown(text[at])) +
                 " at offset " + std::to_string(at);
          return false;
        }
      }
      w = w << 6 | v;
    }
    *o++ = uint8_t(w >> 16);
    *o++ = uint8_t(w >> 8);
    *o++ = uint8_t(w);
  }
  out->resize(bytes / sizeof(float));
  if (bytes > 0) std::memcpy(out->data(), raw.data(), bytes);
  return true;
}

}  // namespace playbook

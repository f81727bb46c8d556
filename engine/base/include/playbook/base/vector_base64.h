// Vectors as base64 text: the bytes of little-endian float32 values in
// standard base64 (RFC 4648 section 4: A-Z a-z 0-9 + /, '=' padding to a
// multiple of 4 characters). The protocol accepts a vector either as a JSON
// array of numbers or as such a string (docs/protocol.md); the string is about
// half the size of the array and much faster to parse.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace playbook {

std::string EncodeVectorBase64(const float* v, size_t n);

// Decodes `text` into `out` (replacing it). On failure returns false with the
// reason in `why` ("not base64: ..."). Decodes at most max_items values
// (more is an error, found before anything is decoded). Does not check that
// the values are finite: the caller names the offending element.
bool DecodeVectorBase64(std::string_view text, size_t max_items, std::vector<float>* out, std::string* why);

}  // namespace playbook

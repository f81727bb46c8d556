// The stored encoding of catalog records. Private to engine/.
//
// "assets" column family: key = asset id, value = EncodeAsset (no vector).
// "vectors" column family: key = asset id, value = dimension little-endian floats.
#pragma once

#include <string>
#include <string_view>

#include "playbook/engine/status.h"
#include "playbook/engine/types.h"

namespace playbook {

// Format byte first, so the encoding can evolve.
std::string EncodeAsset(const Asset& asset);
// Corruption when the bytes are not an encoded asset.
Status DecodeAsset(std::string_view bytes, Asset* asset);

std::string EncodeVector(const float* v, uint32_t dim);
// Corruption when the size is not dim floats.
Status DecodeVector(std::string_view bytes, uint32_t dim, std::vector<float>* out);

}  // namespace playbook

// The remote embedder's response parser (server/http_embedder.h), which reads
// whatever the model's endpoint sends: the first byte picks how many inputs
// were asked (1..4) and the dimension (1..8), the rest is the body. It must
// refuse as Internal with a printable message (it goes into logs and JSON-RPC
// errors), or accept unit-length finite rows.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "playbook/server/http_embedder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t count = 1 + (data[0] & 3);
  const uint32_t dimension = 1 + ((data[0] >> 2) & 7);
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<float> out(count * dimension);
  const playbook::Status st = playbook::server::ParseEmbeddingsResponse(body, count, dimension, out.data());
  if (!st.ok()) {
    if (st.code() != playbook::Status::Code::kInternal) std::abort();
    for (char c : st.message()) {
      if (c < 0x20 || c > 0x7e) std::abort();
    }
    return 0;
  }
  for (size_t r = 0; r < count; ++r) {
    double norm = 0;
    for (uint32_t j = 0; j < dimension; ++j) {
      const float x = out[r * dimension + j];
      if (!std::isfinite(x)) std::abort();
      norm += double(x) * x;
    }
    if (std::fabs(norm - 1.0) > 1e-3) std::abort();
  }
  return 0;
}

// Embedders turn text into vectors for the index. Each names itself, so the
// index can store which embedder (and dimension) produced its vectors and
// rebuild when they change.
//
// Thread safety: Embed may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace playbook::models {

class Embedder {
 public:
  virtual ~Embedder() = default;
  // Stable identifier of the model and its parameters, e.g. "lexical-v1".
  virtual std::string Name() const = 0;
  // Length of every vector Embed writes.
  virtual uint32_t Dimension() const = 0;
  // Writes Dimension() floats to `out` (caller-owned), L2-normalised.
  virtual void Embed(std::string_view text, float* out) const = 0;
};

}  // namespace playbook::models

// A tiny deterministic embedder for engine tests: each whitespace-separated
// word adds +1 to one dimension picked by hashing it. Unit-normalised.
#pragma once

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/models/embedder.h"

namespace playbook::testing {

class WordEmbedder : public models::LocalEmbedder {
 public:
  WordEmbedder(uint32_t dim, std::string name = "words-v1") : dim_(dim), name_(std::move(name)) {}
  std::string Name() const override { return name_; }
  uint32_t Dimension() const override { return dim_; }
  void Embed(std::string_view text, float* out) const override {
    for (uint32_t i = 0; i < dim_; ++i) out[i] = 0;
    size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
      uint64_t h = 1469598103934665603ull;
      bool any = false;
      while (i < text.size() && text[i] != ' ' && text[i] != '\n') {
        h = (h ^ uint8_t(text[i++])) * 1099511628211ull;
        any = true;
      }
      if (any) out[(h ^ salt_) % dim_] += 1;
    }
    double n = 0;
    for (uint32_t d = 0; d < dim_; ++d) n += out[d] * out[d];
    if (n == 0) {
      out[0] = 1;
      return;
    }
    for (uint32_t d = 0; d < dim_; ++d) out[d] = float(out[d] / std::sqrt(n));
  }
  // Words starting with '#' name concepts: "#price too expensive" -> {"price"}.
  std::vector<std::string> Concepts(std::string_view text) const override {
    std::vector<std::string> out;
    size_t i = 0;
    while ((i = text.find('#', i)) != std::string_view::npos) {
      size_t end = text.find_first_of(" \n", i);
      if (end == std::string_view::npos) end = text.size();
      if (end > i + 1) out.emplace_back(text.substr(i + 1, end - i - 1));
      i = end;
    }
    return out;
  }
  // A different salt makes a different (but equally deterministic) embedder.
  void set_salt(uint64_t salt) { salt_ = salt; }

 private:
  uint32_t dim_;
  std::string name_;
  uint64_t salt_ = 0;
};

// A remote embedder's faults, injected: WordEmbedder's vectors while up,
// Overloaded ("model down") while down.
class FlakyEmbedder : public models::Embedder {
 public:
  explicit FlakyEmbedder(std::shared_ptr<WordEmbedder> inner) : inner_(std::move(inner)) {}
  std::string Name() const override { return inner_->Name(); }
  uint32_t Dimension() const override { return inner_->Dimension(); }
  Status EmbedBatch(const std::vector<std::string>& texts, float* out) const override {
    if (down_) return Status::Overloaded("model down");
    ++calls_;
    return inner_->EmbedBatch(texts, out);
  }
  std::vector<std::string> Concepts(std::string_view text) const override { return inner_->Concepts(text); }
  void set_down(bool down) { down_ = down; }
  int calls() const { return calls_; }

 private:
  std::shared_ptr<WordEmbedder> inner_;
  std::atomic<bool> down_{false};
  mutable std::atomic<int> calls_{0};
};

}  // namespace playbook::testing

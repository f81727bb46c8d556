// The built-in embedder: offline, deterministic, fast, for Chinese and English
// alike. Lexical features (CJK character uni/bigrams, Latin word uni/bigrams)
// plus concept features from a bilingual sales lexicon, feature-hashed with
// signed hashing into `dimension` floats, sublinear term weights, L2-normalised.
//
// Thread safety: immutable after Create; Embed may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/base/status.h"
#include "playbook/models/embedder.h"

namespace playbook::models {

struct LexicalEmbedderOptions {
  // Length of every vector, 1..4096.
  uint32_t dimension = 384;
  // The concept lexicon's text (format: see data/lexicon/sales_concepts.tsv).
  // Empty = no concept features.
  std::string lexicon;
};

class LexicalEmbedder final : public LocalEmbedder {
 public:
  // InvalidArgument (field "lexicon", message with the line number) for a
  // malformed lexicon; InvalidArgument("dimension") for a bad dimension.
  static Result<std::unique_ptr<LexicalEmbedder>> Create(const LexicalEmbedderOptions& options);
  ~LexicalEmbedder() override;

  // "lexical-v7/d384/lex-1a2b3c4d": changes whenever the vectors would (algorithm
  // version, dimension, lexicon content), so stored vectors can be re-embedded.
  std::string Name() const override;
  uint32_t Dimension() const override;
  void Embed(std::string_view text, float* out) const override;
  // Concepts with an exact phrase match in `text`, in lexicon order.
  std::vector<std::string> Concepts(std::string_view text) const override;
  // TextTerms less the terms that alone match a lexicon phrase.
  std::vector<std::string> Terms(std::string_view text) const override;

  // Number of concepts in the lexicon (for logs and index.status).
  size_t ConceptCount() const;

 private:
  struct Impl;
  explicit LexicalEmbedder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The lexicon shipped in data/lexicon/sales_concepts.tsv, compiled into the binary.
std::string_view DefaultLexicon();


}  // namespace playbook::models

// Embedders turn text into vectors for the index. Each names itself, so the
// index can store which embedder (and dimension) produced its vectors and
// rebuild when they change.
//
// Two kinds: local ones (LocalEmbedder: in-process, cannot fail) and remote
// ones (a model behind HTTP, server/'s HttpEmbedder), which can be down, slow
// or wrong; EmbedBatch is the one call that serves both.
//
// Thread safety: EmbedBatch and Embed may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/base/status.h"

namespace playbook::models {

class Embedder {
 public:
  virtual ~Embedder() = default;
  // Stable identifier of the model and its parameters, e.g. "lexical-v7".
  virtual std::string Name() const = 0;
  // Length of every vector EmbedBatch writes.
  virtual uint32_t Dimension() const = 0;
  // Writes texts.size() * Dimension() floats to `out` (caller-owned), row i
  // the L2-normalised vector of texts[i]. A remote embedder splits the texts
  // into requests of its own batch size. Errors (a remote embedder only):
  // Overloaded when the model cannot be reached or timed out (retry later),
  // Internal when it answered something unusable; the message says what, and
  // `out` then holds garbage.
  virtual Status EmbedBatch(const std::vector<std::string>& texts, float* out) const = 0;
  // The named concepts the text states outright (e.g. "price_high",
  // "budget"), for explanations; empty when the embedder has none.
  virtual std::vector<std::string> Concepts(std::string_view text) const {
    (void)text;
    return {};
  }
  // The text's terms a team's own vocabulary is learnt from (docs/ranking.md,
  // "the org's own words"): TextTerms(text), less those the embedder already
  // understands (the lexical embedder drops terms that are a lexicon phrase);
  // empty when the embedder learns no vocabulary.
  virtual std::vector<std::string> Terms(std::string_view text) const {
    (void)text;
    return {};
  }
};

// The distinct terms of `text`, in order of first occurrence, at most
// kMaxTerms: English (Latin) words lower-cased, not stemmed, of 2+ letters and
// not stop-words (nor "you", "your", "ok" ...); and Chinese character bigrams
// within a run of CJK characters, neither a function character (的 了 你 们
// ..., though 一 把 让 给 对 pair). Numbers and single characters are not terms. Defined in playbook_models (an embedder outside it that
// learns vocabulary links it).
std::vector<std::string> TextTerms(std::string_view text);
inline constexpr size_t kMaxTerms = 32;

// An in-process embedder: one text at a time, never fails.
class LocalEmbedder : public Embedder {
 public:
  // Writes Dimension() floats to `out` (caller-owned), L2-normalised.
  virtual void Embed(std::string_view text, float* out) const = 0;
  // Embed for each text in turn; always OK.
  Status EmbedBatch(const std::vector<std::string>& texts, float* out) const final {
    for (size_t i = 0; i < texts.size(); ++i) Embed(texts[i], out + i * Dimension());
    return Status::Ok();
  }
};

// The text embedded for an asset, composed the same way everywhere (engine,
// tools, tests): the title twice (it names what the asset is for), then the
// body, then the tags; newlines are hard boundaries, so no bigram or phrase
// spans two parts.
inline std::string ComposeAssetText(std::string_view title, std::string_view body,
                                    const std::vector<std::string>& tags) {
  std::string s;
  s.reserve(2 * title.size() + body.size() + 16 * tags.size() + 4);
  s.append(title).append("\n").append(title).append("\n").append(body);
  for (const auto& t : tags) s.append("\n").append(t);
  return s;
}

}  // namespace playbook::models

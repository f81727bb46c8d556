// The built-in embedder. See lexical_embedder.h for the contract and lexicon.h
// for normalisation, tokenisation and the lexicon.
//
// A text's vector is the mix of two blocks:
//   lexical: CJK character unigrams (weight 0.8) and bigrams within a run of
//            CJK characters (1.0), Latin word unigrams (1.0) and bigrams of
//            consecutive non-stopwords (0.7), numbers (0.5); each weighted
//            class weight x (1 + ln tf) and signed-hashed into the slots;
//   concept: per lexicon concept, (1 + ln tf) for phrase matches (Lexicon::Match) plus
//            ln(1 + 0.2 x soft evidence), where soft evidence comes from words,
//            characters and pairs of adjacent CJK characters that the text
//            shares with the concept's phrases (see Lexicon::SoftMatch): "退钱"
//            leans towards the refund concept through "退" even though no phrase
//            matches exactly; plus 0.5 x the concept's weak expansion words ("+concept"
//            lexicon lines, Lexicon::MatchWeak; the shipped lexicon has none) and, for a
//            text no phrase matches, 0.5 x its Chinese back-off (character pairs that 3+
//            phrases of that concept alone use, Lexicon::Backoff: "心理价位" reaches price
//            through "价位"). All read the text after Lexicon::Focus, which masks a
//            boss named as the speaker ("老板说太贵了") and a concern the note sets
//            aside ("预算不是问题"); the lexical block reads every token.
// Concepts get dedicated slots [0, concepts) when the lexicon is small next to
// the dimension (4 x concepts <= dimension: the default 45 concepts at d384),
// so concept evidence never collides with anything and lexical features hash
// into the remaining slots; otherwise each concept is hashed into 4 slots.
// Each block is L2-normalised on its own and they are mixed so that, when a
// text has concept evidence, it carries 60% of the squared norm: a shared
// concept dominates the dot product of two texts, and lexical overlap still
// ranks texts with the same concepts. The mix is L2-normalised again.
//
// A text with no features at all (empty, only punctuation, only stopwords,
// only invalid bytes) gets one fixed unit vector: a reserved "<empty>" feature
// alone. All such texts are identical (cosine 1) and near-orthogonal to others;
// no output is ever NaN.
//
// Determinism: features come from FNV-1a and a fixed mixer (never std::hash),
// are sorted before being summed, logarithms are computed with + - * / only
// (internal::DetLog), and sums are in double with IEEE-exact operations only
// (+ - * / sqrt), so the floats are bit-identical on every run and machine.
#include "playbook/models/lexical_embedder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "lexicon.h"

namespace playbook::models {
namespace {

using internal::Token;
using internal::TokenKind;

enum FeatureClass : uint8_t { kCjkUni, kCjkBi, kWordUni, kWordBi, kNumber, kClassCount };
constexpr double kClassWeight[kClassCount] = {0.8, 1.0, 1.0, 0.7, 0.5};
constexpr uint64_t kClassSeed[kClassCount] = {0x8c4d2f3b5e6a7190ULL, 0x1f2e3d4c5b6a7988ULL,
                                              0x7a1b2c3d4e5f6071ULL, 0x3c5e7a9b1d2f4a6cULL,
                                              0x5d6e7f8091a2b3c4ULL};
constexpr double kConceptShare = 0.6;
constexpr double kSoftWeight = 0.2;
constexpr double kWeakWeight = 0.5;     // a generated expansion word, against a curated phrase's 1
constexpr double kBackoffWeight = 0.5;  // a Chinese morpheme of one concept, in a note no phrase matches
constexpr uint32_t kConceptSlots = 4;
constexpr uint32_t kMaxDimension = 4096;

double Sublinear(uint32_t tf) { return 1.0 + internal::DetLog(static_cast<double>(tf)); }

struct Feature {
  uint64_t key;
  uint8_t cls;
  bool operator<(const Feature& o) const { return key != o.key ? key < o.key : cls < o.cls; }
  bool operator==(const Feature& o) const { return key == o.key && cls == o.cls; }
};

uint64_t UnigramKey(uint64_t id, FeatureClass cls) { return internal::Mix64(id ^ kClassSeed[cls]); }
uint64_t BigramKey(uint64_t a, uint64_t b, FeatureClass cls) {
  return internal::Mix64(internal::Mix64(a ^ kClassSeed[cls]) + b * 0x9e3779b97f4a7c15ULL);
}

void Add(double* v, uint32_t slot, uint64_t key, double weight) {
  v[slot] += (key >> 63) ? -weight : weight;
}

double Norm(const std::vector<double>& v, size_t begin, size_t end) {
  double s = 0;
  for (size_t i = begin; i < end; ++i) s += v[i] * v[i];
  return std::sqrt(s);
}

}  // namespace

struct LexicalEmbedder::Impl {
  uint32_t dimension = 0;
  internal::Lexicon lexicon;
  std::string name;
  // Where concept c's weight goes: when the lexicon is small next to the
  // dimension, concept c owns slot c alone (no collisions at all) and lexical
  // features hash into [lexical_base, dimension); otherwise each concept is
  // hashed into kConceptSlots slots anywhere, like any feature.
  bool dedicated_concept_slots = false;
  uint32_t lexical_base = 0;
  std::vector<uint64_t> concept_keys;  // kConceptSlots per concept (hashed mode)
  uint64_t empty_key = 0;

  uint32_t LexicalSlot(uint64_t key) const {
    return lexical_base + static_cast<uint32_t>(key % (dimension - lexical_base));
  }

  void EmptyVector(float* out) const {
    std::fill(out, out + dimension, 0.0f);
    out[LexicalSlot(empty_key)] = (empty_key >> 63) ? -1.0f : 1.0f;
  }
};

Result<std::unique_ptr<LexicalEmbedder>> LexicalEmbedder::Create(const LexicalEmbedderOptions& o) {
  if (o.dimension == 0 || o.dimension > kMaxDimension)
    return Status::InvalidArgument("dimension", "must be 1.." + std::to_string(kMaxDimension) +
                                                    ", got " + std::to_string(o.dimension));
  auto impl = std::make_unique<Impl>();
  impl->dimension = o.dimension;
  if (Status s = impl->lexicon.Parse(o.lexicon); !s.ok()) return s;
  const size_t concepts = impl->lexicon.size();
  if (concepts > 0 && concepts * kConceptSlots <= o.dimension) {
    impl->dedicated_concept_slots = true;
    impl->lexical_base = static_cast<uint32_t>(concepts);
  }
  for (size_t c = 0; c < concepts; ++c) {
    const uint64_t base = internal::Fnv1a64(impl->lexicon.concept_id(c), 0x6c62272e07bb0142ULL);
    for (uint32_t k = 0; k < kConceptSlots; ++k)
      impl->concept_keys.push_back(internal::Mix64(base + k * 0x9e3779b97f4a7c15ULL));
  }
  impl->empty_key = internal::Mix64(internal::Fnv1a64("<empty>"));
  char buf[64];
  std::snprintf(buf, sizeof buf, "lexical-v7/d%u/lex-%08x", static_cast<unsigned>(o.dimension),
                static_cast<unsigned>(internal::Fnv1a32(o.lexicon)));
  impl->name = buf;
  return std::unique_ptr<LexicalEmbedder>(new LexicalEmbedder(std::move(impl)));
}

LexicalEmbedder::LexicalEmbedder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LexicalEmbedder::~LexicalEmbedder() = default;
std::string LexicalEmbedder::Name() const { return impl_->name; }
uint32_t LexicalEmbedder::Dimension() const { return impl_->dimension; }
size_t LexicalEmbedder::ConceptCount() const { return impl_->lexicon.size(); }

std::vector<std::string> LexicalEmbedder::Concepts(std::string_view text) const {
  std::vector<std::string> out;
  if (impl_->lexicon.size() == 0) return out;
  std::vector<internal::Token> tokens;
  internal::Tokenize(text, &tokens);
  impl_->lexicon.Focus(&tokens);
  std::vector<uint32_t> tf(impl_->lexicon.size(), 0);
  impl_->lexicon.Match(tokens, &tf);
  for (size_t c = 0; c < tf.size(); ++c) {
    if (tf[c] > 0) out.push_back(impl_->lexicon.concept_id(c));
  }
  return out;
}

std::vector<std::string> LexicalEmbedder::Terms(std::string_view text) const {
  std::vector<Token> tokens;
  std::vector<std::string> forms;
  internal::Tokenize(text, &tokens, &forms);
  // Terms come from the start of a text (at most kMaxTerms): a long note is
  // matched against the lexicon over its first kMaxTermTokens tokens only.
  constexpr size_t kMaxTermTokens = 512;
  if (tokens.size() > kMaxTermTokens) {
    tokens.resize(kMaxTermTokens);
    forms.resize(kMaxTermTokens);
  }
  std::vector<internal::TermSpan> spans;
  internal::FindTerms(tokens, forms, &spans);
  std::vector<std::string> out;
  if (impl_->lexicon.size() == 0) {
    for (auto& t : spans) out.push_back(std::move(t.term));
    return out;
  }
  // A token is the lexicon's when taking it out of the text loses a phrase
  // match ("心理价位": each of its characters); a term with such a token is
  // one the embedder already understands.
  const size_t concepts = impl_->lexicon.size();
  std::vector<uint32_t> base(concepts, 0), without(concepts, 0);
  impl_->lexicon.Match(tokens, &base);
  std::vector<int8_t> known(tokens.size(), -1);  // -1 not checked yet
  auto is_known = [&](uint32_t i) {
    if (known[i] < 0) {
      const uint64_t id = tokens[i].id;
      tokens[i].id = 0x9e3779b97f4a7c15ULL;  // no phrase has this token
      std::fill(without.begin(), without.end(), 0);
      impl_->lexicon.Match(tokens, &without);
      tokens[i].id = id;
      known[i] = without != base ? 1 : 0;
    }
    return known[i] == 1;
  };
  for (auto& t : spans) {
    bool mapped = false;
    for (uint32_t i = t.first; i <= t.last && !mapped; ++i) mapped = is_known(i);
    if (!mapped) out.push_back(std::move(t.term));
  }
  return out;
}

void LexicalEmbedder::Embed(std::string_view text, float* out) const {
  const uint32_t dim = impl_->dimension;
  std::vector<Token> tokens;
  tokens.reserve(text.size() / 2 + 4);
  internal::Tokenize(text, &tokens);

  // Lexical features.
  std::vector<Feature> feats;
  feats.reserve(tokens.size() * 2);
  const Token* prev_word = nullptr;  // last non-stop word of the current clause
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (t.gap >= 2) prev_word = nullptr;
    switch (t.kind) {
      case TokenKind::kCjk: {
        prev_word = nullptr;
        if (t.stop) break;
        feats.push_back({UnigramKey(t.id, kCjkUni), kCjkUni});
        const Token* n = i + 1 < tokens.size() ? &tokens[i + 1] : nullptr;
        if (n && n->kind == TokenKind::kCjk && n->gap == 0 && !n->stop)
          feats.push_back({BigramKey(t.id, n->id, kCjkBi), kCjkBi});
        break;
      }
      case TokenKind::kWord:
        if (t.stop) break;
        feats.push_back({UnigramKey(t.id, kWordUni), kWordUni});
        if (prev_word) feats.push_back({BigramKey(prev_word->id, t.id, kWordBi), kWordBi});
        prev_word = &t;
        break;
      case TokenKind::kNumber:
        prev_word = nullptr;
        feats.push_back({UnigramKey(t.id, kNumber), kNumber});
        break;
    }
  }
  std::sort(feats.begin(), feats.end());

  // Blocks: [0, dim) lexical, [dim, 2 dim) concepts.
  std::vector<double> v(2 * static_cast<size_t>(dim), 0.0);
  for (size_t i = 0; i < feats.size();) {
    size_t j = i + 1;
    while (j < feats.size() && feats[j] == feats[i]) ++j;
    Add(v.data(), impl_->LexicalSlot(feats[i].key), feats[i].key,
        kClassWeight[feats[i].cls] * Sublinear(static_cast<uint32_t>(j - i)));
    i = j;
  }
  if (impl_->lexicon.size() > 0) {
    impl_->lexicon.Focus(&tokens);  // the lexical features above are read; only concepts skip the masked
    const size_t concepts = impl_->lexicon.size();
    std::vector<uint32_t> tf(concepts, 0);
    impl_->lexicon.Match(tokens, &tf);
    std::vector<double> soft(concepts, 0.0), weak(concepts, 0.0), backoff(concepts, 0.0);
    impl_->lexicon.SoftMatch(tokens, &soft);
    impl_->lexicon.MatchWeak(tokens, &weak);
    // The back-off is for notes in words the lexicon does not know: with any phrase match it
    // stays out (applied beside matches it cost rank-dev and rank-dev3-zh top-3; docs/ranking.md).
    if (std::all_of(tf.begin(), tf.end(), [](uint32_t x) { return x == 0; }))
      impl_->lexicon.Backoff(tokens, &backoff);
    for (size_t c = 0; c < tf.size(); ++c) {
      const double weight = (tf[c] ? Sublinear(tf[c]) : 0.0) +
                            internal::DetLog(1.0 + kSoftWeight * soft[c]) + kWeakWeight * weak[c] +
                            kBackoffWeight * backoff[c];
      if (weight == 0) continue;
      if (impl_->dedicated_concept_slots) {
        v[dim + c] += weight;
        continue;
      }
      const double w = weight / std::sqrt(static_cast<double>(kConceptSlots));
      for (uint32_t k = 0; k < kConceptSlots; ++k) {
        const uint64_t key = impl_->concept_keys[c * kConceptSlots + k];
        Add(v.data() + dim, static_cast<uint32_t>(key % dim), key, w);
      }
    }
  }

  const double nl = Norm(v, 0, dim);
  const double nc = Norm(v, dim, 2 * static_cast<size_t>(dim));
  double wl = 0, wc = 0;
  if (nl > 0 && nc > 0) {
    wl = std::sqrt(1.0 - kConceptShare) / nl;
    wc = std::sqrt(kConceptShare) / nc;
  } else if (nl > 0) {
    wl = 1.0 / nl;
  } else if (nc > 0) {
    wc = 1.0 / nc;
  } else {
    impl_->EmptyVector(out);
    return;
  }
  double sq = 0;
  for (uint32_t i = 0; i < dim; ++i) {
    v[i] = v[i] * wl + v[dim + i] * wc;
    sq += v[i] * v[i];
  }
  if (!(sq > 0)) {  // the two blocks cancelled exactly: treat as feature-less
    impl_->EmptyVector(out);
    return;
  }
  const double inv = 1.0 / std::sqrt(sq);
  for (uint32_t i = 0; i < dim; ++i) out[i] = static_cast<float>(v[i] * inv);
}

}  // namespace playbook::models

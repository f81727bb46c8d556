// Internal to playbook_models: the tokeniser shared by the embedder and the
// lexicon (tokenizer.cpp), and the concept lexicon itself (lexicon.cpp).
//
// Normalisation (applied identically to texts and to lexicon phrases):
//   - UTF-8 is decoded strictly; an invalid or truncated sequence is a hard
//     separator, and decoding never reads past the end of the input.
//   - Full-width ASCII (U+FF01..U+FF5E) becomes half-width, U+3000 a space.
//   - Traditional Chinese characters become simplified ones (traditional_chinese.inc, from OpenCC;
//     characters that are also simplified stay), so "價格" is "价格".
//   - Letters are lower-cased (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic).
//   - CJK ideographs, kana and hangul are one token per character.
//   - Runs of letters/digits form words; apostrophes inside a word are dropped
//     ("don't" -> "dont") and a possessive 's too ("vendor's" -> "vendor");
//     '%' is the word "percent". English words are lightly stemmed: common
//     irregular verbs ("paid" -> "pay"), plural -s/-es/-ies, -ly, -ing, -ed and
//     a final -e, so "prices", "pricing" and "priced" all become "pric".
//   - Whitespace, '-', '/', '_', '&', '+' separate words softly (gap 1); all
//     other punctuation (ASCII and CJK, e.g. ,。!?、) and invalid bytes are
//     hard boundaries (gap 2) that neither bigrams nor phrases cross.
//   - Stopwords: English function words and Chinese particles/pronouns
//     (的 了 吗 呢 ...) get no lexical features but still take part in phrases.
//
// Thread safety: Tokenize is reentrant; a Lexicon is immutable after Parse.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "playbook/base/status.h"

namespace playbook::models::internal {

// 64-bit FNV-1a. Fixed on every platform (never std::hash).
inline uint64_t Fnv1a64(std::string_view s, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// 32-bit FNV-1a (for the lexicon fingerprint in the embedder's name).
inline uint32_t Fnv1a32(std::string_view s) {
  uint32_t h = 0x811c9dc5u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x01000193u;
  }
  return h;
}

// The murmur3 finaliser: spreads FNV's bits before they pick slots and signs.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// ln(x) for x >= 1 with + - * / only (deterministic everywhere).
inline double DetLog(double x) {
  constexpr double kLn2 = 0.69314718055994530942;
  int e = 0;
  while (x >= 2.0) {
    x *= 0.5;
    ++e;
  }
  const double s = (x - 1.0) / (x + 1.0);
  const double s2 = s * s;
  double term = s, sum = 0.0;
  for (int k = 1; k <= 41; k += 2) {
    sum += term / k;
    term *= s2;
  }
  return 2.0 * sum + e * kLn2;
}

enum class TokenKind : uint8_t { kCjk, kWord, kNumber };

struct Token {
  uint64_t id;     // Fnv1a64 of the normalised (stemmed) UTF-8 form
  TokenKind kind;
  bool stop;       // a function word / particle: no unigram or bigram feature
  uint8_t gap;     // separation from the previous token: 0 none, 1 soft, 2 hard
  uint64_t prefix_id = 0;  // stemmed words of 6+ letters: id of the first 5, else 0
};

// Appends the tokens of `text` to `out`. Never fails. (tokenizer.cpp) With
// `forms`, appends each token's text there too, in step: a CJK character, or
// a word lower-cased and folded but not stemmed ("Prices" -> "prices").
void Tokenize(std::string_view text, std::vector<Token>* out, std::vector<std::string>* forms = nullptr);

// A term of a text (models::TextTerms) and the tokens it spans, first..last.
struct TermSpan {
  std::string term;
  uint32_t first = 0, last = 0;
};
// The distinct terms of the tokens (and their forms, from Tokenize), at most
// kMaxTerms, each at its first occurrence, in order. (tokenizer.cpp)
void FindTerms(const std::vector<Token>& tokens, const std::vector<std::string>& forms, std::vector<TermSpan>* out);

// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or truncation).
bool IsValidUtf8(std::string_view text);

// A bilingual concept lexicon; see data/lexicon/sales_concepts.tsv for the format.
class Lexicon {
 public:
  // Replaces the contents. InvalidArgument("lexicon", "line N: ...") on a malformed line.
  Status Parse(std::string_view text);

  size_t size() const { return concepts_.size(); }
  const std::string& concept_id(size_t i) const { return concepts_[i]; }

  // Adds to (*tf)[c] the number of non-overlapping matches of concept c's phrases in
  // `tokens`; tf must have size() entries. Phrases match contiguous tokens that are
  // not separated by a hard boundary. Degree adverbs (太 很 有点 ... very quite ...,
  // kFillers in lexicon.cpp) are optional: the text is matched once more without them
  // and each concept keeps the larger count ("价格太吓人" matches "价格吓人").
  void Match(const std::vector<Token>& tokens, std::vector<uint32_t>* tf) const;

  // Generated expansion words ("+concept_id<TAB>word|word" lines: the WordNet table,
  // data/lexicon/wordnet_expansions.tsv): every distinct such word of `tokens` adds
  // (1 + ln tf) / (number of concepts listing it) to (*score)[c]. A word that a curated phrase
  // already uses, a generic word or a stopword is never an expansion (Parse drops it).
  void MatchWeak(const std::vector<Token>& tokens, std::vector<double>* score) const;

  // Chinese back-off for words the lexicon does not know (the embedder calls it only for a
  // text no phrase matches): every distinct pair of adjacent non-stop CJK characters of
  // `tokens` that the lexicon's own phrases use as a morpheme of one concept (in at least
  // kBackoffMinSupport = 3 phrases, kBackoffMinShare = all of them that concept's: "价位" in
  // price words) adds (1 + ln tf) x that share to (*score)[c]. A pair that phrases of two
  // concepts use, or fewer than three phrases, adds nothing.
  void Backoff(const std::vector<Token>& tokens, std::vector<double>* score) const;

  // Soft concept evidence: every cue of `tokens` (a non-stop word or CJK
  // character, the 5-letter prefix of a long word, or a pair of adjacent CJK
  // characters: CueKeys in lexicon.cpp) that also occurs in some
  // concept's phrases adds (1 + ln tf) x its cue weight to (*score)[c] (size()
  // entries). A cue's weight is ln(concepts / concepts using it), shared among
  // those concepts by how many of their phrases use it: distinctive words
  // ("refund", "崩") count, shared ones ("不") barely do, and words that are
  // everywhere in CRM notes ("lead", "客户", "year") are never cues.
  void SoftMatch(const std::vector<Token>& tokens, std::vector<double>* score) const;

  // Masks the tokens of a Chinese note that name no concern of it, before Match and SoftMatch
  // read its concepts (their ids become one no phrase or cue has; gaps stay):
  //   - a role named as the speaker: a role of rank (老板 领导 老总 CEO ..., kSpeakerRoles; not 采购 or 财务) right
  //     before a verb of saying or judging (说 觉得 嫌 问 ..., kSpeechVerbs), with at most one
  //     adverb between (也 还 又 ...): in "老板说太贵了" the boss reports and the concern is
  //     price. Not when the verb makes the role the decider ("老板说了算") or the role is an
  //     object ("跟老板说", "找领导问");
  //   - a concern the note sets aside: up to four characters before "不是问题", "没问题", "还行",
  //     "可以接受" ... (kSetAside), back to a particle or punctuation, with the tail itself
  //     ("预算不是问题": not budget), unless a question particle follows ("对接没问题吧").
  // Returns whether anything was masked.
  bool Focus(std::vector<Token>* tokens) const;

 private:
  struct EdgeHash {
    size_t operator()(const std::pair<uint32_t, uint64_t>& k) const {
      return static_cast<size_t>(Mix64(k.second ^ (uint64_t{k.first} * 0x9e3779b97f4a7c15ULL)));
    }
  };
  uint32_t Child(uint32_t node, uint64_t token) const;
  void MatchExact(const std::vector<Token>& tokens, std::vector<uint32_t>* tf) const;
  void BuildCues(std::vector<std::pair<uint64_t, uint32_t>>* uses);
  void BuildBackoff(std::vector<std::pair<uint64_t, uint32_t>>* uses);

  std::vector<std::string> concepts_;
  // Trie over token ids; node 0 is the root. terminals_[n] lists the concepts
  // whose phrase ends at node n.
  std::unordered_map<std::pair<uint32_t, uint64_t>, uint32_t, EdgeHash> edges_;
  std::vector<std::vector<uint32_t>> terminals_;
  // Token id -> (concept, cue weight), built by Parse from the phrases.
  std::unordered_map<uint64_t, std::vector<std::pair<uint32_t, double>>> cues_;
  std::vector<uint64_t> generic_cues_;  // sorted token ids that are never cues
  // Expansion word id -> the concepts listing it (MatchWeak).
  std::unordered_map<uint64_t, std::vector<uint32_t>> weak_;
  // CJK pair key -> (concept, share of the phrases using the pair) (Backoff).
  std::unordered_map<uint64_t, std::pair<uint32_t, double>> backoff_;
  std::vector<uint64_t> filler_;        // sorted ids of one-token degree adverbs (太, very)
  std::vector<std::pair<uint64_t, uint64_t>> filler_pairs_;  // sorted two-character ones (有点)
  // Focus's word lists, tokenised (each a sequence of token ids).
  std::vector<std::vector<uint64_t>> speaker_roles_, speech_verbs_, decides_, object_marks_, speech_adverbs_,
      set_aside_, question_;
  std::vector<uint64_t> focus_starts_;  // sorted first token ids of the roles and tails: Focus's quick test
};

}  // namespace playbook::models::internal

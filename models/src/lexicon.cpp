// The concept lexicon of the built-in embedder: parsing, exact phrase matching
// and soft cues. See lexicon.h.
#include "lexicon.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <string>
#include <utility>

namespace playbook::models::internal {
namespace {

std::string_view Trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// The '|'-separated pieces of a lexicon line's phrase list, trimmed (empty ones kept).
std::vector<std::string_view> SplitBars(std::string_view list) {
  std::vector<std::string_view> out;
  size_t p = 0;
  while (p <= list.size()) {
    size_t bar = list.find('|', p);
    if (bar == std::string_view::npos) bar = list.size();
    out.push_back(Trim(list.substr(p, bar - p)));
    p = bar + 1;
  }
  return out;
}

Status LineError(size_t line, const std::string& what) {
  return Status::InvalidArgument("lexicon", "line " + std::to_string(line) + ": " + what);
}

constexpr size_t kMaxPhraseTokens = 32;

// Backoff's minimum evidence: a CJK pair counts as a morpheme of a concept when at least
// kBackoffMinSupport phrases use it and at least kBackoffMinShare of them are that concept's.
// (2 phrases and 0.75 were tried too, 2026-12-08: they cost rank-dev3 zh MRR; docs/ranking.md.)
constexpr uint32_t kBackoffMinSupport = 3;
constexpr double kBackoffMinShare = 1.0;

uint64_t PairKey(uint64_t a, uint64_t b) { return Mix64(a * 0x9e3779b97f4a7c15ULL + b); }

// Whether tokens[i] and tokens[i + 1] are adjacent non-stop CJK characters (a pair cue).
bool CjkPair(const std::vector<Token>& tokens, size_t i) {
  if (i + 1 >= tokens.size()) return false;
  const Token& t = tokens[i];
  const Token& n = tokens[i + 1];
  return t.kind == TokenKind::kCjk && !t.stop && n.kind == TokenKind::kCjk && n.gap == 0 && !n.stop;
}


// Words so common in sales notes that they say nothing about the topic; they
// never serve as soft concept cues ("lead" is the prospect in a CRM note, not
// lead management). Chinese entries contribute their characters.
constexpr std::string_view kGenericCueText =
    "lead customer client buyer prospect deal sale company team product system tool business "
    "account contact rep people thing ask want need like know see make take "
    "time today day week month quarter year "
    "客户 销售 公司 产品 系统 业务 方案 东西 我们 他们 年 月 周 天 日 时";

// Degree adverbs that a phrase match may skip (Lexicon::Match): one CJK
// character or word, or two CJK characters.
constexpr std::string_view kFillers[] = {"太", "很", "挺", "蛮", "真", "有点", "有些", "非常", "特别", "实在",
                                         "比较", "相当", "十分", "very", "quite", "extremely", "incredibly",
                                         "super"};

// Lexicon::Focus's lists (Chinese; see lexicon.h). The roles are ranks, not functions: "采购说"
// and "财务说" stay, since procurement or finance taking part says something about the concern.
constexpr std::string_view kSpeakerRoles[] = {
    "老板", "大老板", "领导", "老总", "总经理", "董事长", "副总", "总监", "上级", "上司", "高层", "管理层",
    "对接人", "联系人", "老大", "ceo", "cfo", "cto", "cio", "boss", "vp"};
constexpr std::string_view kSpeechVerbs[] = {
    "说", "讲", "觉得", "认为", "嫌", "问", "表示", "反馈", "提到", "提出", "吐槽", "抱怨", "担心", "怕",
    "称", "回复", "透露", "强调", "质疑", "追问", "坚持", "要求", "希望", "想", "感觉", "直言", "直说"};
// "老板说了算": the role decides; the verb does not make it a speaker.
constexpr std::string_view kDecides[] = {"说了算", "说了不算", "说不算", "说的算", "说了才算", "说才算"};
// "跟老板说", "找领导问": the role is the one spoken to.
constexpr std::string_view kObjectMarks[] = {"跟", "和", "给", "向", "找", "同", "问", "让", "请"};
constexpr std::string_view kSpeechAdverbs[] = {"也", "都", "还", "又", "就", "一直", "直接", "总", "老",
                                               "最后", "私下", "当场"};
constexpr std::string_view kSetAside[] = {
    "不是问题", "不成问题", "没问题", "没什么问题", "没啥问题", "不是大问题", "问题不大", "不是事", "不是事儿",
    "不是重点", "不是关键", "不是主要", "还行", "还好", "可以接受", "能接受", "接受得了", "无所谓"};
constexpr std::string_view kQuestion[] = {"吗", "吧", "么", "嘛", "呢", "不"};

void TokenizeList(const std::string_view* begin, const std::string_view* end,
                  std::vector<std::vector<uint64_t>>* out) {
  out->clear();
  std::vector<Token> t;
  for (const std::string_view* w = begin; w != end; ++w) {
    t.clear();
    Tokenize(*w, &t);
    std::vector<uint64_t> ids;
    for (const Token& x : t) ids.push_back(x.id);
    out->push_back(std::move(ids));
  }
}

// The length of the longest of `seqs` that tokens[at..] starts with, inside one run (no gap
// between its tokens); 0 when none.
size_t LongestAt(const std::vector<Token>& tokens, size_t at, const std::vector<std::vector<uint64_t>>& seqs) {
  size_t best = 0;
  for (const auto& seq : seqs) {
    if (seq.size() <= best || at + seq.size() > tokens.size()) continue;
    bool same = true;
    for (size_t k = 0; k < seq.size() && same; ++k)
      same = tokens[at + k].id == seq[k] && (k == 0 || tokens[at + k].gap == 0);
    if (same) best = seq.size();
  }
  return best;
}

// The soft-cue keys of a token sequence: non-stop, non-number tokens (and the
// 5-letter prefix of a long word), minus the generic ones, each followed by the pair
// it forms with the next CJK character when both are non-stop CJK characters with
// nothing between. A pair is far more telling than either character ("价位" against
// "价" and "位"), so a text that shares a two-character piece of a Chinese phrase
// ("超预算" and "超出预算" share "预算") leans towards its concept even where no phrase
// matches whole. (Pairs of English words were tried as cues too, 2026-12-07: no gain
// on the held-out half; see docs/ranking.md.) Appended to `keys`.
void CueKeys(const std::vector<Token>& tokens, const std::vector<uint64_t>& generic,
             std::vector<uint64_t>* keys) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (t.stop || t.kind == TokenKind::kNumber) continue;
    if (std::binary_search(generic.begin(), generic.end(), t.id)) continue;
    keys->push_back(t.id);
    if (t.prefix_id != 0) keys->push_back(t.prefix_id);
    if (CjkPair(tokens, i)) keys->push_back(PairKey(t.id, tokens[i + 1].id));
  }
}

}  // namespace

uint32_t Lexicon::Child(uint32_t node, uint64_t token) const {
  const auto it = edges_.find({node, token});
  return it == edges_.end() ? 0 : it->second;
}

Status Lexicon::Parse(std::string_view text) {
  concepts_.clear();
  edges_.clear();
  cues_.clear();
  weak_.clear();
  backoff_.clear();
  terminals_.assign(1, {});
  std::unordered_map<std::string, uint32_t> concept_of;
  std::vector<std::pair<uint64_t, uint32_t>> weak_uses, pair_uses;
  // (token id, concept) -> number of the concept's phrases using the token.
  std::vector<std::pair<uint64_t, uint32_t>> cue_uses;
  generic_cues_.clear();
  {
    std::vector<Token> generic_tokens;
    Tokenize(kGenericCueText, &generic_tokens);
    for (const Token& t : generic_tokens) generic_cues_.push_back(t.id);
    std::sort(generic_cues_.begin(), generic_cues_.end());
  }
  filler_.clear();
  filler_pairs_.clear();
  for (std::string_view word : kFillers) {
    std::vector<Token> t;
    Tokenize(word, &t);
    if (t.size() == 1) filler_.push_back(t[0].id);
    if (t.size() == 2) filler_pairs_.emplace_back(t[0].id, t[1].id);
  }
  std::sort(filler_.begin(), filler_.end());
  std::sort(filler_pairs_.begin(), filler_pairs_.end());
  TokenizeList(std::begin(kSpeakerRoles), std::end(kSpeakerRoles), &speaker_roles_);
  TokenizeList(std::begin(kSpeechVerbs), std::end(kSpeechVerbs), &speech_verbs_);
  TokenizeList(std::begin(kDecides), std::end(kDecides), &decides_);
  TokenizeList(std::begin(kObjectMarks), std::end(kObjectMarks), &object_marks_);
  TokenizeList(std::begin(kSpeechAdverbs), std::end(kSpeechAdverbs), &speech_adverbs_);
  TokenizeList(std::begin(kSetAside), std::end(kSetAside), &set_aside_);
  TokenizeList(std::begin(kQuestion), std::end(kQuestion), &question_);
  focus_starts_.clear();
  for (const auto* list : {&speaker_roles_, &set_aside_}) {
    for (const auto& seq : *list) {
      if (!seq.empty()) focus_starts_.push_back(seq.front());
    }
  }
  std::sort(focus_starts_.begin(), focus_starts_.end());
  std::unordered_map<std::string, size_t> first_line;
  std::vector<Token> tokens;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (!IsValidUtf8(line)) return LineError(line_no, "invalid UTF-8");
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos)
      return LineError(line_no, "expected concept_id<TAB>phrase|phrase|...");
    std::string_view head = Trim(line.substr(0, tab));
    const bool weak = !head.empty() && head.front() == '+';  // "+concept<TAB>word|word": generated expansion words
    if (weak) head.remove_prefix(1);
    const std::string id(head);
    const std::string_view phrases = line.substr(tab + 1);
    if (id.empty()) return LineError(line_no, "empty concept id");
    if (weak) {
      const auto it = concept_of.find(id);
      if (it == concept_of.end())
        return LineError(line_no, "expansion words for '" + id + "', a concept not defined above");
      for (const std::string_view word : SplitBars(phrases)) {
        tokens.clear();
        Tokenize(word, &tokens);
        if (tokens.size() != 1 || tokens[0].kind != TokenKind::kWord)
          return LineError(line_no, "expansion '" + std::string(word) + "' of '" + id + "' is not one word");
        if (!tokens[0].stop) weak_uses.emplace_back(tokens[0].id, it->second);
      }
      continue;
    }
    for (char c : id) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
        return LineError(line_no, "concept id '" + id + "' may only use a-z 0-9 _ . -");
    }
    if (phrases.find('\t') != std::string_view::npos)
      return LineError(line_no, "more than one TAB; separate phrases with '|'");
    if (const auto it = first_line.find(id); it != first_line.end())
      return LineError(line_no, "duplicate concept id '" + id + "' (first on line " +
                                    std::to_string(it->second) + ")");
    first_line.emplace(id, line_no);
    const auto concept_index = static_cast<uint32_t>(concepts_.size());
    concept_of.emplace(id, concept_index);
    concepts_.push_back(id);

    size_t count = 0;
    for (const std::string_view phrase : SplitBars(phrases)) {
      ++count;
      if (phrase.empty())
        return LineError(line_no, "phrase " + std::to_string(count) + " of '" + id + "' is empty");
      tokens.clear();
      Tokenize(phrase, &tokens);
      if (tokens.empty())
        return LineError(line_no, "phrase '" + std::string(phrase) +
                                      "' has no letters, digits or CJK characters");
      if (tokens.size() > kMaxPhraseTokens)
        return LineError(line_no, "phrase '" + std::string(phrase) + "' is longer than " +
                                      std::to_string(kMaxPhraseTokens) + " tokens");
      for (size_t k = 1; k < tokens.size(); ++k) {
        if (tokens[k].gap >= 2)
          return LineError(line_no, "phrase '" + std::string(phrase) +
                                        "' contains punctuation, so it could never match");
      }
      std::vector<uint64_t> distinct;
      CueKeys(tokens, generic_cues_, &distinct);
      std::sort(distinct.begin(), distinct.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      for (uint64_t id : distinct) cue_uses.emplace_back(id, concept_index);
      const size_t first_pair = pair_uses.size();
      for (size_t k = 0; k < tokens.size(); ++k) {
        if (!CjkPair(tokens, k) || std::binary_search(generic_cues_.begin(), generic_cues_.end(), tokens[k].id) ||
            std::binary_search(generic_cues_.begin(), generic_cues_.end(), tokens[k + 1].id))
          continue;
        const uint64_t key = PairKey(tokens[k].id, tokens[k + 1].id);
        bool seen = false;  // once per phrase
        for (size_t q = first_pair; q < pair_uses.size() && !seen; ++q) seen = pair_uses[q].first == key;
        if (!seen) pair_uses.emplace_back(key, concept_index);
      }
      uint32_t node = 0;
      for (const Token& t : tokens) {
        uint32_t next = Child(node, t.id);
        if (next == 0) {
          next = static_cast<uint32_t>(terminals_.size());
          terminals_.emplace_back();
          edges_.emplace(std::make_pair(node, t.id), next);
        }
        node = next;
      }
      auto& term = terminals_[node];
      if (std::find(term.begin(), term.end(), concept_index) == term.end())
        term.push_back(concept_index);
    }
  }
  BuildCues(&cue_uses);
  BuildBackoff(&pair_uses);
  // Expansion words a curated phrase already uses (a cue), generic words and stopwords are dropped.
  for (const auto& [word, c] : weak_uses) {
    if (cues_.count(word) || std::binary_search(generic_cues_.begin(), generic_cues_.end(), word)) continue;
    auto& list = weak_[word];
    if (std::find(list.begin(), list.end(), c) == list.end()) list.push_back(c);
  }
  return Status::Ok();
}

void Lexicon::BuildBackoff(std::vector<std::pair<uint64_t, uint32_t>>* uses) {
  std::sort(uses->begin(), uses->end());
  for (size_t i = 0; i < uses->size();) {
    size_t j = i;
    while (j < uses->size() && (*uses)[j].first == (*uses)[i].first) ++j;
    // uses[i, j): one pair's phrases, sorted by concept.
    uint32_t best = 0, best_n = 0;
    for (size_t k = i; k < j;) {
      size_t m = k;
      while (m < j && (*uses)[m].second == (*uses)[k].second) ++m;
      if (m - k > best_n) {
        best_n = static_cast<uint32_t>(m - k);
        best = (*uses)[k].second;
      }
      k = m;
    }
    const double share = static_cast<double>(best_n) / static_cast<double>(j - i);
    if (j - i >= kBackoffMinSupport && share >= kBackoffMinShare)
      backoff_.emplace((*uses)[i].first, std::make_pair(best, share));
    i = j;
  }
}

void Lexicon::MatchWeak(const std::vector<Token>& tokens, std::vector<double>* score) const {
  if (weak_.empty()) return;
  std::vector<uint64_t> ids;
  for (const Token& t : tokens) {
    if (t.kind == TokenKind::kWord && !t.stop && weak_.count(t.id)) ids.push_back(t.id);
  }
  std::sort(ids.begin(), ids.end());
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    const auto& list = weak_.at(ids[i]);
    const double w = (1.0 + DetLog(static_cast<double>(j - i))) / static_cast<double>(list.size());
    for (uint32_t c : list) (*score)[c] += w;
    i = j;
  }
}

void Lexicon::Backoff(const std::vector<Token>& tokens, std::vector<double>* score) const {
  if (backoff_.empty()) return;
  std::vector<uint64_t> keys;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    if (CjkPair(tokens, i)) keys.push_back(PairKey(tokens[i].id, tokens[i + 1].id));
  }
  std::sort(keys.begin(), keys.end());
  for (size_t i = 0; i < keys.size();) {
    size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    if (const auto it = backoff_.find(keys[i]); it != backoff_.end())
      (*score)[it->second.first] += (1.0 + DetLog(static_cast<double>(j - i))) * it->second.second;
    i = j;
  }
}

void Lexicon::BuildCues(std::vector<std::pair<uint64_t, uint32_t>>* uses) {
  std::sort(uses->begin(), uses->end());
  const double concepts = static_cast<double>(concepts_.size());
  for (size_t i = 0; i < uses->size();) {
    size_t j = i;
    while (j < uses->size() && (*uses)[j].first == (*uses)[i].first) ++j;
    // uses[i, j) are one token's (token, concept) pairs, sorted by concept.
    std::vector<std::pair<uint32_t, double>> per_concept;
    for (size_t k = i; k < j; ++k) {
      if (per_concept.empty() || per_concept.back().first != (*uses)[k].second)
        per_concept.emplace_back((*uses)[k].second, 0.0);
      per_concept.back().second += 1.0;
    }
    const double df = static_cast<double>(per_concept.size());
    const double idf = DetLog(concepts / df);
    if (idf > 0) {
      double total = 0;
      for (const auto& pc : per_concept) total += pc.second;
      for (auto& pc : per_concept) pc.second = idf * pc.second / total;
      cues_.emplace((*uses)[i].first, std::move(per_concept));
    }
    i = j;
  }
}

void Lexicon::SoftMatch(const std::vector<Token>& tokens, std::vector<double>* score) const {
  if (cues_.empty()) return;
  std::vector<uint64_t> ids;
  CueKeys(tokens, generic_cues_, &ids);
  std::sort(ids.begin(), ids.end());
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    const auto it = cues_.find(ids[i]);
    if (it != cues_.end()) {
      const double tf = 1.0 + DetLog(static_cast<double>(j - i));
      for (const auto& [c, w] : it->second) (*score)[c] += tf * w;
    }
    i = j;
  }
}

void Lexicon::Match(const std::vector<Token>& tokens, std::vector<uint32_t>* tf) const {
  if (concepts_.empty()) return;
  MatchExact(tokens, tf);
  // Degree adverbs are optional inside a phrase: "价格太吓人" also matches "价格吓人", "price is
  // really high" "price is high". The text is matched once more without them and each concept
  // keeps the larger count (so a phrase that spells the adverb out still matches as written).
  std::vector<Token> plain;
  uint8_t skipped_gap = 0;  // the strongest separation among the adverbs just dropped
  for (size_t i = 0; i < tokens.size(); ++i) {
    size_t skip = 0;
    if (std::binary_search(filler_.begin(), filler_.end(), tokens[i].id)) {
      skip = 1;
    } else if (i + 1 < tokens.size() && tokens[i + 1].gap == 0 &&
               std::binary_search(filler_pairs_.begin(), filler_pairs_.end(),
                                  std::make_pair(tokens[i].id, tokens[i + 1].id))) {
      skip = 2;
    }
    if (skip == 0) {
      plain.push_back(tokens[i]);
      plain.back().gap = std::max(plain.back().gap, skipped_gap);
      skipped_gap = 0;
      continue;
    }
    skipped_gap = std::max(skipped_gap, tokens[i].gap);
    i += skip - 1;
  }
  if (plain.size() == tokens.size()) return;
  std::vector<uint32_t> more(concepts_.size(), 0);
  MatchExact(plain, &more);
  for (size_t c = 0; c < more.size(); ++c) (*tf)[c] = std::max((*tf)[c], more[c]);
}

void Lexicon::MatchExact(const std::vector<Token>& tokens, std::vector<uint32_t>* tf) const {
  constexpr size_t kNone = std::numeric_limits<size_t>::max();
  std::vector<size_t> covered_until(concepts_.size(), 0);
  std::vector<size_t> match_start(concepts_.size(), kNone);
  for (size_t i = 0; i < tokens.size(); ++i) {
    uint32_t node = 0;
    for (size_t j = i; j < tokens.size(); ++j) {
      if (j > i && tokens[j].gap >= 2) break;
      node = Child(node, tokens[j].id);
      if (node == 0) break;
      for (uint32_t c : terminals_[node]) {
        if (match_start[c] == i) {
          covered_until[c] = j + 1;  // a longer phrase of the same concept at the same start
        } else if (i >= covered_until[c]) {
          ++(*tf)[c];
          match_start[c] = i;
          covered_until[c] = j + 1;
        }
      }
    }
  }
}

bool Lexicon::Focus(std::vector<Token>* tokens) const {
  constexpr uint64_t kMasked = 0x6d61736b65640a01ULL;  // no phrase or cue has this id
  std::vector<Token>& t = *tokens;
  bool masked = false;
  auto mask = [&](size_t from, size_t to) {  // [from, to)
    for (size_t k = from; k < to; ++k) {
      t[k].id = kMasked;
      t[k].prefix_id = 0;
    }
    masked = masked || from < to;
  };
  for (size_t i = 0; i < t.size(); ++i) {
    if (!std::binary_search(focus_starts_.begin(), focus_starts_.end(), t[i].id)) continue;
    // A role as the speaker.
    if (const size_t role = LongestAt(t, i, speaker_roles_); role > 0) {
      const bool object = i > 0 && t[i].gap == 0 && LongestAt(t, i - 1, object_marks_) == 1;
      size_t at = i + role;
      if (at < t.size() && t[at].gap == 0 && LongestAt(t, at, speech_verbs_) == 0) {
        at += LongestAt(t, at, speech_adverbs_);  // "老板也说"
      }
      if (!object && at < t.size() && t[at].gap <= 1 && LongestAt(t, at, speech_verbs_) > 0 &&
          LongestAt(t, at, decides_) == 0) {
        mask(i, i + role);
        i += role - 1;
        continue;
      }
    }
    // A concern set aside.
    if (i > 0 && t[i].gap == 0 && t[i].kind == TokenKind::kCjk) {
      const size_t tail = LongestAt(t, i, set_aside_);
      if (tail == 0) continue;
      const size_t after = i + tail;
      if (after < t.size() && t[after].gap == 0 && LongestAt(t, after, question_) > 0) continue;
      size_t from = i;
      while (from > 0 && i - from < 4 && t[from].gap == 0 && t[from - 1].kind == TokenKind::kCjk &&
             !t[from - 1].stop)
        --from;
      if (from == i) continue;
      mask(from, after);
      i = after - 1;
    }
  }
  return masked;
}

}  // namespace playbook::models::internal

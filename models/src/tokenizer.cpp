// Tokeniser of the built-in embedder: UTF-8 decoding, normalisation, English
// stemming and stopwords. See lexicon.h.
#include <algorithm>
#include <array>
#include <iterator>
#include <string>
#include <utility>

#include "lexicon.h"
#include "playbook/models/embedder.h"

namespace playbook::models::internal {
namespace {

constexpr char32_t kInvalid = 0xFFFFFFFF;

// Decodes one code point at s[*i] and advances *i by at least 1 and never past
// s.size(). Overlong forms, surrogates, > U+10FFFF and truncated sequences give
// kInvalid after consuming exactly one byte.
char32_t DecodeUtf8(std::string_view s, size_t* i) {
  const size_t n = s.size();
  const auto b0 = static_cast<unsigned char>(s[*i]);
  if (b0 < 0x80) {
    ++*i;
    return b0;
  }
  size_t len;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    ++*i;
    return kInvalid;
  }
  if (n - *i < len) {
    ++*i;
    return kInvalid;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[*i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
      ++*i;
      return kInvalid;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *i += len;
  return cp;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

enum class CharClass { kLetter, kCjk, kApostrophe, kSoft, kHard, kIgnore };

// Traditional Chinese -> simplified, one code point each (generated from OpenCC; see the file).
constexpr std::pair<char32_t, char32_t> kTraditional[] = {
#include "traditional_chinese.inc"
};
static_assert(std::is_sorted(std::begin(kTraditional), std::end(kTraditional)));

// Full-width ASCII -> ASCII, traditional Chinese characters -> simplified and simple lower-casing.
char32_t Fold(char32_t c) {
  if (c >= 0xFF01 && c <= 0xFF5E) c -= 0xFEE0;
  if (c == 0x3000) return U' ';
  if (c >= kTraditional[0].first && c <= std::end(kTraditional)[-1].first) {
    const auto it = std::lower_bound(std::begin(kTraditional), std::end(kTraditional), c,
                                     [](const auto& entry, char32_t key) { return entry.first < key; });
    if (it != std::end(kTraditional) && it->first == c) return it->second;
    return c;
  }
  if (c >= U'A' && c <= U'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x178) return 0xFF;
    const bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    const bool upper = odd_upper ? (c & 1) == 1 : (c & 1) == 0 && c != 0x138;
    return upper && c != 0x130 && c != 0x131 ? c + 1 : c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

// Classifies a folded code point.
CharClass Classify(char32_t c) {
  if (c < 0x80) {
    if ((c >= U'a' && c <= U'z') || (c >= U'0' && c <= U'9')) return CharClass::kLetter;
    if (c == U'\'') return CharClass::kApostrophe;
    if (c == U'\n' || c == U'\r') return CharClass::kHard;
    if (c == U' ' || c == U'\t' || c == U'\v' || c == U'\f' || c == U'-' || c == U'/' ||
        c == U'_' || c == U'&' || c == U'+')
      return CharClass::kSoft;
    return CharClass::kHard;
  }
  if (c == kInvalid) return CharClass::kHard;
  if (c == 0x2018 || c == 0x2019) return CharClass::kApostrophe;
  if (c == 0xA0 || (c >= 0x2000 && c <= 0x200A) || c == 0x2010 || c == 0x2011 || c == 0x202F)
    return CharClass::kSoft;
  if ((c >= 0x200B && c <= 0x200D) || c == 0xFEFF || (c >= 0x300 && c <= 0x36F) ||
      (c >= 0xFE00 && c <= 0xFE0F))
    return CharClass::kIgnore;
  if (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) return CharClass::kLetter;
  if (c >= 0x370 && c <= 0x1FFF) return CharClass::kLetter;  // Greek .. Latin Ext. Additional
  if ((c >= 0x3040 && c <= 0x30FF && c != 0x30FB) || (c >= 0x3400 && c <= 0x4DBF) ||
      (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
      (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0x20000 && c <= 0x3134F) || c == 0x3005 ||
      c == 0x3007)
    return CharClass::kCjk;
  return CharClass::kHard;  // CJK and general punctuation, symbols, everything else
}

// English function words (checked before stemming, after dropping apostrophes).
constexpr std::array<std::string_view, 169> kEnglishStop = {
    "a", "about", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are",
    "arent", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "cannot", "cant", "could", "couldnt", "d", "did", "didnt", "do", "does",
    "doesnt", "doing", "dont", "down", "during", "each", "even", "every", "few", "for", "from",
    "further", "get", "got", "had", "hadnt", "has", "hasnt", "have", "havent", "having", "he",
    "hed", "her", "here", "hes", "him", "his", "how", "i", "id", "if", "ill", "im", "in",
    "into", "is", "isnt", "it", "its", "ive", "just", "less", "let", "lets", "ll", "m", "may",
    "me", "might", "more", "most", "must", "my", "no", "nor", "not", "now", "of", "off", "on",
    "once", "only", "onto", "or", "our", "ours", "out", "over", "own", "re", "s", "said",
    "same", "say", "says", "shall", "she", "shed", "shes", "should", "shouldnt", "so", "some",
    "still", "such", "t", "than", "that", "thats", "the", "their", "them", "then", "there",
    "these", "they", "theyd", "theyll", "theyre", "theyve", "this", "those", "to", "too",
    "under", "until", "up", "us", "ve", "very", "was", "wasnt", "we", "wed", "were", "werent",
    "weve", "what", "when", "where", "which", "while", "who", "why", "will", "with", "wont",
    "wouldnt", "yet", "youd", "youll", "youre", "youve"};

static_assert(std::is_sorted(kEnglishStop.begin(), kEnglishStop.end()) && !kEnglishStop.back().empty());

bool IsEnglishStop(std::string_view w) {
  return std::binary_search(kEnglishStop.begin(), kEnglishStop.end(), w);
}

// Chinese particles, pronouns and glue characters.
constexpr std::u32string_view kCjkStop = U"的了吗呢吧啊呀嘛哦么着过地得之和与及或而也都就是在我你您他她它们这那个把被让给对从将很一说";

bool IsCjkStop(char32_t c) { return kCjkStop.find(c) != std::u32string_view::npos; }

bool EndsWith(const std::string& w, std::string_view suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void Undouble(std::string* w) {
  const size_t n = w->size();
  if (n >= 3 && (*w)[n - 1] == (*w)[n - 2]) {
    const char c = (*w)[n - 1];
    if (c != 'l' && c != 's' && c != 'z' && c != 'a' && c != 'e' && c != 'i' && c != 'o' &&
        c != 'u')
      w->pop_back();
  }
}

// A light English stemmer for lower-case ASCII words.
// Irregular forms of common business verbs -> base form (then stemmed as usual).
constexpr std::array<std::pair<std::string_view, std::string_view>, 44> kIrregular = {{
    {"began", "begin"},   {"begun", "begin"},     {"bought", "buy"},   {"brought", "bring"},
    {"caught", "catch"},  {"chose", "choose"},    {"chosen", "choose"}, {"fallen", "fall"},
    {"fell", "fall"},     {"felt", "feel"},       {"found", "find"},   {"froze", "freeze"},
    {"frozen", "freeze"}, {"gave", "give"},       {"given", "give"},   {"gone", "go"},
    {"held", "hold"},     {"kept", "keep"},       {"knew", "know"},    {"known", "know"},
    {"led", "lead"},      {"left", "leave"},      {"lost", "lose"},    {"made", "make"},
    {"meant", "mean"},    {"paid", "pay"},        {"ran", "run"},      {"sat", "sit"},
    {"saw", "see"},       {"seen", "see"},        {"sent", "send"},    {"sold", "sell"},
    {"spent", "spend"},   {"spoke", "speak"},     {"spoken", "speak"}, {"stood", "stand"},
    {"taken", "take"},    {"thought", "think"},   {"told", "tell"},    {"took", "take"},
    {"went", "go"},       {"won", "win"},         {"written", "write"}, {"wrote", "write"},
}};
static_assert(std::is_sorted(kIrregular.begin(), kIrregular.end()));

void Stem(std::string* w) {
  auto n = [&] { return w->size(); };
  const auto irregular = std::lower_bound(
      kIrregular.begin(), kIrregular.end(), std::string_view(*w),
      [](const auto& entry, std::string_view key) { return entry.first < key; });
  if (irregular != kIrregular.end() && irregular->first == *w) w->assign(irregular->second);
  if (n() >= 5 && EndsWith(*w, "ies")) {
    w->resize(n() - 3);
    w->push_back('y');
  } else if (n() >= 5 && EndsWith(*w, "sses")) {
    w->resize(n() - 2);
  } else if (n() >= 4 && (EndsWith(*w, "xes") || EndsWith(*w, "zes") || EndsWith(*w, "ches") ||
                          EndsWith(*w, "shes"))) {
    w->resize(n() - 2);
  } else if (n() >= 4 && w->back() == 's' && !EndsWith(*w, "ss") && !EndsWith(*w, "us") &&
             !EndsWith(*w, "is")) {
    w->pop_back();
  }
  // "legally" -> "legal", but not "costly" -> "cost" or "weekly" -> "week".
  if (n() >= 7 && EndsWith(*w, "ly") && !EndsWith(*w, "ply")) {
    w->resize(n() - 2);
    if (w->back() == 'i') w->back() = 'y';  // "easily" -> "easy"
  }
  if (n() >= 6 && EndsWith(*w, "ing")) {
    w->resize(n() - 3);
    Undouble(w);
  } else if (n() >= 5 && EndsWith(*w, "ied")) {
    w->resize(n() - 3);
    w->push_back('y');
  } else if (n() >= 5 && EndsWith(*w, "eed")) {
    w->pop_back();
  } else if (n() >= 5 && EndsWith(*w, "ed")) {
    w->resize(n() - 2);
    Undouble(w);
  }
  if (n() >= 4 && w->back() == 'e') w->pop_back();
}

// British spellings and the short forms reps type in CRM notes -> one spelling, before the stop-word
// check and stemming, so "licence" meets "license", "enquiries" "inquiries", "next qtr" "next quarter"
// and "mktg" "marketing" (the note shorthand of lexical-v5: cert, info, mktg, mtg, opp, ppl, ...).
constexpr std::array<std::pair<std::string_view, std::string_view>, 75> kVariant = {{
    {"acct", "account"},         {"accts", "accounts"},       {"ageing", "aging"},         {"approx", "approximately"},
    {"appt", "appointment"},     {"b4", "before"},            {"bcoz", "because"},         {"biz", "business"},
    {"cert", "certificate"},     {"certs", "certificates"},   {"cheque", "check"},         {"cheques", "checks"},
    {"convo", "conversation"},   {"convos", "conversations"}, {"coz", "because"},          {"cust", "customer"},
    {"custs", "customers"},      {"cuz", "because"},          {"defence", "defense"},      {"dept", "department"},
    {"eval", "evaluation"},      {"evals", "evaluations"},    {"exec", "executive"},       {"execs", "executives"},
    {"govt", "government"},      {"grey", "gray"},            {"impl", "implementation"},  {"info", "information"},
    {"integ", "integration"},    {"intl", "international"},   {"judgement", "judgment"},   {"licence", "license"},
    {"licenced", "licensed"},    {"licences", "licenses"},    {"mgmt", "management"},      {"mgr", "manager"},
    {"mgrs", "managers"},        {"mkt", "marketing"},        {"mktg", "marketing"},       {"mnth", "month"},
    {"mtg", "meeting"},          {"mtgs", "meetings"},        {"mths", "months"},          {"n", "and"},
    {"opp", "opportunity"},      {"opps", "opportunities"},   {"oppty", "opportunity"},    {"opptys", "opportunities"},
    {"perf", "performance"},     {"pls", "please"},           {"plz", "please"},           {"ppl", "people"},
    {"practise", "practice"},    {"programme", "program"},    {"programmes", "programs"},  {"qtr", "quarter"},
    {"qtrs", "quarters"},        {"req", "requirement"},      {"reqd", "required"},        {"reqs", "requirements"},
    {"svc", "service"},          {"svcs", "services"},        {"tho", "though"},           {"thru", "through"},
    {"tmrw", "tomorrow"},        {"tyre", "tire"},            {"tyres", "tires"},          {"u", "you"},
    {"ur", "your"},              {"wanna", "want"},           {"wk", "week"},              {"wks", "weeks"},
    {"yday", "yesterday"},       {"yr", "year"},              {"yrs", "years"},
}};
static_assert(std::is_sorted(kVariant.begin(), kVariant.end()));

// Words whose British "-our" is American "-or" (also inside "favourite", "behaviours").
constexpr std::array<std::string_view, 13> kOurStems = {"armour",  "behaviour", "colour", "endeavour", "favour",
                                                        "flavour", "harbour",   "honour", "humour",    "labour",
                                                        "neighbour", "rumour",  "savour"};
// Verbs that double a final "l" in British English ("cancelled", "travelling", "modeller").
constexpr std::array<std::string_view, 12> kDoubledL = {"cancel", "channel", "counsel", "dial",   "fuel",  "funnel",
                                                        "label",  "level",   "model",   "signal", "total", "travel"};

bool StartsWith(const std::string& w, std::string_view prefix) {
  return w.size() >= prefix.size() && w.compare(0, prefix.size(), prefix) == 0;
}

// One spelling for a lower-case ASCII word: the table above, then the regular British endings
// ("-ise" / "-isation" -> "-ize" / "-ization", "-yse" -> "-yze", "-tre" -> "-ter", "-ogue" -> "-og",
// "enquir-" -> "inquir-"). Texts, assets and lexicon phrases all pass through it, so words that are
// no British variant ("promise" -> "promize") still meet themselves.
void Respell(std::string* w) {
  const auto variant = std::lower_bound(kVariant.begin(), kVariant.end(), std::string_view(*w),
                                        [](const auto& entry, std::string_view key) { return entry.first < key; });
  if (variant != kVariant.end() && variant->first == *w) {
    w->assign(variant->second);
    return;
  }
  if (StartsWith(*w, "enquir")) w->replace(0, 2, "in");
  for (std::string_view stem : kOurStems) {
    if (StartsWith(*w, stem)) {
      w->erase(stem.size() - 2, 1);  // "colour" -> "color"
      break;
    }
  }
  for (std::string_view base : kDoubledL) {
    if (StartsWith(*w, base) && w->size() > base.size() + 1 && (*w)[base.size()] == 'l') {
      const std::string_view rest = std::string_view(*w).substr(base.size() + 1);
      if (rest == "ed" || rest == "ing" || rest == "er" || rest == "ers") w->erase(base.size(), 1);
      break;
    }
  }
  for (std::string_view end : {"isation", "isations", "ise", "ised", "ises", "ising", "iser", "isers", "yse",
                               "ysed", "yses", "ysing"}) {
    if (w->size() >= end.size() + 3 && EndsWith(*w, end)) {
      (*w)[w->size() - end.size() + 1] = 'z';  // the "s" after "i" / "y"
      return;
    }
  }
  if (w->size() >= 5 && (EndsWith(*w, "tre") || EndsWith(*w, "tres"))) {
    const size_t at = w->size() - (w->back() == 's' ? 3 : 2);
    std::swap((*w)[at], (*w)[at + 1]);  // "centre(s)" -> "center(s)"
  } else if (w->size() >= 8 && (EndsWith(*w, "ogue") || EndsWith(*w, "ogues"))) {
    w->erase(w->size() - (w->back() == 's' ? 3 : 2), 2);  // "catalogue(s)" -> "catalog(s)"
  }
}

constexpr uint64_t kPrefixSeed = 0x84222325cbf29ce4ULL;

class Tokenizer {
 public:
  Tokenizer(std::vector<Token>* out, std::vector<std::string>* forms) : out_(out), forms_(forms) {}

  void Run(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
      const char32_t c = Fold(DecodeUtf8(text, &i));
      if (c == U'%') {  // "20%" -> "20 percent", so "20% off" meets "percent off"
        Flush();
        word_ = "percent";
        word_is_number_ = false;
        form_ = word_;
        Flush();
        continue;
      }
      switch (Classify(c)) {
        case CharClass::kLetter:
          AppendUtf8(c, &word_);
          if (c >= 0x80 || (c >= U'a' && c <= U'z')) word_is_number_ = false;
          break;
        case CharClass::kCjk: {
          Flush();
          std::string ch;
          AppendUtf8(c, &ch);
          form_ = ch;
          Emit(Fnv1a64(ch), TokenKind::kCjk, IsCjkStop(c));
          break;
        }
        case CharClass::kApostrophe:
          if (word_.empty()) {
            Separate(1);  // a quote mark, not an elision
          } else {
            apostrophe_at_ = word_.size();  // "don't" -> "dont"
          }
          break;
        case CharClass::kSoft:
          Separate(1);
          break;
        case CharClass::kHard:
          Separate(2);
          break;
        case CharClass::kIgnore:
          break;
      }
    }
    Flush();
  }

 private:
  void Separate(uint8_t gap) {
    Flush();
    pending_gap_ = std::max(pending_gap_, gap);
  }

  void Emit(uint64_t id, TokenKind kind, bool stop, uint64_t prefix_id = 0) {
    out_->push_back(Token{id, kind, stop, pending_gap_, prefix_id});
    if (forms_ != nullptr) forms_->push_back(std::move(form_));
    form_.clear();
    pending_gap_ = 0;
  }

  void Flush() {
    if (word_.empty()) return;
    // Possessive / contracted 's: "vendor's" -> "vendor", "it's" -> "it".
    if (apostrophe_at_ + 1 == word_.size() && word_.back() == 's') word_.pop_back();
    if (forms_ != nullptr) form_ = word_;  // lower-cased, before stemming
    if (word_is_number_) {
      Emit(Fnv1a64(word_), TokenKind::kNumber, false);
    } else {
      const bool ascii = std::all_of(word_.begin(), word_.end(),
                                     [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
      if (ascii) Respell(&word_);
      const bool stop = IsEnglishStop(word_);
      if (ascii) Stem(&word_);
      const uint64_t prefix =
          ascii && word_.size() >= 6 ? Fnv1a64(std::string_view(word_).substr(0, 5), kPrefixSeed) : 0;
      Emit(Fnv1a64(word_), TokenKind::kWord, stop, prefix);
    }
    word_.clear();
    word_is_number_ = true;
    apostrophe_at_ = std::string::npos;
  }

  std::vector<Token>* out_;
  std::vector<std::string>* forms_;  // may be null
  std::string form_;                 // the next token's form, for forms_
  std::string word_;
  bool word_is_number_ = true;
  size_t apostrophe_at_ = std::string::npos;  // where an apostrophe was dropped from word_
  uint8_t pending_gap_ = 2;
};

}  // namespace

void Tokenize(std::string_view text, std::vector<Token>* out, std::vector<std::string>* forms) {
  Tokenizer(out, forms).Run(text);
}

}  // namespace playbook::models::internal

namespace playbook::models {

std::vector<std::string> TextTerms(std::string_view text) {
  std::vector<internal::Token> tokens;
  std::vector<std::string> forms;
  internal::Tokenize(text, &tokens, &forms);
  std::vector<internal::TermSpan> spans;
  internal::FindTerms(tokens, forms, &spans);
  std::vector<std::string> out;
  out.reserve(spans.size());
  for (internal::TermSpan& t : spans) out.push_back(std::move(t.term));
  return out;
}

}  // namespace playbook::models

namespace playbook::models::internal {

// A CJK stop character (的 了 你 们 在 ...) makes no term with a neighbour,
// except these, which are parts of many idioms ("砍一刀", "把关", "让利").
constexpr std::string_view kTermStopExceptions = "一把让给对";
// Words that are no stop-words for the embedder but carry nothing as a term.
constexpr std::array<std::string_view, 8> kTermStopWords = {"ok", "okay", "please", "yes", "you", "your", "yours",
                                                            "yourself"};

void FindTerms(const std::vector<Token>& tokens, const std::vector<std::string>& forms, std::vector<TermSpan>* out) {
  out->clear();
  auto add = [&](std::string term, uint32_t first, uint32_t last) {
    for (const TermSpan& t : *out) {
      if (t.term == term) return;
    }
    out->push_back({std::move(term), first, last});
  };
  auto particle = [&](size_t i) {
    return tokens[i].stop && kTermStopExceptions.find(forms[i]) == std::string_view::npos;
  };
  for (size_t i = 0; i < tokens.size() && i < forms.size() && out->size() < kMaxTerms; ++i) {
    const Token& t = tokens[i];
    if (t.kind == TokenKind::kWord && !t.stop && forms[i].size() >= 2 &&
        std::find(kTermStopWords.begin(), kTermStopWords.end(), forms[i]) == kTermStopWords.end()) {
      add(forms[i], uint32_t(i), uint32_t(i));
    }
    if (t.kind == TokenKind::kCjk && i > 0 && t.gap == 0 && tokens[i - 1].kind == TokenKind::kCjk &&
        !particle(i) && !particle(i - 1)) {
      add(forms[i - 1] + forms[i], uint32_t(i - 1), uint32_t(i));
    }
  }
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (DecodeUtf8(text, &i) == kInvalid) return false;
  }
  return true;
}

}  // namespace playbook::models::internal

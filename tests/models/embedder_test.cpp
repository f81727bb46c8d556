// Unit tests of the built-in LexicalEmbedder.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "playbook/models/lexical_embedder.h"

namespace playbook::models {
namespace {

std::unique_ptr<LexicalEmbedder> Make(uint32_t dim = 384,
                                      std::string lexicon = std::string(DefaultLexicon())) {
  LexicalEmbedderOptions o;
  o.dimension = dim;
  o.lexicon = std::move(lexicon);
  auto r = LexicalEmbedder::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::vector<float> Vec(const LocalEmbedder& e, std::string_view text) {
  std::vector<float> v(e.Dimension(), -7.0f);
  e.Embed(text, v.data());
  return v;
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double{a[i]} * b[i];
  return s;
}

double Cos(const LocalEmbedder& e, std::string_view a, std::string_view b) { return Dot(Vec(e, a), Vec(e, b)); }

void ExpectUnit(const std::vector<float>& v, std::string_view what) {
  double n = 0;
  for (float x : v) {
    ASSERT_TRUE(std::isfinite(x)) << what;
    n += double{x} * x;
  }
  EXPECT_NEAR(n, 1.0, 1e-5) << what;
}

Status CreateStatus(const std::string& lexicon, uint32_t dim = 64) {
  LexicalEmbedderOptions o;
  o.dimension = dim;
  o.lexicon = lexicon;
  auto r = LexicalEmbedder::Create(o);
  return r.status();
}

const char* const kUnrelatedZh = "今天下午三点在会议室开周会,讨论团建的安排";
const char* const kUnrelatedEn = "The team offsite is on Friday; please book your train tickets early";

TEST(LexicalEmbedder, DefaultLexiconParses) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_GE(e->ConceptCount(), 25u);
  EXPECT_LE(e->ConceptCount(), 45u);
  EXPECT_EQ(e->Dimension(), 384u);
}

TEST(LexicalEmbedder, DeterministicAcrossInstances) {
  auto a = Make();
  auto b = Make();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (const char* text : {"客户说太贵了,想再考虑一下", "Too expensive, no budget until Q3",
                           "这个CRM的ROI怎么算? payback period 18 months", ""}) {
    const auto va = Vec(*a, text);
    const auto vb = Vec(*b, text);
    const auto va2 = Vec(*a, text);
    EXPECT_EQ(0, std::memcmp(va.data(), vb.data(), va.size() * sizeof(float))) << text;
    EXPECT_EQ(0, std::memcmp(va.data(), va2.data(), va.size() * sizeof(float))) << text;
  }
}

TEST(LexicalEmbedder, FixedTextHasFixedVector) {
  // Guards against accidental algorithm changes that keep the name "lexical-v7":
  // changing these numbers requires bumping the version in Name().
  auto e = Make(32, "price_high\t太贵|too expensive\n");
  ASSERT_NE(e, nullptr);
  const auto v = Vec(*e, "太贵了 too expensive");
  const auto w = Vec(*e, "太贵了 too expensive");
  EXPECT_EQ(v, w);
  double nonzero = 0;
  for (float x : v) nonzero += x != 0.0f;
  EXPECT_GE(nonzero, 4);
  // Values recorded from this implementation (any change is a new version).
  const std::vector<float> expected = {
      0x1.8c97fp-1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1.6598a8p-2f, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0x1.1e13bap-2f, 0, 0, -0x1.1e13bap-2f, 0x1.6598a8p-2f, 0, 0, 0, 0, 0};
  ASSERT_EQ(expected.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(expected[i], v[i]) << i;  // bit-exact
}

TEST(LexicalEmbedder, OutputIsUnitNorm) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  for (const char* text :
       {"太贵了", "too expensive", "客户的CFO觉得ROI不够, wants a discount", "a",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor",
        "12345 67890", "ＡＢＣ　全角字母ＲＯＩ", "😀😀😀 emoji only"}) {
    ExpectUnit(Vec(*e, text), text);
  }
}

TEST(LexicalEmbedder, FeaturelessTextsShareOneUnitVector) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const auto empty = Vec(*e, "");
  ExpectUnit(empty, "empty");
  for (const char* text : {"", "   ", "!!!,。?", "的了吗呢", "the of and to", "\xff\xfe"}) {
    EXPECT_EQ(empty, Vec(*e, text)) << text;
  }
  EXPECT_LT(std::abs(Dot(empty, Vec(*e, "太贵了"))), 0.5);
}

TEST(LexicalEmbedder, InvalidUtf8DoesNotCrash) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::string cases[] = {
      std::string("\xe5\xa4", 2),          // truncated 太
      std::string("太贵\xe4", 7),            // truncated at the very end
      std::string("\xc0\xaf\xed\xa0\x80"),  // overlong '/', surrogate
      std::string("\xf4\x90\x80\x80 ok"),   // > U+10FFFF
      std::string("\x80\x80\x80price\xbf"),
      std::string("a\0b太贵", 9),
  };
  for (const auto& text : cases) ExpectUnit(Vec(*e, text), "invalid utf-8");
  // Valid characters around invalid bytes still count.
  EXPECT_GT(Cos(*e, std::string("\xff太贵了\xfe"), "太贵了"), 0.8);
}

TEST(LexicalEmbedder, NormalisesCaseAndWidth) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_NEAR(Cos(*e, "ROI Calculator", "roi calculator"), 1.0, 1e-6);
  EXPECT_NEAR(Cos(*e, "ＲＯＩ　Ｃａｌｃｕｌａｔｏｒ", "roi calculator"), 1.0, 1e-6);
  EXPECT_NEAR(Cos(*e, "太贵了!", "太贵了!"), 1.0, 1e-6);
  EXPECT_NEAR(Cos(*e, "Prices", "price"), 1.0, 1e-6);  // stemming
  EXPECT_NEAR(Cos(*e, "discounts offered", "discount offer"), 1.0, 1e-6);
  EXPECT_NEAR(Cos(*e, "the vendor's contract", "vendor contract"), 1.0, 1e-6);  // possessive
  EXPECT_NEAR(Cos(*e, "they paid", "pay"), 1.0, 1e-6);                          // irregular verb
  EXPECT_NEAR(Cos(*e, "20% off", "20 percent off"), 1.0, 1e-6);
  EXPECT_NEAR(Cos(*e, "２０％ＯＦＦ", "20 percent off"), 1.0, 1e-6);
  EXPECT_LT(Cos(*e, "ROI calculator", "roi, calculator"), 0.999);  // the comma breaks the bigram
}

TEST(LexicalEmbedder, TraditionalChineseMeetsSimplified) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_NEAR(Cos(*e, "客戶說價格實在太貴，超出預算", "客户说价格实在太贵，超出预算"), 1.0, 1e-6);
  EXPECT_NEAR(Cos(*e, "線索轉給業務後沒人跟進", "线索转给业务后没人跟进"), 1.0, 1e-6);
  // The lexicon's phrases are simplified: a traditional note reaches their concepts.
  EXPECT_EQ(e->Concepts("價格太貴了"), e->Concepts("价格太贵了"));
  EXPECT_FALSE(e->Concepts("價格太貴了").empty());
  // A character that is also simplified (著) stays as it is.
  EXPECT_LT(Cos(*e, "著作", "着作"), 0.999);
}

TEST(LexicalEmbedder, ABossWhoReportsOrAConcernSetAsideIsNoConcern) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  auto has = [&](const char* text, const char* id) {
    const auto c = e->Concepts(text);
    return std::find(c.begin(), c.end(), id) != c.end();
  };
  // The boss as the speaker: the concern is what was said.
  EXPECT_TRUE(has("老板说太贵了", "price_high"));
  EXPECT_FALSE(has("老板说太贵了", "decision_maker"));
  EXPECT_FALSE(has("领导也觉得今年行情差", "decision_maker"));
  EXPECT_TRUE(has("领导也觉得今年行情差", "market_downturn"));
  // ... but not when the boss decides or is the one spoken to.
  EXPECT_TRUE(has("得老板说了算", "decision_maker"));
  EXPECT_TRUE(has("要跟老板说一下", "decision_maker"));
  EXPECT_TRUE(has("老板拍板", "decision_maker"));
  // A function taking part is a signal: "采购说" keeps procurement.
  EXPECT_TRUE(has("采购说要走流程", "procurement"));
  // A concern set aside.
  EXPECT_TRUE(has("没有预算", "budget"));
  EXPECT_FALSE(has("预算不是问题", "budget"));
  EXPECT_FALSE(has("客户说预算倒不是问题，关键是数据安全", "budget"));
  EXPECT_TRUE(has("客户说预算倒不是问题，关键是数据安全", "security_compliance"));
  // ... unless it is asked about.
  EXPECT_TRUE(has("跟ERP对接没问题吧", "integration"));
  // The lexical features still see the masked words: the texts differ from the bare concern.
  EXPECT_LT(Cos(*e, "老板说太贵了", "太贵了"), 0.999);
  // Edges: a role or a tail at either end of the text, alone, repeated, or cut by punctuation.
  for (const char* text : {"老板", "老板也", "老板说", "说老板", "不是问题", "预算不是问题吗", "跟老板", "老板老板说说",
                           "领导，说太贵", "没问题没问题", "价不是问题", "CEO说", "boss说budget不够"}) {
    const auto v = Vec(*e, text);
    double norm = 0;
    for (float x : v) norm += double(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-5) << text;
  }
}

TEST(LexicalEmbedder, BritishSpellingsAndNoteShorthandMeetTheirUsForms) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::pair<const char*, const char*> same[] = {
      {"licence cost", "license cost"},    {"we prioritise leads", "we prioritize leads"},
      {"organisation", "organization"},    {"analysed", "analyzed"},
      {"web enquiries", "web inquiries"},  {"favourite colours", "favorite colors"},
      {"they cancelled", "they canceled"}, {"data centre", "data center"},
      {"product catalogue", "product catalog"}, {"tyre kickers", "tire kickers"},
      {"next qtr pls", "next quarter please"},  {"mgmt wants it", "management wants it"},
      {"sales and mktg", "sales and marketing"}, {"want info on our certs", "want information on our certificates"},
      {"ppl at the mtg", "people at the meeting"}};
  for (const auto& [british, us] : same) EXPECT_NEAR(Cos(*e, british, us), 1.0, 1e-6) << british;
  EXPECT_LT(Cos(*e, "promise", "premise"), 0.5);  // respelled alike on both sides, still apart
}

TEST(LexicalEmbedder, ChineseTextSimilarity) {
  auto e = Make(384, "");  // lexical only: CJK n-grams alone
  ASSERT_NE(e, nullptr);
  const double related = Cos(*e, "客户觉得价格太高", "价格太高怎么办");
  const double unrelated = Cos(*e, "客户觉得价格太高", kUnrelatedZh);
  EXPECT_GT(related, 0.3);
  EXPECT_GT(related, unrelated + 0.2);
}

TEST(LexicalEmbedder, EnglishTextSimilarity) {
  auto e = Make(384, "");
  ASSERT_NE(e, nullptr);
  const double related = Cos(*e, "the prospect is worried about pricing", "Pricing worries of a prospect");
  const double unrelated = Cos(*e, "the prospect is worried about pricing", kUnrelatedEn);
  EXPECT_GT(related, 0.5);
  EXPECT_GT(related, unrelated + 0.3);
}

TEST(LexicalEmbedder, MixedTextSimilarity) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const char* mixed = "客户问我们的CRM integration能不能和SAP对接";
  EXPECT_GT(Cos(*e, mixed, "CRM integration with SAP"), Cos(*e, mixed, kUnrelatedEn));
  EXPECT_GT(Cos(*e, mixed, "和SAP系统对接"), Cos(*e, mixed, kUnrelatedZh));
}

TEST(LexicalEmbedder, LexiconBridgesChineseParaphrases) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_GT(Cos(*e, "价格有点高", "太贵了"), Cos(*e, "价格有点高", kUnrelatedZh) + 0.3);
  EXPECT_GT(Cos(*e, "我们今年没有预算", "资金紧张,付不起"), Cos(*e, "我们今年没有预算", kUnrelatedZh) + 0.3);
  EXPECT_GT(Cos(*e, "市场不景气", "经济下行,大环境不好"), Cos(*e, "市场不景气", kUnrelatedZh) + 0.3);
  // Without the lexicon the first pair shares no character n-gram at all.
  auto plain = Make(384, "");
  ASSERT_NE(plain, nullptr);
  EXPECT_LT(Cos(*plain, "价格有点高", "太贵了"), 0.2);
}

TEST(LexicalEmbedder, LexiconBridgesEnglishParaphrases) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_GT(Cos(*e, "too expensive", "over our budget"), Cos(*e, "too expensive", kUnrelatedEn));
  EXPECT_GT(Cos(*e, "too expensive", "it's overpriced"), Cos(*e, "too expensive", kUnrelatedEn) + 0.3);
  EXPECT_GT(Cos(*e, "let me think it over", "circle back next quarter"),
            Cos(*e, "let me think it over", kUnrelatedEn) + 0.3);
  EXPECT_GT(Cos(*e, "we're in a recession", "the economy is in a downturn"),
            Cos(*e, "we're in a recession", kUnrelatedEn) + 0.3);
}

TEST(LexicalEmbedder, LexiconBridgesLanguages) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_GT(Cos(*e, "太贵了", "too expensive"), Cos(*e, "太贵了", kUnrelatedEn) + 0.3);
  EXPECT_GT(Cos(*e, "too expensive", "价格有点高"), Cos(*e, "too expensive", kUnrelatedZh) + 0.3);
  EXPECT_GT(Cos(*e, "没有预算", "no budget this year"), Cos(*e, "没有预算", kUnrelatedEn) + 0.3);
  EXPECT_GT(Cos(*e, "我考虑一下", "let me think about it"), Cos(*e, "我考虑一下", kUnrelatedEn) + 0.3);
  // Different concepts stay apart: price vs. security.
  EXPECT_GT(Cos(*e, "太贵了", "too expensive"), Cos(*e, "太贵了", "data privacy and GDPR compliance") + 0.3);
}

TEST(LexicalEmbedder, SoftCuesLeanTowardsAConceptWithoutAnExactPhrase) {
  // "refund" alone is no phrase, but only the risk concept's phrases use it, so
  // the text leans towards risk; the texts share no word with each other.
  auto e = Make(384, "risk\tmoney-back guarantee|full refund\nprice\ttoo expensive|pricey\n");
  ASSERT_NE(e, nullptr);
  const double to_risk = Cos(*e, "will they refund us", "money-back guarantee");
  const double to_price = Cos(*e, "will they refund us", "pricey");
  EXPECT_GT(to_risk, 0.2);
  EXPECT_GT(to_risk, to_price + 0.2);
  // The same holds character-wise in Chinese: 退 occurs only in the risk phrase.
  auto zh = Make(384, "risk\t无条件退款\nprice\t太贵\n");
  ASSERT_NE(zh, nullptr);
  EXPECT_GT(Cos(*zh, "能不能退钱", "无条件退款"), Cos(*zh, "能不能退钱", "太贵") + 0.1);
}

TEST(LexicalEmbedder, ChineseCharacterPairsAreStrongerCuesThanTheirCharacters) {
  // 预 and 算 occur in the budget phrase and in the plan phrases alike, so on their
  // own they lean towards both equally; the pair 预算 occurs only in the budget
  // phrase, so a text with the pair leans towards budget, one with the same
  // characters in another order does not. Concepts own slots 0..2 at d384.
  auto zh = Make(384, "budget\t超出预算\nprice\t价格太高\nplan\t预估|计算\n");
  ASSERT_NE(zh, nullptr);
  const auto pair = Vec(*zh, "预算紧张");
  const auto apart = Vec(*zh, "算预紧张");
  EXPECT_GT(pair[0], pair[2] * 1.2f);
  EXPECT_GT(apart[0], 0.0f);
  EXPECT_NEAR(apart[0], apart[2], 1e-6);
  EXPECT_EQ(pair[1], 0.0f);
}

TEST(LexicalEmbedder, ExpansionWordsReachTheirConceptWeakly) {
  // "exorbitant" is no phrase and no phrase uses it; only the "+price" expansion line knows it.
  const std::string lexicon = "price\ttoo expensive|pricey\nbudget\tno budget\n";
  auto plain = Make(384, lexicon);
  auto expanded = Make(384, lexicon + "+price\texorbitant\n");
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(expanded, nullptr);
  EXPECT_NEAR(Cos(*plain, "exorbitant fees", "too expensive"), 0.0, 1e-6);
  const double to_price = Cos(*expanded, "exorbitant fees", "too expensive");
  EXPECT_GT(to_price, 0.2);
  EXPECT_GT(to_price, Cos(*expanded, "exorbitant fees", "no budget") + 0.2);
  // Weaker than a curated phrase: beside a budget phrase, price (slot 0) gets less than budget
  // (slot 1) from the expansion and as much from the curated word.
  const auto weak = Vec(*expanded, "exorbitant fees, no budget");
  const auto strong = Vec(*expanded, "pricey fees, no budget");
  EXPECT_GT(weak[0], 0.0f);
  EXPECT_LT(weak[0], 0.8f * weak[1]);
  EXPECT_NEAR(strong[0], strong[1], 1e-6);
  EXPECT_TRUE(expanded->Concepts("exorbitant fees").empty());  // an expansion is no stated concept
  // A word some phrase uses stays the phrases' cue, never an expansion of another concept.
  auto taken = Make(384, lexicon + "+budget\tpricey\n");
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(Vec(*taken, "pricey fees"), Vec(*plain, "pricey fees"));
  // Malformed expansion lines are rejected with their line.
  EXPECT_EQ(CreateStatus("+price\texorbitant\nprice\tpricey\n").message().rfind("line 1:", 0), 0u);
  EXPECT_EQ(CreateStatus("price\tpricey\n+price\tway too much\n").message().rfind("line 2:", 0), 0u);
  EXPECT_EQ(CreateStatus("price\tpricey\n+price\t贵\n").message().rfind("line 2:", 0), 0u);
}

TEST(LexicalEmbedder, AnUnknownChineseWordBacksOffToTheConceptOfItsMorpheme) {
  // 价位 is a morpheme of price in three phrases and of nothing else; "心理价位" is no phrase.
  // Twin lexicons give every cue the same soft weight; only the first has 价位 in three
  // phrases (the back-off's minimum evidence), so only there does the note lean further.
  auto three = Make(384, "price\t价位高|价位太高|价位偏高\nbudget\t预算不够\n");
  auto two = Make(384, "price\t价位高|价位太高|偏高\nbudget\t预算不够\n");
  ASSERT_NE(three, nullptr);
  ASSERT_NE(two, nullptr);
  // 预 is a cue of budget (slot 1): price (slot 0) against budget says how far the note leans.
  const char* note = "超出了心理价位,预计不行";
  const auto backoff = Vec(*three, note);
  const auto soft = Vec(*two, note);
  EXPECT_GT(backoff[0] / backoff[1], 1.2f * soft[0] / soft[1]);
  EXPECT_GT(Cos(*three, note, "价位太高"), Cos(*two, note, "价位太高") + 0.02);
  // A note some phrase matches does not back off: the same vector from both.
  EXPECT_EQ(Vec(*three, "价位高,超出了心理价位"), Vec(*two, "价位高,超出了心理价位"));
}

TEST(LexicalEmbedder, AMorphemeOfTwoConceptsDoesNotBackOff) {
  // 价位 is as much the plan concept's as price's: the note leans to neither more.
  auto e = Make(384, "price\t价位高|价位太高|价位偏高\nplan\t价位表|价位单|价位清单\nbudget\t预算不够\n");
  ASSERT_NE(e, nullptr);
  const auto v = Vec(*e, "超出了心理价位");
  EXPECT_GT(v[0], 0.0f);
  EXPECT_EQ(v[0], v[1]);
}

TEST(LexicalEmbedder, LexicalSignalSurvivesConcepts) {
  // Two texts with the same concept: the one sharing more words ranks higher.
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const char* q = "too expensive compared to the annual licence";
  EXPECT_GT(Cos(*e, q, "annual licence too expensive"), Cos(*e, q, "overpriced hardware"));
}

TEST(LexicalEmbedder, LatinPhrasesMatchOnWordBoundaries) {
  // One concept: "autopilot" is another word, so it gets no concept feature and
  // shares nothing with "pilot"; "a pilot project" shares the concept.
  auto e = Make(384, "pilot\tpilot\n");
  ASSERT_NE(e, nullptr);
  EXPECT_LT(std::abs(Cos(*e, "autopilot mode", "pilot")), 0.3);
  EXPECT_GT(Cos(*e, "a pilot project", "pilot"), 0.6);
  EXPECT_GT(Cos(*e, "Pilots, pilot programs", "pilot"), 0.6);  // stemmed plural
}

TEST(LexicalEmbedder, PhrasesDoNotCrossPunctuation) {
  // Texts with the same words: only the unbroken one matches the phrase, so
  // only it is identical to the phrase itself.
  auto e = Make(384, "price_high\ttoo expensive|太贵\n");
  ASSERT_NE(e, nullptr);
  EXPECT_GT(Cos(*e, "Too  expensive!", "too expensive"), 0.999);
  EXPECT_LT(Cos(*e, "too. Expensive", "too expensive"), 0.7);
  EXPECT_GT(Cos(*e, "太贵!", "太贵"), 0.999);
  EXPECT_LT(Cos(*e, "太,贵", "太贵"), 0.7);
}

TEST(LexicalEmbedder, DegreeAdverbsDoNotBreakAPhrase) {
  // "价格太吓人" states the phrase "价格吓人" with an intensifier inside; so does
  // "price is very high". Without a phrase match they share no concept at all.
  auto e = Make(384, "price_high\t价格吓人|price is high|有点贵\nother\t价格有点高\n");
  ASSERT_NE(e, nullptr);
  const auto has = [&](std::string_view text, const char* concept_id) {
    const auto got = e->Concepts(text);
    return std::find(got.begin(), got.end(), concept_id) != got.end();
  };
  EXPECT_TRUE(has("李经理说价格太吓人了", "price_high"));
  EXPECT_TRUE(has("价格有点吓人", "price_high"));         // a two-character adverb
  EXPECT_TRUE(has("the price is very high", "price_high"));
  EXPECT_TRUE(has("有点贵", "price_high"));               // a phrase spelling the adverb out
  EXPECT_TRUE(has("价格有点高", "other"));
  EXPECT_FALSE(has("价格太,吓人", "price_high"));          // still no match across punctuation
  EXPECT_FALSE(has("价格不吓人", "price_high"));           // only degree adverbs are skipped
  EXPECT_GT(Cos(*e, "价格太吓人", "价格吓人"), 0.6);
}

TEST(LexicalEmbedder, MalformedLexiconLinesAreRejectedWithTheLine) {
  struct Case {
    std::string text;
    std::string line;
  };
  const Case cases[] = {
      {"# comment\nprice\ttoo expensive\nno tab here\n", "line 3:"},
      {"price\ttoo expensive\nprice\tpricey\n", "line 2:"},
      {"\n\nPrice\ttoo expensive\n", "line 3:"},
      {"price\ttoo expensive||pricey\n", "line 1:"},
      {"price\t   \n", "line 1:"},
      {"x\ta\nprice\t!!!\n", "line 2:"},
      {"price\ttoo\texpensive\n", "line 1:"},
      {"price\ttoo, expensive\n", "line 1:"},
      {"a\tb\nb\tc\nc\t\xff\xfe\n", "line 3:"},
      {"\tphrase\n", "line 1:"},
  };
  for (const auto& c : cases) {
    const Status s = CreateStatus(c.text);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << c.text;
    EXPECT_EQ(s.field(), "lexicon") << c.text;
    EXPECT_EQ(s.message().rfind(c.line, 0), 0u) << s.message() << " for " << c.text;
  }
  EXPECT_TRUE(CreateStatus("# only comments\n\n  \r\nprice\ttoo expensive | 太贵 \r\n").ok());
  EXPECT_TRUE(CreateStatus("").ok());
}

TEST(LexicalEmbedder, BadDimensionIsRejected) {
  EXPECT_EQ(CreateStatus("", 0).field(), "dimension");
  EXPECT_EQ(CreateStatus("", 4097).field(), "dimension");
  EXPECT_TRUE(CreateStatus("", 1).ok());
  EXPECT_TRUE(CreateStatus("", 4096).ok());
}

TEST(LexicalEmbedder, SmallDimensionHashesConceptsAndStillBridges) {
  // 41 concepts do not fit in dedicated slots of a 64-float vector: concepts are
  // hashed like any feature, and the bridge must survive.
  auto e = Make(64);
  ASSERT_NE(e, nullptr);
  ExpectUnit(Vec(*e, "太贵了"), "d64");
  EXPECT_GT(Cos(*e, "太贵了", "too expensive"), Cos(*e, "太贵了", kUnrelatedEn) + 0.3);
}

TEST(LexicalEmbedder, DimensionOneStillWorks) {
  auto e = Make(1);
  ASSERT_NE(e, nullptr);
  const auto v = Vec(*e, "太贵了");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NEAR(std::abs(v[0]), 1.0f, 1e-6);
}

TEST(LexicalEmbedder, NameTracksDimensionAndLexicon) {
  auto a = Make(384);
  auto b = Make(256);
  auto c = Make(384, std::string(DefaultLexicon()) + "\nextra_concept\tsome phrase\n");
  auto d = Make(384);
  ASSERT_TRUE(a && b && c && d);
  EXPECT_EQ(a->Name().rfind("lexical-v7/d384/lex-", 0), 0u) << a->Name();
  EXPECT_EQ(a->Name().size(), std::string("lexical-v7/d384/lex-").size() + 8);
  EXPECT_EQ(b->Name().rfind("lexical-v7/d256/lex-", 0), 0u) << b->Name();
  EXPECT_NE(a->Name(), c->Name());
  EXPECT_EQ(a->Name(), d->Name());
  EXPECT_EQ(a->Name().substr(a->Name().size() - 8), b->Name().substr(b->Name().size() - 8));
  EXPECT_EQ(c->ConceptCount(), a->ConceptCount() + 1);
}

TEST(LexicalEmbedder, ConcurrentEmbedsAgree) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::string text = "客户说别家更便宜 and the CFO wants a discount";
  const auto expected = Vec(*e, text);
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) g = Vec(*e, text);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

TEST(LexicalEmbedder, ComposeAssetTextUsesAllParts) {
  const std::string s = ComposeAssetText("ROI calculator", "Payback in months", {"roi", "calculator"});
  EXPECT_NE(s.find("ROI calculator"), std::string::npos);
  EXPECT_NE(s.find("Payback in months"), std::string::npos);
  EXPECT_NE(s.find("calculator"), s.rfind("calculator"));
  auto e = Make();
  ASSERT_NE(e, nullptr);
  // The title weighs more than a tag.
  EXPECT_GT(Cos(*e, ComposeAssetText("数据安全白皮书", "", {"合同"}), "数据安全"),
            Cos(*e, ComposeAssetText("合同模板", "", {"数据安全"}), "数据安全"));
}

TEST(LexicalEmbedder, EmbedSpeed) {
  auto e = Make();
  ASSERT_NE(e, nullptr);
  const std::string text = ComposeAssetText(
      "应对“太贵了”:一分钱一分货的价值话术",
      "当客户说价格太高时,先认同再拆解:把年费平均到每个用户每天,比较同类产品的质量与售后服务。"
      "Then walk through the ROI calculator with the buyer's own numbers and show a case study "
      "from a peer company that recovered its investment within a year.",
      {"价格异议", "value", "negotiation"});
  std::vector<float> v(e->Dimension());
  const int n = 2000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) e->Embed(text, v.data());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double per_sec = n / s;
  std::cout << "[ embed ] " << text.size() << " bytes: " << static_cast<long>(per_sec)
            << " embeddings/s\n";
  RecordProperty("embeddings_per_second", static_cast<int>(per_sec));
  EXPECT_GT(per_sec, 1000.0);  // generous: a slow debug build still passes
}

}  // namespace
}  // namespace playbook::models

TEST(LexicalEmbedder, ConceptsNameWhatTheTextStates) {
  using playbook::models::DefaultLexicon;
  using playbook::models::LexicalEmbedder;
  auto e = LexicalEmbedder::Create({384, std::string(DefaultLexicon())});
  ASSERT_TRUE(e.ok());
  auto zh = e.value()->Concepts("客户说太贵了");
  EXPECT_NE(std::find(zh.begin(), zh.end(), "price_high"), zh.end());
  auto en = e.value()->Concepts("they have no budget this year");
  EXPECT_NE(std::find(en.begin(), en.end(), "budget"), en.end());
  EXPECT_TRUE(e.value()->Concepts("hello world").empty());
}

namespace playbook::models {
namespace {

// The terms a team's vocabulary is learnt from (docs/ranking.md).
TEST(TextTerms, WordsAndChineseBigramsWithoutStopWordsOrNumbers) {
  EXPECT_EQ(TextTerms("Sharpen your PENCIL, the 20 prices!"),
            (std::vector<std::string>{"sharpen", "pencil", "prices"}));
  // No pronoun or particle pairs (你们, 也在), but 一 makes idioms.
  EXPECT_EQ(TextTerms("你们也在担心"), (std::vector<std::string>{"担心"}));
  // Bigrams within a run; none across punctuation or with a particle (了).
  EXPECT_EQ(TextTerms("老板砍了一刀，砍价"), (std::vector<std::string>{"老板", "板砍", "一刀", "砍价"}));
  EXPECT_EQ(TextTerms("又要砍一刀"), (std::vector<std::string>{"又要", "要砍", "砍一", "一刀"}));
  EXPECT_EQ(TextTerms("a b 1 了 the"), std::vector<std::string>{});
  std::string many;
  for (int i = 0; i < 100; ++i) {
    many += "word";
    many += char('a' + i % 26);
    many += char('a' + i / 26);
    many += ' ';
  }
  EXPECT_EQ(TextTerms(many).size(), kMaxTerms);
  EXPECT_EQ(TextTerms("deal deal Deal"), std::vector<std::string>{"deal"});
}

TEST(TextTerms, TheLexicalEmbedderDropsTermsTheLexiconMaps) {
  LexicalEmbedderOptions o;
  o.lexicon = std::string(DefaultLexicon());
  auto e = LexicalEmbedder::Create(o);
  ASSERT_TRUE(e.ok());
  // "心理价位" is a price phrase: no bigram of it is a term; the rest are.
  EXPECT_EQ(TextTerms("客户嫌超出了心理价位"),
            (std::vector<std::string>{"客户", "户嫌", "嫌超", "超出", "心理", "理价", "价位"}));
  EXPECT_EQ(e.value()->Terms("客户嫌超出了心理价位"), (std::vector<std::string>{"客户", "户嫌", "嫌超", "超出"}));
  // "expensive" and "sharpen your pencil" are phrases; "lever" is not.
  EXPECT_EQ(e.value()->Terms("Pull the LEVER: sharpen your pencil, too expensive"),
            (std::vector<std::string>{"pull", "lever"}));  // "your" is part of a phrase too
}

}  // namespace
}  // namespace playbook::models

// playbook simulate: a simulated sales organisation with a hidden ground truth,
// run through the real daemon over the real protocol, measuring whether the
// daemon's ranking learns from the feedback it gets. docs/simulation.md.
//
// The simulation knows, for every asset, how much it truly helps a lead with a
// given objection at a given stage (a logit added to the lead's chance to
// advance); the daemon never sees that, only the feedback events. Three arms
// work through the same simulated prospects (common random numbers: lead j of
// every arm has the same objection, rep, phrasings and dice), interleaved in
// time:
//   daemon  the rep asks `recommend` and uses one of its items (position bias);
//   random  the rep uses a uniformly random eligible asset;
//   oracle  the rep uses the eligible asset that truly helps most.
// The daemon and random arms' feedback is recorded, so the daemon learns from
// reps who follow it and reps who do not; the oracle's is not by default (its
// picks would reveal the hidden truth): --learn-from.
//
// With --holdout F the daemon must run the built-in holdout at that fraction
// ([experiment] holdout_fraction): the daemon arm's leads are then split by the
// daemon into treatment and holdout (docs/experiment.md), and the run ends
// with reports.experiment over its window: the measured lift of the
// recommendations. --random-ranking makes the daemon arm's reps use a random
// eligible asset whatever recommend says: a null control, whose measured lift
// should be within noise of 0.
//
// Determinism: everything the simulation draws comes from --seed (the dice of
// a lead are a hash of seed, lead, stage and purpose, so they are the same in
// every arm whatever happened before), requests are sent one at a time
// and each feedback batch is acknowledged before the next request, so two runs
// with one seed against fresh daemons are identical when the daemon's own
// exploration is seeded ([ranking] seed in its config).
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <unordered_map>

#include "common.h"
#include "readers.h"

namespace playbook::cli {
namespace {

// ---------------------------------------------------------------------------
// Deterministic randomness (independent of the standard library's
// distributions, so a seed means the same run everywhere).

constexpr uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

constexpr uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

double ToUnit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// A uniform draw in [0,1) named by its purpose and coordinates: the same
// (seed, purpose, a, b, c) always gives the same number, whatever was drawn
// before. This is what makes the arms share their prospects' dice.
double Dice(uint64_t seed, std::string_view purpose, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0) {
  uint64_t h = SplitMix64(seed ^ Fnv1a(purpose));
  h = SplitMix64(h ^ a);
  h = SplitMix64(h ^ (b * 0x9E3779B97F4A7C15ULL));
  h = SplitMix64(h ^ (c * 0xC2B2AE3D27D4EB4FULL));
  return ToUnit(h);
}

// A sequential generator, for the catalog and the scheduler.
class Rng {
 public:
  Rng(uint64_t seed, std::string_view stream) : state_(SplitMix64(seed ^ Fnv1a(stream))) {}
  uint64_t Next() { return SplitMix64(state_ += 0x9E3779B97F4A7C15ULL); }
  double Uniform() { return ToUnit(Next()); }
  double Range(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  std::size_t Below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(Uniform() * static_cast<double>(n)); }

 private:
  uint64_t state_;
};

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---------------------------------------------------------------------------
// The world: stages, objections and how reps phrase them.

const std::vector<std::string> kStages = {"awareness", "interest", "consideration", "evaluation",
                                          "negotiation"};
constexpr int kStageCount = 5;
// Logit of advancing from each stage (winning at the last) with no content.
constexpr std::array<double, kStageCount> kBaseLogit = {1.0, 0.9, 0.8, 0.7, 0.6};

constexpr int kObjectionCount = 8;
struct Objection {
  const char* name;
  // What a rep types as the lead's context: never an asset title.
  std::array<const char*, 4> zh;
  std::array<const char*, 4> en;
  // For --catalog: words that make an asset about this objection.
  std::array<const char*, 8> keywords;
};

const std::array<Objection, kObjectionCount> kObjections = {{
    {"price",
     {"太贵了", "价格比预期高不少", "客户觉得报价偏高", "比想象中贵"},
     {"that's too expensive for us", "your price is too high", "sticker shock on the quote",
      "the price is steep"},
     {"贵", "价格", "报价", "price", "expensive", "pricing", "discount", "折"}},
    {"budget",
     {"今年没有预算", "预算已经用完了", "资金紧张，批不下来", "预算不足"},
     {"no budget this year", "we can't afford it right now", "our budget is frozen",
      "money is tight this quarter"},
     {"预算", "资金", "budget", "afford", "funding", "经费", "付款", "payment"}},
    {"timing",
     {"以后再说吧", "下个季度再考虑", "我们再想想", "现在不着急"},
     {"not right now, maybe next quarter", "let me think it over", "we want to wait and see",
      "put it on hold for now"},
     {"以后", "再想想", "考虑一下", "拖", "later", "delay", "timing", "wait"}},
    {"competitor",
     {"我们也在看别的厂商", "竞品功能更多", "友商也在报方案", "和其他供应商比较一下"},
     {"we're also evaluating another vendor", "the competition offered more features",
      "comparing you with other vendors", "our incumbent already does this"},
     {"竞品", "竞争", "别家", "友商", "competitor", "vendor", "versus", "alternative"}},
    {"value",
     {"看不出值不值这个钱", "不知道能带来什么价值", "花这个钱划算吗", "价值在哪里"},
     {"not sure it's worth it", "what's the value for us", "we don't see the value",
      "can't justify the cost"},
     {"价值", "值不值", "回报", "roi", "worth", "value", "payback", "回本"}},
    {"trust",
     {"不太相信你们能做到", "你们公司靠谱吗", "心里没底", "担心被骗"},
     {"we've never heard of you", "skeptical about your claims", "how do we know you're credible",
      "sounds too good to be true"},
     {"信任", "靠谱", "案例", "trust", "reference", "case study", "credib", "资质"}},
    {"risk",
     {"万一上线没效果怎么办", "风险太大", "怕踩坑", "效果不好怎么办"},
     {"what if it doesn't work", "too risky for us", "what's our downside", "we need some guarantee"},
     {"风险", "试点", "退款", "risk", "pilot", "guarantee", "refund", "保障"}},
    {"decision",
     {"要请示领导", "我做不了主", "得老板拍板", "需要走审批"},
     {"need my boss to sign off", "the CFO has to approve", "not my call", "leadership has to decide"},
     {"领导", "老板", "决策", "审批", "decision", "boss", "cfo", "approv"}},
}};

// Objections close enough that good content for one helps a little with the other.
bool Related(int a, int b) {
  auto group = [](int o) {
    switch (o) {
      case 0: case 1: case 4: return 1;  // price, budget, value
      case 5: case 6: return 2;          // trust, risk
      default: return 0;
    }
  };
  return a != b && group(a) != 0 && group(a) == group(b);
}

const std::array<const char*, 6> kIndustries = {"retail", "manufacturing", "saas", "finance", "logistics",
                                                "healthcare"};
const std::array<const char*, 3> kSizes = {"smb", "mid_market", "enterprise"};

// ---------------------------------------------------------------------------
// The synthetic catalog: 8 objections x 7 assets + 4 generic ones. Whether an
// asset is great, mediocre or harmful is the hidden ground truth; the harmful
// ones ("decoys") read like sensible content about the same objection.

enum class Role { kGreat, kGood, kMediocre, kHarmful, kGeneric };
const char* RoleName(Role r) {
  switch (r) {
    case Role::kGreat: return "great";
    case Role::kGood: return "good";
    case Role::kMediocre: return "mediocre";
    case Role::kHarmful: return "harmful";
    case Role::kGeneric: return "generic";
  }
  return "?";
}

struct Template {
  int objection;  // -1: generic
  Role role;
  const char* language;
  const char* type;
  const char* title;
  const char* body;
};

// clang-format off
const Template kTemplates[] = {
  // price
  {0, Role::kGreat, "zh", "objection_script", "太贵了：价值拆解脚本", "把年费拆到每个销售每天的成本，再对照客户自己丢单的损失，讲清一分钱一分货。"},
  {0, Role::kGood, "en", "roi_calculator", "Price pushback: cost-per-seat breakdown worksheet", "Turns the annual fee into a cost per rep per day and sets it against the deals lost today."},
  {0, Role::kMediocre, "en", "product_sheet", "Pricing tiers at a glance", "The editions, what each includes and the list price of each."},
  {0, Role::kMediocre, "zh", "email_template", "报价跟进邮件模板：价格说明", "发出报价后的跟进邮件，逐项说明价格构成。"},
  {0, Role::kMediocre, "en", "video", "Why our pricing is higher than average (2-minute video)", "A short video on where the price difference comes from."},
  {0, Role::kHarmful, "zh", "objection_script", "嫌贵？立即申请八折特价的成交话术", "客户一说价格高，马上申请八折特价，争取当场成交。"},
  {0, Role::kHarmful, "en", "email_template", "Too expensive? Send the 30% off coupon email", "When the prospect balks at the price, send a 30% discount code the same day."},
  // budget
  {1, Role::kGreat, "en", "roi_calculator", "ROI calculator for budget holders", "Shows the budget owner the payback period and the cost of waiting a budget cycle."},
  {1, Role::kGood, "zh", "objection_script", "预算用完了：分阶段付款与试点方案话术", "先确认明年预算何时编制，再提出先试点一个团队、分阶段付款的方案。"},
  {1, Role::kMediocre, "zh", "whitepaper", "企业软件预算规划指南", "如何在年度预算中为销售工具留出空间。"},
  {1, Role::kMediocre, "en", "email_template", "Follow-up email: planning for next year's budget", "A polite note asking when next year's budget is set."},
  {1, Role::kMediocre, "en", "product_sheet", "Starter package for small budgets", "The smallest edition and what it leaves out."},
  {1, Role::kHarmful, "en", "objection_script", "No budget? Offer a free year and sort out payment later", "Give the first year away to get the logo; talk about money at renewal."},
  {1, Role::kHarmful, "zh", "email_template", "没预算也能买：先签约后付款的邮件模板", "告诉客户可以先签约、预算到位再付款。"},
  // timing
  {2, Role::kGreat, "zh", "case_study", "拖一个月损失多少：某零售客户的拖延代价测算", "用客户自己的线索量和转化率，算出每推迟一个月少签多少单。"},
  {2, Role::kGood, "en", "roi_calculator", "Cost of delay calculator: what waiting a quarter costs", "Puts a number on each month the decision slips."},
  {2, Role::kMediocre, "en", "email_template", "Check-in email for deals on hold", "A short, friendly check-in for a paused opportunity."},
  {2, Role::kMediocre, "zh", "product_sheet", "快速上线方案：两周部署说明", "两周上线的实施步骤与分工。"},
  {2, Role::kMediocre, "en", "whitepaper", "Timing your CRM rollout: a planning guide", "When in the year to roll out sales tooling."},
  {2, Role::kHarmful, "zh", "email_template", "客户说以后再说：每天跟进一次的催单话术", "客户要再考虑时，每天打电话或发消息催一次。"},
  {2, Role::kHarmful, "en", "objection_script", "Not the right time? The limited-time offer script", "Tell the prospect the offer expires this Friday to force a decision."},
  // competitor
  {3, Role::kGreat, "en", "competitor_comparison", "Head-to-head: how we compare with the vendors on your shortlist", "An honest side-by-side on the criteria the buyer cares about, with proof for each."},
  {3, Role::kGood, "zh", "case_study", "从竞品切换过来的客户案例：三个月见效", "一家制造企业从别家系统迁移过来，三个月线索转化率提升。"},
  {3, Role::kMediocre, "zh", "competitor_comparison", "竞品功能对比表（2024版）", "主要厂商的功能清单对比。"},
  {3, Role::kMediocre, "en", "whitepaper", "Buyer's guide: evaluating sales enablement vendors", "Questions to ask every vendor."},
  {3, Role::kMediocre, "en", "video", "What makes us different (video)", "Three minutes on our differentiators."},
  {3, Role::kHarmful, "zh", "objection_script", "客户在看别家：逐条指出竞争对手缺点的话术", "列出竞争对手的每个弱点，让客户放弃对方。"},
  {3, Role::kHarmful, "en", "email_template", "Competitor quoted lower? Price-match email template", "Offer to match any competitor's quote, no questions asked."},
  // value
  {4, Role::kGreat, "zh", "roi_calculator", "值不值：投资回报测算表（含回本周期）", "输入团队人数和客单价，算出回本周期和三年收益。"},
  {4, Role::kGood, "en", "case_study", "Is it worth it? How a 40-rep team paid back in 5 months", "A SaaS vendor's numbers before and after, audited by their finance team."},
  {4, Role::kMediocre, "en", "product_sheet", "Feature overview: everything included", "Every module and feature in one sheet."},
  {4, Role::kMediocre, "zh", "whitepaper", "销售赋能的价值：行业白皮书", "销售赋能为企业带来的价值综述。"},
  {4, Role::kMediocre, "zh", "video", "三分钟看懂产品价值（视频）", "产品价值的简短介绍视频。"},
  {4, Role::kHarmful, "en", "objection_script", "Value unclear? Walk them through all 120 features", "Demonstrate every feature until the value becomes obvious."},
  {4, Role::kHarmful, "zh", "email_template", "客户看不到价值：发送完整功能清单的邮件", "把全部功能清单发给客户，让客户自己看价值。"},
  // trust
  {5, Role::kGreat, "en", "case_study", "Reference customers you can call: three peers in your industry", "Named references in the prospect's industry who agreed to take a call."},
  {5, Role::kGood, "zh", "case_study", "同行业标杆客户案例与联系人", "三家同行业客户的落地案例，可安排实地考察。"},
  {5, Role::kMediocre, "zh", "product_sheet", "公司资质与认证一览", "公司资质、认证和合规说明。"},
  {5, Role::kMediocre, "en", "whitepaper", "Security and compliance overview", "How customer data is protected."},
  {5, Role::kMediocre, "en", "video", "Meet the team behind the product (video)", "The founders and the support team introduce themselves."},
  {5, Role::kHarmful, "zh", "objection_script", "客户不信任我们：强调我们是行业第一的话术", "反复强调我们是行业第一、客户最多。"},
  {5, Role::kHarmful, "en", "email_template", "Skeptical buyer? Send our awards and press mentions", "A list of every award and press mention to build credibility."},
  // risk
  {6, Role::kGreat, "zh", "objection_script", "怕没效果：先做一个团队的试点，达不到指标全额退款", "约定试点指标，一个团队先用六周，没达到就全额退款。"},
  {6, Role::kGood, "en", "product_sheet", "Risk-free pilot: terms and success criteria", "How a six-week pilot is scoped, measured and exited."},
  {6, Role::kMediocre, "en", "whitepaper", "Implementation risks and how we handle them", "The usual rollout risks and our mitigations."},
  {6, Role::kMediocre, "zh", "email_template", "上线保障说明邮件", "说明上线期间的保障措施。"},
  {6, Role::kMediocre, "zh", "video", "上线流程演示（视频）", "上线流程的分步演示。"},
  {6, Role::kHarmful, "en", "objection_script", "Worried it won't work? Promise guaranteed results in writing", "Put a guaranteed uplift in the contract to remove all doubt."},
  {6, Role::kHarmful, "zh", "objection_script", "风险顾虑：直接承诺包效果的话术", "客户担心风险时，直接承诺一定有效果。"},
  // decision
  {7, Role::kGreat, "en", "email_template", "Needs the boss's sign-off: one-page business case for the CFO", "A one-page business case the champion forwards to the CFO for approval."},
  {7, Role::kGood, "zh", "objection_script", "要请示领导：帮对接人准备内部汇报材料", "帮对接人准备给领导汇报的三页材料和常见问题。"},
  {7, Role::kMediocre, "zh", "whitepaper", "采购决策流程指南", "企业软件采购的一般决策流程。"},
  {7, Role::kMediocre, "en", "product_sheet", "Executive summary sheet", "The product on one page for executives."},
  {7, Role::kMediocre, "en", "video", "Product overview for leadership (video)", "A short overview video for senior management."},
  {7, Role::kHarmful, "zh", "objection_script", "对接人做不了主：绕过他直接找老板的话术", "对接人说了不算时，直接打电话给老板。"},
  {7, Role::kHarmful, "en", "email_template", "Decision maker unavailable? Escalate over your contact's head", "Email the executive directly and copy your contact."},
  // generic
  {-1, Role::kGeneric, "en", "product_sheet", "Company overview: who we are", "Our company, products and customers in brief."},
  {-1, Role::kGeneric, "zh", "product_sheet", "产品总览手册", "产品模块、适用场景和服务介绍。"},
  {-1, Role::kGeneric, "en", "case_study", "Customer success stories collection", "Short stories from customers across industries."},
  {-1, Role::kGeneric, "zh", "case_study", "客户成功故事合集", "各行业客户的成功故事。"},
};
// clang-format on

struct SimAsset {
  std::string id;
  std::string title;
  int objection = -1;  // -1: about no objection in particular
  Role role = Role::kMediocre;
  std::array<bool, kStageCount> eligible{};
  // help[stage][objection]: the logit it adds to a lead's chance to advance.
  std::array<std::array<double, kObjectionCount>, kStageCount> help{};
  double view_probability = 0.5;  // by the prospect, once the rep sent it
  json upsert;                    // the asset as assets.upsert takes it
};

// Draws the hidden effects of one asset.
void DrawGroundTruth(SimAsset& a, Rng& rng) {
  double base = 0;
  switch (a.role) {
    case Role::kGreat: base = rng.Range(1.2, 1.6); break;
    case Role::kGood: base = rng.Range(0.5, 0.8); break;
    case Role::kMediocre: base = rng.Range(-0.15, 0.3); break;
    case Role::kHarmful: base = rng.Range(-1.1, -0.7); break;
    case Role::kGeneric: base = rng.Range(0.1, 0.25); break;
  }
  std::array<double, kObjectionCount> off{};
  for (double& o : off) o = rng.Range(-0.25, 0.0);  // the wrong topic wastes the prospect's time
  for (int s = 0; s < kStageCount; ++s) {
    const double fit = rng.Range(0.6, 1.2);  // how well it suits this stage
    for (int o = 0; o < kObjectionCount; ++o) {
      double h;
      if (a.role == Role::kGeneric || a.objection < 0) {
        h = base * fit;
      } else if (o == a.objection) {
        h = base * fit;
      } else if (Related(o, a.objection) && base > 0.4) {
        h = 0.35 * base * fit;
      } else {
        h = off[o];
      }
      a.help[s][o] = a.eligible[s] ? h : 0.0;
    }
  }
  // Prospects open good content more often; decoys are catchy.
  a.view_probability = a.role == Role::kHarmful ? 0.6 : std::clamp(0.45 + 0.2 * std::tanh(base), 0.1, 0.9);
}

// A contiguous window of 2..3 stages, or all of them.
void DrawStages(SimAsset& a, Rng& rng, bool all) {
  if (all) {
    a.eligible.fill(true);
    return;
  }
  const int len = 2 + static_cast<int>(rng.Below(2));
  const int start = static_cast<int>(rng.Below(static_cast<std::size_t>(kStageCount - len + 1)));
  for (int s = start; s < start + len; ++s) a.eligible[static_cast<std::size_t>(s)] = true;
}

std::string StageList(const SimAsset& a) {
  std::string out;
  for (int s = 0; s < kStageCount; ++s) {
    if (!a.eligible[static_cast<std::size_t>(s)]) continue;
    if (!out.empty()) out += ",";
    out += kStages[static_cast<std::size_t>(s)];
  }
  return out;
}

std::string Prefix(uint64_t seed) { return "sim-" + std::to_string(seed) + "-"; }
std::string SeedTag(uint64_t seed) { return "sim:" + std::to_string(seed); }

std::vector<SimAsset> SyntheticCatalog(uint64_t seed) {
  Rng rng(seed, "catalog");
  const std::size_t n = std::size(kTemplates);
  // Ids are numbered in a shuffled order, so an id says nothing about quality.
  std::vector<int> number(n);
  for (std::size_t i = 0; i < n; ++i) number[i] = static_cast<int>(i) + 1;
  for (std::size_t i = n - 1; i > 0; --i) std::swap(number[i], number[rng.Below(i + 1)]);
  std::vector<SimAsset> out;
  for (std::size_t i = 0; i < n; ++i) {
    const Template& t = kTemplates[i];
    SimAsset a;
    char num[8];
    std::snprintf(num, sizeof num, "a%02d", number[i]);
    a.id = Prefix(seed) + num;
    a.title = t.title;
    a.objection = t.objection;
    a.role = t.role;
    DrawStages(a, rng, t.role == Role::kGeneric);
    DrawGroundTruth(a, rng);
    json tags = json::array({"sim", SeedTag(seed)});
    if (t.objection >= 0) tags.push_back(std::string("objection:") + kObjections[static_cast<std::size_t>(t.objection)].name);
    json stages = json::array();
    for (int s = 0; s < kStageCount; ++s) {
      if (a.eligible[static_cast<std::size_t>(s)]) stages.push_back(kStages[static_cast<std::size_t>(s)]);
    }
    a.upsert = {{"id", a.id},
                {"title", t.title},
                {"body", t.body},
                {"url", "https://example.com/sim/" + a.id},
                {"language", t.language},
                {"type", t.type},
                {"stages", stages},
                {"tags", tags}};
    out.push_back(std::move(a));
  }
  // In id order, as a catalog listing would show them.
  std::sort(out.begin(), out.end(), [](const SimAsset& x, const SimAsset& y) { return x.id < y.id; });
  return out;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// --catalog FILE: the file's assets under the simulation's prefix and tags;
// their topic is guessed from keywords and their effects drawn from the seed.
// Returns false (explained) when the file cannot be used.
bool CatalogFromFile(const std::string& path, uint64_t seed, std::vector<SimAsset>& out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::cerr << "playbook: simulate: cannot open " << path << ": " << std::strerror(errno) << "\n";
    return false;
  }
  const bool csv = path.size() >= 4 && Lower(path.substr(path.size() - 4)) == ".csv";
  std::unique_ptr<Reader> reader = csv ? MakeCsvReader(file) : MakeJsonlReader(file);
  if (std::string f = reader->fatal(); !f.empty()) {
    std::cerr << "playbook: simulate: " << path << ": " << f << "\n";
    return false;
  }
  Rng rng(seed, "catalog-file");
  std::set<std::string> ids;
  Record r;
  while (reader->Next(r)) {
    json a = r.error.empty() ? json::parse(r.text, nullptr, false) : json();
    if (!r.error.empty() || !a.is_object() || !a.contains("id") || !a["id"].is_string() ||
        !a.contains("title") || !a["title"].is_string() || !a.contains("stages") || !a["stages"].is_array()) {
      std::cerr << "simulate: " << path << ": line " << r.line << ": skipped ("
                << (r.error.empty() ? "needs id, title and stages" : r.error) << ")\n";
      continue;
    }
    if (!a.value("active", true)) continue;
    SimAsset s;
    s.id = Prefix(seed) + a["id"].get<std::string>();
    if (s.id.size() > 128 || !ids.insert(s.id).second) {
      std::cerr << "simulate: " << path << ": line " << r.line << ": skipped (id too long or repeated)\n";
      continue;
    }
    s.title = a["title"].get<std::string>();
    bool any_stage = false;
    for (const json& st : a["stages"]) {
      if (!st.is_string()) continue;
      auto it = std::find(kStages.begin(), kStages.end(), st.get<std::string>());
      if (it == kStages.end()) continue;
      s.eligible[static_cast<std::size_t>(it - kStages.begin())] = true;
      any_stage = true;
    }
    if (!any_stage) {
      std::cerr << "simulate: " << path << ": line " << r.line << ": skipped (no stage the simulation knows)\n";
      continue;
    }
    // The objection with most keyword hits in title, body and tags.
    std::string text = Lower(s.title + " " + a.value("body", std::string()) + " " +
                             (a.contains("tags") ? a["tags"].dump() : std::string()));
    int best = -1, best_hits = 0;
    for (int o = 0; o < kObjectionCount; ++o) {
      int hits = 0;
      for (const char* k : kObjections[static_cast<std::size_t>(o)].keywords) hits += text.find(k) != std::string::npos;
      if (hits > best_hits) best = o, best_hits = hits;
    }
    s.objection = best;
    if (best < 0) {
      s.role = Role::kGeneric;
    } else {
      const double u = rng.Uniform();
      s.role = u < 0.12 ? Role::kGreat : u < 0.30 ? Role::kGood : u < 0.75 ? Role::kMediocre : Role::kHarmful;
    }
    DrawGroundTruth(s, rng);
    json tags = a.contains("tags") && a["tags"].is_array() ? a["tags"] : json::array();
    tags.push_back("sim");
    tags.push_back(SeedTag(seed));
    a["id"] = s.id;
    a["tags"] = tags;
    a["url"] = a.value("url", "https://example.com/sim/" + s.id);
    s.upsert = std::move(a);
    out.push_back(std::move(s));
  }
  if (reader->failed()) {
    std::cerr << "playbook: simulate: " << path << ": read error\n";
    return false;
  }
  if (out.empty()) {
    std::cerr << "playbook: simulate: " << path << ": no usable assets\n";
    return false;
  }
  std::sort(out.begin(), out.end(), [](const SimAsset& x, const SimAsset& y) { return x.id < y.id; });
  return true;
}

// ---------------------------------------------------------------------------
// Options

enum Arm { kDaemon = 0, kRandom = 1, kOracle = 2 };
constexpr int kArmCount = 3;
constexpr std::array<const char*, kArmCount> kArmNames = {"daemon", "random", "oracle"};

struct Options {
  ConnectionOptions conn;
  int64_t leads = 2000;  // per arm
  uint64_t seed = 1;
  int reps = 20;
  double follow = 0.7;
  int k = 3;
  int64_t report_every = 0;  // 0: leads / 10
  int64_t rounds = 0;
  std::string catalog;
  int batch = 20;
  bool json_output = false;
  bool progress = true;
  // The oracle's choices reveal the hidden truth: not recorded unless asked.
  std::array<bool, kArmCount> learn_from = {true, true, false};
  double holdout = -1;  // --holdout: the daemon's expected holdout_fraction; < 0: not measured
  bool random_ranking = false;  // the daemon arm's reps ignore recommend's order
};

void PrintSimulateUsage(std::ostream& out) {
  out << "Usage: playbook simulate [options]\n\n"
         "Runs a simulated sales organisation against the daemon and measures whether its\n"
         "ranking learns. The simulation holds a hidden ground truth (how much each asset truly\n"
         "helps a lead with a given objection at a given stage), loads its own catalog with\n"
         "assets.upsert (ids 'sim-SEED-*', tags 'sim' and 'sim:SEED'), and runs three arms over\n"
         "the same simulated prospects: 'daemon' (reps use what recommend returns), 'random'\n"
         "(a random eligible asset) and 'oracle' (the truly best eligible asset). The daemon and\n"
         "random arms' feedback goes to feedback.record. Prints a row every --report-every leads and a\n"
         "results table at the end. Use a scratch daemon: the simulation's assets and feedback\n"
         "stay in the daemon's data. docs/simulation.md explains the model.\n\n"
         "Options:\n"
         "  --leads N          simulated leads per arm, 1..200000 (default: 2000)\n"
         "  --seed S           seed of everything simulated, 0..2^53 (default: 1)\n"
         "  --reps R           sales reps, 1..10000 (default: 20)\n"
         "  --follow P         probability a rep uses the arm's pick, 0..1 (default: 0.7)\n"
         "  --k K              items asked of recommend, 1..100 (default: 3)\n"
         "  --report-every N   print a row every N leads of each arm (default: leads/10)\n"
         "  --rounds R         or: R rows in all\n"
         "  --catalog FILE     simulate over these assets (JSON Lines or .csv, as import reads)\n"
         "                     instead of the synthetic catalog; they are upserted under the\n"
         "                     simulation's prefix and their hidden effects drawn from the seed\n"
         "  --batch N          feedback events per feedback.record call, 1..1000 (default: 20)\n"
         "  --learn-from LIST  arms whose feedback goes to feedback.record, comma-separated, or\n"
         "                     none (default: daemon,random; the oracle's picks would reveal the\n"
         "                     hidden truth)\n"
         "  --holdout F        measure the daemon's built-in holdout (docs/experiment.md): the\n"
         "                     daemon must run with [experiment] holdout_fraction = F (0.01..0.5);\n"
         "                     its daemon-arm leads are split into treatment and holdout, and\n"
         "                     the run ends with reports.experiment over the run's window\n"
         "  --random-ranking   the daemon arm's reps use a random eligible asset whatever\n"
         "                     recommend returns (recommend is still asked): a null control\n"
         "  --format F         table or json (default: table)\n"
         "  --no-progress      no progress output on stderr\n\n"
      << kConnectionOptions
      << "(a marketing or admin token: the simulation upserts its catalog)\n"
         "\nExit status: 0 the simulation ran, 1 the daemon returned an error or broke the\n"
         "recommend/feedback contract (the results are still printed), 2 usage error,\n"
         "3 connection failure or timeout.\n";
}

std::optional<double> ParseDouble(const std::string& text, double min, double max) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || !(v >= min && v <= max)) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------------------
// The simulation

// What happened to one lead (one slot of one arm).
struct LeadResult {
  bool closed = false, won = false;
  int advanced = 0, steps = 0, used = 0, best_used = 0;
  double help = 0;  // summed over the assets used
  int top1 = 0, top1_best = 0;  // daemon arm: recommend calls, and those whose first item was the best
  std::array<int, 6> used_kind{};  // what was used, by UseKind
};

// What an asset used with a lead truly is, for that lead.
enum UseKind { kOnGreat, kOnGood, kOnMediocre, kOnHarmful, kGenericUse, kOffTopic };
constexpr std::array<const char*, 6> kUseKindNames = {"great", "good", "mediocre", "harmful", "generic", "off_topic"};

struct Lead {
  int arm = 0;
  int64_t slot = 0;
  std::string id;
  int stage = 0;
  int64_t events = 0;
  std::set<int> seen;           // assets used, viewed or dismissed (sent or not)
  std::set<int> acknowledged;   // ... whose events the daemon acknowledged
};

// An event waiting to be sent, and what it makes "seen" once acknowledged.
struct Pending {
  json event;
  std::string lead_id;
  int asset = -1;
};

struct Totals {
  int64_t closed = 0, won = 0, advanced = 0, steps = 0, used = 0, best_used = 0, top1 = 0, top1_best = 0;
  double help = 0;
  std::array<int64_t, 6> used_kind{};
  void Add(const LeadResult& r) {
    for (std::size_t i = 0; i < used_kind.size(); ++i) used_kind[i] += r.used_kind[i];
    closed += r.closed;
    won += r.won;
    advanced += r.advanced;
    steps += r.steps;
    used += r.used;
    best_used += r.best_used;
    top1 += r.top1;
    top1_best += r.top1_best;
    help += r.help;
  }
  double WinRate() const { return closed ? static_cast<double>(won) / static_cast<double>(closed) : 0; }
  double Ci95() const {
    if (!closed) return 0;
    const double p = WinRate();
    return 1.96 * std::sqrt(p * (1 - p) / static_cast<double>(closed));
  }
  double AvgAdvanced() const { return closed ? static_cast<double>(advanced) / static_cast<double>(closed) : 0; }
  double UsedShare() const { return steps ? static_cast<double>(used) / static_cast<double>(steps) : 0; }
  double MeanHelp() const { return used ? help / static_cast<double>(used) : 0; }
  double BestPick() const { return used ? static_cast<double>(best_used) / static_cast<double>(used) : 0; }
  double Top1Best() const { return top1 ? static_cast<double>(top1_best) / static_cast<double>(top1) : 0; }
};

std::string Pct(double f) { return Fixed(100 * f, 0) + "%"; }
std::string Signed(double v) {
  std::string out = v >= 0 ? "+" : "";  // not "+" + string: GCC 12's -Wrestrict false positive
  return out + Fixed(v, 2);
}
std::string Pad(std::string s, std::size_t width, bool right = false) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

class Simulation {
 public:
  Simulation(Options o, RpcConnection& rpc, std::vector<SimAsset> catalog, bool synthetic)
      : o_(std::move(o)),
        rpc_(rpc),
        assets_(std::move(catalog)),
        synthetic_(synthetic),
        progress_("simulate", o_.progress, Millis(2000)) {
    for (std::size_t i = 0; i < assets_.size(); ++i) {
      index_[assets_[i].id] = static_cast<int>(i);
      for (int s = 0; s < kStageCount; ++s) {
        if (assets_[i].eligible[static_cast<std::size_t>(s)]) eligible_[static_cast<std::size_t>(s)].push_back(static_cast<int>(i));
      }
    }
    for (auto& r : results_) r.resize(static_cast<std::size_t>(o_.leads));
    report_every_ = o_.report_every > 0 ? o_.report_every
                    : o_.rounds > 0     ? (o_.leads + o_.rounds - 1) / o_.rounds
                                        : std::max<int64_t>(1, o_.leads / 10);
    const int64_t windows = (o_.leads + report_every_ - 1) / report_every_;
    window_closed_.assign(static_cast<std::size_t>(windows), {0, 0, 0});
    Rng reps(o_.seed, "reps");
    for (int r = 0; r < o_.reps; ++r) rep_skill_.push_back(reps.Range(-0.2, 0.2));
  }

  // The exit status.
  int Run() {
    start_ = Clock::now();
    start_ms_ = std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (o_.holdout >= 0 && !CheckHoldout()) return fatal_;
    if (!UpsertCatalog()) return fatal_;
    if (!o_.json_output) PrintHeader();
    Rng sched(o_.seed, "schedule");
    // Leads are worked on concurrently: a pool of open leads, each tick one of
    // them (at random) goes through its current stage. Slot j of each arm
    // enters the pool together.
    const std::size_t pool = static_cast<std::size_t>(std::max(3, o_.reps * 3));
    std::vector<std::unique_ptr<Lead>> active;
    int64_t next_slot = 0;
    while (true) {
      while (active.size() < pool && next_slot < o_.leads) {
        for (int arm = 0; arm < kArmCount; ++arm) active.push_back(NewLead(arm, next_slot));
        ++next_slot;
      }
      if (active.empty()) break;
      const std::size_t pick = sched.Below(active.size());
      Lead& lead = *active[pick];
      if (!Step(lead)) break;
      if (results_[static_cast<std::size_t>(lead.arm)][static_cast<std::size_t>(lead.slot)].closed) {
        Closed(lead);
        std::swap(active[pick], active.back());
        active.pop_back();
      }
      if (pending_.size() >= static_cast<std::size_t>(o_.batch) && !Flush()) break;
      ShowProgress(false);
    }
    if (!fatal_) Flush();
    if (!fatal_ && o_.holdout >= 0) {
      const int64_t now = std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
      experiment_ = CallOrFail("reports.experiment", {{"from", start_ms_}, {"to", now}});
    }
    progress_.Finish();
    if (fatal_ == kExitConnection) return fatal_;
    if (o_.json_output) {
      std::cout << PrintJson().dump(2) << std::endl;
    } else {
      PrintSummary();
    }
    if (fatal_) return fatal_;
    return violations_.empty() ? kExitOk : kExitRpcError;
  }

 private:
  // ---- RPC

  // One call, retrying -32003 (overloaded) with back-off. Null json when the
  // simulation must stop (fatal_ set, explained).
  json CallOrFail(const std::string& method, const json& params) {
    for (int attempt = 0;; ++attempt) {
      json r = rpc_.Call(method, params);
      if (r.is_null()) {
        fatal_ = kExitConnection;
        return json();
      }
      if (ErrorCode(r) == -32003 && attempt < 8) {
        std::this_thread::sleep_for(Millis(std::min<int64_t>(5000, 100LL << attempt)));
        continue;
      }
      if (r.contains("error")) {
        progress_.Clear();
        std::cerr << "playbook: simulate: " << method << " failed: " << DescribeError(r);
        if (r["error"].is_object() && r["error"].contains("data")) std::cerr << " " << OneLine(r["error"]["data"]);
        std::cerr << "\n";
        fatal_ = kExitRpcError;
        return json();
      }
      if (!r.contains("result")) {
        Violation("response", method + " answered without a result: " + OneLine(r));
        fatal_ = kExitRpcError;
        return json();
      }
      return std::move(r["result"]);
    }
  }

  // The daemon must run the holdout at the fraction asked: the simulation
  // cannot set it (it is the daemon's config).
  bool CheckHoldout() {
    json r = CallOrFail("reports.experiment", {{"from", start_ms_}, {"to", start_ms_}});
    if (r.is_null()) return false;
    const double f = r.value("holdout_fraction", -1.0);
    if (std::abs(f - o_.holdout) > 1e-9) {
      std::cerr << "playbook: simulate: --holdout " << Fixed(o_.holdout, 2)
                << " but the daemon's [experiment] holdout_fraction is " << Fixed(f, 2)
                << ": start the daemon with holdout_fraction = " << Fixed(o_.holdout, 2) << " (docs/experiment.md)\n";
      fatal_ = kExitRpcError;
      return false;
    }
    return true;
  }

  bool UpsertCatalog() {
    int64_t created = 0, updated = 0;
    for (std::size_t i = 0; i < assets_.size(); i += 500) {
      json batch = json::array();
      for (std::size_t j = i; j < std::min(assets_.size(), i + 500); ++j) batch.push_back(assets_[j].upsert);
      json r = CallOrFail("assets.upsert", {{"assets", batch}});
      if (r.is_null()) return false;
      created += r.value("created", int64_t{0});
      updated += r.value("updated", int64_t{0});
    }
    if (updated > 0) {
      std::cerr << "simulate: warning: " << updated << " of the " << assets_.size()
                << " simulation assets were already in the daemon: an earlier run with --seed " << o_.seed
                << " left its feedback there, so this run does not start from zero (use a fresh data dir "
                   "or another --seed)\n";
    }
    upsert_created_ = created;
    upsert_updated_ = updated;
    return VerifyEligibility();
  }

  // The random and oracle arms choose among the assets eligible at a stage;
  // assets.list by stage says which those are for the daemon. They must be
  // the ones the simulation upserted.
  bool VerifyEligibility() {
    for (int s = 0; s < kStageCount; ++s) {
      std::set<int> listed;
      json cursor;
      do {
        json params = {{"stage", kStages[static_cast<std::size_t>(s)]}, {"limit", 1000}};
        if (cursor.is_string()) params["cursor"] = cursor;
        json r = CallOrFail("assets.list", params);
        if (r.is_null()) return false;
        for (const json& a : r.value("assets", json::array())) {
          auto it = index_.find(a.value("id", std::string()));
          if (it != index_.end()) listed.insert(it->second);
        }
        cursor = r.value("next_cursor", json());
      } while (cursor.is_string());
      const auto& mine = eligible_[static_cast<std::size_t>(s)];
      if (listed != std::set<int>(mine.begin(), mine.end())) {
        Violation("assets.list", "assets.list at stage " + kStages[static_cast<std::size_t>(s)] + " lists " +
                                     std::to_string(listed.size()) + " of the simulation's assets, " +
                                     std::to_string(mine.size()) + " were upserted with that stage");
      }
    }
    return true;
  }

  bool Flush() {
    if (pending_.empty()) return true;
    json events = json::array();
    for (const Pending& p : pending_) events.push_back(p.event);
    json r = CallOrFail("feedback.record", {{"events", events}});
    if (r.is_null()) return false;
    ++batches_;
    const int64_t accepted = r.value("accepted", int64_t{-1});
    const int64_t duplicates = r.value("duplicates", int64_t{-1});
    sent_ += static_cast<int64_t>(pending_.size());
    if (accepted >= 0) accepted_ += accepted;
    if (duplicates >= 0) duplicates_ += duplicates;
    if (accepted < 0 || duplicates < 0 || accepted + duplicates != static_cast<int64_t>(pending_.size())) {
      Violation("feedback.counts", "feedback.record of " + std::to_string(pending_.size()) + " events answered " +
                                       OneLine(r) + " (accepted + duplicates should be the number of events)");
    }
    // With duplicates (a rerun of a seed) it is unknown which events the
    // daemon took as new: nothing counts as acknowledged, exclude_ids is used.
    for (const Pending& p : pending_) {
      if (p.asset < 0 || duplicates != 0) continue;
      if (auto it = open_.find(p.lead_id); it != open_.end()) it->second->acknowledged.insert(p.asset);
    }
    pending_.clear();
    return true;
  }

  void Violation(const std::string& kind, const std::string& what) {
    if (violations_[kind]++ < 3) {
      progress_.Clear();
      std::cerr << "simulate: contract: " << what << "\n";
    }
  }

  // ---- Leads

  std::unique_ptr<Lead> NewLead(int arm, int64_t slot) {
    auto lead = std::make_unique<Lead>();
    lead->arm = arm;
    lead->slot = slot;
    lead->id = Prefix(o_.seed) + kArmNames[static_cast<std::size_t>(arm)] + "-" + std::to_string(slot + 1);
    lead->stage = Dice(o_.seed, "start", static_cast<uint64_t>(slot)) < 0.6 ? 0 : 1;
    open_[lead->id] = lead.get();
    // The CRM tells the daemon where the new lead enters the funnel, so that
    // what is used with it is counted at the right stage in every arm.
    json e = MakeEvent(*lead, "stage_changed");
    e["stage"] = kStages[static_cast<std::size_t>(lead->stage)];
    Send(*lead, std::move(e), -1);
    return lead;
  }

  // What lead `slot` is like: the same in every arm.
  int ObjectionOf(int64_t slot) const {
    return static_cast<int>(Dice(o_.seed, "objection", static_cast<uint64_t>(slot)) * kObjectionCount);
  }
  bool Chinese(int64_t slot) const { return Dice(o_.seed, "language", static_cast<uint64_t>(slot)) < 0.5; }
  int RepOf(int64_t slot) const {
    return static_cast<int>(Dice(o_.seed, "rep", static_cast<uint64_t>(slot)) * o_.reps);
  }
  std::string RepId(int rep) const { return Prefix(o_.seed) + "rep-" + std::to_string(rep + 1); }

  json MakeEvent(Lead& lead, const char* type) {
    json e = json::object();
    e["event_id"] = lead.id + "-" + std::to_string(++lead.events);
    e["type"] = type;
    e["lead_id"] = lead.id;
    e["rep_id"] = RepId(RepOf(lead.slot));
    e["ts"] = NextTs();
    return e;
  }

  // Milliseconds since the epoch, strictly increasing: the daemon orders a
  // lead's events by ts (a stage change credits what was used since the one
  // before), and the events of one lead must not share a millisecond.
  int64_t NextTs() {
    const int64_t now =
        std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
    last_ts_ = std::max(now, last_ts_ + 1);
    return last_ts_;
  }

  void Send(Lead& lead, json event, int asset) {
    if (!o_.learn_from[static_cast<std::size_t>(lead.arm)]) return;
    pending_.push_back({std::move(event), lead.id, asset});
  }

  // The ground-truth best help among `candidates` for this lead, and whether any.
  double BestHelp(const std::vector<int>& candidates, int stage, int objection) const {
    double best = -1e9;
    for (int a : candidates) best = std::max(best, assets_[static_cast<std::size_t>(a)].help[static_cast<std::size_t>(stage)][static_cast<std::size_t>(objection)]);
    return best;
  }
  double Help(int asset, int stage, int objection) const {
    return assets_[static_cast<std::size_t>(asset)].help[static_cast<std::size_t>(stage)][static_cast<std::size_t>(objection)];
  }

  // One stage of one lead: ask, pick, use, and the prospect's answer. False
  // when the simulation must stop.
  bool Step(Lead& lead) {
    LeadResult& res = results_[static_cast<std::size_t>(lead.arm)][static_cast<std::size_t>(lead.slot)];
    const auto slot = static_cast<uint64_t>(lead.slot);
    const auto stage = static_cast<uint64_t>(lead.stage);
    const int objection = ObjectionOf(lead.slot);
    const bool zh = Chinese(lead.slot);
    const Objection& obj = kObjections[static_cast<std::size_t>(objection)];
    ++res.steps;

    // What is still eligible for this lead at this stage.
    std::vector<int> eligible;
    for (int a : eligible_[stage]) {
      if (!lead.seen.count(a)) eligible.push_back(a);
    }
    const double best = BestHelp(eligible, lead.stage, objection);
    const bool follow = Dice(o_.seed, "follow", slot, stage) < o_.follow;
    const double u_pick = Dice(o_.seed, "pick", slot, stage);

    int chosen = -1;
    std::vector<int> shown;  // daemon arm: the items, best first
    std::string recommendation_id;
    if (lead.arm == kDaemon) {
      const auto phrase = static_cast<std::size_t>(Dice(o_.seed, "phrase", slot, stage) * 4);
      json lead_j = {{"id", lead.id},
                     {"stage", kStages[stage]},
                     {"context", zh ? obj.zh[phrase] : obj.en[phrase]},
                     {"attributes",
                      {{"industry", kIndustries[static_cast<std::size_t>(Dice(o_.seed, "industry", slot) * kIndustries.size())]},
                       {"size", kSizes[static_cast<std::size_t>(Dice(o_.seed, "size", slot) * kSizes.size())]},
                       {"language", zh ? "zh" : "en"}}}};
      json params = {{"lead", lead_j},
                     {"k", o_.k},
                     {"filter", {{"tags_any", json::array({SeedTag(o_.seed)})}}},
                     {"exclude_seen", true},
                     {"rep_id", RepId(RepOf(lead.slot))}};
      // What happened to this lead so far reaches the daemon before the rep
      // asks again, as it would from a CRM.
      if (std::any_of(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.lead_id == lead.id; }) &&
          !Flush()) {
        return false;
      }
      // Assets seen but not acknowledged (an arm whose feedback is not
      // recorded): the daemon cannot know them.
      json exclude = json::array();
      std::set<int> excluded;
      for (int a : lead.seen) {
        if (!lead.acknowledged.count(a)) {
          exclude.push_back(assets_[static_cast<std::size_t>(a)].id);
          excluded.insert(a);
        }
      }
      if (!exclude.empty()) params["exclude_ids"] = exclude;
      json r = CallOrFail("recommend", params);
      if (r.is_null()) return false;
      ++recommend_calls_;
      shown = CheckRecommendation(r, lead, excluded, &recommendation_id);
      if (o_.random_ranking) {
        // The null control: what recommend said does not matter; the rep
        // uses a random eligible asset, as in the random arm.
        shown.clear();
        recommendation_id.clear();
        if (follow && !eligible.empty()) {
          chosen = eligible[std::min(eligible.size() - 1, static_cast<std::size_t>(u_pick * static_cast<double>(eligible.size())))];
        }
      }
      if (!shown.empty()) {
        ++res.top1;
        if (Help(shown[0], lead.stage, objection) >= best - 1e-12) ++res.top1_best;
      }
      if (follow && !shown.empty()) {
        // Position bias: the first item is used most often.
        std::vector<double> w;
        double total = 0;
        for (std::size_t i = 0; i < shown.size(); ++i) total += w.emplace_back(1.0 / std::pow(static_cast<double>(i + 1), 1.3));
        double x = u_pick * total;
        for (std::size_t i = 0; i < shown.size(); ++i) {
          chosen = shown[i];
          if ((x -= w[i]) < 0) break;
        }
      }
    } else if (follow && !eligible.empty()) {
      if (lead.arm == kRandom) {
        chosen = eligible[std::min(eligible.size() - 1, static_cast<std::size_t>(u_pick * static_cast<double>(eligible.size())))];
      } else {
        for (int a : eligible) {
          if (chosen < 0 || Help(a, lead.stage, objection) > Help(chosen, lead.stage, objection)) chosen = a;
        }
      }
    }

    // The rep uses it; the prospect may open it.
    double help = 0;
    if (chosen >= 0) {
      const SimAsset& a = assets_[static_cast<std::size_t>(chosen)];
      help = Help(chosen, lead.stage, objection);
      ++res.used;
      res.help += help;
      if (help >= best - 1e-12) ++res.best_used;
      const UseKind kind = a.role == Role::kGeneric || a.objection < 0 ? kGenericUse
                           : a.objection != objection                   ? kOffTopic
                           : a.role == Role::kGreat                     ? kOnGreat
                           : a.role == Role::kGood                      ? kOnGood
                           : a.role == Role::kHarmful                   ? kOnHarmful
                                                                        : kOnMediocre;
      ++res.used_kind[kind];
      lead.seen.insert(chosen);
      json used = MakeEvent(lead, "used");
      used["asset_id"] = a.id;
      if (!recommendation_id.empty()) used["recommendation_id"] = recommendation_id;
      Send(lead, std::move(used), chosen);
      if (Dice(o_.seed, "view", slot, stage) < a.view_probability) {
        json viewed = MakeEvent(lead, "viewed");
        viewed["asset_id"] = a.id;
        if (!recommendation_id.empty()) viewed["recommendation_id"] = recommendation_id;
        Send(lead, std::move(viewed), chosen);
      }
    }
    // Recommendations the rep passes over are sometimes dismissed: off-topic
    // ones as "not relevant", on-topic ones because the prospect has them.
    for (std::size_t i = 0; i < shown.size(); ++i) {
      const int a = shown[i];
      if (a == chosen) continue;
      const SimAsset& asset = assets_[static_cast<std::size_t>(a)];
      const bool on_topic = asset.objection == objection;
      const double p = !follow && i == 0 ? 0.5 : on_topic ? 0.03 : 0.2;
      if (Dice(o_.seed, "dismiss", slot, stage, i) >= p) continue;
      lead.seen.insert(a);
      json d = MakeEvent(lead, "dismissed");
      d["asset_id"] = asset.id;
      if (!recommendation_id.empty()) d["recommendation_id"] = recommendation_id;
      d["reason"] = on_topic ? (zh ? "客户已经看过" : "prospect already has it") : (zh ? "不相关" : "not relevant");
      Send(lead, std::move(d), a);
    }

    // The prospect moves on, or the deal is lost.
    const double p = Sigmoid(kBaseLogit[stage] + rep_skill_[static_cast<std::size_t>(RepOf(lead.slot))] + help);
    const bool advance = Dice(o_.seed, "advance", slot, stage) < p;
    if (lead.stage + 1 < kStageCount) {
      if (advance) {
        ++lead.stage;
        ++res.advanced;
        json e = MakeEvent(lead, "stage_changed");
        e["stage"] = kStages[static_cast<std::size_t>(lead.stage)];
        Send(lead, std::move(e), -1);
      } else {
        res.closed = true;
        Send(lead, MakeEvent(lead, "lost"), -1);
      }
    } else {
      res.closed = true;
      res.won = advance;
      json e = MakeEvent(lead, advance ? "won" : "lost");
      if (advance) {
        // Deal values from 10k to 200k, log-uniform.
        e["amount"] = std::round(10000 * std::pow(20.0, Dice(o_.seed, "amount", slot)));
      }
      Send(lead, std::move(e), -1);
    }
    return true;
  }

  // Checks a recommend result against the contract; returns the catalog
  // indexes of its items, best first (items outside the catalog left out).
  std::vector<int> CheckRecommendation(const json& r, const Lead& lead, const std::set<int>& excluded,
                                       std::string* recommendation_id) {
    std::vector<int> out;
    if (!r.is_object() || !r.contains("recommendation_id") || !r["recommendation_id"].is_string() ||
        r["recommendation_id"].get<std::string>().empty()) {
      Violation("recommend.id", "recommend answered without a recommendation_id: " + OneLine(r));
    } else {
      *recommendation_id = r["recommendation_id"].get<std::string>();
    }
    if (!r.is_object() || !r.contains("items") || !r["items"].is_array()) {
      Violation("recommend.items", "recommend answered without items: " + OneLine(r));
      return out;
    }
    const json& items = r["items"];
    if (items.size() > static_cast<std::size_t>(o_.k)) {
      Violation("recommend.k", "recommend returned " + std::to_string(items.size()) + " items for k " + std::to_string(o_.k));
    }
    double last = INFINITY;
    std::set<int> got;
    for (const json& it : items) {
      if (!it.is_object() || !it.contains("asset_id") || !it["asset_id"].is_string() || !it.contains("score") ||
          !it["score"].is_number() || !it.contains("title") || !it.contains("type") || !it.contains("url") ||
          !it.contains("reasons") || !it["reasons"].is_array()) {
        Violation("recommend.item", "recommend item without asset_id/title/type/url/score/reasons: " + OneLine(it));
        continue;
      }
      const double score = it["score"].get<double>();
      if (score > last + 1e-9) ++score_inversions_;  // the contract orders items, not scores: a note
      last = score;
      auto f = index_.find(it["asset_id"].get<std::string>());
      if (f == index_.end()) {
        Violation("recommend.filter", "recommend returned " + it["asset_id"].get<std::string>() +
                                          ", outside filter.tags_any [" + SeedTag(o_.seed) + "]");
        continue;
      }
      const int a = f->second;
      if (!got.insert(a).second) {
        Violation("recommend.duplicate", "recommend returned " + assets_[static_cast<std::size_t>(a)].id + " twice");
        continue;
      }
      if (!assets_[static_cast<std::size_t>(a)].eligible[static_cast<std::size_t>(lead.stage)]) {
        Violation("recommend.stage", "recommend returned " + assets_[static_cast<std::size_t>(a)].id + " (stages " +
                                         StageList(assets_[static_cast<std::size_t>(a)]) + ") for stage " +
                                         kStages[static_cast<std::size_t>(lead.stage)]);
      }
      if (excluded.count(a)) {
        Violation("recommend.exclude_ids", "recommend returned " + assets_[static_cast<std::size_t>(a)].id +
                                               ", which was in exclude_ids");
      } else if (lead.acknowledged.count(a)) {
        Violation("recommend.exclude_seen", "recommend returned " + assets_[static_cast<std::size_t>(a)].id +
                                                " to lead " + lead.id +
                                                " although feedback.record had acknowledged it as used/viewed/dismissed "
                                                "for that lead (exclude_seen true)");
      }
      out.push_back(a);
    }
    return out;
  }

  void Closed(const Lead& lead) {
    open_.erase(lead.id);
    ++closed_;
    auto& w = window_closed_[static_cast<std::size_t>(lead.slot / report_every_)];
    ++w[static_cast<std::size_t>(lead.arm)];
    // Print the rows of windows every arm has finished, in order.
    while (next_row_ < static_cast<int64_t>(window_closed_.size())) {
      const int64_t from = next_row_ * report_every_;
      const int64_t to = std::min(o_.leads, from + report_every_);
      const auto& c = window_closed_[static_cast<std::size_t>(next_row_)];
      if (c[0] < to - from || c[1] < to - from || c[2] < to - from) break;
      json row = {{"leads", json::array({from + 1, to})}};
      std::array<Totals, kArmCount> t{};
      for (int arm = 0; arm < kArmCount; ++arm) {
        for (int64_t s = from; s < to; ++s) t[static_cast<std::size_t>(arm)].Add(results_[static_cast<std::size_t>(arm)][static_cast<std::size_t>(s)]);
        row[kArmNames[static_cast<std::size_t>(arm)]] = {{"win_rate", t[static_cast<std::size_t>(arm)].WinRate()},
                                                        {"mean_help", t[static_cast<std::size_t>(arm)].MeanHelp()}};
      }
      row["daemon"]["top1_best"] = t[kDaemon].Top1Best();
      rows_.push_back(row);
      if (!o_.json_output) {
        progress_.Clear();
        std::cout << "  " << Pad(std::to_string(from + 1) + "-" + std::to_string(to), 13)
                  << Pad(Fixed(t[kDaemon].WinRate(), 3), 9, true) << Pad(Fixed(t[kRandom].WinRate(), 3), 9, true)
                  << Pad(Fixed(t[kOracle].WinRate(), 3), 9, true) << Pad(Pct(t[kDaemon].Top1Best()), 13, true)
                  << Pad(Signed(t[kDaemon].MeanHelp()), 13, true) << std::endl;
      }
      ++next_row_;
    }
  }

  void ShowProgress(bool force) {
    const double total = static_cast<double>(o_.leads) * kArmCount;
    const double f = static_cast<double>(closed_) / total;
    const double elapsed = SecondsSince(start_);
    progress_.Update(f, std::to_string(closed_) + "/" + std::to_string(static_cast<int64_t>(total)) + " leads closed",
                     -1, f > 0.01 ? elapsed * (1 - f) / f : -1, force);
  }

  // ---- Output

  std::string LearnFromList() const {
    std::string s;
    for (int arm = 0; arm < kArmCount; ++arm) {
      if (!o_.learn_from[static_cast<std::size_t>(arm)]) continue;
      s += (s.empty() ? "" : ", ") + std::string(kArmNames[static_cast<std::size_t>(arm)]);
    }
    return s.empty() ? "none" : s;
  }

  std::string CatalogLine() const {
    std::map<std::string, int> roles;
    for (const SimAsset& a : assets_) ++roles[RoleName(a.role)];
    std::string s = std::to_string(assets_.size()) + (synthetic_ ? " synthetic assets" : " assets from " + o_.catalog) +
                    " (" + Prefix(o_.seed) + "*, tag " + SeedTag(o_.seed) + "): ";
    bool first = true;
    for (const char* r : {"great", "good", "mediocre", "harmful", "generic"}) {
      if (!roles.count(r)) continue;
      s += (first ? "" : ", ") + std::to_string(roles[r]) + " " + r;
      first = false;
    }
    return s;
  }

  void PrintHeader() {
    std::cout << "simulate: seed " << o_.seed << ", " << o_.leads << " leads per arm (daemon, random, oracle; the "
              << "same prospects in each), " << o_.reps << " reps, follow " << Fixed(o_.follow, 2) << ", k " << o_.k
              << "\nfeedback recorded from: " << LearnFromList() << "\ncatalog: " << CatalogLine() << "\n"
              << (o_.holdout >= 0 ? std::string("experiment: the daemon's holdout at ") + Fixed(o_.holdout, 2) +
                                        " (its daemon-arm leads split into treatment and holdout)\n"
                                  : std::string())
              << (o_.random_ranking ? "random ranking: the daemon arm's reps use a random eligible asset (null control)\n"
                                    : "")
              << "\n"
              << "  " << Pad("leads", 13) << Pad("daemon", 9, true) << Pad("random", 9, true) << Pad("oracle", 9, true)
              << Pad("top-1 best", 13, true) << Pad("daemon help", 13, true) << "\n"
              << "  " << Pad("", 13) << Pad("win rate", 27, true) << Pad("(daemon)", 13, true)
              << Pad("(mean)", 13, true) << std::endl;
  }

  Totals ArmTotals(int arm, int64_t from, int64_t to) const {
    Totals t;
    for (int64_t s = from; s < to; ++s) t.Add(results_[static_cast<std::size_t>(arm)][static_cast<std::size_t>(s)]);
    return t;
  }
  int64_t Quarter() const { return std::max<int64_t>(1, o_.leads / 4); }

  // Learning, measured against the other arms on the same prospects: the
  // daemon's position between random (0) and oracle (1), first and last quarter.
  struct Learning {
    std::array<double, 2> win_gap{}, help_gap{}, top1{};
  };
  Learning LearningOf() const {
    const int64_t q = Quarter();
    Learning l;
    for (int i = 0; i < 2; ++i) {
      const int64_t from = i == 0 ? 0 : o_.leads - q, to = i == 0 ? q : o_.leads;
      const Totals d = ArmTotals(kDaemon, from, to), r = ArmTotals(kRandom, from, to), o = ArmTotals(kOracle, from, to);
      auto gap = [](double dv, double rv, double ov) {
        return std::abs(ov - rv) < 1e-9 ? std::numeric_limits<double>::quiet_NaN() : (dv - rv) / (ov - rv);
      };
      l.win_gap[static_cast<std::size_t>(i)] = gap(d.WinRate(), r.WinRate(), o.WinRate());
      l.help_gap[static_cast<std::size_t>(i)] = gap(d.MeanHelp(), r.MeanHelp(), o.MeanHelp());
      l.top1[static_cast<std::size_t>(i)] = d.Top1Best();
    }
    return l;
  }

  void PrintSummary() {
    const int64_t q = Quarter();
    std::cout << "\n"
              << Pad("arm", 8) << Pad("leads", 7, true) << Pad("won", 7, true) << Pad("win rate", 10, true)
              << Pad("95% CI", 16, true) << Pad("avg stages", 12, true) << Pad("used", 7, true)
              << Pad("mean help", 11, true) << Pad("best pick", 11, true) << "\n";
    for (int arm = 0; arm < kArmCount; ++arm) {
      const Totals t = ArmTotals(arm, 0, o_.leads);
      std::cout << Pad(kArmNames[static_cast<std::size_t>(arm)], 8) << Pad(std::to_string(t.closed), 7, true)
                << Pad(std::to_string(t.won), 7, true) << Pad(Fixed(t.WinRate(), 3), 10, true)
                << Pad(Fixed(std::max(0.0, t.WinRate() - t.Ci95()), 3) + "-" + Fixed(std::min(1.0, t.WinRate() + t.Ci95()), 3), 16, true)
                << Pad(Fixed(t.AvgAdvanced(), 2), 12, true) << Pad(Pct(t.UsedShare()), 7, true)
                << Pad(Signed(t.MeanHelp()), 11, true) << Pad(Pct(t.BestPick()), 11, true) << "\n";
    }
    std::cout << "\nwhat the reps used, by its hidden truth for the lead (share of content used)\n" << Pad("arm", 8);
    for (const char* k : kUseKindNames) std::cout << Pad(k, 11, true);
    std::cout << "\n";
    for (int arm = 0; arm < kArmCount; ++arm) {
      const Totals t = ArmTotals(arm, 0, o_.leads);
      std::cout << Pad(kArmNames[static_cast<std::size_t>(arm)], 8);
      for (int64_t n : t.used_kind) {
        std::cout << Pad(Pct(t.used ? static_cast<double>(n) / static_cast<double>(t.used) : 0), 11, true);
      }
      std::cout << "\n";
    }
    const std::string first = "leads 1-" + std::to_string(q);
    const std::string last = "leads " + std::to_string(o_.leads - q + 1) + "-" + std::to_string(o_.leads);
    std::cout << "\nlearning: the first and last quarter of each arm's leads (the same prospects in every arm)\n"
              << Pad("", 8) << Pad("win rate", 34, true) << Pad("mean help of content used", 34, true) << "\n"
              << Pad("arm", 8) << Pad(first, 17, true) << Pad(last, 17, true) << Pad(first, 17, true)
              << Pad(last, 17, true) << "\n";
    for (int arm = 0; arm < kArmCount; ++arm) {
      const Totals a = ArmTotals(arm, 0, q), b = ArmTotals(arm, o_.leads - q, o_.leads);
      std::cout << Pad(kArmNames[static_cast<std::size_t>(arm)], 8) << Pad(Fixed(a.WinRate(), 3), 17, true)
                << Pad(Fixed(b.WinRate(), 3), 17, true) << Pad(Signed(a.MeanHelp()), 17, true)
                << Pad(Signed(b.MeanHelp()), 17, true) << "\n";
    }
    const Learning l = LearningOf();
    auto share = [](double v) { return std::isfinite(v) ? Pct(v) : std::string("n/a"); };
    std::cout << "daemon's share of the oracle's lead over random (0% = random, 100% = oracle): win rate "
              << share(l.win_gap[0]) << " -> " << share(l.win_gap[1]) << ", mean help " << share(l.help_gap[0])
              << " -> " << share(l.help_gap[1]) << "\n"
              << "daemon ranking: its first item was the truly best eligible asset in " << Pct(l.top1[0])
              << " of recommend calls in the first quarter, " << Pct(l.top1[1]) << " in the last\n\n";
    if (experiment_.is_object()) PrintExperiment();
    std::cout << "feedback: " << sent_ << " events in " << batches_ << " feedback.record calls (" << accepted_
              << " accepted, " << duplicates_ << " duplicates); " << recommend_calls_ << " recommend calls; "
              << Fixed(SecondsSince(start_), 1) << " s\n";
    if (score_inversions_ > 0) {
      std::cout << "note: " << score_inversions_ << " recommend items carried a higher score than the item "
                << "before them (the items are in the daemon's order; their scores are not sorted)\n";
    }
    if (violations_.empty()) {
      std::cout << "contract checks: ok\n";
    } else {
      std::cout << "contract checks: FAILED:";
      for (const auto& [k, n] : violations_) std::cout << " " << k << " x" << n;
      std::cout << "\n";
    }
    std::cout << std::flush;
  }

  // reports.experiment at the end of the run: the measured lift.
  void PrintExperiment() const {
    const json& e = experiment_;
    auto at = [](const json& j, const char* k) { return j.is_object() && j.contains(k) ? j[k] : json(); };
    auto pct = [](const json& v) { return v.is_number() ? Fixed(100 * v.get<double>(), 1) + "%" : std::string("-"); };
    auto pts = [](const json& v) {
      if (!v.is_number()) return std::string("-");
      std::string out = v.get<double>() >= 0 ? "+" : "";
      out += Fixed(100 * v.get<double>(), 1);
      return out;
    };
    std::cout << "experiment (reports.experiment over this run, holdout_fraction " << Fixed(o_.holdout, 2) << ")\n"
              << Pad("arm", 11) << Pad("leads", 7, true) << Pad("closed", 8, true) << Pad("won", 7, true)
              << Pad("win rate", 10, true) << Pad("95% CI", 18, true) << "\n";
    for (const char* arm : {"treatment", "holdout"}) {
      const json a = at(at(e, "arms"), arm);
      const json ci = at(a, "win_rate_ci");
      std::cout << Pad(arm, 11) << Pad(at(a, "leads").dump(), 7, true) << Pad(at(a, "closed").dump(), 8, true)
                << Pad(at(a, "won").dump(), 7, true) << Pad(pct(at(a, "win_rate")), 10, true)
                << Pad(ci.is_array() ? pct(ci[0]) + " .. " + pct(ci[1]) : "-", 18, true) << "\n";
    }
    const json d = at(e, "difference"), ci = at(d, "ci");
    std::cout << "lift (treatment - holdout): " << pts(at(d, "win_rate")) << " points, 95% CI "
              << (ci.is_array() ? pts(ci[0]) + " .. " + pts(ci[1]) : "-") << ", p = "
              << (at(d, "p_value").is_number() ? Fixed(at(d, "p_value").get<double>(), 4) : "-")
              << (at(e, "conclusive") == json(true) ? ", conclusive" : ", not conclusive") << "\n"
              << at(e, "note").get<std::string>() << "\n\n";
  }

  static json UsedByTruth(const Totals& t) {
    json j = json::object();
    for (std::size_t i = 0; i < kUseKindNames.size(); ++i) j[kUseKindNames[i]] = t.used_kind[i];
    return j;
  }

  json LearningJson() const {
    const Learning l = LearningOf();
    auto num = [](double v) { return std::isfinite(v) ? json(v) : json(); };
    json j = json::object();
    for (int i = 0; i < 2; ++i) {
      j[i == 0 ? "first_quarter" : "last_quarter"] = {
          {"daemon_share_of_oracle_lead_win_rate", num(l.win_gap[static_cast<std::size_t>(i)])},
          {"daemon_share_of_oracle_lead_mean_help", num(l.help_gap[static_cast<std::size_t>(i)])},
          {"daemon_top1_best_rate", l.top1[static_cast<std::size_t>(i)]}};
    }
    return j;
  }

  json PrintJson() const {
    const int64_t q = Quarter();
    json arms = json::array();
    for (int arm = 0; arm < kArmCount; ++arm) {
      const Totals t = ArmTotals(arm, 0, o_.leads);
      const Totals a = ArmTotals(arm, 0, q), b = ArmTotals(arm, o_.leads - q, o_.leads);
      json j = {{"arm", kArmNames[static_cast<std::size_t>(arm)]},
                {"leads", o_.leads},
                {"closed", t.closed},
                {"won", t.won},
                {"win_rate", t.WinRate()},
                {"win_rate_ci95", t.Ci95()},
                {"avg_stages_advanced", t.AvgAdvanced()},
                {"steps", t.steps},
                {"used", t.used},
                {"mean_help", t.MeanHelp()},
                {"best_pick_rate", t.BestPick()},
                {"used_by_truth", UsedByTruth(t)},
                {"first_quarter", {{"leads", json::array({1, q})}, {"win_rate", a.WinRate()}, {"mean_help", a.MeanHelp()}}},
                {"last_quarter",
                 {{"leads", json::array({o_.leads - q + 1, o_.leads})}, {"win_rate", b.WinRate()}, {"mean_help", b.MeanHelp()}}}};
      if (arm == kDaemon) {
        j["recommend_calls"] = recommend_calls_;
        j["top1_best_rate"] = t.Top1Best();
        j["first_quarter"]["top1_best_rate"] = a.Top1Best();
        j["last_quarter"]["top1_best_rate"] = b.Top1Best();
      }
      arms.push_back(std::move(j));
    }
    std::map<std::string, int> roles;
    for (const SimAsset& a : assets_) ++roles[RoleName(a.role)];
    json learn = json::array();
    for (int arm = 0; arm < kArmCount; ++arm) {
      if (o_.learn_from[static_cast<std::size_t>(arm)]) learn.push_back(kArmNames[static_cast<std::size_t>(arm)]);
    }
    json notes = json::object();
    notes["score_inversions"] = score_inversions_;
    json v = json::object();
    for (const auto& [k, n] : violations_) v[k] = n;
    return {{"seed", o_.seed},
            {"leads_per_arm", o_.leads},
            {"reps", o_.reps},
            {"follow", o_.follow},
            {"k", o_.k},
            {"learn_from", learn},
            {"catalog",
             {{"source", synthetic_ ? "synthetic" : o_.catalog},
              {"assets", assets_.size()},
              {"prefix", Prefix(o_.seed)},
              {"tag", SeedTag(o_.seed)},
              {"roles", roles},
              {"created", upsert_created_},
              {"updated", upsert_updated_}}},
            {"arms", arms},
            {"learning", LearningJson()},
            {"rows", rows_},
            {"feedback", {{"events", sent_}, {"batches", batches_}, {"accepted", accepted_}, {"duplicates", duplicates_}}},
            {"contract", {{"ok", violations_.empty()}, {"violations", v}, {"notes", notes}}},
            {"holdout", o_.holdout >= 0 ? json(o_.holdout) : json()},
            {"random_ranking", o_.random_ranking},
            {"experiment", experiment_},
            {"elapsed_s", SecondsSince(start_)}};
  }

  Options o_;
  RpcConnection& rpc_;
  std::vector<SimAsset> assets_;
  bool synthetic_;
  ProgressDisplay progress_;
  std::unordered_map<std::string, int> index_;
  std::array<std::vector<int>, kStageCount> eligible_;
  std::vector<double> rep_skill_;
  std::array<std::vector<LeadResult>, kArmCount> results_;
  std::unordered_map<std::string, Lead*> open_;
  std::vector<Pending> pending_;
  int64_t report_every_ = 1;
  std::vector<std::array<int64_t, kArmCount>> window_closed_;
  int64_t next_row_ = 0;
  json rows_ = json::array();
  int64_t closed_ = 0, sent_ = 0, batches_ = 0, accepted_ = 0, duplicates_ = 0, recommend_calls_ = 0;
  int64_t upsert_created_ = 0, upsert_updated_ = 0;
  int64_t last_ts_ = 0;
  int64_t start_ms_ = 0;
  json experiment_;  // reports.experiment at the end, with --holdout
  std::map<std::string, int64_t> violations_;
  int64_t score_inversions_ = 0;  // items whose score is above the score of the item before
  int fatal_ = 0;
  Clock::time_point start_;
};

}  // namespace

int RunSimulate(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args,
                           {"--url", "--token", "--timeout", "--leads", "--seed", "--reps", "--follow", "--k",
                            "--report-every", "--rounds", "--catalog", "--batch", "--format", "--learn-from",
                            "--holdout"},
                           {"--help", "-h", "--no-progress", "--random-ranking"}, parsed)) {
    return UsageError("simulate: " + *err);
  }
  Options o;
  o.conn = DefaultConnectionOptions();
  for (const auto& option : parsed.options) {
    // Named references, not a structured binding: clang 14 cannot capture those in a lambda.
    const std::string& name = option.first;
    const std::string& value = option.second;
    auto integer = [&](int64_t min, int64_t max, int64_t& out) -> std::optional<std::string> {
      auto n = ParseInt(value, min, max);
      if (!n) return name + ": '" + value + "' is not a number in " + std::to_string(min) + ".." + std::to_string(max);
      out = *n;
      return std::nullopt;
    };
    std::optional<std::string> err;
    int64_t n = 0;
    if (name == "--help" || name == "-h") {
      PrintSimulateUsage(std::cout);
      return kExitOk;
    } else if (name == "--leads") {
      err = integer(1, 200000, o.leads);
    } else if (name == "--seed") {
      if (!(err = integer(0, int64_t{1} << 53, n))) o.seed = static_cast<uint64_t>(n);
    } else if (name == "--reps") {
      if (!(err = integer(1, 10000, n))) o.reps = static_cast<int>(n);
    } else if (name == "--k") {
      if (!(err = integer(1, 100, n))) o.k = static_cast<int>(n);
    } else if (name == "--batch") {
      if (!(err = integer(1, 1000, n))) o.batch = static_cast<int>(n);
    } else if (name == "--report-every") {
      err = integer(1, 1000000, o.report_every);
    } else if (name == "--rounds") {
      err = integer(1, 10000, o.rounds);
    } else if (name == "--follow") {
      auto p = ParseDouble(value, 0, 1);
      if (!p) err = "--follow: '" + value + "' is not a probability in 0..1";
      else o.follow = *p;
    } else if (name == "--catalog") {
      o.catalog = value;
    } else if (name == "--format") {
      if (value != "table" && value != "json") err = "--format: '" + value + "' is not table or json";
      o.json_output = value == "json";
    } else if (name == "--learn-from") {
      o.learn_from = {false, false, false};
      std::size_t pos = 0;
      while (pos <= value.size() && !err) {
        const std::size_t comma = std::min(value.find(',', pos), value.size());
        const std::string arm = value.substr(pos, comma - pos);
        auto it = std::find(kArmNames.begin(), kArmNames.end(), arm);
        if (arm == "none" && value == "none") {
        } else if (it == kArmNames.end()) {
          err = "--learn-from: '" + arm + "' is not daemon, random, oracle (or none)";
        } else {
          o.learn_from[static_cast<std::size_t>(it - kArmNames.begin())] = true;
        }
        pos = comma + 1;
      }
    } else if (name == "--holdout") {
      auto f = ParseDouble(value, 0.01, 0.5);
      if (!f) err = "--holdout: '" + value + "' is not a fraction in 0.01..0.5";
      else o.holdout = *f;
    } else if (name == "--random-ranking") {
      o.random_ranking = true;
    } else if (name == "--no-progress") {
      o.progress = false;
    } else {
      err = ApplyConnectionOption(name, value, o.conn);
    }
    if (err) return UsageError("simulate: " + *err);
  }
  if (!parsed.positional.empty()) return UsageError("simulate: takes no arguments");

  std::vector<SimAsset> catalog;
  if (o.catalog.empty()) {
    catalog = SyntheticCatalog(o.seed);
  } else if (!CatalogFromFile(o.catalog, o.seed, catalog)) {
    return kExitUsage;
  }
  RpcConnection rpc(o.conn);
  if (!rpc.Connect()) return kExitConnection;
  const bool synthetic = o.catalog.empty();
  Simulation sim(std::move(o), rpc, std::move(catalog), synthetic);
  const int status = sim.Run();
  rpc.Close();
  return status;
}

}  // namespace playbook::cli

// The holdout experiment: assignment, and reports.experiment's statistics
// over the experiment's aggregates (derived.h, ExperimentField).
#include "experiment.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "engine_impl.h"
#include "feedback.h"

namespace playbook {
namespace {

constexpr double kZ95 = 1.959963984540054;  // two-sided 95%
constexpr double kZ80 = 0.8416212335729143;  // one-sided 80% (power)
// The normal approximations need this many won and lost leads in each arm.
constexpr uint64_t kMinEach = 5;

uint64_t Mix(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Mean and 95% interval (normal approximation) from n, the sum and the sum of squares.
void MeanWithInterval(double n, double sum, double sum_sq, std::optional<double>* mean, std::optional<Interval>* ci,
                      double* variance_of_mean) {
  *variance_of_mean = -1;
  if (n <= 0) return;
  const double m = sum / n;
  *mean = m;
  if (n < 2) return;
  const double var = std::max(0.0, (sum_sq - n * m * m) / (n - 1));
  *variance_of_mean = var / n;
  const double half = kZ95 * std::sqrt(var / n);
  *ci = Interval{m - half, m + half};
}

std::string Format(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, a, b, c, d);
  return buf;
}

}  // namespace

double AssignmentPoint(const std::string& lead_id, const std::string& salt) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  auto eat = [&h](unsigned char ch) { h = (h ^ ch) * 0x100000001b3ull; };
  for (char ch : salt) eat(static_cast<unsigned char>(ch));
  eat(0);
  for (char ch : lead_id) eat(static_cast<unsigned char>(ch));
  return double(Mix(h) >> 11) * 0x1.0p-53;
}

Arm AssignArm(const std::string& lead_id, const ExperimentOptions& options) {
  if (!(options.holdout_fraction > 0)) return Arm::kNone;
  return AssignmentPoint(lead_id, options.salt) < options.holdout_fraction ? Arm::kHoldout : Arm::kTreatment;
}

Interval WilsonInterval(uint64_t k, uint64_t n) {
  const double nn = double(n), p = double(k) / nn, z2 = kZ95 * kZ95;
  const double denom = 1 + z2 / nn;
  const double center = (p + z2 / (2 * nn)) / denom;
  const double half = kZ95 * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
  return Interval{std::max(0.0, center - half), std::min(1.0, center + half)};
}

namespace {

// One arm's rates and intervals; *revenue_var: the variance of its revenue
// per closed lead's mean (-1: fewer than 2 closed leads).
ExperimentArm Summarise(const ExperimentCounts& c, double* revenue_var) {
  ExperimentArm a;
  a.leads = c.leads;
  a.won = c.won;
  a.lost = c.lost;
  a.closed = c.won + c.lost;
  *revenue_var = -1;
  if (a.closed == 0) return a;
  a.win_rate = double(a.won) / double(a.closed);
  a.win_rate_ci = WilsonInterval(a.won, a.closed);
  double unused = 0;
  MeanWithInterval(double(a.closed), c.won_amount, c.won_amount_sq, &a.revenue_per_closed_lead,
                   &a.revenue_per_closed_lead_ci, revenue_var);
  MeanWithInterval(double(a.closed), c.days_to_close, c.days_to_close_sq, &a.mean_days_to_close,
                   &a.mean_days_to_close_ci, &unused);
  return a;
}

}  // namespace

ExperimentComparison CompareArms(const ExperimentCounts& t, const ExperimentCounts& h) {
  ExperimentComparison out;
  double revenue_var[2];
  out.treatment = Summarise(t, &revenue_var[0]);
  out.holdout = Summarise(h, &revenue_var[1]);
  const ExperimentArm& T = out.treatment;
  const ExperimentArm& H = out.holdout;
  if (T.closed == 0 || H.closed == 0) {
    if (T.leads + H.leads == 0) {
      out.note = "no lead was assigned to the experiment in this window (is experiment.holdout_fraction above 0?)";
    } else if (H.leads == 0 || T.leads == 0) {
      out.note = std::string("too small to conclude: no lead in the ") + (H.leads == 0 ? "holdout" : "treatment") +
                 " arm yet";
    } else {
      out.note = std::string("too small to conclude: no closed lead in the ") +
                 (T.closed == 0 && H.closed == 0 ? "treatment or holdout arm" : T.closed == 0 ? "treatment arm" : "holdout arm") +
                 " yet";
    }
    return out;
  }
  const double p1 = *T.win_rate, p2 = *H.win_rate, n1 = double(T.closed), n2 = double(H.closed);
  const double d = p1 - p2;
  out.difference = d;
  // Newcombe (1998), method 10: the hybrid score interval from each arm's Wilson limits.
  const Interval w1 = *T.win_rate_ci, w2 = *H.win_rate_ci;
  out.difference_ci = Interval{d - std::sqrt((p1 - w1.lo) * (p1 - w1.lo) + (w2.hi - p2) * (w2.hi - p2)),
                               d + std::sqrt((w1.hi - p1) * (w1.hi - p1) + (p2 - w2.lo) * (p2 - w2.lo))};
  // Two-sided pooled two-proportion z-test.
  const double pooled = (double(T.won) + double(H.won)) / (n1 + n2);
  const double se0 = std::sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  out.p_value = se0 > 0 ? std::erfc(std::fabs(d) / se0 / std::sqrt(2.0)) : 1.0;
  if (T.revenue_per_closed_lead && H.revenue_per_closed_lead) {
    out.revenue_difference = *T.revenue_per_closed_lead - *H.revenue_per_closed_lead;
    if (revenue_var[0] >= 0 && revenue_var[1] >= 0) {
      const double half = kZ95 * std::sqrt(revenue_var[0] + revenue_var[1]);
      out.revenue_difference_ci = Interval{*out.revenue_difference - half, *out.revenue_difference + half};
    }
  }
  const bool enough = T.won >= kMinEach && T.lost >= kMinEach && H.won >= kMinEach && H.lost >= kMinEach;
  const bool excludes0 = out.difference_ci->lo > 0 || out.difference_ci->hi < 0;
  out.conclusive = enough && excludes0 && *out.p_value < 0.05;
  if (out.conclusive) {
    out.closed_leads_needed = 0;
  } else if (d != 0) {
    // Per arm at the current split (r = treatment : holdout closed leads), for
    // 80% power at the 5% level at the observed rates; and at least enough
    // for kMinEach won and lost at each arm's rate.
    const double r = n1 / n2, pbar = (r * p1 + p2) / (r + 1);
    const double root = kZ95 * std::sqrt(pbar * (1 - pbar) * (1 + 1 / r)) +
                        kZ80 * std::sqrt(p1 * (1 - p1) / r + p2 * (1 - p2));
    double need_h = root * root / (d * d), need_t = r * need_h;
    // The rate projected for the minimum is smoothed (won + 1) / (closed + 2):
    // an arm that has won every lead so far will still lose some.
    auto at_least = [](double need, const ExperimentArm& a) {
      const double p = (double(a.won) + 1) / (double(a.closed) + 2);
      return std::max(need, double(kMinEach) / std::min(p, 1 - p));
    };
    need_t = at_least(need_t, T);
    need_h = at_least(need_h, H);
    const double more = std::max(0.0, std::ceil(need_t - 1e-9) - n1) + std::max(0.0, std::ceil(need_h - 1e-9) - n2);
    out.closed_leads_needed = std::max<uint64_t>(1, uint64_t(more));
  }
  const double pts = 100 * d, lo = 100 * out.difference_ci->lo, hi = 100 * out.difference_ci->hi;
  if (out.conclusive) {
    out.note = Format(d > 0 ? "the recommendations win more deals: %+.1f points of win rate (95%% CI %+.1f to %+.1f, p = %.2g)"
                            : "the holdout wins more deals: %+.1f points of win rate (95%% CI %+.1f to %+.1f, p = %.2g)",
                      pts, lo, hi, *out.p_value);
  } else if (!enough) {
    out.note = Format("too small to conclude: each arm needs at least 5 won and 5 lost leads (treatment %.0f won, %.0f lost; "
                      "holdout %.0f won, %.0f lost)",
                      double(T.won), double(T.lost), double(H.won), double(H.lost));
  } else {
    out.note = Format("no significant difference yet: %+.1f points of win rate, but the 95%% CI (%+.1f to %+.1f) contains 0 "
                      "(p = %.2g)",
                      pts, lo, hi, *out.p_value);
  }
  if (!out.conclusive && out.closed_leads_needed) {
    const std::string more = std::to_string(*out.closed_leads_needed);
    // Far beyond what the experiment has: the difference is too small to matter.
    if (double(*out.closed_leads_needed) > std::max(10000.0, 100 * (n1 + n2))) {
      out.note += "; a difference this small would take about " + more +
                  " more closed leads to settle (80% power): there may be none worth measuring";
    } else {
      out.note += "; about " + more + " more closed leads would settle a difference this large (80% power)";
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

namespace {

ExperimentCounts& operator+=(ExperimentCounts& a, const Counters& c) {
  a.leads += uint64_t(c[kExpLeads]);
  a.won += uint64_t(c[kExpWon]);
  a.lost += uint64_t(c[kExpLost]);
  a.won_amount += double(c[kExpCents]) / 100.0;
  a.won_amount_sq += double(c[kExpAmountSq]);
  a.days_to_close += double(c[kExpMinutes]) / 1440.0;
  a.days_to_close_sq += double(c[kExpMinutesSq]) / (1440.0 * 1440.0);
  return a;
}

}  // namespace

Result<ExperimentReport> EngineImpl::ReportExperiment(const ExperimentQuery& q) {
  if (q.by != "" && q.by != "stage" && q.by != "rep") {
    return Status::InvalidArgument("by", "expected \"stage\" or \"rep\", got '" + q.by + "'");
  }
  if (Status h = Usable(); !h.ok()) return h;
  const auto cells = feedback_->Experiment(q.from_ms, q.to_ms);
  ExperimentCounts all[2];
  std::map<std::string, std::array<ExperimentCounts, 2>> groups;
  for (const auto& [cell, c] : cells) {
    // arm \0 stage \0 rep
    const size_t a = cell.find('\0'), b = a == std::string::npos ? a : cell.find('\0', a + 1);
    if (b == std::string::npos) continue;
    const int arm = cell.compare(0, a, "holdout") == 0 ? 1 : 0;
    all[arm] += c;
    if (!q.by.empty()) groups[q.by == "stage" ? cell.substr(a + 1, b - a - 1) : cell.substr(b + 1)][size_t(arm)] += c;
  }
  ExperimentReport out;
  out.holdout_fraction = options_.experiment.holdout_fraction;
  out.overall = CompareArms(all[0], all[1]);
  if (q.by == "stage") {
    for (const std::string& stage : options_.stages) {  // funnel order
      if (auto it = groups.find(stage); it != groups.end()) {
        out.groups.push_back({stage, CompareArms(it->second[0], it->second[1])});
      }
    }
  } else {
    for (const auto& [key, arms] : groups) out.groups.push_back({key, CompareArms(arms[0], arms[1])});
  }
  return out;
}

}  // namespace playbook

#include "tally.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

namespace playbook {
namespace {


UseRef UseOf(const Event& e) { return UseRef{e.asset_id, e.stage, e.rep_id, e.topic, e.ts}; }

// Adds (sign +1) or takes away (-1) the lead's outcome from the experiment's
// counters of its assignment day (ExperimentCounters in derived.h).
void ExperimentOutcome(const LeadState& lead, int sign, DeltaBuffer* out) {
  const uint32_t day = DayOf(lead.assigned_ts);
  // Modulo 2^64 like every counter (stored events are read back untrusted): no signed overflow.
  auto add = [&](int f, uint64_t v) {
    out->Experiment(day, lead.arm, lead.entry_stage, lead.entry_rep, f, int64_t(sign > 0 ? v : 0 - v));
  };
  const uint64_t units = uint64_t(lead.outcome_cents / 100);
  const uint64_t minutes =
      lead.outcome_ts > lead.assigned_ts ? (uint64_t(lead.outcome_ts) - uint64_t(lead.assigned_ts)) / 60000 : 0;
  add(lead.outcome == 1 ? 1 : 2, 1);
  if (lead.outcome_cents != 0) {
    add(3, uint64_t(lead.outcome_cents));
    add(4, units * units);  // a validated amount (<= 1e9) squared fits; wraps past 1.8e19
  }
  add(5, minutes);
  add(6, minutes * minutes);
}

}  // namespace

Tally::Tally(const EngineOptions& options)
    : stages_(options.stages), window_ms_(int64_t(options.attribution_window_days) * 24 * 3600 * 1000) {}

int Tally::StageIndex(const std::string& stage) const {
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  return it == stages_.end() ? -1 : int(it - stages_.begin());
}

void Tally::Apply(Event& e, LeadState& lead, DeltaBuffer* out) const {
  if (e.type != EventType::kShown) e.arm = lead.arm;  // shown: below, as its first recommend decided
  // Report counters: by UTC day of `ts`, stage, rep (and all reps) and asset.
  auto agg = [&](int64_t ts, const std::string& stage, const std::string& rep, const std::string& asset, int f,
                 int64_t cents) { out->Report(DayOf(ts), stage, rep, asset, f, cents); };
  // Credits field `f` once per distinct (asset, stage) among `used` (the
  // first use of each: its rep and topic), at its stage of use, and at its
  // stage and topic.
  auto credit = [&](const std::vector<UseRef>& used, int64_t from_ts, int f, int64_t cents, int64_t outcome_ts) {
    std::set<std::pair<std::string_view, std::string_view>> once;
    for (const UseRef& u : used) {
      if (u.ts < from_ts || !once.insert({u.asset, u.stage}).second) continue;
      agg(outcome_ts, u.stage, u.rep, u.asset, f, cents);
      out->Ranking(u.asset, u.stage, u.topic, f, cents);
    }
  };
  // Adds 1 to field `f` of the asset at the stage, and at the stage and topic.
  auto count = [&](int f) {
    agg(e.ts, e.stage, e.rep_id, e.asset_id, f, 0);
    if (e.type == EventType::kDismissed) out->Dismissal(DayOf(e.ts), e.stage, e.asset_id, ReasonOf(e.reason));
    if (f == 1) out->LastUsed(e.asset_id, e.ts);
    out->Ranking(e.asset_id, e.stage, e.topic, f, 0);
  };

  switch (e.type) {
    case EventType::kShown:
      if (lead.stage != e.stage) {  // the CRM states the lead's stage when it asks
        lead.stage = e.stage;
        lead.stage_since = e.ts;
      }
      lead.topic = e.topic;
      if (!e.same_terms && lead.terms != e.terms) {  // a new context: its terms are credited afresh
        lead.terms = e.terms;
        lead.terms_credited.clear();
      }
      count(0);
      // The first recommend assigns the lead (recommend put the arm on its
      // events); every later event carries the arm it got.
      if (!lead.recommended) {
        lead.recommended = true;
        lead.arm = e.arm;
        if (lead.arm != Arm::kNone) {
          lead.assigned_ts = e.ts;
          lead.entry_stage = e.stage;
          lead.entry_rep = e.rep_id;
          out->Experiment(DayOf(e.ts), lead.arm, lead.entry_stage, lead.entry_rep, 0, 1);
        }
      }
      e.arm = lead.arm;
      break;
    case EventType::kUsed:
    case EventType::kViewed:
    case EventType::kDismissed: {
      e.stage = lead.stage;
      e.topic = lead.topic;
      count(e.type == EventType::kUsed ? 1 : e.type == EventType::kViewed ? 2 : 3);
      if (std::find(lead.seen.begin(), lead.seen.end(), e.asset_id) == lead.seen.end()) lead.seen.push_back(e.asset_id);
      if (e.type != EventType::kUsed) break;
      // The org's own words: the context's terms become support for the asset,
      // once per asset and context, in the week of the use.
      if (!lead.terms.empty() && std::find(lead.terms_credited.begin(), lead.terms_credited.end(), e.asset_id) ==
                                     lead.terms_credited.end()) {
        lead.terms_credited.push_back(e.asset_id);
        const uint32_t day = DayOf(e.ts);
        for (const std::string& term : lead.terms) out->Phrase(day - day % 7, term, e.asset_id);
      }
      UseRef use = UseOf(e);
      auto same = [&](const UseRef& u) { return u.asset == use.asset && u.stage == use.stage; };
      if (std::find_if(lead.since_change.begin(), lead.since_change.end(), same) == lead.since_change.end()) {
        lead.since_change.push_back(use);
      }
      // A run of uses of the asset at the stage by one rep under one topic is
      // one entry: only its latest ts decides whether the window still holds it.
      auto last = std::find_if(lead.window.rbegin(), lead.window.rend(), same);
      if (last != lead.window.rend() && last->rep == use.rep && last->topic == use.topic) {
        last->ts = use.ts;
      } else {
        lead.window.push_back(std::move(use));
      }
      break;
    }
    case EventType::kStageChanged: {
      const int from = StageIndex(lead.stage), to = StageIndex(e.stage);
      if (from >= 0 && to > from) {
        credit(lead.since_change, INT64_MIN, 6, 0, e.ts);
        out->Funnel(DayOf(e.ts), lead.stage, !lead.since_change.empty(), 1);
      }
      if (from != to) out->Funnel(DayOf(e.ts), e.stage, false, 0);
      lead.since_change.clear();
      lead.stage = e.stage;
      lead.stage_since = e.ts;
      break;
    }
    case EventType::kWon:
    case EventType::kLost: {
      const bool won = e.type == EventType::kWon;
      if (!lead.stage.empty()) {
        out->Funnel(DayOf(e.ts), lead.stage, !lead.since_change.empty(), won ? 2 : 3);
      }
      const int64_t cents = won ? int64_t(std::llround(e.amount * 100)) : 0;
      credit(lead.window, e.ts - window_ms_, won ? 4 : 5, cents, e.ts);
      agg(e.ts, "", e.rep_id, "", won ? 4 : 5, cents);  // the lead itself closed: the baseline of lift
      if (e.stage.empty()) e.stage = lead.stage;
      // The experiment counts a lead's latest outcome since its assignment:
      // out with the one before (a deal lost, then re-opened and won).
      if (lead.arm != Arm::kNone && e.ts >= lead.assigned_ts) {
        if (lead.outcome != 0) ExperimentOutcome(lead, -1, out);
        lead.outcome = won ? 1 : 2;
        lead.outcome_ts = e.ts;
        lead.outcome_cents = cents;
        ExperimentOutcome(lead, +1, out);
      }
      break;
    }
  }
  lead.known = true;
  lead.latest_ts = std::max(lead.latest_ts, e.ts);
  // Later events come at or after latest_ts: older uses cannot be credited.
  lead.window_ms = window_ms_;
  const int64_t cutoff = lead.latest_ts - window_ms_;
  lead.window.erase(std::remove_if(lead.window.begin(), lead.window.end(), [&](const UseRef& u) { return u.ts < cutoff; }),
                    lead.window.end());
}

void Tally::Replay(std::vector<std::pair<uint64_t, Event>>& events, LeadState* lead, DeltaBuffer* out) const {
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second.ts, a.first) < std::make_pair(b.second.ts, b.first);
  });
  LeadState state;
  state.window_ms = window_ms_;
  DeltaBuffer ignored;
  for (auto& [seq, e] : events) {
    Apply(e, state, out ? out : &ignored);
    ignored.Clear();
  }
  if (lead) *lead = std::move(state);
}

void Tally::Rederive(std::vector<std::pair<uint64_t, Event>>& before, std::vector<std::pair<uint64_t, Event>>& after,
                     LeadState* lead, DeltaBuffer* out) const {
  out->sign = -1;
  Replay(before, nullptr, out);
  out->sign = +1;
  Replay(after, lead, out);
}

}  // namespace playbook

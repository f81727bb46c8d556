#include "tally.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

namespace playbook {
namespace {

const std::string kAllReps;

std::vector<const Event*> UsedBetween(const std::vector<Event>& events, int64_t from, int64_t to) {
  std::vector<const Event*> used;
  for (const Event& e : events) {
    if (e.type == EventType::kUsed && e.ts >= from && e.ts <= to) used.push_back(&e);
  }
  return used;
}

// The uses after the lead's last stage change.
std::vector<const Event*> UsedSinceChange(const std::vector<Event>& events) {
  std::vector<const Event*> used;
  for (const Event& e : events) {
    if (e.type == EventType::kStageChanged) used.clear();
    if (e.type == EventType::kUsed) used.push_back(&e);
  }
  return used;
}

}  // namespace

Tally::Tally(const EngineOptions& options)
    : stages_(options.stages), window_ms_(int64_t(options.attribution_window_days) * 24 * 3600 * 1000) {}

int Tally::StageIndex(const std::string& stage) const {
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  return it == stages_.end() ? -1 : int(it - stages_.begin());
}

void Tally::Apply(Event& e, LeadState& lead, const std::function<std::vector<Event>()>& history, Deltas* out) const {
  // Report counters: by UTC day of `ts`, stage, rep ("" = all reps) and asset.
  auto agg = [&](int64_t ts, const std::string& stage, const std::string& rep, const std::string& asset, int f,
                 int64_t cents) {
    for (const std::string* r : {&kAllReps, &rep}) {
      Counters& c = out->counters[AggregateKey(DayOf(ts), stage, *r, asset)];
      c[size_t(f)] += 1;
      c[7] += cents;
      if (rep.empty()) break;
    }
  };
  // Credits field `f` once per distinct (asset, stage) among `used`, at its
  // stage of use, and at its stage and topic.
  auto credit = [&](const std::vector<const Event*>& used, int f, int64_t cents, int64_t outcome_ts) {
    std::set<std::pair<std::string, std::string>> once;
    for (const Event* u : used) {
      if (!once.insert({u->asset_id, u->stage}).second) continue;
      agg(outcome_ts, u->stage, u->rep_id, u->asset_id, f, cents);
      std::vector<std::string> keys = {StatsKey(u->asset_id, u->stage)};
      if (!u->topic.empty()) keys.push_back(StatsKey(u->asset_id, u->stage, u->topic));
      for (const std::string& key : keys) {
        Counters& c = out->counters[key];
        c[size_t(f)] += 1;
        c[7] += cents;
      }
    }
  };
  // Adds 1 to field `f` of the asset at the stage, and at the stage and topic.
  auto count = [&](int f) {
    agg(e.ts, e.stage, e.rep_id, e.asset_id, f, 0);
    if (e.type == EventType::kDismissed) {
      out->counters[DismissalKey(DayOf(e.ts), e.stage, e.asset_id, ReasonOf(e.reason))][0] += 1;
    }
    if (f == 1) {
      auto [it, added] = out->last_used.try_emplace(e.asset_id, e.ts);
      if (!added) it->second = std::max(it->second, e.ts);
    }
    out->counters[StatsKey(e.asset_id, e.stage)][size_t(f)] += 1;
    if (!e.topic.empty()) out->counters[StatsKey(e.asset_id, e.stage, e.topic)][size_t(f)] += 1;
  };

  switch (e.type) {
    case EventType::kShown:
      if (lead.stage != e.stage) {  // the CRM states the lead's stage when it asks
        lead.stage = e.stage;
        lead.stage_since = e.ts;
      }
      lead.topic = e.topic;
      count(0);
      break;
    case EventType::kUsed:
    case EventType::kViewed:
    case EventType::kDismissed:
      e.stage = lead.stage;
      e.topic = lead.topic;
      count(e.type == EventType::kUsed ? 1 : e.type == EventType::kViewed ? 2 : 3);
      break;
    case EventType::kStageChanged: {
      const int from = StageIndex(lead.stage), to = StageIndex(e.stage);
      const std::vector<Event> events = history();
      const std::vector<const Event*> used = UsedSinceChange(events);
      if (from >= 0 && to > from) {
        credit(used, 6, 0, e.ts);
        out->counters[FunnelKey(DayOf(e.ts), lead.stage, !used.empty())][1] += 1;
      }
      if (from != to) out->counters[FunnelKey(DayOf(e.ts), e.stage, false)][0] += 1;
      lead.stage = e.stage;
      lead.stage_since = e.ts;
      break;
    }
    case EventType::kWon:
    case EventType::kLost: {
      const std::vector<Event> events = history();
      const bool won = e.type == EventType::kWon;
      if (!lead.stage.empty()) {
        out->counters[FunnelKey(DayOf(e.ts), lead.stage, !UsedSinceChange(events).empty())][won ? 2 : 3] += 1;
      }
      const int64_t cents = won ? int64_t(std::llround(e.amount * 100)) : 0;
      credit(UsedBetween(events, e.ts - window_ms_, e.ts), won ? 4 : 5, cents, e.ts);
      agg(e.ts, "", e.rep_id, "", won ? 4 : 5, cents);  // the lead itself closed: the baseline of lift
      if (e.stage.empty()) e.stage = lead.stage;
      break;
    }
  }
}

}  // namespace playbook

// What one event adds to the derived counters: the single definition of
// counting and attribution, used live by the feedback writer and again by
// re-aggregation over the raw log, so that both give the same numbers.
// Private to engine/.
//
// A lead's events count in event-time order: by ts, then by arrival (the
// writer's global sequence number). Tally::Apply takes them one at a time,
// carrying between them only the lead's state (LeadState): what attribution
// and exclusion need, never the history itself.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "derived.h"
#include "playbook/engine/options.h"
#include "playbook/engine/types.h"

namespace playbook {

// A use of an asset with a lead, as attribution credits it.
struct UseRef {
  std::string asset, stage, rep, topic;
  int64_t ts = 0;
  bool operator==(const UseRef&) const = default;
};

// A lead as of its latest event (by ts, then arrival).
struct LeadState {
  std::string stage;
  std::string topic;  // of the last recommend's context
  int64_t stage_since = 0;
  bool known = false;      // not stored: a stored lead is known
  int64_t latest_ts = -1;  // the latest event's ts; -1: none
  // The first use of each (asset, stage) since the last stage_changed: what
  // the next stage change credits.
  std::vector<UseRef> since_change;
  // The uses an outcome at or after latest_ts can still credit (ts >=
  // latest_ts - window_ms), one entry per run of uses of an (asset, stage)
  // by the same rep under the same topic, with the run's latest ts.
  std::vector<UseRef> window;
  // The assets used, viewed or dismissed with the lead (recommend excludes
  // them), each once.
  std::vector<std::string> seen;
  int64_t window_ms = -1;  // the attribution window `window` was pruned with
  // The holdout experiment. recommended: the lead has had a recommend (a
  // `shown` event); the first one decided its arm (kNone: the experiment was
  // off), its assignment time, stage and rep. outcome: its latest outcome at
  // or after the assignment (0 none, 1 won, 2 lost), what the experiment's
  // counters hold for it.
  bool recommended = false;
  Arm arm = Arm::kNone;
  int64_t assigned_ts = 0;
  std::string entry_stage, entry_rep;
  uint8_t outcome = 0;
  int64_t outcome_ts = 0;
  int64_t outcome_cents = 0;
  // The terms of the last recommend's context (its `shown` events'), and the
  // assets a `used` has credited them to since (each credited once).
  std::vector<std::string> terms, terms_credited;
  // False when decoded from a record older than this format: the lead's
  // state must be rebuilt from its log before it is used.
  bool complete = true;
};

class Tally {
 public:
  explicit Tally(const EngineOptions& options);

  // Adds what `e` contributes to `out`, given the lead's state before it.
  // REQUIRES: `e` comes after every event `lead` has seen, by (ts, arrival).
  // Updates `lead` and completes `e` as it is stored (stage and topic of
  // used, viewed and dismissed; the stage of won and lost).
  void Apply(Event& e, LeadState& lead, DeltaBuffer* out) const;

  // Replays a lead's events (seq = arrival order) from a fresh state, in
  // (ts, seq) order: sorts `events` so and completes each. The lead's final
  // state into *lead, the counters into *out (either may be null).
  void Replay(std::vector<std::pair<uint64_t, Event>>& events, LeadState* lead, DeltaBuffer* out) const;

  // A lead re-derived: out with what `before` counts (its old log), in with
  // what `after` counts (the old log and its new events), each replayed as
  // above; the final state (after `after`) into *lead (may be null).
  void Rederive(std::vector<std::pair<uint64_t, Event>>& before, std::vector<std::pair<uint64_t, Event>>& after,
                LeadState* lead, DeltaBuffer* out) const;

  int64_t window_ms() const { return window_ms_; }

 private:
  int StageIndex(const std::string& stage) const;

  const std::vector<std::string> stages_;
  const int64_t window_ms_;
};

}  // namespace playbook

// What one event adds to the derived counters: the single definition of
// counting and attribution, used live by the feedback writer and again by
// re-aggregation over the raw log, so that both give the same numbers.
// Private to engine/.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "derived.h"
#include "playbook/engine/options.h"
#include "playbook/engine/types.h"

namespace playbook {

// A lead as the writer knows it between events.
struct LeadState {
  std::string stage;
  std::string topic;  // of the last recommend's context
  int64_t stage_since = 0;
  bool known = false;
};

// Counter deltas keyed as in the stats column family (derived.h), and the
// latest use per asset.
struct Deltas {
  std::unordered_map<std::string, Counters> counters;
  std::unordered_map<std::string, int64_t> last_used;
};

class Tally {
 public:
  explicit Tally(const EngineOptions& options);

  // Adds what `e` contributes to `out`, given the lead's state before it and
  // its earlier events (oldest first: by ts, then by arrival). Updates `lead`
  // and completes `e` as it is stored (stage and topic of used, viewed and
  // dismissed; the stage of won and lost). `history` is called only when
  // attribution needs it.
  void Apply(Event& e, LeadState& lead, const std::function<std::vector<Event>()>& history, Deltas* out) const;

 private:
  int StageIndex(const std::string& stage) const;

  const std::vector<std::string> stages_;
  const int64_t window_ms_;
};

}  // namespace playbook

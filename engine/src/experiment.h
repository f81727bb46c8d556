// The holdout experiment: which arm a lead is assigned to, and the statistics
// of reports.experiment (docs/experiment.md). Private to engine/.
#pragma once

#include <cstdint>
#include <string>

#include "playbook/engine/options.h"
#include "playbook/engine/types.h"

namespace playbook {

// A new lead's arm: kNone when the experiment is off (holdout_fraction 0),
// else kHoldout when u < holdout_fraction, with u in [0, 1) the top 53 bits
// of splitmix64's finaliser over the 64-bit FNV-1a hash of the salt, a NUL
// byte and the lead id; kTreatment otherwise. Deterministic across processes
// and builds.
Arm AssignArm(const std::string& lead_id, const ExperimentOptions& options);
// The u above, for tests and docs.
double AssignmentPoint(const std::string& lead_id, const std::string& salt);

// The 95% Wilson score interval of k successes in n trials (n > 0).
Interval WilsonInterval(uint64_t k, uint64_t n);

// Treatment against holdout from their counts: rates, intervals, the
// difference, its p-value, whether it is conclusive, the closed leads still
// needed and a note (ExperimentComparison in types.h).
ExperimentComparison CompareArms(const ExperimentCounts& treatment, const ExperimentCounts& holdout);

}  // namespace playbook

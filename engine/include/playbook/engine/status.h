// Status and Result live in the base library (engine/base/), which models/ and
// the client link without the engine; engine code keeps this include.
#pragma once

#include "playbook/base/status.h"

// Options of the engine: what it stores, where, and the funnel it serves.
// Built once (by the daemon from its config, by tests directly) and passed in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace playbook {

struct EngineOptions {
  // Directory that holds everything durable (the RocksDB catalog and feedback
  // log) and the derived state (the saved vector index). Created when missing.
  std::string data_dir = "playbook-data";

  // Dimension of every asset and query vector. Fixed for the life of a data dir.
  uint32_t dimension = 384;

  // The funnel's stages, earliest first. Non-empty, unique names.
  std::vector<std::string> stages = {"awareness", "interest", "consideration", "evaluation",
                                     "negotiation"};

  // A won or lost outcome credits the assets used with that lead within this
  // many days before it.
  uint32_t attribution_window_days = 90;
};

}  // namespace playbook

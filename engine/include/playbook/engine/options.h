// Options of the engine: what it stores, where, and the funnel it serves.
// Built once (by the daemon from its config, by tests directly) and passed in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace playbook {

// How the vector index is built and searched. See docs/operations.md.
struct IndexOptions {
  // "auto": an HNSW graph once the catalog holds hnsw_min_assets assets, exact
  // scans below that; "exact": always exact; "hnsw": always build the graph.
  std::string kind = "auto";
  uint32_t hnsw_min_assets = 20000;
  uint32_t hnsw_m = 16;                // graph degree
  uint32_t hnsw_ef_construction = 64;  // build effort
  uint32_t hnsw_ef_search = 128;       // search effort (recall under filters needs it high)
  // A search whose filter admits less than this fraction of the graph's
  // assets scans the eligible ones exactly instead (recall stays 1).
  double exact_below_fraction = 0.1;
  // Assets added since the last build are scanned exactly; past this many the
  // index rebuilds itself in the background.
  uint32_t rebuild_after_adds = 20000;
};

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

  IndexOptions index;
};

}  // namespace playbook

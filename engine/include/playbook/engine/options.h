// Options of the engine: what it stores, where, and the funnel it serves.
// Built once (by the daemon from its config, by tests directly) and passed in.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rocksdb {  // declared only: the engine's public headers include no RocksDB header
struct DBOptions;
struct ColumnFamilyOptions;
}  // namespace rocksdb

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

// How recommend ranks eligible assets. See docs/ranking.md.
struct RankingOptions {
  // recommend's score = similarity_weight * similarity + language + evidence
  // + exploration (docs/ranking.md): what was learnt and the exploration
  // draws move an asset within bounded bands of similarity, never further.
  double similarity_weight = 1.0;     // cosine similarity to the lead's context
  // Scales the learned effectiveness at the stage (its lift over a new
  // asset's) before it is bounded by the evidence band below.
  double effectiveness_weight = 2.0;
  // The most similarity evidence can buy (or cost): an asset with n uses and
  // dismissals at the stage moves by at most evidence_max * n / (n + evidence_half).
  double evidence_max = 0.20;
  double evidence_half = 20;
  // The most similarity an exploration draw can add or take (0 = none):
  // explore_band * tanh(the draw's deviation from the posterior mean).
  double explore_band = 0.02;
  // The org's own words (docs/ranking.md): a context term counts for an asset
  // once reps used the asset after contexts with the term phrase_min_support
  // times; its support is those uses, each halved every phrase_half_life_days
  // after its week. A context's counting terms buy the asset at most
  // phrase_max of similarity: phrase_max * S / (S + phrase_half), S = the sum
  // of their support, each times the asset's share of the term's support.
  double phrase_min_support = 3;
  double phrase_half_life_days = 90;
  double phrase_max = 0.15;
  double phrase_half = 3;
  // Added to the similarity of assets in the rep's language (lead.language,
  // else the context's script): they come first among equally relevant ones.
  double language_bonus = 0.12;
  // Effectiveness = use_weight * P(used | shown) + win_weight * P(won | used,
  // closed) + advance_weight * P(advanced | used) - dismiss_weight * P(dismissed | shown),
  // each a Beta posterior smoothed toward the stage's average.
  // Defaults from `playbook simulate` (docs/simulation.md): P(used | shown)
  // mostly reflects the position an item was shown at, so it weighs little;
  // advancing is the most direct sign that an asset helped.
  double use_weight = 0.05;
  double win_weight = 0.5;
  double advance_weight = 1.0;
  double dismiss_weight = 0.3;
  // Pseudo-observations of the stage average in every posterior: few
  // observations can make an asset neither the best nor the worst.
  double prior_strength = 10;
  // Thompson sampling from the posteriors (exploration), else their means.
  bool explore = true;
  // Seed of the exploration; 0 = a random seed per process.
  uint64_t seed = 0;
  // MMR: 1 = relevance only; lower values favour diversity.
  double mmr_lambda = 0.8;
  // Candidates at least this similar to one already chosen are skipped.
  double duplicate_similarity = 0.97;
  // Newer assets get up to recency_weight, halving every recency_half_life_days.
  double recency_weight = 0.0;
  double recency_half_life_days = 90;
  // Candidates retrieved by meaning before ranking, per item asked.
  uint32_t candidates_per_item = 10;
};

// The built-in holdout experiment (docs/experiment.md): a fraction of new
// leads gets a baseline ranking without what Playbook learnt, so that
// reports.experiment can measure how many more deals the recommendations win.
struct ExperimentOptions {
  // 0..0.5: the share of leads assigned to the holdout arm at their first
  // recommend; 0 = off (leads first recommended then stay out of the
  // experiment). A lead's arm is recorded with it and never changes: a new
  // fraction applies to new leads only.
  double holdout_fraction = 0;
  // Mixed into the assignment hash with the lead id: another salt draws
  // another split (of new leads only).
  std::string salt;
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
  RankingOptions ranking;
  ExperimentOptions experiment;

  // For tests only; the daemon leaves it empty. Called once by Engine::Open
  // just before the database is opened, with the engine's RocksDB options:
  // the database's, and the column family options every column family is
  // copied from. Tests use it to put a fault-injecting Env or FileSystem
  // under the engine (db->env, which must outlive the engine) or to turn the
  // block cache off so that reads reach it.
  std::function<void(rocksdb::DBOptions*, rocksdb::ColumnFamilyOptions*)> rocksdb_test_hook;

  // For tests only; the daemon leaves it empty. Called on the background
  // thread that loads the saved graph after an open, just before it reads
  // it, so that tests can search, and stop, while the graph is loading. A
  // hook that waits must return once `stopping` turns true (Close waits).
  std::function<void(const std::atomic<bool>& stopping)> graph_load_test_hook;

  // For tests only; the daemon leaves it empty. Called on the rebuild thread
  // when a build has caught up (its last round saw too few assets outside
  // the graph to go on) and before it ends, so that a test can upsert just
  // then, when an upsert's own look finds the build still running.
  std::function<void()> build_end_test_hook;
};

}  // namespace playbook

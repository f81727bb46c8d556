// The feedback store: events, idempotency keys, lead state and per-(asset,
// stage) counters in RocksDB, written by one group-commit writer thread, with
// an in-memory mirror of the counters for the ranking. Private to engine/.
//
// Column families: "events" (lead \0 ts \0 seq -> event), "event_ids"
// (event id -> events key), "leads" (lead -> stage and since when), "stats"
// (asset \0 stage -> counters, merged with the "playbook.counters.v1" operator).
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>

#include <array>
#include <condition_variable>
#include <map>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "playbook/engine/options.h"
#include "playbook/engine/status.h"
#include "playbook/engine/types.h"

namespace playbook {

// Adds counter vectors element-wise: associative, so counters are never read
// to be written.
std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator();

struct FeedbackColumns {
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* event_ids = nullptr;
  rocksdb::ColumnFamilyHandle* leads = nullptr;
  rocksdb::ColumnFamilyHandle* stats = nullptr;
};

class FeedbackStore {
 public:
  // `asset_known(id)` says whether an asset is in the catalog (thread-safe).
  FeedbackStore(rocksdb::DB* db, FeedbackColumns cfs, const EngineOptions& options,
                std::function<bool(const std::string&)> asset_known);
  ~FeedbackStore();

  // Loads the counters into memory and starts the writer.
  Status Open();
  // Stops the writer after the queued calls are written.
  void Close();

  // REQUIRES: events validated (ValidateEvents). Blocks until durable.
  Result<RecordResult> Record(std::vector<Event> events);

  // The lead's events, oldest first.
  std::vector<Event> LeadEvents(const std::string& lead_id) const;
  Result<Lead> GetLead(const std::string& lead_id) const;

  // With a topic: the counters of the asset at the stage for leads whose
  // context had that topic.
  AssetStageStats Stats(const std::string& asset_id, const std::string& stage,
                        const std::string& topic = "") const;
  // Sums over every asset at the stage.
  AssetStageStats StageTotals(const std::string& stage) const;

  // Report aggregates over the UTC days of [from_ms, to_ms]: per asset, the
  // counters (shown, used, viewed, dismissed, won, lost, advanced, won cents)
  // at `stage` ("" = all) for `rep` ("" = all reps); and the leads closed.
  struct AggregateSums {
    std::unordered_map<std::string, AssetStageStats> by_asset;
    std::unordered_map<std::string, int64_t> last_used;  // ever, ms
    uint64_t leads_won = 0, leads_lost = 0;
    double won_amount = 0;
  };
  AggregateSums Aggregate(int64_t from_ms, int64_t to_ms, const std::string& stage, const std::string& rep) const;
  // (stage \0 '1'|'0' content used at the stage) -> [entered, advanced, won, lost].
  std::map<std::string, std::array<int64_t, 8>> Funnel(int64_t from_ms, int64_t to_ms) const;
  // rep -> counters summed over assets and stages; *closed: rep -> (leads won, lost).
  std::map<std::string, AssetStageStats> Reps(int64_t from_ms, int64_t to_ms,
                                                     std::map<std::string, std::pair<uint64_t, uint64_t>>* closed) const;
  // (asset, reason) -> dismissals over the UTC days of [from_ms, to_ms] at `stage` ("" = all).
  std::map<std::pair<std::string, std::string>, uint64_t> Dismissals(int64_t from_ms, int64_t to_ms,
                                                                     const std::string& stage) const;

 private:
  struct Pending {
    std::vector<Event> events;
    std::promise<Result<RecordResult>> done;
  };
  struct LeadState {
    std::string stage;
    std::string topic;  // of the last recommend's context
    int64_t stage_since = 0;
    bool known = false;
  };
  void WriterLoop();
  void WriteGroup(std::vector<Pending*>& group);
  int StageIndex(const std::string& stage) const;

  rocksdb::DB* db_;
  const FeedbackColumns cf_;
  const EngineOptions& options_;
  std::function<bool(const std::string&)> asset_known_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending*> queue_;
  bool stopping_ = false;
  std::thread writer_;
  uint64_t next_seq_ = 0;  // writer thread only

  mutable std::shared_mutex stats_mu_;
  std::unordered_map<std::string, AssetStageStats> stats_;        // asset \0 stage
  std::unordered_map<std::string, AssetStageStats> stage_totals_;  // stage
  // day -> (stage \0 rep \0 asset) -> counters; asset "" = leads closed.
  std::map<uint32_t, std::unordered_map<std::string, std::array<int64_t, 8>>> aggregates_;
  std::unordered_map<std::string, int64_t> last_used_;
  // day -> (stage \0 asset \0 reason) -> dismissals.
  std::map<uint32_t, std::unordered_map<std::string, int64_t>> dismissals_;
  std::map<uint32_t, std::unordered_map<std::string, std::array<int64_t, 8>>> funnel_;
  void AddAggregate(const std::string& key, const std::array<int64_t, 8>& c);
};

// InvalidArgument naming "events[i].field" for the first invalid event;
// fills in ts = now where it is 0.
Status ValidateEvents(std::vector<Event>* events, const EngineOptions& options);

}  // namespace playbook

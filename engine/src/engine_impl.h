// The engine's implementation class, split by concern across files:
// engine.cpp (open, close, status), catalog.cpp (assets), rebuild.cpp.
// Private to engine/.
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "asset_index.h"
#include "feedback.h"
#include "playbook/engine/engine.h"
#include "playbook/models/embedder.h"
#include "storage.h"

namespace playbook {

class EngineImpl final : public Engine {
 public:
  EngineImpl(EngineOptions options, std::shared_ptr<const models::Embedder> embedder);
  ~EngineImpl() override;

  // Opens RocksDB and loads (or rebuilds) the index. Called once, by Open or
  // after Create.
  Status Init() override;

  Status Health() const override;
  Status Close() override;
  const EngineOptions& options() const override { return options_; }

  Result<UpsertResult> UpsertAssets(std::vector<Asset> assets) override;
  Result<std::vector<Asset>> GetAssets(const std::vector<std::string>& ids, bool with_vectors,
                                       std::vector<std::string>* missing) override;
  Result<uint64_t> DeleteAssets(const std::vector<std::string>& ids) override;
  Result<ListPage> ListAssets(const ListQuery& query) override;

  Result<std::vector<SearchHit>> Search(const float* query, const AssetFilter& filter,
                                        size_t k) const override;
  Result<std::vector<SearchItem>> SearchItems(const float* query, const AssetFilter& filter,
                                              size_t k) const override;
  Status Embed(const std::string& text, float* out) const override;

  Result<RecordResult> RecordEvents(std::vector<Event> events) override;
  Result<Lead> GetLead(const std::string& lead_id) override;
  Result<Recommendation> Recommend(const RecommendRequest& request) override;
  AssetStageStats GetStats(const std::string& asset_id, const std::string& stage) const override;
  Result<AssetReport> ReportAssets(const ReportQuery& query) override;
  Result<std::vector<TrendBucket>> ReportTrend(const ReportQuery& query, uint32_t bucket_days) override;
  Result<DismissalReport> ReportDismissals(const ReportQuery& query) override;
  Result<PhraseReport> ReportPhrases(const PhraseQuery& query) override;
  Result<std::vector<RepReportRow>> ReportReps(const ReportQuery& query) override;
  Result<std::vector<FunnelReportRow>> ReportFunnel(const ReportQuery& query) override;
  Result<UnusedReport> ReportUnused(const ReportQuery& query, uint64_t rarely_shown_min, double rarely_rate) override;
  Result<ExperimentReport> ReportExperiment(const ExperimentQuery& query) override;  // experiment.cpp
  Result<ReaggregateResult> Reaggregate(bool write, ReaggregateProgress progress) override;

  Result<BackupInfo> Backup(const std::string& dir) override;  // backup.cpp

  IndexStatus GetIndexStatus() const override;
  std::string OpenNote(bool* warning) const override {
    if (warning) *warning = open_warning_;
    return open_note_;
  }
  Result<std::string> StartRebuild(Progress progress) override;

 private:
  // OK while the engine is open (reads need no more; Health() adds whether
  // the storage accepts writes).
  Status Usable() const;
  // catalog.cpp
  Status ValidateAsset(const Asset& a, size_t i) const;
  // InvalidArgument naming assets[i].variant_of when upserting `assets`
  // (index_of: id -> position) would link an asset back to itself through
  // variant_of. REQUIRES: write_mu_ held (the index's links stay as read).
  Status CheckVariantCycles(const std::vector<Asset>& assets,
                            const std::unordered_map<std::string, size_t>& index_of) const;
  // The index's fields of a stored asset: filter fields and display fields
  // (its lexicon concepts taken from *concepts, or computed here when null,
  // or left to ComputeConcepts when `later` is given: the display is added
  // there; never re-embedding).
  SlotFields SlotFieldsOf(const Asset& a, std::vector<std::string>* concepts = nullptr,
                          std::vector<std::shared_ptr<const AssetDisplay>>* later = nullptr) const;
  // After an open: computes the concepts of `later` on a thread of its own,
  // from the stored catalog (29 us an asset with the built-in lexicon, too
  // slow for the start), publishing each as it goes; with count_stale, counts
  // the stale vectors on the way (stale_vectors_, then stale_known_). Close
  // stops it.
  void ComputeConcepts(std::vector<std::shared_ptr<const AssetDisplay>> later, bool count_stale);
  // reports.cpp: the rows of ReportAssets (one per asset) summed by content
  // item (ReportQuery::by "content"), from the catalog's links (deleted
  // assets' included); lift against leads_win_rate.
  Status RollUpContent(std::vector<AssetReportRow>* rows, std::optional<double> leads_win_rate);
  Status LoadIndex();  // engine.cpp
  // rebuild.cpp. full: re-embed stale vectors and build the graph anew (an
  // index.rebuild); otherwise extend the graph with what was added since, or
  // build it when there is none or it holds too many dead rows.
  // kLoad: read the graph the saved index file left pending (AssetIndex::Load)
  // and swap it in, then extend it as kExtend would when assets arrived
  // meanwhile; a graph that does not check out is built anew.
  enum class BuildMode { kFull, kExtend, kLoad };
  Result<std::string> StartBuild(Progress progress, BuildMode mode);
  void RunRebuild(const std::function<void(uint64_t, uint64_t)>& progress, BuildMode mode);
  // kLoad's first step; false when there is no graph after it (failed or cancelled).
  bool LoadSavedGraph();
  bool WantsAnn(uint64_t assets) const;
  void MaybeAutoRebuild();
  // Ends a build (rebuilding_ false), or claims the next one and says so.
  bool BuildAgain();
  std::string IndexPath() const { return options_.data_dir + "/index.pbidx"; }

  const EngineOptions options_;
  const std::shared_ptr<const models::Embedder> embedder_;

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* assets_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* vectors_cf_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  mutable std::mutex close_mu_;  // guards db_ against Close
  bool closed_ = false;

  // Serialises catalog writes: the catalog sequence and the index's writer side.
  std::mutex write_mu_;
  uint64_t catalog_seq_ = 0;  // guarded by write_mu_; read atomically below
  std::atomic<uint64_t> catalog_seq_view_{0};

  std::unique_ptr<AssetIndex> index_;  // replaced only during Init
  std::unique_ptr<StorageState> storage_;  // whether writes go through; set by Init
  std::unique_ptr<FeedbackStore> feedback_;
  std::string open_note_;
  bool open_warning_ = false;
  std::atomic<uint64_t> stale_vectors_{0};
  // Whether stale_vectors_ is counted: after an open from the saved index,
  // only once the background catalog pass (ComputeConcepts) got through.
  std::atomic<bool> stale_known_{false};
  std::atomic<bool> stale_counting_{false};  // that pass is running

  mutable std::mutex reembed_mu_;  // guards reembed_error_
  std::string reembed_error_;      // why the last full rebuild left stale vectors; "" if none

  std::mutex rebuild_mu_;  // guards rebuild_thread_
  std::thread rebuild_thread_;
  std::atomic<bool> rebuilding_{false};
  std::atomic<bool> graph_loading_{false};  // the rebuild thread is in LoadSavedGraph
  std::atomic<bool> cancel_rebuild_{false};
  std::atomic<uint64_t> rebuild_jobs_{0};

  std::thread concepts_thread_;  // ComputeConcepts; joined by Close
  std::atomic<bool> cancel_concepts_{false};
  std::atomic<uint64_t> concepts_pending_{0};
};

// Milliseconds since the epoch.
int64_t NowMs();

// The text the embedder sees for an asset.
std::string AssetText(const Asset& a);

}  // namespace playbook

// The engine: Playbook's core, with no networking and no JSON.
//
// Thread safety: all public methods may be called concurrently from any
// thread once Open (or Create and Init) has returned, except Close, which
// must be called once, after every other call has returned.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "playbook/engine/options.h"
#include "playbook/engine/status.h"
#include "playbook/engine/types.h"

namespace playbook::models {
class Embedder;
}

namespace playbook {

// What Engine::Backup wrote.
struct BackupInfo {
  std::string dir;
  int64_t created_ms = 0;    // when the checkpoint was taken (ms since the epoch)
  uint64_t catalog_seq = 0;  // the catalog sequence the backup holds
  uint64_t events = 0;       // feedback events recorded up to the backup (the writer's sequence)
  bool index_included = false;  // index.pbidx saved with it (else rebuilt at start from stored vectors)
  uint64_t files = 0;
  uint64_t bytes = 0;  // size of the files written (table files may be hard links into the data dir)
  int64_t ms = 0;      // wall time
  int64_t paused_ms = 0;  // how long catalog writes waited for the checkpoint and index save
};

class Engine {
 public:
  // Opens (creating when missing) the data dir named by options.data_dir.
  // Fails with IOError when the directory cannot be created or is in use by
  // another process, with Corruption when it holds data this build cannot read.
  // Loads the saved vector index when it reflects the catalog; otherwise
  // serves exact search at once and rebuilds the index in the background.
  // `embedder` (shared, thread-safe) must have options.dimension.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options,
                                              std::shared_ptr<const models::Embedder> embedder);

  // Open in two steps, for a caller that wants the object before the data dir
  // is open (the daemon listens, and answers "starting", while it opens):
  // Create makes an engine that is not open yet; Init opens it, with Open's
  // errors. Init is called once; until it has returned OK, no method but
  // Close (and the destructor) may be called.
  static std::unique_ptr<Engine> Create(const EngineOptions& options,
                                        std::shared_ptr<const models::Embedder> embedder);
  virtual Status Init() = 0;

  virtual ~Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // OK when the engine can serve reads and durable writes.
  virtual Status Health() const = 0;

  // Makes everything written so far durable and releases the data dir.
  // Idempotent. The destructor calls it when it was not called.
  virtual Status Close() = 0;

  virtual const EngineOptions& options() const = 0;

  // ---- Catalog --------------------------------------------------------------

  // Validates every asset first (InvalidArgument naming "assets[i].field";
  // nothing is written when one fails), embeds those without a vector, then
  // writes them in one synced batch and makes them searchable. Idempotent.
  virtual Result<UpsertResult> UpsertAssets(std::vector<Asset> assets) = 0;

  // The live assets among `ids`, in the order asked; the others (unknown or
  // deleted) are appended to `missing`.
  virtual Result<std::vector<Asset>> GetAssets(const std::vector<std::string>& ids,
                                               bool with_vectors,
                                               std::vector<std::string>* missing) = 0;

  // Deletes (tombstones) the live assets among `ids`; returns how many were.
  // A deleted asset is never returned by a search again.
  virtual Result<uint64_t> DeleteAssets(const std::vector<std::string>& ids) = 0;

  // One page of live assets in id order. InvalidArgument for an unknown stage.
  virtual Result<ListPage> ListAssets(const ListQuery& query) = 0;

  // ---- Search ---------------------------------------------------------------

  // The k best live, active assets passing `filter`, by inner product with
  // `query` (options.dimension floats, unit length), best first. Never
  // returns an asset outside the filter. InvalidArgument for an unknown stage.
  virtual Result<std::vector<SearchHit>> Search(const float* query, const AssetFilter& filter,
                                                size_t k) const = 0;
  // Search's hits, in the same order, each with its asset's display fields,
  // read from the index's memory under the same lock as the hits (no
  // storage read: what the asset's last upsert said).
  virtual Result<std::vector<SearchItem>> SearchItems(const float* query, const AssetFilter& filter,
                                                      size_t k) const = 0;

  // Embeds text with the engine's embedder into `out` (options.dimension
  // floats). Fails as Embedder::EmbedBatch does (a remote model down or wrong).
  virtual Status Embed(const std::string& text, float* out) const = 0;

  // ---- Feedback and recommendations -------------------------------------------

  // Validates every event (InvalidArgument naming "events[i].field"; nothing
  // is written when one fails), then records them durably: the call returns
  // after one synced write that concurrent callers share (group commit).
  // Repeated event ids are counted once. Outcomes are attributed to the assets
  // used with the lead (see docs/ranking.md).
  virtual Result<RecordResult> RecordEvents(std::vector<Event> events) = 0;

  // The lead's stage and history; NotFound for a lead never seen.
  virtual Result<Lead> GetLead(const std::string& lead_id) = 0;

  // The best eligible assets for a lead at a stage, each recorded as `shown`
  // (durably) under the returned recommendation id.
  virtual Result<Recommendation> Recommend(const RecommendRequest& request) = 0;

  // What the ranking knows of an asset at a stage (zeros when nothing).
  virtual AssetStageStats GetStats(const std::string& asset_id, const std::string& stage) const = 0;

  // ---- Reports ----------------------------------------------------------------

  // Content effectiveness per asset over whole UTC days, from aggregates kept
  // as events arrive (never a scan of raw events). InvalidArgument for an
  // unknown stage or sort column.
  virtual Result<AssetReport> ReportAssets(const ReportQuery& query) = 0;
  // The totals of ReportAssets (query.from_ms, to_ms, stage, rep_id, type) per
  // bucket of bucket_days whole UTC days from the day of from_ms, in order;
  // one pass over the same aggregates. InvalidArgument as ReportAssets.
  virtual Result<std::vector<TrendBucket>> ReportTrend(const ReportQuery& query, uint32_t bucket_days) = 0;
  // The reasons reps gave for dismissals, overall and per asset (uses
  // query.from_ms, to_ms and stage).
  virtual Result<DismissalReport> ReportDismissals(const ReportQuery& query) = 0;
  // The org's own words: per asset, the terms of the contexts reps used it
  // after, with their uses and support as of now (memory only).
  // InvalidArgument("limit") outside 1..1000.
  virtual Result<PhraseReport> ReportPhrases(const PhraseQuery& query) = 0;
  // Per rep over the window: recommendations received, used, usage rate,
  // and the win rate of the leads they closed.
  virtual Result<std::vector<RepReportRow>> ReportReps(const ReportQuery& query) = 0;
  // Per stage, in funnel order: leads entering, advancing, won and lost,
  // with and without content used at the stage.
  virtual Result<std::vector<FunnelReportRow>> ReportFunnel(const ReportQuery& query) = 0;
  // Content sales ignores (uses query.from_ms, to_ms, stage, type).
  virtual Result<UnusedReport> ReportUnused(const ReportQuery& query, uint64_t rarely_shown_min,
                                            double rarely_rate) = 0;
  // The holdout experiment (docs/experiment.md): per arm, the leads assigned
  // in the window and their outcomes, with 95% intervals, the difference and
  // its significance; from aggregates (never a scan of raw events).
  // InvalidArgument naming "by" for anything but "", "stage", "rep".
  virtual Result<ExperimentReport> ReportExperiment(const ExperimentQuery& query) = 0;
  // Recomputes every aggregate (report and ranking counters) from the raw
  // event log with the current options, and counts the keys where the live
  // aggregates differ. With `write`, the recomputed aggregates replace the
  // live ones (stored and in memory). Feedback keeps being recorded; the
  // writer pauses only to replay the leads written meanwhile and to swap.
  // `progress` (types.h) is called from the calling thread with no lock held.
  // Overloaded when one is already running or the engine is closing.
  virtual Result<ReaggregateResult> Reaggregate(bool write, ReaggregateProgress progress) = 0;

  // ---- Backup ---------------------------------------------------------------

  // Writes a consistent online backup into `dir` (absolute; must not exist or
  // be empty, else InvalidArgument naming "dir"): a RocksDB checkpoint in
  // dir/db, the vector index saved at the checkpoint's catalog sequence in
  // dir/index.pbidx, and a manifest dir/BACKUP (format in backup.cpp) written
  // last, synced. Serving goes on: feedback is recorded meanwhile, catalog
  // writes wait only while the checkpoint is taken and the index saved. A
  // data dir made of a copy of dir opens as the data at the checkpoint.
  virtual Result<BackupInfo> Backup(const std::string& dir) = 0;

  // ---- Index ----------------------------------------------------------------

  virtual IndexStatus GetIndexStatus() const = 0;

  // What Open did with the index, for the start-up log ("index loaded from
  // ... in 80 ms"); *warning is set when it had to discard a saved index.
  virtual std::string OpenNote(bool* warning) const = 0;

  // Starts a background rebuild: re-embeds vectors made by another embedder
  // version, rebuilds the index from the catalog and swaps it in atomically;
  // searches keep using the old one meanwhile and writes during the rebuild are
  // kept. `progress(job_id, done, total)` is called from the rebuild thread
  // now and then, and once at the end with done == total. Returns the job id.
  // Overloaded when a rebuild is already running.
  using Progress = std::function<void(const std::string& job_id, uint64_t done, uint64_t total)>;
  virtual Result<std::string> StartRebuild(Progress progress) = 0;

 protected:
  Engine() = default;
};

}  // namespace playbook

// The feedback store: events, idempotency keys and lead state in RocksDB,
// written by one group-commit writer thread together with the counters
// derived from them (derived.h, counted by tally.h), which it mirrors in
// memory for the ranking and the reports, and can rebuild from the events
// (Reaggregate). Private to engine/.
//
// Column families: "events" (lead \0 ts(BE64) seq(BE64) -> event, or a run of
// a recommendation's `shown` events from seq on; seq is the global arrival order), "event_ids" (event id -> its sequence number, BE64; older
// stores hold the events key there: only the presence is read), "event_seqs"
// (the first seq of a written group (BE64) -> the events keys of the group's
// events in arrival order: the log in arrival order, one record a group), "leads" (lead ->
// LeadState: stage, since when, topic, the uses attribution can still credit,
// the assets seen; tally.h), "stats" (the derived counters as last saved, keys
// in derived.h, with the event sequence they include in "meta").
//
// The counters live in memory: the writer counts each group there (typed
// deltas, no key built) and writes only the events, their ids and the leads.
// A saver thread writes them to "stats" now and then (SaveAggregates), a stop
// once more; a start loads them and counts again the leads of the events
// after the sequence they include. Stores written before this merged every
// delta into "stats" (the "playbook.counters.v1" operator, still registered
// to read them): there the stored counters include every event.
//
// The checkpoint (checkpoint.cpp): all the counters in a few typed sections
// ("meta": kCheckpointKey and its chunks), written with the event sequence it
// includes in one synced batch that also range-deletes "stats"; the saves
// after it put their changed keys in "stats" as before (zeros instead of
// deletes), so a start reads the checkpoint in one pass and sets the few keys
// saved since over it. Written by the saver once enough keys were saved
// since the last one, or soon after a start found none (a store of the
// earlier layout: only "stats" keys, read as before); and at a stop when the
// store has none yet or more than a few keys were saved since.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/slice_transform.h>

#include <array>
#include <atomic>
#include <chrono>
#include <unordered_set>
#include <condition_variable>
#include <map>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "playbook/engine/options.h"
#include "playbook/engine/status.h"
#include "playbook/engine/types.h"
#include "codec.h"
#include "derived.h"
#include "storage.h"
#include "tally.h"

namespace playbook {

// Adds counter vectors element-wise: associative, so counters are never read
// to be written. Reads the counters of stores written before they were saved
// apart (feedback.h's header).
std::shared_ptr<rocksdb::MergeOperator> NewCounterMergeOperator();

// Insert hints for the memtables the writer fills (RocksDB's
// memtable_insert_with_hint_prefix_extractor): the memtable keeps the place of
// the last insert per prefix and starts the next insert of that prefix there
// instead of searching its skip list from the top. "events": the lead (a
// lead's next event mostly goes right after its last); "event_seqs": one
// prefix (the keys only grow).
std::shared_ptr<const rocksdb::SliceTransform> NewEventKeyLeadPrefix();
std::shared_ptr<const rocksdb::SliceTransform> NewSinglePrefix();

struct FeedbackColumns {
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* event_ids = nullptr;
  rocksdb::ColumnFamilyHandle* leads = nullptr;
  rocksdb::ColumnFamilyHandle* stats = nullptr;
  rocksdb::ColumnFamilyHandle* event_seqs = nullptr;
};

class FeedbackStore {
 public:
  // `asset_known(id)` says whether an asset is in the catalog (thread-safe).
  // Writes go through `storage` (it outlives the store).
  FeedbackStore(rocksdb::DB* db, FeedbackColumns cfs, const EngineOptions& options,
                std::function<bool(const std::string&)> asset_known, StorageState* storage);
  ~FeedbackStore();

  // Loads the counters into memory and starts the writer.
  Status Open();
  // Stops the writer after the queued calls are written, then saves the
  // counters (unless SetSaveAtClose(false)).
  void Close();

  // Writes the counters changed since the last save to "stats" with the
  // event sequence they include, in one synced batch, unless nothing was
  // recorded since. The writer pauses while the batch is filled.
  Status SaveAggregates();
  // Events with a sequence number below this are in the stored counters.
  uint64_t SavedThrough() const { return saved_seq_.load(); }
  // Tests: false leaves the counters unsaved at Close, as a crash would.
  void SetSaveAtClose(bool save) { save_at_close_ = save; }
  // Writes every counter as the checkpoint (see the header), with the event
  // sequence it includes, in one synced batch; the writer pauses while it is
  // encoded. Unless checkpoints are off (tests).
  Status WriteCheckpoint();
  // Tests: false writes no checkpoint (only "stats" keys, the earlier layout).
  void SetCheckpoints(bool on) { checkpoints_ = on; }
  // Tests: false writes each of recommend's `shown` events as its own record
  // (the layout before runs).
  void SetShownRuns(bool on) { shown_runs_ = on; }
  // The saver writes a checkpoint once this many distinct keys were saved
  // since the last one (a start sets each of them over the checkpoint: what
  // it reads is the distinct keys, however often each was saved).
  static constexpr uint64_t kCheckpointKeys = 50000;
  // The distinct "stats" keys saved since the checkpoint (an upper bound: the
  // keys a start found, plus those saved since the start), what the next
  // start reads beside it.
  uint64_t KeysSinceCheckpoint() {
    std::lock_guard<std::mutex> one(save_mu_);
    return keys_since_checkpoint_;
  }
  // A stop writes one when this many were (or the store has none yet).
  static constexpr uint64_t kCheckpointAtStopKeys = 5000;
  // Tests: true keeps the saver thread from saving (SaveAggregates still does),
  // so that a test can hold the stored counters still however slow the machine.
  void PauseSaver(bool paused) { saver_paused_ = paused; }
  // The saver thread saves when this many events are unsaved, or when any
  // are and this long has passed since the last save.
  static constexpr uint64_t kSaveEvents = 100000;
  static constexpr int kSaveSeconds = 1;
  // When every unsaved event is a recommend's `shown` (no feedback call since
  // the last save), this long instead: recommend's load changes the same
  // assets' keys again and again, and a save writes each key once whatever
  // its changes. A start after a crash counts the unsaved events again from
  // the log, as always; only more of them.
  static constexpr int kShownSaveSeconds = 5;
  // What Open did with the counters ("aggregates loaded: N keys in M ms");
  // *warning when it had to finish an interrupted re-aggregation.
  std::string OpenNote(bool* warning) const {
    *warning = open_warning_;
    return open_note_;
  }

  // REQUIRES: events validated (ValidateEvents). Blocks until durable.
  Result<RecordResult> Record(std::vector<Event> events);
  // recommend's `shown` events: written in the writer's next group, counted
  // in memory, then answered without waiting for the sync; the syncer thread
  // syncs them within kShownSyncMs (a failed sync marks the storage failing).
  // Its assets are not looked up in the catalog: unknown_assets stays 0.
  Result<RecordResult> RecordShown(std::vector<Event> events);
  // How long a written `shown` event waits, at most, for its sync to start.
  static constexpr int kShownSyncMs = 50;
  // Syncs of the log made by the syncer thread (for tests).
  uint64_t ShownSyncs() const { return shown_syncs_.load(); }

  // The lead's events, oldest first; an error when the log cannot be read.
  Result<std::vector<Event>> LeadEvents(const std::string& lead_id) const;
  // The assets used, viewed or dismissed with the lead, from memory (kept by
  // the writer, loaded at Open): recommend's exclusions, no storage read.
  std::vector<std::string> SeenAssets(const std::string& lead_id) const;
  // The arm the lead's first recommend assigned it (kNone: out of the
  // experiment), from memory; nullopt for a lead never recommended.
  std::optional<Arm> RecordedArm(const std::string& lead_id) const;
  // Event records the writer has read back from the log (to rebuild a lead
  // whose record predates its state, or to re-derive a lead that got an event
  // earlier than its latest). For tests: in-order events read none.
  uint64_t LogRecordsRead() const { return log_records_read_.load(); }
  Result<Lead> GetLead(const std::string& lead_id) const;

  // With a topic: the counters of the asset at the stage for leads whose
  // context had that topic.
  AssetStageStats Stats(std::string_view asset_id, std::string_view stage, std::string_view topic = {}) const;
  // Sums over every asset at the stage.
  AssetStageStats StageTotals(std::string_view stage) const;
  // For the ranking, under one lock: the stage's totals, and for each of the
  // n assets its counters at the stage (and for `topic`, when not empty); see
  // Derived::RankingStats.
  AssetStageStats RankingStats(std::string_view stage, std::string_view topic, const std::string_view* assets,
                               Derived::OrdinalCache* const* caches, size_t n, AssetStageStats* at_stage,
                               AssetStageStats* at_topic) const;

  // The org's own words (Derived::PhraseWeights with the [ranking] options),
  // as of now_ms; under the shared lock, from memory.
  void PhraseWeights(const std::vector<std::string>& terms, int64_t now_ms,
                     std::vector<Derived::PhraseWeight>* out) const;
  // Every (asset, term) with uses and its support as of now_ms (the report).
  std::vector<Derived::PhraseUses> Phrases(int64_t now_ms) const;

  // Report aggregates over the UTC days of [from_ms, to_ms]: per asset with
  // activity, the counters at `stage` ("" = all) for `rep` ("" = all reps),
  // and its last use ever (-1: never); and the leads closed in the window.
  struct AssetActivity {
    std::string asset_id;
    AssetStageStats stats;
    int64_t last_used = -1;
  };
  struct AggregateSums {
    std::vector<AssetActivity> by_asset;
    uint64_t leads_won = 0, leads_lost = 0;
    double won_amount = 0;
  };
  AggregateSums Aggregate(int64_t from_ms, int64_t to_ms, const std::string& stage, const std::string& rep) const;
  // (stage \0 '1'|'0' content used at the stage) -> [entered, advanced, won, lost].
  std::map<std::string, std::array<int64_t, 8>> Funnel(int64_t from_ms, int64_t to_ms) const;
  // The experiment's cells of the leads assigned on the UTC days of [from_ms,
  // to_ms] (Derived::SumExperiment).
  std::map<std::string, Counters> Experiment(int64_t from_ms, int64_t to_ms) const;
  // rep -> counters summed over assets and stages; *closed: rep -> (leads won, lost).
  std::map<std::string, AssetStageStats> Reps(int64_t from_ms, int64_t to_ms,
                                              std::map<std::string, std::pair<uint64_t, uint64_t>>* closed) const;
  // Dismissals per (asset, reason) over the UTC days of [from_ms, to_ms] at `stage` ("" = all).
  std::vector<Derived::Dismissal> Dismissals(int64_t from_ms, int64_t to_ms, const std::string& stage) const;

  // Recomputes every derived counter from the raw event log with the current
  // options (attribution window, stages) and compares it with the live
  // counters. With `write`, replaces the stored and in-memory counters with
  // the recomputed ones. Feedback keeps being recorded meanwhile: the log is
  // read from a snapshot and the leads written to since are replayed again
  // with the writer paused, at the end.
  Result<ReaggregateResult> Reaggregate(bool write, const ReaggregateProgress& progress);

 private:
  struct Pending {
    std::vector<Event> events;
    bool durable = true;  // false: answered once written and counted, before the sync
    std::optional<Result<RecordResult>> result;  // set by the group's writer
    bool finished = false;  // guarded by queue_mu_: result is set
    bool written = false;   // guarded by queue_mu_: written, waiting for a sync
    std::condition_variable wake;  // finished, or this call may lead the next group
  };
  // Queues the call and waits until a group has written it, writing the
  // queue itself when no group is being written (group commit).
  Result<RecordResult> Enqueue(std::vector<Event> events, bool durable);
  // Writes the group in one batch (not synced); counts it in memory.
  // `durable`: the group is feedback.record's (its ids are idempotency keys,
  // and its callers are answered after a sync of the log), else recommend's
  // `shown` events.
  void WriteGroup(std::vector<Pending*>& group, bool durable);
  // Syncs the log after durable groups' writes; on failure their calls get the error.
  void SyncGroups(std::vector<std::vector<Pending*>>& groups);
  // Syncs the log kShownSyncMs after the first unsynced write of `shown`
  // events, so that the writer never waits for it; once more at Close.
  void SyncerLoop();
  // The lead's events with their arrival sequence numbers, oldest first (by
  // ts, then arrival), as of `snapshot` (nullptr: now), into *out.
  Status LeadLog(const std::string& lead_id, const rocksdb::Snapshot* snapshot,
                 std::vector<std::pair<uint64_t, Event>>* out) const;
  // Replays every lead of the log as of `snapshot` into `out`; returns the
  // events and leads replayed.
  Status ReplayAll(const rocksdb::Snapshot* snapshot, Derived* out, uint64_t total,
                   const ReaggregateProgress& progress, uint64_t* events, uint64_t* leads) const;
  // A lead's counters into `out`: out with its events `before`, in with its
  // events `after` (any order; replayed by (ts, arrival)). Re-aggregation
  // replays a lead with `before` empty.
  void RederiveLead(std::vector<std::pair<uint64_t, Event>> before, std::vector<std::pair<uint64_t, Event>> after,
                    Derived* out) const;
  // Replaces all stored counters by `d` (re-aggregation), which includes the
  // events below `seq`: the marker and a range delete (synced), the keys
  // (unlogged, then flushed), then the sequence with the marker removed
  // (synced). A start that finds the marker re-aggregates from the log.
  Status WriteAggregates(const Derived& d, uint64_t seq, uint64_t* keys, const ReaggregateProgress& progress);
  void SaverLoop();
  // The counters as stored: the checkpoint, if any, with the keys saved since
  // set over it (*note says what was read), else the "stats" keys.
  Status LoadDerived(Derived* out, std::string* note);
  // Counts into derived_ the leads of the events from `from` on (by arrival):
  // out with what their events before `from` counted, in with all of them.
  Status CountAfter(uint64_t from, uint64_t* events, uint64_t* leads);
  // Loads every lead's exclusions into memory; rebuilds from its log (and
  // rewrites) a lead whose record predates the current LeadState or was
  // pruned with another attribution window.
  Status LoadLeads(std::string* note);
  // Counts the group's new events of one lead (arrival order) into *deltas,
  // from its stored state `st` (updated): incrementally when they come in
  // event-time order after it, else by re-deriving the lead from its log.
  // shown_at_answer: the group is recommend's `shown` events, stamped with the
  // engine's clock (moved up to the lead's latest ts when that is ahead).
  Status TallyLead(const std::string& lead_id, bool stored, LeadState* st, bool shown_at_answer,
                   std::vector<std::pair<uint64_t, Event*>>& events, DeltaBuffer* deltas);
  // Keeps the lead's exclusions and arm in memory. REQUIRES: leads_mu_ held exclusively.
  void SetSeen(const std::string& lead_id, const LeadState& st);

  rocksdb::DB* db_;
  const FeedbackColumns cf_;
  const EngineOptions& options_;
  std::function<bool(const std::string&)> asset_known_;
  const Tally tally_;
  StorageState* const storage_;

  std::mutex queue_mu_;
  std::condition_variable closed_cv_;  // stopping, the last group written
  std::deque<Pending*> queue_;
  bool writing_ = false;   // a caller is writing a group; guarded by queue_mu_
  bool syncing_ = false;   // a caller is syncing the log; guarded by queue_mu_
  // Feedback groups written, waiting for a sync that begins after them; guarded by queue_mu_.
  std::vector<std::vector<Pending*>> unsynced_groups_;
  bool open_ = false;      // Open succeeded: calls are written; guarded by queue_mu_
  bool stopping_ = false;  // guarded by queue_mu_
  uint64_t next_seq_ = 0;  // guarded by writer_mu_

  // The log holds writes not yet synced (since `unsynced_since_`).
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool unsynced_ = false;                               // guarded by sync_mu_
  uint64_t unsynced_writes_ = 0;                        // `shown` writes so far; guarded by sync_mu_
  std::chrono::steady_clock::time_point unsynced_since_;  // guarded by sync_mu_
  bool syncer_stopping_ = false;                        // guarded by sync_mu_
  std::thread syncer_;
  std::atomic<uint64_t> shown_syncs_{0};

  // Held by the caller writing a group; re-aggregation holds it to pause the writes.
  std::mutex writer_mu_;
  std::atomic<uint64_t> groups_written_{0};
  // While a re-aggregation reads its snapshot: the leads written to since.
  std::unique_ptr<std::unordered_set<std::string>> touched_leads_;  // guarded by writer_mu_
  std::string open_note_;
  bool open_warning_ = false;
  std::atomic<bool> reaggregating_{false};
  std::atomic<bool> closing_{false};  // a running re-aggregation stops reading the log
  std::mutex reaggregate_mu_;
  std::condition_variable reaggregate_cv_;  // signalled when a re-aggregation ends

  std::mutex save_mu_;  // one save at a time
  // The stored counters are a checkpoint and keys saved since (guarded by
  // save_mu_, or Open); the keys saved since; a checkpoint is to be written
  // (a store of the earlier layout, or re-aggregated).
  bool has_checkpoint_ = false;
  uint64_t keys_since_checkpoint_ = 0;  // guarded by save_mu_; see KeysSinceCheckpoint
  // Of those, the keys saved since the checkpoint or the start (the rest:
  // found by the start), as derived_'s ordinals. Under recommend's load the
  // saves rewrite the same keys (the assets shown) every second: counting
  // every key written took a whole checkpoint of all the counters every few
  // seconds. Guarded by save_mu_; emptied with each checkpoint.
  std::unordered_set<Derived::Changed, Derived::ChangedHash> saved_since_checkpoint_;
  uint64_t keys_at_open_ = 0;  // guarded by save_mu_
  std::atomic<bool> checkpoint_due_{false};
  std::atomic<bool> checkpoints_{true};
  std::atomic<bool> shown_runs_{true};
  std::atomic<uint64_t> saved_seq_{0};
  // A feedback call's events are among the unsaved ones (set by the writer,
  // cleared by a save that takes them).
  std::atomic<bool> feedback_unsaved_{false};
  std::atomic<bool> save_at_close_{true};
  std::atomic<bool> saver_paused_{false};
  std::mutex saver_mu_;
  std::condition_variable saver_cv_;
  bool saver_stopping_ = false;  // guarded by saver_mu_
  std::thread saver_;

  std::atomic<uint64_t> log_records_read_{0};
  // The records of the leads the writer stored lately, as stored (writer only,
  // under writer_mu_): most groups read no lead. Emptied when it would pass
  // kLeadCache leads.
  std::unordered_map<std::string, LeadState> lead_cache_;
  static constexpr size_t kLeadCache = 50000;
  // What recommend needs of a lead, from memory: the assets seen with it (ids
  // in seen_names_), its exclusions; and, once it was recommended, its arm.
  struct LeadMemo {
    std::vector<uint32_t> seen;
    bool recommended = false;
    Arm arm = Arm::kNone;
  };
  mutable std::shared_mutex leads_mu_;
  Dictionary seen_names_;                               // guarded by leads_mu_
  std::unordered_map<std::string, LeadMemo> memo_;  // guarded by leads_mu_

  mutable std::shared_mutex stats_mu_;
  std::unique_ptr<Derived> derived_;  // guarded by stats_mu_
};

// Keys. "meta": the next event sequence number; the sequence the stored
// counters include (events below it); the marker present while counters are
// being written (a start then re-aggregates).
inline constexpr const char* kEventSeqKey = "meta/event_seq";
inline constexpr const char* kStatsSeqKey = "meta/stats_seq";
inline constexpr const char* kReaggregatingKey = "meta/reaggregating";
// The checkpoint: kCheckpointKey -> seq(u64) chunks(u32) bytes(u64), little-
// endian; its bytes in chunks under kCheckpointKey "/" chunk(BE32).
inline constexpr const char* kCheckpointKey = "meta/checkpoint";
std::string CheckpointChunkKey(uint32_t chunk);
// "event_seqs": the group's first sequence number, big-endian; the value the
// events keys, each after its length (2 bytes, little-endian).
std::string SeqKey(uint64_t seq);
void AppendSeqEntry(std::string* value, std::string_view events_key);
// Calls fn(seq, events key) for each entry of a record whose key is `key`;
// false when the record is malformed (entries before the fault were given).
bool ForEachSeqEntry(const rocksdb::Slice& key, const rocksdb::Slice& value,
                     const std::function<void(uint64_t, std::string_view)>& fn);
// "events": lead \0 ts(BE64) seq(BE64), so that a lead's log is one range in
// (ts, arrival) order; LeadPrefix is its start (lead \0). The value is one
// event, or a run of a recommendation's `shown` events (codec.h): its events
// have seq, seq + 1, ... (one lead, one ts: the run sorts where its events
// would). Each event of a run has its own "event_seqs" entry, naming the run's
// key (the entry's sequence number less the key's: its place in the run).
std::string LeadPrefix(const std::string& lead);
std::string EventKey(const std::string& lead, int64_t ts, uint64_t seq);
// The same into *k (replacing its bytes, reusing its memory).
void EventKeyTo(std::string* k, const std::string& lead, int64_t ts, uint64_t seq);
// Appends seq big-endian (8 bytes): SeqKey, and the value of an "event_ids" record.
void PutSeq(std::string* out, uint64_t seq);
// The lead and the sequence number of an events key; false if malformed.
bool SplitEventKey(const rocksdb::Slice& key, std::string_view* lead, uint64_t* seq);

// InvalidArgument naming "events[i].field" for the first invalid event;
// fills in ts = now where it is 0.
Status ValidateEvents(std::vector<Event>* events, const EngineOptions& options);

}  // namespace playbook

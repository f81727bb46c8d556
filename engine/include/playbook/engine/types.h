// The engine's value types: assets, filters, search hits, index status.
// Plain data; no behaviour beyond what the comments state.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace playbook {

// A marketing asset: the thing Playbook recommends.
struct Asset {
  std::string id;        // 1..128 chars of [A-Za-z0-9._:-]
  std::string title;     // non-empty
  std::string body;      // optional text, embedded with the title
  std::string url;       // optional
  std::string language;  // optional: "zh", "en", ...
  std::string type;      // lower-case, free-form: case_study, roi_calculator, ...
  std::vector<std::string> stages;  // configured stage names, non-empty
  std::vector<std::string> tags;    // optional
  // On input: the client's vector (configured dimension) or empty, when the
  // embedder computes one. On output: filled only when asked for.
  std::vector<float> vector;
  bool active = true;  // inactive assets are never recommended
  // Optional: the id of the asset this one is a variant (a translation) of.
  // Assets linked through variant_of form one content item, named by the id
  // at the end of the chain (the asset with no variant_of, or the id named
  // when no live asset has it): recommend returns at most one asset per
  // content item, the reports can sum them. The target need not exist yet.
  std::string variant_of;

  // Set by the engine; ignored on input.
  bool vector_supplied = false;  // the client brought the vector: never re-embedded
  std::string embedder;          // name of the embedder that made the vector, "" when supplied
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  bool deleted = false;  // kept as a tombstone so reports can name it
};

struct UpsertResult {
  uint64_t upserted = 0;  // == created + updated
  uint64_t created = 0;   // new ids (or ids that had been deleted)
  uint64_t updated = 0;
};

// Hard constraints of a search: an asset outside them is never returned.
struct AssetFilter {
  std::string stage;                    // required: a configured stage
  std::vector<std::string> types;       // any of; empty = all
  std::string language;                 // exact; empty = all
  std::vector<std::string> tags_any;    // at least one of; empty = all
  std::vector<std::string> exclude_ids; // never these
  std::vector<std::string> only_ids;    // only these (empty = all); not a protocol field: recommend
                                        // scores assets the team's own words point at with it
};

struct SearchHit {
  std::string asset_id;
  float score = 0;  // inner product of unit vectors, -1..1
};

// A search hit with what an answer shows of its asset (assets.search).
struct SearchItem {
  std::string asset_id;
  float score = 0;  // as SearchHit
  std::string title;
  std::string type;
  std::string url;
  std::string variant_of;  // "" = none
};

struct ListQuery {
  std::string stage;   // empty = all
  std::string type;    // empty = all
  std::string cursor;  // from a previous page's next_cursor; empty = from the start
  uint32_t limit = 100;
  bool with_vectors = false;
};

struct ListPage {
  std::vector<Asset> assets;
  std::optional<std::string> next_cursor;  // nullopt on the last page
};

struct IndexStatus {
  uint64_t assets = 0;  // live (undeleted) assets, active or not
  uint32_t dimension = 0;
  std::string embedder;  // the embedder's Name()
  std::string index;     // "exact" or "hnsw(M=16,efC=64)+exact" ...
  bool rebuilding = false;
  // "loading": the saved graph is being read in the background after a start
  // (searches are exact until it is in); "ready": a graph serves searches;
  // "none": searches are exact (no graph yet, or none wanted).
  std::string graph = "none";
  uint64_t ann_assets = 0;    // assets covered by the ANN structure
  uint64_t exact_assets = 0;  // assets searched exactly (added since the last build)
  uint64_t stale_vectors = 0; // embedder-made vectors from another embedder version
  // Why the last index rebuild could not re-embed the stale vectors (a remote
  // embedder down or wrong); empty when it could, or none ran.
  std::string reembed_error;
  uint64_t catalog_seq = 0;   // bumped by every catalog write
  // Assets whose lexicon concepts are still being computed after an open
  // (recommend gives no concept reason for them until then); 0 once done.
  uint64_t concepts_pending = 0;
};

// ---- Feedback ----------------------------------------------------------------

enum class EventType { kShown, kUsed, kViewed, kDismissed, kStageChanged, kWon, kLost };
// "shown", "used", ...; ParseEventType returns false for anything else.
const char* EventTypeName(EventType type);
bool ParseEventType(const std::string& name, EventType* type);

// The arm of the holdout experiment a lead was assigned to at its first
// recommend (docs/experiment.md); kNone: not in the experiment (it was off).
enum class Arm : uint8_t { kNone = 0, kTreatment = 1, kHoldout = 2 };
// "treatment", "holdout", "" (kNone).
const char* ArmName(Arm arm);

// One thing that happened to a lead. `shown` events are recorded by recommend.
struct Event {
  std::string event_id;  // idempotency key, 1..256 bytes
  EventType type = EventType::kUsed;
  std::string lead_id;
  std::string asset_id;  // required for used, viewed, dismissed (and shown)
  // stage_changed: the new stage (required). Others: set by the engine to the
  // lead's stage when the event was recorded.
  std::string stage;
  std::string rep_id;
  std::string recommendation_id;
  std::string reason;  // dismissed
  double amount = 0;   // won: the deal's value
  int64_t ts = 0;      // ms since the epoch; 0 on input = now
  // Set by the engine: the topic (first lexicon concept) of the lead's context
  // when the event was recorded, so effectiveness is learnt per topic too.
  std::string topic;
  // Set by the engine: the lead's experiment arm when the event was recorded.
  Arm arm = Arm::kNone;
  // shown (set by recommend): the terms of the lead's context the team's
  // vocabulary is learnt from (Embedder::Terms); a later `used` of an asset
  // with the lead credits them to it (docs/ranking.md, the org's own words).
  std::vector<std::string> terms;
  // shown (set by recommend): the terms are the recommendation's, stored once
  // with its first shown event (which comes before the others by (ts, seq)):
  // the lead keeps the terms it has. Not a client's field.
  bool same_terms = false;
};

struct RecordResult {
  uint64_t accepted = 0;
  uint64_t duplicates = 0;      // event ids seen before (or twice in the call)
  uint64_t unknown_leads = 0;   // accepted events about leads never seen before
  uint64_t unknown_assets = 0;  // accepted events naming assets not in the catalog
};

struct Lead {
  std::string id;
  std::string stage;           // "" when no stage is known
  std::vector<Event> history;  // oldest first
};

// What the ranking knows of one asset at one stage.
struct AssetStageStats {
  uint64_t shown = 0, used = 0, viewed = 0, dismissed = 0, won = 0, lost = 0, advanced = 0;
  double won_amount = 0;
};

// ---- Recommendation ----------------------------------------------------------

struct RecommendRequest {
  std::string lead_id;
  std::string stage;
  std::string context;               // free text; may be empty
  std::vector<float> vector;         // optional query vector
  size_t k = 5;
  AssetFilter filter;                // stage is taken from `stage`
  bool exclude_seen = true;
  std::string rep_id;
  // The rep's language ("zh", "en", ...): assets in it come first among
  // equally relevant ones. Empty = the context's script (CJK: "zh", else "en").
  std::string language;
};

struct RecommendedItem {
  std::string asset_id;
  std::string title;
  std::string type;
  std::string url;
  float score = 0;
  std::vector<std::string> reasons;
};

struct Recommendation {
  std::string id;
  std::vector<RecommendedItem> items;
};

// ---- Reports -------------------------------------------------------------------

struct ReportQuery {
  int64_t from_ms = 0;          // whole UTC days: the day of from_ms ...
  int64_t to_ms = INT64_MAX / 2;  // ... through the day of to_ms
  std::string stage;   // "" = all
  std::string rep_id;  // "" = all
  std::string type;    // "" = all
  std::string sort = "used";  // a numeric column, descending
  uint32_t limit = 100;
  // "asset" (or ""): a row per asset; "content": a row per content item,
  // the variants (translations) linked by variant_of summed (ReportAssets only).
  std::string by;
};

// One variant of a content item in a report by content.
struct ReportVariant {
  std::string asset_id;
  std::string language;  // the asset's `language`; "" when unknown (not in the catalog) or unset
};

struct AssetReportRow {
  // By content (ReportQuery::by == "content"): asset_id is the content id
  // (the root of the variant_of chain), title and type the root asset's (or,
  // when it is not in the catalog, the first variant's), deleted when every
  // variant is, and the counters the sums of the variants'.
  std::string asset_id, title, type;
  bool deleted = false;
  std::vector<ReportVariant> variants;  // by content: the variants with activity, in id order
  uint64_t shown = 0, used = 0, viewed = 0, dismissed = 0, won = 0, lost = 0;
  double usage_rate = 0;           // used / shown; 0 when shown is 0
  std::optional<double> win_rate;  // won / (won + lost)
  std::optional<double> lift;      // win_rate / the win rate of all leads closed in the window
  double influenced_revenue = 0;   // amounts of won leads credited to the asset
  std::optional<int64_t> last_used;
};

struct AssetReport {
  std::vector<AssetReportRow> rows;
  AssetReportRow totals;  // sums over every matching asset (not only the rows returned)
  uint64_t matching = 0;  // assets with activity that pass the filters
  uint64_t content_items = 0;  // by content: the content items those assets form; else 0
  uint64_t leads_won = 0, leads_lost = 0;
  std::optional<double> leads_win_rate;
};

// Live, active assets sales does not use: never in the window, or shown
// often (at least rarely_shown_min times) but used in under rarely_rate of the showings.
struct UnusedReport {
  std::vector<AssetReportRow> never_used;
  std::vector<AssetReportRow> rarely_used;
};

// One bucket of a usage trend: bucket_days whole UTC days from from_ms (the
// last bucket ends at the window's last day), with the report.assets totals.
struct TrendBucket {
  int64_t from_ms = 0, to_ms = 0;  // 00:00 UTC of the first day, 23:59:59.999 of the last
  uint64_t assets = 0;             // assets with activity in the bucket
  AssetReportRow totals;           // the counts and rates of AssetReport::totals (no id or title)
};

struct RepReportRow {
  std::string rep_id;
  uint64_t shown = 0;  // items recommended to the rep
  uint64_t used = 0;
  double usage_rate = 0;
  uint64_t dismissed = 0;
  uint64_t leads_won = 0, leads_lost = 0;  // outcomes the rep's CRM reported with this rep_id
  std::optional<double> win_rate;
};

struct FunnelReportRow {
  std::string stage;
  uint64_t entered = 0;
  // Leads that advanced from / were won / were lost at this stage, with and
  // without content used while they were at it.
  uint64_t advanced_with_content = 0, advanced_without_content = 0;
  uint64_t won_with_content = 0, won_without_content = 0;
  uint64_t lost_with_content = 0, lost_without_content = 0;
};

// ---- The holdout experiment (docs/experiment.md) ----------------------------

struct ExperimentQuery {
  // Leads assigned (first recommended) on the UTC days of [from_ms, to_ms];
  // their outcomes count whenever they came.
  int64_t from_ms = 0;
  int64_t to_ms = INT64_MAX / 2;
  // "" = no breakdown; "stage": by the stage the lead entered the experiment
  // at (of its first recommend); "rep": by the rep of its first recommend.
  std::string by;
};

// One arm's sums over the leads assigned to it: what the aggregates keep.
struct ExperimentCounts {
  uint64_t leads = 0;  // assigned
  uint64_t won = 0, lost = 0;  // the leads' latest outcomes at or after their assignment
  double won_amount = 0;       // sum of the won leads' amounts
  double won_amount_sq = 0;    // sum of their squares (whole currency units)
  double days_to_close = 0;    // sum over closed leads of the days from assignment to outcome
  double days_to_close_sq = 0; // sum of their squares
};

struct Interval {
  double lo = 0, hi = 0;
};

struct ExperimentArm {
  uint64_t leads = 0, closed = 0, won = 0, lost = 0;
  std::optional<double> win_rate;          // won / closed
  std::optional<Interval> win_rate_ci;     // Wilson score, 95%
  std::optional<double> revenue_per_closed_lead;  // won amounts / closed (a lost lead: 0)
  std::optional<Interval> revenue_per_closed_lead_ci;  // normal approximation, 95%; needs 2 closed
  std::optional<double> mean_days_to_close;       // from assignment to outcome
  std::optional<Interval> mean_days_to_close_ci;  // normal approximation, 95%; needs 2 closed
};

// Treatment against holdout.
struct ExperimentComparison {
  ExperimentArm treatment, holdout;
  std::optional<double> difference;    // win rates, treatment minus holdout
  std::optional<Interval> difference_ci;  // Newcombe's hybrid score interval (Wilson), 95%
  std::optional<double> p_value;       // two-sided, pooled two-proportion z-test
  std::optional<double> revenue_difference;  // revenue per closed lead, treatment minus holdout
  std::optional<Interval> revenue_difference_ci;  // normal approximation (unpooled), 95%
  // The interval excludes 0, p < 0.05, and each arm has at least 5 won and 5
  // lost leads (the normal approximations need them).
  bool conclusive = false;
  // Closed leads still needed (both arms, at the current split) for 80%
  // power to find the observed difference at the 5% level; 0 when
  // conclusive; unset when it cannot be estimated yet (an arm with no
  // closed lead, or no observed difference).
  std::optional<uint64_t> closed_leads_needed;
  std::string note;  // in plain words; says when the sample is too small to conclude
};

struct ExperimentReport {
  double holdout_fraction = 0;  // configured now (leads keep the arm they got)
  ExperimentComparison overall;
  struct Group {
    std::string key;  // the stage or rep ("" for events without a rep)
    ExperimentComparison comparison;
  };
  std::vector<Group> groups;  // with ExperimentQuery::by, in stage order or by rep
};

// Progress of a re-aggregation: phase "replay" counts events replayed (total:
// the events when it started), then phase "write" counts days written.
using ReaggregateProgress = std::function<void(const char* phase, uint64_t done, uint64_t total)>;

// What a re-aggregation of the raw event log found and did.
struct ReaggregateResult {
  uint64_t events = 0;     // events replayed
  uint64_t leads = 0;      // leads replayed
  uint64_t keys = 0;       // derived counters recomputed (non-zero keys)
  uint64_t differing = 0;  // keys whose recomputed value differs from the live one
  bool written = false;    // the recomputed counters replaced the live ones
  int64_t ms = 0;          // wall time
  int64_t paused_ms = 0;   // the longest time the feedback writer was paused at once
};

// reports.phrases: the org's own words (docs/ranking.md), per asset the
// context terms reps used it after.
struct PhraseQuery {
  std::string asset_id;  // empty = every asset with phrases
  uint32_t limit = 20;   // phrases per asset, 1..1000, most supported first
};
struct PhraseReport {
  struct Phrase {
    std::string term;
    uint64_t uses = 0;     // uses of the asset after a context with the term, all time
    double support = 0;    // the uses weighted by age (halved every phrase_half_life_days)
    bool learned = false;  // uses >= phrase_min_support: recommend counts it
  };
  struct AssetPhrases {
    std::string asset_id, title;  // title "" when the asset is no longer in the catalog
    uint64_t uses = 0;            // the sum over its phrases
    std::vector<Phrase> phrases;  // highest support first (then term)
  };
  uint32_t min_support = 0;
  double half_life_days = 0;
  std::vector<AssetPhrases> assets;  // most uses first (then asset id)
};

struct DismissalReport {
  struct Reason {
    std::string reason;
    uint64_t count = 0;
  };
  struct AssetReason {
    std::string asset_id, title, reason;
    uint64_t count = 0;
  };
  std::vector<Reason> reasons;        // overall, most frequent first
  std::vector<AssetReason> by_asset;  // most frequent first
};

}  // namespace playbook

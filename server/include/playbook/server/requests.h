// Params -> typed requests: one pure function per method. JSON in; a typed
// request, or an InvalidArgument Status naming the offending field, out. No
// engine, no I/O, no state: the handlers (server/src/methods*.cpp) call these and
// then the engine, and tests/fuzz/ feeds them arbitrary JSON.
//
// Numbers are range-checked where they are converted: integers against the
// bounds below, vectors element by element (finite as float32), amounts and
// timestamps against the bounds docs/protocol.md states. Strings are bounded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/engine/status.h"
#include "playbook/engine/types.h"
#include "playbook/server/jsonrpc.h"

namespace playbook::server {

// ---- Bounds the protocol states --------------------------------------------------

// Timestamps (ts, from, to): ms since the epoch, 0 .. the end of year 9999 UTC.
inline constexpr int64_t kMaxTimestampMs = 253402300799999;
// A won deal's amount: 0 .. one billion (the deal's currency units). Reports sum
// amounts in integer cents; this bound keeps every sum exact and finite.
inline constexpr double kMaxAmount = 1e9;
// Elements of an id list (assets.get, assets.delete, exclude_ids).
inline constexpr size_t kMaxIds = 1000;
// Assets of one assets.upsert, events of one feedback.record.
inline constexpr size_t kMaxAssetsPerCall = 10000;
inline constexpr size_t kMaxEventsPerCall = 10000;
// Numbers in a vector (the engine checks the configured dimension).
inline constexpr size_t kMaxVector = 4096;

// ---- Typed requests (those that are not an engine type already) -------------------

struct AssetsGetRequest {
  std::vector<std::string> ids;
  bool with_vectors = false;
};

struct AssetsSearchRequest {
  AssetFilter filter;  // stage, types, language, tags_any, exclude_ids
  std::optional<std::string> query;
  std::vector<float> vector;  // empty: embed `query`
  size_t k = 10;
};

// reports.trend: the reports.assets filters over [from, to] in buckets.
struct TrendRequest {
  ReportQuery query;
  uint32_t bucket_days = 7;
};
constexpr int64_t kMaxTrendBuckets = 366;

struct UnusedRequest {
  ReportQuery query;
  uint64_t min_shown = 10;
  double max_usage_rate = 0.05;
};

struct AggregatesRebuildRequest {
  bool check = false;
};

struct ServerBackupRequest {
  std::string dir;
};

struct DebugSleepRequest {
  int64_t ms = 0;
  int64_t notify = 0;
};

struct DebugFailRequest {
  std::string code;
  std::string field;
};

// ---- One parser per method -----------------------------------------------------------

// Methods that take no params ({} or absent): server.stats, index.status, index.rebuild.
Status ParseNoParams(const json& params);

Result<RecommendRequest> ParseRecommend(const json& params);
Result<std::vector<Event>> ParseFeedbackRecord(const json& params);
Result<std::string> ParseLeadsGet(const json& params);  // the lead id

Result<std::vector<Asset>> ParseAssetsUpsert(const json& params);
Result<AssetsGetRequest> ParseAssetsGet(const json& params);
Result<std::vector<std::string>> ParseAssetsDelete(const json& params);  // the ids
Result<ListQuery> ParseAssetsList(const json& params);
Result<AssetsSearchRequest> ParseAssetsSearch(const json& params);

// reports.funnel and reports.reps: {"from"?, "to"?}.
Result<ReportQuery> ParseReportWindow(const json& params);
Result<ReportQuery> ParseReportsAssets(const json& params);
Result<UnusedRequest> ParseReportsUnused(const json& params);
// reports.trend: {"from", "to", "bucket_days"?: 1..366, "stage"?, "rep_id"?, "type"?};
// at most kMaxTrendBuckets buckets.
Result<TrendRequest> ParseReportsTrend(const json& params);
Result<ReportQuery> ParseReportsDismissals(const json& params);
// reports.phrases: {"asset_id"?, "limit"?: 1..1000}.
Result<PhraseQuery> ParseReportsPhrases(const json& params);
// reports.experiment: {"from"?, "to"?, "by"?: "stage" | "rep"}.
Result<ExperimentQuery> ParseReportsExperiment(const json& params);
Result<AggregatesRebuildRequest> ParseAggregatesRebuild(const json& params);

Result<ServerBackupRequest> ParseServerBackup(const json& params);
Result<DebugSleepRequest> ParseDebugSleep(const json& params);
Result<DebugFailRequest> ParseDebugFail(const json& params);

// ---- The table, for fuzzing and tests ----------------------------------------------

// Runs the params parser of `method` and returns its verdict; NotFound for a
// method name with no parser. Every method the daemon registers has one.
Status CheckParams(std::string_view method, const json& params);
// The names CheckParams knows, in a fixed order.
std::vector<std::string> ParsedMethods();

}  // namespace playbook::server

// The params parser of every method: JSON to a typed request, or the first
// error with the path of the field at fault. See requests.h.
#include "playbook/server/requests.h"

#include <functional>

#include "playbook/server/params.h"

namespace playbook::server {
namespace {

// "[3]" appended to a path; built by append (GCC 12 warns falsely on "[" + ...).
std::string Indexed(std::string path, size_t i) {
  return path.append("[").append(std::to_string(i)).append("]");
}

// filter: {"types"?, "language"?, "tags_any"?} into `f`; the filter's own error
// (with its nested path).
Status ReadFilterStatus(ParamReader& r, AssetFilter* f) {
  const json* filter = r.Raw("filter");
  if (filter == nullptr || filter->is_null()) return Status::Ok();
  ParamReader fr(*filter, r.PathOf("filter"));
  f->types = fr.Strings("types", false, 64);
  f->language = fr.OptString("language", 35).value_or("");
  f->tags_any = fr.Strings("tags_any", false, 64);
  return fr.Finish();
}

// "zh", "en-GB", "zh-Hans-CN": 2 or 3 letters, then -subtags of 1..8 letters or digits.
bool IsLanguageTag(std::string_view tag) {
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto alnum = [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); };
  size_t i = 0;
  while (i < tag.size() && alpha(tag[i])) ++i;
  if (i < 2 || i > 3) return false;
  while (i < tag.size()) {
    if (tag[i++] != '-') return false;
    const size_t start = i;
    while (i < tag.size() && alnum(tag[i])) ++i;
    if (i == start || i - start > 8) return false;
  }
  return true;
}

void ReadWindow(ParamReader& r, ReportQuery* q) {
  q->from_ms = r.Int("from", 0, 0, kMaxTimestampMs);
  q->to_ms = r.Int("to", INT64_MAX / 2, 0, kMaxTimestampMs);
}

// One asset of assets.upsert; `path` is "assets[3]".
Status ReadAsset(const json& v, const std::string& path, Asset* a) {
  ParamReader r(v, path);
  a->id = r.String("id", 128);
  a->title = r.String("title", 4096);
  a->body = r.OptString("body").value_or("");
  a->url = r.OptString("url", 4096).value_or("");
  a->language = r.OptString("language", 35).value_or("");
  a->type = r.String("type", 64);
  a->stages = r.Strings("stages", /*required=*/true, 64);
  if (r.ok() && a->stages.empty()) r.Fail("stages", "at least one stage");
  a->tags = r.Strings("tags", /*required=*/false, 64);
  a->vector = r.Floats("vector", kMaxVector);  // the engine checks the dimension
  a->active = r.Bool("active", true);
  // The engine checks the id syntax and that it is not the asset's own.
  const std::optional<std::string> variant_of = r.OptString("variant_of", 128);
  if (variant_of && variant_of->empty()) r.Fail("variant_of", "must be an asset id (1..128 characters); null or absent for none");
  a->variant_of = variant_of.value_or("");
  return r.Finish();
}

Status ReadEvent(const json& v, const std::string& path, Event* e) {
  ParamReader er(v, path);
  e->event_id = er.String("event_id", 256);
  const std::string type = er.String("type", 32);
  if (er.ok() && (!ParseEventType(type, &e->type) || e->type == EventType::kShown)) {
    er.Fail("type", "unknown type '" + type + "'; one of used, viewed, dismissed, stage_changed, won, lost");
  }
  e->lead_id = er.String("lead_id", 256);
  e->asset_id = er.OptString("asset_id", 128).value_or("");
  e->stage = er.OptString("stage", 64).value_or("");
  e->rep_id = er.OptString("rep_id", 256).value_or("");
  e->recommendation_id = er.OptString("recommendation_id", 256).value_or("");
  e->reason = er.OptString("reason", 1000).value_or("");
  e->amount = er.OptNumber("amount", 0, kMaxAmount).value_or(0);
  e->ts = er.Int("ts", 0, 0, kMaxTimestampMs);
  return er.Finish();
}

// A required array member of 1..max elements.
const json* RequiredArray(ParamReader& r, std::string_view key, size_t max, const char* what) {
  const json* list = r.Raw(key);
  if (!r.ok()) return nullptr;
  if (list == nullptr || list->is_null() || !list->is_array()) {
    r.Fail(key, std::string("required: an array of ") + what);
    return nullptr;
  }
  if (list->empty()) {
    r.Fail(key, std::string("at least one of ") + what);
    return nullptr;
  }
  if (list->size() > max) {
    r.Fail(key, "more than " + std::to_string(max) + " " + what + " in one call (got " +
                    std::to_string(list->size()) + ")");
    return nullptr;
  }
  return list;
}

}  // namespace

Status ParseNoParams(const json& params) {
  ParamReader r(params);
  return r.Finish();
}

Result<RecommendRequest> ParseRecommend(const json& params) {
  ParamReader r(params);
  RecommendRequest req;
  const json* lead = r.Raw("lead");
  if (lead == nullptr || lead->is_null()) {
    r.Fail("lead", "required: {\"id\", \"stage\", \"context\"?, \"language\"?}");
  } else {
    ParamReader lr(*lead, "lead");
    req.lead_id = lr.String("id", 256);
    req.stage = lr.String("stage", 64);
    req.context = lr.OptString("context", 1 << 16).value_or("");
    req.vector = lr.Floats("vector", kMaxVector);  // the engine checks the dimension
    if (std::optional<std::string> language = lr.OptString("language", 35); language.has_value()) {
      if (!IsLanguageTag(*language)) {
        lr.Fail("language", "expected a language tag: 2 or 3 letters, then optional -subtags of 1..8 letters or "
                            "digits, e.g. \"zh\", \"en\", \"zh-CN\"");
      }
      req.language = std::move(*language);
    }
    if (const json* attrs = lr.Raw("attributes"); attrs != nullptr && !attrs->is_null()) {
      if (!attrs->is_object()) {
        lr.Fail("attributes", "expected an object of strings");
      } else {
        for (auto it = attrs->begin(); it != attrs->end(); ++it) {
          if (!it->is_string()) lr.Fail("attributes." + it.key(), "expected a string");
        }
      }
    }
    if (Status s = lr.Finish(); !s.ok()) return s;
  }
  req.k = size_t(r.Int("k", 5, 1, 100));
  if (Status s = ReadFilterStatus(r, &req.filter); !s.ok()) return s;
  req.exclude_seen = r.Bool("exclude_seen", true);
  req.filter.exclude_ids = r.Strings("exclude_ids", false, kMaxIds);
  req.rep_id = r.OptString("rep_id", 256).value_or("");
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<std::vector<Event>> ParseFeedbackRecord(const json& params) {
  ParamReader r(params);
  const json* list = RequiredArray(r, "events", kMaxEventsPerCall, "events");
  if (Status s = r.Finish(); !s.ok()) return s;
  std::vector<Event> events(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    if (Status s = ReadEvent((*list)[i], Indexed("events", i), &events[i]); !s.ok()) return s;
  }
  return events;
}

Result<std::string> ParseLeadsGet(const json& params) {
  ParamReader r(params);
  std::string id = r.String("id", 256);
  if (Status s = r.Finish(); !s.ok()) return s;
  return id;
}

Result<std::vector<Asset>> ParseAssetsUpsert(const json& params) {
  ParamReader r(params);
  const json* list = RequiredArray(r, "assets", kMaxAssetsPerCall, "assets");
  if (Status s = r.Finish(); !s.ok()) return s;
  std::vector<Asset> assets(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    if (Status s = ReadAsset((*list)[i], Indexed("assets", i), &assets[i]); !s.ok()) return s;
  }
  return assets;
}

Result<AssetsGetRequest> ParseAssetsGet(const json& params) {
  ParamReader r(params);
  AssetsGetRequest req;
  req.ids = r.Strings("ids", /*required=*/true, kMaxIds);
  req.with_vectors = r.Bool("with_vectors", false);
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<std::vector<std::string>> ParseAssetsDelete(const json& params) {
  ParamReader r(params);
  std::vector<std::string> ids = r.Strings("ids", /*required=*/true, kMaxIds);
  if (Status s = r.Finish(); !s.ok()) return s;
  return ids;
}

Result<ListQuery> ParseAssetsList(const json& params) {
  ParamReader r(params);
  ListQuery q;
  q.stage = r.OptString("stage", 64).value_or("");
  q.type = r.OptString("type", 64).value_or("");
  q.cursor = r.OptString("cursor", 256).value_or("");
  q.limit = uint32_t(r.Int("limit", 100, 1, 1000));
  q.with_vectors = r.Bool("with_vectors", false);
  if (Status s = r.Finish(); !s.ok()) return s;
  return q;
}

Result<AssetsSearchRequest> ParseAssetsSearch(const json& params) {
  ParamReader r(params);
  AssetsSearchRequest req;
  req.filter.stage = r.String("stage", 64);
  req.query = r.OptString("query", 1 << 16);
  req.vector = r.Floats("vector", kMaxVector);
  req.k = size_t(r.Int("k", 10, 1, 100));
  req.filter.exclude_ids = r.Strings("exclude_ids", false, kMaxIds);
  if (Status s = ReadFilterStatus(r, &req.filter); !s.ok()) return s;
  if (Status s = r.Finish(); !s.ok()) return s;
  if (req.vector.empty() && !req.query) {
    return Status::InvalidArgument("query", "required: a query text or a vector");
  }
  return req;
}

Result<ReportQuery> ParseReportWindow(const json& params) {
  ParamReader r(params);
  ReportQuery q;
  ReadWindow(r, &q);
  if (Status s = r.Finish(); !s.ok()) return s;
  return q;
}

Result<ReportQuery> ParseReportsAssets(const json& params) {
  ParamReader r(params);
  ReportQuery q;
  ReadWindow(r, &q);
  q.stage = r.OptString("stage", 64).value_or("");
  q.rep_id = r.OptString("rep_id", 256).value_or("");
  q.type = r.OptString("type", 64).value_or("");
  q.sort = r.OptString("sort", 64).value_or("used");
  q.limit = uint32_t(r.Int("limit", 100, 1, 100000));
  q.by = r.OptString("by", 16).value_or("asset");
  if (r.ok() && q.by != "asset" && q.by != "content") r.Fail("by", "expected \"asset\" or \"content\"");
  if (Status s = r.Finish(); !s.ok()) return s;
  return q;
}

Result<UnusedRequest> ParseReportsUnused(const json& params) {
  ParamReader r(params);
  UnusedRequest req;
  ReadWindow(r, &req.query);
  req.query.stage = r.OptString("stage", 64).value_or("");
  req.query.type = r.OptString("type", 64).value_or("");
  req.min_shown = uint64_t(r.Int("min_shown", 10, 1, INT64_MAX / 2));
  req.max_usage_rate = r.OptNumber("max_usage_rate", 0, 1).value_or(0.05);
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<TrendRequest> ParseReportsTrend(const json& params) {
  constexpr int64_t kDay = 86400000;
  ParamReader r(params);
  TrendRequest req;
  for (const char* key : {"from", "to"}) {
    if (r.ok() && !r.Has(key)) r.Fail(key, "required");
  }
  ReadWindow(r, &req.query);
  req.query.stage = r.OptString("stage", 64).value_or("");
  req.query.rep_id = r.OptString("rep_id", 256).value_or("");
  req.query.type = r.OptString("type", 64).value_or("");
  req.bucket_days = uint32_t(r.Int("bucket_days", 7, 1, 366));
  if (r.ok() && req.query.to_ms < req.query.from_ms) r.Fail("to", "before from");
  if (r.ok()) {
    const int64_t days = req.query.to_ms / kDay - req.query.from_ms / kDay + 1;
    const int64_t buckets = (days + req.bucket_days - 1) / req.bucket_days;
    if (buckets > kMaxTrendBuckets) {
      std::string why = "the window of ";
      why += std::to_string(days);
      why += " days would make ";
      why += std::to_string(buckets);
      why += " buckets; at most ";
      why += std::to_string(kMaxTrendBuckets);
      why += ": choose larger buckets or a shorter window";
      r.Fail("bucket_days", std::move(why));
    }
  }
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<ReportQuery> ParseReportsDismissals(const json& params) {
  ParamReader r(params);
  ReportQuery q;
  ReadWindow(r, &q);
  q.stage = r.OptString("stage", 64).value_or("");
  if (Status s = r.Finish(); !s.ok()) return s;
  return q;
}

Result<PhraseQuery> ParseReportsPhrases(const json& params) {
  ParamReader r(params);
  PhraseQuery q;
  q.asset_id = r.OptString("asset_id", 256).value_or("");
  q.limit = uint32_t(r.Int("limit", 20, 1, 1000));
  if (Status s = r.Finish(); !s.ok()) return s;
  return q;
}

Result<ExperimentQuery> ParseReportsExperiment(const json& params) {
  ParamReader r(params);
  ReportQuery window;
  ReadWindow(r, &window);
  ExperimentQuery q;
  q.from_ms = window.from_ms;
  q.to_ms = window.to_ms;
  q.by = r.OptString("by", 16).value_or("");
  if (r.ok() && q.by != "" && q.by != "stage" && q.by != "rep") r.Fail("by", "expected \"stage\" or \"rep\"");
  if (Status s = r.Finish(); !s.ok()) return s;
  return q;
}

Result<AggregatesRebuildRequest> ParseAggregatesRebuild(const json& params) {
  ParamReader r(params);
  AggregatesRebuildRequest req;
  req.check = r.Bool("check", false);
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<ServerBackupRequest> ParseServerBackup(const json& params) {
  ParamReader r(params);
  ServerBackupRequest req;
  req.dir = r.String("dir", 4096);
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<DebugSleepRequest> ParseDebugSleep(const json& params) {
  ParamReader r(params);
  DebugSleepRequest req;
  req.ms = r.Int("ms", 0, 0, 60000);
  req.notify = r.Int("notify", 0, 0, 100);
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

Result<DebugFailRequest> ParseDebugFail(const json& params) {
  ParamReader r(params);
  DebugFailRequest req;
  req.code = r.String("code", 64);
  req.field = r.OptString("field", 256).value_or("");
  if (Status s = r.Finish(); !s.ok()) return s;
  return req;
}

namespace {

template <class T>
Status Verdict(const Result<T>& r) {
  return r.ok() ? Status::Ok() : r.status();
}

struct Parser {
  const char* method;
  std::function<Status(const json&)> check;
};

const std::vector<Parser>& Table() {
  static const std::vector<Parser> table = {
      {"server.stats", ParseNoParams},
      {"server.backup", [](const json& p) { return Verdict(ParseServerBackup(p)); }},
      {"recommend", [](const json& p) { return Verdict(ParseRecommend(p)); }},
      {"feedback.record", [](const json& p) { return Verdict(ParseFeedbackRecord(p)); }},
      {"leads.get", [](const json& p) { return Verdict(ParseLeadsGet(p)); }},
      {"assets.upsert", [](const json& p) { return Verdict(ParseAssetsUpsert(p)); }},
      {"assets.get", [](const json& p) { return Verdict(ParseAssetsGet(p)); }},
      {"assets.delete", [](const json& p) { return Verdict(ParseAssetsDelete(p)); }},
      {"assets.list", [](const json& p) { return Verdict(ParseAssetsList(p)); }},
      {"assets.search", [](const json& p) { return Verdict(ParseAssetsSearch(p)); }},
      {"index.status", ParseNoParams},
      {"index.rebuild", ParseNoParams},
      {"aggregates.rebuild", [](const json& p) { return Verdict(ParseAggregatesRebuild(p)); }},
      {"reports.assets", [](const json& p) { return Verdict(ParseReportsAssets(p)); }},
      {"reports.unused", [](const json& p) { return Verdict(ParseReportsUnused(p)); }},
      {"reports.trend", [](const json& p) { return Verdict(ParseReportsTrend(p)); }},
      {"reports.dismissals", [](const json& p) { return Verdict(ParseReportsDismissals(p)); }},
      {"reports.phrases", [](const json& p) { return Verdict(ParseReportsPhrases(p)); }},
      {"reports.funnel", [](const json& p) { return Verdict(ParseReportWindow(p)); }},
      {"reports.reps", [](const json& p) { return Verdict(ParseReportWindow(p)); }},
      {"reports.experiment", [](const json& p) { return Verdict(ParseReportsExperiment(p)); }},
      {"debug.sleep", [](const json& p) { return Verdict(ParseDebugSleep(p)); }},
      {"debug.fail", [](const json& p) { return Verdict(ParseDebugFail(p)); }},
  };
  return table;
}

}  // namespace

Status CheckParams(std::string_view method, const json& params) {
  for (const Parser& p : Table()) {
    if (method == p.method) return p.check(params);
  }
  return Status::NotFound("no params parser for method '" + std::string(method) + "'");
}

std::vector<std::string> ParsedMethods() {
  std::vector<std::string> names;
  for (const Parser& p : Table()) names.emplace_back(p.method);
  return names;
}

}  // namespace playbook::server

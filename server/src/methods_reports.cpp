// Handlers of reports.* and aggregates.rebuild.
#include <spdlog/spdlog.h>

#include "playbook/engine/engine.h"
#include "playbook/server/methods.h"
#include "playbook/server/requests.h"
#include "jobs.h"

namespace playbook::server {
namespace {

json Optional(const std::optional<double>& v) { return v ? json(*v) : json(); }

// The counts of a row, of the totals and of a trend bucket (AssetCounts in clients/js).
json CountsJson(const AssetReportRow& r) {
  return json{{"shown", r.shown},
              {"used", r.used},
              {"usage_rate", r.usage_rate},
              {"viewed", r.viewed},
              {"dismissed", r.dismissed},
              {"won", r.won},
              {"lost", r.lost},
              {"win_rate", Optional(r.win_rate)},
              {"influenced_revenue", r.influenced_revenue}};
}

json RowJson(const AssetReportRow& r) {
  json out = CountsJson(r);
  out["asset_id"] = r.asset_id;
  out["title"] = r.title;
  out["type"] = r.type;
  out["deleted"] = r.deleted;
  out["lift"] = Optional(r.lift);
  out["last_used"] = r.last_used ? json(*r.last_used) : json();
  return out;
}

json IntervalJson(const std::optional<Interval>& ci) { return ci ? json::array({ci->lo, ci->hi}) : json(); }

json ArmJson(const ExperimentArm& a) {
  return json{{"leads", a.leads},
              {"closed", a.closed},
              {"won", a.won},
              {"lost", a.lost},
              {"win_rate", Optional(a.win_rate)},
              {"win_rate_ci", IntervalJson(a.win_rate_ci)},
              {"revenue_per_closed_lead", Optional(a.revenue_per_closed_lead)},
              {"revenue_per_closed_lead_ci", IntervalJson(a.revenue_per_closed_lead_ci)},
              {"mean_days_to_close", Optional(a.mean_days_to_close)},
              {"mean_days_to_close_ci", IntervalJson(a.mean_days_to_close_ci)}};
}

// The fixed shape of reports.experiment (docs/protocol.md), and of each group.
void ComparisonJson(const ExperimentComparison& c, json* out) {
  (*out)["arms"] = {{"treatment", ArmJson(c.treatment)}, {"holdout", ArmJson(c.holdout)}};
  (*out)["difference"] = {{"win_rate", Optional(c.difference)},
                          {"ci", IntervalJson(c.difference_ci)},
                          {"p_value", Optional(c.p_value)},
                          {"revenue_per_closed_lead", Optional(c.revenue_difference)},
                          {"revenue_per_closed_lead_ci", IntervalJson(c.revenue_difference_ci)}};
  (*out)["conclusive"] = c.conclusive;
  (*out)["closed_leads_needed"] = c.closed_leads_needed ? json(*c.closed_leads_needed) : json();
  (*out)["note"] = c.note;
}

}  // namespace

void AddReportMethods(Dispatcher& d, Engine& engine, Jobs& jobs) {
  // Re-aggregation: rebuilds every aggregate from the raw event log (admin:
  // it rewrites stored state and pauses the feedback writer at the end). It
  // runs for minutes on a big log, so it runs on a job thread of its own, not
  // on a request worker; the response is sent when it is done (deferred), as
  // it always was. In a batch (which answers in one frame) it runs inline.
  d.Add({"aggregates.rebuild", Role::kAdmin, [&engine, &jobs](const json& params, const CallContext& ctx) -> Result<json> {
           auto req = ParseAggregatesRebuild(params);
           if (!req.ok()) return req.status();
           const bool check = req.value().check;
           auto notify = ctx.notify;
           auto run = [&engine, check, notify]() -> Result<json> {
             auto result = engine.Reaggregate(!check, [notify](const char* phase, uint64_t done, uint64_t total) {
               if (notify) {
                 notify(MakeNotification("aggregates.progress", {{"phase", phase}, {"done", done}, {"total", total}}));
               }
             });
             if (!result.ok()) {
               spdlog::warn("aggregates.rebuild failed: {}", result.status().ToString());
               return result.status();
             }
             const ReaggregateResult& x = result.value();
             spdlog::info("aggregates.rebuild{}: {} events of {} leads replayed in {} ms (writer paused at most {} ms); "
                          "{} aggregates, {} differed from the live ones{}",
                          check ? " (check)" : "", x.events, x.leads, x.ms, x.paused_ms, x.keys, x.differing,
                          x.written ? "; written" : "");
             return json{{"events", x.events},       {"leads", x.leads},     {"keys", x.keys},
                         {"differing", x.differing}, {"written", x.written}, {"ms", x.ms},
                         {"paused_ms", x.paused_ms}};
           };
           if (!ctx.can_defer) return run();
           jobs.Start([run, notify, id = ctx.id] {
             Result<json> r = run();
             notify(r.ok() ? MakeResult(id, std::move(r).value()) : MakeError(id, ErrorFromStatus(r.status())));
           });
           return Deferred();
         }});

  d.Add({"reports.funnel", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseReportWindow(params);
           if (!q.ok()) return q.status();
           auto rows = engine.ReportFunnel(q.value());
           if (!rows.ok()) return rows.status();
           json out = json::array();
           for (const FunnelReportRow& x : rows.value()) {
             out.push_back({{"stage", x.stage},
                            {"entered", x.entered},
                            {"advanced", {{"with_content", x.advanced_with_content}, {"without_content", x.advanced_without_content}}},
                            {"won", {{"with_content", x.won_with_content}, {"without_content", x.won_without_content}}},
                            {"lost", {{"with_content", x.lost_with_content}, {"without_content", x.lost_without_content}}}});
           }
           return json{{"stages", std::move(out)}};
         }});

  d.Add({"reports.experiment", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseReportsExperiment(params);
           if (!q.ok()) return q.status();
           auto report = engine.ReportExperiment(q.value());
           if (!report.ok()) return report.status();
           const ExperimentReport& x = report.value();
           const ExperimentQuery& w = q.value();
           json out{{"from", w.from_ms}, {"to", w.to_ms}, {"holdout_fraction", x.holdout_fraction}};
           ComparisonJson(x.overall, &out);
           out["method"] = {{"win_rate_ci", "wilson"},
                            {"difference_ci", "newcombe"},
                            {"p_value", "two-proportion z-test (pooled), two-sided"},
                            {"mean_ci", "normal approximation"},
                            {"confidence", 0.95}};
           if (!w.by.empty()) {
             json groups = json::array();
             for (const auto& g : x.groups) {
               json row{{w.by, g.key}};
               ComparisonJson(g.comparison, &row);
               groups.push_back(std::move(row));
             }
             out["by"] = w.by;
             out["groups"] = std::move(groups);
           }
           return out;
         }});

  d.Add({"reports.reps", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseReportWindow(params);
           if (!q.ok()) return q.status();
           auto rows = engine.ReportReps(q.value());
           if (!rows.ok()) return rows.status();
           json out = json::array();
           for (const RepReportRow& x : rows.value()) {
             out.push_back({{"rep_id", x.rep_id}, {"shown", x.shown}, {"used", x.used}, {"usage_rate", x.usage_rate},
                            {"dismissed", x.dismissed}, {"leads_won", x.leads_won}, {"leads_lost", x.leads_lost},
                            {"win_rate", Optional(x.win_rate)}});
           }
           return json{{"rows", std::move(out)}};
         }});

  d.Add({"reports.unused", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto req = ParseReportsUnused(params);
           if (!req.ok()) return req.status();
           const UnusedRequest& u = req.value();
           auto report = engine.ReportUnused(u.query, u.min_shown, u.max_usage_rate);
           if (!report.ok()) return report.status();
           json never = json::array(), rarely = json::array();
           for (const auto& row : report.value().never_used) never.push_back(RowJson(row));
           for (const auto& row : report.value().rarely_used) rarely.push_back(RowJson(row));
           return json{{"never_used", std::move(never)}, {"rarely_used", std::move(rarely)}};
         }});

  d.Add({"reports.trend", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto req = ParseReportsTrend(params);
           if (!req.ok()) return req.status();
           auto buckets = engine.ReportTrend(req.value().query, req.value().bucket_days);
           if (!buckets.ok()) return buckets.status();
           json out = json::array();
           for (const TrendBucket& b : buckets.value()) {
             json x = CountsJson(b.totals);
             x["from"] = b.from_ms;
             x["to"] = b.to_ms;
             x["assets"] = b.assets;
             out.push_back(std::move(x));
           }
           return json{{"bucket_days", req.value().bucket_days}, {"buckets", std::move(out)}};
         }});

  d.Add({"reports.dismissals", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseReportsDismissals(params);
           if (!q.ok()) return q.status();
           auto report = engine.ReportDismissals(q.value());
           if (!report.ok()) return report.status();
           json reasons = json::array(), by_asset = json::array();
           for (const auto& x : report.value().reasons) reasons.push_back({{"reason", x.reason}, {"count", x.count}});
           for (const auto& x : report.value().by_asset) {
             by_asset.push_back({{"asset_id", x.asset_id}, {"title", x.title}, {"reason", x.reason}, {"count", x.count}});
           }
           return json{{"reasons", std::move(reasons)}, {"by_asset", std::move(by_asset)}};
         }});

  d.Add({"reports.phrases", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseReportsPhrases(params);
           if (!q.ok()) return q.status();
           auto report = engine.ReportPhrases(q.value());
           if (!report.ok()) return report.status();
           const PhraseReport& rep = report.value();
           json assets = json::array();
           for (const auto& a : rep.assets) {
             json phrases = json::array();
             for (const auto& p : a.phrases) {
               phrases.push_back({{"term", p.term}, {"uses", p.uses}, {"support", p.support}, {"learned", p.learned}});
             }
             assets.push_back(
                 {{"asset_id", a.asset_id}, {"title", a.title}, {"uses", a.uses}, {"phrases", std::move(phrases)}});
           }
           return json{{"min_support", rep.min_support}, {"half_life_days", rep.half_life_days},
                       {"assets", std::move(assets)}};
         }});

  d.Add({"reports.assets", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseReportsAssets(params);
           if (!q.ok()) return q.status();
           auto report = engine.ReportAssets(q.value());
           if (!report.ok()) return report.status();
           const AssetReport& rep = report.value();
           json rows = json::array();
           const bool by_content = q.value().by == "content";
           for (const AssetReportRow& row : rep.rows) {
             json out = RowJson(row);
             if (by_content) {  // the content item's variants
               json variants = json::array();
               for (const ReportVariant& v : row.variants) {
                 variants.push_back({{"asset_id", v.asset_id}, {"language", v.language}});
               }
               out["variants"] = std::move(variants);
             }
             rows.push_back(std::move(out));
           }
           const AssetReportRow& t = rep.totals;
           json totals = CountsJson(t);
           totals["assets"] = rep.matching;
           if (by_content) totals["content_items"] = rep.content_items;
           totals["leads_won"] = rep.leads_won;
           totals["leads_lost"] = rep.leads_lost;
           totals["leads_win_rate"] = Optional(rep.leads_win_rate);
           return json{{"rows", std::move(rows)}, {"totals", std::move(totals)}};
         }});
}

}  // namespace playbook::server


// Content effectiveness reports from the aggregates the feedback writer keeps.
#include <algorithm>
#include <functional>
#include <map>
#include <tuple>
#include <unordered_map>

#include "codec.h"
#include "engine_impl.h"
#include "feedback.h"
#include "variants.h"

namespace playbook {
namespace {

using Column = std::function<double(const AssetReportRow&)>;

// The sortable columns; null values sort last.
const std::map<std::string, Column>& Columns() {
  static const std::map<std::string, Column> columns = {
      {"shown", [](const AssetReportRow& r) { return double(r.shown); }},
      {"used", [](const AssetReportRow& r) { return double(r.used); }},
      {"usage_rate", [](const AssetReportRow& r) { return r.usage_rate; }},
      {"viewed", [](const AssetReportRow& r) { return double(r.viewed); }},
      {"dismissed", [](const AssetReportRow& r) { return double(r.dismissed); }},
      {"won", [](const AssetReportRow& r) { return double(r.won); }},
      {"lost", [](const AssetReportRow& r) { return double(r.lost); }},
      {"win_rate", [](const AssetReportRow& r) { return r.win_rate.value_or(-1); }},
      {"lift", [](const AssetReportRow& r) { return r.lift.value_or(-1); }},
      {"influenced_revenue", [](const AssetReportRow& r) { return r.influenced_revenue; }},
      {"last_used", [](const AssetReportRow& r) { return double(r.last_used.value_or(-1)); }},
  };
  return columns;
}

// Adds row's counts to *sum.
void AddCounts(const AssetReportRow& row, AssetReportRow* sum) {
  sum->shown += row.shown;
  sum->used += row.used;
  sum->viewed += row.viewed;
  sum->dismissed += row.dismissed;
  sum->won += row.won;
  sum->lost += row.lost;
  sum->influenced_revenue += row.influenced_revenue;
}

// The row's usage rate, win rate and lift (against the win rate of all leads
// closed in the window) from its counts.
void SetRates(std::optional<double> leads_win_rate, AssetReportRow* row) {
  row->usage_rate = row->shown > 0 ? double(row->used) / double(row->shown) : 0.0;
  if (row->won + row->lost > 0) row->win_rate = double(row->won) / double(row->won + row->lost);
  if (row->win_rate && leads_win_rate && *leads_win_rate > 0) row->lift = *row->win_rate / *leads_win_rate;
}

}  // namespace

Result<AssetReport> EngineImpl::ReportAssets(const ReportQuery& q) {
  if (!q.stage.empty() && std::find(options_.stages.begin(), options_.stages.end(), q.stage) == options_.stages.end()) {
    std::string valid;
    for (const auto& s : options_.stages) valid += (valid.empty() ? "" : ", ") + s;
    return Status::InvalidArgument("stage", "unknown stage '" + q.stage + "'; valid stages: " + valid);
  }
  auto column = Columns().find(q.sort);
  if (column == Columns().end()) {
    std::string valid;
    for (const auto& [name, fn] : Columns()) valid += (valid.empty() ? "" : ", ") + name;
    return Status::InvalidArgument("sort", "unknown column '" + q.sort + "'; one of " + valid);
  }
  if (q.to_ms < q.from_ms) return Status::InvalidArgument("to", "before from");
  if (!q.by.empty() && q.by != "asset" && q.by != "content") {
    return Status::InvalidArgument("by", "unknown '" + q.by + "'; one of asset, content");
  }
  const bool by_content = q.by == "content";
  if (Status h = Usable(); !h.ok()) return h;

  const FeedbackStore::AggregateSums sums = feedback_->Aggregate(q.from_ms, q.to_ms, q.stage, q.rep_id);
  AssetReport report;
  report.leads_won = sums.leads_won;
  report.leads_lost = sums.leads_lost;
  if (sums.leads_won + sums.leads_lost > 0) {
    report.leads_win_rate = double(sums.leads_won) / double(sums.leads_won + sums.leads_lost);
  }
  // Titles and types, deleted assets included (reports keep their history).
  // false: the asset is not in the catalog (feedback named an unknown asset);
  // a failed read is an error, never a row without a title.
  Status read_error;
  auto describe = [&](AssetReportRow& row) {
    std::string value;
    Asset a;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), assets_cf_, row.asset_id, &value);
    if (got.IsNotFound()) return false;
    if (!got.ok()) {
      if (read_error.ok()) read_error = FromRocks(got, "reading asset '" + row.asset_id + "'");
      return false;
    }
    if (Status d = DecodeAsset(value, &a); !d.ok()) {
      if (read_error.ok()) read_error = Status::Corruption("stored asset '" + row.asset_id + "' is unreadable: " + d.message());
      return false;
    }
    row.title = a.title;
    row.type = a.type;
    row.deleted = a.deleted;
    return true;
  };
  for (const FeedbackStore::AssetActivity& activity : sums.by_asset) {
    const AssetStageStats& c = activity.stats;
    AssetReportRow row;
    row.asset_id = activity.asset_id;
    // The catalog record is read here only to filter by type; otherwise only
    // for the rows returned, below.
    if (!q.type.empty() && (!describe(row) || row.type != q.type)) {
      if (!read_error.ok()) return read_error;
      continue;
    }
    row.shown = c.shown;
    row.used = c.used;
    row.viewed = c.viewed;
    row.dismissed = c.dismissed;
    row.won = c.won;
    row.lost = c.lost;
    row.influenced_revenue = c.won_amount;
    SetRates(report.leads_win_rate, &row);
    if (activity.last_used >= 0 && row.used > 0) row.last_used = activity.last_used;
    AddCounts(row, &report.totals);
    report.rows.push_back(std::move(row));
  }
  report.matching = report.rows.size();
  if (by_content) {
    if (Status s = RollUpContent(&report.rows, report.leads_win_rate); !s.ok()) return s;
    report.content_items = report.rows.size();
  }
  AssetReportRow& t = report.totals;
  SetRates(std::nullopt, &t);  // no lift for the totals
  const Column& key = column->second;
  std::sort(report.rows.begin(), report.rows.end(), [&](const AssetReportRow& a, const AssetReportRow& b) {
    const double x = key(a), y = key(b);
    return x > y || (x == y && a.asset_id < b.asset_id);
  });
  if (report.rows.size() > q.limit) report.rows.resize(q.limit);
  if (q.type.empty() && !by_content) {  // content rows are described by the roll-up
    for (AssetReportRow& row : report.rows) {
      describe(row);
      if (!read_error.ok()) return read_error;
    }
  }
  return report;
}

Status EngineImpl::RollUpContent(std::vector<AssetReportRow>* rows, std::optional<double> leads_win_rate) {
  // The catalog records met on the way (deleted ones too: reports keep their
  // history and their links); nullopt: not in the catalog.
  std::unordered_map<std::string, std::optional<Asset>> catalog;
  Status error;
  auto read = [&](const std::string& id) -> const std::optional<Asset>& {
    auto [it, fresh] = catalog.try_emplace(id);
    if (!fresh || !error.ok()) return it->second;
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), assets_cf_, id, &value);
    if (got.ok()) {
      Asset a;
      if (Status d = DecodeAsset(value, &a); d.ok()) {
        it->second = std::move(a);
      } else {
        error = Status::Corruption("stored asset '" + id + "' is unreadable: " + d.message());
      }
    } else if (!got.IsNotFound()) {
      error = FromRocks(got, "reading asset '" + id + "'");
    }
    return it->second;
  };
  auto next = [&](const std::string& id) {
    const std::optional<Asset>& a = read(id);
    return a ? a->variant_of : std::string();
  };
  std::vector<AssetReportRow> items;
  std::unordered_map<std::string, size_t> item_of;  // content id -> its row in items
  for (AssetReportRow& row : *rows) {
    const std::string root = ContentRoot(row.asset_id, next);
    if (!error.ok()) return error;
    auto [it, fresh] = item_of.try_emplace(root, items.size());
    if (fresh) {
      items.emplace_back().asset_id = root;
      items.back().deleted = true;
    }
    AssetReportRow& g = items[it->second];
    const std::optional<Asset>& a = read(row.asset_id);
    g.variants.push_back({row.asset_id, a ? a->language : std::string()});
    g.deleted = g.deleted && a && a->deleted;
    AddCounts(row, &g);
    if (row.last_used && (!g.last_used || *row.last_used > *g.last_used)) g.last_used = row.last_used;
  }
  for (AssetReportRow& g : items) {
    std::sort(g.variants.begin(), g.variants.end(),
              [](const ReportVariant& x, const ReportVariant& y) { return x.asset_id < y.asset_id; });
    SetRates(leads_win_rate, &g);
    // The root's title and type, else (not in the catalog) the first variant's.
    const std::optional<Asset>* named = &read(g.asset_id);
    if (!*named) named = &read(g.variants.front().asset_id);
    if (*named) {
      g.title = (*named)->title;
      g.type = (*named)->type;
    }
    if (!error.ok()) return error;
  }
  rows->swap(items);
  return Status::Ok();
}

Result<std::vector<TrendBucket>> EngineImpl::ReportTrend(const ReportQuery& q, uint32_t bucket_days) {
  constexpr int64_t kDay = 86400000;
  if (bucket_days == 0) return Status::InvalidArgument("bucket_days", "at least 1");
  if (q.to_ms < q.from_ms) return Status::InvalidArgument("to", "before from");
  const int64_t first = q.from_ms / kDay * kDay, end = q.to_ms / kDay * kDay + kDay;  // [first, end)
  std::vector<TrendBucket> out;
  for (int64_t start = first; start < end; start += int64_t(bucket_days) * kDay) {
    ReportQuery b = q;
    b.from_ms = start;
    b.to_ms = std::min(end, start + int64_t(bucket_days) * kDay) - 1;
    b.sort = "used";
    b.limit = 0;  // the totals only: no catalog reads unless filtered by type
    auto report = ReportAssets(b);
    if (!report.ok()) return report.status();
    out.push_back({b.from_ms, b.to_ms, report.value().matching, std::move(report.value().totals)});
  }
  return out;
}

Result<UnusedReport> EngineImpl::ReportUnused(const ReportQuery& q, uint64_t rarely_shown_min, double rarely_rate) {
  ReportQuery all = q;
  all.type.clear();
  all.sort = "used";
  all.limit = UINT32_MAX;
  auto activity = ReportAssets(all);
  if (!activity.ok()) return activity.status();
  std::unordered_map<std::string, const AssetReportRow*> by_id;
  for (const auto& row : activity.value().rows) by_id[row.asset_id] = &row;
  UnusedReport report;
  // The catalog itself (not the events): assets never shown have no row.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), assets_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Asset a;
    if (Status d = DecodeAsset(std::string_view(it->value().data(), it->value().size()), &a); !d.ok()) {
      return Status::Corruption("stored asset '" + it->key().ToString() + "' is unreadable: " + d.message());
    }
    if (a.deleted || !a.active) continue;
    if (!q.type.empty() && a.type != q.type) continue;
    if (!q.stage.empty() && std::find(a.stages.begin(), a.stages.end(), q.stage) == a.stages.end()) continue;
    AssetReportRow row;
    if (auto r = by_id.find(a.id); r != by_id.end()) row = *r->second;
    row.asset_id = a.id;
    row.title = a.title;
    row.type = a.type;
    if (row.used == 0) {
      report.never_used.push_back(row);
    } else if (row.shown >= rarely_shown_min && row.usage_rate < rarely_rate) {
      report.rarely_used.push_back(row);
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the catalog");
  auto by_shown = [](const AssetReportRow& x, const AssetReportRow& y) {
    return x.shown > y.shown || (x.shown == y.shown && x.asset_id < y.asset_id);
  };
  std::sort(report.never_used.begin(), report.never_used.end(), by_shown);
  std::sort(report.rarely_used.begin(), report.rarely_used.end(), by_shown);
  return report;
}

Result<std::vector<FunnelReportRow>> EngineImpl::ReportFunnel(const ReportQuery& q) {
  if (Status h = Usable(); !h.ok()) return h;
  const auto sums = feedback_->Funnel(q.from_ms, q.to_ms);
  std::vector<FunnelReportRow> rows;
  for (const std::string& stage : options_.stages) {
    FunnelReportRow row;
    row.stage = stage;
    for (const bool with : {true, false}) {
      auto it = sums.find(stage + std::string(1, '\0') + (with ? "1" : "0"));
      if (it == sums.end()) continue;
      const auto& c = it->second;
      row.entered += uint64_t(c[0]);
      (with ? row.advanced_with_content : row.advanced_without_content) += uint64_t(c[1]);
      (with ? row.won_with_content : row.won_without_content) += uint64_t(c[2]);
      (with ? row.lost_with_content : row.lost_without_content) += uint64_t(c[3]);
    }
    rows.push_back(row);
  }
  return rows;
}

Result<std::vector<RepReportRow>> EngineImpl::ReportReps(const ReportQuery& q) {
  if (Status h = Usable(); !h.ok()) return h;
  std::map<std::string, std::pair<uint64_t, uint64_t>> closed;
  const auto sums = feedback_->Reps(q.from_ms, q.to_ms, &closed);
  std::map<std::string, RepReportRow> rows;
  for (const auto& [rep, c] : sums) {
    RepReportRow& row = rows[rep];
    row.shown = c.shown;
    row.used = c.used;
    row.dismissed = c.dismissed;
  }
  for (const auto& [rep, wl] : closed) {
    rows[rep].leads_won = wl.first;
    rows[rep].leads_lost = wl.second;
  }
  std::vector<RepReportRow> out;
  for (auto& [rep, row] : rows) {
    row.rep_id = rep;
    row.usage_rate = row.shown > 0 ? double(row.used) / double(row.shown) : 0.0;
    if (row.leads_won + row.leads_lost > 0) row.win_rate = double(row.leads_won) / double(row.leads_won + row.leads_lost);
    out.push_back(std::move(row));
  }
  std::stable_sort(out.begin(), out.end(), [](const RepReportRow& a, const RepReportRow& b) { return a.used > b.used; });
  return out;
}

Result<ReaggregateResult> EngineImpl::Reaggregate(bool write, ReaggregateProgress progress) {
  if (Status h = write ? Health() : Usable(); !h.ok()) return h;
  return feedback_->Reaggregate(write, progress);
}

Result<PhraseReport> EngineImpl::ReportPhrases(const PhraseQuery& q) {
  if (q.limit < 1 || q.limit > 1000) return Status::InvalidArgument("limit", "must be 1..1000");
  if (Status h = Usable(); !h.ok()) return h;
  const RankingOptions& ro = options_.ranking;
  PhraseReport report;
  report.min_support = uint32_t(std::max(0.0, ro.phrase_min_support));
  report.half_life_days = ro.phrase_half_life_days;
  std::map<std::string, PhraseReport::AssetPhrases> by_asset;
  for (Derived::PhraseUses& p : feedback_->Phrases(NowMs())) {
    if (!q.asset_id.empty() && p.asset != q.asset_id) continue;
    PhraseReport::AssetPhrases& a = by_asset[p.asset];
    a.uses += p.uses;
    a.phrases.push_back({std::move(p.term), p.uses, p.support, double(p.uses) >= ro.phrase_min_support});
  }
  for (auto& [id, a] : by_asset) {
    a.asset_id = id;
    std::sort(a.phrases.begin(), a.phrases.end(), [](const auto& x, const auto& y) {
      return x.support != y.support ? x.support > y.support : x.term < y.term;
    });
    if (a.phrases.size() > q.limit) a.phrases.resize(q.limit);
    std::string value;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), assets_cf_, id, &value);
    if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading asset '" + id + "'");
    if (got.ok()) {
      Asset asset;
      if (Status dec = DecodeAsset(value, &asset); !dec.ok()) {
        return Status::Corruption("stored asset '" + id + "' is unreadable: " + dec.message());
      }
      a.title = std::move(asset.title);
    }
    report.assets.push_back(std::move(a));
  }
  std::sort(report.assets.begin(), report.assets.end(), [](const auto& x, const auto& y) {
    return x.uses != y.uses ? x.uses > y.uses : x.asset_id < y.asset_id;
  });
  return report;
}

Result<DismissalReport> EngineImpl::ReportDismissals(const ReportQuery& q) {
  if (!q.stage.empty() && std::find(options_.stages.begin(), options_.stages.end(), q.stage) == options_.stages.end()) {
    return Status::InvalidArgument("stage", "unknown stage '" + q.stage + "'");
  }
  if (Status h = Usable(); !h.ok()) return h;
  DismissalReport report;
  std::map<std::string, uint64_t> overall;
  std::unordered_map<std::string, std::string> titles;  // one catalog read per asset
  for (auto& d : feedback_->Dismissals(q.from_ms, q.to_ms, q.stage)) {
    overall[d.reason] += d.count;
    auto [title, added] = titles.try_emplace(d.asset);
    if (added) {
      std::string value;
      Asset a;
      rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), assets_cf_, d.asset, &value);
      if (!got.ok() && !got.IsNotFound()) return FromRocks(got, "reading asset '" + d.asset + "'");
      if (got.ok()) {
        if (Status dec = DecodeAsset(value, &a); !dec.ok()) {
          return Status::Corruption("stored asset '" + d.asset + "' is unreadable: " + dec.message());
        }
        title->second = std::move(a.title);
      }
    }
    report.by_asset.push_back({std::move(d.asset), title->second, std::move(d.reason), d.count});
  }
  for (const auto& [reason, n] : overall) report.reasons.push_back({reason, n});
  std::stable_sort(report.reasons.begin(), report.reasons.end(),
                   [](const auto& a, const auto& b) { return a.count > b.count; });
  std::sort(report.by_asset.begin(), report.by_asset.end(), [](const auto& a, const auto& b) {
    return a.count != b.count ? a.count > b.count : std::tie(a.asset_id, a.reason) < std::tie(b.asset_id, b.reason);
  });
  return report;
}

}  // namespace playbook

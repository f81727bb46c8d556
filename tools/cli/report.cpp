// playbook report assets|unused|dismissals|phrases|reps|funnel|experiment: the reports.* methods as
// an aligned terminal table (CJK-aware), RFC 4180 CSV or the JSON result.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common.h"

namespace playbook::cli {
int RunReport(Args args);

namespace {

constexpr std::size_t kTitleWidth = 40;  // display columns of a title in the table

void PrintReportUsage(std::ostream& out) {
  out << "Usage: playbook report assets|unused|dismissals|phrases|reps|funnel|experiment [options]\n\n"
         "assets      per-asset usage and outcomes (reports.assets)\n"
         "unused      assets never used in the window, and assets shown often but rarely used\n"
         "            (reports.unused)\n"
         "dismissals  the reasons reps gave when they dismissed a suggestion, overall and per\n"
         "            asset (reports.dismissals)\n"
         "phrases     the org's own words: per asset, the terms of the lead contexts reps used\n"
         "            it after, with uses and support (reports.phrases; all time, no window)\n"
         "reps        per rep: shown, used, usage rate, leads won and lost, win rate (reports.reps)\n"
         "funnel      per stage: leads entered, advanced, won and lost, with and without content\n"
         "            used (reports.funnel)\n"
         "experiment  the holdout: win rates of the leads that got the recommendations and of\n"
         "            the holdout, the difference with its 95% interval and p-value, and the\n"
         "            closed leads still needed (reports.experiment; docs/experiment.md)\n\n"
         "Options (a report given an option it does not take is a usage error):\n"
         "  --from DATE        first day, YYYY-MM-DD (UTC) or ms since the epoch\n"
         "  --to DATE          last day, inclusive (YYYY-MM-DD: to the end of that day) or ms\n"
         "  --stage STAGE      assets, dismissals: only activity at this funnel stage;\n"
         "                     unused: assets eligible at this stage, activity at it\n"
         "  --rep REP          assets: only activity of this rep\n"
         "  --type TYPE        assets, unused: only assets of this type\n"
         "  --sort COL         assets: sort column, descending (default used): shown, used,\n"
         "                     usage_rate, viewed, dismissed, won, lost, win_rate, lift,\n"
         "                     influenced_revenue, last_used\n"
         "  --limit N          assets: at most N rows, 1..100000 (default 100);\n"
         "                     phrases: at most N phrases per asset, 1..1000 (default 20)\n"
         "  --asset ID         phrases: only this asset\n"
         "  --min-shown N      unused: \"rarely used\" needs at least N showings (default 10)\n"
         "  --max-usage-rate R unused: \"rarely used\" means used in under R of the showings,\n"
         "                     0..1 or a percentage such as 5% (default 0.05)\n"
         "  --by stage|rep     experiment: also per stage of entry, or per rep\n"
         "  --by asset|content assets: a row per asset (default), or per content item: the\n"
         "                     translations linked by variant_of summed, their ids and\n"
         "                     languages listed (table: [id:lang|...]; csv: a variants column)\n"
         "  --format F         table (default), csv (RFC 4180, header row, raw numbers) or json\n"
         "                     (the result as the daemon returned it)\n"
         "reps and funnel take only --from, --to and --format: the daemon's reports.reps and\n"
         "reports.funnel have no stage filter (the funnel shows every stage).\n\n"
      << kConnectionOptions
      << "\nExit status: 0 success, 1 the daemon returned an error, 2 usage error,\n"
         "3 connection failure or timeout.\n";
}

// ---------------------------------------------------------------------------
// Dates

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "YYYY-MM-DD" (start of the UTC day, or its last millisecond when `end_of_day`)
// or whole milliseconds since the epoch.
std::optional<int64_t> ParseDate(const std::string& text, bool end_of_day) {
  constexpr int64_t kDay = 86400000;
  if (text.size() == 10 && text[4] == '-' && text[7] == '-') {
    auto y = ParseInt(std::string_view(text).substr(0, 4), 1970, 9999);
    auto m = ParseInt(std::string_view(text).substr(5, 2), 1, 12);
    auto d = ParseInt(std::string_view(text).substr(8, 2), 1, 31);
    if (!y || !m || !d) return std::nullopt;
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    if (*d > kDays[*m - 1] + (*m == 2 && leap ? 1 : 0)) return std::nullopt;
    const int64_t start = DaysFromCivil(*y, unsigned(*m), unsigned(*d)) * kDay;
    return end_of_day ? start + kDay - 1 : start;
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return ParseInt(text, 0, INT64_MAX / 2);
}

std::string FormatTime(const json& ms) {
  if (!ms.is_number()) return "-";
  const std::time_t t = static_cast<std::time_t>(ms.get<int64_t>() / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

// ---------------------------------------------------------------------------
// Display width

// Decodes one UTF-8 code point at s[i], advancing i (invalid bytes: U+FFFD, one byte).
char32_t NextCodePoint(std::string_view s, std::size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + std::size_t(len) > s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (int k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + std::size_t(k)]);
    if ((c & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  i += std::size_t(len);
  return cp;
}

int CodePointWidth(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c < 0xA0)) return 0;
  if ((c >= 0x0300 && c <= 0x036F) || (c >= 0x200B && c <= 0x200F) || c == 0xFE0F) return 0;
  if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0x303E) || (c >= 0x3041 && c <= 0x33FF) ||
      (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA000 && c <= 0xA4CF) ||
      (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) ||
      (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
      (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD)) {
    return 2;
  }
  return 1;
}

std::size_t DisplayWidth(std::string_view s) {
  std::size_t w = 0;
  for (std::size_t i = 0; i < s.size();) w += std::size_t(CodePointWidth(NextCodePoint(s, i)));
  return w;
}

// At most `max` columns; longer text ends in "…". Control characters become spaces.
std::string Truncate(std::string_view s, std::size_t max) {
  std::string clean;
  for (char c : s) clean += (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) ? ' ' : c;
  if (DisplayWidth(clean) <= max) return clean;
  std::string out;
  std::size_t w = 0;
  for (std::size_t i = 0; i < clean.size();) {
    const std::size_t at = i;
    const std::size_t cw = std::size_t(CodePointWidth(NextCodePoint(clean, i)));
    if (w + cw > max - 1) break;
    out.append(clean, at, i - at);
    w += cw;
  }
  return out + "…";
}

// ---------------------------------------------------------------------------
// Table and CSV

struct Table {
  std::vector<std::string> groups;  // optional line above the header, labels left-aligned
  std::vector<std::string> header;
  std::vector<bool> right;  // numeric columns are right-aligned
  std::vector<std::vector<std::string>> rows;

  void Print(std::ostream& out) const {
    std::vector<std::size_t> width(header.size(), 0);
    auto measure = [&](const std::vector<std::string>& r) {
      for (std::size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], DisplayWidth(r[c]));
    };
    measure(header);
    for (const auto& r : rows) measure(r);
    if (!groups.empty()) {
      std::string s;
      for (std::size_t c = 0; c < groups.size() && c < width.size(); ++c) {
        if (c) s += "  ";
        s += groups[c] + std::string(width[c] - std::min(width[c], DisplayWidth(groups[c])), ' ');
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out << s << '\n';
    }
    auto line = [&](const std::vector<std::string>& r) {
      std::string s;
      for (std::size_t c = 0; c < r.size() && c < width.size(); ++c) {
        const std::string pad(width[c] - DisplayWidth(r[c]), ' ');
        if (c) s += "  ";
        s += right[c] ? pad + r[c] : r[c] + (c + 1 < r.size() ? pad : "");
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out << s << '\n';
    };
    line(header);
    std::vector<std::string> rule;
    for (std::size_t w : width) rule.push_back(std::string(w, '-'));
    line(rule);
    for (const auto& r : rows) line(r);
  }
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// A raw value for CSV: strings as they are, numbers and bools as JSON, null empty.
std::string CsvValue(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

void PrintCsv(std::ostream& out, const std::vector<std::string>& columns, const json& rows) {
  for (std::size_t c = 0; c < columns.size(); ++c) out << (c ? "," : "") << CsvField(columns[c]);
  out << "\r\n";
  for (const json& r : rows) {
    for (std::size_t c = 0; c < columns.size(); ++c) {
      out << (c ? "," : "") << CsvField(CsvValue(r.is_object() ? r.value(columns[c], json()) : json()));
    }
    out << "\r\n";
  }
}

std::string Str(const json& row, const char* key) {
  const json v = row.is_object() ? row.value(key, json()) : json();
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "-";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Percent(const json& v) { return v.is_number() ? Fixed(v.get<double>() * 100.0, 1) + "%" : "-"; }
std::string Number(const json& v, int decimals) {
  if (!v.is_number()) return "-";
  if (v.is_number_integer()) return v.dump();
  const double d = v.get<double>();
  if (decimals > 0 && d == std::floor(d) && std::fabs(d) < 1e15) return Fixed(d, 0);
  return Fixed(d, decimals);
}

std::string Lift(const json& v) { return v.is_number() ? Fixed(v.get<double>(), 2) : "-"; }

// ---------------------------------------------------------------------------
// Result fields

// obj[key], or null when `obj` is not an object or has no such key.
const json& At(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  const auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

// True when `result` is an object whose `keys` are all arrays of objects.
bool ArraysOfObjects(const json& result, const std::vector<const char*>& keys) {
  auto all_objects = [](const json& a) {
    return a.is_array() && std::all_of(a.begin(), a.end(), [](const json& x) { return x.is_object(); });
  };
  return result.is_object() &&
         std::all_of(keys.begin(), keys.end(), [&](const char* k) { return all_objects(At(result, k)); });
}

// The asset id, marked when the asset was deleted (reports keep its history).
std::string AssetLabel(const json& row) {
  std::string id = Str(row, "asset_id");
  if (At(row, "deleted") == json(true)) id += " (deleted)";
  return id;
}

// ---------------------------------------------------------------------------
// assets

const std::vector<std::string> kAssetColumns = {
    "asset_id", "title", "type", "deleted", "shown", "used", "usage_rate", "viewed",
    "dismissed", "won", "lost", "win_rate", "lift", "influenced_revenue", "last_used"};

// By content: "en-price:en|zh-price:zh", the content item's variants and their languages.
std::string Variants(const json& row) {
  std::string out;
  const json& variants = At(row, "variants");
  if (!variants.is_array()) return out;
  for (const json& v : variants) {
    if (!out.empty()) out += "|";
    out += Str(v, "asset_id");
    if (const json& language = At(v, "language"); language.is_string() && !language.get<std::string>().empty()) {
      out.append(":").append(language.get<std::string>());
    }
  }
  return out;
}

void PrintAssetsTable(std::ostream& out, const json& result, const json& /*params*/) {
  Table t;
  t.header = {"asset_id", "title", "type", "shown", "used", "usage", "viewed", "dismissed",
              "won", "lost", "win_rate", "lift", "revenue", "last_used (UTC)"};
  t.right = {false, false, false, true, true, true, true, true, true, true, true, true, true, false};
  for (const json& r : result["rows"]) {
    std::string label = AssetLabel(r);
    if (At(r, "variants").size() > 1) label.append(" [").append(Variants(r)).append("]");  // by content: its translations
    t.rows.push_back({label, Truncate(Str(r, "title"), kTitleWidth), Str(r, "type"),
                      Number(r.value("shown", json()), 0), Number(r.value("used", json()), 0),
                      Percent(r.value("usage_rate", json())), Number(r.value("viewed", json()), 0),
                      Number(r.value("dismissed", json()), 0), Number(r.value("won", json()), 0),
                      Number(r.value("lost", json()), 0), Percent(r.value("win_rate", json())),
                      Lift(r.value("lift", json())), Number(r.value("influenced_revenue", json()), 2),
                      FormatTime(r.value("last_used", json()))});
  }
  const json tot = result.value("totals", json::object());
  if (tot.is_object()) {
    t.rows.push_back({"total", std::to_string(result["rows"].size()) + " of " + Str(tot, "assets") + " assets",
                      "", Number(tot.value("shown", json()), 0), Number(tot.value("used", json()), 0),
                      Percent(tot.value("usage_rate", json())), Number(tot.value("viewed", json()), 0),
                      Number(tot.value("dismissed", json()), 0), Number(tot.value("won", json()), 0),
                      Number(tot.value("lost", json()), 0), Percent(tot.value("win_rate", json())), "",
                      Number(tot.value("influenced_revenue", json()), 2), ""});
  }
  if (result["rows"].empty()) {
    out << "no asset activity in the window\n";
  } else {
    t.Print(out);
  }
  if (tot.is_object()) {
    out << "leads closed in the window: " << Number(tot.value("leads_won", json()), 0) << " won, "
        << Number(tot.value("leads_lost", json()), 0) << " lost, win rate "
        << Percent(tot.value("leads_win_rate", json())) << "\n";
  }
}

void PrintAssetsCsv(std::ostream& out, const json& result, const json& params) {
  if (At(params, "by") != json("content")) return PrintCsv(out, kAssetColumns, result["rows"]);
  // By content: one more column, the variants as in the table.
  std::vector<std::string> columns = kAssetColumns;
  columns.push_back("variants");
  json rows = json::array();
  for (const json& r : result["rows"]) {
    json row = r;
    if (row.is_object()) row["variants"] = Variants(r);
    rows.push_back(std::move(row));
  }
  PrintCsv(out, columns, rows);
}

// ---------------------------------------------------------------------------
// unused

// One titled section: "Never used (2): ..." and its table, or "  none".
void PrintUnusedSection(std::ostream& out, const std::string& heading, const json& rows) {
  out << heading << "\n";
  if (rows.empty()) {
    out << "  none\n";
    return;
  }
  Table t;
  t.header = {"asset_id", "title", "type", "shown", "used", "usage", "viewed", "dismissed"};
  t.right = {false, false, false, true, true, true, true, true};
  for (const json& r : rows) {
    t.rows.push_back({AssetLabel(r), Truncate(Str(r, "title"), kTitleWidth), Str(r, "type"),
                      Number(At(r, "shown"), 0), Number(At(r, "used"), 0), Percent(At(r, "usage_rate")),
                      Number(At(r, "viewed"), 0), Number(At(r, "dismissed"), 0)});
  }
  t.Print(out);
}

void PrintUnusedTable(std::ostream& out, const json& result, const json& params) {
  // The thresholds the daemon applied: ours, else its documented defaults.
  const json& min_shown = params.contains("min_shown") ? params["min_shown"] : json(10);
  const json& max_rate = params.contains("max_usage_rate") ? params["max_usage_rate"] : json(0.05);
  std::string never = "Never used (";
  never += std::to_string(result["never_used"].size());
  never += "): live, active assets not used in the window, most shown first";
  PrintUnusedSection(out, never, result["never_used"]);
  out << "\n";
  std::string rarely = "Shown often but rarely used (";
  rarely += std::to_string(result["rarely_used"].size());
  rarely += "): shown at least ";
  rarely += Number(min_shown, 0);
  rarely += " times, used in under ";
  rarely += Percent(max_rate);
  rarely += " of the showings";
  PrintUnusedSection(out, rarely, result["rarely_used"]);
}

// One table: a `list` column (never_used or rarely_used), then the asset columns.
void PrintUnusedCsv(std::ostream& out, const json& result, const json& /*params*/) {
  std::vector<std::string> columns = {"list"};
  columns.insert(columns.end(), kAssetColumns.begin(), kAssetColumns.end());
  json rows = json::array();
  for (const char* list : {"never_used", "rarely_used"}) {
    for (const json& r : result[list]) {
      json row = r;
      row["list"] = list;
      rows.push_back(std::move(row));
    }
  }
  PrintCsv(out, columns, rows);
}

// ---------------------------------------------------------------------------
// phrases

// One row per (asset, phrase), the assets and their phrases in the daemon's order.
json PhraseRows(const json& result) {
  json rows = json::array();
  for (const json& a : result["assets"]) {
    const json& phrases = At(a, "phrases");
    if (!phrases.is_array()) continue;
    for (const json& p : phrases) {
      rows.push_back({{"asset_id", At(a, "asset_id")}, {"title", At(a, "title")}, {"term", At(p, "term")},
                      {"uses", At(p, "uses")}, {"support", At(p, "support")}, {"learned", At(p, "learned")}});
    }
  }
  return rows;
}

void PrintPhrasesTable(std::ostream& out, const json& result, const json& /*params*/) {
  const json rows = PhraseRows(result);
  if (rows.empty()) {
    out << "no phrases yet: reps have not used an asset after a recommend with context\n";
    return;
  }
  Table t;
  t.header = {"asset_id", "title", "term", "uses", "support", "learned"};
  t.right = {false, false, false, true, true, false};
  for (const json& r : rows) {
    t.rows.push_back({Str(r, "asset_id"), Truncate(Str(r, "title"), kTitleWidth), Truncate(Str(r, "term"), 30),
                      Number(At(r, "uses"), 0), Number(At(r, "support"), 2),
                      At(r, "learned") == json(true) ? "yes" : "no"});
  }
  t.Print(out);
  out << "\nlearned: at least " << Number(At(result, "min_support"), 0)
      << " uses, so recommend counts the term; support halves every " << Number(At(result, "half_life_days"), 1)
      << " days after each use's week\n";
}

void PrintPhrasesCsv(std::ostream& out, const json& result, const json& /*params*/) {
  PrintCsv(out, {"asset_id", "title", "term", "uses", "support", "learned"}, PhraseRows(result));
}

// ---------------------------------------------------------------------------
// dismissals

void PrintDismissalsTable(std::ostream& out, const json& result, const json& /*params*/) {
  int64_t total = 0;
  for (const json& r : result["reasons"]) {
    if (At(r, "count").is_number_integer()) total += r["count"].get<int64_t>();
  }
  if (result["reasons"].empty()) {
    out << "no dismissals in the window\n";
    return;
  }
  Table reasons;
  reasons.header = {"reason", "count", "share"};
  reasons.right = {false, true, true};
  for (const json& r : result["reasons"]) {
    const json& c = At(r, "count");
    reasons.rows.push_back({Truncate(Str(r, "reason"), 60), Number(c, 0),
                            total > 0 && c.is_number() ? Percent(c.get<double>() / double(total)) : "-"});
  }
  reasons.rows.push_back({"total", std::to_string(total), total > 0 ? "100.0%" : "-"});
  reasons.Print(out);
  out << "\n";
  Table by;
  by.header = {"asset_id", "title", "reason", "count"};
  by.right = {false, false, false, true};
  for (const json& r : result["by_asset"]) {
    by.rows.push_back({Str(r, "asset_id"), Truncate(Str(r, "title"), kTitleWidth), Truncate(Str(r, "reason"), 40),
                       Number(At(r, "count"), 0)});
  }
  by.Print(out);
}

// One table: the overall reasons first (empty asset_id), then per asset.
void PrintDismissalsCsv(std::ostream& out, const json& result, const json& /*params*/) {
  json rows = json::array();
  for (const json& r : result["reasons"]) {
    rows.push_back({{"asset_id", ""}, {"title", ""}, {"reason", At(r, "reason")}, {"count", At(r, "count")}});
  }
  for (const json& r : result["by_asset"]) rows.push_back(r);
  PrintCsv(out, {"asset_id", "title", "reason", "count"}, rows);
}

// ---------------------------------------------------------------------------
// reps

const std::vector<std::string> kRepColumns = {"rep_id",    "shown",      "used",      "usage_rate",
                                              "dismissed", "leads_won", "leads_lost", "win_rate"};

void PrintRepsTable(std::ostream& out, const json& result, const json& /*params*/) {
  if (result["rows"].empty()) {
    out << "no rep activity in the window\n";
    return;
  }
  Table t;
  t.header = {"rep", "shown", "used", "usage", "won", "lost", "win_rate"};
  t.right = {false, true, true, true, true, true, true};
  for (const json& r : result["rows"]) {
    t.rows.push_back({Truncate(Str(r, "rep_id"), kTitleWidth), Number(At(r, "shown"), 0), Number(At(r, "used"), 0),
                      Percent(At(r, "usage_rate")), Number(At(r, "leads_won"), 0), Number(At(r, "leads_lost"), 0),
                      Percent(At(r, "win_rate"))});
  }
  t.Print(out);
  out << "shown: suggestions recommended with the rep's rep_id; won, lost: leads whose outcome carried it\n";
}

void PrintRepsCsv(std::ostream& out, const json& result, const json& /*params*/) {
  PrintCsv(out, kRepColumns, result["rows"]);
}

// ---------------------------------------------------------------------------
// funnel

const std::vector<std::string> kFunnelColumns = {
    "stage",            "entered",             "advanced_with_content", "advanced_without_content",
    "won_with_content", "won_without_content", "lost_with_content",     "lost_without_content"};

// A stage row with its nested {"with_content", "without_content"} flattened to kFunnelColumns.
json FlatFunnelRow(const json& r) {
  json flat = json::object();
  flat["stage"] = At(r, "stage");
  flat["entered"] = At(r, "entered");
  for (const char* outcome : {"advanced", "won", "lost"}) {
    for (const char* with : {"with_content", "without_content"}) {
      std::string column = outcome;
      column += '_';
      column += with;
      flat[column] = At(At(r, outcome), with);
    }
  }
  return flat;
}

void PrintFunnelTable(std::ostream& out, const json& result, const json& /*params*/) {
  if (result["stages"].empty()) {
    out << "no stages\n";
    return;
  }
  Table t;
  t.groups = {"", "", "advanced", "", "won", "", "lost", ""};
  t.header = {"stage", "entered", "with content", "without", "with content", "without", "with content", "without"};
  t.right = {false, true, true, true, true, true, true, true};
  std::vector<int64_t> total(kFunnelColumns.size(), 0);
  for (const json& r : result["stages"]) {
    const json flat = FlatFunnelRow(r);
    std::vector<std::string> line = {Str(flat, "stage")};
    for (std::size_t c = 1; c < kFunnelColumns.size(); ++c) {
      const json& v = flat[kFunnelColumns[c]];
      line.push_back(Number(v, 0));
      if (v.is_number_integer()) total[c] += v.get<int64_t>();
    }
    t.rows.push_back(std::move(line));
  }
  std::vector<std::string> line = {"total"};
  for (std::size_t c = 1; c < total.size(); ++c) line.push_back(std::to_string(total[c]));
  t.rows.push_back(std::move(line));
  t.Print(out);
  out << "with content: content was used with the lead while it was at that stage\n";
}

void PrintFunnelCsv(std::ostream& out, const json& result, const json& /*params*/) {
  json rows = json::array();
  for (const json& r : result["stages"]) rows.push_back(FlatFunnelRow(r));
  PrintCsv(out, kFunnelColumns, rows);
}

// ---------------------------------------------------------------------------
// experiment

std::string Interval(const json& ci, bool percent) {
  if (!ci.is_array() || ci.size() != 2 || !ci[0].is_number() || !ci[1].is_number()) return "-";
  auto one = [&](const json& v) { return percent ? Fixed(v.get<double>() * 100.0, 1) + "%" : Fixed(v.get<double>(), 1); };
  return one(ci[0]) + " .. " + one(ci[1]);
}

std::string Points(const json& v) {
  if (!v.is_number()) return "-";
  const double p = v.get<double>() * 100.0;
  std::string out = p >= 0 ? "+" : "";
  out += Fixed(p, 1);
  return out;
}

// One comparison: the two arms, the difference, the verdict.
void PrintComparison(std::ostream& out, const json& c) {
  Table t;
  t.header = {"arm", "leads", "closed", "won", "lost", "win_rate", "95% CI", "revenue/closed", "days to close"};
  t.right = {false, true, true, true, true, true, true, true, true};
  for (const char* arm : {"treatment", "holdout"}) {
    const json& a = At(At(c, "arms"), arm);
    t.rows.push_back({arm, Number(At(a, "leads"), 0), Number(At(a, "closed"), 0), Number(At(a, "won"), 0),
                      Number(At(a, "lost"), 0), Percent(At(a, "win_rate")), Interval(At(a, "win_rate_ci"), true),
                      Number(At(a, "revenue_per_closed_lead"), 2), Number(At(a, "mean_days_to_close"), 1)});
  }
  t.Print(out);
  const json& d = At(c, "difference");
  out << "difference (treatment - holdout): " << Points(At(d, "win_rate")) << " points of win rate, 95% CI "
      << (At(d, "ci").is_array() ? Points(At(d, "ci")[0]) + " .. " + Points(At(d, "ci")[1]) : std::string("-"))
      << ", p = " << (At(d, "p_value").is_number() ? Fixed(At(d, "p_value").get<double>(), 4) : std::string("-"))
      << "\n";
  out << "conclusive: " << (At(c, "conclusive") == json(true) ? "yes" : "no");
  if (At(c, "closed_leads_needed").is_number()) {
    out << "; closed leads still needed: " << Number(At(c, "closed_leads_needed"), 0);
  }
  out << "\n" << Str(c, "note") << "\n";
}

void PrintExperimentTable(std::ostream& out, const json& result, const json& /*params*/) {
  out << "holdout fraction " << Number(At(result, "holdout_fraction"), 2)
      << " (leads assigned in the window; Wilson intervals, Newcombe for the difference)\n\n";
  PrintComparison(out, result);
  const std::string by = Str(result, "by");
  if (!At(result, "groups").is_array()) return;
  for (const json& g : result["groups"]) {
    const std::string key = Str(g, by.c_str());
    out << "\n" << by << " " << (key.empty() ? "(none)" : key) << ":\n";
    PrintComparison(out, g);
  }
}

// One row per (group, arm), raw numbers; the difference on each arm's row.
void PrintExperimentCsv(std::ostream& out, const json& result, const json& /*params*/) {
  const std::vector<std::string> columns = {"group", "arm", "leads", "closed", "won", "lost", "win_rate", "win_rate_ci_lo",
                                            "win_rate_ci_hi", "revenue_per_closed_lead", "mean_days_to_close",
                                            "difference", "difference_ci_lo", "difference_ci_hi", "p_value", "conclusive"};
  json rows = json::array();
  auto add = [&](const std::string& group, const json& c) {
    for (const char* arm : {"treatment", "holdout"}) {
      const json& a = At(At(c, "arms"), arm);
      const json& d = At(c, "difference");
      auto lo_hi = [](const json& ci, int i) { return ci.is_array() && ci.size() == 2 ? ci[size_t(i)] : json(); };
      rows.push_back({{"group", group}, {"arm", arm}, {"leads", At(a, "leads")}, {"closed", At(a, "closed")},
                      {"won", At(a, "won")}, {"lost", At(a, "lost")}, {"win_rate", At(a, "win_rate")},
                      {"win_rate_ci_lo", lo_hi(At(a, "win_rate_ci"), 0)}, {"win_rate_ci_hi", lo_hi(At(a, "win_rate_ci"), 1)},
                      {"revenue_per_closed_lead", At(a, "revenue_per_closed_lead")},
                      {"mean_days_to_close", At(a, "mean_days_to_close")}, {"difference", At(d, "win_rate")},
                      {"difference_ci_lo", lo_hi(At(d, "ci"), 0)}, {"difference_ci_hi", lo_hi(At(d, "ci"), 1)},
                      {"p_value", At(d, "p_value")}, {"conclusive", At(c, "conclusive")}});
    }
  };
  add("all", result);
  const std::string by = Str(result, "by");
  if (At(result, "groups").is_array()) {
    for (const json& g : result["groups"]) add(by + ":" + Str(g, by.c_str()), g);
  }
  PrintCsv(out, columns, rows);
}

// ---------------------------------------------------------------------------
// The reports

using Printer = void (*)(std::ostream& out, const json& result, const json& params);

struct ReportKind {
  const char* name;
  std::vector<std::string> options;  // taken besides --from, --to, --format and the connection options
  std::vector<const char*> arrays;   // fields of the result that are arrays of objects
  Printer table;
  Printer csv;
};

const std::vector<ReportKind>& Reports() {
  static const std::vector<ReportKind> kinds = {
      {"assets", {"--stage", "--rep", "--type", "--sort", "--limit", "--by"}, {"rows"}, PrintAssetsTable, PrintAssetsCsv},
      {"unused", {"--stage", "--type", "--min-shown", "--max-usage-rate"}, {"never_used", "rarely_used"},
       PrintUnusedTable, PrintUnusedCsv},
      {"dismissals", {"--stage"}, {"reasons", "by_asset"}, PrintDismissalsTable, PrintDismissalsCsv},
      {"phrases", {"--asset", "--limit"}, {"assets"}, PrintPhrasesTable, PrintPhrasesCsv},
      {"reps", {}, {"rows"}, PrintRepsTable, PrintRepsCsv},
      {"funnel", {}, {"stages"}, PrintFunnelTable, PrintFunnelCsv},
      {"experiment", {"--by"}, {}, PrintExperimentTable, PrintExperimentCsv},
  };
  return kinds;
}

constexpr std::string_view kReportNames = "assets, unused, dismissals, phrases, reps, funnel or experiment";

bool TakenByEveryReport(const std::string& option) {
  return option == "--from" || option == "--to" || option == "--format" || option == "--url" ||
         option == "--token" || option == "--timeout";
}

// "report: funnel takes no --stage (it takes --from, --to, --format); ..."
std::string NotTaken(const ReportKind& kind, const std::string& option) {
  std::string m = "report: ";
  m += kind.name;
  m += " takes no ";
  m += option;
  const bool windowed = std::string_view(kind.name) != "phrases";  // reports.phrases has no window
  m += windowed ? " (it takes --from, --to" : " (it takes";
  bool first = !windowed;
  for (const std::string& o : kind.options) {
    m += first ? " " : ", ";
    m += o;
    first = false;
  }
  m += ", --format)";
  if (option == "--stage") {
    m += "; reports.";
    m += kind.name;
    m += " has no stage filter";
    if (std::string_view(kind.name) == "funnel") m += ": the funnel shows every stage";
  }
  return m;
}

// A fraction in 0..1, or a percentage in 0..100 ending in '%'.
std::optional<double> ParseRate(std::string text) {
  const bool percent = !text.empty() && text.back() == '%';
  if (percent) text.pop_back();
  if (text.empty() || text.find_first_not_of("0123456789.") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  if (percent) v /= 100.0;
  if (!(v >= 0.0 && v <= 1.0)) return std::nullopt;
  return v;
}

}  // namespace

int RunReport(Args args) {
  ParsedArgs parsed;
  if (auto err = SplitArgs(args,
                           {"--url", "--token", "--timeout", "--from", "--to", "--stage", "--rep", "--type", "--sort",
                            "--limit", "--min-shown", "--max-usage-rate", "--by", "--format", "--asset"},
                           {"--help", "-h"}, parsed)) {
    return UsageError("report: " + *err);
  }
  for (const auto& option : parsed.options) {
    if (option.first == "--help" || option.first == "-h") {
      PrintReportUsage(std::cout);
      return kExitOk;
    }
  }
  const std::string names(kReportNames);
  if (parsed.positional.empty()) return UsageError("report: missing the report: " + names);
  if (parsed.positional.size() > 1) return UsageError("report: expected one report: " + names);
  const std::string& which = parsed.positional[0];
  const auto& reports = Reports();
  const auto kind = std::find_if(reports.begin(), reports.end(), [&](const ReportKind& k) { return which == k.name; });
  if (kind == reports.end()) return UsageError("report: unknown report '" + which + "' (" + names + ")");

  ConnectionOptions conn = DefaultConnectionOptions();
  json params = json::object();
  std::string format = "table";
  for (const auto& [name, value] : parsed.options) {
    if (!TakenByEveryReport(name) && std::find(kind->options.begin(), kind->options.end(), name) == kind->options.end()) {
      return UsageError(NotTaken(*kind, name));
    }
    const bool phrases = which == "phrases";
    if (phrases && (name == "--from" || name == "--to")) {
      return UsageError("report: phrases takes no " + name + " (reports.phrases covers all time, its support decays)");
    }
    if (name == "--from" || name == "--to") {
      auto ms = ParseDate(value, name == "--to");
      if (!ms) return UsageError("report: " + name + " '" + value + "' is not a date (YYYY-MM-DD) or ms since the epoch");
      params[name.substr(2)] = *ms;
    } else if (name == "--stage" || name == "--rep" || name == "--type" || name == "--sort") {
      if (value.empty()) return UsageError("report: " + name + " is empty");
      params[name == "--rep" ? "rep_id" : name.substr(2)] = value;
    } else if (name == "--asset") {
      if (value.empty()) return UsageError("report: --asset is empty");
      params["asset_id"] = value;
    } else if (name == "--limit") {
      auto n = ParseInt(value, 1, phrases ? 1000 : 100000);
      if (!n) return UsageError(phrases ? "report: --limit must be an integer in 1..1000"
                                        : "report: --limit must be an integer in 1..100000");
      params["limit"] = *n;
    } else if (name == "--min-shown") {
      auto n = ParseInt(value, 1, INT64_MAX / 2);
      if (!n) return UsageError("report: --min-shown must be a whole number of showings, at least 1");
      params["min_shown"] = *n;
    } else if (name == "--max-usage-rate") {
      auto rate = ParseRate(value);
      if (!rate) return UsageError("report: --max-usage-rate must be a fraction in 0..1 or a percentage such as 5%");
      params["max_usage_rate"] = *rate;
    } else if (name == "--by") {
      if (std::string_view(kind->name) == "assets") {
        if (value != "asset" && value != "content") return UsageError("report: assets --by must be asset or content");
      } else if (value != "stage" && value != "rep") {
        return UsageError("report: experiment --by must be stage or rep");
      }
      params["by"] = value;
    } else if (name == "--format") {
      if (value != "table" && value != "csv" && value != "json") {
        return UsageError("report: --format must be table, csv or json");
      }
      format = value;
    } else if (auto err = ApplyConnectionOption(name, value, conn)) {
      return UsageError("report: " + *err);
    }
  }
  if (params.contains("from") && params.contains("to") && params["from"].get<int64_t>() > params["to"].get<int64_t>()) {
    return UsageError("report: --from is after --to");
  }

  const std::string method = "reports." + which;
  RpcConnection rpc(conn);
  if (!rpc.Connect()) return kExitConnection;
  json response = rpc.Call(method, params);
  rpc.Close();
  if (response.is_null()) return kExitConnection;
  if (response.contains("error")) {
    if (ErrorCode(response) == -32601) {
      std::cerr << "playbook: report: this daemon has no " << method << "\n";
      return kExitRpcError;
    }
    std::cerr << "playbook: report: " << method << " failed: " << DescribeError(response);
    const json& field = At(At(response["error"], "data"), "field");
    if (!field.is_null()) std::cerr << " (field " << OneLine(field) << ")";
    std::cerr << "\n";
    return kExitRpcError;
  }
  const json result = response.value("result", json());
  if (!ArraysOfObjects(result, kind->arrays)) {
    std::cerr << "playbook: report: " << method << " answered an unexpected result: " << OneLine(response) << "\n";
    return kExitRpcError;
  }

  std::ostringstream out;
  if (format == "json") {
    out << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    (format == "csv" ? kind->csv : kind->table)(out, result, params);
  }
  std::cout << out.str() << std::flush;
  if (!std::cout) {
    std::cerr << "playbook: report: writing stdout failed\n";
    return kExitUsage;
  }
  return kExitOk;
}

}  // namespace playbook::cli

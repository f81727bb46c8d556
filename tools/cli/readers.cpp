// The inputs of `playbook import` (see readers.h).
#include "readers.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "playbook/base/vector_base64.h"

namespace playbook::cli {
namespace {

// As in common.h (not included here: the readers are a library of their own, which playbookd
// links for --load-sample without the CLI's client).
using json = nlohmann::ordered_json;

// Strips nlohmann's "[json.exception.parse_error.101] parse error at line 1, "
// so that only the column and the reason remain.
std::string ParseErrorReason(const json::parse_error& e) {
  std::string what = e.what();
  if (const auto p = what.find("column "); p != std::string::npos) return "invalid JSON at " + what.substr(p);
  if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
  return "invalid JSON: " + what;
}

// A vector of numbers that are all finite as float32 travels as base64
// float32 (docs/protocol.md): half the bytes, and the daemon parses it many
// times faster than an array. Anything else is sent as it was, for the
// daemon to name the offending element.
void VectorAsBase64(json& asset) {
  auto it = asset.find("vector");
  if (it == asset.end() || !it->is_array() || it->empty()) return;
  std::vector<float> v;
  v.reserve(it->size());
  for (const json& x : *it) {
    if (!x.is_number()) return;
    const double d = x.get<double>();
    if (!(std::fabs(d) <= double(std::numeric_limits<float>::max()))) return;
    v.push_back(static_cast<float>(d));
  }
  *it = EncodeVectorBase64(v.data(), v.size());
}

// Whether t is a JSON number (RFC 8259): from_chars takes more ("inf", "01").
bool IsJsonNumber(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > from;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < t.size() && t[i] == '.' && (++i, !digits())) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size();
}

// The usual line's fast way: the numbers of its "vector" array read where
// they stand and the array replaced by their base64 text before the line is
// parsed, so the JSON parser never makes a node per number (at 384 numbers
// per asset that was most of the client's CPU in an import). *b64 is what
// the vector became; false (nothing decided) for anything but a plain array
// of numbers finite as float32. The caller checks that the parsed line's
// "vector" is *b64, so a "vector" inside a string or a repeated key falls
// back to the general way, as does any doubt here.
bool VectorToBase64InText(const std::string& line, std::string* out, std::string* b64) {
  const size_t key = line.find("\"vector\"");
  if (key == std::string::npos) return false;
  auto ws = [&](size_t i) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r')) ++i;
    return i;
  };
  size_t i = ws(key + 8);
  if (i >= line.size() || line[i] != ':') return false;
  i = ws(i + 1);
  if (i >= line.size() || line[i] != '[') return false;
  const size_t open = i;
  std::vector<float> v;
  for (i = ws(i + 1);; i = ws(i + 1)) {
    size_t end = i;
    while (end < line.size() && std::strchr("0123456789+-.eE", line[end]) != nullptr && line[end] != '\0') ++end;
    const std::string_view token(line.data() + i, end - i);
    if (!IsJsonNumber(token)) return false;
    double d = 0;
    const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), d);
    if (ec != std::errc() || ptr != token.data() + token.size()) return false;
    if (!(std::fabs(d) <= double(std::numeric_limits<float>::max()))) return false;
    // The JSON parser reads "-0" as the integer 0: +0, not -0.
    if (d == 0 && token.find_first_of(".eE") == std::string_view::npos) d = 0;
    v.push_back(static_cast<float>(d));
    i = ws(end);
    if (i < line.size() && line[i] == ']') break;
    if (i >= line.size() || line[i] != ',') return false;
  }
  *b64 = EncodeVectorBase64(v.data(), v.size());
  out->assign(line, 0, open);
  *out += '"';
  *out += *b64;
  *out += '"';
  out->append(line, i + 1, std::string::npos);
  return true;
}

// ---------------------------------------------------------------------------
// JSON Lines

class JsonlReader : public Reader {
 public:
  explicit JsonlReader(std::istream& in) : in_(in) {}

  bool Next(Record& r) override {
    std::string line;
    while (std::getline(in_, line)) {
      bytes_ += line.size() + 1;
      ++line_;
      if (line_ == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // BOM
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      r = Record();
      r.line = line_;
      try {
        json j;
        std::string fast, b64;
        if (VectorToBase64InText(line, &fast, &b64)) {
          try {
            j = json::parse(fast);
          } catch (const json::exception&) {
            j = nullptr;  // the general way below names the error as it is in the line
          }
          if (!j.is_object() || !j.contains("vector") || j["vector"] != b64) j = nullptr;
        }
        if (j.is_null()) j = json::parse(line);
        if (!j.is_object()) {
          r.error = "expected a JSON object (one asset per line), got " + std::string(j.type_name());
          return true;
        }
        if (auto it = j.find("id"); it != j.end() && it->is_string()) r.id = it->get<std::string>();
        VectorAsBase64(j);
        r.text = OneLine(j);
      } catch (const json::parse_error& e) {
        r.error = ParseErrorReason(e);
      } catch (const json::exception& e) {  // e.g. out_of_range: a number beyond a double (1e999)
        std::string what = e.what();
        if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
        r.error = "invalid JSON: " + what;
      }
      return true;
    }
    return false;
  }
  bool failed() const override { return in_.bad(); }

 private:
  std::istream& in_;
  int64_t line_ = 0;
};

// ---------------------------------------------------------------------------
// CSV (RFC 4180, with a little leniency: spaces around a quoted field are ignored)

class CsvParser {
 public:
  explicit CsvParser(std::streambuf* sb) : sb_(sb) {}

  // One record. False at the end of the input. `error` says why the record is
  // malformed (it is still consumed to its end).
  bool Next(std::vector<std::string>& fields, int64_t& start_line, std::string& error) {
    fields.clear();
    error.clear();
    if (first_) {
      first_ = false;
      if (sb_->sgetc() == 0xEF) {  // a UTF-8 BOM
        std::string bom;
        for (int i = 0; i < 3 && sb_->sgetc() != EOF; ++i) bom += static_cast<char>(Get());
        if (bom != "\xEF\xBB\xBF") pending_ = bom;
      }
    }
    if (pending_.empty() && sb_->sgetc() == EOF) return false;
    start_line = line_;
    std::string field;
    bool in_quotes = false, was_quoted = false, after_quote = false;
    int64_t quote_line = 0;
    while (true) {
      const int c = Get();
      if (c == EOF) {
        if (in_quotes && error.empty()) {
          error = "unterminated quoted field (the quote opened on line " + std::to_string(quote_line) + ")";
        }
        fields.push_back(std::move(field));
        return true;
      }
      if (in_quotes) {
        if (c == '"') {
          if (Peek() == '"') {
            Get();
            field += '"';
          } else {
            in_quotes = false;
            after_quote = true;
          }
        } else {
          if (c == '\n') ++line_;
          field += static_cast<char>(c);
        }
        continue;
      }
      if (c == ',') {
        fields.push_back(std::move(field));
        field.clear();
        was_quoted = after_quote = false;
        continue;
      }
      if (c == '\r' && Peek() == '\n') continue;
      if (c == '\n') {
        ++line_;
        fields.push_back(std::move(field));
        return true;
      }
      if (after_quote) {
        if (c != ' ' && c != '\t' && error.empty()) {
          error = "field " + std::to_string(fields.size() + 1) +
                  ": unexpected text after a closing quote (a quote inside a quoted field is written \"\")";
        }
        continue;
      }
      if (c == '"' && !was_quoted && field.find_first_not_of(" \t") == std::string::npos) {
        field.clear();
        in_quotes = was_quoted = true;
        quote_line = line_;
        continue;
      }
      field += static_cast<char>(c);
    }
  }

  std::size_t bytes() const { return bytes_; }

 private:
  int Get() {
    if (!pending_.empty()) {
      const int c = static_cast<unsigned char>(pending_.front());
      pending_.erase(0, 1);
      return c;
    }
    const int c = sb_->sbumpc();
    if (c != EOF) ++bytes_;
    return c;
  }
  int Peek() { return pending_.empty() ? sb_->sgetc() : static_cast<unsigned char>(pending_.front()); }

  std::streambuf* sb_;
  std::string pending_;
  bool first_ = true;
  int64_t line_ = 1;
  std::size_t bytes_ = 0;
};

constexpr std::string_view kCsvColumns[] = {"id",    "title",  "body", "url",    "language",
                                            "type",  "stages", "tags", "active", "vector",
                                            "variant_of"};
constexpr std::string_view kCsvRequired[] = {"id", "title", "type", "stages"};

std::string Trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> SplitList(std::string_view s, std::string_view separators) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto end = s.find_first_of(separators, start);
    std::string part = Trim(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (!part.empty()) out.push_back(std::move(part));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

class CsvReader : public Reader {
 public:
  explicit CsvReader(std::istream& in) : in_(in), parser_(in.rdbuf()) { ReadHeader(); }

  std::string fatal() const override { return fatal_; }
  bool failed() const override { return in_.bad(); }

  bool Next(Record& r) override {
    if (!fatal_.empty()) return false;
    std::vector<std::string> fields;
    int64_t line = 0;
    std::string error;
    while (parser_.Next(fields, line, error)) {
      bytes_ = parser_.bytes();
      if (error.empty() && fields.size() == 1 && Trim(fields[0]).empty()) continue;  // blank line
      r = Record();
      r.line = line;
      if (!error.empty()) {
        r.error = error;
      } else if (fields.size() != columns_.size()) {
        r.error = "has " + std::to_string(fields.size()) + " fields, the header has " +
                  std::to_string(columns_.size()) + " (quote fields holding commas)";
      } else {
        ToAsset(fields, r);
      }
      return true;
    }
    bytes_ = parser_.bytes();
    return false;
  }

 private:
  void ReadHeader() {
    std::vector<std::string> fields;
    int64_t line = 0;
    std::string error;
    do {
      if (!parser_.Next(fields, line, error)) {
        fatal_ = "no header line (expected columns among id,title,body,url,language,type,stages,tags,active,vector,"
                 "variant_of)";
        return;
      }
    } while (error.empty() && fields.size() == 1 && Trim(fields[0]).empty());
    if (!error.empty()) {
      fatal_ = "line " + std::to_string(line) + ": header: " + error;
      return;
    }
    std::set<std::string> seen;
    for (const std::string& f : fields) {
      std::string name = Trim(f);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (std::find(std::begin(kCsvColumns), std::end(kCsvColumns), name) == std::end(kCsvColumns)) {
        fatal_ = "line " + std::to_string(line) + ": unknown column '" + Trim(f) +
                 "' in the header; known columns: id, title, body, url, language, type, stages, tags, "
                 "active, vector, variant_of";
        return;
      }
      if (!seen.insert(name).second) {
        fatal_ = "line " + std::to_string(line) + ": column '" + name + "' appears twice in the header";
        return;
      }
      columns_.push_back(name);
    }
    for (std::string_view req : kCsvRequired) {
      if (!seen.count(std::string(req))) {
        fatal_ = "line " + std::to_string(line) + ": the header has no '" + std::string(req) +
                 "' column (required: id, title, type, stages)";
        return;
      }
    }
  }

  void ToAsset(const std::vector<std::string>& fields, Record& r) const {
    std::map<std::string_view, const std::string*> cell;
    for (std::size_t i = 0; i < columns_.size(); ++i) cell[columns_[i]] = &fields[i];
    auto get = [&](std::string_view name) -> const std::string* {
      auto it = cell.find(name);
      return it == cell.end() ? nullptr : it->second;
    };
    json a = json::object();
    // Required fields are always sent, empty or not: the daemon says what is wrong.
    a["id"] = *get("id");
    a["title"] = *get("title");
    for (std::string_view opt : {"body", "url", "language"}) {
      if (const std::string* v = get(opt); v && !v->empty()) a[std::string(opt)] = *v;
    }
    a["type"] = Trim(*get("type"));
    a["stages"] = SplitList(*get("stages"), "|;");
    if (const std::string* v = get("tags"); v && !Trim(*v).empty()) a["tags"] = SplitList(*v, "|;");
    // An empty cell: no variant_of (the daemon checks the id's syntax).
    if (const std::string* v = get("variant_of"); v && !Trim(*v).empty()) a["variant_of"] = Trim(*v);
    if (const std::string* v = get("active"); v && !Trim(*v).empty()) {
      std::string t = Trim(*v);
      std::transform(t.begin(), t.end(), t.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (t == "true" || t == "1" || t == "yes") {
        a["active"] = true;
      } else if (t == "false" || t == "0" || t == "no") {
        a["active"] = false;
      } else {
        r.error = "active: '" + Trim(*v) + "' is not true or false";
        return;
      }
    }
    if (const std::string* v = get("vector"); v && !Trim(*v).empty()) {
      json vec = json::array();
      for (const std::string& part : SplitList(*v, " \t|,")) {
        char* end = nullptr;
        errno = 0;
        const double x = std::strtod(part.c_str(), &end);
        if (end != part.c_str() + part.size() || errno == ERANGE) {
          r.error = "vector: '" + part + "' is not a number";
          return;
        }
        vec.push_back(x);
      }
      a["vector"] = std::move(vec);
      VectorAsBase64(a);
    }
    r.id = a["id"].get<std::string>();
    r.text = OneLine(a);
  }

  std::istream& in_;
  CsvParser parser_;
  std::vector<std::string> columns_;
  std::string fatal_;
};

}  // namespace

std::string OneLine(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::unique_ptr<Reader> MakeJsonlReader(std::istream& in) { return std::make_unique<JsonlReader>(in); }
std::unique_ptr<Reader> MakeCsvReader(std::istream& in) { return std::make_unique<CsvReader>(in); }

}  // namespace playbook::cli

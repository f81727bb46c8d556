#include "playbook/server/jsonrpc.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <system_error>

namespace playbook::server {
namespace {

const char* DefaultMessage(int code) {
  switch (code) {
    case kParseError: return "Parse error";
    case kInvalidRequest: return "Invalid request";
    case kMethodNotFound: return "Method not found";
    case kInvalidParams: return "Invalid params";
    case kInternalError: return "Internal error";
    case kUnauthorized: return "Unauthorized";
    case kNotFound: return "Not found";
    case kOverloaded: return "Overloaded";
  }
  return "Error";
}

// message: "Invalid params: assets[3].stages: unknown stage 'foo'" (one line
// for humans); data.field and data.reason carry the parts for programs.
RpcError Error(int code, std::string field, std::string reason) {
  std::string message = DefaultMessage(code);
  if (!field.empty()) message += ": " + field;
  if (!reason.empty()) message += ": " + reason;
  return RpcError{code, std::move(message), std::move(field), std::move(reason)};
}

// v's params are moved out (v is not read again).
Entry ParseEntry(json& v, size_t index, bool in_batch) {
  Entry e;
  // "[3]" names the batch element; built by append (GCC 12 warns falsely on "[" + ...).
  std::string element;
  if (in_batch) element.append("[").append(std::to_string(index)).append("]");
  const std::string at = in_batch ? element + "." : std::string();
  if (!v.is_object()) {
    e.error = Error(kInvalidRequest, element,
                    "a request must be a JSON object");
    return e;
  }
  // The id first, so that later errors can carry it back.
  if (auto it = v.find("id"); it != v.end()) {
    if (it->is_string() || it->is_number() || it->is_null()) {
      e.id = *it;
      e.has_id = true;
    } else {
      e.has_id = true;  // answered, with id null
      e.error = Error(kInvalidRequest, at + "id", "id must be a string, a number or null");
      return e;
    }
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    if (k != "jsonrpc" && k != "id" && k != "method" && k != "params") {
      e.error = Error(kInvalidRequest, at + k, "unknown member '" + k + "'");
      return e;
    }
  }
  auto ver = v.find("jsonrpc");
  if (ver == v.end() || !ver->is_string() || ver->get_ref<const std::string&>() != "2.0") {
    e.error = Error(kInvalidRequest, at + "jsonrpc", "jsonrpc must be the string \"2.0\"");
    return e;
  }
  auto m = v.find("method");
  if (m == v.end() || !m->is_string() || m->get_ref<const std::string&>().empty()) {
    e.error = Error(kInvalidRequest, at + "method", "method must be a non-empty string");
    return e;
  }
  e.method = m->get<std::string>();
  if (auto p = v.find("params"); p != v.end()) {
    if (!p->is_object() && !p->is_array()) {
      e.error = Error(kInvalidRequest, at + "params", "params must be an object or an array");
      return e;
    }
    e.params = std::move(*p);
  } else {
    e.params = json::object();
  }
  return e;
}

}  // namespace

// Counts brackets outside strings; stops early once past the limit.
bool DeeperThan(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

RpcError ErrorFromStatus(const Status& status) {
  switch (status.code()) {
    case Status::Code::kInvalidArgument:
      return Error(kInvalidParams, status.field(), status.message());
    case Status::Code::kNotFound: return Error(kNotFound, status.field(), status.message());
    case Status::Code::kOverloaded: return Error(kOverloaded, "", status.message());
    case Status::Code::kUnauthorized: return Error(kUnauthorized, "", status.message());
    case Status::Code::kOk:  // a bug in the caller; still answer something well-formed
    case Status::Code::kCorruption:
    case Status::Code::kIOError:
    case Status::Code::kInternal:
      break;
  }
  return Error(kInternalError, "", status.ToString());
}

namespace {

// The fast path of ParseFrame: a recursive descent over the strict subset of
// JSON that requests are made of, building the same document json::parse
// would (same value types: unsigned for a non-negative integer, integer for a
// negative one, double for a number with a fraction or exponent; the last of
// duplicate keys). It declines (returns false) on anything it does not
// handle exactly like nlohmann: escapes in strings, integers of 19 or more
// digits, a number a double cannot hold, a byte-order mark, and every error;
// the caller then runs json::parse, which gives the precise error.
class FastParser {
 public:
  explicit FastParser(std::string_view t) : p_(t.data()), end_(t.data() + t.size()) {}

  bool Document(json* out) {
    Ws();
    if (!Value(out, 0)) return false;
    Ws();
    return p_ == end_;
  }

 private:
  void Ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool Value(json* out, int depth) {
    if (p_ == end_ || depth > kMaxJsonDepth) return false;
    switch (*p_) {
      case '{': return Object(out, depth);
      case '[': return Array(out, depth);
      case '"': {
        std::string_view s;
        if (!String(&s)) return false;
        *out = std::string(s);
        return true;
      }
      case 't': return Literal("true", json(true), out);
      case 'f': return Literal("false", json(false), out);
      case 'n': return Literal("null", json(nullptr), out);
      default: return Number(out);
    }
  }

  bool Literal(std::string_view word, json value, json* out) {
    if (size_t(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    *out = std::move(value);
    return true;
  }

  bool Object(json* out, int depth) {
    ++p_;  // '{'
    *out = json::object();
    Ws();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    auto& members = out->get_ref<json::object_t&>();
    while (true) {
      Ws();
      std::string_view key;
      if (!String(&key)) return false;
      Ws();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      Ws();
      json value;
      if (!Value(&value, depth + 1)) return false;
      members[std::string(key)] = std::move(value);  // the last of duplicates wins, as in nlohmann
      Ws();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  bool Array(json* out, int depth) {
    ++p_;  // '['
    *out = json::array();
    Ws();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    auto& items = out->get_ref<json::array_t&>();
    while (true) {
      Ws();
      items.emplace_back();
      if (!Value(&items.back(), depth + 1)) return false;
      Ws();
      if (p_ == end_) return false;
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  // A string without escapes, its bytes valid UTF-8 (RFC 3629, as nlohmann
  // checks it) and no control characters.
  bool String(std::string_view* out) {
    if (p_ == end_ || *p_ != '"') return false;
    const char* start = ++p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(start, size_t(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
      if (c < 0x80) {
        ++p_;
        continue;
      }
      if (!Utf8()) return false;
    }
    return false;
  }

  // One multi-byte UTF-8 sequence at p_ (its lead byte >= 0x80).
  bool Utf8() {
    const auto b = [this](size_t i) {
      return p_ + i < end_ ? static_cast<unsigned char>(p_[i]) : 0u;
    };
    const unsigned c = b(0);
    const auto in = [](unsigned x, unsigned lo, unsigned hi) { return x >= lo && x <= hi; };
    size_t n;
    if (in(c, 0xC2, 0xDF)) {
      n = in(b(1), 0x80, 0xBF) ? 2 : 0;
    } else if (c == 0xE0) {
      n = in(b(1), 0xA0, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    } else if (in(c, 0xE1, 0xEC) || c == 0xEE || c == 0xEF) {
      n = in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    } else if (c == 0xED) {
      n = in(b(1), 0x80, 0x9F) && in(b(2), 0x80, 0xBF) ? 3 : 0;
    } else if (c == 0xF0) {
      n = in(b(1), 0x90, 0xBF) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    } else if (in(c, 0xF1, 0xF3)) {
      n = in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    } else if (c == 0xF4) {
      n = in(b(1), 0x80, 0x8F) && in(b(2), 0x80, 0xBF) && in(b(3), 0x80, 0xBF) ? 4 : 0;
    } else {
      n = 0;
    }
    p_ += n;
    return n != 0;
  }

  static bool Digit(char c) { return c >= '0' && c <= '9'; }

  // RFC 8259's number grammar, checked here; the value converted by
  // std::from_chars, correctly rounded like the strtod nlohmann calls.
  bool Number(json* out) {
    const char* start = p_;
    const bool negative = p_ != end_ && *p_ == '-';
    if (negative) ++p_;
    if (p_ == end_ || !Digit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && Digit(*p_)) ++p_;
    }
    const size_t int_digits = size_t(p_ - start) - (negative ? 1 : 0);
    bool is_float = false;
    if (p_ != end_ && *p_ == '.') {
      is_float = true;
      ++p_;
      if (p_ == end_ || !Digit(*p_)) return false;
      while (p_ != end_ && Digit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_float = true;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !Digit(*p_)) return false;
      while (p_ != end_ && Digit(*p_)) ++p_;
    }
    if (!is_float) {
      if (int_digits > 18) return false;  // near or past 64 bits: nlohmann's own rules
      uint64_t v = 0;
      for (const char* d = start + (negative ? 1 : 0); d != p_; ++d) v = v * 10 + uint64_t(*d - '0');
      if (negative) {
        *out = json::number_integer_t(-int64_t(v));
      } else {
        *out = json::number_unsigned_t(v);
      }
      return true;
    }
    double v = 0;
    const auto r = std::from_chars(start, p_, v);
    // Out of range (overflow, or underflow that from_chars reports rather
    // than rounds): nlohmann's business.
    if (r.ec != std::errc() || r.ptr != p_ || !std::isfinite(v)) return false;
    *out = json::number_float_t(v);
    return true;
  }

  const char* p_;
  const char* end_;
};

}  // namespace

bool ParseJsonFast(std::string_view text, json* out) {
  FastParser parser(text);
  json doc;
  if (!parser.Document(&doc)) return false;
  *out = std::move(doc);
  return true;
}

bool SameJsonDocument(const json& a, const json& b) {
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(), jt = b.begin(); it != a.end(); ++it, ++jt) {
      if (it.key() != jt.key() || !SameJsonDocument(it.value(), jt.value())) return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!SameJsonDocument(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

Frame ParseFrame(std::string_view text) {
  Frame f;
  if (DeeperThan(text, kMaxJsonDepth)) {
    f.error = Error(kInvalidRequest, "",
                    "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return f;
  }
  json doc;
  try {
    if (!ParseJsonFast(text, &doc)) doc = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // parse_error names the byte offset ("syntax error while parsing ... at line 1,
    // column 9"); out_of_range is a number beyond a double ("number overflow
    // parsing '1e999'"). Either way the text is not a frame we can read.
    f.error = Error(kParseError, "", e.what());
    return f;
  }
  if (doc.is_array()) {
    if (doc.empty()) {
      f.error = Error(kInvalidRequest, "", "a batch must hold at least one request");
      return f;
    }
    if (doc.size() > kMaxBatch) {
      f.error = Error(kInvalidRequest, "",
                      "a batch holds at most " + std::to_string(kMaxBatch) + " requests, got " +
                          std::to_string(doc.size()));
      return f;
    }
    f.is_batch = true;
    f.entries.reserve(doc.size());
    for (size_t i = 0; i < doc.size(); ++i) f.entries.push_back(ParseEntry(doc[i], i, true));
    return f;
  }
  f.entries.push_back(ParseEntry(doc, 0, false));
  return f;
}

namespace {

// Skips JSON values without building them: the overload path's scan for ids.
// Every function returns false on malformed text; depth is bounded.
class Skipper {
 public:
  explicit Skipper(std::string_view t) : t_(t) {}
  size_t pos() const { return i_; }
  bool AtEnd() { Ws(); return i_ == t_.size(); }
  bool Peek(char c) { Ws(); return i_ < t_.size() && t_[i_] == c; }
  bool Eat(char c) {
    if (!Peek(c)) return false;
    ++i_;
    return true;
  }
  // A string; *raw is its text between the quotes, escapes undecoded.
  bool String(std::string_view* raw) {
    if (!Eat('"')) return false;
    const size_t start = i_;
    for (; i_ < t_.size(); ++i_) {
      if (t_[i_] == '\\') {
        ++i_;
      } else if (t_[i_] == '"') {
        if (raw) *raw = t_.substr(start, i_ - start);
        ++i_;
        return true;
      }
    }
    return false;
  }
  bool Value(int depth) {
    if (depth > kMaxJsonDepth) return false;
    Ws();
    if (i_ >= t_.size()) return false;
    const char c = t_[i_];
    if (c == '"') return String(nullptr);
    if (c == '{') {
      ++i_;
      if (Eat('}')) return true;
      do {
        if (!String(nullptr) || !Eat(':') || !Value(depth + 1)) return false;
      } while (Eat(','));
      return Eat('}');
    }
    if (c == '[') {
      ++i_;
      if (Eat(']')) return true;
      do {
        if (!Value(depth + 1)) return false;
      } while (Eat(','));
      return Eat(']');
    }
    // A number or a literal: a run of the characters they may hold.
    const size_t start = i_;
    while (i_ < t_.size() && (std::isalnum(static_cast<unsigned char>(t_[i_])) || t_[i_] == '-' ||
                              t_[i_] == '+' || t_[i_] == '.')) {
      ++i_;
    }
    return i_ > start;
  }
  // An object's members; for the member "id", *id gets its value (null when
  // it is not a string, number or null, or does not parse). *has_id says
  // whether there was one.
  bool ObjectId(json* id, bool* has_id) {
    *has_id = false;
    if (!Eat('{')) return Value(1);  // not an object: skipped, no id
    if (Eat('}')) return true;
    do {
      std::string_view key;
      if (!String(&key) || !Eat(':')) return false;
      Ws();
      const size_t start = i_;
      if (!Value(2)) return false;
      if (key == "id") {
        *has_id = true;
        try {
          *id = json::parse(t_.substr(start, i_ - start));
        } catch (const json::exception&) {
          *id = nullptr;
        }
        if (!id->is_string() && !id->is_number() && !id->is_null()) *id = nullptr;
      }
    } while (Eat(','));
    return Eat('}');
  }

 private:
  void Ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }
  std::string_view t_;
  size_t i_ = 0;
};

}  // namespace

std::optional<std::string> RejectFrameText(std::string_view text, const RpcError& error) {
  Skipper s(text);
  json id;
  bool has_id = false;
  if (s.Peek('[')) {
    s.Eat('[');
    json out = json::array();
    size_t n = 0;
    if (!s.Eat(']')) {
      do {
        if (!s.ObjectId(&id, &has_id)) return Serialize(MakeError(json(), error));
        if (has_id) out.push_back(MakeError(id, error));
        if (++n > kMaxBatch) return Serialize(MakeError(json(), error));
      } while (s.Eat(','));
      if (!s.Eat(']')) return Serialize(MakeError(json(), error));
    }
    if (!s.AtEnd() || n == 0) return Serialize(MakeError(json(), error));
    if (out.empty()) return std::nullopt;  // notifications only
    return Serialize(out);
  }
  if (!s.ObjectId(&id, &has_id) || !s.AtEnd()) return Serialize(MakeError(json(), error));
  if (!has_id) return std::nullopt;  // a notification
  return Serialize(MakeError(id, error));
}

json MakeResult(const json& id, json result) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json MakeError(const json& id, const RpcError& error) {
  json err{{"code", error.code}, {"message", error.message}};
  json data = json::object();
  if (!error.field.empty()) data["field"] = error.field;
  if (!error.reason.empty()) data["reason"] = error.reason;
  if (!data.empty()) err["data"] = std::move(data);
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

json MakeNotification(std::string_view method, json params) {
  return json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

std::string Serialize(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace playbook::server

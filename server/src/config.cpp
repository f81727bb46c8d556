// The daemon's configuration: TOML text -> Config, with every rejection naming
// the dotted key. All toml++ use stays in this file.
//
// Secrets: nothing under [auth] is ever echoed into a message (not even a
// role, which an operator may have swapped with the token by mistake); only
// its type and position are.

#include "playbook/server/config.h"

#include "playbook/server/http_embedder.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#if !TOML_EXCEPTIONS
#error "config.cpp expects toml++ with exceptions (Debian's libtomlplusplus is built that way)"
#endif

namespace playbook::server {
namespace {

// ---------------------------------------------------------------------------
// Limits, shared by ParseConfig and ValidateConfig.

struct IntRange {
  const char* field;
  int64_t lo;
  int64_t hi;
};

constexpr int64_t kU32Max = std::numeric_limits<uint32_t>::max();

constexpr IntRange kPort{"server.port", 0, 65535};
constexpr IntRange kMaxFrameBytes{"server.max_frame_bytes", 1024, int64_t{1} << 30};
constexpr IntRange kIoThreads{"server.io_threads", 0, 256};
constexpr IntRange kWorkerThreads{"server.worker_threads", 0, 1024};
constexpr IntRange kMaxQueuedRequests{"server.max_queued_requests", 1, kU32Max};
constexpr IntRange kMaxInflight{"server.max_inflight_per_connection", 1, kU32Max};
constexpr IntRange kMaxConnections{"server.max_connections", 1, kU32Max};
constexpr IntRange kShutdownGraceMs{"server.shutdown_grace_ms", 0, 600000};
constexpr IntRange kOpenDelayMs{"debug.open_delay_ms", 0, 600000};
constexpr IntRange kMaxQueuedBytes{"server.max_queued_bytes", 1 << 20, int64_t{1} << 40};
constexpr IntRange kMaxConnectionBytes{"server.max_connection_bytes", 64 << 10, int64_t{1} << 40};
constexpr IntRange kMaxResponseBytes{"server.max_response_bytes", 1024, int64_t{1} << 32};
constexpr IntRange kIdleTimeoutMs{"server.idle_timeout_ms", 1000, 86400000};
constexpr IntRange kWriteTimeoutMs{"server.write_timeout_ms", 100, 3600000};
constexpr IntRange kMaxQueueWaitMs{"server.max_queue_wait_ms", 0, 600000};
constexpr IntRange kDimension{"index.dimension", 1, 4096};
constexpr IntRange kEmbedderDimension{"embedder.dimension", 1, 4096};
constexpr IntRange kEmbedderTimeoutMs{"embedder.timeout_ms", 100, 600000};
constexpr IntRange kEmbedderBatchSize{"embedder.batch_size", 1, 2048};
constexpr IntRange kAttributionDays{"funnel.attribution_window_days", 1, 3650};
constexpr IntRange kHnswMinAssets{"index.hnsw_min_assets", 0, kU32Max};
constexpr IntRange kHnswM{"index.hnsw_m", 4, 128};
constexpr IntRange kHnswEfConstruction{"index.hnsw_ef_construction", 8, 4096};
constexpr IntRange kHnswEfSearch{"index.hnsw_ef_search", 8, 4096};
constexpr IntRange kRebuildAfterAdds{"index.rebuild_after_adds", 1, kU32Max};
constexpr IntRange kSeed{"ranking.seed", 0, INT64_MAX};
constexpr IntRange kCandidatesPerItem{"ranking.candidates_per_item", 1, 1000};

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
constexpr std::string_view kLogLevelsText =
    R"("trace", "debug", "info", "warn", "error" or "off")";
constexpr std::string_view kRolesText = R"("crm", "marketing" or "admin")";
constexpr std::string_view kStageRule =
    "a stage name of 1 to 64 characters from a-z, 0-9, '_' and '-'";

// ---------------------------------------------------------------------------
// Message helpers.

bool IsBareKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A user-supplied string, quoted for a message: escaped, and cut when long.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  bool cut = false;
  if (s.size() > kMax) {
    size_t n = kMax;
    // Do not split a UTF-8 sequence.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n);
    cut = true;
  }
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(u));
      out += buf;
    } else {
      out += c;
    }
  }
  out += cut ? "...\"" : "\"";
  return out;
}

std::string KeyPart(std::string_view key) { return IsBareKey(key) ? std::string(key) : Quote(key); }

std::string Join(const std::string& parent, std::string_view key) {
  return parent.empty() ? KeyPart(key) : parent + "." + KeyPart(key);
}

std::string At(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

// "a string", "an integer", ...: for places whose value must not be echoed.
std::string TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// The value itself when it is a scalar, for "got ..." in messages.
std::string Describe(const toml::node& n) {
  std::ostringstream os;
  switch (n.type()) {
    case toml::node_type::string: return Quote(n.as_string()->get());
    case toml::node_type::integer: return std::to_string(n.as_integer()->get());
    case toml::node_type::boolean: return n.as_boolean()->get() ? "true" : "false";
    case toml::node_type::floating_point: os << *n.as_floating_point(); return os.str();
    case toml::node_type::date: os << "the date " << *n.as_date(); return os.str();
    case toml::node_type::time: os << "the time " << *n.as_time(); return os.str();
    case toml::node_type::date_time: os << "the date-time " << *n.as_date_time(); return os.str();
    default: return TypeName(n);
  }
}

std::string RangeText(int64_t lo, int64_t hi) {
  return std::to_string(lo) + ".." + std::to_string(hi);
}

Status RangeError(const IntRange& r, const std::string& got) {
  return Status::InvalidArgument(r.field,
                                 "expected an integer " + RangeText(r.lo, r.hi) + ", got " + got);
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// ---------------------------------------------------------------------------
// Checks on plain values, shared by ParseConfig and ValidateConfig.

bool IsValidStageName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsLogLevel(std::string_view s) {
  for (std::string_view level : kLogLevels) {
    if (s == level) return true;
  }
  return false;
}

Status CheckRange(const IntRange& r, int64_t v) {
  if (v < r.lo || v > r.hi) return RangeError(r, std::to_string(v));
  return Status::Ok();
}

// "http://host[:port]" or "https://host[:port]", as a browser sends it in Origin.
bool IsValidOrigin(std::string_view s) {
  std::string_view rest;
  if (s.substr(0, 7) == "http://") {
    rest = s.substr(7);
  } else if (s.substr(0, 8) == "https://") {
    rest = s.substr(8);
  } else {
    return false;
  }
  if (rest.empty() || rest.size() > 255) return false;
  for (char c : rest) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return rest.front() != ':';
}

Status CheckTls(const TlsOptions& tls) {
  if (tls.cert.empty() && !tls.key.empty()) {
    return Status::InvalidArgument("server.tls.cert",
                                   "missing: server.tls.cert and server.tls.key go together");
  }
  if (!tls.cert.empty() && tls.key.empty()) {
    return Status::InvalidArgument("server.tls.key",
                                   "missing: server.tls.cert and server.tls.key go together");
  }
  return Status::Ok();
}

// [embedder]: the keys of kind "http" go with it; its dimension is the index's.
Status CheckEmbedder(const toml::table& doc, Config* config) {
  const EmbedderOptions& e = config->embedder;
  const toml::table* section = doc["embedder"].as_table();
  const auto has = [&](const char* key) { return section != nullptr && section->contains(key); };
  constexpr const char* kHttpKeys[] = {"url", "model", "dimension", "timeout_ms", "batch_size", "api_key_env"};
  if (e.kind != "http") {
    for (const char* key : kHttpKeys) {
      if (has(key)) return Status::InvalidArgument(std::string("embedder.") + key, "only with kind = \"http\"");
    }
    return Status::Ok();
  }
  for (const char* key : {"url", "model", "dimension"}) {
    if (!has(key)) return Status::InvalidArgument(std::string("embedder.") + key, "required with kind = \"http\"");
  }
  if (auto url = ParseHttpUrl(e.url, "embedder.url"); !url.ok()) return url.status();
  if (doc["index"]["dimension"].node() == nullptr) {
    config->engine.dimension = e.dimension;
  } else if (config->engine.dimension != e.dimension) {
    return Status::InvalidArgument("embedder.dimension",
                                   std::to_string(e.dimension) + " differs from index.dimension " +
                                       std::to_string(config->engine.dimension) +
                                       ": the index holds the model's vectors (leave index.dimension out, or "
                                       "make the two equal)");
  }
  return Status::Ok();
}

Status CheckStages(const std::vector<std::string>& stages) {
  const std::string field = "funnel.stages";
  if (stages.empty()) {
    return Status::InvalidArgument(field, "at least one stage is required");
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    if (!IsValidStageName(stages[i])) {
      return Status::InvalidArgument(At(field, i),
                                     "expected " + std::string(kStageRule) + ", got " +
                                         Quote(stages[i]));
    }
    for (size_t j = 0; j < i; ++j) {
      if (stages[j] == stages[i]) {
        return Status::InvalidArgument(At(field, i), "duplicate stage '" + stages[i] +
                                                         "' (first at " + At(field, j) + ")");
      }
    }
  }
  return Status::Ok();
}

bool IsValidTokenName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string TokenName(const std::vector<AuthToken>& tokens, size_t i) {
  return tokens[i].name.empty() ? "token-" + std::to_string(i) : tokens[i].name;
}

// Never puts a token's text in a message.
Status CheckTokens(const std::vector<AuthToken>& tokens) {
  const std::string field = "auth.tokens";
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].token.empty()) {
      return Status::InvalidArgument(At(field, i) + ".token", "must not be empty");
    }
    if (!tokens[i].name.empty() && !IsValidTokenName(tokens[i].name)) {
      return Status::InvalidArgument(At(field, i) + ".name",
                                     "expected 1 to 64 characters from A-Z, a-z, 0-9, '_', '-' and '.'");
    }
    for (size_t j = 0; j < i; ++j) {
      if (TokenName(tokens, j) == TokenName(tokens, i)) {
        return Status::InvalidArgument(
            At(field, i) + ".name",
            "duplicate name: same as " + At(field, j) + ".name (an entry without a name is called "
            "token-<index>); every name must be unique");
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (tokens[j].token == tokens[i].token) {
        return Status::InvalidArgument(
            At(field, i) + ".token",
            "duplicate token: same value as " + At(field, j) + ".token; every token must be unique");
      }
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// The TOML walk.

using Handler = std::function<Status(const toml::node& node, const std::string& path)>;

struct Key {
  std::string_view name;
  Handler handle;
};

Status UnknownKey(const std::string& path, std::string_view key, std::string_view where,
                  const std::vector<Key>& keys) {
  std::string msg = "unknown key";
  std::string_view best;
  size_t best_distance = 3;  // suggest only close matches
  for (const Key& k : keys) {
    size_t d = EditDistance(key, k.name);
    if (d < best_distance) {
      best_distance = d;
      best = k.name;
    }
  }
  if (!best.empty()) msg += " (did you mean '" + std::string(best) + "'?)";
  msg += "; valid keys ";
  msg += where;
  msg += ": ";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) msg += ", ";
    msg += keys[i].name;
  }
  return Status::InvalidArgument(path, std::move(msg));
}

// `where` names the table for messages ("in [server]"). With `secret`, the
// value is never echoed when it is not a table.
Status WalkTable(const toml::node& node, const std::string& path, std::string_view where,
                 const std::vector<Key>& keys, bool secret = false) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return Status::InvalidArgument(
        path, "expected a table, got " + (secret ? TypeName(node) : Describe(node)));
  }
  for (auto&& [k, v] : *table) {
    const std::string child = Join(path, k.str());
    const Key* match = nullptr;
    for (const Key& key : keys) {
      if (key.name == k.str()) match = &key;
    }
    if (match == nullptr) return UnknownKey(child, k.str(), where, keys);
    Status s = match->handle(v, child);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

template <class T>
Handler Integer(T* out, const IntRange& range) {
  return [out, range](const toml::node& n, const std::string&) -> Status {
    const auto* v = n.as_integer();
    if (v == nullptr) return RangeError(range, Describe(n));
    Status s = CheckRange(range, v->get());
    if (!s.ok()) return s;
    *out = static_cast<T>(v->get());
    return Status::Ok();
  };
}

Handler NonEmptyString(std::string* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_string();
    if (v == nullptr) {
      return Status::InvalidArgument(path, "expected a non-empty string, got " + Describe(n));
    }
    if (v->get().empty()) return Status::InvalidArgument(path, "must not be empty");
    *out = v->get();
    return Status::Ok();
  };
}

Handler Boolean(bool* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_boolean();
    if (v == nullptr) {
      return Status::InvalidArgument(path, "expected true or false, got " + Describe(n));
    }
    *out = v->get();
    return Status::Ok();
  };
}

// A number in [lo, hi]; integers are accepted too.
Handler Fraction(double* out, double lo, double hi) {
  return [out, lo, hi](const toml::node& n, const std::string& path) -> Status {
    std::optional<double> v;
    if (const auto* f = n.as_floating_point()) v = f->get();
    if (const auto* i = n.as_integer()) v = static_cast<double>(i->get());
    if (!v || *v < lo || *v > hi) {
      char range[64];
      std::snprintf(range, sizeof range, "%g..%g", lo, hi);
      return Status::InvalidArgument(path, std::string("expected a number ") + range + ", got " + Describe(n));
    }
    *out = *v;
    return Status::Ok();
  };
}

Handler IndexKind(std::string* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_string();
    if (v == nullptr || (v->get() != "auto" && v->get() != "exact" && v->get() != "hnsw")) {
      return Status::InvalidArgument(path, "expected \"auto\", \"exact\" or \"hnsw\", got " + Describe(n));
    }
    *out = v->get();
    return Status::Ok();
  };
}

// Any string, the empty one included.
Handler AnyString(std::string* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_string();
    if (v == nullptr) return Status::InvalidArgument(path, "expected a string, got " + Describe(n));
    *out = v->get();
    return Status::Ok();
  };
}

Handler EmbedderKind(std::string* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_string();
    if (v == nullptr || (v->get() != "lexical" && v->get() != "http")) {
      return Status::InvalidArgument(path, "expected \"lexical\" or \"http\", got " + Describe(n));
    }
    *out = v->get();
    return Status::Ok();
  };
}

// An environment variable's name: [A-Za-z_][A-Za-z0-9_]*.
Handler EnvName(std::string* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_string();
    bool ok = v != nullptr && !v->get().empty() && !(v->get()[0] >= '0' && v->get()[0] <= '9');
    for (char c : ok ? v->get() : std::string()) {
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
    }
    if (!ok) {
      return Status::InvalidArgument(path, "expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), got " +
                                               Describe(n));
    }
    *out = v->get();
    return Status::Ok();
  };
}

Handler LogLevel(std::string* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const auto* v = n.as_string();
    if (v == nullptr || !IsLogLevel(v->get())) {
      return Status::InvalidArgument(
          path, "expected one of " + std::string(kLogLevelsText) + ", got " + Describe(n));
    }
    *out = v->get();
    return Status::Ok();
  };
}

Handler Stages(std::vector<std::string>* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const toml::array* a = n.as_array();
    if (a == nullptr) {
      return Status::InvalidArgument(path,
                                     "expected an array of stage names, got " + Describe(n));
    }
    std::vector<std::string> stages;
    for (size_t i = 0; i < a->size(); ++i) {
      const auto* s = (*a)[i].as_string();
      if (s == nullptr) {
        return Status::InvalidArgument(
            At(path, i), "expected " + std::string(kStageRule) + ", got " + Describe((*a)[i]));
      }
      stages.push_back(s->get());
    }
    Status s = CheckStages(stages);
    if (!s.ok()) return s;
    *out = std::move(stages);
    return Status::Ok();
  };
}

// [server] allowed_origins: browser origins, scheme://host[:port].
Handler Origins(std::vector<std::string>* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const toml::array* a = n.as_array();
    if (a == nullptr) {
      return Status::InvalidArgument(
          path, "expected an array of origins such as [\"https://crm.example.com\"], got " + Describe(n));
    }
    std::vector<std::string> origins;
    for (size_t i = 0; i < a->size(); ++i) {
      const auto* s = (*a)[i].as_string();
      if (s == nullptr || !IsValidOrigin(s->get())) {
        return Status::InvalidArgument(
            At(path, i), "expected an origin: http:// or https:// then host[:port], no path "
                         "(e.g. \"https://crm.example.com\"), got " + Describe((*a)[i]));
      }
      origins.push_back(s->get());
    }
    *out = std::move(origins);
    return Status::Ok();
  };
}

// [[auth.tokens]]. Values here are secrets: messages give types, never values.
Handler Tokens(std::vector<AuthToken>* out) {
  return [out](const toml::node& n, const std::string& path) -> Status {
    const toml::array* a = n.as_array();
    if (a == nullptr) {
      return Status::InvalidArgument(
          path, "expected an array of tables (write each token as an [[auth.tokens]] entry), got " +
                    TypeName(n));
    }
    std::vector<AuthToken> tokens;
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& entry = (*a)[i];
      if (!entry.is_table()) {
        return Status::InvalidArgument(
            path, "expected an array of tables (write each token as an [[auth.tokens]] entry), "
                  "but element " + std::to_string(i) + " is " + TypeName(entry));
      }
      const std::string entry_path = At(path, i);
      AuthToken token;
      bool has_token = false;
      std::vector<Key> keys = {
          {"role",
           [&token](const toml::node& v, const std::string& p) -> Status {
             const auto* s = v.as_string();
             std::optional<Role> role = s ? ParseRole(s->get()) : std::nullopt;
             if (!role) {
               std::string got = s ? ", got another string (values under [auth] are not echoed)"
                                   : ", got " + TypeName(v);
               return Status::InvalidArgument(p, "expected one of " + std::string(kRolesText) + got);
             }
             token.role = *role;
             return Status::Ok();
           }},
          {"token",
           [&token, &has_token](const toml::node& v, const std::string& p) -> Status {
             const auto* s = v.as_string();
             if (s == nullptr) {
               return Status::InvalidArgument(p,
                                              "expected a non-empty string, got " + TypeName(v));
             }
             token.token = s->get();
             has_token = true;
             return Status::Ok();
           }},
          {"name",
           [&token](const toml::node& v, const std::string& p) -> Status {
             const auto* s = v.as_string();
             if (s == nullptr || !IsValidTokenName(s->get())) {
               return Status::InvalidArgument(
                   p, "expected 1 to 64 characters from A-Z, a-z, 0-9, '_', '-' and '.', got " +
                          (s ? std::string("another string") : TypeName(v)));
             }
             token.name = s->get();
             return Status::Ok();
           }},
      };
      Status s = WalkTable(entry, entry_path, "in [[auth.tokens]]", keys, /*secret=*/true);
      if (!s.ok()) return s;
      if (!has_token) {
        return Status::InvalidArgument(entry_path + ".token",
                                       "missing: every [[auth.tokens]] entry needs a token");
      }
      if (token.name.empty()) token.name = "token-" + std::to_string(i);
      tokens.push_back(std::move(token));
    }
    Status s = CheckTokens(tokens);
    if (!s.ok()) return s;
    *out = std::move(tokens);
    return Status::Ok();
  };
}

Status WalkDocument(const toml::table& doc, Config* c) {
  ServerOptions& srv = c->server;
  EngineOptions& eng = c->engine;
  auto section = [](std::string where, std::vector<Key> keys, bool secret = false) -> Handler {
    return [where = std::move(where), keys = std::move(keys), secret](
               const toml::node& n, const std::string& path) -> Status {
      return WalkTable(n, path, where, keys, secret);
    };
  };
  std::vector<Key> top = {
      {"server", section("in [server]",
                         {
                             {"bind", NonEmptyString(&srv.bind)},
                             {"port", Integer(&srv.port, kPort)},
                             {"max_frame_bytes", Integer(&srv.max_frame_bytes, kMaxFrameBytes)},
                             {"io_threads", Integer(&srv.io_threads, kIoThreads)},
                             {"worker_threads", Integer(&srv.worker_threads, kWorkerThreads)},
                             {"max_queued_requests",
                              Integer(&srv.max_queued_requests, kMaxQueuedRequests)},
                             {"max_inflight_per_connection",
                              Integer(&srv.max_inflight_per_connection, kMaxInflight)},
                             {"max_connections", Integer(&srv.max_connections, kMaxConnections)},
                             {"shutdown_grace_ms",
                              Integer(&srv.shutdown_grace_ms, kShutdownGraceMs)},
                             {"max_queued_bytes", Integer(&srv.max_queued_bytes, kMaxQueuedBytes)},
                             {"max_connection_bytes",
                              Integer(&srv.max_connection_bytes, kMaxConnectionBytes)},
                             {"max_response_bytes",
                              Integer(&srv.max_response_bytes, kMaxResponseBytes)},
                             {"idle_timeout_ms", Integer(&srv.idle_timeout_ms, kIdleTimeoutMs)},
                             {"write_timeout_ms", Integer(&srv.write_timeout_ms, kWriteTimeoutMs)},
                             {"max_queue_wait_ms", Integer(&srv.max_queue_wait_ms, kMaxQueueWaitMs)},
                             {"allowed_origins", Origins(&srv.allowed_origins)},
                             {"tls", section("in [server.tls]",
                                             {
                                                 {"cert", NonEmptyString(&srv.tls.cert)},
                                                 {"key", NonEmptyString(&srv.tls.key)},
                                             })},
                         })},
      {"storage", section("in [storage]", {{"data_dir", NonEmptyString(&eng.data_dir)}})},
      {"index", section("in [index]",
                        {
                            {"dimension", Integer(&eng.dimension, kDimension)},
                            {"kind", IndexKind(&eng.index.kind)},
                            {"hnsw_min_assets", Integer(&eng.index.hnsw_min_assets, kHnswMinAssets)},
                            {"hnsw_m", Integer(&eng.index.hnsw_m, kHnswM)},
                            {"hnsw_ef_construction",
                             Integer(&eng.index.hnsw_ef_construction, kHnswEfConstruction)},
                            {"hnsw_ef_search", Integer(&eng.index.hnsw_ef_search, kHnswEfSearch)},
                            {"exact_below_fraction", Fraction(&eng.index.exact_below_fraction, 0, 1)},
                            {"rebuild_after_adds",
                             Integer(&eng.index.rebuild_after_adds, kRebuildAfterAdds)},
                        })},
      {"ranking", section("in [ranking]",
                          {
                              {"similarity_weight", Fraction(&eng.ranking.similarity_weight, 0, 100)},
                              {"effectiveness_weight", Fraction(&eng.ranking.effectiveness_weight, 0, 100)},
                              {"evidence_max", Fraction(&eng.ranking.evidence_max, 0, 10)},
                              {"evidence_half", Fraction(&eng.ranking.evidence_half, 0.1, 100000)},
                              {"explore_band", Fraction(&eng.ranking.explore_band, 0, 10)},
                              {"language_bonus", Fraction(&eng.ranking.language_bonus, 0, 10)},
                              {"phrase_min_support", Fraction(&eng.ranking.phrase_min_support, 1, 1000000)},
                              {"phrase_half_life_days",
                               Fraction(&eng.ranking.phrase_half_life_days, 0.1, 100000)},
                              {"phrase_max", Fraction(&eng.ranking.phrase_max, 0, 10)},
                              {"phrase_half", Fraction(&eng.ranking.phrase_half, 0.1, 100000)},
                              {"use_weight", Fraction(&eng.ranking.use_weight, 0, 100)},
                              {"win_weight", Fraction(&eng.ranking.win_weight, 0, 100)},
                              {"advance_weight", Fraction(&eng.ranking.advance_weight, 0, 100)},
                              {"dismiss_weight", Fraction(&eng.ranking.dismiss_weight, 0, 100)},
                              {"prior_strength", Fraction(&eng.ranking.prior_strength, 0.1, 100000)},
                              {"explore", Boolean(&eng.ranking.explore)},
                              {"seed", Integer(&eng.ranking.seed, kSeed)},
                              {"mmr_lambda", Fraction(&eng.ranking.mmr_lambda, 0, 1)},
                              {"duplicate_similarity", Fraction(&eng.ranking.duplicate_similarity, 0, 1)},
                              {"recency_weight", Fraction(&eng.ranking.recency_weight, 0, 100)},
                              {"recency_half_life_days", Fraction(&eng.ranking.recency_half_life_days, 0.1, 100000)},
                              {"candidates_per_item", Integer(&eng.ranking.candidates_per_item, kCandidatesPerItem)},
                          })},
      {"embedder", section("in [embedder]",
                           {
                               {"kind", EmbedderKind(&c->embedder.kind)},
                               {"lexicon", AnyString(&c->embedder.lexicon)},
                               {"url", NonEmptyString(&c->embedder.url)},
                               {"model", NonEmptyString(&c->embedder.model)},
                               {"dimension", Integer(&c->embedder.dimension, kEmbedderDimension)},
                               {"timeout_ms", Integer(&c->embedder.timeout_ms, kEmbedderTimeoutMs)},
                               {"batch_size", Integer(&c->embedder.batch_size, kEmbedderBatchSize)},
                               {"api_key_env", EnvName(&c->embedder.api_key_env)},
                           })},
      {"funnel", section("in [funnel]",
                         {
                             {"stages", Stages(&eng.stages)},
                             {"attribution_window_days",
                              Integer(&eng.attribution_window_days, kAttributionDays)},
                         })},
      {"experiment", section("in [experiment]",
                             {
                                 {"holdout_fraction", Fraction(&eng.experiment.holdout_fraction, 0, 0.5)},
                                 {"salt", AnyString(&eng.experiment.salt)},
                             })},
      {"log", section("in [log]", {{"level", LogLevel(&c->log.level)}})},
      {"debug", section("in [debug]", {{"test_methods", Boolean(&c->debug.test_methods)},
                                       {"open_delay_ms", Integer(&c->debug.open_delay_ms, kOpenDelayMs)}})},
      {"auth", section("in [auth]", {{"tokens", Tokens(&c->tokens)}}, /*secret=*/true)},
  };
  return WalkTable(doc, "", "at the top level", top);
}

bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------

const char* RoleName(Role role) {
  switch (role) {
    case Role::kCrm: return "crm";
    case Role::kMarketing: return "marketing";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "crm") return Role::kCrm;
  if (name == "marketing") return Role::kMarketing;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

Result<Config> ParseConfig(std::string_view toml_text, std::string_view source) {
  toml::table doc;
  try {
    doc = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    const toml::source_region& where = e.source();
    std::string msg(source);
    msg += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) +
           ": invalid TOML: ";
    msg += e.description();
    return Status::InvalidArgument("", std::move(msg));
  }
  Config config;
  Status s = WalkDocument(doc, &config);
  if (!s.ok()) return s;
  s = CheckTls(config.server.tls);
  if (!s.ok()) return s;
  s = CheckEmbedder(doc, &config);
  if (!s.ok()) return s;
  return config;
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Status::IOError("cannot open config file '" + path + "': " + std::strerror(errno));
  }
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    return Status::IOError("cannot read config file '" + path + "': " + std::strerror(err));
  }
  Result<Config> config = ParseConfig(text, path);
  if (!config.ok()) return config;
  Config c = std::move(config).value();
  c.source_path = path;
  c.source_text = std::move(text);
  return c;
}

namespace {

// Dotted key -> the value as TOML text, for every leaf; [[auth.tokens]] left out.
void Flatten(const toml::table& table, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>* out) {
  for (auto&& [k, v] : table) {
    const std::string path = Join(prefix, k.str());
    if (path == "auth.tokens") continue;
    if (const toml::table* t = v.as_table()) {
      Flatten(*t, path, out);
      continue;
    }
    std::ostringstream os;
    v.visit([&os](const auto& node) { os << node; });
    out->emplace_back(path, os.str());
  }
}

}  // namespace

std::vector<std::string> ChangedKeysExceptTokens(std::string_view old_text, std::string_view new_text) {
  std::vector<std::pair<std::string, std::string>> a, b;
  try {
    Flatten(toml::parse(old_text), "", &a);
    Flatten(toml::parse(new_text), "", &b);
  } catch (const toml::parse_error&) {
    return {""};
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<std::string> changed;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].first < b[j].first)) {
      changed.push_back(a[i++].first);
    } else if (i == a.size() || b[j].first < a[i].first) {
      changed.push_back(b[j++].first);
    } else {
      if (a[i].second != b[j].second) changed.push_back(a[i].first);
      ++i;
      ++j;
    }
  }
  return changed;
}

Status ValidateConfig(const Config& config) {
  const ServerOptions& srv = config.server;
  if (srv.bind.empty()) return Status::InvalidArgument("server.bind", "must not be empty");
  for (auto [range, value] : {
           std::pair{kPort, int64_t{srv.port}},
           std::pair{kMaxFrameBytes, static_cast<int64_t>(std::min<uint64_t>(
                                         srv.max_frame_bytes, uint64_t{1} << 62))},
           std::pair{kIoThreads, int64_t{srv.io_threads}},
           std::pair{kWorkerThreads, int64_t{srv.worker_threads}},
           std::pair{kMaxQueuedRequests, int64_t{srv.max_queued_requests}},
           std::pair{kMaxInflight, int64_t{srv.max_inflight_per_connection}},
           std::pair{kMaxConnections, int64_t{srv.max_connections}},
           std::pair{kShutdownGraceMs, int64_t{srv.shutdown_grace_ms}},
           std::pair{kMaxQueuedBytes, static_cast<int64_t>(std::min<uint64_t>(srv.max_queued_bytes, uint64_t{1} << 62))},
           std::pair{kMaxConnectionBytes, static_cast<int64_t>(std::min<uint64_t>(srv.max_connection_bytes, uint64_t{1} << 62))},
           std::pair{kMaxResponseBytes, static_cast<int64_t>(std::min<uint64_t>(srv.max_response_bytes, uint64_t{1} << 62))},
           std::pair{kIdleTimeoutMs, int64_t{srv.idle_timeout_ms}},
           std::pair{kWriteTimeoutMs, int64_t{srv.write_timeout_ms}},
           std::pair{kMaxQueueWaitMs, int64_t{srv.max_queue_wait_ms}},
           std::pair{kOpenDelayMs, int64_t{config.debug.open_delay_ms}},
           std::pair{kDimension, int64_t{config.engine.dimension}},
           std::pair{kAttributionDays, int64_t{config.engine.attribution_window_days}},
       }) {
    Status s = CheckRange(range, value);
    if (!s.ok()) return s;
  }
  if (config.engine.data_dir.empty()) {
    return Status::InvalidArgument("storage.data_dir", "must not be empty");
  }
  if (const double f = config.engine.experiment.holdout_fraction; !(f >= 0 && f <= 0.5)) {
    return Status::InvalidArgument("experiment.holdout_fraction", "expected a number 0..0.5, got " + std::to_string(f));
  }
  Status s = CheckStages(config.engine.stages);
  if (!s.ok()) return s;
  if (!IsLogLevel(config.log.level)) {
    return Status::InvalidArgument(
        "log.level", "expected one of " + std::string(kLogLevelsText) + ", got " +
                         Quote(config.log.level));
  }
  s = CheckTokens(config.tokens);
  if (!s.ok()) return s;
  s = CheckTls(srv.tls);
  if (!s.ok()) return s;
  for (size_t i = 0; i < srv.allowed_origins.size(); ++i) {
    if (!IsValidOrigin(srv.allowed_origins[i])) {
      return Status::InvalidArgument(At("server.allowed_origins", i),
                                     "expected an origin: http:// or https:// then host[:port], no path, got " +
                                         Quote(srv.allowed_origins[i]));
    }
  }
  if (config.tokens.empty() && !IsLoopbackAddress(srv.bind)) {
    return Status::InvalidArgument(
        "server.bind", "refusing to bind " + srv.bind +
                           " without auth tokens: configure [[auth.tokens]] or bind 127.0.0.1");
  }
  return Status::Ok();
}

bool IsLoopbackAddress(std::string_view address) {
  if (EqualsIgnoreAsciiCase(address, "localhost")) return true;
  if (address.empty() || address.size() > 64 ||
      address.find('\0') != std::string_view::npos) {
    return false;
  }
  const std::string text(address);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace playbook::server

// The daemon's configuration: the TOML file, the command-line overrides, and
// the checks that stop a bad config at start with a message naming the key.
//
// Every key, its default and its meaning is listed in config/playbook.example.toml
// and docs/operations.md; keep the three in step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/engine/options.h"
#include "playbook/engine/status.h"

namespace playbook::server {

// Roles of API tokens, least to most privileged; each includes the ones before it.
enum class Role { kCrm = 0, kMarketing = 1, kAdmin = 2 };
const char* RoleName(Role role);
// "crm" | "marketing" | "admin"; nullopt for anything else.
std::optional<Role> ParseRole(std::string_view name);

struct AuthToken {
  Role role = Role::kCrm;
  std::string token;  // secret: never logged
  // For the logs (audit lines): which token acted, without revealing it.
  // 1..64 of A-Z a-z 0-9 '_' '-' '.', unique; empty = "token-<i>" (i = its
  // index), which ParseConfig fills in.
  std::string name = {};
};

// [server.tls]: both set turn the port into https/wss; neither = plain.
struct TlsOptions {
  std::string cert;  // PEM certificate chain file, read at start
  std::string key;   // PEM private key file, read at start
  bool enabled() const { return !cert.empty() || !key.empty(); }
};

struct ServerOptions {
  std::string bind = "127.0.0.1";
  uint16_t port = 7700;  // 0 = any free port (the ready file says which)
  // Largest WebSocket message accepted; a larger one closes its connection with 1009.
  uint64_t max_frame_bytes = 4 * 1024 * 1024;
  // Threads running the network (Asio) loop. 0 = one.
  uint32_t io_threads = 1;
  // Threads executing requests. 0 = four per core, at least 8 (handlers wait
  // on synced writes; more waiting callers share each fsync).
  uint32_t worker_threads = 0;
  // Requests (frames) queued or running on the workers, all connections together,
  // beyond which new frames are answered -32003 overloaded.
  uint32_t max_queued_requests = 1024;
  // Frames of one connection being worked on at once; beyond that the
  // connection is not read until one completes (back-pressure, not an error).
  uint32_t max_inflight_per_connection = 64;
  // Open connections (HTTP and WebSocket); further ones are refused with 503.
  uint32_t max_connections = 10000;
  // On SIGTERM/SIGINT, how long in-flight requests may run before their
  // connections are closed anyway.
  uint32_t shutdown_grace_ms = 5000;
  // Bytes of frames queued or running plus responses not yet written, all
  // connections together, beyond which new frames are answered -32003.
  uint64_t max_queued_bytes = 256ull << 20;
  // The same bytes for one connection; beyond them the connection is not read
  // until they drop (back-pressure, not an error). At least max_frame_bytes.
  uint64_t max_connection_bytes = 16ull << 20;
  // The largest response frame; a larger one is replaced by a -32603 error.
  uint64_t max_response_bytes = 64ull << 20;
  // A WebSocket that receives nothing for this long is pinged; one that does
  // not answer within the same time again is closed (half-open TCP).
  uint32_t idle_timeout_ms = 300000;
  // A frame that waited in the worker queue longer than this is answered
  // -32003 without being run. 0 = no limit.
  uint32_t max_queue_wait_ms = 1000;
  // A response the client does not read within this long closes the connection.
  uint32_t write_timeout_ms = 30000;
  // Browser origins ("https://crm.example.com") allowed to open the WebSocket
  // besides the daemon's own; an upgrade carrying another Origin is refused 403.
  std::vector<std::string> allowed_origins;
  TlsOptions tls;
};

struct LogOptions {
  std::string level = "info";  // trace | debug | info | warn | error | off
};

struct EmbedderOptions {
  // "lexical": the built-in embedder; "http": a model behind an
  // OpenAI-compatible POST /v1/embeddings (server/http_embedder.h).
  std::string kind = "lexical";
  // Path of the concept lexicon (format: data/lexicon/sales_concepts.tsv).
  // Empty = the lexicon shipped in the binary. With "lexical" a changed
  // lexicon changes the embedder's name: index.rebuild then re-embeds the
  // stored vectors. With "http" it gives only the concepts (reasons, topics).
  std::string lexicon;
  // kind = "http" only (refused with "lexical"):
  std::string url;    // required: http://host[:port][/path]; no path = /v1/embeddings
  std::string model;  // required: sent as "model", part of the embedder's name
  // Required: numbers per embedding, 1..4096. Sets index.dimension when that
  // is not in the file; must equal it when it is.
  uint32_t dimension = 0;
  uint32_t timeout_ms = 10000;  // per request, 100..600000
  uint32_t batch_size = 64;     // texts per request, 1..2048
  // Name of an environment variable holding an API key, sent as a Bearer
  // token; empty = none. Read at start (the key never goes in the file).
  std::string api_key_env;
};

struct DebugOptions {
  // Enables the debug.* methods (debug.sleep, debug.fail) used by the tests.
  // Never enable in production.
  bool test_methods = false;
  // Holds playbookd in "starting" (listening, the data dir not opened yet)
  // this long, so that tests can see it. Never set in production.
  uint32_t open_delay_ms = 0;
};

struct Config {
  ServerOptions server;
  EngineOptions engine;  // [storage], [index], [funnel]
  EmbedderOptions embedder;
  LogOptions log;
  DebugOptions debug;
  std::vector<AuthToken> tokens;  // [[auth.tokens]]
  // Set by LoadConfigFile: the file and its text, for the SIGHUP token reload.
  std::string source_path;
  std::string source_text;
};

// Parses TOML text. `source` names the file in messages. Unknown keys, wrong
// types and out-of-range values are InvalidArgument with field() the dotted key
// ("server.port", "auth.tokens[1].role", "funnel.stages[2]").
Result<Config> ParseConfig(std::string_view toml_text, std::string_view source = "config");

// Reads and parses a file. IOError when it cannot be read.
Result<Config> LoadConfigFile(const std::string& path);

// Checks that hold between keys and against the command-line overrides, after
// overrides are applied: e.g. a non-loopback bind with no tokens is refused.
Status ValidateConfig(const Config& config);

// The dotted keys whose values differ between two config texts, [[auth.tokens]]
// aside ("server.port", "index.kind"): what a SIGHUP reload cannot apply. Texts
// that do not parse count as one change, "".
std::vector<std::string> ChangedKeysExceptTokens(std::string_view old_text, std::string_view new_text);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackAddress(std::string_view address);

}  // namespace playbook::server

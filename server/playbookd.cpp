// playbookd: the Playbook daemon. Reads the config, opens the engine on the
// data dir, serves until SIGTERM/SIGINT, then drains and flushes. Exit codes:
// 0 after a clean stop, 1 when it cannot start, 2 for bad command-line usage.
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "playbook/engine/engine.h"
#include "playbook/models/lexical_embedder.h"
#include "playbook/server/config.h"
#include "playbook/server/http_embedder.h"
#include "playbook/server/server.h"
#include "playbook/server/service_notify.h"
#include "playbook/server/version.h"
#include "readers.h"

namespace {

using playbook::Status;
namespace srv = playbook::server;

constexpr const char* kUsage = R"(usage: playbookd [options]

Playbook daemon: serves marketing-content recommendations to CRM plugins over
WebSocket JSON-RPC (ws://BIND:PORT/v1), with /healthz and /metrics on the same port.

options:
  --config FILE       TOML config (see config/playbook.example.toml); defaults serve without one
  --data-dir DIR      overrides [storage] data_dir
  --port N            overrides [server] port (0 = any free port)
  --bind ADDR         overrides [server] bind
  --log-level LEVEL   overrides [log] level: trace|debug|info|warn|error|off
  --ready-file FILE   once listening, write {"port","pid","version","status":"starting"} to FILE;
                      rewritten with "status":"ok" once the data dir is open and requests are served
  --load-sample FILE  on the first start over a data dir (no .sample-loaded file in it), upsert
                      the assets of FILE (JSON Lines, as `playbook import` reads it) into an empty
                      catalog before serving, and write .sample-loaded saying what was done
  --version           print the version and exit
  --help              print this help and exit
)";

struct Flags {
  std::optional<std::string> config, data_dir, bind, log_level, ready_file, load_sample;
  std::optional<long> port;
};

// Returns nullopt (after printing why) on bad usage.
std::optional<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::cerr << "playbookd: " << name << " needs a value\n";
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "--version") {
      std::cout << "playbookd " << playbook::BuildVersion() << "\n";
      std::exit(0);
    } else if (a == "--config") {
      if (!(f.config = value("--config"))) return std::nullopt;
    } else if (a == "--data-dir") {
      if (!(f.data_dir = value("--data-dir"))) return std::nullopt;
    } else if (a == "--bind") {
      if (!(f.bind = value("--bind"))) return std::nullopt;
    } else if (a == "--log-level") {
      if (!(f.log_level = value("--log-level"))) return std::nullopt;
    } else if (a == "--ready-file") {
      if (!(f.ready_file = value("--ready-file"))) return std::nullopt;
    } else if (a == "--load-sample") {
      if (!(f.load_sample = value("--load-sample"))) return std::nullopt;
    } else if (a == "--port") {
      auto v = value("--port");
      if (!v) return std::nullopt;
      char* end = nullptr;
      long p = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || p < 0 || p > 65535) {
        std::cerr << "playbookd: --port: expected 0..65535, got '" << *v << "'\n";
        return std::nullopt;
      }
      f.port = p;
    } else {
      std::cerr << "playbookd: unknown option '" << a << "'\n\n" << kUsage;
      return std::nullopt;
    }
  }
  return f;
}

// Lets 500+ concurrent connections through: raise the soft descriptor limit to the hard one.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Written to a temp name and renamed, so a reader never sees half a file.
bool WriteReadyFile(const std::string& path, uint16_t port, const char* status) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "{\"port\": " << port << ", \"pid\": " << getpid() << ", \"version\": \""
        << playbook::BuildVersion() << "\", \"status\": \"" << status << "\"}\n";
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// stderr is the journal when $JOURNAL_STREAM ("DEVICE:INODE", set by systemd) names it.
bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  struct stat st {};
  return stream != nullptr && std::sscanf(stream, "%llu:%llu", &dev, &ino) == 2 && ::fstat(STDERR_FILENO, &st) == 0 &&
         static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

// "<N>": the syslog priority of the line's level, which journald takes from the start of a line
// (and strips), so `journalctl -p warning` selects warnings and worse.
class SyslogPriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr const char* kPriority[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
    const auto level = static_cast<size_t>(msg.level);
    const char* p = kPriority[level < std::size(kPriority) ? level : 6];
    dest.append(p, p + 3);
  }
  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

// Lines of the journal carry their priority and no time of their own (journald adds it);
// elsewhere, the time and the level.
void SetLogFormat() {
  if (StderrIsJournal()) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%l %v");
    spdlog::set_formatter(std::move(formatter));
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  }
}

// To systemd when it started us ($NOTIFY_SOCKET); a failure is worth a warning, not a stop.
void Notify(std::string_view message) {
  if (Status s = srv::NotifyServiceManager(message); !s.ok()) spdlog::warn("{}", s.ToString());
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

// [embedder] kind = "http": the remote model, with the lexicon's concepts
// (from `lexical`) for the reasons. The API key comes from the environment.
playbook::Result<std::shared_ptr<const playbook::models::Embedder>> MakeHttpEmbedder(
    const srv::EmbedderOptions& e, std::shared_ptr<const playbook::models::Embedder> lexical) {
  srv::HttpEmbedderOptions o;
  o.url = e.url;
  o.model = e.model;
  o.dimension = e.dimension;
  o.timeout_ms = e.timeout_ms;
  o.batch_size = e.batch_size;
  o.concepts = std::move(lexical);
  if (!e.api_key_env.empty()) {
    const char* key = std::getenv(e.api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return playbook::Status::InvalidArgument("embedder.api_key_env",
                                               "the environment variable " + e.api_key_env + " is not set");
    }
    o.api_key = key;
  }
  auto made = srv::HttpEmbedder::Create(std::move(o));
  if (!made.ok()) return made.status();
  const srv::HttpUrl& url = made.value()->url();
  spdlog::info("embedder: model '{}' at http://{}{} ({} numbers, {} texts per request, timeout {} ms, {}); not "
               "contacted until needed",
               e.model, url.authority, url.target, e.dimension, e.batch_size, e.timeout_ms,
               e.api_key_env.empty() ? std::string("no API key") : "API key from $" + e.api_key_env);
  return std::shared_ptr<const playbook::models::Embedder>(std::move(made).value());
}

// One request through the server's dispatcher (Server::HandleLocalFrame): its result, or the
// error's message.
playbook::Result<nlohmann::json> CallLocal(const srv::Server& server, const std::string& method,
                                           const std::string& params) {
  std::string frame = R"({"jsonrpc":"2.0","id":1,"method":")";
  frame += method;
  frame += R"(","params":)";
  frame += params;
  frame += "}";
  const std::optional<std::string> out = server.HandleLocalFrame(frame, "--load-sample");
  nlohmann::json reply = nlohmann::json::parse(out.value_or(""), nullptr, false);
  if (reply.is_object() && reply.contains("result")) return std::move(reply["result"]);
  std::string why = method;
  why += ": ";
  why += reply.is_object() && reply.contains("error") ? reply["error"].dump() : out.value_or("no answer");
  return playbook::Status::Internal(std::move(why));
}

// Batches the records of `file` into assets.upsert calls, as `playbook import` does (500 assets
// or 3 MiB a call, an id at most once a call). The assets upserted, or why the load stopped.
playbook::Result<int64_t> ImportJsonl(const srv::Server& server, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return playbook::Status::IOError("cannot read '" + file + "'");
  std::unique_ptr<playbook::cli::Reader> reader = playbook::cli::MakeJsonlReader(in);
  int64_t upserted = 0;
  std::string batch;
  std::unordered_set<std::string> ids;
  auto flush = [&]() -> playbook::Status {
    if (ids.empty()) return playbook::Status::Ok();
    auto result = CallLocal(server, "assets.upsert", "{\"assets\":[" + batch + "]}");
    if (!result.ok()) return result.status();
    upserted += result.value().value("upserted", int64_t{0});
    batch.clear();
    ids.clear();
    return playbook::Status::Ok();
  };
  for (playbook::cli::Record r; reader->Next(r);) {
    if (!r.error.empty()) return playbook::Status::InvalidArgument(file + ":" + std::to_string(r.line), r.error);
    if (ids.size() >= 500 || batch.size() + r.text.size() > (std::size_t{3} << 20) || ids.count(r.id) > 0) {
      if (playbook::Status s = flush(); !s.ok()) return s;
    }
    if (!batch.empty()) batch += ',';
    batch += r.text;
    ids.insert(r.id);
  }
  if (!reader->fatal().empty()) return playbook::Status::InvalidArgument(file, reader->fatal());
  if (reader->failed()) return playbook::Status::IOError("reading '" + file + "' failed");
  if (playbook::Status s = flush(); !s.ok()) return s;
  return upserted;
}

// --load-sample FILE, once the data dir is open and before requests are served: on the first
// start over the data dir (no .sample-loaded in it) FILE is imported into an empty catalog (a
// catalog already holding assets is left alone) and the marker written, saying what was done, so
// later starts never reload it (deleted sample assets stay deleted). A failed load writes no
// marker (the next start tries again) and does not stop the daemon. Returns the line to log.
playbook::Result<std::string> LoadSample(const srv::Server& server, const std::string& file,
                                         const std::string& data_dir) {
  const std::filesystem::path marker = std::filesystem::path(data_dir) / ".sample-loaded";
  std::error_code ec;
  if (std::filesystem::exists(marker, ec)) {
    return "sample catalog: not loaded again (" + marker.string() + " says it was dealt with at an earlier start)";
  }
  auto listed = CallLocal(server, "assets.list", R"({"limit":1})");
  if (!listed.ok()) return listed.status();
  std::string note;
  if (!listed.value().value("assets", nlohmann::json::array()).empty()) {
    note = "not loaded: the catalog already holds assets";
  } else {
    auto loaded = ImportJsonl(server, file);
    if (!loaded.ok()) return loaded.status();
    note = "loaded " + std::to_string(loaded.value()) + " assets from " + file;
  }
  const std::string tmp = marker.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << note << "\n";
    if (!out.flush()) return playbook::Status::IOError("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), marker.c_str()) != 0) return playbook::Status::IOError("cannot write '" + marker.string() + "'");
  return "sample catalog: " + note;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Flags> flags = ParseFlags(argc, argv);
  if (!flags) return 2;

  auto logger = spdlog::stderr_color_mt("playbookd");
  spdlog::set_default_logger(logger);
  SetLogFormat();

  playbook::Result<srv::Config> loaded =
      flags->config ? srv::LoadConfigFile(*flags->config) : playbook::Result<srv::Config>(srv::Config{});
  if (!loaded.ok()) {
    spdlog::critical("bad config: {}", loaded.status().ToString());
    return 1;
  }
  srv::Config config = std::move(loaded).value();
  if (flags->data_dir) config.engine.data_dir = *flags->data_dir;
  if (flags->bind) config.server.bind = *flags->bind;
  if (flags->port) config.server.port = static_cast<uint16_t>(*flags->port);
  if (flags->log_level) config.log.level = *flags->log_level;

  const auto level = spdlog::level::from_str(config.log.level);
  if (level == spdlog::level::off && config.log.level != "off") {
    spdlog::critical("bad log level '{}': one of trace, debug, info, warn, error, off",
                     config.log.level);
    return 1;
  }
  spdlog::set_level(level);
  spdlog::flush_on(spdlog::level::info);

  if (Status s = srv::ValidateConfig(config); !s.ok()) {
    spdlog::critical("bad config: {}", s.ToString());
    return 1;
  }
  RaiseFileLimit();

  std::string lexicon(playbook::models::DefaultLexicon());
  if (!config.embedder.lexicon.empty()) {
    std::ifstream in(config.embedder.lexicon);
    if (!in) {
      spdlog::critical("bad config: embedder.lexicon: cannot read '{}'", config.embedder.lexicon);
      return 1;
    }
    lexicon.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto lexical = playbook::models::LexicalEmbedder::Create({config.engine.dimension, lexicon});
  if (!lexical.ok()) {
    spdlog::critical("bad embedder: {}", lexical.status().ToString());
    return 1;
  }
  std::shared_ptr<const playbook::models::Embedder> shared_embedder = std::move(lexical).value();
  if (config.embedder.kind == "http") {
    auto remote = MakeHttpEmbedder(config.embedder, shared_embedder);
    if (!remote.ok()) {
      spdlog::critical("bad config: {}", remote.status().ToString());
      return 1;
    }
    shared_embedder = std::move(remote).value();
  }

  // Listens at once; the data dir opens on another thread meanwhile, and
  // until it is open /healthz answers 503 "starting" and JSON-RPC requests
  // -32003 "starting" (docs/protocol.md).
  std::unique_ptr<playbook::Engine> engine = playbook::Engine::Create(config.engine, shared_embedder);
  srv::Server server(config, engine.get());
  if (const auto* remote = dynamic_cast<const srv::HttpEmbedder*>(shared_embedder.get())) {
    server.AddMetrics([remote](std::string* out) { remote->RenderMetrics(out); });  // the embedder outlives the server
  }
  if (Status s = server.Start(/*engine_open=*/false); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  spdlog::info(
      "playbookd {} listening on {}://{}:{}/v1 (starting: opening the data dir) data_dir={} stages=[{}] "
      "dimension={} embedder={} tokens={} workers={} max_frame_bytes={}",
      playbook::BuildVersion(), config.server.tls.enabled() ? "wss" : "ws", config.server.bind, server.port(),
      std::filesystem::absolute(config.engine.data_dir).string(), Join(config.engine.stages),
      config.engine.dimension, shared_embedder->Name(),
      config.tokens.empty() ? std::string("none (loopback, open)")
                            : std::to_string(config.tokens.size()),
      srv::WorkerThreads(config.server), config.server.max_frame_bytes);
  if (config.debug.test_methods) spdlog::warn("debug.* test methods are enabled");
  if (flags->ready_file && !WriteReadyFile(*flags->ready_file, server.port(), "starting")) {
    spdlog::critical("cannot write the ready file '{}'", *flags->ready_file);
    return 1;
  }
  // systemd (Type=notify): ready once connections are accepted, as /healthz's "starting" is; the
  // data dir may take long to open (a rebuild), longer than a start timeout should wait.
  Notify("READY=1\nSTATUS=starting: opening the data dir");

  // What stopped the start, logged last (after the server stopped) as the reason to exit 1.
  std::string failed;
  std::thread opener([&] {
    if (config.debug.open_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(config.debug.open_delay_ms));
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = engine->Init(); !s.ok()) {
      failed = "cannot open the data dir: " + s.ToString();
      server.Shutdown();
      return;
    }
    const auto opened_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    bool open_warning = false;
    const std::string open_note = engine->OpenNote(&open_warning);
    if (open_warning) {
      spdlog::warn("{}", open_note);
    } else {
      spdlog::info("{}", open_note);
    }
    if (flags->load_sample) {
      auto loaded = LoadSample(server, *flags->load_sample, config.engine.data_dir);
      if (loaded.ok()) {
        spdlog::info("{}", loaded.value());
      } else {
        spdlog::warn("sample catalog: not loaded (tried again at the next start): {}", loaded.status().ToString());
      }
    }
    server.EngineOpened();
    Notify("STATUS=serving");
    spdlog::info("serving: data dir opened in {} ms", opened_ms);  // the sample's load not counted
    if (flags->ready_file && !WriteReadyFile(*flags->ready_file, server.port(), "ok")) {
      failed = "cannot write the ready file '" + *flags->ready_file + "'";
      server.Shutdown();
    }
  });

  server.Run();
  opener.join();  // a stop while opening waits for the open, then closes
  if (!failed.empty()) {
    spdlog::critical("{}", failed);
    return 1;
  }

  if (Status s = engine->Close(); !s.ok()) {
    spdlog::error("closing storage: {}", s.ToString());
    return 1;
  }
  spdlog::info("storage flushed; bye");
  return 0;
}

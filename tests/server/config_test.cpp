// Tests of the config file parser and checks: server/src/config.cpp.

#include "playbook/server/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace playbook::server {
namespace {

namespace fs = std::filesystem;

fs::path ExamplePath() {
  return fs::path(__FILE__).parent_path() / "../../config/playbook.example.toml";
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("playbook_config_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path Write(const std::string& name, const std::string& text) const {
    fs::path p = path_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  fs::path path_;
};

void ExpectDefaults(const Config& c) {
  const Config d;
  EXPECT_EQ(c.server.bind, "127.0.0.1");
  EXPECT_EQ(c.server.port, 7700);
  EXPECT_EQ(c.server.max_frame_bytes, 4194304u);
  EXPECT_EQ(c.server.io_threads, 1u);
  EXPECT_EQ(c.server.worker_threads, 0u);
  EXPECT_EQ(c.server.max_queued_requests, 1024u);
  EXPECT_EQ(c.server.max_inflight_per_connection, 64u);
  EXPECT_EQ(c.server.max_connections, 10000u);
  EXPECT_EQ(c.server.shutdown_grace_ms, 5000u);
  EXPECT_EQ(c.engine.data_dir, "playbook-data");
  EXPECT_EQ(c.engine.dimension, 384u);
  EXPECT_EQ(c.engine.stages, (std::vector<std::string>{"awareness", "interest", "consideration",
                                                       "evaluation", "negotiation"}));
  EXPECT_EQ(c.engine.attribution_window_days, 90u);
  EXPECT_EQ(c.engine.experiment.holdout_fraction, 0.0);  // the holdout is off by default
  EXPECT_EQ(c.engine.experiment.salt, "");
  EXPECT_EQ(c.log.level, "info");
  EXPECT_FALSE(c.debug.test_methods);
  EXPECT_TRUE(c.tokens.empty());
  // And the struct defaults themselves are the documented ones.
  EXPECT_EQ(d.server.port, c.server.port);
  EXPECT_EQ(d.engine.stages, c.engine.stages);
}

// Parses `text`, expects InvalidArgument naming `field`, and returns the status.
Status Invalid(std::string_view text, const std::string& field) {
  Result<Config> r = ParseConfig(text);
  EXPECT_FALSE(r.ok()) << "accepted:\n" << text;
  Status s = r.status();
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << s.ToString() << "\nfor:\n" << text;
  EXPECT_EQ(s.field(), field) << s.ToString() << "\nfor:\n" << text;
  return s;
}

void ExpectInvalid(std::string_view text, const std::string& field) {
  Status s = Invalid(text, field);
  (void)s;
}

Config ParseOk(std::string_view text) {
  Result<Config> r = ParseConfig(text);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << "\nfor:\n" << text;
  return r.ok() ? r.value() : Config{};
}

// ---------------------------------------------------------------------------
// Defaults and the example file.

TEST(Config, IndexAndEmbedderKeys) {
  Config c = ParseOk(
      "[index]\nkind = \"hnsw\"\nhnsw_m = 32\nexact_below_fraction = 0.25\nrebuild_after_adds = 500\n"
      "[embedder]\nlexicon = \"/etc/playbook/lexicon.tsv\"\n");
  EXPECT_EQ(c.engine.index.kind, "hnsw");
  EXPECT_EQ(c.engine.index.hnsw_m, 32u);
  EXPECT_DOUBLE_EQ(c.engine.index.exact_below_fraction, 0.25);
  EXPECT_EQ(c.engine.index.rebuild_after_adds, 500u);
  EXPECT_EQ(c.embedder.lexicon, "/etc/playbook/lexicon.tsv");
  EXPECT_DOUBLE_EQ(ParseOk("[index]\nexact_below_fraction = 1\n").engine.index.exact_below_fraction, 1.0);
  ExpectInvalid("[index]\nkind = \"ivf\"\n", "index.kind");
  ExpectInvalid("[index]\nexact_below_fraction = 1.5\n", "index.exact_below_fraction");
  ExpectInvalid("[index]\nexact_below_fraction = \"x\"\n", "index.exact_below_fraction");
  ExpectInvalid("[index]\nhnsw_m = 1\n", "index.hnsw_m");
  ExpectInvalid("[index]\nrebuild_after_adds = 0\n", "index.rebuild_after_adds");
  ExpectInvalid("[embedder]\nlexicon = 3\n", "embedder.lexicon");
  ExpectInvalid("[embedder]\nmodel = \"bert\"\n", "embedder.model");
  Config r = ParseOk("[ranking]\nexplore = false\nseed = 42\nmmr_lambda = 0.5\n");
  EXPECT_FALSE(r.engine.ranking.explore);
  EXPECT_EQ(r.engine.ranking.seed, 42u);
  ExpectInvalid("[ranking]\nmmr_lambda = 2\n", "ranking.mmr_lambda");
  ExpectInvalid("[ranking]\nexplore = 1\n", "ranking.explore");
}

TEST(Config, EmptyTextYieldsDefaults) {
  ExpectDefaults(ParseOk(""));
  ExpectDefaults(ParseOk("# only a comment\n\n   \n"));
}

TEST(Config, EmptySectionsYieldDefaults) {
  ExpectDefaults(
      ParseOk("[server]\n[storage]\n[index]\n[funnel]\n[log]\n[debug]\n[auth]\n"));
}

TEST(Config, ExampleFileParsesToDefaults) {
  ASSERT_TRUE(fs::exists(ExamplePath())) << ExamplePath();
  Result<Config> r = LoadConfigFile(ExamplePath().string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectDefaults(r.value());
}

TEST(Config, ExampleFileSetsEveryKey) {
  const std::string text = ReadFile(ExamplePath());
  ASSERT_FALSE(text.empty());
  const std::vector<std::pair<std::string, std::vector<std::string>>> sections = {
      {"server",
       {"bind", "port", "max_frame_bytes", "io_threads", "worker_threads", "max_queued_requests",
        "max_inflight_per_connection", "max_connections", "shutdown_grace_ms", "max_queued_bytes",
        "max_connection_bytes", "max_response_bytes", "idle_timeout_ms", "max_queue_wait_ms",
        "write_timeout_ms", "allowed_origins"}},
      {"storage", {"data_dir"}},
      {"index",
       {"dimension", "kind", "hnsw_min_assets", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search",
        "exact_below_fraction", "rebuild_after_adds"}},
      {"embedder", {"kind", "lexicon"}},
      {"ranking",
       {"similarity_weight", "effectiveness_weight", "evidence_max", "evidence_half", "explore_band",
        "language_bonus", "phrase_min_support", "phrase_half_life_days", "phrase_max", "phrase_half",
        "use_weight", "win_weight", "advance_weight",
        "dismiss_weight", "prior_strength", "explore", "seed", "mmr_lambda", "duplicate_similarity",
        "recency_weight", "recency_half_life_days", "candidates_per_item"}},
      {"funnel", {"stages", "attribution_window_days"}},
      {"experiment", {"holdout_fraction", "salt"}},
      {"log", {"level"}},
      {"debug", {"test_methods", "open_delay_ms"}},
  };
  for (const auto& [section, keys] : sections) {
    const size_t at = text.find("\n[" + section + "]\n");
    ASSERT_NE(at, std::string::npos) << "no [" << section << "]";
    const size_t next = text.find("\n[", at + 1);
    const std::string body = text.substr(at, next == std::string::npos ? next : next - at);
    for (const std::string& key : keys) {
      EXPECT_NE(body.find("\n" + key + " = "), std::string::npos)
          << section << "." << key << " is not set in the example";
    }
  }
  EXPECT_NE(text.find("# [[auth.tokens]]\n"), std::string::npos);
}

// The commented-out [embedder] kind = "http" keys are valid once uncommented.
TEST(Config, ExampleHttpEmbedderParsesWhenUncommented) {
  std::istringstream in(ReadFile(ExamplePath()));
  std::string line, text;
  bool in_embedder = false;
  int uncommented = 0;
  while (std::getline(in, line)) {
    if (line.rfind("[", 0) == 0) in_embedder = line == "[embedder]";
    if (in_embedder && line == "kind = \"lexical\"") line = "kind = \"http\"";
    const size_t eq = line.find(" = ");
    const bool key_line = line.rfind("# ", 0) == 0 && eq != std::string::npos &&
                          line.find_first_not_of("abcdefghijklmnopqrstuvwxyz_", 2) == eq;
    if (in_embedder && key_line) {
      line = line.substr(2);
      ++uncommented;
    }
    text += line + "\n";
  }
  EXPECT_EQ(uncommented, 6);
  Config c = ParseOk(text);
  EXPECT_EQ(c.embedder.kind, "http");
  EXPECT_EQ(c.embedder.url, "http://127.0.0.1:11434/v1/embeddings");
  EXPECT_EQ(c.embedder.model, "all-minilm");
  EXPECT_EQ(c.embedder.dimension, 384u);
  EXPECT_EQ(c.engine.dimension, 384u);
  EXPECT_EQ(c.embedder.timeout_ms, 10000u);
  EXPECT_EQ(c.embedder.batch_size, 64u);
  EXPECT_EQ(c.embedder.api_key_env, "PLAYBOOK_EMBEDDER_KEY");
}

// The commented-out token entries are valid once uncommented.
TEST(Config, ExampleTokenEntriesParseWhenUncommented) {
  std::istringstream in(ReadFile(ExamplePath()));
  std::string line, text;
  bool in_tokens = false;
  while (std::getline(in, line)) {
    if (line == "# [[auth.tokens]]") in_tokens = true;
    if (in_tokens && line.rfind("# ", 0) == 0) line = line.substr(2);
    text += line + "\n";
  }
  ASSERT_TRUE(in_tokens);
  Config c = ParseOk(text);
  ASSERT_EQ(c.tokens.size(), 2u);
  EXPECT_EQ(c.tokens[0].role, Role::kAdmin);
  EXPECT_EQ(c.tokens[1].role, Role::kCrm);
  EXPECT_FALSE(c.tokens[0].token.empty());
}

TEST(Config, ParsesEveryKey) {
  Config c = ParseOk(R"(
[server]
bind = "0.0.0.0"
port = 8080
max_frame_bytes = 1_048_576
io_threads = 4
worker_threads = 8
max_queued_requests = 10
max_inflight_per_connection = 2
max_connections = 50
shutdown_grace_ms = 0
[storage]
data_dir = "/var/lib/playbook"
[index]
dimension = 768
[funnel]
stages = ["top", "middle_1", "bottom-2"]
attribution_window_days = 30
[log]
level = "debug"
[debug]
test_methods = true
[[auth.tokens]]
role = "marketing"
token = "tok-one"
[[auth.tokens]]
role = "admin"
token = "tok-two"
)");
  EXPECT_EQ(c.server.bind, "0.0.0.0");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.server.max_frame_bytes, 1048576u);
  EXPECT_EQ(c.server.io_threads, 4u);
  EXPECT_EQ(c.server.worker_threads, 8u);
  EXPECT_EQ(c.server.max_queued_requests, 10u);
  EXPECT_EQ(c.server.max_inflight_per_connection, 2u);
  EXPECT_EQ(c.server.max_connections, 50u);
  EXPECT_EQ(c.server.shutdown_grace_ms, 0u);
  EXPECT_EQ(c.engine.data_dir, "/var/lib/playbook");
  EXPECT_EQ(c.engine.dimension, 768u);
  EXPECT_EQ(c.engine.stages, (std::vector<std::string>{"top", "middle_1", "bottom-2"}));
  EXPECT_EQ(c.engine.attribution_window_days, 30u);
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_TRUE(c.debug.test_methods);
  ASSERT_EQ(c.tokens.size(), 2u);
  EXPECT_EQ(c.tokens[0].role, Role::kMarketing);
  EXPECT_EQ(c.tokens[0].token, "tok-one");
  EXPECT_EQ(c.tokens[1].role, Role::kAdmin);
  EXPECT_EQ(c.tokens[1].token, "tok-two");
}

TEST(Config, MissingKeysKeepDefaults) {
  Config c = ParseOk("[server]\nport = 9000\n[funnel]\nattribution_window_days = 7\n");
  EXPECT_EQ(c.server.port, 9000);
  EXPECT_EQ(c.engine.attribution_window_days, 7u);
  c.server.port = 7700;
  c.engine.attribution_window_days = 90;
  ExpectDefaults(c);
}

TEST(Config, InlineTablesAreAccepted) {
  Config c = ParseOk(
      "server = { port = 1234 }\n"
      "auth = { tokens = [ { role = \"admin\", token = \"abc\" } ] }\n");
  EXPECT_EQ(c.server.port, 1234);
  ASSERT_EQ(c.tokens.size(), 1u);
  EXPECT_EQ(c.tokens[0].role, Role::kAdmin);
}

// ---------------------------------------------------------------------------
// Unknown keys.

TEST(Config, UnknownKeyNamesItsPath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[server]\nprot = 1\n", "server.prot"},
      {"bogus = 1\n", "bogus"},
      {"[bogus]\nx = 1\n", "bogus"},
      {"[storage]\ndir = \"x\"\n", "storage.dir"},
      {"[index]\ndim = 3\n", "index.dim"},
      {"[funnel]\nstage = [\"a\"]\n", "funnel.stage"},
      {"[log]\nlvl = \"info\"\n", "log.lvl"},
      {"[debug]\ntest = true\n", "debug.test"},
      {"[auth]\ntoken = \"x\"\n", "auth.token"},
      {"[[auth.tokens]]\ntoken = \"a\"\n[[auth.tokens]]\ntoken = \"b\"\ncolour = \"red\"\n",
       "auth.tokens[1].colour"},
      {"[server.extra]\nx = 1\n", "server.extra"},
  };
  for (const auto& [text, field] : cases) {
    Status s = Invalid(text, field);
    EXPECT_NE(s.message().find("unknown key"), std::string::npos) << s.ToString();
  }
}

TEST(Config, UnknownKeySuggestsTheCloseOne) {
  Status s = Invalid("[server]\nprot = 1\n", "server.prot");
  EXPECT_NE(s.message().find("did you mean 'port'"), std::string::npos) << s.ToString();
  s = Invalid("[server]\nzzzzzzzz = 1\n", "server.zzzzzzzz");
  EXPECT_EQ(s.message().find("did you mean"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("max_frame_bytes"), std::string::npos) << s.ToString();
}

TEST(Config, UnknownQuotedKeyIsQuotedInPath) {
  ExpectInvalid("[server]\n\"a.b\" = 1\n", "server.\"a.b\"");
}

// ---------------------------------------------------------------------------
// Types.

TEST(Config, WrongTypeMessageReadsWell) {
  Status s = Invalid("[server]\nport = \"abc\"\n", "server.port");
  EXPECT_EQ(s.message(), "expected an integer 0..65535, got \"abc\"");
  EXPECT_EQ(s.ToString(), "InvalidArgument: server.port: expected an integer 0..65535, got \"abc\"");
}

TEST(Config, WrongTypeNamesTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[server]\nbind = 127\n", "server.bind"},
      {"[server]\nport = 7700.0\n", "server.port"},
      {"[server]\nmax_frame_bytes = true\n", "server.max_frame_bytes"},
      {"[server]\nio_threads = [1]\n", "server.io_threads"},
      {"[server]\nworker_threads = \"4\"\n", "server.worker_threads"},
      {"[server]\nmax_queued_requests = 1.5\n", "server.max_queued_requests"},
      {"[server]\nmax_inflight_per_connection = \"x\"\n", "server.max_inflight_per_connection"},
      {"[server]\nmax_connections = {}\n", "server.max_connections"},
      {"[server]\nshutdown_grace_ms = 2024-01-01\n", "server.shutdown_grace_ms"},
      {"[storage]\ndata_dir = 5\n", "storage.data_dir"},
      {"[index]\ndimension = \"384\"\n", "index.dimension"},
      {"[funnel]\nattribution_window_days = false\n", "funnel.attribution_window_days"},
      {"[funnel]\nstages = \"awareness\"\n", "funnel.stages"},
      {"[log]\nlevel = 3\n", "log.level"},
      {"[experiment]\nholdout_fraction = 0.6\n", "experiment.holdout_fraction"},
      {"[experiment]\nholdout_fraction = -0.1\n", "experiment.holdout_fraction"},
      {"[experiment]\nholdout_fraction = \"0.1\"\n", "experiment.holdout_fraction"},
      {"[experiment]\nsalt = 7\n", "experiment.salt"},
      {"[debug]\ntest_methods = \"yes\"\n", "debug.test_methods"},
      {"[debug]\ntest_methods = 1\n", "debug.test_methods"},
  };
  for (const auto& [text, field] : cases) {
    Status s = Invalid(text, field);
    EXPECT_NE(s.message().find("expected"), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find("got"), std::string::npos) << s.ToString();
  }
}

TEST(Config, SectionThatIsNotATable) {
  for (const char* name : {"server", "storage", "index", "funnel", "log", "debug", "auth"}) {
    Status s = Invalid(std::string(name) + " = 5\n", name);
    EXPECT_NE(s.message().find("expected a table"), std::string::npos) << s.ToString();
  }
}

TEST(Config, LongValuesAreCutInMessages) {
  const std::string long_value(5000, 'x');
  Status s = Invalid("[log]\nlevel = \"" + long_value + "\"\n", "log.level");
  EXPECT_LT(s.message().size(), 300u) << s.message();
  EXPECT_NE(s.message().find("...\""), std::string::npos) << s.message();
}

// ---------------------------------------------------------------------------
// Ranges.

struct RangeCase {
  std::string section;
  std::string key;
  int64_t lo;
  int64_t hi;
  std::function<int64_t(const Config&)> get;
};

TEST(Config, IntegerRangesAreEnforced) {
  const std::vector<RangeCase> cases = {
      {"server", "port", 0, 65535, [](const Config& c) { return int64_t{c.server.port}; }},
      {"server", "max_frame_bytes", 1024, int64_t{1} << 30,
       [](const Config& c) { return static_cast<int64_t>(c.server.max_frame_bytes); }},
      {"server", "io_threads", 0, 256, [](const Config& c) { return int64_t{c.server.io_threads}; }},
      {"server", "worker_threads", 0, 1024,
       [](const Config& c) { return int64_t{c.server.worker_threads}; }},
      {"server", "max_queued_requests", 1, 4294967295,
       [](const Config& c) { return int64_t{c.server.max_queued_requests}; }},
      {"server", "max_inflight_per_connection", 1, 4294967295,
       [](const Config& c) { return int64_t{c.server.max_inflight_per_connection}; }},
      {"server", "max_connections", 1, 4294967295,
       [](const Config& c) { return int64_t{c.server.max_connections}; }},
      {"server", "shutdown_grace_ms", 0, 600000,
       [](const Config& c) { return int64_t{c.server.shutdown_grace_ms}; }},
      {"server", "max_queued_bytes", 1 << 20, int64_t{1} << 40,
       [](const Config& c) { return static_cast<int64_t>(c.server.max_queued_bytes); }},
      {"server", "max_connection_bytes", 64 << 10, int64_t{1} << 40,
       [](const Config& c) { return static_cast<int64_t>(c.server.max_connection_bytes); }},
      {"server", "max_response_bytes", 1024, int64_t{1} << 32,
       [](const Config& c) { return static_cast<int64_t>(c.server.max_response_bytes); }},
      {"server", "idle_timeout_ms", 1000, 86400000,
       [](const Config& c) { return int64_t{c.server.idle_timeout_ms}; }},
      {"server", "write_timeout_ms", 100, 3600000,
       [](const Config& c) { return int64_t{c.server.write_timeout_ms}; }},
      {"server", "max_queue_wait_ms", 0, 600000,
       [](const Config& c) { return int64_t{c.server.max_queue_wait_ms}; }},
      {"index", "dimension", 1, 4096, [](const Config& c) { return int64_t{c.engine.dimension}; }},
      {"funnel", "attribution_window_days", 1, 3650,
       [](const Config& c) { return int64_t{c.engine.attribution_window_days}; }},
  };
  for (const RangeCase& rc : cases) {
    const std::string field = rc.section + "." + rc.key;
    SCOPED_TRACE(field);
    auto doc = [&](int64_t v) {
      return "[" + rc.section + "]\n" + rc.key + " = " + std::to_string(v) + "\n";
    };
    EXPECT_EQ(rc.get(ParseOk(doc(rc.lo))), rc.lo);
    EXPECT_EQ(rc.get(ParseOk(doc(rc.hi))), rc.hi);
    Status low = Invalid(doc(rc.lo - 1), field);
    EXPECT_EQ(low.message(), "expected an integer " + std::to_string(rc.lo) + ".." +
                                 std::to_string(rc.hi) + ", got " + std::to_string(rc.lo - 1));
    Status high = Invalid(doc(rc.hi + 1), field);
    EXPECT_NE(high.message().find(std::to_string(rc.hi + 1)), std::string::npos)
        << high.ToString();
  }
}

TEST(Config, HugeAndNegativeIntegersAreOutOfRange) {
  ExpectInvalid("[server]\nport = 9223372036854775807\n", "server.port");
  ExpectInvalid("[server]\nmax_connections = -1\n", "server.max_connections");
  ExpectInvalid("[server]\nmax_frame_bytes = -4194304\n", "server.max_frame_bytes");
}

// ---------------------------------------------------------------------------
// Funnel stages.

TEST(Config, EmptyStagesAreRejected) {
  Status s = Invalid("[funnel]\nstages = []\n", "funnel.stages");
  EXPECT_NE(s.message().find("at least one stage"), std::string::npos) << s.ToString();
}

TEST(Config, InvalidStageNamesItsIndex) {
  const std::string too_long(65, 'a');
  for (const std::string& bad : {std::string("\"Bad Stage\""), std::string("\"\""),
                                 std::string("\"UPPER\""), std::string("\"caf\xC3\xA9\""),
                                 std::string("\"a.b\""), "\"" + too_long + "\"",
                                 std::string("3"), std::string("[\"x\"]")}) {
    Status s = Invalid("[funnel]\nstages = [\"a\", \"b\", " + bad + ", \"d\"]\n",
                             "funnel.stages[2]");
    EXPECT_NE(s.message().find("a-z, 0-9"), std::string::npos) << s.ToString();
  }
}

TEST(Config, StageNameLimitsAreInclusive) {
  const std::string longest(64, 'z');
  Config c = ParseOk("[funnel]\nstages = [\"a\", \"0\", \"_\", \"-\", \"" + longest + "\"]\n");
  EXPECT_EQ(c.engine.stages,
            (std::vector<std::string>{"a", "0", "_", "-", longest}));
}

TEST(Config, DuplicateStageNamesTheSecond) {
  Status s =
      Invalid("[funnel]\nstages = [\"x\", \"y\", \"z\", \"x\"]\n", "funnel.stages[3]");
  EXPECT_NE(s.message().find("duplicate stage 'x'"), std::string::npos) << s.ToString();
}

// ---------------------------------------------------------------------------
// Other values.

TEST(Config, LogLevelMustBeKnown) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    EXPECT_EQ(ParseOk(std::string("[log]\nlevel = \"") + level + "\"\n").log.level, level);
  }
  for (const char* level : {"verbose", "INFO", "", "warning"}) {
    Status s = Invalid(std::string("[log]\nlevel = \"") + level + "\"\n", "log.level");
    EXPECT_NE(s.message().find("\"trace\""), std::string::npos) << s.ToString();
  }
}

TEST(Config, EmptyStringsAreRejected) {
  Status s = Invalid("[storage]\ndata_dir = \"\"\n", "storage.data_dir");
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.ToString();
  ExpectInvalid("[server]\nbind = \"\"\n", "server.bind");
}

// ---------------------------------------------------------------------------
// Tokens.

TEST(Config, TokenRoleDefaultsToCrm) {
  Config c = ParseOk("[[auth.tokens]]\ntoken = \"t\"\n");
  ASSERT_EQ(c.tokens.size(), 1u);
  EXPECT_EQ(c.tokens[0].role, Role::kCrm);
  EXPECT_EQ(c.tokens[0].token, "t");
}

TEST(Config, EmptyTokenListIsAllowed) {
  EXPECT_TRUE(ParseOk("[auth]\ntokens = []\n").tokens.empty());
}

TEST(Config, TokensMustBeAnArrayOfTables) {
  ExpectInvalid("[auth]\ntokens = \"abc\"\n", "auth.tokens");
  ExpectInvalid("[auth]\ntokens = 5\n", "auth.tokens");
  ExpectInvalid("[auth]\ntokens = [\"abc\", \"def\"]\n", "auth.tokens");
  ExpectInvalid("[auth.tokens]\nrole = \"crm\"\ntoken = \"abc\"\n", "auth.tokens");
  Status s = Invalid("auth.tokens = [{ token = \"a\" }, 7]\n", "auth.tokens");
  EXPECT_NE(s.message().find("element 1"), std::string::npos) << s.ToString();
}

TEST(Config, BadTokenRoleNamesTheEntry) {
  for (const char* role : {"\"root\"", "\"Admin\"", "\"\"", "2"}) {
    Status s = Invalid(std::string("[[auth.tokens]]\ntoken = \"a\"\n"
                                         "[[auth.tokens]]\ntoken = \"b\"\nrole = ") +
                                 role + "\n",
                             "auth.tokens[1].role");
    EXPECT_NE(s.message().find("\"crm\", \"marketing\" or \"admin\""), std::string::npos)
        << s.ToString();
  }
}

TEST(Config, TokenMissingOrEmptyIsRejected) {
  Status s = Invalid("[[auth.tokens]]\nrole = \"admin\"\n", "auth.tokens[0].token");
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.ToString();
  s = Invalid("[[auth.tokens]]\nrole = \"admin\"\ntoken = \"\"\n", "auth.tokens[0].token");
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.ToString();
  ExpectInvalid("[[auth.tokens]]\ntoken = 12\n", "auth.tokens[0].token");
  ExpectInvalid("[[auth.tokens]]\ntoken = \"a\"\n[[auth.tokens]]\n", "auth.tokens[1].token");
}

TEST(Config, DuplicateTokenNamesTheLaterEntry) {
  Status s = Invalid(
      "[[auth.tokens]]\ntoken = \"s3cret-one\"\n"
      "[[auth.tokens]]\ntoken = \"s3cret-two\"\n"
      "[[auth.tokens]]\nrole = \"admin\"\ntoken = \"s3cret-one\"\n",
      "auth.tokens[2].token");
  EXPECT_NE(s.message().find("auth.tokens[0]"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.ToString().find("s3cret"), std::string::npos) << s.ToString();
}

TEST(Config, TokensNeverAppearInMessages) {
  const std::string secret = "Zq7Kx9SECRETvalue42";
  const std::vector<std::string> docs = {
      // duplicate
      "[[auth.tokens]]\ntoken = \"" + secret + "\"\n[[auth.tokens]]\ntoken = \"" + secret + "\"\n",
      // role and token swapped
      "[[auth.tokens]]\nrole = \"" + secret + "\"\ntoken = \"admin\"\n",
      // token under the wrong key
      "[[auth.tokens]]\nsecret = \"" + secret + "\"\n",
      // a token where the array of tables should be
      "[auth]\ntokens = \"" + secret + "\"\n",
      "[auth]\ntokens = [\"" + secret + "\"]\n",
      "auth = \"" + secret + "\"\n",
      "[[auth.tokens]]\ntoken = [\"" + secret + "\"]\n",
      // a numeric token of the wrong type
      "[[auth.tokens]]\ntoken = 982451653982451653\n",
      // syntax errors on a token line
      "[[auth.tokens]]\ntoken = \"" + secret + "\n",
      "[[auth.tokens]]\ntoken = " + secret + "\n",
      "[[auth.tokens]]\ntoken = '" + secret + "\n",
  };
  for (const std::string& doc : docs) {
    Result<Config> r = ParseConfig(doc);
    ASSERT_FALSE(r.ok()) << doc;
    const std::string text = r.status().ToString();
    EXPECT_EQ(text.find(secret), std::string::npos) << text;
    EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
    EXPECT_EQ(text.find("982451653"), std::string::npos) << text;
  }
}

// ---------------------------------------------------------------------------
// Syntax errors and files.

TEST(Config, SyntaxErrorGivesSourceLineAndColumn) {
  Result<Config> r = ParseConfig("[server]\nport = 7700\nbind = \n", "my.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().field(), "");
  EXPECT_EQ(r.status().message().rfind("my.toml:3:", 0), 0u) << r.status().ToString();
}

TEST(Config, RedefinedKeyIsASyntaxError) {
  Result<Config> r = ParseConfig("[server]\nport = 1\nport = 2\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("config:3:", 0), 0u) << r.status().ToString();
}

TEST(Config, LoadConfigFileReadsTheFile) {
  TempDir dir;
  fs::path p = dir.Write("playbook.toml", "[server]\nport = 4242\n");
  Result<Config> r = LoadConfigFile(p.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value().server.port, 4242);
}

TEST(Config, LoadConfigFileNamesThePathInSyntaxErrors) {
  TempDir dir;
  fs::path p = dir.Write("broken.toml", "[server\n");
  Result<Config> r = LoadConfigFile(p.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind(p.string() + ":1:", 0), 0u) << r.status().ToString();
}

TEST(Config, LoadConfigFileKeepsKeyPathsForBadValues) {
  TempDir dir;
  fs::path p = dir.Write("bad.toml", "[index]\ndimension = 0\n");
  Result<Config> r = LoadConfigFile(p.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "index.dimension");
}

TEST(Config, UnreadableFileIsIOErrorNamingThePath) {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.toml").string();
  Result<Config> r = LoadConfigFile(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kIOError);
  EXPECT_NE(r.status().message().find(missing), std::string::npos) << r.status().ToString();

  r = LoadConfigFile(dir.path().string());  // a directory
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kIOError) << r.status().ToString();
  EXPECT_NE(r.status().message().find(dir.path().string()), std::string::npos);
}

// ---------------------------------------------------------------------------
// Addresses, validation, roles.

TEST(Config, IsLoopbackAddress) {
  for (const char* a : {"127.0.0.1", "127.0.0.2", "127.255.255.254", "127.1.2.3", "::1",
                        "0:0:0:0:0:0:0:1", "localhost", "LocalHost", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0", "::", "", "10.0.0.1", "192.168.1.1", "128.0.0.1",
                        "126.255.255.255", "1.127.0.0", "127.0.0.256", "127.0.0", "127.0.0.1 ",
                        "localhost.example.com", "example.com", "::2", "::ffff:10.0.0.1",
                        "[::1]"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
  EXPECT_FALSE(IsLoopbackAddress(std::string_view("127.0.0.1\0x", 11)));
}

TEST(Config, ValidateConfigAcceptsDefaults) {
  const Config defaults;  // a named object: GCC 12 warns falsely on a Config{} temporary
  Status s = ValidateConfig(defaults);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Config c;
  c.server.bind = "::1";
  s = ValidateConfig(c);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(Config, ValidateConfigRefusesPublicBindWithoutTokens) {
  for (const char* bind : {"0.0.0.0", "::", "10.1.2.3"}) {
    Config c;
    c.server.bind = bind;
    Status s = ValidateConfig(c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << bind;
    EXPECT_EQ(s.field(), "server.bind");
    EXPECT_EQ(s.message(), std::string("refusing to bind ") + bind +
                               " without auth tokens: configure [[auth.tokens]] or bind 127.0.0.1");
  }
}

TEST(Config, ValidateConfigAllowsPublicBindWithTokens) {
  Config c;
  c.server.bind = "0.0.0.0";
  c.tokens.push_back({Role::kAdmin, "a-long-secret"});
  Status s = ValidateConfig(c);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(Config, ValidateConfigChecksValuesSetAfterParsing) {
  struct Case {
    std::function<void(Config&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](Config& c) { c.server.bind = ""; }, "server.bind"},
      {[](Config& c) { c.server.max_frame_bytes = 10; }, "server.max_frame_bytes"},
      {[](Config& c) { c.server.max_frame_bytes = ~uint64_t{0}; }, "server.max_frame_bytes"},
      {[](Config& c) { c.server.worker_threads = 5000; }, "server.worker_threads"},
      {[](Config& c) { c.server.max_queued_requests = 0; }, "server.max_queued_requests"},
      {[](Config& c) { c.server.shutdown_grace_ms = 600001; }, "server.shutdown_grace_ms"},
      {[](Config& c) { c.engine.data_dir = ""; }, "storage.data_dir"},
      {[](Config& c) { c.engine.dimension = 0; }, "index.dimension"},
      {[](Config& c) { c.engine.attribution_window_days = 0; }, "funnel.attribution_window_days"},
      {[](Config& c) { c.engine.stages.clear(); }, "funnel.stages"},
      {[](Config& c) { c.engine.stages = {"a", "B"}; }, "funnel.stages[1]"},
      {[](Config& c) { c.engine.stages = {"a", "b", "a"}; }, "funnel.stages[2]"},
      {[](Config& c) { c.log.level = "loud"; }, "log.level"},
      {[](Config& c) { c.tokens = {{Role::kCrm, ""}}; }, "auth.tokens[0].token"},
      {[](Config& c) { c.tokens = {{Role::kCrm, "dup-secret"}, {Role::kAdmin, "dup-secret"}}; },
       "auth.tokens[1].token"},
  };
  for (const Case& tc : cases) {
    Config c;
    tc.change(c);
    Status s = ValidateConfig(c);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << tc.field;
    EXPECT_EQ(s.field(), tc.field) << s.ToString();
    EXPECT_EQ(s.ToString().find("dup-secret"), std::string::npos) << s.ToString();
  }
}

// ---------------------------------------------------------------------------
// Security keys: allowed_origins, [server.tls], token names.

TEST(Config, SecurityKeysParse) {
  Config c = ParseOk(R"(
[server]
allowed_origins = ["https://crm.example.com", "http://localhost:3000", "https://[::1]:8443"]
[server.tls]
cert = "/etc/playbook/cert.pem"
key = "/etc/playbook/key.pem"
[[auth.tokens]]
role = "marketing"
token = "t-one"
name = "cms-sync"
[[auth.tokens]]
token = "t-two"
)");
  EXPECT_EQ(c.server.allowed_origins,
            (std::vector<std::string>{"https://crm.example.com", "http://localhost:3000", "https://[::1]:8443"}));
  EXPECT_TRUE(c.server.tls.enabled());
  EXPECT_EQ(c.server.tls.cert, "/etc/playbook/cert.pem");
  EXPECT_EQ(c.server.tls.key, "/etc/playbook/key.pem");
  ASSERT_EQ(c.tokens.size(), 2u);
  EXPECT_EQ(c.tokens[0].name, "cms-sync");
  EXPECT_EQ(c.tokens[1].name, "token-1");  // the default names the index
  EXPECT_TRUE(ValidateConfig(c).ok());
  // Defaults: no origins besides the daemon's own, no TLS.
  Config d = ParseOk("");
  EXPECT_TRUE(d.server.allowed_origins.empty());
  EXPECT_FALSE(d.server.tls.enabled());
}

TEST(Config, SecurityKeyErrorsNameTheKey) {
  ExpectInvalid("[server]\nallowed_origins = \"https://crm.example.com\"\n", "server.allowed_origins");
  ExpectInvalid("[server]\nallowed_origins = [\"https://a.example\", 3]\n", "server.allowed_origins[1]");
  for (const char* bad : {"crm.example.com", "https://crm.example.com/", "https://crm.example.com/app",
                          "ftp://crm.example.com", "https://", "https://user@crm.example.com", "*", "null",
                          "https://a b"}) {
    Status s = Invalid(std::string("[server]\nallowed_origins = [\"") + bad + "\"]\n",
                       "server.allowed_origins[0]");
    EXPECT_NE(s.message().find("origin"), std::string::npos) << s.ToString();
  }
  Status s = Invalid("[server.tls]\ncert = \"/c.pem\"\n", "server.tls.key");
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.ToString();
  ExpectInvalid("[server.tls]\nkey = \"/k.pem\"\n", "server.tls.cert");
  ExpectInvalid("[server.tls]\ncert = 1\nkey = \"/k.pem\"\n", "server.tls.cert");
  ExpectInvalid("[server.tls]\ncert = \"/c.pem\"\nkey = \"\"\n", "server.tls.key");
  ExpectInvalid("[server.tls]\ncertificate = \"/c.pem\"\n", "server.tls.certificate");
  ExpectInvalid("[server]\ntls = true\n", "server.tls");
  ExpectInvalid("[[auth.tokens]]\ntoken = \"t\"\nname = \"has space\"\n", "auth.tokens[0].name");
  ExpectInvalid("[[auth.tokens]]\ntoken = \"t\"\nname = \"\"\n", "auth.tokens[0].name");
  ExpectInvalid("[[auth.tokens]]\ntoken = \"t\"\nname = 7\n", "auth.tokens[0].name");
  ExpectInvalid("[[auth.tokens]]\ntoken = \"t\"\nname = \"" + std::string(65, 'n') + "\"\n",
                "auth.tokens[0].name");
  s = Invalid("[[auth.tokens]]\ntoken = \"a\"\nname = \"x\"\n[[auth.tokens]]\ntoken = \"b\"\nname = \"x\"\n",
              "auth.tokens[1].name");
  EXPECT_NE(s.message().find("auth.tokens[0].name"), std::string::npos) << s.ToString();
  // An explicit name may not take the default name of another entry.
  ExpectInvalid("[[auth.tokens]]\ntoken = \"a\"\n[[auth.tokens]]\ntoken = \"b\"\nname = \"token-0\"\n",
                "auth.tokens[1].name");
}

TEST(Config, ValidateConfigChecksTheSecurityKeys) {
  Config c;
  c.server.tls.cert = "/c.pem";
  EXPECT_EQ(ValidateConfig(c).field(), "server.tls.key");
  c.server.tls.key = "/k.pem";
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.server.allowed_origins = {"https://ok.example", "bad"};
  EXPECT_EQ(ValidateConfig(c).field(), "server.allowed_origins[1]");
  Config t;
  t.tokens = {AuthToken{Role::kCrm, "a"}, AuthToken{Role::kCrm, "b"}};
  EXPECT_TRUE(ValidateConfig(t).ok());  // unnamed: token-0, token-1
  t.tokens[1].name = "token-0";
  EXPECT_EQ(ValidateConfig(t).field(), "auth.tokens[1].name");
}

TEST(Config, LoadConfigFileKeepsItsPathAndTextForTheReload) {
  TempDir dir;
  const std::string text = "[server]\nport = 7701\n";
  const fs::path p = dir.Write("reload.toml", text);
  Result<Config> r = LoadConfigFile(p.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value().source_path, p.string());
  EXPECT_EQ(r.value().source_text, text);
}

TEST(Config, ChangedKeysExceptTokens) {
  const std::string base =
      "[server]\nport = 7700\n[funnel]\nstages = [\"a\", \"b\"]\n[[auth.tokens]]\ntoken = \"x\"\n";
  EXPECT_TRUE(ChangedKeysExceptTokens(base, base).empty());
  // Comments, order and the tokens do not count.
  EXPECT_TRUE(ChangedKeysExceptTokens(
                  base, "# new\n[funnel]\nstages = [\"a\", \"b\"]\n[server]\nport = 7700\n"
                        "[[auth.tokens]]\ntoken = \"y\"\nrole = \"admin\"\n[[auth.tokens]]\ntoken = \"z\"\n")
                  .empty());
  EXPECT_EQ(ChangedKeysExceptTokens(base, "[server]\nport = 7701\nbind = \"::1\"\n[funnel]\nstages = [\"a\"]\n"),
            (std::vector<std::string>{"funnel.stages", "server.bind", "server.port"}));
  EXPECT_EQ(ChangedKeysExceptTokens(base, "[server\n"), (std::vector<std::string>{""}));
}

TEST(Config, RoleNamesRoundTrip) {
  for (Role role : {Role::kCrm, Role::kMarketing, Role::kAdmin}) {
    std::optional<Role> back = ParseRole(RoleName(role));
    ASSERT_TRUE(back.has_value()) << RoleName(role);
    EXPECT_EQ(*back, role);
  }
  EXPECT_STREQ(RoleName(Role::kCrm), "crm");
  EXPECT_STREQ(RoleName(Role::kMarketing), "marketing");
  EXPECT_STREQ(RoleName(Role::kAdmin), "admin");
  for (const char* bad : {"", "Admin", "root", "crm ", "marketer"}) {
    EXPECT_FALSE(ParseRole(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace playbook::server

// server.backup, `playbook backup` and `playbook restore` against the real
// daemon: a backup taken under load (assets.upsert and feedback.record from
// a client thread, one call at a time, each acknowledged before the next is
// sent) is restored into a new data dir, and a second daemon started on it
// serves the original's data as of the backup point:
// - the calls it holds are a prefix of the load (the backup is one point in
//   time) that includes every call acknowledged before the backup was asked;
// - assets.list equals the original's, restricted to that prefix, record for
//   record (timestamps included);
// - reports.assets equals the report before the load plus that prefix's
//   events, and the original's final report equals the same model over the
//   whole load (so the model is the original's state at the backup point);
// - `playbook reaggregate --check` is clean, and the index was loaded, not rebuilt.
// See docs/protocol.md (server.backup) and docs/cli.md.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <iterator>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

constexpr int kSeedAssets = 12;
constexpr int kLeads = 20;

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// One call of the load: the assets it created or the events it recorded.
struct Call {
  std::vector<std::string> asset_ids;
  json events = json::array();
};

// asset -> column -> count, for the columns the load changes.
using Counts = std::map<std::string, std::map<std::string, uint64_t>>;

Counts ReportCounts(const json& report) {
  Counts out;
  for (const json& row : report["rows"]) {
    for (const char* col : {"shown", "used", "viewed", "dismissed", "won", "lost"}) {
      if (row[col].get<uint64_t>() > 0) out[row["asset_id"]][col] = row[col];
    }
  }
  return out;
}

class Backup : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) {
      if (a_) std::cerr << "---- original daemon log ----\n" << a_->log() << "\n";
      if (b_) std::cerr << "---- restored daemon log ----\n" << b_->log() << "\n";
    }
  }

  CommandResult Cli(std::vector<std::string> args, const Daemon* d = nullptr) {
    args.insert(args.begin(), Daemon::CliPath());
    std::vector<std::string> env;
    if (d) env.push_back("PLAYBOOK_URL=" + d->ws_url());
    return RunCommand(args, env, std::chrono::milliseconds(120000));
  }

  static json Report(const Daemon& d) {
    TestClient c(d.ws_url());
    json r = c.Call("reports.assets", {{"limit", 100000}});
    EXPECT_TRUE(r.contains("result")) << r;
    return r["result"];
  }
  static std::vector<json> ListAssets(const Daemon& d) {
    TestClient c(d.ws_url());
    std::vector<json> out;
    json cursor;
    do {
      json params{{"limit", 1000}};
      if (!cursor.is_null()) params["cursor"] = cursor;
      json r = c.Call("assets.list", params);
      EXPECT_TRUE(r.contains("result")) << r;
      if (!r.contains("result")) break;
      for (const json& a : r["result"]["assets"]) out.push_back(a);
      cursor = r["result"]["next_cursor"];
    } while (!cursor.is_null());
    return out;
  }

  // Seeds assets, a recommend per lead and a won deal, so that the report
  // before the load has every column.
  void Seed() {
    TestClient c(a_->ws_url());
    json assets = json::array();
    for (int i = 0; i < kSeedAssets; ++i) {
      assets.push_back({{"id", "seed-" + std::to_string(i)}, {"title", "Seed " + std::to_string(i)},
                        {"body", i % 2 ? "ROI for the CFO" : "price objection script"},
                        {"type", "case_study"}, {"stages", {"evaluation", "negotiation"}}});
    }
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", assets}}).contains("result"));
    for (int l = 0; l < kLeads; ++l) {
      json r = c.Call("recommend", {{"lead", {{"id", "lead-" + std::to_string(l)}, {"stage", "evaluation"}}}, {"k", 2}});
      ASSERT_TRUE(r.contains("result")) << r;
    }
    json events = json::array({
        {{"event_id", "seed-u"}, {"type", "used"}, {"lead_id", "lead-0"}, {"asset_id", "seed-0"}},
        {{"event_id", "seed-w"}, {"type", "won"}, {"lead_id", "lead-0"}, {"amount", 5000}},
    });
    ASSERT_TRUE(c.Call("feedback.record", {{"events", events}}).contains("result"));
  }

  // One client, one call at a time: upserts of new assets and batches of
  // used/viewed/dismissed events, each recorded in `calls_` once acknowledged.
  void Load() {
    TestClient c(a_->ws_url());
    const char* types[] = {"used", "viewed", "dismissed"};
    for (int n = 0; !stop_.load(); ++n) {
      Call call;
      json r;
      if (n % 4 == 0) {
        json assets = json::array();
        for (int i = 0; i < 2; ++i) {
          const std::string id = "load-" + std::to_string(n) + "-" + std::to_string(i);
          assets.push_back({{"id", id}, {"title", "Load asset " + id}, {"type", "whitepaper"},
                            {"stages", {"evaluation"}}});
          call.asset_ids.push_back(id);
        }
        r = c.Call("assets.upsert", {{"assets", assets}});
      } else {
        for (int i = 0; i < 4; ++i) {
          const int k = n * 4 + i;
          json e{{"event_id", "load-e-" + std::to_string(k)}, {"type", types[k % 3]},
                 {"lead_id", "lead-" + std::to_string(k % kLeads)}, {"asset_id", "seed-" + std::to_string(k % kSeedAssets)}};
          if (k % 3 == 2) e["reason"] = "not relevant";
          call.events.push_back(e);
        }
        r = c.Call("feedback.record", {{"events", call.events}});
      }
      if (!r.contains("result")) {
        ADD_FAILURE() << "load call " << n << ": " << r;
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(std::move(call));
    }
  }

  // The report model: `base` plus the events of the first `k` calls.
  Counts Model(Counts base, size_t k) const {
    for (size_t i = 0; i < k; ++i) {
      for (const json& e : calls_[i].events) ++base[e["asset_id"]][e["type"]];
    }
    return base;
  }

  std::unique_ptr<Daemon> a_, b_;
  std::mutex mu_;
  std::vector<Call> calls_;  // guarded by mu_ while the load runs
  std::atomic<bool> stop_{false};
};

TEST_F(Backup, UnderLoadRestoresTheBackupPoint) {
  TempDir work;
  const std::string dir = work.path() + "/backup-1";
  const std::string restored = work.path() + "/restored";

  a_ = std::make_unique<Daemon>();
  ASSERT_TRUE(a_->Start()) << a_->log();
  ASSERT_NO_FATAL_FAILURE(Seed());
  const json before_load = Report(*a_);
  const Counts base = ReportCounts(before_load);

  std::thread load([this] { Load(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  size_t acked_before = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_before = calls_.size();
  }
  CommandResult backup = Cli({"backup", dir}, a_.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop_ = true;
  load.join();
  ASSERT_EQ(backup.exit_code, 0) << Describe(backup);
  EXPECT_NE(backup.out.find("index included"), std::string::npos) << backup.out;
  ASSERT_GT(acked_before, 0u);
  ASSERT_GT(calls_.size(), acked_before) << "the load should go on during and after the backup";

  // The manifest is there and names what the backup holds.
  {
    std::ifstream in(dir + "/BACKUP");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.rfind("playbook-backup 1\n", 0), 0u) << text;
    EXPECT_NE(text.find("\nindex index.pbidx\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nfile db/CURRENT "), std::string::npos) << text;
    EXPECT_EQ(text.substr(text.size() - 4), "end\n") << text;
  }

  // The original's final state equals the model over the whole load.
  const json final_report = Report(*a_);
  EXPECT_EQ(ReportCounts(final_report), Model(base, calls_.size()));
  const std::vector<json> original_assets = ListAssets(*a_);

  // Restore into a new data dir and start a second daemon on it.
  CommandResult r = Cli({"restore", dir, "--data-dir", restored});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("data_dir = \""), std::string::npos) << r.out;
  b_ = std::make_unique<Daemon>(WithDataDir(restored));
  ASSERT_TRUE(b_->Start()) << b_->log();
  EXPECT_NE(b_->log().find("index loaded from"), std::string::npos) << "the saved index should be used as is";

  // Which calls the backup holds (read-only queries): a prefix of the load,
  // at least those acknowledged before the backup was asked for.
  TestClient c(b_->ws_url());
  std::set<std::string> event_ids;
  for (int l = 0; l < kLeads; ++l) {
    json g = c.Call("leads.get", {{"id", "lead-" + std::to_string(l)}});
    ASSERT_TRUE(g.contains("result")) << g;
    for (const json& e : g["result"]["history"]) {
      ASSERT_TRUE(event_ids.insert(e["event_id"].get<std::string>()).second) << "event twice: " << e;
    }
  }
  std::vector<bool> held(calls_.size());
  for (size_t i = 0; i < calls_.size(); ++i) {
    const Call& call = calls_[i];
    size_t n = 0;
    if (!call.asset_ids.empty()) {
      json g = c.Call("assets.get", {{"ids", call.asset_ids}});
      ASSERT_TRUE(g.contains("result")) << g;
      n = g["result"]["assets"].size();
      ASSERT_TRUE(n == 0 || n == call.asset_ids.size()) << "an upsert half in the backup: " << g;
    } else {
      for (const json& e : call.events) n += event_ids.count(e["event_id"].get<std::string>());
      ASSERT_TRUE(n == 0 || n == call.events.size()) << "a feedback call half in the backup: " << i;
    }
    held[i] = n > 0;
  }
  size_t k = 0;
  while (k < held.size() && held[k]) ++k;
  for (size_t i = k; i < held.size(); ++i) EXPECT_FALSE(held[i]) << "call " << i << " held after a missing call " << k;
  EXPECT_GE(k, acked_before) << "calls acknowledged before the backup was asked for are missing";
  std::cout << "backup test: " << calls_.size() << " load calls, " << acked_before
            << " acknowledged before the backup call, " << k << " in the backup" << std::endl;

  // Assets: exactly the original's records of the seed and the first k calls.
  std::set<std::string> expected_ids;
  for (int i = 0; i < kSeedAssets; ++i) expected_ids.insert("seed-" + std::to_string(i));
  for (size_t i = 0; i < k; ++i) expected_ids.insert(calls_[i].asset_ids.begin(), calls_[i].asset_ids.end());
  std::vector<json> want;
  for (const json& a : original_assets) {
    if (expected_ids.count(a["id"])) want.push_back(a);
  }
  EXPECT_EQ(want.size(), expected_ids.size());
  EXPECT_EQ(ListAssets(*b_), want);

  // Reports: the model at the backup point, rows and totals.
  const json restored_report = Report(*b_);
  const Counts at_backup = Model(base, k);
  EXPECT_EQ(ReportCounts(restored_report), at_backup);
  for (const char* col : {"shown", "used", "viewed", "dismissed", "won", "lost"}) {
    uint64_t sum = 0;
    for (const auto& [asset, cols] : at_backup) sum += cols.count(col) ? cols.at(col) : 0;
    EXPECT_EQ(restored_report["totals"][col], sum) << col;
  }
  EXPECT_EQ(restored_report["totals"]["leads_won"], before_load["totals"]["leads_won"]);

  CommandResult check = Cli({"reaggregate", "--check", "--no-progress"}, b_.get());
  EXPECT_EQ(check.exit_code, 0) << Describe(check);
  EXPECT_EQ(b_->Stop(), 0) << b_->log();
  EXPECT_EQ(a_->Stop(), 0) << a_->log();
}

TEST_F(Backup, ReportsAtTheBackupPointWithoutLoad) {
  // Without later writes, the restored reports and assets equal the
  // original's exactly, rows and totals (timestamps of use included).
  TempDir work;
  a_ = std::make_unique<Daemon>();
  ASSERT_TRUE(a_->Start()) << a_->log();
  ASSERT_NO_FATAL_FAILURE(Seed());
  TestClient admin(a_->ws_url());
  json r = admin.Call("server.backup", {{"dir", work.path() + "/b"}});
  ASSERT_TRUE(r.contains("result")) << r;
  EXPECT_EQ(r["result"]["dir"], work.path() + "/b");
  EXPECT_GT(r["result"]["bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(r["result"]["files"].get<uint64_t>(), 0u);
  EXPECT_EQ(r["result"]["index"], true);
  EXPECT_GE(r["result"]["events"].get<uint64_t>(), 2u + kLeads);  // shown events included
  json status = admin.Call("index.status");
  EXPECT_EQ(r["result"]["catalog_seq"], status["result"]["catalog_seq"]);

  CommandResult rs = Cli({"restore", work.path() + "/b", "--data-dir", work.path() + "/new"});
  ASSERT_EQ(rs.exit_code, 0) << Describe(rs);
  b_ = std::make_unique<Daemon>(WithDataDir(work.path() + "/new"));
  ASSERT_TRUE(b_->Start()) << b_->log();
  EXPECT_EQ(Report(*b_), Report(*a_));
  EXPECT_EQ(ListAssets(*b_), ListAssets(*a_));
  TestClient cb(b_->ws_url());
  json lead_a = admin.Call("leads.get", {{"id", "lead-0"}});
  json lead_b = cb.Call("leads.get", {{"id", "lead-0"}});
  EXPECT_EQ(lead_a["result"], lead_b["result"]);
  EXPECT_TRUE(lead_a.contains("result")) << lead_a;
  EXPECT_EQ(cb.Call("index.status")["result"]["catalog_seq"], status["result"]["catalog_seq"]);
}

TEST_F(Backup, ErrorsNameTheField) {
  TempDir work;
  a_ = std::make_unique<Daemon>();
  ASSERT_TRUE(a_->Start()) << a_->log();
  TestClient c(a_->ws_url());

  json r = c.Call("server.backup", json::object());
  EXPECT_EQ(ErrorCode(r), -32602) << r;
  EXPECT_EQ(ErrorField(r), "dir");
  r = c.Call("server.backup", {{"dir", "relative/path"}});
  EXPECT_EQ(ErrorCode(r), -32602) << r;
  EXPECT_EQ(ErrorField(r), "dir");
  r = c.Call("server.backup", {{"dir", work.path() + "/x"}, {"extra", 1}});
  EXPECT_EQ(ErrorCode(r), -32602) << r;
  EXPECT_EQ(ErrorField(r), "extra");
  // Not empty: refused, nothing written.
  std::filesystem::create_directories(work.path() + "/full");
  std::ofstream(work.path() + "/full/keep") << "x";
  r = c.Call("server.backup", {{"dir", work.path() + "/full"}});
  EXPECT_EQ(ErrorCode(r), -32602) << r;
  EXPECT_EQ(ErrorField(r), "dir");
  EXPECT_FALSE(std::filesystem::exists(work.path() + "/full/db"));
  // Inside the data dir: refused.
  r = c.Call("server.backup", {{"dir", a_->data_dir() + "/backup"}});
  EXPECT_EQ(ErrorCode(r), -32602) << r;
  EXPECT_EQ(ErrorField(r), "dir");
  // The CLI: usage errors, and the daemon's refusal.
  EXPECT_EQ(Cli({"backup"}, a_.get()).exit_code, 2);
  CommandResult b = Cli({"backup", work.path() + "/full"}, a_.get());
  EXPECT_EQ(b.exit_code, 1) << Describe(b);
  EXPECT_NE(b.err.find("dir"), std::string::npos) << b.err;

  // An empty existing directory is fine.
  std::filesystem::create_directories(work.path() + "/empty");
  b = Cli({"backup", work.path() + "/empty"}, a_.get());
  ASSERT_EQ(b.exit_code, 0) << Describe(b);

  // restore: usage, a non-empty target, a damaged or unfinished backup.
  EXPECT_EQ(Cli({"restore", work.path() + "/empty"}).exit_code, 2);
  CommandResult x = Cli({"restore", work.path() + "/empty", "--data-dir", work.path() + "/full"});
  EXPECT_EQ(x.exit_code, 1) << Describe(x);
  EXPECT_NE(x.err.find("not empty"), std::string::npos) << x.err;
  x = Cli({"restore", work.path() + "/full", "--data-dir", work.path() + "/new1"});
  EXPECT_EQ(x.exit_code, 1) << Describe(x);
  EXPECT_NE(x.err.find("no manifest"), std::string::npos) << x.err;
  EXPECT_FALSE(std::filesystem::exists(work.path() + "/new1"));
  {
    // Damage: a file shorter than the manifest says.
    std::filesystem::copy(work.path() + "/empty", work.path() + "/damaged", std::filesystem::copy_options::recursive);
    std::filesystem::resize_file(work.path() + "/damaged/index.pbidx", 10);
    x = Cli({"restore", work.path() + "/damaged", "--data-dir", work.path() + "/new2"});
    EXPECT_EQ(x.exit_code, 1) << Describe(x);
    EXPECT_NE(x.err.find("index.pbidx"), std::string::npos) << x.err;
    EXPECT_FALSE(std::filesystem::exists(work.path() + "/new2"));
  }
  {
    // Unfinished: a manifest without its last line.
    std::filesystem::copy(work.path() + "/empty", work.path() + "/cut", std::filesystem::copy_options::recursive);
    std::ifstream in(work.path() + "/cut/BACKUP");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::ofstream(work.path() + "/cut/BACKUP", std::ios::trunc) << text.substr(0, text.size() - 4);
    x = Cli({"restore", work.path() + "/cut", "--data-dir", work.path() + "/new3"});
    EXPECT_EQ(x.exit_code, 1) << Describe(x);
    EXPECT_NE(x.err.find("unfinished"), std::string::npos) << x.err;
  }
}

}  // namespace
}  // namespace playbook::testing

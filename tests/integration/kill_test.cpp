// The kill test: the real playbookd under a mixed load of assets.upsert,
// recommend and feedback.record from several clients is SIGKILLed at a random
// moment, restarted on the same data dir, and every write it acknowledged is
// checked against the clients' own ledgers:
// - every acknowledged asset is there, as written (assets.get);
// - every acknowledged event is in its lead's history exactly once, and no
//   event is there that nobody sent (leads.get); events whose call was cut
//   by the kill (in doubt) are there at most once, and sending them again
//   settles them (accepted if they were lost, duplicates if they were kept);
// - re-sending acknowledged events answers them as duplicates;
// - every item of an acknowledged recommend is a `shown` event of the lead
//   under its recommendation id, once;
// - reports.assets counts per asset equal the events in the histories
//   (nothing counted twice, nothing lost);
// - `playbook reaggregate --check` finds no aggregate differing from the log.
//
// Rounds: 20, or $PLAYBOOK_KILL_ROUNDS. The random seed is printed (and can be
// set with $PLAYBOOK_KILL_SEED) so a failure can be replayed.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/daemon.h"
#include "support/test_client.h"

namespace playbook::testing {
namespace {

constexpr int kSeedAssets = 24;
constexpr int kFeedbackThreads = 2;
constexpr int kLeadsPerThread = 30;
constexpr int kRecommendLeads = 30;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::max(1, std::atoi(v));
}

std::string SeedAsset(int i) { return "seed-" + std::to_string(i); }

// What one client thread sent and what it heard back.
struct Ledger {
  std::map<std::string, std::string> assets;  // acknowledged id -> title
  std::set<std::string> assets_in_doubt;       // sent, no answer
  std::map<std::string, json> events;          // acknowledged event_id -> event
  std::map<std::string, json> events_in_doubt;
  struct Rec {
    std::string lead, id;
    std::vector<std::string> items;
  };
  std::vector<Rec> recs;  // acknowledged recommends
  uint64_t calls = 0, recs_in_doubt = 0;

  void Merge(Ledger&& o) {
    assets.merge(o.assets);
    assets_in_doubt.merge(o.assets_in_doubt);
    events.merge(o.events);
    events_in_doubt.merge(o.events_in_doubt);
    for (auto& r : o.recs) recs.push_back(std::move(r));
    calls += o.calls;
    recs_in_doubt += o.recs_in_doubt;
  }
};

class KillTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && d_) std::cerr << "---- daemon log ----\n" << d_->log() << "\n";
  }

  void StartDaemon() {
    d_ = std::make_unique<Daemon>(WithDataDir(data_.path() + "/data"));
    ASSERT_TRUE(d_->Start()) << d_->log();
  }

  std::vector<std::string> FeedbackLeads() const {
    std::vector<std::string> leads;
    for (int t = 0; t < kFeedbackThreads; ++t) {
      for (int i = 0; i < kLeadsPerThread; ++i) leads.push_back("lead-" + std::to_string(t) + "-" + std::to_string(i));
    }
    return leads;
  }
  static std::string RecLead(int i) { return "rec-lead-" + std::to_string(i); }

  // The load of one round, until the connection dies (the kill) or `stop`.
  void Upserter(int round, std::atomic<bool>* stop, Ledger* out) {
    TestClient c(d_->ws_url());
    if (!c.connected()) return;
    for (int n = 0; !stop->load(); ++n) {
      json assets = json::array();
      std::vector<std::pair<std::string, std::string>> batch;
      for (int i = 0; i < 3; ++i) {
        const std::string id = "a-" + std::to_string(round) + "-" + std::to_string(n) + "-" + std::to_string(i);
        const std::string title = "Pricing playbook " + id;
        assets.push_back({{"id", id}, {"title", title}, {"body", "value case against a cheaper competitor"},
                          {"type", "case_study"}, {"stages", {"evaluation", "negotiation"}}});
        batch.emplace_back(id, title);
      }
      ++out->calls;
      json r = c.Call("assets.upsert", {{"assets", assets}});
      if (r.contains("result") && r["result"].value("upserted", 0) == 3) {
        for (auto& [id, title] : batch) out->assets[id] = title;
      } else {
        for (auto& [id, title] : batch) out->assets_in_doubt.insert(id);
        if (!r.is_null()) ADD_FAILURE() << "assets.upsert: " << r;
        return;
      }
    }
  }

  void Feedback(int round, int thread, uint32_t seed, std::atomic<bool>* stop, Ledger* out) {
    TestClient c(d_->ws_url());
    if (!c.connected()) return;
    std::mt19937 rng(seed);
    const char* types[] = {"used", "viewed", "dismissed", "used", "viewed", "stage_changed", "won"};
    const char* stages[] = {"evaluation", "negotiation"};
    for (int n = 0; !stop->load(); ++n) {
      json events = json::array();
      std::vector<std::string> ids;
      const int count = 1 + int(rng() % 6);
      for (int i = 0; i < count; ++i) {
        const std::string id = "e-" + std::to_string(round) + "-" + std::to_string(thread) + "-" +
                               std::to_string(n) + "-" + std::to_string(i);
        const std::string type = types[rng() % 7];
        json e{{"event_id", id}, {"type", type},
               {"lead_id", "lead-" + std::to_string(thread) + "-" + std::to_string(rng() % kLeadsPerThread)},
               {"rep_id", "rep-" + std::to_string(rng() % 3)}};
        if (type == "used" || type == "viewed" || type == "dismissed") e["asset_id"] = SeedAsset(int(rng() % kSeedAssets));
        if (type == "dismissed") e["reason"] = "already seen";
        if (type == "stage_changed") e["stage"] = stages[rng() % 2];
        if (type == "won") e["amount"] = 1000 + int(rng() % 9000);
        events.push_back(e);
        ids.push_back(id);
      }
      ++out->calls;
      json r = c.Call("feedback.record", {{"events", events}});
      if (r.contains("result") && r["result"].value("accepted", -1) == count) {
        for (size_t i = 0; i < ids.size(); ++i) out->events[ids[i]] = events[i];
      } else {
        for (size_t i = 0; i < ids.size(); ++i) out->events_in_doubt[ids[i]] = events[i];
        if (!r.is_null()) ADD_FAILURE() << "feedback.record: " << r;
        return;
      }
    }
  }

  void Recommender(uint32_t seed, std::atomic<bool>* stop, Ledger* out) {
    TestClient c(d_->ws_url());
    if (!c.connected()) return;
    std::mt19937 rng(seed);
    while (!stop->load()) {
      const std::string lead = RecLead(int(rng() % kRecommendLeads));
      json params{{"lead", {{"id", lead}, {"stage", "evaluation"}}}, {"k", 3}, {"rep_id", "rep-0"}};
      if (rng() % 2) params["lead"]["context"] = "the customer says the price is too high";
      ++out->calls;
      json r = c.Call("recommend", params);
      if (!r.contains("result")) {
        ++out->recs_in_doubt;
        if (!r.is_null()) ADD_FAILURE() << "recommend: " << r;
        return;
      }
      Ledger::Rec rec{lead, r["result"]["recommendation_id"].get<std::string>(), {}};
      for (const json& item : r["result"]["items"]) rec.items.push_back(item["asset_id"].get<std::string>());
      out->recs.push_back(std::move(rec));
    }
  }

  // Runs the load for `ms`, then SIGKILLs the daemon mid-flight.
  Ledger LoadAndKill(int round, std::mt19937& rng, int ms) {
    std::atomic<bool> stop{false};
    std::vector<Ledger> ledgers(2 + kFeedbackThreads);
    std::vector<std::thread> threads;
    threads.emplace_back([&] { Upserter(round, &stop, &ledgers[0]); });
    threads.emplace_back([&, s = uint32_t(rng())] { Recommender(s, &stop, &ledgers[1]); });
    for (int t = 0; t < kFeedbackThreads; ++t) {
      threads.emplace_back([&, t, s = uint32_t(rng())] { Feedback(round, t, s, &stop, &ledgers[2 + t]); });
    }
    if (round % 3 == 2) {
      // Every third round also re-aggregates (writing) over and over, so that
      // some kills land while new counters are being written: the next start
      // must finish that work before it serves.
      threads.emplace_back([&] {
        while (!stop.load()) {
          CommandResult x = RunCommand({Daemon::CliPath(), "reaggregate", "--no-progress"},
                                       {"PLAYBOOK_URL=" + d_->ws_url()}, std::chrono::milliseconds(60000));
          if (x.exit_code == 0) ++reaggregations_;
          if (x.exit_code != 0) break;  // the kill (exit 3), or an error the checks below will show
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    d_->Kill();  // SIGKILL: no shutdown, no flush
    stop = true;
    for (auto& t : threads) t.join();
    Ledger all;
    for (auto& l : ledgers) all.Merge(std::move(l));
    return all;
  }

  // Every acknowledged asset is there, as written; those in doubt are either.
  void CheckAssets(TestClient& c) {
    std::vector<std::string> ids;
    for (const auto& [id, title] : ledger_.assets) ids.push_back(id);
    for (size_t from = 0; from < ids.size(); from += 1000) {
      json chunk = json::array();
      for (size_t i = from; i < std::min(ids.size(), from + 1000); ++i) chunk.push_back(ids[i]);
      json r = c.Call("assets.get", {{"ids", chunk}});
      ASSERT_TRUE(r.contains("result")) << r;
      EXPECT_EQ(r["result"]["missing"], json::array()) << "acknowledged assets lost";
      for (const json& a : r["result"]["assets"]) {
        EXPECT_EQ(a["title"], ledger_.assets[a["id"].get<std::string>()]) << a["id"];
      }
    }
    // Settle those in doubt: present or not, they are no longer in doubt.
    for (const std::string& id : ledger_.assets_in_doubt) {
      json r = c.Call("assets.get", {{"ids", {id}}});
      ASSERT_TRUE(r.contains("result")) << r;
      if (!r["result"]["assets"].empty()) ledger_.assets[id] = r["result"]["assets"][0]["title"];
    }
    ledger_.assets_in_doubt.clear();
    // assets.list pages through exactly the live catalog.
    size_t listed = 0;
    json cursor;
    do {
      json params{{"limit", 1000}};
      if (!cursor.is_null()) params["cursor"] = cursor;
      json r = c.Call("assets.list", params);
      ASSERT_TRUE(r.contains("result")) << r;
      listed += r["result"]["assets"].size();
      cursor = r["result"]["next_cursor"];
    } while (!cursor.is_null());
    EXPECT_EQ(listed, ledger_.assets.size() + kSeedAssets);
  }

  // Histories against the ledger; then the in-doubt events are sent again,
  // which settles them. Returns the shown/used/viewed/dismissed counts per
  // asset found in the histories.
  std::map<std::string, std::map<std::string, uint64_t>> CheckHistories(TestClient& c, size_t* doubt_present) {
    std::map<std::string, std::map<std::string, uint64_t>> counts;  // asset -> type -> n
    std::map<std::string, int> seen;                                 // event_id -> times
    std::map<std::string, std::map<std::string, std::multiset<std::string>>> shown;  // lead -> rec -> assets
    std::vector<std::string> leads = FeedbackLeads();
    for (int i = 0; i < kRecommendLeads; ++i) leads.push_back(RecLead(i));
    for (const std::string& lead : leads) {
      json r = c.Call("leads.get", {{"id", lead}});
      if (ErrorCode(r) == -32002) continue;  // never written to
      EXPECT_TRUE(r.contains("result")) << r;
      if (!r.contains("result")) continue;
      for (const json& e : r["result"]["history"]) {
        const std::string type = e["type"];
        const std::string id = e["event_id"];
        if (type == "shown") {
          shown[lead][e.value("recommendation_id", "")].insert(e.value("asset_id", ""));
        } else {
          ++seen[id];
          const bool acked = ledger_.events.count(id) > 0, doubt = ledger_.events_in_doubt.count(id) > 0;
          EXPECT_TRUE(acked || doubt) << "event " << id << " of " << lead << " was never sent";
          if (acked) {
            EXPECT_EQ(ledger_.events[id]["lead_id"], lead) << id;
            EXPECT_EQ(ledger_.events[id]["type"], type) << id;
          }
        }
        if (e.contains("asset_id") && (type == "shown" || type == "used" || type == "viewed" || type == "dismissed")) {
          ++counts[e["asset_id"].get<std::string>()][type];
        }
      }
    }
    size_t lost = 0, twice = 0;
    for (const auto& [id, e] : ledger_.events) {
      const int n = seen.count(id) ? seen[id] : 0;
      if (n == 0 && ++lost <= 5) ADD_FAILURE() << "acknowledged event " << id << " lost: " << e;
      if (n > 1 && ++twice <= 5) ADD_FAILURE() << "event " << id << " recorded " << n << " times";
    }
    EXPECT_EQ(lost, 0u);
    EXPECT_EQ(twice, 0u);
    *doubt_present = 0;
    for (const auto& [id, e] : ledger_.events_in_doubt) {
      const int n = seen.count(id) ? seen[id] : 0;
      EXPECT_LE(n, 1) << "event in doubt " << id << " recorded twice";
      *doubt_present += n > 0;
    }
    for (const Ledger::Rec& rec : ledger_.recs) {
      std::multiset<std::string> want(rec.items.begin(), rec.items.end());
      EXPECT_EQ(shown[rec.lead][rec.id], want) << "shown events of acknowledged " << rec.id << " for " << rec.lead;
    }
    return counts;
  }

  // Sends the in-doubt events again: those the kill lost are accepted now,
  // those kept are duplicates. Either way they are acknowledged afterwards.
  void SettleDoubts(TestClient& c, size_t present_before) {
    if (ledger_.events_in_doubt.empty()) return;
    json events = json::array();
    for (const auto& [id, e] : ledger_.events_in_doubt) events.push_back(e);
    json r = c.Call("feedback.record", {{"events", events}});
    ASSERT_TRUE(r.contains("result")) << r;
    EXPECT_EQ(r["result"]["accepted"].get<size_t>() + r["result"]["duplicates"].get<size_t>(), events.size());
    EXPECT_EQ(r["result"]["duplicates"].get<size_t>(), present_before) << r;
    doubt_kept_ += present_before;
    doubt_lost_ += events.size() - present_before;
    ledger_.events.merge(ledger_.events_in_doubt);
    ledger_.events_in_doubt.clear();
  }

  // Acknowledged events sent again are duplicates, and change nothing.
  void Resend(TestClient& c, std::mt19937& rng) {
    if (ledger_.events.empty()) return;
    std::vector<const json*> all;
    for (const auto& [id, e] : ledger_.events) all.push_back(&e);
    json events = json::array();
    std::set<size_t> picked;
    for (int i = 0; i < 20; ++i) picked.insert(rng() % all.size());
    for (size_t i : picked) events.push_back(*all[i]);
    json r = c.Call("feedback.record", {{"events", events}});
    ASSERT_TRUE(r.contains("result")) << r;
    EXPECT_EQ(r["result"]["duplicates"], events.size()) << r;
    EXPECT_EQ(r["result"]["accepted"], 0) << r;
    resent_ += events.size();
  }

  // reports.assets per asset equals the histories.
  void CheckReports(const std::map<std::string, std::map<std::string, uint64_t>>& counts) {
    TestClient c(d_->ws_url());
    json r = c.Call("reports.assets", {{"limit", 100000}, {"sort", "shown"}});
    ASSERT_TRUE(r.contains("result")) << r;
    std::map<std::string, std::map<std::string, uint64_t>> reported;
    for (const json& row : r["result"]["rows"]) {
      for (const char* type : {"shown", "used", "viewed", "dismissed"}) {
        if (row[type].get<uint64_t>() > 0) reported[row["asset_id"]][type] = row[type];
      }
    }
    EXPECT_EQ(reported, counts) << "reports.assets differs from the events in the leads' histories";
    uint64_t shown = 0;
    for (const auto& [asset, by_type] : counts) {
      if (by_type.count("shown")) shown += by_type.at("shown");
    }
    EXPECT_EQ(r["result"]["totals"]["shown"], shown);
  }

  void CheckReaggregate() {
    CommandResult x = RunCommand({Daemon::CliPath(), "reaggregate", "--check", "--no-progress"},
                                 {"PLAYBOOK_URL=" + d_->ws_url()}, std::chrono::milliseconds(60000));
    EXPECT_EQ(x.exit_code, 0) << x.out << x.err;
    EXPECT_NE(x.out.find(" 0 differ "), std::string::npos) << x.out;
  }

  TempDir data_;
  std::unique_ptr<Daemon> d_;
  Ledger ledger_;
  uint64_t doubt_kept_ = 0, doubt_lost_ = 0, resent_ = 0;
  std::atomic<uint64_t> reaggregations_{0};
};

TEST_F(KillTest, AcknowledgedWritesSurviveSigkill) {
  const int rounds = EnvInt("PLAYBOOK_KILL_ROUNDS", 20);
  const uint32_t seed = uint32_t(EnvInt("PLAYBOOK_KILL_SEED", int(std::random_device()() & 0x7fffffff)));
  std::cout << "kill test: " << rounds << " rounds, seed " << seed << " (PLAYBOOK_KILL_SEED)" << std::endl;
  std::mt19937 rng(seed);

  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  {
    TestClient c(d_->ws_url());
    json assets = json::array();
    for (int i = 0; i < kSeedAssets; ++i) {
      assets.push_back({{"id", SeedAsset(i)}, {"title", "Seed asset " + std::to_string(i)},
                        {"body", i % 2 ? "ROI calculator for the CFO" : "objection script: price too high"},
                        {"type", i % 2 ? "roi_calculator" : "objection_script"},
                        {"stages", {"evaluation", "negotiation"}}});
    }
    ASSERT_TRUE(c.Call("assets.upsert", {{"assets", assets}}).contains("result"));
  }

  uint64_t calls = 0, recs = 0, recs_in_doubt = 0, events_in_doubt_total = 0, interrupted_reaggregations = 0;
  for (int round = 0; round < rounds; ++round) {
    const int ms = 150 + int(rng() % 450);
    Ledger got = LoadAndKill(round, rng, ms);
    calls += got.calls;
    recs += got.recs.size();
    recs_in_doubt += got.recs_in_doubt;
    events_in_doubt_total += got.events_in_doubt.size();
    ledger_.Merge(std::move(got));

    ASSERT_NO_FATAL_FAILURE(StartDaemon()) << "round " << round;
    if (d_->log().find("interrupted re-aggregation was finished") != std::string::npos) ++interrupted_reaggregations;
    TestClient c(d_->ws_url());
    ASSERT_TRUE(c.connected());
    ASSERT_NO_FATAL_FAILURE(CheckAssets(c)) << "round " << round;
    // The histories against the ledger; the in-doubt events found there must
    // come back as duplicates when sent again, the others are accepted.
    size_t present = 0;
    CheckHistories(c, &present);
    ASSERT_NO_FATAL_FAILURE(SettleDoubts(c, present)) << "round " << round;
    ASSERT_NO_FATAL_FAILURE(Resend(c, rng)) << "round " << round;
    // After settling, the histories match the ledger exactly; reports match them.
    auto counts = CheckHistories(c, &present);
    EXPECT_EQ(present, 0u);
    ASSERT_NO_FATAL_FAILURE(CheckReports(counts)) << "round " << round;
    ASSERT_NO_FATAL_FAILURE(CheckReaggregate()) << "round " << round;
    ASSERT_FALSE(HasFailure()) << "round " << round << " of " << rounds << ", seed " << seed;
  }
  d_->Stop();

  std::cout << "kill test: " << rounds << " rounds (SIGKILL each), " << calls << " calls; acknowledged: "
            << ledger_.assets.size() << " assets, " << ledger_.events.size() - doubt_kept_ - doubt_lost_
            << " feedback events, " << recs << " recommends; cut by the kill: " << events_in_doubt_total
            << " events (" << doubt_kept_ << " had been kept, " << doubt_lost_ << " lost unacknowledged), "
            << recs_in_doubt << " recommends; " << resent_ << " acknowledged events re-sent as duplicates; "
            << reaggregations_ << " re-aggregations completed under load, " << interrupted_reaggregations
            << " cut by the kill and finished at the next start; "
            << "lost acknowledged writes: 0" << std::endl;
}

}  // namespace
}  // namespace playbook::testing

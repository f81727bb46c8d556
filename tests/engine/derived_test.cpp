// The in-memory counters (engine/src/derived.h) against brute force: any day
// window sums the same through week buckets as day by day, the enumeration
// gives back what was applied, and both dismissal paths agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "derived.h"

namespace playbook {
namespace {

Counters One(int field, int64_t n = 1) {
  Counters c{};
  c[size_t(field)] = n;
  return c;
}

TEST(Derived, AnyWindowSumsLikeDayByDay) {
  Derived d;
  std::mt19937 rng(3);
  // (day, stage, rep, asset) -> used; days 3..40 cross several week edges.
  std::map<std::tuple<uint32_t, std::string, std::string, std::string>, int64_t> truth;
  const char* stages[] = {"", "evaluation", "negotiation"};
  for (int i = 0; i < 3000; ++i) {
    const uint32_t day = 3 + rng() % 38;
    const std::string stage = stages[rng() % 3], rep = rng() % 2 ? "r1" : "r2";
    std::string asset = "a";
    asset.append(std::to_string(rng() % 20));
    for (const std::string& r : {std::string(), rep}) {
      d.Apply(AggregateKey(day, stage, r, asset), One(1));
      if (!r.empty()) truth[{day, stage, r, asset}] += 1;
    }
  }
  for (uint32_t first = 0; first <= 42; ++first) {
    for (uint32_t last = first; last <= 42; ++last) {
      for (const std::string stage : {"", "evaluation"}) {
        for (const std::string rep : {"", "r2"}) {
          std::map<std::string, int64_t> want;
          for (const auto& [k, n] : truth) {
            const auto& [day, s, r, asset] = k;
            if (day < first || day > last) continue;
            if (!stage.empty() && s != stage) continue;
            if (!rep.empty() && r != rep) continue;
            want[asset] += n;
          }
          std::map<std::string, int64_t> got;
          for (const auto& [asset, c] : d.SumAssets(first, last, stage, rep).by_asset) got[asset] = c[1];
          ASSERT_EQ(got, want) << "days " << first << ".." << last << " stage '" << stage << "' rep '" << rep << "'";
        }
      }
    }
  }
}

// Found by tests/fuzz (fuzz_records): a stored key whose day is near 2^32 (a
// damaged record) made every window reaching it loop forever (day + 7 wrapped).
TEST(Derived, WindowsEndingNearTheLastDayTerminate) {
  Derived d;
  const uint32_t max = UINT32_MAX;
  for (uint32_t day : {max - 13, max - 6, max - 1, max}) d.Apply(AggregateKey(day, "evaluation", "", "a1"), One(1));
  d.Apply(AggregateKey(7, "evaluation", "", "a2"), One(1, 2));
  for (uint32_t first : {0u, 7u, max - 20, max - 6, max}) {
    std::map<std::string, int64_t> got;
    for (const auto& [asset, c] : d.SumAssets(first, max, "", "").by_asset) got[asset] = c[1];
    std::map<std::string, int64_t> want;
    if (first <= 7) want["a2"] = 2;
    const int64_t a1 = first <= max - 13 ? 4 : first <= max - 6 ? 3 : 1;
    want["a1"] = a1;
    EXPECT_EQ(got, want) << "from day " << first;
  }
  EXPECT_EQ(d.SumDismissals(0, max, "").size(), 0u);
  EXPECT_EQ(d.SumFunnel(0, max).size(), 0u);
}

// Found by tests/fuzz (fuzz_records, UBSan): stored counters are untrusted;
// adding two huge ones was a signed overflow. Sums now wrap, defined.
TEST(Derived, HugeStoredCountersWrapInsteadOfOverflowing) {
  Derived d;
  const int64_t big = INT64_MAX - 1;
  for (int i = 0; i < 2; ++i) {
    d.Apply(StatsKey("a1", "evaluation"), One(7, big));
    d.Apply(AggregateKey(5, "evaluation", "", "a1"), One(7, big));
    d.Apply(FunnelKey(5, "evaluation", true), One(0, big));
  }
  const int64_t wrapped = WrapAdd(big, big);
  EXPECT_EQ(wrapped, -4);
  const auto sums = d.SumAssets(0, 10, "", "");
  ASSERT_EQ(sums.by_asset.size(), 1u);
  EXPECT_EQ(sums.by_asset[0].second[7], wrapped);
  EXPECT_EQ(d.SumFunnel(0, 10).begin()->second[0], wrapped);
}

TEST(Derived, EnumerationGivesBackWhatWasAppliedAndDifferencesAreCounted) {
  Derived a, b;
  std::map<std::string, Counters> applied;
  auto apply = [&](const std::string& key, const Counters& c) {
    a.Apply(key, c);
    b.Apply(key, c);
    for (size_t i = 0; i < c.size(); ++i) applied[key][i] += c[i];
  };
  apply(AggregateKey(20000, "evaluation", "", "zh-price-01"), One(0, 3));
  apply(AggregateKey(20000, "evaluation", "rep-1", "zh-price-01"), One(0, 3));
  apply(AggregateKey(20001, "", "", ""), One(4));  // a lead closed
  apply(DismissalKey(20000, "evaluation", "zh-price-01", "客户已经看过"), One(0, 2));
  apply(FunnelKey(20000, "evaluation", true), One(1));
  apply(StatsKey("zh-price-01", "evaluation"), One(1, 5));
  apply(StatsKey("zh-price-01", "evaluation", "price"), One(1, 2));
  a.ApplyLastUsed("zh-price-01", 1700000000000);
  b.ApplyLastUsed("zh-price-01", 1700000000000);
  std::map<std::string, Counters> seen;
  a.Enumerate([&](const std::string& k, const Counters& c) { seen[k] = c; }, [](const std::string&, int64_t) {});
  EXPECT_EQ(seen, applied);
  EXPECT_EQ(a.CountKeys(), applied.size());
  EXPECT_EQ(a.CountDifferences(b), 0u);
  EXPECT_EQ(a.StageTotals("evaluation").used, 5u);  // topic keys are not in the stage totals

  b.Apply(AggregateKey(20000, "evaluation", "", "zh-price-01"), One(0, -3));  // now zero: as if absent
  EXPECT_EQ(a.CountDifferences(b), 1u);
  EXPECT_EQ(b.CountDifferences(a), 1u);
  b.Apply(DismissalKey(20001, "evaluation", "en-roi-01", "too long"), One(0));  // a key a lacks
  b.ApplyLastUsed("zh-price-01", 1700000000001);
  EXPECT_EQ(a.CountDifferences(b), 3u);
}

// The ranking counters are held by ordinals: every stored key, odd ones
// included (an empty stage, an empty topic, a topic holding NULs), enumerates
// back byte for byte, reads back per asset, per batch and per stage, and two
// stores that learnt their names in different orders compare equal.
TEST(Derived, RankingCountersByOrdinalsKeepTheStoredKeys) {
  using namespace std::string_literals;
  const std::vector<std::pair<std::string, Counters>> keys = {
      {StatsKey("a1", "evaluation"), One(0, 4)},
      {StatsKey("a1", "evaluation", "price"), One(1, 2)},
      {StatsKey("a2", "evaluation"), One(1, 3)},
      {StatsKey("a2", "negotiation"), One(4, 1)},
      {StatsKey("a2", "evaluation", "timing"), One(3, 5)},
      {"a3\0"s, One(0, 7)},                   // no stage: not in any stage's totals
      {"a3\0evaluation\0"s, One(0, 11)},      // an empty topic: not the key without one
      {"a3\0evaluation\0x\0y"s, One(0, 13)},  // a topic holding a NUL
  };
  Derived a, b;
  std::map<std::string, Counters> applied;
  for (const auto& [key, c] : keys) {
    a.Apply(key, c);
    applied[key] = c;
  }
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) b.Apply(it->first, it->second);  // other ordinals
  std::map<std::string, Counters> seen;
  a.Enumerate([&](const std::string& k, const Counters& c) { seen[k] = c; }, [](const std::string&, int64_t) {});
  EXPECT_EQ(seen, applied);
  EXPECT_EQ(a.CountKeys(), keys.size());
  EXPECT_EQ(a.CountDifferences(b), 0u);
  EXPECT_EQ(b.CountDifferences(a), 0u);

  EXPECT_EQ(a.Stats("a1", "evaluation").shown, 4u);
  EXPECT_EQ(a.Stats("a1", "evaluation", "price").used, 2u);
  EXPECT_EQ(a.Stats("a1", "evaluation", "timing").used, 0u);
  EXPECT_EQ(a.Stats("a3", "evaluation").shown, 0u);
  EXPECT_EQ(a.Stats("a3", "evaluation", "x\0y"s).shown, 13u);
  EXPECT_EQ(a.Stats("a3", "").shown, 7u);
  EXPECT_EQ(a.StageTotals("evaluation").shown, 4u);
  EXPECT_EQ(a.StageTotals("evaluation").used, 3u);
  EXPECT_EQ(a.StageTotals("negotiation").won, 1u);
  EXPECT_EQ(a.StageTotals("").shown, 0u);
  EXPECT_EQ(a.StageTotals("closing").shown, 0u);

  const std::vector<std::string_view> assets = {"a2", "unknown", "a1"};
  std::vector<AssetStageStats> at_stage(3), at_topic(3);
  a.RankingStats("evaluation", "timing", assets.data(), 3, at_stage.data(), at_topic.data());
  EXPECT_EQ(at_stage[0].used, 3u);
  EXPECT_EQ(at_topic[0].dismissed, 5u);
  EXPECT_EQ(at_stage[1].shown + at_stage[1].used + at_topic[1].shown, 0u);
  EXPECT_EQ(at_stage[2].shown, 4u);
  EXPECT_EQ(at_topic[2].used, 0u);  // a1 has counters for "price" only

  b.Apply(StatsKey("a1", "evaluation", "price"), One(1, -2));  // now zero: as if absent
  EXPECT_EQ(a.CountDifferences(b), 1u);
  EXPECT_EQ(b.CountDifferences(a), 1u);
  b.Apply(StatsKey("a4", "evaluation", "price"), One(1));  // names a lacks
  EXPECT_EQ(a.CountDifferences(b), 2u);
}

// The ranking reads its counters from arrays by asset ordinal, with each
// asset's ordinal remembered by its reader: they must say what the map of
// stored keys says, through deltas in any order (taken back too), assets that
// get counters after the ordinals were remembered as absent, copies, a
// checkpoint, and a Derived that numbers the assets differently.
TEST(Derived, TheRankingsArraysByOrdinalSayWhatTheKeysSay) {
  std::mt19937 rng(7);
  const std::vector<std::string> stages = {"awareness", "evaluation", "negotiation"};
  const std::vector<std::string> topics = {"", "price", "timing"};
  std::vector<std::string> assets;
  for (int i = 0; i < 60; ++i) assets.push_back(std::string("asset-").append(std::to_string(i)));
  struct Delta {
    size_t asset, stage, topic;
    int field;
    int64_t cents;
  };
  auto deltas = [&](size_t first, size_t last) {  // assets [first, last)
    std::vector<Delta> out;
    for (int i = 0; i < 400; ++i) {
      out.push_back({first + rng() % (last - first), rng() % stages.size(), rng() % topics.size(), int(rng() % 7),
                     int64_t(rng() % 1000)});
    }
    return out;
  };
  std::map<std::string, Counters> want;  // brute force, by stored key
  // Adds each delta (the writer's typed buffer, in a few calls) and takes
  // every third back (sign -1: a lead re-derived), shuffled.
  auto apply = [&](Derived& d, std::vector<Delta> log) {
    std::vector<std::pair<Delta, int>> ops;
    for (size_t i = 0; i < log.size(); ++i) {
      ops.push_back({log[i], 1});
      if (i % 3 == 0) ops.push_back({log[i], -1});
    }
    std::shuffle(ops.begin(), ops.end(), rng);
    DeltaBuffer buf;
    for (size_t i = 0; i < ops.size(); ++i) {
      const auto& [x, sign] = ops[i];
      buf.sign = sign;
      buf.Ranking(assets[x.asset], stages[x.stage], topics[x.topic], x.field, x.cents);
      if (i % 50 == 49 || i + 1 == ops.size()) {
        d.Apply(buf);
        buf.Clear();
      }
      Counters c{};
      c[size_t(x.field)] = sign;
      c[7] = sign * x.cents;
      Plus(&want[StatsKey(assets[x.asset], stages[x.stage])], c);
      if (!topics[x.topic].empty()) Plus(&want[StatsKey(assets[x.asset], stages[x.stage], topics[x.topic])], c);
    }
  };
  std::deque<Derived::OrdinalCache> caches;  // as the index's display records keep them
  for (size_t i = 0; i < assets.size(); ++i) caches.emplace_back(0);
  std::vector<Derived::OrdinalCache*> cache_of;
  for (auto& c : caches) cache_of.push_back(&c);
  const std::vector<std::string_view> names(assets.begin(), assets.end());
  auto show = [](const AssetStageStats& s) {
    return std::to_string(s.shown) + " " + std::to_string(s.used) + " " + std::to_string(s.viewed) + " " +
           std::to_string(s.dismissed) + " " + std::to_string(s.won) + " " + std::to_string(s.lost) + " " +
           std::to_string(s.advanced) + " " + std::to_string(s.won_amount);
  };
  auto check = [&](const Derived& d, const char* what) {
    SCOPED_TRACE(what);
    std::map<std::string, Counters> keys, nonzero;
    d.EnumerateUndated([&](const std::string& key, const Counters& c) { keys[key] = c; },
                       [](const std::string&, int64_t) {});
    for (const auto& [key, c] : want) {
      if (!IsZero(c)) nonzero[key] = c;
    }
    EXPECT_EQ(keys, nonzero);
    EXPECT_TRUE(d.DenseRankingMatchesKeys());
    for (int pass = 0; pass < 2; ++pass) {  // the first may fill the caches, the second reads them
      for (const std::string& stage : stages) {
        for (const std::string& topic : {std::string(), std::string("price"), std::string("timing"), std::string("x")}) {
          std::vector<AssetStageStats> at_stage(assets.size()), at_topic(assets.size());
          d.RankingStats(stage, topic, names.data(), cache_of.data(), assets.size(), at_stage.data(), at_topic.data());
          for (size_t i = 0; i < assets.size(); ++i) {
            AssetStageStats s, t;
            if (auto it = want.find(StatsKey(assets[i], stage)); it != want.end()) AddTo(&s, it->second);
            if (auto it = want.find(StatsKey(assets[i], stage, topic)); !topic.empty() && it != want.end()) {
              AddTo(&t, it->second);
            }
            EXPECT_EQ(show(at_stage[i]), show(s)) << assets[i] << " at " << stage;
            if (!topic.empty()) {
              EXPECT_EQ(show(at_topic[i]), show(t)) << assets[i] << " at " << stage << " for " << topic;
            }
          }
        }
      }
    }
  };
  Derived d;
  apply(d, deltas(0, 30));
  check(d, "the first 30 assets; the others remembered as absent");
  apply(d, deltas(20, 60));
  check(d, "then the others get counters");
  Derived copy = d;
  check(copy, "a copy");
  check(d, "the original again");
  std::string bytes;
  d.EncodeCheckpoint(42, &bytes);
  Derived loaded;
  uint64_t seq = 0;
  ASSERT_TRUE(loaded.DecodeCheckpoint(bytes, &seq).ok());
  check(loaded, "its checkpoint");
  // The same counters with the assets numbered the other way round: an
  // ordinal remembered from the others would read the wrong asset.
  Derived reversed;
  for (auto it = want.rbegin(); it != want.rend(); ++it) reversed.Apply(it->first, it->second);
  check(reversed, "the keys applied in reverse order");
  check(d, "and the original");
}

TEST(Derived, DismissalsSumAlikeWithFewAndWithManyReasons) {
  for (const int reasons : {3, 2100}) {  // 2100 x 2100 assets is past the dense limit
    Derived d;
    std::map<std::pair<std::string, std::string>, uint64_t> want;
    for (int i = 0; i < 2100; ++i) {
      std::string asset = "a", reason = "reason ";
      asset.append(std::to_string(i));
      reason.append(std::to_string(i % reasons));
      const uint32_t day = 100 + uint32_t(i % 9);
      d.Apply(DismissalKey(day, i % 2 ? "evaluation" : "negotiation", asset, reason), One(0, 1 + i % 3));
      if (day <= 105 && i % 2) want[{asset, reason}] += uint64_t(1 + i % 3);
    }
    std::map<std::pair<std::string, std::string>, uint64_t> got;
    for (const auto& x : d.SumDismissals(0, 105, "evaluation")) got[{x.asset, x.reason}] += x.count;
    EXPECT_EQ(got, want) << reasons << " reasons";
    EXPECT_FALSE(want.empty());
  }
}

// The org's own words: minimum support (in uses), decay after the use's week,
// the share of a term, and the stored keys giving back the same counts.
TEST(Derived, PhraseWeightsNeedTheMinimumSupportDecayAndShareTheTerm) {
  Derived d;
  DeltaBuffer b;
  const uint32_t week = 700;  // a week's first day (divisible by 7)
  for (int i = 0; i < 3; ++i) b.Phrase(week, "pencil", "price");
  for (int i = 0; i < 2; ++i) b.Phrase(week, "sharpen", "price");
  b.Phrase(week, "pencil", "case");
  d.Apply(b);
  std::vector<Derived::PhraseWeight> w;
  // Within the week: pencil has 3 uses for price (share 3/4), 1 for case
  // (below the minimum); sharpen has 2 (below it).
  d.PhraseWeights({"sharpen", "pencil", "unknown"}, week + 6, 90, 3, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].asset, "price");
  EXPECT_DOUBLE_EQ(w[0].weight, 3.0 * 0.75);
  EXPECT_EQ(w[0].term, 1u);
  d.PhraseWeights({"sharpen"}, week, 90, 2, &w);  // a lower minimum admits it
  ASSERT_EQ(w.size(), 1u);
  EXPECT_DOUBLE_EQ(w[0].weight, 2.0);
  // A half-life after the week's end every use weighs half: the share stays.
  d.PhraseWeights({"pencil"}, week + 6 + 90, 90, 3, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NEAR(w[0].weight, 1.5 * 0.75, 1e-12);
  // Taken back (a lead re-derived): below the minimum again.
  DeltaBuffer out;
  out.sign = -1;
  out.Phrase(week, "pencil", "price");
  d.Apply(out);
  d.PhraseWeights({"pencil"}, week, 90, 3, &w);
  EXPECT_TRUE(w.empty());
  // What a save writes and a start loads gives the same counts and report.
  Derived loaded;
  d.Enumerate([&](const std::string& key, const Counters& c) { loaded.Apply(key, c); },
              [&](const std::string&, int64_t) {});
  EXPECT_EQ(loaded.CountDifferences(d), 0u);
  EXPECT_EQ(d.CountDifferences(loaded), 0u);
  auto phrases = loaded.SumPhrases(week, 90);
  std::map<std::pair<std::string, std::string>, uint64_t> uses;
  for (const auto& p : phrases) uses[{p.asset, p.term}] = p.uses;
  EXPECT_EQ(uses, (std::map<std::pair<std::string, std::string>, uint64_t>{
                      {{"price", "pencil"}, 2}, {{"price", "sharpen"}, 2}, {{"case", "pencil"}, 1}}));
  // And the changed keys a save takes are exactly the phrase keys, with their values.
  auto changed = d.TakeChanged();
  std::map<std::string, int64_t> keys;
  changed.Keys([&](const std::string& key, const Counters& c) { keys[key] = c[0]; }, [](const std::string&, int64_t) {});
  EXPECT_EQ(keys, (std::map<std::string, int64_t>{{PhraseKey(week, "pencil", "price"), 2},
                                                  {PhraseKey(week, "sharpen", "price"), 2},
                                                  {PhraseKey(week, "pencil", "case"), 1}}));
}

// A request reads each term's summary (its strongest assets as of the day):
// a new use on the same day must show at once, and a term with more assets
// than the cap counts only its strongest.
TEST(Derived, PhraseWeightsFollowNewUsesOnTheSameDayAndKeepATermsStrongest) {
  Derived d;
  const uint32_t week = 700;
  DeltaBuffer b;
  for (int i = 0; i < 3; ++i) b.Phrase(week, "pencil", "price");
  d.Apply(b);
  std::vector<Derived::PhraseWeight> w;
  d.PhraseWeights({"pencil"}, week, 90, 3, &w);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_DOUBLE_EQ(w[0].weight, 3.0);
  DeltaBuffer more;
  for (int i = 0; i < 3; ++i) more.Phrase(week, "pencil", "case");
  more.Phrase(week, "pencil", "price");
  d.Apply(more);
  d.PhraseWeights({"pencil"}, week, 90, 3, &w);  // same day, same options
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].asset, "price");
  EXPECT_DOUBLE_EQ(w[0].weight, 4.0 * 4.0 / 7.0);
  EXPECT_EQ(w[1].asset, "case");
  EXPECT_DOUBLE_EQ(w[1].weight, 3.0 * 3.0 / 7.0);

  // One more asset than the cap, asset i with 3 + i uses: the weakest goes.
  Derived many;
  DeltaBuffer m;
  const int n = int(Derived::kPhraseTop) + 1;
  auto name = [](int i) {
    std::string s = "a";
    s += std::to_string(i);
    return s;
  };
  for (int i = 0; i < n; ++i) {
    for (int u = 0; u < 3 + i; ++u) m.Phrase(week, "budget", name(i));
  }
  many.Apply(m);
  many.PhraseWeights({"budget"}, week, 90, 3, &w);
  ASSERT_EQ(w.size(), Derived::kPhraseTop);
  EXPECT_EQ(w.front().asset, name(n - 1));
  EXPECT_TRUE(std::none_of(w.begin(), w.end(), [](const Derived::PhraseWeight& x) { return x.asset == "a0"; }));
}

}  // namespace
}  // namespace playbook

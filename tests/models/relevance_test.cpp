// Retrieval quality of the built-in embedder on the labelled set in
// data/relevance (see data/relevance/README.md): assets are embedded with
// ComposeAssetText, each query ranks all assets by dot product, and we measure
// top-1, top-3 (a relevant asset among the first three) and MRR per language.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "playbook/models/lexical_embedder.h"

namespace playbook::models {
namespace {

struct Asset {
  std::string id, title, body, language, type;
  std::vector<std::string> stages, tags;
};

struct Query {
  std::string text, language, split;  // "dev", "holdout1", "holdout2": see data/relevance/README.md
  std::vector<std::string> relevant;
};

struct Metrics {
  int n = 0;
  double top1 = 0, top3 = 0, mrr = 0;  // fractions / mean
  std::vector<std::string> misses;     // dev queries without a relevant asset in the top 3
};

std::vector<nlohmann::json> ReadJsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<nlohmann::json> out;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& e) {
      ADD_FAILURE() << path << ":" << line_no << ": " << e.what();
    }
  }
  return out;
}

const std::string kDir = std::string(PLAYBOOK_DATA_DIR) + "/relevance";

std::vector<Asset> LoadAssets() {
  std::vector<Asset> assets;
  for (const auto& j : ReadJsonl(kDir + "/assets.jsonl")) {
    Asset a;
    a.id = j.at("id").get<std::string>();
    a.title = j.at("title").get<std::string>();
    a.body = j.at("body").get<std::string>();
    a.language = j.at("language").get<std::string>();
    a.type = j.at("type").get<std::string>();
    a.stages = j.at("stages").get<std::vector<std::string>>();
    a.tags = j.at("tags").get<std::vector<std::string>>();
    assets.push_back(std::move(a));
  }
  return assets;
}

std::vector<Query> LoadQueries() {
  std::vector<Query> queries;
  for (const auto& j : ReadJsonl(kDir + "/queries.jsonl")) {
    Query q;
    q.text = j.at("query").get<std::string>();
    q.language = j.at("language").get<std::string>();
    q.split = j.value("split", "dev");
    q.relevant = j.at("relevant").get<std::vector<std::string>>();
    queries.push_back(std::move(q));
  }
  return queries;
}

std::unique_ptr<LexicalEmbedder> MakeEmbedder(std::string lexicon) {
  LexicalEmbedderOptions o;
  o.lexicon = std::move(lexicon);
  auto r = LexicalEmbedder::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// Metrics per language ("zh", "en"), and per "language/split" ("zh/holdout").
std::map<std::string, Metrics> Evaluate(const LocalEmbedder& e, const std::vector<Asset>& assets,
                                        const std::vector<Query>& queries) {
  const size_t dim = e.Dimension();
  std::vector<float> matrix(assets.size() * dim);
  for (size_t i = 0; i < assets.size(); ++i)
    e.Embed(ComposeAssetText(assets[i].title, assets[i].body, assets[i].tags), &matrix[i * dim]);

  std::map<std::string, Metrics> m;
  std::vector<float> qv(dim);
  for (const Query& q : queries) {
    e.Embed(q.text, qv.data());
    std::vector<std::pair<double, size_t>> scored;
    for (size_t i = 0; i < assets.size(); ++i) {
      double s = 0;
      for (size_t d = 0; d < dim; ++d) s += double{qv[d]} * matrix[i * dim + d];
      scored.emplace_back(-s, i);  // ascending = best first; ties by asset order
    }
    std::sort(scored.begin(), scored.end());
    const std::set<std::string> relevant(q.relevant.begin(), q.relevant.end());
    size_t rank = 0;  // 1-based rank of the first relevant asset
    for (size_t r = 0; r < scored.size(); ++r) {
      if (relevant.count(assets[scored[r].second].id)) {
        rank = r + 1;
        break;
      }
    }
    for (const std::string& key : {q.language, q.language + "/" + q.split}) {
      Metrics& x = m[key];
      ++x.n;
      if (rank == 1) x.top1 += 1;
      if (rank >= 1 && rank <= 3) {
        x.top3 += 1;
      } else if (key == q.language && q.split == "dev") {  // held-out misses are measured, never shown
        std::ostringstream miss;
        miss << "[" << q.split << "] " << q.text << "  -> rank " << rank << "; got "
             << assets[scored[0].second].id << ", " << assets[scored[1].second].id << ", "
             << assets[scored[2].second].id;
        x.misses.push_back(miss.str());
      }
      if (rank > 0) x.mrr += 1.0 / static_cast<double>(rank);
    }
  }
  for (auto& [lang, x] : m) {
    if (x.n == 0) continue;
    x.top1 /= x.n;
    x.top3 /= x.n;
    x.mrr /= x.n;
  }
  return m;
}

void Report(const std::string& label, const std::map<std::string, Metrics>& m,
            bool show_misses) {
  for (const auto& [lang, x] : m) {
    char line[200];
    std::snprintf(line, sizeof line, "[ relevance ] %-12s %-10s n=%2d  top-1 %.3f  top-3 %.3f  MRR %.3f",
                  label.c_str(), lang.c_str(), x.n, x.top1, x.top3, x.mrr);
    std::cout << line << "\n";
    if (show_misses) {
      for (const auto& miss : x.misses) std::cout << "                miss: " << miss << "\n";
    }
    std::string key = label + "_" + lang;
    std::replace(key.begin(), key.end(), '/', '_');
    ::testing::Test::RecordProperty(key + "_top1", std::to_string(x.top1));
    ::testing::Test::RecordProperty(key + "_top3", std::to_string(x.top3));
    ::testing::Test::RecordProperty(key + "_mrr", std::to_string(x.mrr));
  }
}

TEST(RelevanceSet, IsWellFormed) {
  const auto assets = LoadAssets();
  const auto queries = LoadQueries();
  ASSERT_GE(assets.size(), 40u);
  ASSERT_LE(assets.size(), 70u);
  const std::set<std::string> stages = {"awareness", "interest", "consideration", "evaluation",
                                        "negotiation"};
  std::set<std::string> ids;
  std::map<std::string, int> asset_langs, query_langs;
  for (const auto& a : assets) {
    EXPECT_TRUE(ids.insert(a.id).second) << "duplicate asset id " << a.id;
    EXPECT_TRUE(a.language == "zh" || a.language == "en") << a.id;
    EXPECT_FALSE(a.title.empty()) << a.id;
    EXPECT_FALSE(a.body.empty()) << a.id;
    EXPECT_FALSE(a.type.empty()) << a.id;
    EXPECT_FALSE(a.stages.empty()) << a.id;
    for (const auto& s : a.stages) EXPECT_TRUE(stages.count(s)) << a.id << ": stage " << s;
    ++asset_langs[a.language];
  }
  EXPECT_GE(asset_langs["zh"], 20);
  EXPECT_GE(asset_langs["en"], 20);
  for (const auto& q : queries) {
    EXPECT_TRUE(q.language == "zh" || q.language == "en") << q.text;
    EXPECT_TRUE(q.split == "dev" || q.split == "holdout1" || q.split == "holdout2") << q.text;
    EXPECT_FALSE(q.relevant.empty()) << q.text;
    for (const auto& r : q.relevant) EXPECT_TRUE(ids.count(r)) << q.text << ": unknown asset " << r;
    ++query_langs[q.language];
  }
  EXPECT_GE(query_langs["zh"], 25);
  EXPECT_GE(query_langs["en"], 25);
}

TEST(Relevance, DefaultEmbedderFindsARelevantAssetInTopThree) {
  const auto assets = LoadAssets();
  const auto queries = LoadQueries();
  ASSERT_FALSE(assets.empty());
  auto e = MakeEmbedder(std::string(DefaultLexicon()));
  ASSERT_NE(e, nullptr);
  const auto m = Evaluate(*e, assets, queries);
  Report("lexicon", m, /*show_misses=*/true);
  ASSERT_EQ(m.count("zh"), 1u);
  ASSERT_EQ(m.count("en"), 1u);
  EXPECT_GE(m.at("zh").top3, 0.80);
  EXPECT_GE(m.at("en").top3, 0.80);
}

TEST(Relevance, LexiconBeatsLexicalOnly) {
  const auto assets = LoadAssets();
  const auto queries = LoadQueries();
  ASSERT_FALSE(assets.empty());
  auto with = MakeEmbedder(std::string(DefaultLexicon()));
  auto without = MakeEmbedder("");
  ASSERT_TRUE(with && without);
  const auto a = Evaluate(*with, assets, queries);
  const auto b = Evaluate(*without, assets, queries);
  Report("lexical-only", b, /*show_misses=*/false);
  for (const char* lang : {"zh", "en"}) {
    ASSERT_EQ(a.count(lang), 1u);
    ASSERT_EQ(b.count(lang), 1u);
    EXPECT_GT(a.at(lang).mrr, b.at(lang).mrr) << lang;
    EXPECT_GE(a.at(lang).top3, b.at(lang).top3) << lang;
  }
}

}  // namespace
}  // namespace playbook::models

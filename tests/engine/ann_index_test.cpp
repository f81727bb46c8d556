// The HNSW adapter (engine/src/ann_index.cpp): its graph computes distances
// with simd::Dot through a storage of its own, yet reads and writes standard
// faiss IndexHNSWFlat files, so index files saved before it still load.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <typeinfo>
#include <vector>

#include "asset_index.h"

namespace playbook {
namespace {

constexpr uint32_t kDim = 52;  // not a multiple of 16: the kernels' tails run too
constexpr size_t kRows = 3000;
constexpr size_t kK = 10;

std::vector<float> UnitRows(size_t n, uint32_t d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (uint32_t j = 0; j < d; ++j) s += double(x[i * d + j] = g(rng)) * x[i * d + j];
    for (uint32_t j = 0; j < d; ++j) x[i * d + j] = float(x[i * d + j] / std::sqrt(s));
  }
  return x;
}

double DotRef(const float* a, const float* b, uint32_t d) {
  double s = 0;
  for (uint32_t j = 0; j < d; ++j) s += double(a[j]) * b[j];
  return s;
}

IndexOptions Options() {
  IndexOptions o;
  o.hnsw_m = 16;
  o.hnsw_ef_construction = 64;
  o.hnsw_ef_search = 64;
  return o;
}

class AnnIndexTest : public ::testing::Test {
 protected:
  std::vector<std::pair<float, uint32_t>> Search(const AnnIndex& index, const float* q) const {
    std::vector<std::pair<float, uint32_t>> out;
    index.Search(q, kK, reinterpret_cast<const uint8_t*>(all_.data()), all_.size(), 64, &out);
    return out;
  }
  std::vector<uint32_t> Labels(const AnnIndex& index, const float* q) const {
    std::vector<uint32_t> l;
    for (const auto& hit : Search(index, q)) l.push_back(hit.second);
    return l;
  }
  // The k rows nearest to q, by a double-precision scan.
  std::set<uint32_t> TrueTopK(const float* q) const {
    std::vector<std::pair<double, uint32_t>> truth;
    for (uint32_t i = 0; i < kRows; ++i) truth.emplace_back(DotRef(q, rows_.data() + size_t(i) * kDim, kDim), i);
    std::partial_sort(truth.begin(), truth.begin() + kK, truth.end(), std::greater<>());
    std::set<uint32_t> want;
    for (size_t i = 0; i < kK; ++i) want.insert(truth[i].second);
    return want;
  }
  std::vector<float> rows_ = UnitRows(kRows, kDim, 1);
  std::vector<float> queries_ = UnitRows(100, kDim, 2);
  std::vector<uint8_t> all_ = std::vector<uint8_t>((kRows + 7) / 8, 0xff);
};

TEST_F(AnnIndexTest, TheGraphFindsTheExactNeighboursWithTheirTrueScores) {
  auto index = AnnIndex::Build(rows_.data(), kRows, kDim, Options(), nullptr);
  ASSERT_NE(index, nullptr);
  size_t found = 0;
  for (size_t q = 0; q < 100; ++q) {
    const float* query = queries_.data() + q * kDim;
    const std::set<uint32_t> want = TrueTopK(query);
    const auto hits = Search(*index, query);
    ASSERT_EQ(hits.size(), kK);
    for (size_t i = 0; i < hits.size(); ++i) {
      // Similarities (not faiss's negated distances), best first, each the
      // row's true inner product with the query.
      EXPECT_NEAR(hits[i].first, DotRef(query, rows_.data() + size_t(hits[i].second) * kDim, kDim), 1e-5);
      if (i > 0) {
        EXPECT_GE(hits[i - 1].first, hits[i].first);
      }
      found += want.count(hits[i].second);
    }
  }
  EXPECT_GE(double(found) / (100.0 * kK), 0.95);
}

TEST_F(AnnIndexTest, WhatItWritesIsAStandardIndexHNSWFlatThatSearchesAlike) {
  auto index = AnnIndex::Build(rows_.data(), kRows, kDim, Options(), nullptr);
  ASSERT_NE(index, nullptr);
  const std::vector<uint8_t> blob = index->Serialize();
  faiss::VectorIOReader r;
  r.data = blob;
  std::unique_ptr<faiss::Index> plain(faiss::read_index(&r));
  auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(plain.get());
  ASSERT_NE(hnsw, nullptr);
  ASSERT_NE(hnsw->storage, nullptr);
  EXPECT_EQ(typeid(*hnsw->storage), typeid(faiss::IndexFlatIP));
  EXPECT_EQ(hnsw->ntotal, faiss::Index::idx_t(kRows));
  // Read back through the adapter: the same graph, the same answers.
  auto back = AnnIndex::Deserialize(blob.data(), blob.size(), kDim);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value()->size(), kRows);
  for (size_t q = 0; q < 100; ++q) {
    const float* query = queries_.data() + q * kDim;
    EXPECT_EQ(Labels(*back.value(), query), Labels(*index, query)) << "query " << q;
  }
}

TEST_F(AnnIndexTest, AGraphWrittenByPlainFaissLoadsAndSearchesAsFaissDoes) {
  // What index files saved before the SIMD storage hold.
  faiss::IndexHNSWFlat plain(int(kDim), 16, faiss::METRIC_INNER_PRODUCT);
  plain.hnsw.efConstruction = 64;
  plain.hnsw.efSearch = 64;
  plain.add(faiss::Index::idx_t(kRows), rows_.data());
  faiss::VectorIOWriter w;
  faiss::write_index(&plain, &w);
  auto loaded = AnnIndex::Deserialize(w.data.data(), w.data.size(), kDim);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  size_t same = 0;
  for (size_t q = 0; q < 100; ++q) {
    const float* query = queries_.data() + q * kDim;
    std::vector<float> d(kK);
    std::vector<faiss::Index::idx_t> l(kK);
    plain.search(1, query, faiss::Index::idx_t(kK), d.data(), l.data());
    const auto hits = Search(*loaded.value(), query);
    ASSERT_EQ(hits.size(), kK);
    for (size_t i = 0; i < kK; ++i) {
      same += std::count(l.begin(), l.end(), faiss::Index::idx_t(hits[i].second));
      EXPECT_NEAR(hits[i].first, DotRef(query, rows_.data() + size_t(hits[i].second) * kDim, kDim), 1e-5);
    }
  }
  // The same graph walked with distances that differ in the last bits: a
  // near tie may swap an item in or out, nothing more.
  EXPECT_GE(double(same) / (100.0 * kK), 0.99);
}

TEST_F(AnnIndexTest, ExtendingAddsRowsToACopyAndLeavesTheOriginalAsItWas) {
  auto first = AnnIndex::Build(rows_.data(), 2000, kDim, Options(), nullptr);
  ASSERT_NE(first, nullptr);
  std::vector<std::vector<uint32_t>> before;
  for (size_t q = 0; q < 20; ++q) before.push_back(Labels(*first, queries_.data() + q * kDim));
  auto grown = first->Extend(rows_.data() + 2000 * kDim, kRows - 2000, nullptr);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(first->size(), 2000u);
  EXPECT_EQ(grown->size(), kRows);
  for (size_t q = 0; q < 20; ++q) EXPECT_EQ(Labels(*first, queries_.data() + q * kDim), before[q]);
  // The grown graph finds rows of both parts, as a graph built at once would.
  size_t found = 0, late = 0;
  for (size_t q = 0; q < 100; ++q) {
    const float* query = queries_.data() + q * kDim;
    const std::set<uint32_t> want = TrueTopK(query);
    for (uint32_t id : Labels(*grown, query)) {
      found += want.count(id);
      late += id >= 2000;
    }
  }
  EXPECT_GE(double(found) / (100.0 * kK), 0.95);
  EXPECT_GT(late, 0u);
  // Cancelled: nothing.
  EXPECT_EQ(first->Extend(rows_.data() + 2000 * kDim, kRows - 2000, [](size_t) { return false; }), nullptr);
  // It is written and read like any graph.
  const std::vector<uint8_t> blob = grown->Serialize();
  auto back = AnnIndex::Deserialize(blob.data(), blob.size(), kDim);
  ASSERT_TRUE(back.ok());
  for (size_t q = 0; q < 20; ++q) {
    EXPECT_EQ(Labels(*back.value(), queries_.data() + q * kDim), Labels(*grown, queries_.data() + q * kDim));
  }
}

// Every hit of `index` for the first n queries carries the true inner product
// of the query with rows[label]: the graph reads the rows it was given, even
// after other graphs were grown over the same rows.
void ExpectTrueScores(const AnnIndex& index, const std::vector<float>& rows, const std::vector<float>& queries,
                      size_t n) {
  const std::vector<uint8_t> all((index.size() + 7) / 8, 0xff);
  for (size_t q = 0; q < n; ++q) {
    const float* query = queries.data() + q * kDim;
    std::vector<std::pair<float, uint32_t>> hits;
    index.Search(query, kK, all.data(), all.size(), 64, &hits);
    ASSERT_EQ(hits.size(), kK);
    for (const auto& [score, label] : hits) {
      ASSERT_LT(size_t(label), index.size());
      EXPECT_NEAR(score, DotRef(query, rows.data() + size_t(label) * kDim, kDim), 1e-5) << "query " << q;
    }
  }
}

TEST_F(AnnIndexTest, ExtensionsShareTheRowsYetEveryGraphKeepsReadingItsOwn) {
  // Past the 4,096 rows of a chunk, so that extensions cross chunk ends.
  const std::vector<float> big = UnitRows(6000, kDim, 3);
  auto a = AnnIndex::Build(big.data(), 1000, kDim, Options(), nullptr);
  ASSERT_NE(a, nullptr);
  auto b = a->Extend(big.data() + 1000 * kDim, 3500, nullptr);
  ASSERT_NE(b, nullptr);
  // A cancelled extension leaves nothing behind: the next one grows from b.
  EXPECT_EQ(b->Extend(queries_.data(), 50, [](size_t) { return false; }), nullptr);
  auto c = b->Extend(big.data() + 4500 * kDim, 1500, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->size(), 6000u);
  ExpectTrueScores(*a, big, queries_, 30);
  ExpectTrueScores(*b, big, queries_, 30);
  ExpectTrueScores(*c, big, queries_, 30);
  // A second extension of a graph another one already grew past gets rows
  // of its own: b and c keep theirs.
  std::vector<float> other(big.begin(), big.begin() + 1000 * kDim);
  const std::vector<float> tail = UnitRows(2000, kDim, 4);
  other.insert(other.end(), tail.begin(), tail.end());
  auto d = a->Extend(tail.data(), 2000, nullptr);
  ASSERT_NE(d, nullptr);
  ExpectTrueScores(*d, other, queries_, 30);
  ExpectTrueScores(*b, big, queries_, 30);
  ExpectTrueScores(*c, big, queries_, 30);
  // A graph read back (its rows in one block) grows in chunks after them.
  const std::vector<uint8_t> blob = b->Serialize();
  auto back = AnnIndex::Deserialize(blob.data(), blob.size(), kDim);
  ASSERT_TRUE(back.ok());
  auto grown = back.value()->Extend(big.data() + 4500 * kDim, 1500, nullptr);
  ASSERT_NE(grown, nullptr);
  ExpectTrueScores(*grown, big, queries_, 30);
  const std::vector<uint8_t> again = grown->Serialize();
  auto back2 = AnnIndex::Deserialize(again.data(), again.size(), kDim);
  ASSERT_TRUE(back2.ok());
  for (size_t q = 0; q < 20; ++q) {
    std::vector<std::pair<float, uint32_t>> x, y;
    const std::vector<uint8_t> all((6000 + 7) / 8, 0xff);
    grown->Search(queries_.data() + q * kDim, kK, all.data(), all.size(), 64, &x);
    back2.value()->Search(queries_.data() + q * kDim, kK, all.data(), all.size(), 64, &y);
    EXPECT_EQ(x, y) << "query " << q;
  }
}

TEST_F(AnnIndexTest, SearchesOfTheGraphInServiceStayTheSameWhileItIsExtended) {
  const std::vector<float> big = UnitRows(6000, kDim, 5);
  auto serving = AnnIndex::Build(big.data(), 2000, kDim, Options(), nullptr);
  ASSERT_NE(serving, nullptr);
  const std::vector<uint8_t> all((2000 + 7) / 8, 0xff);
  std::vector<std::vector<std::pair<float, uint32_t>>> want(20);
  for (size_t q = 0; q < 20; ++q) serving->Search(queries_.data() + q * kDim, kK, all.data(), all.size(), 64, &want[q]);
  std::atomic<bool> done{false};
  size_t differing = 0, rounds = 0;
  std::thread reader([&] {
    while (!done.load()) {
      for (size_t q = 0; q < 20; ++q) {
        std::vector<std::pair<float, uint32_t>> hits;
        serving->Search(queries_.data() + q * kDim, kK, all.data(), all.size(), 64, &hits);
        differing += hits != want[q];
      }
      ++rounds;
    }
  });
  // The build thread's way: each extension grows from the previous one.
  std::unique_ptr<AnnIndex> latest = serving->Extend(big.data() + 2000 * kDim, 2000, nullptr);
  for (size_t from = 4000; latest != nullptr && from < 6000; from += 1000) {
    latest = latest->Extend(big.data() + from * kDim, 1000, nullptr);
  }
  done = true;
  reader.join();
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->size(), 6000u);
  EXPECT_GT(rounds, 0u);
  EXPECT_EQ(differing, 0u);
  ExpectTrueScores(*latest, big, queries_, 30);
}

TEST_F(AnnIndexTest, AGraphOfAnotherDimensionOrMetricIsRefused) {
  faiss::IndexHNSWFlat l2(int(kDim), 16, faiss::METRIC_L2);
  l2.add(10, rows_.data());
  faiss::VectorIOWriter w;
  faiss::write_index(&l2, &w);
  EXPECT_FALSE(AnnIndex::Deserialize(w.data.data(), w.data.size(), kDim).ok());
  auto index = AnnIndex::Build(rows_.data(), 10, kDim, Options(), nullptr);
  const std::vector<uint8_t> blob = index->Serialize();
  EXPECT_FALSE(AnnIndex::Deserialize(blob.data(), blob.size(), kDim + 1).ok());
}

}  // namespace
}  // namespace playbook

// The index file reader (engine/src/index_file.cpp) against damaged files
// whose checksum is right (so only the parsing stands between them and the
// index): what tests/fuzz/index_file_fuzz.cpp found, kept fixed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <algorithm>
#include <memory>
#include <vector>

#include "asset_index.h"

namespace playbook {
namespace {

uint64_t Checksum(const std::string& b) {
  return IndexFileChecksum(reinterpret_cast<const uint8_t*>(b.data()), b.size());
}

template <class T>
void Put(std::string* b, T v) {
  b->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutStr(std::string* b, const std::string& s) {
  Put(b, uint32_t(s.size()));
  b->append(s);
}

constexpr uint32_t kDim = 4;

// A file in the saved layout (index_file.cpp): header, one stage, one name,
// slots (live ones at that stage, of that type), vectors, checksum, no graph,
// checksum.
std::string File(const std::vector<std::pair<std::string, bool>>& slots, uint32_t count) {
  std::string b("PBIDX002", 8);
  Put(&b, kDim);
  Put(&b, uint64_t(3));
  PutStr(&b, "lexical-v1");
  Put(&b, uint32_t(1));
  PutStr(&b, "evaluation");
  Put(&b, uint32_t(1));
  PutStr(&b, "case_study");
  Put(&b, count);
  for (const auto& [id, alive] : slots) {
    PutStr(&b, id);
    b.push_back(alive ? 3 : 0);
    if (!alive) continue;
    Put(&b, uint64_t(1));  // stages
    Put(&b, uint32_t(1));  // type
    Put(&b, uint32_t(0));  // language
    Put(&b, uint32_t(0));  // tags
    PutStr(&b, "title of " + id);
    PutStr(&b, "");
    Put(&b, int64_t(0));
  }
  for (size_t i = 0; i < slots.size() * kDim; ++i) Put(&b, float(i % kDim == i / kDim % kDim ? 1 : 0));
  Put(&b, Checksum(b));
  Put(&b, uint64_t(0));
  Put(&b, Checksum(b));
  return b;
}

class IndexFile : public ::testing::Test {
 protected:
  void TearDown() override { std::remove(path_.c_str()); }
  Status Load(const std::string& bytes, AssetIndex* into = nullptr) {
    std::ofstream(path_, std::ios::binary) << bytes;
    AssetIndex index(kDim, {"evaluation"}, IndexOptions{});
    return (into ? into : &index)->Load(path_);
  }
  std::string path_ = ::testing::TempDir() + "index_file_test." + std::to_string(::getpid());
};

TEST_F(IndexFile, TheLayoutHereIsTheSavedOne) {
  AssetIndex index(kDim, {"evaluation"}, IndexOptions{});
  ASSERT_TRUE(Load(File({{"a1", true}, {"old", false}, {"a2", true}}, 3), &index).ok());
  EXPECT_EQ(index.live(), 2u);
  EXPECT_TRUE(index.IsLive("a2"));
  EXPECT_FALSE(index.IsLive("old"));
}

// The slots' fields are saved with them: a load needs no catalog to filter
// and to show them, and holds every filter as the saved index did.
TEST_F(IndexFile, FieldsRoundTrip) {
  const std::vector<std::string> stages = {"awareness", "evaluation", "negotiation"};
  AssetIndex saved(kDim, stages, IndexOptions{});
  auto fields = [](std::string id, std::vector<std::string> st, std::string type, std::string lang,
                   std::vector<std::string> tags, bool active) {
    SlotFields f;
    f.id = std::move(id);
    f.stages = std::move(st);
    f.type = std::move(type);
    f.language = std::move(lang);
    f.tags = std::move(tags);
    f.active = active;
    auto d = std::make_shared<AssetDisplay>();
    d->id = f.id;
    d->type = f.type;
    d->title = "title " + f.id;
    d->url = "https://example.com/" + f.id;
    d->created_ms = 1700000000123;
    f.display = std::move(d);
    return f;
  };
  const float v[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  saved.Upsert({fields("x", {"awareness", "negotiation"}, "case_study", "en", {"price", "risk"}, true),
                fields("y", {"evaluation"}, "whitepaper", "", {}, true),
                fields("z", {"evaluation"}, "case_study", "zh", {"risk"}, false),
                fields("gone", {"evaluation"}, "case_study", "zh", {}, true)},
               v);
  saved.Remove({"gone"});
  ASSERT_TRUE(saved.Save(path_, 9, "lexical-v1").ok());
  // Another stage order in the config: stages are matched by name.
  AssetIndex index(kDim, {"negotiation", "evaluation", "awareness"}, IndexOptions{});
  ASSERT_TRUE(index.Load(path_).ok());
  EXPECT_EQ(index.live(), 3u);
  auto ids = [&](AssetFilter f) {
    std::vector<std::string> out;
    const float q[] = {1, 1, 1, 1};
    auto hits = index.Search(q, f, 10);
    EXPECT_TRUE(hits.ok());
    if (hits.ok()) {
      for (const auto& h : hits.value()) out.push_back(h.asset_id);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  AssetFilter f;
  f.stage = "negotiation";
  EXPECT_EQ(ids(f), std::vector<std::string>{"x"});
  f.stage = "evaluation";
  EXPECT_EQ(ids(f), std::vector<std::string>{"y"});  // z is inactive, gone deleted
  f.stage = "awareness";
  f.language = "en";
  f.types = {"case_study"};
  f.tags_any = {"risk"};
  EXPECT_EQ(ids(f), std::vector<std::string>{"x"});
  f.language = "zh";
  EXPECT_TRUE(ids(f).empty());
  RankingHits hits;
  f = AssetFilter{};
  f.stage = "awareness";
  const float q[] = {1, 0, 0, 0};
  ASSERT_TRUE(index.SearchForRanking(q, f, 1, &hits).ok());
  ASSERT_EQ(hits.hits.size(), 1u);
  const AssetDisplay& d = *hits.hits[0].asset;
  EXPECT_EQ(d.id, "x");
  EXPECT_EQ(d.title, "title x");
  EXPECT_EQ(d.type, "case_study");
  EXPECT_EQ(d.url, "https://example.com/x");
  EXPECT_EQ(d.created_ms, 1700000000123);
  EXPECT_EQ(hits.hits[0].vector[0], 1.0f);
}

// Was: a vector of 4 billion strings allocated before reading any (out of memory).
TEST_F(IndexFile, ASlotCountBeyondTheFileIsCorruption) {
  const Status s = Load(File({{"a1", true}, {"a2", true}}, 0xFFFFFFFFu));
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("slot count"), std::string::npos) << s.ToString();
}

// Was: loaded "successfully" with a1 live once and a2 missing from the index.
TEST_F(IndexFile, AnAssetAliveTwiceIsCorruption) {
  EXPECT_EQ(Load(File({{"a1", true}, {"a1", true}}, 2)).code(), Status::Code::kCorruption);
}

// Was: the dead slot after the live one killed it: loaded with a1 unreachable.
TEST_F(IndexFile, ALiveAssetKilledByALaterDeadSlotIsCorruption) {
  EXPECT_EQ(Load(File({{"a1", true}, {"a2", true}, {"a1", false}}, 3)).code(), Status::Code::kCorruption);
}

// A file of the format before (slots without fields) is refused by name; the
// engine then rebuilds from the catalog.
TEST_F(IndexFile, AFormat1FileIsRefusedByName) {
  std::string b = File({{"a1", true}}, 1);
  b[7] = '1';
  const Status s = Load(b);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find("format 1"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace playbook

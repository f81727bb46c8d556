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
#include <unordered_map>
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

// A file in the saved layout: header, slots (id, alive), vectors, no graph.
std::string File(const std::vector<std::pair<std::string, bool>>& slots, uint32_t count) {
  std::string b("PBIDX001", 8);
  Put(&b, kDim);
  Put(&b, uint64_t(3));
  PutStr(&b, "lexical-v1");
  Put(&b, count);
  for (const auto& [id, alive] : slots) {
    PutStr(&b, id);
    b.push_back(alive ? 1 : 0);
  }
  for (size_t i = 0; i < slots.size() * kDim; ++i) Put(&b, float(i % kDim == i / kDim % kDim ? 1 : 0));
  Put(&b, uint64_t(0));
  Put(&b, Checksum(b));
  return b;
}

class IndexFile : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"a1", "a2"}) {
      SlotFields f;
      f.id = id;
      f.stages = {"evaluation"};
      f.type = "case_study";
      live_[id] = f;
    }
  }
  void TearDown() override { std::remove(path_.c_str()); }
  Status Load(const std::string& bytes) {
    std::ofstream(path_, std::ios::binary) << bytes;
    AssetIndex index(kDim, {"evaluation"}, IndexOptions{});
    return index.Load(path_, live_);
  }
  std::string path_ = ::testing::TempDir() + "index_file_test." + std::to_string(::getpid());
  std::unordered_map<std::string, SlotFields> live_;
};

TEST_F(IndexFile, TheLayoutHereIsTheSavedOne) {
  EXPECT_TRUE(Load(File({{"a1", true}, {"old", false}, {"a2", true}}, 3)).ok());
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

}  // namespace
}  // namespace playbook

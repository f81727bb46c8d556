#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "playbook/engine/engine.h"
#include "test_embedder.h"

namespace playbook {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    dir_ = std::filesystem::temp_directory_path() /
           ("playbook-engine-test-" + std::to_string(std::random_device{}()));
    options_.data_dir = dir_.string();
  }
  ~EngineTest() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  EngineOptions options_;
};

TEST_F(EngineTest, OpenCreatesTheDataDirAndIsHealthy) {
  auto engine = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(dir_ / "db"));
  EXPECT_TRUE(engine.value()->Health().ok());
  EXPECT_TRUE(engine.value()->Close().ok());
  EXPECT_FALSE(engine.value()->Health().ok());
  EXPECT_TRUE(engine.value()->Close().ok());  // idempotent
}

TEST_F(EngineTest, SecondOpenOfTheSameDirIsRefusedWhileTheFirstLives) {
  auto first = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_TRUE(first.ok());
  auto second = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kIOError);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().ToString();
  ASSERT_TRUE(first.value()->Close().ok());
  EXPECT_TRUE(Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension)).ok());
}

TEST_F(EngineTest, ReopeningWithAnotherDimensionNamesTheKey) {
  ASSERT_TRUE(Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension)).ok());  // closed by its destructor
  options_.dimension = 128;
  auto reopened = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().field(), "index.dimension");
}

TEST_F(EngineTest, UncreatableDataDirIsAnIOError) {
  options_.data_dir = "/proc/playbook-cannot-exist/data";
  auto engine = Engine::Open(options_, std::make_shared<testing::WordEmbedder>(options_.dimension));
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), Status::Code::kIOError);
}

TEST(Status, ToStringNamesCodeFieldAndMessage) {
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  EXPECT_EQ(Status::InvalidArgument("assets[3].stages", "unknown stage 'foo'").ToString(),
            "InvalidArgument: assets[3].stages: unknown stage 'foo'");
  EXPECT_EQ(Status::NotFound("no lead").ToString(), "NotFound: no lead");
  Result<int> r = 5;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 5);
  Result<int> e = Status::IOError("x");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Status::Code::kIOError);
}

}  // namespace
}  // namespace playbook

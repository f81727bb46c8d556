// Content items (variants.h) and the asset record's formats (codec.h).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "codec.h"
#include "variants.h"

namespace playbook {
namespace {

std::string Walk(const std::map<std::string, std::string>& links, const std::string& id) {
  return ContentRoot(id, [&](const std::string& x) {
    auto it = links.find(x);
    return it == links.end() ? std::string() : it->second;
  });
}

TEST(ContentRoot, FollowsChainsToTheAssetWithoutALinkOrTheIdNamed) {
  const std::map<std::string, std::string> links = {{"zh", "fr"}, {"fr", "en"}, {"ja", "later"}};
  EXPECT_EQ(Walk(links, "zh"), "en");
  EXPECT_EQ(Walk(links, "fr"), "en");
  EXPECT_EQ(Walk(links, "en"), "en");
  EXPECT_EQ(Walk(links, "ja"), "later");  // a target not known (yet)
  EXPECT_EQ(Walk(links, "alone"), "alone");
}

TEST(ContentRoot, ACycleEndsAtItsSmallestIdForEveryAssetOnOrLeadingToIt) {
  const std::map<std::string, std::string> links = {{"c", "a"}, {"a", "b"}, {"b", "c"}, {"tail", "b"}, {"self", "self"}};
  for (const char* id : {"a", "b", "c", "tail"}) EXPECT_EQ(Walk(links, id), "a") << id;
  EXPECT_EQ(Walk(links, "self"), "self");
}

TEST(ContentRoot, AVeryLongChainIsCut) {
  std::map<std::string, std::string> links;
  for (int i = 0; i < 1000; ++i) links[std::to_string(i)] = std::to_string(i + 1);
  EXPECT_EQ(Walk(links, "0"), std::to_string(kMaxVariantHops));
}

Asset Sample() {
  Asset a;
  a.id = "zh-objection-price-01";
  a.title = "客户说太贵了";
  a.language = "zh";
  a.type = "objection_script";
  a.stages = {"evaluation"};
  a.tags = {"objection:price"};
  a.embedder = "lexical-v1";
  a.created_ms = 1764633600000;
  a.updated_ms = 1764720000000;
  return a;
}

TEST(AssetRecord, VariantOfRoundTripsAndTheFirstFormatStillDecodes) {
  Asset a = Sample();
  a.variant_of = "en-objection-price-01";
  Asset back;
  ASSERT_TRUE(DecodeAsset(EncodeAsset(a), &back).ok());
  EXPECT_EQ(back.variant_of, "en-objection-price-01");
  EXPECT_EQ(back.title, a.title);
  // Format 1: the same fields without variant_of (format 2 adds one string at the end).
  a.variant_of.clear();
  std::string v1 = EncodeAsset(a);
  ASSERT_EQ(v1.back(), '\0');  // the empty variant_of's length
  v1.pop_back();
  v1[0] = 1;
  back.variant_of = "stale";
  ASSERT_TRUE(DecodeAsset(v1, &back).ok());
  EXPECT_EQ(back.variant_of, "");
  EXPECT_EQ(back.updated_ms, a.updated_ms);
  EXPECT_EQ(back.tags, a.tags);
  // Format 2 is exact: truncated or followed by bytes, it is refused.
  std::string v2 = EncodeAsset(a);
  EXPECT_FALSE(DecodeAsset(v2.substr(0, v2.size() - 1), &back).ok());
  EXPECT_FALSE(DecodeAsset(v2 + "x", &back).ok());
  v2[0] = 3;
  EXPECT_FALSE(DecodeAsset(v2, &back).ok());
}

}  // namespace
}  // namespace playbook

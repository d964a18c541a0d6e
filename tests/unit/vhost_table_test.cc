// Host header -> vhost: exact names, aliases, wildcards (longest suffix), default.
#include "config/vhost_table.h"

#include <gtest/gtest.h>

using itk::Config;
using itk::VHost;
using itk::VHostTable;

namespace {

Config make_config(size_t default_index = 0) {
  Config cfg;
  auto add = [&](std::string name, std::vector<std::string> aliases) {
    VHost v;
    v.server_name = std::move(name);
    v.aliases = std::move(aliases);
    cfg.vhosts.push_back(v);
  };
  add("first.example", {});
  add("example.org", {"www.example.org", "*.example.org"});
  add("deep.example.org", {"*.deep.example.org"});
  add("other.test", {"alias.test"});
  cfg.default_vhost = default_index;
  return cfg;
}

}  // namespace

TEST(VHostTable, ExactNameAndAlias) {
  Config cfg = make_config();
  VHostTable t(cfg);
  EXPECT_EQ(t.lookup("example.org")->server_name, "example.org");
  EXPECT_EQ(t.lookup("www.example.org")->server_name, "example.org");
  EXPECT_EQ(t.lookup("alias.test")->server_name, "other.test");
}

TEST(VHostTable, NormalisesCasePortAndTrailingDot) {
  Config cfg = make_config();
  VHostTable t(cfg);
  EXPECT_EQ(t.lookup("EXAMPLE.org:8080")->server_name, "example.org");
  EXPECT_EQ(t.lookup("other.test.")->server_name, "other.test");
  EXPECT_EQ(t.lookup("other.test.:80")->server_name, "other.test");
}

TEST(VHostTable, WildcardLongestSuffixWins) {
  Config cfg = make_config();
  VHostTable t(cfg);
  EXPECT_EQ(t.lookup("a.example.org")->server_name, "example.org");
  EXPECT_EQ(t.lookup("a.b.example.org")->server_name, "example.org");
  EXPECT_EQ(t.lookup("x.deep.example.org")->server_name, "deep.example.org");
  EXPECT_EQ(t.lookup("deep.example.org")->server_name, "deep.example.org");  // exact beats wildcard
  // "*.example.org" does not match the bare domain by wildcard, but it is a ServerName here anyway.
  EXPECT_EQ(t.lookup("notexample.org")->server_name, "first.example");
}

TEST(VHostTable, UnknownAndMissingHostGoToDefault) {
  Config cfg = make_config();
  VHostTable t(cfg);
  EXPECT_EQ(t.lookup("nowhere.invalid")->server_name, "first.example");
  EXPECT_EQ(t.lookup("")->server_name, "first.example");
  EXPECT_EQ(t.lookup("127.0.0.1:8080")->server_name, "first.example");
  Config cfg2 = make_config(3);
  VHostTable t2(cfg2);
  EXPECT_EQ(t2.lookup("nowhere.invalid")->server_name, "other.test");
}

TEST(VHostTable, NormalizeRejectsJunk) {
  EXPECT_EQ(VHostTable::normalize_host("exa mple.org"), "");
  EXPECT_EQ(VHostTable::normalize_host("a/b"), "");
  EXPECT_EQ(VHostTable::normalize_host("a:80x"), "");
  EXPECT_EQ(VHostTable::normalize_host("a:123456"), "");
  EXPECT_EQ(VHostTable::normalize_host(std::string("a\0b", 3)), "");
  EXPECT_EQ(VHostTable::normalize_host("[::1]:8080"), "[::1]");
  EXPECT_EQ(VHostTable::normalize_host("[::1"), "");
  EXPECT_EQ(VHostTable::normalize_host("Host.Example."), "host.example");
}

TEST(VHostTable, EmptyConfigHasNoVhost) {
  Config cfg;
  VHostTable t(cfg);
  EXPECT_EQ(t.lookup("a"), nullptr);
}

// FilesMatch patterns: the dialect applications ship, refusals of what it lacks, and bounded cost.
#include "http/name_pattern.h"

#include <gtest/gtest.h>

#include <string>

namespace itk {
namespace {

bool matches(const std::string& pattern, const std::string& name) {
  std::string problem;
  std::optional<NamePattern> p = NamePattern::compile(pattern, problem);
  EXPECT_TRUE(p) << pattern << ": " << problem;
  return p && p->search(name);
}

void refused(const std::string& pattern) {
  std::string problem;
  EXPECT_FALSE(NamePattern::compile(pattern, problem)) << pattern;
  EXPECT_FALSE(problem.empty()) << pattern;
}

TEST(NamePattern, WhatApplicationsShip) {
  EXPECT_TRUE(matches("\\.(log|txt)$", "debug.log"));
  EXPECT_TRUE(matches("\\.(log|txt)$", "a.b.txt"));
  EXPECT_FALSE(matches("\\.(log|txt)$", "log.php"));
  EXPECT_FALSE(matches("\\.(log|txt)$", "x.txt.php"));
  EXPECT_TRUE(matches("^(wp-config\\.php|readme\\.html)$", "wp-config.php"));
  EXPECT_FALSE(matches("^(wp-config\\.php|readme\\.html)$", "wp-config.php.bak.php"));
  EXPECT_TRUE(matches("(^#.*#|\\.(bak|config|dist|fla|inc|ini|log|psd|sh|sql|sw[op])|~)$", "x.swp"));
  EXPECT_TRUE(matches("(^#.*#|\\.(bak|config|dist|fla|inc|ini|log|psd|sh|sql|sw[op])|~)$", "#x#"));
  EXPECT_TRUE(matches("(^#.*#|\\.(bak|config|dist|fla|inc|ini|log|psd|sh|sql|sw[op])|~)$", "index.php~"));
  EXPECT_FALSE(matches("(^#.*#|\\.(bak|config|dist|fla|inc|ini|log|psd|sh|sql|sw[op])|~)$", "x.swx"));
  EXPECT_TRUE(matches("^\\.ht", ".htpasswd"));
  EXPECT_FALSE(matches("^\\.ht", "a.htpasswd"));
  EXPECT_TRUE(matches("(?i)\\.(sql|bak)$", "DUMP.SQL"));
  EXPECT_FALSE(matches("\\.(sql|bak)$", "DUMP.SQL"));
  EXPECT_TRUE(matches("(?i)[^a-z]\\.PHP$", "1.php"));
  EXPECT_FALSE(matches("(?i)[^a-z]\\.PHP$", "x.php"));
  EXPECT_TRUE(matches("", "anything"));
  EXPECT_TRUE(matches("\\d{4}-\\d{2}", "log-2026-12.txt"));
  EXPECT_FALSE(matches("^\\d{4}$", "123"));
  EXPECT_TRUE(matches("^a{2,3}$", "aaa"));
  EXPECT_FALSE(matches("^a{2,3}$", "aaaa"));
  EXPECT_TRUE(matches("^a{2,}$", "aaaaaaa"));
  EXPECT_TRUE(matches("^x.*?y$", "x123y"));
  EXPECT_TRUE(matches("a{x", "ba{x"));  // not a count: a literal '{', as in PCRE
  EXPECT_TRUE(matches("[]a]", "]"));
  EXPECT_TRUE(matches("[a\\-z]", "-"));
  EXPECT_FALSE(matches("[a\\-z]", "b"));
  EXPECT_TRUE(matches("\\W", "a b"));
  EXPECT_TRUE(matches("^(?:ab)+$", "ababab"));
  EXPECT_FALSE(matches("^(?:ab)+$", "ababa"));
}

TEST(NamePattern, RefusesWhatItCannotMatchFaithfully) {
  refused("(?<!index)\\.php$");  // lookbehind
  refused("(?=x)");
  refused("(a)\\1");              // backreference
  refused("a++");                 // possessive
  refused("[[:alpha:]]");
  refused("(?s).");
  refused("(((");
  refused("a)");
  refused("[abc");
  refused("*a");
  refused("a{101}");
  refused("a{4444444444444444444}");
  refused("a{3,2}");
  refused("\\");
  refused("[z-a]");
  refused(std::string(kMaxNamePatternLength + 1, 'a'));
  refused("((a{100}){100}){100}");  // expands past the program limit
  refused(std::string(40, '(') + "a" + std::string(40, ')'));  // nested too deep
}

// Patterns that make backtracking engines take exponential time (years for these names) are linear
// here: the test finishes, well inside meson's timeout, and answers right.
TEST(NamePattern, HostilePatternsAnswerRight) {
  std::string name(200, 'a');
  for (const char* p : {"^(a|a)*$", "^(a*)*b$", "(.*a){20}", "^(a|aa)+$"})
    EXPECT_EQ(matches(p, name + "!"), std::string(p) == "(.*a){20}") << p;
  EXPECT_FALSE(matches("^(a+)+$", name + "!"));
  EXPECT_TRUE(matches("^(a+)+$", name));
  EXPECT_TRUE(matches("(a?){30}a{30}", std::string(30, 'a')));
}

}  // namespace
}  // namespace itk

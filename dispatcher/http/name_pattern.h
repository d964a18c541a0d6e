// The regular expressions of <FilesMatch> and <Files ~> lines, which tenants write: a small dialect
// compiled to a Thompson automaton, so matching a name costs time linear in the name times the
// pattern, memory is bounded at compile time, and no pattern can make a worker backtrack for ever.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace itk {

// Longer patterns are refused before parsing.
constexpr size_t kMaxNamePatternLength = 1024;
// A compiled program is refused beyond this many instructions (counted repetitions are expanded).
constexpr size_t kMaxNamePatternProgram = 4096;
// {n}, {n,}, {n,m}: larger counts are refused.
constexpr unsigned kMaxNamePatternCount = 100;

class NamePattern {
 public:
  // Compiles `pattern`: literals, `.`, `[...]`/`[^...]` with ranges, `\d \w \s` (and upper-case
  // negations), other escaped characters as literals, `^`, `$`, groups `(...)` and `(?:...)`, `|`,
  // `* + ?` (a trailing `?` for laziness is accepted: it changes nothing for a yes/no answer),
  // `{n}`, `{n,}`, `{n,m}`, and a leading `(?i)` for a case-blind match. Anything else
  // (backreferences, lookaround, other flags, possessive quantifiers) is refused with `problem` set.
  static std::optional<NamePattern> compile(std::string_view pattern, std::string& problem);

  // Whether the pattern matches anywhere in `name` (a search, as PCRE's and Apache's).
  bool search(std::string_view name) const;

  struct Inst {
    enum Op : unsigned char { chars, split, jump, line_begin, line_end, match } op = match;
    int x = 0, y = 0;         // split: both next instructions; jump: x
    std::bitset<256> set;     // chars: the bytes that step on
  };

 private:
  std::vector<Inst> prog_;
};

}  // namespace itk

// FilesMatch patterns: a recursive-descent parser into a small tree, compiled to a Pike VM program
// without captures, and run over the name with two thread lists (no backtracking).
#include "http/name_pattern.h"

#include <algorithm>
#include <cctype>
#include <memory>

namespace itk {
namespace {

using Set = std::bitset<256>;

struct Node {
  enum Kind { chars, begin, end, cat, alt, repeat, empty } kind = empty;
  Set set;
  std::vector<std::unique_ptr<Node>> kids;
  unsigned min = 0, max = 0;  // repeat; max == kUnbounded for no upper bound
};
constexpr unsigned kUnbounded = ~0u;

// Nesting beyond this is refused: the parser recurses per group.
constexpr int kMaxDepth = 32;

class Parser {
 public:
  Parser(std::string_view p, bool icase) : p_(p), icase_(icase) {}

  std::unique_ptr<Node> parse(std::string& problem) {
    std::unique_ptr<Node> n = alternation(0);
    if (n && i_ != p_.size()) fail(p_[i_] == ')' ? "unbalanced ')'" : "unexpected character");
    if (!problem_.empty()) {
      problem = problem_;
      return nullptr;
    }
    return n;
  }

 private:
  bool more() const { return i_ < p_.size() && problem_.empty(); }
  void fail(std::string why) {
    if (problem_.empty()) problem_ = why + " at offset " + std::to_string(i_);
  }

  std::unique_ptr<Node> alternation(int depth) {
    if (depth > kMaxDepth) {
      fail("groups nested too deep");
      return nullptr;
    }
    auto n = std::make_unique<Node>();
    n->kind = Node::alt;
    n->kids.push_back(sequence(depth));
    while (more() && p_[i_] == '|') {
      i_++;
      n->kids.push_back(sequence(depth));
    }
    if (n->kids.size() == 1) return std::move(n->kids[0]);
    return n;
  }

  std::unique_ptr<Node> sequence(int depth) {
    auto n = std::make_unique<Node>();
    n->kind = Node::cat;
    while (more() && p_[i_] != '|' && p_[i_] != ')') {
      std::unique_ptr<Node> a = atom(depth);
      if (!a) return n;
      n->kids.push_back(quantified(std::move(a)));
    }
    return n;
  }

  std::unique_ptr<Node> quantified(std::unique_ptr<Node> a) {
    while (more()) {
      unsigned lo, hi;
      char c = p_[i_];
      if (c == '*') lo = 0, hi = kUnbounded;
      else if (c == '+') lo = 1, hi = kUnbounded;
      else if (c == '?') lo = 0, hi = 1;
      else if (c == '{' && counted(lo, hi)) {
      } else return a;
      if (c != '{') i_++;
      if (more() && p_[i_] == '?') i_++;  // lazy: the same yes or no
      if (more() && p_[i_] == '+') {
        fail("possessive quantifiers are not supported");
        return a;
      }
      auto r = std::make_unique<Node>();
      r->kind = Node::repeat;
      r->min = lo;
      r->max = hi;
      r->kids.push_back(std::move(a));
      a = std::move(r);
    }
    return a;
  }

  // "{n}", "{n,}", "{n,m}" at i_; anything else is a literal '{' (as in PCRE).
  bool counted(unsigned& lo, unsigned& hi) {
    size_t j = i_ + 1;
    // Saturating, so that a huge count is refused below rather than wrapped or read as a literal.
    auto number = [&](unsigned& out) {
      size_t start = j;
      unsigned long v = 0;
      while (j < p_.size() && isdigit(static_cast<unsigned char>(p_[j])))
        v = std::min<unsigned long>(v * 10 + static_cast<unsigned>(p_[j++] - '0'), kMaxNamePatternCount + 1ul);
      out = static_cast<unsigned>(v);
      return j > start;
    };
    if (!number(lo)) return false;
    hi = lo;
    if (j < p_.size() && p_[j] == ',') {
      j++;
      if (!number(hi)) hi = kUnbounded;
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    if (lo > kMaxNamePatternCount || (hi != kUnbounded && (hi > kMaxNamePatternCount || hi < lo))) {
      fail("a repetition count above " + std::to_string(kMaxNamePatternCount) + " or reversed");
      return false;
    }
    i_ = j + 1;
    return true;
  }

  std::unique_ptr<Node> leaf(Set s) {
    if (icase_)
      for (int c = 'a'; c <= 'z'; c++)
        if (s[static_cast<size_t>(c)] || s[static_cast<size_t>(toupper(c))]) s.set(static_cast<size_t>(c)).set(static_cast<size_t>(toupper(c)));
    auto n = std::make_unique<Node>();
    n->kind = Node::chars;
    n->set = s;
    return n;
  }

  // \d \w \s and their negations; false for any other letter after '\'.
  static bool class_escape(char c, Set& s) {
    Set base;
    char lower = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    for (int b = 0; b < 256; b++) {
      bool in = lower == 'd' ? isdigit(b) : lower == 'w' ? (isalnum(b) || b == '_') : lower == 's' ? isspace(b) : false;
      if (in && b < 128) base.set(static_cast<size_t>(b));
    }
    if (lower != 'd' && lower != 'w' && lower != 's') return false;
    s = c == lower ? base : ~base;
    return true;
  }

  // The byte or class after a '\' at i_ (i_ is past it afterwards).
  bool escape(Set& s) {
    if (i_ >= p_.size()) {
      fail("a trailing '\\'");
      return false;
    }
    char c = p_[i_++];
    if (class_escape(c, s)) return true;
    if (c == 't') c = '\t';
    else if (c == 'n') c = '\n';
    else if (c == 'r') c = '\r';
    else if (isalnum(static_cast<unsigned char>(c))) {
      fail(std::string("the escape \\") + c + " is not supported");
      return false;
    }
    s.reset();
    s.set(static_cast<unsigned char>(c));
    return true;
  }

  std::unique_ptr<Node> bracket() {
    Set s;
    bool negate = i_ < p_.size() && p_[i_] == '^';
    if (negate) i_++;
    bool first = true;
    while (i_ < p_.size() && (p_[i_] != ']' || first)) {
      first = false;
      Set one;
      unsigned char lo = static_cast<unsigned char>(p_[i_]);
      if (p_[i_] == '[' && i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
        fail("POSIX classes are not supported");
        return nullptr;
      }
      if (p_[i_] == '\\') {
        i_++;
        if (!escape(one)) return nullptr;
        if (one.count() != 1) {  // \d and friends: no range from them
          s |= one;
          continue;
        }
        for (int b = 0; b < 256; b++)
          if (one[static_cast<size_t>(b)]) lo = static_cast<unsigned char>(b);
      } else {
        i_++;
      }
      unsigned char hi = lo;
      if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        i_++;
        hi = static_cast<unsigned char>(p_[i_]);
        if (hi == '\\') {
          i_++;
          Set e;
          if (!escape(e) || e.count() != 1) {
            fail("a range ends in a class");
            return nullptr;
          }
          for (int b = 0; b < 256; b++)
            if (e[static_cast<size_t>(b)]) hi = static_cast<unsigned char>(b);
        } else {
          i_++;
        }
        if (hi < lo) {
          fail("a reversed range");
          return nullptr;
        }
      }
      for (unsigned b = lo; b <= hi; b++) s.set(b);
    }
    if (i_ >= p_.size()) {
      fail("an unclosed '['");
      return nullptr;
    }
    i_++;  // ']'
    if (icase_) s = leaf(s)->set;
    return leaf(negate ? ~s : s);
  }

  std::unique_ptr<Node> atom(int depth) {
    char c = p_[i_++];
    switch (c) {
      case '.': return leaf(~Set());
      case '^':
      case '$': {
        auto n = std::make_unique<Node>();
        n->kind = c == '^' ? Node::begin : Node::end;
        return n;
      }
      case '[': return bracket();
      case '\\': {
        Set s;
        if (!escape(s)) return nullptr;
        return leaf(s);
      }
      case '(': {
        if (i_ < p_.size() && p_[i_] == '?') {
          if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
            i_ += 2;
          } else {
            fail("group flags and lookaround are not supported");
            return nullptr;
          }
        }
        std::unique_ptr<Node> inner = alternation(depth + 1);
        if (i_ >= p_.size() || p_[i_] != ')') {
          fail("an unclosed '('");
          return nullptr;
        }
        i_++;
        return inner;
      }
      case '*':
      case '+':
      case '?':
        fail("a quantifier with nothing before it");
        return nullptr;
      default: {
        Set s;
        s.set(static_cast<unsigned char>(c));
        return leaf(s);
      }
    }
  }

  std::string_view p_;
  bool icase_;
  size_t i_ = 0;
  std::string problem_;
};

class Compiler {
 public:
  explicit Compiler(std::vector<NamePattern::Inst>& prog) : prog_(prog) {}

  bool emit(const Node& n) {
    if (prog_.size() > kMaxNamePatternProgram) return false;
    switch (n.kind) {
      case Node::empty: return true;
      case Node::chars: add(NamePattern::Inst::chars).set = n.set; return true;
      case Node::begin: add(NamePattern::Inst::line_begin); return true;
      case Node::end: add(NamePattern::Inst::line_end); return true;
      case Node::cat:
        for (const auto& k : n.kids)
          if (!emit(*k)) return false;
        return true;
      case Node::alt: {
        // split L1, next; L1: kid0; jmp end; next: split L2, ... ; last kid
        std::vector<size_t> jumps;
        for (size_t i = 0; i < n.kids.size(); i++) {
          size_t split = 0;
          if (i + 1 < n.kids.size()) split = index(add(NamePattern::Inst::split));
          if (i + 1 < n.kids.size()) prog_[split].x = static_cast<int>(prog_.size());
          if (!emit(*n.kids[i])) return false;
          if (i + 1 < n.kids.size()) {
            jumps.push_back(index(add(NamePattern::Inst::jump)));
            prog_[split].y = static_cast<int>(prog_.size());
          }
        }
        for (size_t j : jumps) prog_[j].x = static_cast<int>(prog_.size());
        return true;
      }
      case Node::repeat: {
        const Node& kid = *n.kids[0];
        for (unsigned i = 0; i < n.min; i++)
          if (!emit(kid)) return false;
        if (n.max == kUnbounded) {
          // L: split body, out; body; jmp L
          size_t split = index(add(NamePattern::Inst::split));
          prog_[split].x = static_cast<int>(prog_.size());
          if (!emit(kid)) return false;
          add(NamePattern::Inst::jump).x = static_cast<int>(split);
          prog_[split].y = static_cast<int>(prog_.size());
          return true;
        }
        // Optional copies, each skipping to the end: split body, out; body; ... out:
        std::vector<size_t> splits;
        for (unsigned i = n.min; i < n.max; i++) {
          size_t split = index(add(NamePattern::Inst::split));
          prog_[split].x = static_cast<int>(prog_.size());
          splits.push_back(split);
          if (!emit(kid)) return false;
        }
        for (size_t s : splits) prog_[s].y = static_cast<int>(prog_.size());
        return true;
      }
    }
    return false;
  }

 private:
  NamePattern::Inst& add(NamePattern::Inst::Op op) {
    prog_.emplace_back();
    prog_.back().op = op;
    return prog_.back();
  }
  size_t index(const NamePattern::Inst& i) const { return static_cast<size_t>(&i - prog_.data()); }

  std::vector<NamePattern::Inst>& prog_;
};

}  // namespace

std::optional<NamePattern> NamePattern::compile(std::string_view pattern, std::string& problem) {
  if (pattern.size() > kMaxNamePatternLength) {
    problem = "longer than " + std::to_string(kMaxNamePatternLength) + " bytes";
    return std::nullopt;
  }
  bool icase = pattern.substr(0, 4) == "(?i)";
  if (icase) pattern.remove_prefix(4);
  std::unique_ptr<Node> tree = Parser(pattern, icase).parse(problem);
  if (!tree) return std::nullopt;
  NamePattern np;
  if (!Compiler(np.prog_).emit(*tree) || np.prog_.size() >= kMaxNamePatternProgram) {
    problem = "the pattern is too large once its repetitions are counted out";
    return std::nullopt;
  }
  np.prog_.emplace_back();  // match
  return np;
}

bool NamePattern::search(std::string_view name) const {
  const size_t n = prog_.size();
  // Threads at the current position, deduplicated by instruction; `on` marks who is in `list`.
  std::vector<int> now, next, stack;
  std::vector<size_t> seen(n, static_cast<size_t>(-1));
  now.reserve(n);
  next.reserve(n);
  // Follows jumps, splits and assertions from `pc` at position `at`, adding the threads that wait
  // for a byte (or match) to `list`. Returns true when a match is reached.
  auto add = [&](std::vector<int>& list, int pc, size_t at) {
    stack.assign(1, pc);
    while (!stack.empty()) {
      int p = stack.back();
      stack.pop_back();
      if (seen[static_cast<size_t>(p)] == at) continue;
      seen[static_cast<size_t>(p)] = at;
      const Inst& in = prog_[static_cast<size_t>(p)];
      switch (in.op) {
        case Inst::jump: stack.push_back(in.x); break;
        case Inst::split:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Inst::line_begin:
          if (at == 0) stack.push_back(p + 1);
          break;
        case Inst::line_end:
          if (at == name.size()) stack.push_back(p + 1);
          break;
        case Inst::match: return true;
        case Inst::chars: list.push_back(p); break;
      }
    }
    return false;
  };
  for (size_t at = 0;; at++) {
    // A search: a new thread starts at every position.
    if (add(now, 0, at)) return true;
    if (at == name.size()) return false;
    unsigned char c = static_cast<unsigned char>(name[at]);
    next.clear();
    for (int p : now)
      if (prog_[static_cast<size_t>(p)].set[c] && add(next, p + 1, at + 1)) return true;
    now.swap(next);
  }
}

}  // namespace itk

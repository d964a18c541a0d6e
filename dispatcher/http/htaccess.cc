// .htaccess deny lines: parsed in the worker, as the tenant, from files the tenant (or its application)
// wrote; every line itk does not apply is kept as a note and logged once per version of the file.
#include "http/htaccess.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "http/http_chars.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {

bool FileMatcher::matches(std::string_view name) const {
  if (!is_regex) return fnmatch(pattern.c_str(), std::string(name).c_str(), 0) == 0;
  // A pattern that could not be compiled must not let a file through.
  return !re || re->search(name);
}

int Htaccess::denies_directory() const {
  for (const HtaccessDeny& d : denies)
    if (d.files.empty()) return d.line;
  return 0;
}

int Htaccess::denies_file(std::string_view name) const {
  for (const HtaccessDeny& d : denies) {
    bool all = true;
    for (const FileMatcher& m : d.files) all = all && m.matches(name);
    if (all) return d.line;
  }
  return 0;
}

namespace {

constexpr std::string_view kBlank = " \t\r\f\v";

bool is_space(char c) { return kBlank.find(c) != std::string_view::npos; }

std::string_view trim(std::string_view s) {
  size_t first = s.find_first_not_of(kBlank);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlank) - first + 1);
}

// Directive and block names are case-insensitive, as in Apache.
std::string folded(std::string_view s) {
  std::string out(s.size(), '\0');
  std::transform(s.begin(), s.end(), out.begin(), ascii_lower);
  return out;
}

// Apache's ap_getword_conf(): words split by whitespace; "..." and '...' hold spaces, \" a quote.
std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) i++;
    if (i == s.size()) break;
    std::string w;
    if (s[i] == '"' || s[i] == '\'') {
      char q = s[i++];
      while (i < s.size() && s[i] != q) {
        if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == q) i++;
        w += s[i++];
      }
      if (i < s.size()) i++;
    } else {
      while (i < s.size() && !is_space(s[i])) w += s[i++];
    }
    out.push_back(std::move(w));
  }
  return out;
}

// A line quoted in a note: short, printable.
std::string shown(std::string_view line) {
  std::string out;
  for (char c : line.substr(0, 80)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (line.size() > 80) out += "...";
  return out;
}

FileMatcher regex_matcher(const std::string& pattern, std::string& problem) {
  FileMatcher m;
  m.pattern = pattern;
  m.is_regex = true;
  if (std::optional<NamePattern> p = NamePattern::compile(pattern, problem))
    m.re = std::make_shared<const NamePattern>(std::move(*p));
  return m;
}

struct Block {
  std::string name;  // lower-case, as in its closing tag
  int line = 0;
  bool has_matcher = false;
  FileMatcher matcher;
};

class Parser {
 public:
  Htaccess out;

  void parse(std::string_view text) {
    int lineno = 0;
    size_t pos = 0;
    std::string logical;
    int logical_line = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      pos = nl == std::string_view::npos ? text.size() : nl + 1;
      lineno++;
      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
      if (logical.empty()) logical_line = lineno;
      // A trailing backslash joins the next line, as in Apache's configuration files.
      if (!raw.empty() && raw.back() == '\\') {
        logical.append(raw.substr(0, raw.size() - 1));
        continue;
      }
      logical.append(raw);
      bool ok = line(logical_line, trim(logical));
      logical.clear();
      if (!ok) return;
    }
    if (!logical.empty() && !line(logical_line, trim(logical))) return;
    if (!stack_.empty()) broken(stack_.back().line, "<" + stack_.back().name + "> is never closed");
  }

 private:
  std::vector<Block> stack_;

  void note(int line, std::string text) { out.notes.push_back({line, std::move(text)}); }

  void deny(int line) {
    HtaccessDeny d;
    d.line = line;
    for (const Block& b : stack_)
      if (b.has_matcher) d.files.push_back(b.matcher);
    out.denies.push_back(std::move(d));
  }

  // What itk cannot read structurally denies the whole directory (Apache answers 500 there).
  void broken(int line, const std::string& why) {
    out.denies.push_back({line, {}});
    note(line, why + ": the file cannot be read, so the whole directory is refused");
  }

  // False when the rest of the file cannot be trusted to mean what it says.
  bool line(int lineno, std::string_view s) {
    if (s.empty() || s[0] == '#') return true;
    if (s[0] == '<') return tag(lineno, s);
    std::vector<std::string> w = words(s);
    std::string name = folded(w[0]);
    std::vector<std::string> args;
    for (size_t i = 1; i < w.size(); i++) args.push_back(folded(w[i]));
    if (name == "require") require(lineno, s, args);
    else if (name == "deny") deny_from(lineno, s, args);
    else if (name == "order") {}  // meaningful only with Allow, which is never applied
    else if (name == "allow")
      note(lineno, "`" + shown(s) + "` is not applied: itk never grants access from .htaccess");
    else
      note(lineno, "`" + shown(s) + "` is not applied by itk");
    return true;
  }

  void require(int lineno, std::string_view s, const std::vector<std::string>& args) {
    if (args.size() == 2 && args[0] == "all" && args[1] == "denied") return deny(lineno);
    if (args.size() == 2 && args[0] == "all" && args[1] == "granted")
      return note(lineno, "`" + shown(s) + "` is not applied: itk never grants access from .htaccess");
    // `Require not ip ...` shuts particular clients out of a site that is otherwise open.
    if (!args.empty() && args[0] == "not")
      return note(lineno, "`" + shown(s) + "` is not applied: itk has no address or user rules");
    // An allow-list (ip, host, local, valid-user, user, group, env, expr...) that itk cannot evaluate:
    // serving instead would open what the application meant to restrict.
    deny(lineno);
    note(lineno, "`" + shown(s) + "` cannot be evaluated by itk: refused to every client instead");
  }

  void deny_from(int lineno, std::string_view s, const std::vector<std::string>& args) {
    if (args.size() == 2 && args[0] == "from" && args[1] == "all") return deny(lineno);
    note(lineno, "`" + shown(s) + "` is not applied: itk has no address rules (only `Deny from all`)");
  }

  bool tag(int lineno, std::string_view s) {
    if (s.back() != '>') {
      broken(lineno, "`" + shown(s) + "` does not end with `>`");
      return false;
    }
    std::string_view inner = trim(s.substr(1, s.size() - 2));
    if (!inner.empty() && inner[0] == '/') {
      std::string name = folded(trim(inner.substr(1)));
      if (stack_.empty() || stack_.back().name != name) {
        broken(lineno, "`" + shown(s) + "` closes no open block");
        return false;
      }
      stack_.pop_back();
      return true;
    }
    std::vector<std::string> w = words(inner);
    if (w.empty()) {
      broken(lineno, "`" + shown(s) + "` is not a block");
      return false;
    }
    Block b;
    b.name = folded(w[0]);
    b.line = lineno;
    if (b.name == "files" || b.name == "filesmatch") {
      bool regex = b.name == "filesmatch" || (w.size() == 3 && w[1] == "~");
      if (w.size() != (regex && b.name == "files" ? 3u : 2u)) {
        broken(lineno, "`" + shown(s) + "` needs one name or pattern");
        return false;
      }
      b.has_matcher = true;
      if (regex) {
        std::string problem;
        b.matcher = regex_matcher(w.back(), problem);
        if (!problem.empty())
          note(lineno, "`" + shown(s) + "`: the pattern cannot be used (" + problem +
                           "), so the lines inside apply to every file");
      } else {
        b.matcher.pattern = w[1];
      }
    } else if (b.name != "ifmodule") {
      // <Limit>, <If>, <RequireAny>...: a condition itk does not evaluate never narrows a deny inside it.
      note(lineno, "`" + shown(s) + "`: the condition is not evaluated; deny lines inside apply to every request");
    }
    stack_.push_back(std::move(b));
    return true;
  }
};

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

void log_notes(const std::string& shown_path, const Htaccess& h) {
  // A WordPress .htaccess alone has half a dozen rewrite lines: enough to show what is ignored.
  constexpr size_t kShown = 5;
  for (size_t i = 0; i < h.notes.size() && i < kShown; i++)
    log(Level::notice, "%s:%d: %s", shown_path.c_str(), h.notes[i].line, h.notes[i].text.c_str());
  if (h.notes.size() > kShown)
    log(Level::notice, "%s: %zu more lines are not applied by itk", shown_path.c_str(), h.notes.size() - kShown);
}

// Reads all of a regular file of `size` bytes; false if it changed size under us or could not be read.
bool read_whole(int fd, off_t size, std::string& out) {
  out.resize(static_cast<size_t>(size) + 1);
  size_t got = 0;
  for (;;) {
    ssize_t n = pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (got > static_cast<size_t>(size)) return false;
  }
  out.resize(got);
  return got == static_cast<size_t>(size);
}

}  // namespace

Htaccess parse_htaccess(std::string_view text) {
  Parser p;
  p.parse(text);
  return std::move(p.out);
}

HtaccessCache::Result HtaccessCache::load(int dir_fd, const std::string& shown_path) {
  Result r;
  // Bounded: a tenant with many directories cannot grow a worker without end; all is read again.
  if (entries_.size() >= 4096) entries_.clear();
  // O_NOFOLLOW: a linked .htaccess could be any file the tenant can read; O_NONBLOCK: a FIFO cannot hang us.
  unique_fd fd(openat(dir_fd, ".htaccess", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
  struct stat st {};
  if (!fd) {
    int err = errno;
    if (err == ENOENT) return r;
    r.state = State::refused;
    // Logged once per version of the file, like its notes; unknown versions are logged each time.
    if (fstatat(dir_fd, ".htaccess", &st, AT_SYMLINK_NOFOLLOW) == 0) {
      Entry& e = entries_[{st.st_dev, st.st_ino}];
      if (e.open_failed && e.mtime_ns == mtime_ns(st) && e.size == st.st_size) return r;
      e = Entry{mtime_ns(st), st.st_size, nullptr, true};
    }
    log(Level::warning, "%s: cannot be read (%s): the directory is refused", shown_path.c_str(), strerror(err));
    return r;
  }
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    log(Level::warning, "%s: not a regular file: the directory is refused", shown_path.c_str());
    r.state = State::refused;
    return r;
  }
  auto key = std::make_pair(st.st_dev, st.st_ino);
  auto it = entries_.find(key);
  if (it != entries_.end() && !it->second.open_failed && it->second.mtime_ns == mtime_ns(st) &&
      it->second.size == st.st_size) {
    r.state = it->second.file ? State::present : State::refused;
    r.file = it->second.file;
    return r;
  }
  Entry& e = entries_[key];
  e = Entry{mtime_ns(st), st.st_size, nullptr, false};
  r.state = State::refused;
  if (static_cast<size_t>(st.st_size) > kMaxHtaccessSize) {
    log(Level::warning, "%s: %lld bytes, more than itk reads (%zu): the directory is refused", shown_path.c_str(),
        static_cast<long long>(st.st_size), kMaxHtaccessSize);
    return r;
  }
  std::string text;
  if (!read_whole(fd.get(), st.st_size, text)) {
    log(Level::warning, "%s: changed or failed while being read: the directory is refused", shown_path.c_str());
    entries_.erase(key);
    return r;
  }
  auto parsed = std::make_shared<const Htaccess>(parse_htaccess(text));
  log_notes(shown_path, *parsed);
  e.file = parsed;
  r.state = State::present;
  r.file = std::move(parsed);
  return r;
}

}  // namespace itk

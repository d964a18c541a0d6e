// The deny part of the .htaccess files applications ship (`Require all denied`, `Deny from all`, in
// <Files>, <FilesMatch> and <IfModule> blocks): the parser, and a worker's cache of parsed files.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/name_pattern.h"

namespace itk {

// Larger files are refused whole: the directory is denied and the journal says why.
constexpr size_t kMaxHtaccessSize = 64 * 1024;

// One <Files> or <FilesMatch> condition on a file's name (its last path segment).
struct FileMatcher {
  std::string pattern;
  bool is_regex = false;               // <FilesMatch>, <Files ~>; else a <Files> wildcard (fnmatch)
  std::shared_ptr<const NamePattern> re;  // null for a regex that could not be compiled: matches every name
  bool matches(std::string_view name) const;
};

// A deny line with the blocks around it: it refuses every file whose name matches all of `files`
// (none: everything in the directory and below).
struct HtaccessDeny {
  int line = 0;
  std::vector<FileMatcher> files;
};

// A line itk does not apply, and why, for the journal.
struct HtaccessNote {
  int line = 0;
  std::string text;
};

struct Htaccess {
  std::vector<HtaccessDeny> denies;
  std::vector<HtaccessNote> notes;
  // The line of a deny that covers the whole directory, or 0.
  int denies_directory() const;
  // The line of a deny that covers a file called `name`, or 0.
  int denies_file(std::string_view name) const;
};

// Never throws. What it cannot read structurally (an unclosed or mismatched block) denies the whole
// directory from that line on, as Apache answers 500 for such a file.
Htaccess parse_htaccess(std::string_view text);

// Parsed .htaccess files of one worker, keyed by (dev, ino) and valid while mtime and size stay the same,
// so a file the tenant edits is read again at its next request, without a reload.
class HtaccessCache {
 public:
  enum class State {
    absent,   // no .htaccess in this directory
    present,  // `file` holds it
    refused,  // there but unusable (unreadable, too large, not a regular file, a link): deny
  };
  struct Result {
    State state = State::absent;
    std::shared_ptr<const Htaccess> file;
  };
  // Opens `.htaccess` in the directory `dir_fd` as the calling process, which is the tenant; `shown_path`
  // names it in the journal.
  Result load(int dir_fd, const std::string& shown_path);

 private:
  struct Entry {
    int64_t mtime_ns = 0;
    off_t size = 0;
    std::shared_ptr<const Htaccess> file;  // null: refused
    bool open_failed = false;              // refused before it could be read: a chmod may change that
  };
  std::map<std::pair<dev_t, ino_t>, Entry> entries_;
};

}  // namespace itk

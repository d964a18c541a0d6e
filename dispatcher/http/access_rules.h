// Which paths of a vhost are refused (403) before anything is served or run: dot segments, Deny prefixes
// and .htaccess deny lines, checked on the path asked for and again on the file it really resolves to.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "http/doc_root.h"
#include "http/htaccess.h"
#include "http/static_file.h"

namespace itk {

// `path` is normalised as decode_request_path() leaves it: starts with '/', no "." or ".." segments.
// True when a segment starts with '.', except a first segment ".well-known" (ACME http-01, RFC 8615).
bool has_dot_segment(std::string_view path);
// True when a segment starts with ".ht" (.htaccess, .htpasswd): refused even with DenyDotFiles off, as
// Apache's stock configuration refuses them.
bool has_ht_segment(std::string_view path);
// The Deny prefix `path` is at or beneath, by whole segments ("/data" covers "/data/x", not "/database"),
// or nullptr.
const std::string* denying_prefix(const std::vector<std::string>& prefixes, std::string_view path);

struct AccessVerdict {
  bool allowed = true;
  std::string reason;  // why not, for the journal
};

// How long what a worker found about a directory (is it one, its .htaccess) is used before it looks
// again: a tenant's new, edited or removed .htaccess applies within this time. Within it, a request walks
// no directory and opens no .htaccess, which on a busy site is most of a static request's system calls.
constexpr int64_t kHtaccessRecheckNs = 1'000'000'000;

// One per worker: the rules of its vhosts and a cache of the .htaccess files it has read as the tenant.
class AccessCheck {
 public:
  explicit AccessCheck(int64_t recheck_ns = kHtaccessRecheckNs) : recheck_ns_(recheck_ns) {}

  // The path the client asked for, before anything is opened or run: its segments, the Deny prefixes, and
  // the .htaccess of the DocumentRoot and of each directory along the path (its last segment too, when
  // that is a directory). `root_fd` is the DocumentRoot opened by the tenant.
  AccessVerdict check_request(const DocRoot& root, const VHost& vh, const std::string& path);

  // What `fd`, opened beneath root_fd for `asked` (already passed check_request), really is, wherever
  // symlinks and a DirectoryIndex led: the same rules on its real path below the DocumentRoot's. A file
  // whose real path cannot be told (no /proc) is refused.
  AccessVerdict check_resolved(const DocRoot& root, const VHost& vh, int fd, const std::string& asked);
  // check_resolved for what open_beneath gave: a file reached without a symlink is where its path says,
  // and /proc is not asked.
  AccessVerdict check_opened(const DocRoot& root, const VHost& vh, const OpenResult& file, const std::string& asked);

  // check_resolved for a path that is about to be run (a script), opened here without reading it.
  AccessVerdict check_resolved_path(const DocRoot& root, const VHost& vh, const std::string& path, const std::string& asked);

 private:
  // `path` is below the DocumentRoot, or with `beyond` below the anchor (SymlinkRoot), where the site's
  // Deny prefixes, which name paths of the site, do not apply.
  AccessVerdict walk(const DocRoot& root, const VHost& vh, std::string_view path, bool last_is_file, bool beyond = false);
  // What was found about one directory path, and when (CLOCK_MONOTONIC_COARSE).
  struct Seen {
    int64_t at_ns = 0;
    bool is_dir = false;  // false: missing, not a directory, or closed to the tenant
    HtaccessCache::Result htaccess;
  };
  // The memo for `shown` (a directory's .htaccess path) when still fresh, else nullptr.
  const Seen* fresh(const std::string& shown, int64_t now_ns) const;
  int64_t recheck_ns_;
  std::unordered_map<std::string, Seen> seen_;
  HtaccessCache cache_;
};

}  // namespace itk

// Which paths of a vhost are refused (403) before anything is served or run: dot segments, Deny prefixes
// and .htaccess deny lines, checked on the path asked for and again on the file it really resolves to.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/doc_root.h"
#include "http/htaccess.h"

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

// One per worker: the rules of its vhosts and a cache of the .htaccess files it has read as the tenant.
class AccessCheck {
 public:
  // The path the client asked for, before anything is opened or run: its segments, the Deny prefixes, and
  // the .htaccess of the DocumentRoot and of each directory along the path (its last segment too, when
  // that is a directory). `root_fd` is the DocumentRoot opened by the tenant.
  AccessVerdict check_request(const DocRoot& root, const VHost& vh, const std::string& path);

  // What `fd`, opened beneath root_fd for `asked` (already passed check_request), really is, wherever
  // symlinks and a DirectoryIndex led: the same rules on its real path below the DocumentRoot's. A file
  // whose real path cannot be told (no /proc) is refused.
  AccessVerdict check_resolved(const DocRoot& root, const VHost& vh, int fd, const std::string& asked);

  // check_resolved for a path that is about to be run (a script), opened here without reading it.
  AccessVerdict check_resolved_path(const DocRoot& root, const VHost& vh, const std::string& path, const std::string& asked);

 private:
  // `path` is below the DocumentRoot, or with `beyond` below the anchor (SymlinkRoot), where the site's
  // Deny prefixes, which name paths of the site, do not apply.
  AccessVerdict walk(const DocRoot& root, const VHost& vh, std::string_view path, bool last_is_file, bool beyond = false);
  HtaccessCache cache_;
};

}  // namespace itk

// Static file serving logic, run in the worker as the vhost's user: request path -> file under
// DocumentRoot (openat2 RESOLVE_BENEATH), conditional requests, single byte ranges.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/doc_root.h"
#include "sys/unique_fd.h"

namespace itk {

// openat2() of `rel` (relative, no leading '/') beneath root_fd with RESOLVE_BENEATH and
// RESOLVE_NO_MAGICLINKS, retried on the kernel's EAGAIN a few times. The fd, or -errno.
[[nodiscard]] int openat2_beneath(int root_fd, const char* rel, uint64_t flags);
// The same without following any symlink (RESOLVE_NO_SYMLINKS): -ELOOP when one is on the way. What it
// opens is exactly at root_fd's path + `rel`, so its real path needs no /proc lookup.
[[nodiscard]] int openat2_beneath_plain(int root_fd, const char* rel, uint64_t flags);

// Percent-decodes the path part of a request target (query removed), then normalises it:
// "//" and "." segments dropped. Returns nullopt (-> 400) for: not starting with '/', a bad %xx,
// an encoded or raw NUL, a ".." segment (raw or encoded), an encoded '/' ("%2f").
// The result starts with '/'; a trailing '/' is kept (it selects the directory index).
std::optional<std::string> decode_request_path(std::string_view target);

// Query string of a target including the '?' (empty if none); used for redirects.
std::string_view target_query(std::string_view target);

// Strong validator: "<mtime hex>-<size hex>" in quotes, as nginx.
std::string make_etag(const struct stat& st);

struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};

enum class RangeResult { none, satisfiable, unsatisfiable };
// Parses one "bytes=a-b" / "bytes=a-" / "bytes=-n" range against `size`. Several ranges, other
// units or syntax errors give `none` (serve the whole file, as RFC 9110 allows).
RangeResult parse_range(std::string_view header, uint64_t size, ByteRange& out);

// RFC 9110 §13.2.2 evaluation order for GET/HEAD.
struct Preconditions {
  const std::string* if_none_match = nullptr;
  const std::string* if_modified_since = nullptr;
  const std::string* if_range = nullptr;
};
// True when the response should be 304 Not Modified.
bool not_modified(const Preconditions& p, const std::string& etag, time_t mtime);
// True when a Range header may be honoured given If-Range.
bool if_range_allows(const Preconditions& p, const std::string& etag, time_t mtime);

// An O_PATH descriptor of `decoded_path` beneath `root` (symlinks followed, never out of its anchor), or
// -errno. Opens nothing for reading, so it needs no permission on the last component.
[[nodiscard]] int open_path_beneath(const DocRoot& root, const std::string& decoded_path);

enum class OpenOutcome { file, directory_redirect, forbidden, not_found, bad_request };

struct OpenResult {
  OpenOutcome outcome = OpenOutcome::not_found;
  unique_fd fd;          // set for `file`
  struct stat st {};     // set for `file`
  std::string path;      // the decoded path actually opened (index file appended for directories)
  bool plain = false;    // reached without a symlink: really at the DocumentRoot + `path`
};

// Opens `decoded_path` (from decode_request_path) beneath `root`, refusing anything that resolves
// outside its anchor (symlinks included). A directory without a trailing '/' -> directory_redirect; a directory
// with one -> first existing DirectoryIndex file, else forbidden. EACCES/EPERM and escapes -> forbidden,
// ENOENT/ENOTDIR -> not_found. Only regular files are served (FIFOs, devices, sockets -> forbidden).
OpenResult open_beneath(const DocRoot& root, const std::string& decoded_path,
                        const std::vector<std::string>& directory_index);

// The precompressed form of the file opened for `decoded_path`: `decoded_path` + `suffix` (".gz", ".br")
// beneath `root`, when it is a regular file not older than `original` (precompressed_usable). Anything
// else (missing, unreadable, stale) is `not_found`: the caller then compresses or sends the original.
OpenResult open_precompressed(const DocRoot& root, const std::string& decoded_path, std::string_view suffix,
                              const struct stat& original);

}  // namespace itk

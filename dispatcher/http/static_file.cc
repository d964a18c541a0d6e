// Static file logic run in the worker under the vhost's uid: request path decoding, opening beneath the
// DocumentRoot with openat2(), validators, conditional requests and single byte ranges (RFC 9110).
#include "http/static_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "http/compression.h"
#include "http/http_chars.h"
#include "http/http_response.h"
#include "sys/io.h"
#include "sys/log.h"

namespace itk {

namespace {

// openat2() flags for every open of client-named paths. O_NONBLOCK so that a FIFO cannot hang the
// worker (it is refused after fstat); it is left on the regular files that are served, where Linux
// ignores it, so reads and sendfile block as usual without two fcntl calls per request. O_NOCTTY so
// that a terminal never becomes ours. Device nodes
// can only be put in a DocumentRoot by root (mknod needs CAP_MKNOD) and symlinks to /dev are refused
// by RESOLVE_BENEATH, so opening one is an administrator's choice, not a tenant's.
constexpr uint64_t kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;


int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one path segment (no raw '/'). False for a bad escape or a byte no file name we serve holds.
bool decode_segment(std::string_view seg, std::string& out) {
  out.clear();
  for (size_t i = 0; i < seg.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(seg[i]);
    if (c == '%') {
      if (i + 2 >= seg.size()) return false;
      int hi = hex_value(seg[i + 1]);
      int lo = hex_value(seg[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<unsigned char>(hi * 16 + lo);
      i += 2;
      // An encoded '/' is refused outright (Apache's AllowEncodedSlashes Off answers 404; a 400 says
      // more plainly that the request is malformed): accepting it would let "a%2f..%2fb" be one segment
      // to our dot-segment check yet two to anything that re-splits the path (logs, CGI PATH_INFO,
      // redirects), so no single check could be trusted.
      if (c == '/') return false;
    }
    // NUL would cut the path short in every C interface; other control bytes (CR, LF...) have no
    // place in a served name and would otherwise reach logs, CGI variables and Location headers.
    if (c < 0x20 || c == 0x7f) return false;
    out.push_back(static_cast<char>(c));
  }
  return true;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Strict unsigned decimal: at least one digit, nothing else, no overflow.
bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

std::string_view opaque_tag(std::string_view tag) {
  if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
  return tag;
}

// RFC 9110 §13.1.2: If-None-Match uses the weak comparison, so "W/" is ignored on both sides.
// A malformed list matches nothing (the request is then served in full, which is always safe).
bool etag_list_matches_weak(std::string_view list, std::string_view etag) {
  list = trim_ows(list);
  if (list == "*") return true;
  std::string_view ours = opaque_tag(etag);
  if (ours.empty()) return false;
  size_t i = 0;
  while (true) {
    while (i < list.size() && (is_ows(list[i]) || list[i] == ',')) ++i;
    if (i == list.size()) return false;
    if (list.substr(i, 2) == "W/") i += 2;
    if (i >= list.size() || list[i] != '"') return false;
    // etagc excludes DQUOTE, so the next quote closes the tag even if a ',' sits inside it.
    size_t close = list.find('"', i + 1);
    if (close == std::string_view::npos) return false;
    std::string_view tag = list.substr(i, close - i + 1);
    i = close + 1;
    while (i < list.size() && is_ows(list[i])) ++i;
    if (i < list.size() && list[i] != ',') return false;
    if (tag == ours) return true;
  }
}

OpenOutcome outcome_for_errno(int err, const std::string& rel) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
      return OpenOutcome::not_found;
    case EXDEV:   // resolution left the DocumentRoot (absolute symlink or "../" escape)
    case ELOOP:   // symlink loop, or a magic link
    case EACCES:
    case EPERM:
    case ENXIO:   // a socket, or a device without a driver
    case ENODEV:
    case EAGAIN:  // beneath-ness could not be proven after retries
      return OpenOutcome::forbidden;
    case ENOSYS: {
      // Never fall back to a plain openat(): without RESOLVE_BENEATH a symlink could leave the root.
      static bool logged = false;
      if (!logged) {
        logged = true;
        log(Level::err,
            "openat2() is not available (kernel older than 5.6, or blocked by a seccomp filter): every "
            "static file is refused with 403; run itk on Linux 5.6 or newer and allow openat2");
      }
      return OpenOutcome::forbidden;
    }
    default:
      errno = err;
      log(Level::err, "openat2 of \"%s\" beneath the DocumentRoot failed: %m; answering 403", rel.c_str());
      return OpenOutcome::forbidden;
  }
}

struct Node {
  OpenOutcome outcome = OpenOutcome::not_found;
  unique_fd fd;  // empty for a directory seen only through O_PATH
  struct stat st {};
  bool plain = false;  // no symlink on the way
};

// Opens `rel` beneath root_fd and stats it. outcome is `file` for anything that exists and could be
// examined; the caller decides by st_mode what to do with it.
Node open_node(int root_fd, const std::string& rel) {
  Node n;
  // Most paths hold no symlink: opened without following one, the file's real path is known without
  // asking /proc. ELOOP says one is there (or a loop): then the open that follows them within the root.
  int fd = openat2_beneath_plain(root_fd, rel.c_str(), kOpenFlags);
  n.plain = fd >= 0;
  if (fd == -ELOOP) fd = openat2_beneath(root_fd, rel.c_str(), kOpenFlags);
  if (fd < 0) {
    int err = -fd;
    if (err != EACCES) {
      n.outcome = outcome_for_errno(err, rel);
      return n;
    }
    // Unreadable: still a directory with search permission (mode 0711, common on shared hosts)
    // must redirect or serve its index, as Apache's stat()-based lookup does. O_PATH needs no read
    // permission on the last component and opens nothing.
    int pfd = openat2_beneath(root_fd, rel.c_str(), O_PATH | O_CLOEXEC);
    if (pfd < 0) {
      n.outcome = outcome_for_errno(-pfd, rel);
      return n;
    }
    unique_fd path_fd(pfd);
    if (fstat(path_fd.get(), &n.st) != 0 || !S_ISDIR(n.st.st_mode)) {
      n.outcome = OpenOutcome::forbidden;
      return n;
    }
    n.outcome = OpenOutcome::file;
    return n;
  }
  n.fd.reset(fd);
  if (fstat(fd, &n.st) != 0) {
    n.outcome = outcome_for_errno(errno, rel);
    n.fd.reset();
    return n;
  }
  n.outcome = OpenOutcome::file;
  return n;
}

}  // namespace

namespace {

int openat2_retried(int root_fd, const char* rel, uint64_t flags, uint64_t resolve) {
  struct open_how how {};
  how.flags = flags;
  how.resolve = resolve;
  // EAGAIN: the kernel saw a concurrent rename while resolving ".." inside a symlink target and could
  // not prove the walk stayed beneath; openat2(2) says to retry. Bounded so a hostile renamer cannot
  // keep a worker spinning.
  for (int attempt = 0;; ++attempt) {
    long r = syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
    if (r >= 0) return static_cast<int>(r);
    if ((errno == EAGAIN || errno == EINTR) && attempt < 8) continue;
    return -errno;
  }
}

}  // namespace

int openat2_beneath(int root_fd, const char* rel, uint64_t flags) {
  return openat2_retried(root_fd, rel, flags, kResolve);
}

int openat2_beneath_plain(int root_fd, const char* rel, uint64_t flags) {
  return openat2_retried(root_fd, rel, flags, kResolve | RESOLVE_NO_SYMLINKS);
}

int open_path_beneath(const DocRoot& root, const std::string& decoded_path) {
  return openat2_beneath(root.anchor.get(), root.rel(decoded_path).c_str(), O_PATH | O_CLOEXEC);
}

std::optional<std::string> decode_request_path(std::string_view target) {
  std::string_view raw = target.substr(0, target.find_first_of("?#"));
  if (raw.empty() || raw.front() != '/') return std::nullopt;

  std::string out;
  out.reserve(raw.size());
  std::string seg;
  bool trailing_slash = false;
  size_t pos = 0;  // at a '/'
  while (pos < raw.size()) {
    size_t next = raw.find('/', pos + 1);
    std::string_view raw_seg =
        raw.substr(pos + 1, next == std::string_view::npos ? std::string_view::npos : next - pos - 1);
    if (!decode_segment(raw_seg, seg)) return std::nullopt;
    // Dot segments are judged after decoding, so "%2e%2e", ".%2e" and "%2E." are refused like "..";
    // decoding happens once, so "%252e%252e" stays the literal name "%2e%2e".
    if (seg == "..") return std::nullopt;
    if (seg.empty() || seg == ".") {
      trailing_slash = true;
    } else {
      out.push_back('/');
      out += seg;
      trailing_slash = false;
    }
    if (next == std::string_view::npos) break;
    pos = next;
  }
  if (out.empty() || trailing_slash) out.push_back('/');
  return out;
}

std::string_view target_query(std::string_view target) {
  size_t q = target.find_first_of("?#");
  if (q == std::string_view::npos || target[q] != '?') return {};
  std::string_view query = target.substr(q);
  return query.substr(0, query.find('#'));
}

std::string make_etag(const struct stat& st) {
  return strprintf("\"%llx-%llx\"", static_cast<unsigned long long>(st.st_mtime),
                   static_cast<unsigned long long>(st.st_size));
}

RangeResult parse_range(std::string_view header, uint64_t size, ByteRange& out) {
  header = trim_ows(header);
  // The unit is case-insensitive (RFC 9110 §14.1); no whitespace is allowed around '=' or '-'.
  if (header.size() < 6 || !iequals(header.substr(0, 5), "bytes") || header[5] != '=') {
    return RangeResult::none;
  }
  std::string_view spec = header.substr(6);
  // Several ranges would need multipart/byteranges; serving the whole representation is allowed.
  if (spec.find(',') != std::string_view::npos) return RangeResult::none;
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeResult::none;
  std::string_view first_s = spec.substr(0, dash);
  std::string_view last_s = spec.substr(dash + 1);

  if (first_s.empty()) {
    uint64_t suffix = 0;
    if (!parse_u64(last_s, suffix)) return RangeResult::none;
    if (size == 0 || suffix == 0) return RangeResult::unsatisfiable;
    out.first = suffix >= size ? 0 : size - suffix;
    out.last = size - 1;
    return RangeResult::satisfiable;
  }

  uint64_t first = 0;
  if (!parse_u64(first_s, first)) return RangeResult::none;
  uint64_t last = UINT64_MAX;
  if (!last_s.empty()) {
    if (!parse_u64(last_s, last)) return RangeResult::none;
    if (last < first) return RangeResult::none;
  }
  if (size == 0 || first >= size) return RangeResult::unsatisfiable;
  out.first = first;
  out.last = last < size - 1 ? last : size - 1;
  return RangeResult::satisfiable;
}

bool not_modified(const Preconditions& p, const std::string& etag, time_t mtime) {
  // RFC 9110 §13.2.2 step 3: If-None-Match, when present, decides alone.
  if (p.if_none_match != nullptr) return etag_list_matches_weak(*p.if_none_match, etag);
  // Step 4: If-Modified-Since. An unparsable date, or one in the future (it cannot come from a
  // Last-Modified we sent), is ignored (§13.1.3).
  if (p.if_modified_since != nullptr) {
    time_t since = parse_http_date(*p.if_modified_since);
    if (since == -1 || since > time(nullptr)) return false;
    return mtime <= since;
  }
  return false;
}

bool if_range_allows(const Preconditions& p, const std::string& etag, time_t mtime) {
  if (p.if_range == nullptr) return true;
  std::string_view v = trim_ows(*p.if_range);
  // §13.1.5: an entity-tag must match by strong comparison, so a weak tag on either side never does.
  if (v.substr(0, 2) == "W/") return false;
  if (!v.empty() && v.front() == '"') {
    return etag.size() >= 2 && etag.compare(0, 2, "W/") != 0 && v == etag;
  }
  // A date must be exactly the Last-Modified we send, and that must be a strong validator (§8.8.2.2):
  // a file modified in the current second could change again within it under the same date.
  time_t t = parse_http_date(v);
  return t != -1 && t == mtime && mtime < time(nullptr);
}

OpenResult open_beneath(const DocRoot& root, const std::string& decoded_path,
                        const std::vector<std::string>& directory_index) {
  OpenResult r;
  if (decoded_path.empty() || decoded_path.front() != '/' || decoded_path.find('\0') != std::string::npos) {
    r.outcome = OpenOutcome::bad_request;
    return r;
  }
  const int root_fd = root.anchor.get();
  std::string rel = root.rel(decoded_path);
  Node n = open_node(root_fd, rel);
  if (n.outcome != OpenOutcome::file) {
    r.outcome = n.outcome;
    return r;
  }

  if (S_ISDIR(n.st.st_mode)) {
    if (decoded_path.back() != '/') {
      r.outcome = OpenOutcome::directory_redirect;
      r.path = decoded_path;
      return r;
    }
    n.fd.reset();
    for (const std::string& entry : directory_index) {
      // Index names come from the config; one that could walk the tree is skipped, never followed.
      if (entry.empty() || entry == "." || entry == ".." || entry.find('/') != std::string::npos ||
          entry.find('\0') != std::string::npos) {
        continue;
      }
      std::string candidate = decoded_path + entry;
      std::string crel = root.rel(candidate);
      Node idx = open_node(root_fd, crel);
      if (idx.outcome == OpenOutcome::not_found) continue;
      if (idx.outcome != OpenOutcome::file || !idx.fd || !S_ISREG(idx.st.st_mode)) {
        r.outcome = OpenOutcome::forbidden;
        return r;
      }
      r.outcome = OpenOutcome::file;
      r.fd = std::move(idx.fd);
      r.st = idx.st;
      r.path = std::move(candidate);
      r.plain = idx.plain;
      return r;
    }
    // No index: Apache without Options Indexes answers 403, and so do we (no listings).
    r.outcome = OpenOutcome::forbidden;
    return r;
  }

  if (!S_ISREG(n.st.st_mode) || !n.fd) {
    r.outcome = OpenOutcome::forbidden;
    return r;
  }
  r.outcome = OpenOutcome::file;
  r.fd = std::move(n.fd);
  r.st = n.st;
  r.path = decoded_path;
  r.plain = n.plain;
  return r;
}

OpenResult open_precompressed(const DocRoot& root, const std::string& decoded_path, std::string_view suffix,
                              const struct stat& original) {
  OpenResult r;
  std::string path = decoded_path + std::string(suffix);
  std::string rel = root.rel(path);
  int fd = openat2_beneath_plain(root.anchor.get(), rel.c_str(), kOpenFlags);
  r.plain = fd >= 0;
  if (fd == -ELOOP) fd = openat2_beneath(root.anchor.get(), rel.c_str(), kOpenFlags);
  if (fd < 0) return r;
  unique_fd owner(fd);
  if (fstat(fd, &r.st) != 0 || !precompressed_usable(original, r.st)) return r;
  r.outcome = OpenOutcome::file;
  r.fd = std::move(owner);
  r.path = std::move(path);
  return r;
}

}  // namespace itk

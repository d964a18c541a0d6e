// Access rules in the worker, as the tenant: the segments and Deny prefixes of a path, and the .htaccess
// files of the directories it walks through, read with the tenant's permissions beneath the DocumentRoot.
#include "http/access_rules.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "http/static_file.h"
#include "sys/fd_path.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {

namespace {

// The segments of a normalised path, in order; empty ones (a trailing '/') are left out.
std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t slash = path.find('/', i);
    size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > i) out.push_back(path.substr(i, end - i));
    i = end + 1;
  }
  return out;
}

int64_t coarse_now_ns() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

AccessVerdict refuse(std::string reason) { return {false, std::move(reason)}; }

}  // namespace

bool has_dot_segment(std::string_view path) {
  std::vector<std::string_view> segs = segments(path);
  for (size_t i = 0; i < segs.size(); i++)
    if (segs[i][0] == '.' && !(i == 0 && segs[i] == ".well-known")) return true;
  return false;
}

bool has_ht_segment(std::string_view path) {
  for (std::string_view seg : segments(path))
    if (seg.substr(0, 3) == ".ht") return true;
  return false;
}

const std::string* denying_prefix(const std::vector<std::string>& prefixes, std::string_view path) {
  for (const std::string& p : prefixes) {
    if (p == "/") return &p;
    if (path.substr(0, p.size()) == p && (path.size() == p.size() || path[p.size()] == '/')) return &p;
  }
  return nullptr;
}

AccessVerdict AccessCheck::walk(const DocRoot& root, const VHost& vh, std::string_view path, bool last_is_file,
                                bool beyond) {
  if (vh.deny_dot_files && has_dot_segment(path)) return refuse("a path segment starts with '.' (DenyDotFiles)");
  if (has_ht_segment(path)) return refuse("a path segment starts with '.ht'");
  if (const std::string* p = beyond ? nullptr : denying_prefix(vh.deny_prefixes, path)) return refuse("Deny = " + *p);

  std::vector<std::string_view> segs = segments(path);
  const bool trailing_slash = !path.empty() && path.back() == '/';
  // The name <Files> blocks are matched against; a path ending in '/' names its directory index, which is
  // checked on its own once resolved.
  std::string_view name = trailing_slash || segs.empty() ? std::string_view() : segs.back();
  // Directories whose .htaccess applies, below the root: every segment, but the last when it is a file.
  size_t dirs = segs.size() - (last_is_file && !segs.empty() ? 1 : 0);

  std::string rel;  // the directory being looked at, relative to the root
  const int top_fd = beyond ? root.anchor.get() : root.dir_fd();
  const std::string& prefix = beyond ? std::string() : root.prefix;
  const std::string& base = beyond ? root.anchor_real : root.real;
  const int64_t now = recheck_ns_ > 0 ? coarse_now_ns() : 0;
  // Bounded: a tenant with many directories cannot grow a worker without end; all is looked at again.
  if (seen_.size() >= 4096) seen_.clear();
  for (size_t i = 0;; i++) {
    std::string shown = base + (rel.empty() ? "" : "/" + rel) + "/.htaccess";
    const Seen* s = fresh(shown, now);
    if (s == nullptr) {
      Seen fresh_look{now, false, {}};
      unique_fd dir;  // the directory, opened O_PATH; the root itself is borrowed
      int dir_fd = top_fd;
      if (i > 0) {
        int fd = openat2_beneath(root.anchor.get(), (prefix + rel).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) dir.reset(fd);
        dir_fd = fd;
      }
      if (dir_fd >= 0) {
        fresh_look.is_dir = true;
        fresh_look.htaccess = cache_.load(dir_fd, shown);
      }
      s = &(seen_[shown] = std::move(fresh_look));
    }
    // Not a directory, missing, or closed to the tenant: nothing deeper can be served either, and the
    // open of the file itself gives the answer (403 or 404).
    if (!s->is_dir) break;
    const HtaccessCache::Result& h = s->htaccess;
    if (h.state == HtaccessCache::State::refused) return refuse(shown + " cannot be used");
    if (h.state == HtaccessCache::State::present) {
      if (int line = h.file->denies_directory()) return refuse(strprintf("%s:%d", shown.c_str(), line));
      if (!name.empty())
        if (int line = h.file->denies_file(name)) return refuse(strprintf("%s:%d", shown.c_str(), line));
    }
    if (i == dirs) break;
    if (!rel.empty()) rel += '/';
    rel += segs[i];
  }
  return {};
}

const AccessCheck::Seen* AccessCheck::fresh(const std::string& shown, int64_t now_ns) const {
  if (recheck_ns_ <= 0) return nullptr;
  auto it = seen_.find(shown);
  if (it == seen_.end() || now_ns - it->second.at_ns >= recheck_ns_) return nullptr;
  return &it->second;
}

AccessVerdict AccessCheck::check_request(const DocRoot& root, const VHost& vh, const std::string& path) {
  return walk(root, vh, path, false);
}

// `real` below `top` as a request path ("/a/b", "/" for `top` itself), or empty when it is not below.
static std::string below(const std::string& top, const std::string& real) {
  if (top == "/") return real;
  if (real == top) return "/";
  if (real.size() > top.size() && real.compare(0, top.size(), top) == 0 && real[top.size()] == '/')
    return real.substr(top.size());
  return {};
}

AccessVerdict AccessCheck::check_resolved(const DocRoot& root, const VHost& vh, int fd, const std::string& asked) {
  std::string real = fd_path(fd);
  if (root.real.empty() || real.empty())
    return refuse("its real path is unknown (is /proc mounted?): itk cannot tell where it resolves to");
  std::string rel = below(root.real, real);
  if (!rel.empty()) return rel == asked ? AccessVerdict{} : walk(root, vh, rel, true);
  // Elsewhere in the tenant's tree (a release's `uploads -> ../../shared/uploads`): its dotfile rules and
  // .htaccess files from SymlinkRoot down.
  rel = root.prefix.empty() ? std::string() : below(root.anchor_real, real);
  if (rel.empty()) return refuse("it resolves to " + real + ", outside the DocumentRoot " + root.real);
  return walk(root, vh, rel, true, true);
}

AccessVerdict AccessCheck::check_opened(const DocRoot& root, const VHost& vh, const OpenResult& file,
                                        const std::string& asked) {
  if (!file.plain) return check_resolved(root, vh, file.fd.get(), asked);
  return file.path == asked ? AccessVerdict{} : walk(root, vh, file.path, true);
}

AccessVerdict AccessCheck::check_resolved_path(const DocRoot& root, const VHost& vh, const std::string& path,
                                               const std::string& asked) {
  std::string rel = root.rel(path);
  int plain = openat2_beneath_plain(root.anchor.get(), rel.c_str(), O_PATH | O_CLOEXEC);
  if (plain >= 0) {
    unique_fd owner(plain);
    return path == asked ? AccessVerdict{} : walk(root, vh, path, true);
  }
  int fd = plain == -ELOOP ? open_path_beneath(root, path) : plain;
  if (fd < 0) return refuse(strprintf("cannot open it: %s", strerror(-fd)));
  unique_fd owner(fd);
  return check_resolved(root, vh, fd, asked);
}

}  // namespace itk

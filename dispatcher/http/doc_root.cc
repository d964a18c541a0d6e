// Opening a vhost's DocumentRoot for one connection, as the tenant, beneath its SymlinkRoot.
#include "http/doc_root.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "http/static_file.h"

namespace itk {
namespace {

std::string real_path(int fd) {
  char link[64], buf[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf || buf[0] != '/') return {};
  return std::string(buf, static_cast<size_t>(n));
}

DocRoot failed(int err) {
  DocRoot r;
  r.error = err;
  return r;
}

}  // namespace

std::string DocRoot::rel(const std::string& decoded_path) const {
  if (decoded_path.size() <= 1) return prefix.empty() ? std::string(".") : prefix;
  return prefix + decoded_path.substr(1);
}

DocRoot doc_root_at(unique_fd dir) {
  DocRoot r;
  r.anchor_real = dir ? real_path(dir.get()) : std::string();
  if (r.anchor_real.empty()) return failed(dir ? EACCES : EBADF);  // without /proc nothing beneath can be checked
  r.anchor.reset(fcntl(dir.get(), F_DUPFD_CLOEXEC, 3));
  if (!r.anchor) return failed(errno);
  r.dir = std::move(dir);
  r.real = r.anchor_real;
  return r;
}

DocRoot open_doc_root(const VHost& vh) {
  const std::string& top = vh.symlink_root.empty() ? vh.document_root : vh.symlink_root;
  unique_fd top_fd(open(top.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!top_fd) return failed(errno);
  DocRoot r = doc_root_at(std::move(top_fd));
  if (!r.ok() || vh.symlink_root.empty()) return r;
  // The part of DocumentRoot below SymlinkRoot ("current"), resolved beneath it: the tenant's links are
  // followed as far as they stay inside.
  std::string below = vh.document_root.size() > top.size() ? vh.document_root.substr(top.size() + 1) : ".";
  int fd = openat2_beneath(r.anchor.get(), below.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failed(-fd);
  r.dir.reset(fd);
  r.real = real_path(fd);
  if (r.real.empty()) return failed(EACCES);
  const std::string& a = r.anchor_real;
  if (r.real == a) return r;
  if (r.real.size() <= a.size() || r.real.compare(0, a.size(), a) != 0 || (a != "/" && r.real[a.size()] != '/'))
    return failed(EXDEV);
  r.prefix = r.real.substr(a == "/" ? 1 : a.size() + 1) + "/";
  return r;
}

}  // namespace itk

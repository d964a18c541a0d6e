// Opening a vhost's DocumentRoot for one connection, as the tenant, beneath its SymlinkRoot.
#include "http/doc_root.h"

#include <fcntl.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sys/syscall.h>

#include <cerrno>

#include "http/static_file.h"
#include "sys/fd_path.h"

namespace itk {
namespace {

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

DocRoot doc_root_at(unique_fd dir, std::string real) {
  if (!dir) return failed(EBADF);
  DocRoot r;
  r.anchor_real = real.empty() ? fd_path(dir.get()) : std::move(real);
  if (r.anchor_real.empty()) return failed(EACCES);  // without /proc nothing beneath can be checked
  r.anchor = std::move(dir);
  r.real = r.anchor_real;
  return r;
}

DocRoot open_doc_root(const VHost& vh) {
  const std::string& top = vh.symlink_root.empty() ? vh.document_root : vh.symlink_root;
  // The configured path is normalised (absolute, no "." or ".."): opened without following any link, it is
  // its own real path, and no /proc lookup is needed, which a connection that serves one request notices.
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS;
  long plain = syscall(SYS_openat2, AT_FDCWD, top.c_str(), &how, sizeof how);
  unique_fd top_fd(plain >= 0 ? static_cast<int>(plain) : open(top.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!top_fd) return failed(errno);
  DocRoot r = doc_root_at(std::move(top_fd), plain >= 0 ? top : std::string());
  if (!r.ok() || vh.symlink_root.empty()) return r;
  // The part of DocumentRoot below SymlinkRoot ("current"), resolved beneath it: the tenant's links are
  // followed as far as they stay inside.
  std::string below = vh.document_root.size() > top.size() ? vh.document_root.substr(top.size() + 1) : ".";
  int fd = openat2_beneath(r.anchor.get(), below.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failed(-fd);
  r.dir.reset(fd);
  r.real = fd_path(fd);
  if (r.real.empty()) return failed(EACCES);
  const std::string& a = r.anchor_real;
  if (r.real == a) return r;
  if (r.real.size() <= a.size() || r.real.compare(0, a.size(), a) != 0 || (a != "/" && r.real[a.size()] != '/'))
    return failed(EXDEV);
  r.prefix = r.real.substr(a == "/" ? 1 : a.size() + 1) + "/";
  return r;
}

}  // namespace itk

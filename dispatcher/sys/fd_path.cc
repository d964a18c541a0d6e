// Reading /proc/self/fd/N: the one place the workers ask the kernel where a file really is.
#include "sys/fd_path.h"

#include <unistd.h>

#include <climits>
#include <cstdio>

namespace itk {

std::string fd_path(int fd) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char buf[PATH_MAX];
  ssize_t n = readlink(link, buf, sizeof buf);
  // An anonymous file reads "pipe:[..]" or "anon_inode:..": not a path to match on.
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf || buf[0] != '/') return {};
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace itk

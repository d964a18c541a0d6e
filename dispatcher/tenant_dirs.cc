// ACLs on the master's per-vhost directories, and link-safe removal of tenants' trees.
#include "tenant_dirs.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "log.h"

namespace itk {

bool set_user_acl(int dir_fd, uid_t uid, unsigned perms) {
  struct Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  const uint32_t undefined = htole32(0xffffffffu);
  const uint16_t p = htole16(static_cast<uint16_t>(perms & 7));
  // USER_OBJ rwx, USER uid, GROUP_OBJ ---, MASK (= the named user's), OTHER ---, in the kernel's order.
  struct {
    uint32_t version;
    Entry e[5];
  } acl = {htole32(2),
           {{htole16(0x01), htole16(7), undefined},
            {htole16(0x02), p, htole32(uid)},
            {htole16(0x04), htole16(0), undefined},
            {htole16(0x10), p, undefined},
            {htole16(0x20), htole16(0), undefined}}};
  return fsetxattr(dir_fd, "system.posix_acl_access", &acl, sizeof acl, 0) == 0;
}

namespace {

struct DirCloser {
  void operator()(DIR* d) const { (void)closedir(d); }
};

bool remove_level(int parent, const char* name, int depth_left) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    // Not a directory (or a symbolic link to one): the entry itself goes.
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT) return true;
    log(Level::warning, "cannot remove %s: %s", name, strerror(errno));
    return false;
  }
  bool all = true;
  std::unique_ptr<DIR, DirCloser> d(fdopendir(fd));
  if (!d) {
    (void)close(fd);
    return false;
  }
  if (depth_left <= 0) {
    log(Level::warning, "not removing %s: nested deeper than itk descends", name);
    return false;
  }
  // Names first, then removal: unlinking while reading a directory may skip entries.
  std::vector<std::string> names;
  while (dirent* e = readdir(d.get()))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  for (const std::string& n : names) all = remove_level(dirfd(d.get()), n.c_str(), depth_left - 1) && all;
  d.reset();
  if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    log(Level::warning, "cannot remove directory %s: %s", name, strerror(errno));
    all = false;
  }
  return all;
}

}  // namespace

bool remove_tree(int parent, const char* name, int max_depth) { return remove_level(parent, name, max_depth); }

}  // namespace itk

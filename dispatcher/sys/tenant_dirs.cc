// ACLs on the master's per-vhost directories, and link-safe removal of tenants' trees; nothing here logs.
#include "sys/tenant_dirs.h"

#include <endian.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sys/dir_ptr.h"
#include "sys/unique_fd.h"

namespace itk {

SysResult set_user_acl(int dir_fd, uid_t uid, unsigned perms) {
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
  if (fsetxattr(dir_fd, "system.posix_acl_access", &acl, sizeof acl, 0) != 0) return SysResult{errno};
  return {};
}

std::string RemoveResult::text(const std::string& parent_path) const {
  if (too_deep) return "not removing " + parent_path + "/" + entry + ": nested deeper than itk descends";
  return "cannot remove " + parent_path + "/" + entry + ": " + strerror(err);
}

namespace {

// Keeps the first failure of a walk.
void note(RemoveResult& first, RemoveResult r) {
  if (first && !r) first = std::move(r);
}

RemoveResult remove_level(int parent, const std::string& name, int depth_left) {
  unique_fd fd(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    // Not a directory (or a symbolic link to one): the entry itself goes.
    if (unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT) return {};
    return RemoveResult{errno, false, name};
  }
  DirPtr d = open_dir(std::move(fd));
  if (!d) return RemoveResult{errno, false, name};
  if (depth_left <= 0) return RemoveResult{0, true, name};
  // Names first, then removal: unlinking while reading a directory may skip entries.
  std::vector<std::string> names;
  while (dirent* e = readdir(d.get()))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  RemoveResult first;
  for (const std::string& n : names) {
    RemoveResult r = remove_level(dirfd(d.get()), n, depth_left - 1);
    if (!r) r.entry = name + "/" + r.entry;
    note(first, std::move(r));
  }
  d.reset();
  if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) note(first, RemoveResult{errno, false, name});
  return first;
}

}  // namespace

RemoveResult remove_tree(int parent, const char* name, int max_depth) { return remove_level(parent, name, max_depth); }

}  // namespace itk

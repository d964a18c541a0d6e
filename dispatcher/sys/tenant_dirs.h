// Directories the root master makes for tenants, and removes: a POSIX ACL that admits one uid, and
// removal of a tree a tenant filled, never following a symbolic link it planted.
#pragma once

#include <sys/types.h>

#include <string>

#include "sys/io.h"

namespace itk {

// Sets the access ACL of the directory `dir_fd` to: owner rwx, `uid` with `perms` (a mask of 4, 2, 1),
// nobody else anything (root aside). Fails (EOPNOTSUPP) when the file system has no ACLs.
SysResult set_user_acl(int dir_fd, uid_t uid, unsigned perms);

// What remove_tree left: the first entry it could not remove, and why.
struct [[nodiscard]] RemoveResult {
  int err = 0;             // errno of the failed call; 0 with `too_deep`
  bool too_deep = false;   // nested deeper than max_depth
  std::string entry;       // relative to the `parent` given to remove_tree
  explicit operator bool() const { return err == 0 && !too_deep; }
  std::string text(const std::string& parent_path) const;  // for the journal
};

// Removes `name` beneath the directory `parent` and everything in it, opening every level with
// O_NOFOLLOW relative to the one above, so no symbolic link is ever followed and no path is resolved
// twice. Levels deeper than `max_depth` are left (a tenant can nest without end; the stack cannot).
// Goes on past a failure and reports the first.
RemoveResult remove_tree(int parent, const char* name, int max_depth = 256);

}  // namespace itk

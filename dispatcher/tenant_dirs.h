// Directories the root master makes for tenants, and removes: a POSIX ACL that admits one uid, and
// removal of a tree a tenant filled, never following a symbolic link it planted.
#pragma once

#include <sys/types.h>

namespace itk {

// Sets the access ACL of the directory `dir_fd` to: owner rwx, `uid` with `perms` (a mask of 4, 2, 1),
// nobody else anything (root aside). False with errno when the file system has no ACLs.
[[nodiscard]] bool set_user_acl(int dir_fd, uid_t uid, unsigned perms);

// Removes `name` beneath the directory `parent` and everything in it, opening every level with
// O_NOFOLLOW relative to the one above, so no symbolic link is ever followed and no path is resolved
// twice. Levels deeper than `max_depth` are left (a tenant can nest without end; the stack cannot).
// Returns false when something could not be removed (it is logged).
bool remove_tree(int parent, const char* name, int max_depth = 256);

}  // namespace itk

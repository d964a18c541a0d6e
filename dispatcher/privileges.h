// The only places itk changes credentials. Both functions verify the result and abort the
// process if any credential is not exactly what was asked for: a half-dropped process must
// never go on to touch client bytes.
#pragma once

#include <optional>

#include "config.h"

namespace itk {

// Acceptor: called in a freshly forked child of the root master. Switches to `who` keeping only
// CAP_SETUID, CAP_SETGID and CAP_SYS_NICE (the bounding set is cut to those too), marks the
// process non-dumpable, and installs a seccomp filter that lets set*uid/set*gid reach only ids
// inside `uids`/`gids`. Aborts on failure.
void become_acceptor(const Identity& who, const IdRange& uids, const IdRange& gids);

// Worker: called in a child of an acceptor. Switches to the tenant (groups, gid, uid), applies
// `nice` if given, drops every capability, sets no_new_privs and non-dumpable, then proves that
// uid 0 cannot be regained. Aborts on failure.
void become_tenant(const Identity& tenant, std::optional<int> nice);

}  // namespace itk

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

// FastCGI app process: called in a child of the root master, before become_tenant. Cuts the
// bounding set to what an acceptor keeps, so that the app starts from exactly a worker's state.
void limit_bounding_set();

// Worker and FastCGI app process: called in a child of an acceptor (or after limit_bounding_set in
// a child of the master). Switches to the tenant (groups, gid, uid), applies
// `nice` if given, drops every capability, sets no_new_privs and non-dumpable, then proves that
// uid 0 cannot be regained. Aborts on failure.
void become_tenant(const Identity& tenant, std::optional<int> nice);

}  // namespace itk

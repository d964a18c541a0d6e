// The only places itk changes credentials: each process role's sandbox, declared in one table in
// privileges.cc, applied by one function that reads every result back and aborts on any mismatch.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "sys/identity.h"

namespace itk {

// The seccomp filter a role loads; the rules sit next to the roles' table in privileges.cc.
enum class Syscalls : uint8_t {
  any,          // no filter
  spawner,      // default allow; set*id only inside the tenant ranges, no namespaces, clone3 is ENOSYS
  acceptor,     // allow-list of an epoll loop over sockets; anything else fails with EPERM
  key_process,  // allow-list of datagrams, poll and memory; anything else fails with EPERM
};

// What a role keeps. Capability sets are masks of (1 << CAP_x).
struct Policy {
  const char* role;     // names the role in the log line of a failure
  uint64_t keep;        // permitted and effective afterwards; inheritable and ambient are always empty
  uint64_t bounding;    // the bounding set afterwards: cut when wider, a failure when it cannot be met
  unsigned securebits;  // set and locked (needs CAP_SETPCAP, so a start as root); 0 leaves them as inherited
  Syscalls syscalls;
  bool no_new_privs;
  bool dumpable;
};

// A process's sandbox: its role's policy and the identity it runs as.
struct Sandbox {
  Policy policy;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // the supplementary groups, exactly (the kernel keeps them sorted)
  std::optional<int> nice;    // set first, while CAP_SYS_NICE may still be held
  IdRange uids, gids;         // Syscalls::spawner: the only ids set*id may reach
};

// Puts this process into `s` and verifies every postcondition (ids, groups, the five capability sets
// through capget and /proc/self/status, securebits, no_new_privs, dumpable, the filter being in force);
// logs and aborts on the first failure. Cannot be undone: call it in the process that is to live in it.
void apply_sandbox(const Sandbox& s);

// Spawner: from root. User `who` keeping CAP_SETUID, CAP_SETGID and CAP_SYS_NICE (the bounding set cut
// to those); set*uid/set*gid reach only ids inside `uids`/`gids`; no namespaces. It forks workers and
// reads only fixed-format messages from acceptors, never a client byte.
void become_spawner(const Identity& who, const IdRange& uids, const IdRange& gids);

// Acceptor: from root. User `who` with no capability in any set, the bounding set included, and the
// acceptor's system call allow-list: it parses untrusted bytes and so holds nothing worth taking.
void become_acceptor(const Identity& who);

// FastCGI app process: in a child of the root master, before become_tenant. Cuts the bounding set to
// the spawner's, so that the app starts from exactly a worker's state.
void limit_bounding_set();

// Worker and FastCGI app process: in a child of the spawner (or after limit_bounding_set in a child of
// the master). The tenant's groups, gid and uid, `nice` if given, no capability left.
void become_tenant(const Identity& tenant);

// Key process: from root, after the keys are read. User `who`, no capability, the key process's
// allow-list (no open, no socket, no exec).
void become_key_process(const Identity& who);

}  // namespace itk

// Credential changes for acceptors and workers; every change is verified, every failure aborts.
#include "privileges.h"

#include <grp.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "log.h"

namespace itk {
namespace {

[[noreturn]] void die(const char* what) {
  log(Level::err, "security invariant broken: %s: %s; aborting", what, strerror(errno));
  abort();
}

void check(bool ok, const char* what) {
  if (!ok) die(what);
}

void set_caps(const cap_value_t* keep, int n) {
  cap_t caps = cap_init();  // all sets empty
  check(caps != nullptr, "cap_init");
  if (n > 0) {
    check(cap_set_flag(caps, CAP_PERMITTED, n, keep, CAP_SET) == 0, "cap_set_flag permitted");
    check(cap_set_flag(caps, CAP_EFFECTIVE, n, keep, CAP_SET) == 0, "cap_set_flag effective");
  }
  int rc = cap_set_proc(caps);
  int saved = errno;
  cap_free(caps);
  errno = saved;
  check(rc == 0, "cap_set_proc");
}

void verify_ids(uid_t uid, gid_t gid) {
  uid_t r, e, s;
  gid_t rg, eg, sg;
  check(getresuid(&r, &e, &s) == 0, "getresuid");
  check(r == uid && e == uid && s == uid, "uid is not the target in all of real/effective/saved");
  check(getresgid(&rg, &eg, &sg) == 0, "getresgid");
  check(rg == gid && eg == gid && sg == gid, "gid is not the target in all of real/effective/saved");
}

void verify_no_caps() {
  cap_t caps = cap_get_proc();
  check(caps != nullptr, "cap_get_proc");
  cap_t empty = cap_init();
  int diff = cap_compare(caps, empty);
  cap_free(caps);
  cap_free(empty);
  errno = 0;
  check(diff == 0, "capabilities remain after dropping them all");
  check(cap_get_ambient(CAP_SETUID) <= 0, "ambient capabilities remain");
}

void install_id_filter(const IdRange& uids, const IdRange& gids) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  check(ctx != nullptr, "seccomp_init");
  // Every uid/gid argument must lie inside the configured range; (uid_t)-1 ("unchanged") is outside
  // it too, which is fine: workers always pass all three ids.
  struct Rule {
    int nr;
    int args;
    const IdRange* range;
  };
  const Rule rules[] = {
      {SCMP_SYS(setuid), 1, &uids},   {SCMP_SYS(setreuid), 2, &uids}, {SCMP_SYS(setresuid), 3, &uids},
      {SCMP_SYS(setfsuid), 1, &uids}, {SCMP_SYS(setgid), 1, &gids},   {SCMP_SYS(setregid), 2, &gids},
      {SCMP_SYS(setresgid), 3, &gids}, {SCMP_SYS(setfsgid), 1, &gids},
  };
  for (const Rule& r : rules) {
    for (int a = 0; a < r.args; a++) {
      int rc1 = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), r.nr, 1,
                                 scmp_arg_cmp{static_cast<unsigned>(a), SCMP_CMP_LT, r.range->min, 0});
      // (uid_t)-1 passed as a 32-bit value is 0xffffffff: above any max we allow.
      int rc2 = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), r.nr, 1,
                                 scmp_arg_cmp{static_cast<unsigned>(a), SCMP_CMP_GT, r.range->max, 0});
      if (rc1 < 0 || rc2 < 0) {
        errno = -(rc1 < 0 ? rc1 : rc2);
        seccomp_release(ctx);
        die("seccomp_rule_add for the uid/gid range");
      }
    }
  }
  int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc < 0) {
    errno = -rc;
    die("seccomp_load of the uid/gid range filter");
  }
}

}  // namespace

void limit_bounding_set() {
  for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
    if (c == CAP_SETUID || c == CAP_SETGID || c == CAP_SYS_NICE) continue;
    if (cap_drop_bound(c) != 0 && errno != EINVAL) die("cap_drop_bound");
  }
}

void become_acceptor(const Identity& who, const IdRange& uids, const IdRange& gids) {
  static const cap_value_t keep[] = {CAP_SETUID, CAP_SETGID, CAP_SYS_NICE};
  check(geteuid() == 0, "acceptor must start as root to switch user");
  // Cut the bounding set first, while CAP_SETPCAP is still held.
  limit_bounding_set();
  check(cap_reset_ambient() == 0 || errno == EINVAL, "cap_reset_ambient");
  check(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0, "PR_SET_KEEPCAPS 1");
  check(setgroups(1, &who.gid) == 0, "setgroups for the acceptor user");
  check(setresgid(who.gid, who.gid, who.gid) == 0, "setresgid to the acceptor user");
  check(setresuid(who.uid, who.uid, who.uid) == 0, "setresuid to the acceptor user");
  check(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == 0, "PR_SET_KEEPCAPS 0");
  verify_ids(who.uid, who.gid);
  set_caps(keep, 3);
  // Acceptors hold other clients' request bytes: nobody may attach to them or read their memory.
  check(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, "PR_SET_DUMPABLE 0");
  check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
  install_id_filter(uids, gids);
  // Root must be out of reach even with CAP_SETUID: the filter refuses uid 0 since ranges start at 1.
  check(setresuid(0, 0, 0) != 0, "setresuid(0) succeeded in the acceptor");
  verify_ids(who.uid, who.gid);
}

void become_tenant(const Identity& tenant, std::optional<int> nice) {
  check(tenant.uid != 0 && tenant.gid != 0, "refusing to become uid or gid 0");
  // Negative nice values need CAP_SYS_NICE: apply it while the caller still holds it.
  if (nice) check(setpriority(PRIO_PROCESS, 0, *nice) == 0, "setpriority to NiceValue");
  const std::vector<gid_t>& groups = tenant.groups.empty() ? std::vector<gid_t>{tenant.gid} : tenant.groups;
  check(setgroups(groups.size(), groups.data()) == 0, "setgroups to the vhost's groups");
  check(setresgid(tenant.gid, tenant.gid, tenant.gid) == 0, "setresgid to the vhost's group");
  check(setresuid(tenant.uid, tenant.uid, tenant.uid) == 0, "setresuid to the vhost's user");
  verify_ids(tenant.uid, tenant.gid);
  gid_t now[NGROUPS_MAX];
  int n = getgroups(NGROUPS_MAX, now);
  check(n == static_cast<int>(groups.size()), "supplementary groups count differs from the vhost's");
  for (int i = 0; i < n; i++) check(now[i] == groups[static_cast<size_t>(i)], "supplementary groups differ");
  set_caps(nullptr, 0);
  verify_no_caps();
  check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
  // Non-dumpable: other processes of the same tenant uid cannot ptrace the worker or read its memory.
  check(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, "PR_SET_DUMPABLE 0");
  check(setuid(0) != 0 && setgid(0) != 0, "uid or gid 0 could be regained after dropping privileges");
  verify_ids(tenant.uid, tenant.gid);
}

}  // namespace itk

// Each role's sandbox (the table below, mirrored by docs/security.md "Who holds what") and the one
// function that applies it: every result is read back from the kernel, every failure aborts.
#include "sys/privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr uint64_t bit(cap_value_t c) { return uint64_t{1} << c; }

// What forking a worker takes: switching to the tenant's ids and applying its NiceValue.
constexpr uint64_t kForkCaps = bit(CAP_SETUID) | bit(CAP_SETGID) | bit(CAP_SYS_NICE);

// Root is no one special any more (NOROOT), a uid change neither grants nor strips capabilities
// (NO_SETUID_FIXUP: they are set explicitly afterwards), keep-caps and ambient capabilities can never
// be turned on, and none of it can be undone.
constexpr unsigned kLockedBits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                 SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                 SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

// The roles. A tenant cannot cut its bounding set (no CAP_SETPCAP in a spawner) nor lock securebits;
// with every other set empty and no_new_privs, no exec can bring those bounding bits back.
//                      role           keep       bounding   securebits  syscalls               nnp   dumpable
constexpr Policy kSpawner{"spawner",     kForkCaps, kForkCaps, kLockedBits, Syscalls::spawner,     true, false};
constexpr Policy kAcceptor{"acceptor",   0,         0,         kLockedBits, Syscalls::acceptor,    true, false};
constexpr Policy kTenant{"tenant",       0,         kForkCaps, 0,           Syscalls::any,         true, false};
constexpr Policy kKeys{"key process",    0,         0,         kLockedBits, Syscalls::key_process, true, false};

const char* g_role = "itkd";

[[noreturn]] void die(const char* what) {
  log(Level::err, "security invariant broken in the %s: %s: %s; aborting", g_role, what, strerror(errno));
  abort();
}

void check(bool ok, const char* what) {
  if (!ok) die(what);
}

// For a libseccomp call, which returns -errno instead of setting it.
void check_rc(int rc, const char* what) {
  if (rc < 0) {
    errno = -rc;
    die(what);
  }
}

void check_value(const char* what, uint64_t got, uint64_t want) {
  if (got == want) return;
  log(Level::err, "security invariant broken in the %s: %s is %" PRIx64 ", expected %" PRIx64 "; aborting", g_role,
      what, got, want);
  abort();
}

struct CapFree {
  void operator()(_cap_struct* c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<_cap_struct, CapFree>;

struct SeccompRelease {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using SeccompPtr = std::unique_ptr<void, SeccompRelease>;

CapPtr caps_of(uint64_t keep) {
  CapPtr caps(cap_init());  // all sets empty
  check(caps != nullptr, "cap_init");
  for (cap_value_t c = 0; c < 64; c++) {
    if (!(keep & bit(c))) continue;
    check(cap_set_flag(caps.get(), CAP_PERMITTED, 1, &c, CAP_SET) == 0, "cap_set_flag permitted");
    check(cap_set_flag(caps.get(), CAP_EFFECTIVE, 1, &c, CAP_SET) == 0, "cap_set_flag effective");
  }
  return caps;
}

// Drops from the bounding set whatever `bounding` does not list; the kernel's list of capabilities may
// be longer than the one libcap was built with, so every number is asked.
void cut_bounding(uint64_t bounding) {
  for (cap_value_t c = 0; c < 64; c++)
    if (!(bounding & bit(c)) && cap_get_bound(c) == 1) check(cap_drop_bound(c) == 0, "cap_drop_bound");
}

// The lines of /proc/self/status that describe credentials, as the kernel reports them.
struct Status {
  uint64_t cap_inh = ~0ull, cap_prm = ~0ull, cap_eff = ~0ull, cap_bnd = ~0ull, cap_amb = ~0ull;
  int no_new_privs = -1;
  unsigned uid[4] = {}, gid[4] = {};
  std::vector<gid_t> groups;
};

Status read_status() {
  unique_fd fd(open("/proc/self/status", O_RDONLY | O_CLOEXEC));
  check(static_cast<bool>(fd), "open /proc/self/status");
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  check(n == 0, "read /proc/self/status");
  Status s;
  const struct {
    const char* name;
    uint64_t* value;
  } masks[] = {{"CapInh:", &s.cap_inh}, {"CapPrm:", &s.cap_prm}, {"CapEff:", &s.cap_eff},
               {"CapBnd:", &s.cap_bnd}, {"CapAmb:", &s.cap_amb}};
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    for (const auto& m : masks)
      if (line.starts_with(m.name)) *m.value = strtoull(line.c_str() + strlen(m.name), nullptr, 16);
    if (line.starts_with("NoNewPrivs:")) s.no_new_privs = atoi(line.c_str() + 11);
    if (line.starts_with("Uid:")) sscanf(line.c_str() + 4, "%u %u %u %u", &s.uid[0], &s.uid[1], &s.uid[2], &s.uid[3]);
    if (line.starts_with("Gid:")) sscanf(line.c_str() + 4, "%u %u %u %u", &s.gid[0], &s.gid[1], &s.gid[2], &s.gid[3]);
    if (line.starts_with("Groups:")) {
      char* p = line.data() + 7;
      for (char* next; *p; p = next) {
        unsigned long g = strtoul(p, &next, 10);
        if (next == p) break;
        s.groups.push_back(static_cast<gid_t>(g));
      }
    }
  }
  return s;
}

void verify_ids(const Sandbox& s) {
  uid_t r, e, saved;
  gid_t rg, eg, sg;
  check(getresuid(&r, &e, &saved) == 0, "getresuid");
  check(r == s.uid && e == s.uid && saved == s.uid, "uid is not the target in all of real/effective/saved");
  check(getresgid(&rg, &eg, &sg) == 0, "getresgid");
  check(rg == s.gid && eg == s.gid && sg == s.gid, "gid is not the target in all of real/effective/saved");
}

void verify(const Sandbox& s) {
  const Policy& p = s.policy;
  std::vector<gid_t> groups = s.groups;
  errno = 0;
  verify_ids(s);
  std::vector<gid_t> now(NGROUPS_MAX);
  int n = getgroups(static_cast<int>(now.size()), now.data());
  check(n >= 0, "getgroups");
  now.resize(static_cast<size_t>(n));
  std::sort(now.begin(), now.end());
  std::sort(groups.begin(), groups.end());
  check(now == groups, "supplementary groups differ from the target's");

  CapPtr got(cap_get_proc());
  check(got != nullptr, "cap_get_proc");
  check(cap_compare(got.get(), caps_of(p.keep).get()) == 0, "capget differs from the capabilities kept");

  // The kernel's own account, independent of libcap.
  Status st = read_status();
  check_value("CapPrm", st.cap_prm, p.keep);
  check_value("CapEff", st.cap_eff, p.keep);
  check_value("CapInh", st.cap_inh, 0);
  check_value("CapAmb", st.cap_amb, 0);
  check_value("CapBnd", st.cap_bnd, p.bounding);
  check_value("NoNewPrivs", static_cast<uint64_t>(st.no_new_privs), p.no_new_privs ? 1 : 0);
  for (unsigned u : st.uid) check_value("a uid in /proc/self/status", u, s.uid);
  for (unsigned g : st.gid) check_value("a gid in /proc/self/status", g, s.gid);
  std::sort(st.groups.begin(), st.groups.end());
  check(st.groups == groups, "Groups in /proc/self/status differ from the target's");

  check_value("dumpable", static_cast<uint64_t>(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)), p.dumpable ? 1 : 0);
  int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  check(bits >= 0, "PR_GET_SECUREBITS");
  check_value("securebits", static_cast<unsigned>(bits) & p.securebits, p.securebits);
}

// ---- seccomp policies ----

void add(scmp_filter_ctx ctx, uint32_t action, int nr, std::initializer_list<scmp_arg_cmp> args = {}) {
  check_rc(seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()), args.begin()),
           "seccomp_rule_add");
}

// The key process: signatures over datagrams. No open, socket, connect, exec or kill.
const int kKeyAllowed[] = {
    SCMP_SYS(read),         SCMP_SYS(write),          SCMP_SYS(recvmsg),       SCMP_SYS(sendmsg),
    SCMP_SYS(recvfrom),     SCMP_SYS(sendto),         SCMP_SYS(poll),          SCMP_SYS(ppoll),
    SCMP_SYS(close),        SCMP_SYS(fcntl),          SCMP_SYS(getsockopt),    SCMP_SYS(brk),
    SCMP_SYS(mmap),         SCMP_SYS(munmap),         SCMP_SYS(mremap),        SCMP_SYS(madvise),
    SCMP_SYS(mprotect),     SCMP_SYS(getrandom),      SCMP_SYS(exit),          SCMP_SYS(exit_group),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
    SCMP_SYS(getpid),       SCMP_SYS(gettid),         SCMP_SYS(futex),         SCMP_SYS(sched_yield),
    SCMP_SYS(fstat),        SCMP_SYS(newfstatat),     SCMP_SYS(getppid),       SCMP_SYS(sigaltstack),
    // A poll() stopped by SIGSTOP (or a debugger attaching) is resumed through restart_syscall: without it
    // the key process failed its wait and every TLS vhost lost its signatures.
    SCMP_SYS(restart_syscall),
};

// The acceptor: an epoll loop over sockets, cgroup leaves (mkdir, rmdir, files under its own
// delegated subtree), memfds for what it passes on, and what libc and the sanitizers use underneath
// (UBSan's vptr check probes memory by writing it into a pipe: pipe2). No process, credential,
// namespace, tracing, ioctl or filesystem-metadata call.
const int kAcceptorAllowed[] = {
    SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),      SCMP_SYS(epoll_wait),      SCMP_SYS(epoll_pwait),
    SCMP_SYS(accept4),       SCMP_SYS(recvfrom),       SCMP_SYS(recvmsg),         SCMP_SYS(sendto),
    SCMP_SYS(sendmsg),       SCMP_SYS(read),           SCMP_SYS(readv),           SCMP_SYS(write),
    SCMP_SYS(writev),        SCMP_SYS(pread64),        SCMP_SYS(close),           SCMP_SYS(fcntl),
    SCMP_SYS(getsockopt),    SCMP_SYS(setsockopt),     SCMP_SYS(getsockname),     SCMP_SYS(getpeername),
    SCMP_SYS(shutdown),      SCMP_SYS(openat),         SCMP_SYS(mkdir),           SCMP_SYS(mkdirat),
    SCMP_SYS(rmdir),         SCMP_SYS(unlinkat),       SCMP_SYS(getdents64),      SCMP_SYS(memfd_create),
    SCMP_SYS(ftruncate),     SCMP_SYS(fstat),          SCMP_SYS(newfstatat),      SCMP_SYS(statx),
    SCMP_SYS(access),        SCMP_SYS(faccessat),      SCMP_SYS(faccessat2),
    SCMP_SYS(lseek),         SCMP_SYS(clock_gettime),  SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday),  SCMP_SYS(getpid),         SCMP_SYS(gettid),          SCMP_SYS(getppid),
    SCMP_SYS(getuid),        SCMP_SYS(geteuid),        SCMP_SYS(getgid),          SCMP_SYS(getegid),
    SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction),  SCMP_SYS(rt_sigreturn),    SCMP_SYS(signalfd4),
    SCMP_SYS(sigaltstack),   SCMP_SYS(restart_syscall), SCMP_SYS(mmap),           SCMP_SYS(munmap),
    SCMP_SYS(mremap),        SCMP_SYS(mprotect),       SCMP_SYS(brk),             SCMP_SYS(madvise),
    SCMP_SYS(futex),         SCMP_SYS(exit),           SCMP_SYS(exit_group),      SCMP_SYS(getrandom),
    SCMP_SYS(sched_yield),   SCMP_SYS(poll),           SCMP_SYS(ppoll),           SCMP_SYS(uname),
    SCMP_SYS(pipe2),
};

// Allowed only when the first argument is this value: unix sockets (journal logging opens one lazily),
// naming the process, its parent-death signal (set after the user switch, which clears it), and signals to itself (abort() raises SIGABRT with tgkill).
struct AllowIf {
  int nr;
  uint64_t arg0;
};
constexpr uint64_t kSelf = ~0ull;  // this process's pid, known when the filter is built

const AllowIf kAcceptorAllowedIf[] = {
    {SCMP_SYS(socket), AF_UNIX}, {SCMP_SYS(socketpair), AF_UNIX}, {SCMP_SYS(prctl), PR_SET_NAME},
    {SCMP_SYS(prctl), PR_SET_PDEATHSIG}, {SCMP_SYS(kill), kSelf},     {SCMP_SYS(tgkill), kSelf},
};

const AllowIf kKeyAllowedIf[] = {
    {SCMP_SYS(prctl), PR_SET_PDEATHSIG}, {SCMP_SYS(kill), kSelf}, {SCMP_SYS(tgkill), kSelf},
};

template <size_t N, size_t M>
void allow(scmp_filter_ctx ctx, const int (&nrs)[N], const AllowIf (&ifs)[M]) {
  for (int nr : nrs) add(ctx, SCMP_ACT_ALLOW, nr);
  for (const AllowIf& a : ifs) {
    uint64_t v = a.arg0 == kSelf ? static_cast<uint64_t>(getpid()) : a.arg0;
    add(ctx, SCMP_ACT_ALLOW, a.nr, {scmp_arg_cmp{0, SCMP_CMP_EQ, v, 0}});
  }
}

// The spawner holds CAP_SETUID/CAP_SETGID, so which ids it may reach is the filter's to say: every
// id argument inside the tenant range ((uid_t)-1, "unchanged", is outside it too: workers pass all
// three). setgroups stays possible, and cannot be fenced (its list is behind a pointer seccomp does
// not read): the spawner must set each tenant's groups, and it reads no client byte, only fixed-format
// messages from acceptors. Namespaces are refused because a user namespace maps ids without any
// capability check the range could see.
void spawner_rules(scmp_filter_ctx ctx, const IdRange& uids, const IdRange& gids) {
  const struct {
    int nr;
    unsigned args;
    const IdRange* range;
  } setid[] = {
      {SCMP_SYS(setuid), 1, &uids},    {SCMP_SYS(setreuid), 2, &uids}, {SCMP_SYS(setresuid), 3, &uids},
      {SCMP_SYS(setfsuid), 1, &uids},  {SCMP_SYS(setgid), 1, &gids},   {SCMP_SYS(setregid), 2, &gids},
      {SCMP_SYS(setresgid), 3, &gids}, {SCMP_SYS(setfsgid), 1, &gids},
  };
  for (const auto& r : setid)
    for (unsigned a = 0; a < r.args; a++) {
      add(ctx, SCMP_ACT_ERRNO(EPERM), r.nr, {scmp_arg_cmp{a, SCMP_CMP_LT, r.range->min, 0}});
      add(ctx, SCMP_ACT_ERRNO(EPERM), r.nr, {scmp_arg_cmp{a, SCMP_CMP_GT, r.range->max, 0}});
    }
  const uint64_t namespaces[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
                                 CLONE_NEWUTS,  CLONE_NEWIPC, CLONE_NEWCGROUP};
  for (uint64_t flag : namespaces) {
    add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), {SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)});
    add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), {SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)});
  }
  // In clone's flags this bit is part of the exit signal; only unshare can mean a time namespace by it.
  add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME)});
  // clone3 passes its flags in memory, out of the filter's sight; on ENOSYS glibc falls back to clone.
  add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3));
  add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns));
}

void load_filter(const Sandbox& s) {
  const Syscalls which = s.policy.syscalls;
  if (which == Syscalls::any) return;
  // A denied call fails with EPERM rather than killing the process, so an unexpected call from libc
  // shows up in a log line instead of as a silent death.
  SeccompPtr ctx(seccomp_init(which == Syscalls::spawner ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM)));
  check(ctx != nullptr, "seccomp_init");
  switch (which) {
    case Syscalls::any:
      break;
    case Syscalls::spawner:
      spawner_rules(ctx.get(), s.uids, s.gids);
      break;
    case Syscalls::acceptor:
      allow(ctx.get(), kAcceptorAllowed, kAcceptorAllowedIf);
      break;
    case Syscalls::key_process:
      allow(ctx.get(), kKeyAllowed, kKeyAllowedIf);
      break;
  }
  check_rc(seccomp_load(ctx.get()), "seccomp_load");
  // Proof that it is in force: a call that changes nothing and succeeds for anyone is refused by every
  // one of these filters.
  errno = 0;
  check(setresuid(static_cast<uid_t>(-1), static_cast<uid_t>(-1), static_cast<uid_t>(-1)) != 0 && errno == EPERM,
        "the system call filter is not in force");
}

std::vector<gid_t> groups_of(const Identity& who) {
  return who.groups.empty() ? std::vector<gid_t>{who.gid} : who.groups;
}

Sandbox sandbox(const Policy& p, const Identity& who, std::vector<gid_t> groups) {
  Sandbox s{p, who.uid, who.gid, std::move(groups), std::nullopt, {}, {}};
  return s;
}

}  // namespace

void apply_sandbox(const Sandbox& s) {
  const Policy& p = s.policy;
  g_role = p.role;
  errno = 0;
  check(s.uid != 0 && s.gid != 0, "refusing to become uid or gid 0");
  check(std::find(s.groups.begin(), s.groups.end(), 0) == s.groups.end(), "refusing supplementary group 0");
  // Negative values need CAP_SYS_NICE, which is about to go.
  if (s.nice) check(setpriority(PRIO_PROCESS, 0, *s.nice) == 0, "setpriority to NiceValue");
  // What needs CAP_SETPCAP first, while it may still be held.
  cut_bounding(p.bounding);
  check(cap_reset_ambient() == 0 || errno == EINVAL, "cap_reset_ambient");
  if (p.securebits) check(prctl(PR_SET_SECUREBITS, p.securebits, 0, 0, 0) == 0, "PR_SET_SECUREBITS");
  check(setgroups(s.groups.size(), s.groups.data()) == 0, "setgroups");
  check(setresgid(s.gid, s.gid, s.gid) == 0, "setresgid");
  check(setresuid(s.uid, s.uid, s.uid) == 0, "setresuid");
  check(cap_set_proc(caps_of(p.keep).get()) == 0, "cap_set_proc");
  if (p.no_new_privs) check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
  // Non-dumpable: no process of the same uid can ptrace this one or read its memory.
  check(prctl(PR_SET_DUMPABLE, p.dumpable ? 1 : 0, 0, 0, 0) == 0, "PR_SET_DUMPABLE");
  if (s.nice) check_value("nice", static_cast<uint64_t>(getpriority(PRIO_PROCESS, 0)), static_cast<uint64_t>(*s.nice));
  verify(s);
  load_filter(s);
  // Last, since the spawner still holds CAP_SETUID: only its filter keeps it from root.
  errno = 0;
  check(setresuid(0, 0, 0) != 0 && setresgid(0, 0, 0) != 0 && setuid(0) != 0, "uid or gid 0 could be regained");
}

void become_spawner(const Identity& who, const IdRange& uids, const IdRange& gids) {
  Sandbox s = sandbox(kSpawner, who, {who.gid});
  s.uids = uids;
  s.gids = gids;
  apply_sandbox(s);
}

void become_acceptor(const Identity& who) { apply_sandbox(sandbox(kAcceptor, who, {who.gid})); }

void limit_bounding_set() { cut_bounding(kTenant.bounding); }

void become_tenant(const Identity& tenant) {
  Sandbox s = sandbox(kTenant, tenant, groups_of(tenant));
  s.nice = tenant.nice;
  apply_sandbox(s);
}

void become_key_process(const Identity& who) { apply_sandbox(sandbox(kKeys, who, {who.gid})); }

}  // namespace itk

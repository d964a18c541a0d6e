// Credential changes, each run in a forked child (they cannot be undone), checked from inside.
#include "sys/privileges.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>

#include "proc/handoff.h"
#include "sys/log.h"

using itk::Identity;
using itk::IdRange;

namespace {

// Runs `body` in a child; the child's exit code is the number of the first failed check (0 = all held).
int in_child(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string status_field(const char* name) {
  std::ifstream f("/proc/self/status");
  std::string line;
  std::string prefix = std::string(name) + ":";
  while (std::getline(f, line))
    if (line.rfind(prefix, 0) == 0) {
      std::string v = line.substr(prefix.size());
      v.erase(v.find_last_not_of(" \t") + 1);  // Groups ends with a space
      return v.substr(v.find_first_not_of(" \t"));
    }
  return "";
}

Identity tenant(uid_t uid, std::optional<int> nice = std::nullopt) {
  Identity id;
  id.uid = uid;
  id.gid = uid;
  id.groups = {static_cast<gid_t>(uid)};
  id.nice = nice;
  return id;
}

const uid_t kWho = 65000;  // the acceptor/spawner user: no account needed, only the number

const IdRange kTenants{2000, 2999};

// The five capability sets and no_new_privs as the kernel reports them: "" when all hold.
std::string status_says(const char* caps, const char* no_new_privs) {
  for (const char* f : {"CapEff", "CapPrm", "CapBnd"})
    if (status_field(f) != caps) return std::string(f) + " is " + status_field(f);
  for (const char* f : {"CapAmb", "CapInh"})
    if (status_field(f) != "0000000000000000") return std::string(f) + " is " + status_field(f);
  if (status_field("NoNewPrivs") != no_new_privs) return "NoNewPrivs is " + status_field("NoNewPrivs");
  if (status_field("Seccomp") != "2") return "Seccomp is " + status_field("Seccomp");
  return "";
}

// A process of the acceptor user that anyone of that uid could trace and renice if nothing else
// stopped them (dumpable again after its uid change).
pid_t same_uid_sibling() {
  pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(kWho, kWho, kWho) != 0 || setresuid(kWho, kWho, kWho) != 0) _exit(1);
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    for (;;) pause();
  }
  return pid;
}

void end(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// clone3's argument block, version 0 (64 bytes).
struct CloneArgs {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: credential changes are only possible from uid 0"

}  // namespace

TEST(Privileges, TenantHasExactlyItsIdsAndNothingElse) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    itk::become_tenant(tenant(2001, 5));
    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    if (r != 2001 || e != 2001 || s != 2001) return 1;
    if (rg != 2001 || eg != 2001 || sg != 2001) return 2;
    gid_t groups[8];
    if (getgroups(8, groups) != 1 || groups[0] != 2001) return 3;
    if (status_field("CapEff") != "0000000000000000") return 4;
    if (status_field("CapPrm") != "0000000000000000") return 5;
    if (status_field("CapInh") != "0000000000000000") return 6;
    if (status_field("CapAmb") != "0000000000000000") return 7;
    if (status_field("NoNewPrivs") != "1") return 8;
    if (prctl(PR_GET_DUMPABLE) != 0) return 9;
    if (getpriority(PRIO_PROCESS, 0) != 5) return 10;
    if (setuid(0) == 0 || setresuid(0, 0, 0) == 0 || setgid(0) == 0) return 11;
    if (setgroups(0, nullptr) == 0) return 12;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "check number " << rc << " failed in the tenant child";
}

TEST(Privileges, TenantCannotReadRootOnlyFile) {
  REQUIRE_ROOT();
  char path[] = "/tmp/itk-priv-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "secret", 6), 6);
  close(fd);
  chmod(path, 0600);
  int rc = in_child([&] {
    itk::become_tenant(tenant(2001));
    int f = open(path, O_RDONLY);
    if (f >= 0) return 1;
    return errno == EACCES ? 0 : 2;
  });
  unlink(path);
  EXPECT_EQ(rc, 0);
}

TEST(Privileges, NegativeNiceNeedsAndUsesCapSysNice) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    itk::become_tenant(tenant(2001, -5));
    return getpriority(PRIO_PROCESS, 0) == -5 ? 0 : 1;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Privileges, RefusesRootTenant) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    Identity root;  // uid 0, gid 0
    itk::become_tenant(root);
    return 0;  // must not be reached
  });
  EXPECT_EQ(rc, 1000 + SIGABRT);
}

TEST(Privileges, TenantAbortsWhenItsBoundingSetCannotBeMet) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    // A parent that had already lost CAP_SYS_NICE from its bounding set: the declared set cannot be met.
    if (cap_drop_bound(CAP_SYS_NICE) != 0) return 1;
    itk::become_tenant(tenant(2001));
    return 2;  // must not be reached
  });
  EXPECT_EQ(rc, 1000 + SIGABRT);
}

TEST(Privileges, AcceptorHoldsNoCapabilityInAnySet) {
  REQUIRE_ROOT();
  std::string why;
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  int rc = in_child([&] {
    close(pipefd[0]);
    itk::become_acceptor(tenant(kWho));
    std::string s = status_says("0000000000000000", "1");
    // getresuid and getgroups are not on the acceptor's list; the kernel's report is.
    const std::string ids = std::to_string(kWho) + "\t" + std::to_string(kWho) + "\t" + std::to_string(kWho) + "\t" +
                            std::to_string(kWho);
    if (s.empty() && status_field("Uid") != ids) s = "Uid is " + status_field("Uid");
    if (s.empty() && status_field("Gid") != ids) s = "Gid is " + status_field("Gid");
    if (s.empty() && status_field("Groups") != std::to_string(kWho)) s = "Groups is " + status_field("Groups");
    (void)!write(pipefd[1], s.data(), s.size());
    return s.empty() ? 0 : 1;
  });
  close(pipefd[1]);
  char buf[256] = {};
  (void)!read(pipefd[0], buf, sizeof buf - 1);
  close(pipefd[0]);
  EXPECT_EQ(rc, 0) << buf;
}

TEST(Privileges, AcceptorCannotRegainOrReachAnything) {
  REQUIRE_ROOT();
  pid_t sibling = same_uid_sibling();
  const pid_t root_pid = getpid();
  int rc = in_child([&] {
    itk::become_acceptor(tenant(kWho));
    if (setuid(kWho) == 0 || setuid(0) == 0) return 1;
    if (setgid(0) == 0) return 2;
    if (setresuid(0, 0, 0) == 0) return 3;
    gid_t root_group = 0;
    if (setgroups(1, &root_group) == 0) return 4;
    if (unshare(CLONE_NEWUSER) == 0) return 5;
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(root_pid), -5) == 0) return 6;
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(sibling), 10) == 0) return 7;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) return 8;
    ucred cred{getpid(), 0, 0};
    char byte = 'x';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof cred)] = {};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof cred);
    memcpy(CMSG_DATA(c), &cred, sizeof cred);
    if (sendmsg(sv[0], &mh, 0) >= 0) return 9;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid >= 0) return 10;
    // Were it to run, the child's exit code would say so.
    char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>("exit 11"), nullptr};
    execve("/bin/sh", argv, environ);
    if (ptrace(PTRACE_ATTACH, sibling, nullptr, nullptr) == 0) return 12;
    if (kill(sibling, SIGKILL) == 0 || kill(root_pid, 0) == 0) return 13;
    if (socket(AF_INET, SOCK_STREAM, 0) >= 0) return 14;
    if (chmod("/tmp", 01777) == 0) return 15;
    return 0;
  });
  end(sibling);
  EXPECT_EQ(rc, 0) << "check number " << rc << " was not refused in the acceptor";
}

TEST(Privileges, AcceptorCanStillServe) {
  REQUIRE_ROOT();
  // A connection waiting in a listener's queue, and a directory of the acceptor user's (as its
  // delegated cgroup subtree is).
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(lfd, 4), 0);
  socklen_t alen = sizeof a;
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen), 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(write(client, "GET / HTTP/1.1\r\n", 16), 16);
  char dir[] = "/tmp/itk-acceptor-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ASSERT_EQ(chown(dir, kWho, kWho), 0);
  std::string leaf = std::string(dir) + "/c-1";
  int rc = in_child([&] {
    itk::become_acceptor(tenant(kWho));
    (void)prctl(PR_SET_NAME, "itk-acceptor", 0, 0, 0);
    int conn = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) return 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev) != 0) return 2;
    if (epoll_wait(ep, &ev, 1, 1000) != 1) return 3;
    char head[64];
    if (recv(conn, head, sizeof head, 0) != 16) return 4;
    int mem = memfd_create("head", MFD_CLOEXEC);
    if (mem < 0 || write(mem, head, 16) != 16) return 5;
    // As a connection goes to a spare worker: the socket and the bytes read, over a SOCK_SEQPACKET pair.
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return 6;
    itk::Handoff out;
    out.entry = 7;
    out.bytes.assign(head, 16);
    itk::Handoff out_mem;
    out_mem.entry = 8;
    out_mem.bytes = "m";
    if (!itk::handoff_send(sv[0], conn, out) || !itk::handoff_send(sv[0], mem, out_mem)) return 7;
    itk::Handoff in;
    int got_conn = itk::handoff_receive(sv[1], in);
    if (got_conn < 0 || in.entry != 7 || in.bytes != std::string_view(head, 16)) return 8;
    int got_mem = itk::handoff_receive(sv[1], in);
    if (got_mem < 0 || in.entry != 8) return 9;
    char back[16];
    if (pread(got_mem, back, sizeof back, 0) != 16 || memcmp(back, head, 16) != 0) return 9;
    if (send(got_conn, "HTTP/1.1 408 x\r\n", 16, MSG_NOSIGNAL) != 16 || shutdown(got_conn, SHUT_WR) != 0) return 10;
    if (mkdir(leaf.c_str(), 0755) != 0 || rmdir(leaf.c_str()) != 0) return 11;
    itk::log(itk::Level::info, "the acceptor sandbox still logs");
    const char line[] = "<6>privileges_test: and writes to stderr\n";
    if (write(STDERR_FILENO, line, sizeof line - 1) != sizeof line - 1) return 12;
    const size_t big = 100u << 20;
    char* p = static_cast<char*>(malloc(big));
    if (!p) return 13;
    memset(p, 1, big);
    free(p);
    return 0;
  });
  char answer[16] = {};
  EXPECT_EQ(read(client, answer, sizeof answer), 16);
  close(client);
  close(lfd);
  rmdir(leaf.c_str());
  rmdir(dir);
  EXPECT_EQ(rc, 0) << "check number " << rc << " failed in the acceptor";
}

TEST(Privileges, AcceptorAbortStillEndsIt) {
  REQUIRE_ROOT();
  // abort() raises SIGABRT with tgkill: the one signal the acceptor may send is to itself.
  int rc = in_child([] {
    itk::become_acceptor(tenant(kWho));
    abort();
    return 0;
  });
  EXPECT_EQ(rc, 1000 + SIGABRT);
}

TEST(Privileges, AcceptorRefusesRoot) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    itk::become_acceptor(Identity{});
    return 0;  // must not be reached
  });
  EXPECT_EQ(rc, 1000 + SIGABRT);
}

TEST(Privileges, SpawnerKeepsOnlyItsThreeCapabilitiesAndTheRange) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    itk::become_spawner(tenant(kWho), kTenants, kTenants);
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    if (r != kWho || e != kWho || s != kWho) return 1;
    // CAP_SETGID (6), CAP_SETUID (7), CAP_SYS_NICE (23).
    if (!status_says("00000000008000c0", "1").empty()) return 2;
    if (prctl(PR_GET_DUMPABLE) != 0) return 3;
    // Outside the range: refused by the seccomp filter even though CAP_SETUID is held.
    if (setresuid(0, 0, 0) == 0 || setuid(0) == 0) return 4;
    if (setresuid(3000, 3000, 3000) == 0) return 5;
    if (setresgid(1999, 1999, 1999) == 0) return 6;
    if (unshare(CLONE_NEWUSER) == 0 || unshare(CLONE_NEWNS) == 0 || unshare(CLONE_NEWNET) == 0) return 7;
    errno = 0;
    CloneArgs ca{};
    ca.flags = CLONE_NEWUSER;
    ca.exit_signal = SIGCHLD;
    long c3 = syscall(SYS_clone3, &ca, sizeof ca);
    if (c3 == 0) _exit(0);
    if (c3 > 0 || errno != ENOSYS) return 8;
    if (setns(0, 0) == 0 || errno != EPERM) return 9;
    // It must set tenants' groups.
    gid_t g[] = {2100, 2200};
    if (setgroups(2, g) != 0) return 10;
    pid_t pid = fork();
    if (pid == 0) {
      // Inside the range: a worker can become a tenant, and then change nothing.
      itk::become_tenant(tenant(2500, -3));
      gid_t root_group = 0;
      if (getpriority(PRIO_PROCESS, 0) != -3) _exit(1);
      if (setgroups(1, &root_group) == 0 || setgroups(0, nullptr) == 0) _exit(2);
      if (setresuid(2600, 2600, 2600) == 0) _exit(3);
      if (status_field("CapEff") != "0000000000000000" || status_field("CapBnd") != "00000000008000c0") _exit(4);
      _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 20 + (WIFEXITED(st) ? WEXITSTATUS(st) : 10);
    return 0;
  });
  EXPECT_EQ(rc, 0) << "check number " << rc << " failed in the spawner child";
}

TEST(Privileges, KeyProcessCanOnlyTalkOnItsSockets) {
  REQUIRE_ROOT();
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  int rc = in_child([&] {
    // Opened before, read after: the kernel writes the text at the first read.
    int status = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    itk::become_key_process(tenant(kWho));
    char text[8192];
    ssize_t n = read(status, text, sizeof text - 1);
    if (n <= 0) return 1;
    text[n] = 0;
    for (const char* want : {"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000",
                             "CapAmb:\t0000000000000000", "CapInh:\t0000000000000000", "NoNewPrivs:\t1",
                             "Seccomp:\t2"})
      if (!strstr(text, want)) return 2;
    if (open("/etc/hostname", O_RDONLY) >= 0 || errno != EPERM) return 3;
    if (socket(AF_UNIX, SOCK_DGRAM, 0) >= 0) return 4;
    if (send(sv[0], "signature", 9, 0) != 9) return 5;
    char buf[16];
    if (recv(sv[1], buf, sizeof buf, 0) != 9) return 6;
    if (setresuid(0, 0, 0) == 0) return 7;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    return pid < 0 ? 0 : 8;
  });
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ(rc, 0) << "check number " << rc << " failed in the key process";
}

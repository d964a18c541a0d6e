// Credential changes, each run in a forked child (they cannot be undone), checked from inside.
#include "privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

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
      return v.substr(v.find_first_not_of(" \t"));
    }
  return "";
}

Identity tenant(uid_t uid) {
  Identity id;
  id.uid = uid;
  id.gid = uid;
  id.groups = {static_cast<gid_t>(uid)};
  return id;
}

#define REQUIRE_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root: credential changes are only possible from uid 0"

}  // namespace

TEST(Privileges, TenantHasExactlyItsIdsAndNothingElse) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    itk::become_tenant(tenant(2001), 5);
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
    itk::become_tenant(tenant(2001), std::nullopt);
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
    itk::become_tenant(tenant(2001), -5);
    return getpriority(PRIO_PROCESS, 0) == -5 ? 0 : 1;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Privileges, RefusesRootTenant) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    Identity root;  // uid 0, gid 0
    itk::become_tenant(root, std::nullopt);
    return 0;  // must not be reached
  });
  EXPECT_EQ(rc, 1000 + SIGABRT);
}

TEST(Privileges, AcceptorKeepsOnlyItsThreeCapabilitiesAndTheRange) {
  REQUIRE_ROOT();
  int rc = in_child([] {
    Identity acc = tenant(65000);
    itk::become_acceptor(acc, IdRange{2000, 2999}, IdRange{2000, 2999});
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    if (r != 65000 || e != 65000 || s != 65000) return 1;
    // CAP_SETGID (6), CAP_SETUID (7), CAP_SYS_NICE (23).
    if (status_field("CapEff") != "00000000008000c0") return 2;
    if (status_field("CapPrm") != "00000000008000c0") return 3;
    if (status_field("CapBnd") != "00000000008000c0") return 4;
    if (prctl(PR_GET_DUMPABLE) != 0) return 5;
    // Outside the range: refused by the seccomp filter even though CAP_SETUID is held.
    if (setresuid(0, 0, 0) == 0) return 6;
    if (setresuid(3000, 3000, 3000) == 0) return 7;
    if (setresgid(1999, 1999, 1999) == 0) return 8;
    pid_t pid = fork();
    if (pid == 0) {
      // Inside the range: a worker can become a tenant.
      itk::become_tenant(tenant(2500), std::nullopt);
      _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 9;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "check number " << rc << " failed in the acceptor child";
}

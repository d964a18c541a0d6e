// cgroup2 management for the master (tree, vhosts), acceptors (leaves) and workers (leftovers).
#include "sys/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sys/dir_ptr.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

// errno stays set on failure, for callers of the bool functions below that report it.
SysResult write_file(const std::string& path, const std::string& text) {
  unique_fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return SysResult{errno};
  return write_all_fd(fd.get(), text);
}

// The names of the entries of `dir` that `keep` accepts; none when it cannot be read.
template <typename Keep>
std::vector<std::string> list_dir(const std::string& dir, Keep keep) {
  std::vector<std::string> names;
  DirPtr d = open_dir(dir);
  if (!d) return names;
  while (dirent* e = readdir(d.get()))
    if (keep(*e)) names.emplace_back(e->d_name);
  return names;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The cgroup2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
std::string cgroup2_mount() {
  for (const char* m : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    struct statfs s {};
    if (statfs(m, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC) return m;
  }
  return {};
}

// "0::/system.slice/itk.service" from /proc/self/cgroup.
std::string own_cgroup_path() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

// systemd marks the cgroups it delegates with this extended attribute (v251+).
bool marked_delegated(const std::string& dir) {
  char v[8] = {};
  ssize_t n = getxattr(dir.c_str(), "trusted.delegate", v, sizeof v - 1);
  if (n <= 0) n = getxattr(dir.c_str(), "user.delegate", v, sizeof v - 1);
  return n > 0 && v[0] == '1';
}

SysResult make_dir(const std::string& dir, const Identity* owner) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return SysResult{errno};
  if (!owner) return {};
  // The acceptor user creates connection leaves here and moves workers into them: it needs the
  // directory and the files the kernel checks for a migration.
  for (const char* f : {"", "/cgroup.procs", "/cgroup.threads", "/cgroup.subtree_control"}) {
    std::string p = dir + f;
    if (chown(p.c_str(), owner->uid, owner->gid) != 0 && errno != ENOENT) return SysResult{errno};
  }
  return {};
}

std::string controllers_of(const std::string& dir) { return read_file(dir + "/cgroup.controllers"); }

bool has_word(const std::string& list, const char* word) {
  std::istringstream in(list);
  std::string w;
  while (in >> w)
    if (w == word) return true;
  return false;
}

}  // namespace

CgroupTree cgroup_setup(const Identity& acceptor) {
  CgroupTree t;
  std::string mount = cgroup2_mount();
  if (mount.empty()) {
    t.reason = "no cgroup2 hierarchy mounted";
    return t;
  }
  std::string own = own_cgroup_path();
  if (own.empty() || own == "/") {
    t.reason = "itkd is not in a cgroup of its own (start it from itk.service with Delegate=yes)";
    return t;
  }
  std::string root = mount + own;
  // A directory named after our unit that systemd delegated; when running by hand inside some
  // other cgroup, creating directories there would meddle with whoever manages it.
  if (!marked_delegated(root)) {
    t.reason = "cgroup " + own + " is not delegated to itkd (itk.service sets Delegate=yes)";
    return t;
  }
  if (access((root + "/cgroup.procs").c_str(), W_OK) != 0) {
    t.reason = "cgroup " + own + " is not writable: " + strerror(errno);
    return t;
  }
  const std::string master = root + "/master";
  if (!make_dir(master, nullptr) || !cgroup_join(master)) {
    t.reason = "cannot move the master into " + master + ": " + strerror(errno);
    return t;
  }
  t.root = root;
  t.serving = root + "/serving";
  if (!make_dir(t.serving, &acceptor) || !make_dir(t.serving + "/acceptors", &acceptor)) {
    t.reason = "cannot create " + t.serving + ": " + strerror(errno);
    return t;
  }
  // Controllers: whatever the root offers is passed down to the vhost cgroups. The root holds no
  // process any more (the master is in master/), so enabling them is allowed.
  std::string avail = controllers_of(root);
  for (const char* c : {"pids", "memory", "cpu"}) {
    if (!has_word(avail, c)) continue;
    std::string on = std::string("+") + c;
    if (write_file(root + "/cgroup.subtree_control", on) && write_file(t.serving + "/cgroup.subtree_control", on)) {
      if (std::strcmp(c, "pids") == 0) t.pids = true;
      if (std::strcmp(c, "memory") == 0) t.memory = true;
      if (std::strcmp(c, "cpu") == 0) t.cpu = true;
    }
  }
  t.enabled = true;
  return t;
}

std::string cgroup_vhost_dir(const CgroupTree& t, const VHost& vh) { return t.serving + "/v-" + vh.server_name; }

std::vector<std::string> cgroup_sync_vhosts(const CgroupTree& t, const Config& cfg, const Identity& acceptor) {
  std::vector<std::string> stale;
  if (!t.enabled) return stale;
  for (const VHost& vh : cfg.vhosts) {
    std::string dir = cgroup_vhost_dir(t, vh);
    if (SysResult r = make_dir(dir, &acceptor); !r) {
      log(Level::err, "cannot create cgroup %s: %s; MaxClientsVHost for %s falls back to counting", dir.c_str(),
          strerror(r.err), vh.server_name.c_str());
      continue;
    }
    auto set = [&](bool have, const char* file, const std::string& value) {
      if (!have) return;
      if (SysResult r = write_file(dir + "/" + file, value); !r)
        log(Level::err, "cannot write %s to %s/%s: %s", value.c_str(), dir.c_str(), file, strerror(r.err));
    };
    set(t.pids, "pids.max", vh.max_processes_vhost ? std::to_string(vh.max_processes_vhost) : "max");
    set(t.memory, "memory.max", vh.memory_max_vhost ? std::to_string(vh.memory_max_vhost) : "max");
    set(t.cpu, "cpu.weight", std::to_string(vh.cpu_weight_vhost ? vh.cpu_weight_vhost : 100));
    // Idle workers wait in spare/, outside any connection leaf, so that they are not counted.
    if (SysResult r = make_dir(dir + "/spare", &acceptor); !r)
      log(Level::err, "cannot create cgroup %s/spare: %s; workers are not reused for %s", dir.c_str(), strerror(r.err),
          vh.server_name.c_str());
    // The FastCGI cgroup is the master's (it starts the app processes); a vhost that drops FastCGI
    // keeps an empty one until its processes are gone, when the master removes it.
    if (SysResult r = vh.fastcgi.apps.empty() ? SysResult{} : make_dir(dir + "/fastcgi", nullptr); !r)
      log(Level::err, "cannot create cgroup %s/fastcgi: %s; its FastCGI apps run in the master's cgroup", dir.c_str(),
          strerror(r.err));
  }
  for (const std::string& name : list_dir(t.serving, [](const dirent& e) { return std::strncmp(e.d_name, "v-", 2) == 0; })) {
    bool used = false;
    for (const VHost& vh : cfg.vhosts) used = used || name == "v-" + vh.server_name;
    if (!used) stale.push_back(name);
  }
  return stale;
}

bool cgroup_join(const std::string& dir) { return static_cast<bool>(write_file(dir + "/cgroup.procs", "0")); }

int cgroup_descendants(const std::string& dir) {
  std::ifstream f(dir + "/cgroup.stat");
  std::string key;
  long value;
  while (f >> key >> value)
    if (key == "nr_descendants") return static_cast<int>(value);
  return -1;
}

std::string cgroup_fastcgi_dir(const CgroupTree& t, const VHost& vh) { return cgroup_vhost_dir(t, vh) + "/fastcgi"; }

std::string cgroup_spare_dir(const CgroupTree& t, const VHost& vh) { return cgroup_vhost_dir(t, vh) + "/spare"; }

bool cgroup_move(const std::string& dir, pid_t pid) {
  return static_cast<bool>(write_file(dir + "/cgroup.procs", std::to_string(pid)));
}

int cgroup_vhost_connections(const CgroupTree& t, const VHost& vh) {
  int n = cgroup_descendants(cgroup_vhost_dir(t, vh));
  // Whenever it exists: a pool retired at a reload may still run there after its vhost dropped FastCGI.
  if (n > 0 && access(cgroup_fastcgi_dir(t, vh).c_str(), F_OK) == 0) n--;
  if (n > 0 && access(cgroup_spare_dir(t, vh).c_str(), F_OK) == 0) n--;
  return n;
}

bool cgroup_kill_and_remove(const std::string& dir) {
  // cgroup.kill (Linux 5.14) kills the whole subtree at once, daemonized grandchildren included.
  if (write_file(dir + "/cgroup.kill", "1").err == ENOENT) return true;  // already gone
  bool all = true;
  for (const std::string& c : list_dir(dir, [](const dirent& e) { return e.d_type == DT_DIR && e.d_name[0] != '.'; }))
    all = cgroup_kill_and_remove(dir + "/" + c) && all;
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) all = false;  // EBUSY while the killed are still exiting
  return all;
}

void cgroup_sweep_leaves(const CgroupTree& t, const std::vector<pid_t>& live) {
  if (!t.enabled) return;
  for (const std::string& name : list_dir(t.serving, [](const dirent& e) { return std::strncmp(e.d_name, "v-", 2) == 0; })) {
    const std::string v = t.serving + "/" + name;
    for (const std::string& l : list_dir(v, [](const dirent& e) { return e.d_type == DT_DIR && e.d_name[0] == 'c'; })) {
      const pid_t maker = static_cast<pid_t>(std::strtol(l.c_str() + 1, nullptr, 10));
      if (std::find(live.begin(), live.end(), maker) != live.end()) continue;
      const std::string leaf = v + "/" + l;
      // Only leaves whose worker is gone: a live worker's leaf is populated.
      if (read_file(leaf + "/cgroup.events").find("populated 0") != std::string::npos) (void)rmdir(leaf.c_str());
    }
  }
}

void cgroup_kill_others() {
  std::string own = own_cgroup_path();
  std::string mount = cgroup2_mount();
  size_t slash = own.rfind('/');
  if (own.empty() || mount.empty() || slash == std::string::npos || own.compare(slash + 1, 1, "c") != 0) return;
  const std::string procs = mount + own + "/cgroup.procs";
  const pid_t self = getpid();
  // A script that forks as fast as we kill could outrun one pass; a few passes settle it.
  for (int pass = 0; pass < 8; pass++) {
    std::ifstream f(procs);
    pid_t pid;
    bool any = false;
    while (f >> pid) {
      if (pid == self) continue;
      any = true;
      (void)kill(pid, SIGKILL);
    }
    if (!any) return;
    usleep(1000);
  }
}

}  // namespace itk

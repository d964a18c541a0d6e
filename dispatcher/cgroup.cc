// cgroup2 management for the master (tree, vhosts), acceptors (leaves) and workers (leftovers).
#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io.h"
#include "log.h"
#include "unique_fd.h"

namespace itk {
namespace {

bool write_file(const std::string& path, const std::string& text) {
  unique_fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return false;
  return write_all_fd(fd.get(), text);
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

bool make_dir(const std::string& dir, const Identity* owner) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
  if (!owner) return true;
  // The acceptor user creates connection leaves here and moves workers into them: it needs the
  // directory and the files the kernel checks for a migration.
  for (const char* f : {"", "/cgroup.procs", "/cgroup.threads", "/cgroup.subtree_control"}) {
    std::string p = dir + f;
    if (chown(p.c_str(), owner->uid, owner->gid) != 0 && errno != ENOENT) return false;
  }
  return true;
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
    if (!make_dir(dir, &acceptor)) {
      log(Level::err, "cannot create cgroup %s: %s; MaxClientsVHost for %s falls back to counting", dir.c_str(),
          strerror(errno), vh.server_name.c_str());
      continue;
    }
    auto set = [&](bool have, const char* file, const std::string& value) {
      if (!have) return;
      if (!write_file(dir + "/" + file, value))
        log(Level::err, "cannot write %s to %s/%s: %s", value.c_str(), dir.c_str(), file, strerror(errno));
    };
    set(t.pids, "pids.max", vh.max_processes_vhost ? std::to_string(vh.max_processes_vhost) : "max");
    set(t.memory, "memory.max", vh.memory_max_vhost ? std::to_string(vh.memory_max_vhost) : "max");
    set(t.cpu, "cpu.weight", std::to_string(vh.cpu_weight_vhost ? vh.cpu_weight_vhost : 100));
    // Idle workers wait in spare/, outside any connection leaf, so that they are not counted.
    if (!make_dir(dir + "/spare", &acceptor))
      log(Level::err, "cannot create cgroup %s/spare: %s; workers are not reused for %s", dir.c_str(), strerror(errno),
          vh.server_name.c_str());
    // The FastCGI cgroup is the master's (it starts the app processes); a vhost that drops FastCGI
    // keeps an empty one until its processes are gone, when the master removes it.
    if (!vh.fastcgi.apps.empty() && !make_dir(dir + "/fastcgi", nullptr))
      log(Level::err, "cannot create cgroup %s/fastcgi: %s; its FastCGI apps run in the master's cgroup", dir.c_str(),
          strerror(errno));
  }
  DIR* d = opendir(t.serving.c_str());
  if (!d) return stale;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind("v-", 0) != 0) continue;
    bool used = false;
    for (const VHost& vh : cfg.vhosts) used = used || name == "v-" + vh.server_name;
    if (!used) stale.push_back(name);
  }
  closedir(d);
  return stale;
}

bool cgroup_join(const std::string& dir) { return write_file(dir + "/cgroup.procs", "0"); }

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

bool cgroup_move(const std::string& dir, pid_t pid) { return write_file(dir + "/cgroup.procs", std::to_string(pid)); }

int cgroup_vhost_connections(const CgroupTree& t, const VHost& vh) {
  int n = cgroup_descendants(cgroup_vhost_dir(t, vh));
  // Whenever it exists: a pool retired at a reload may still run there after its vhost dropped FastCGI.
  if (n > 0 && access(cgroup_fastcgi_dir(t, vh).c_str(), F_OK) == 0) n--;
  if (n > 0 && access(cgroup_spare_dir(t, vh).c_str(), F_OK) == 0) n--;
  return n;
}

bool cgroup_kill_and_remove(const std::string& dir) {
  // cgroup.kill (Linux 5.14) kills the whole subtree at once, daemonized grandchildren included.
  if (!write_file(dir + "/cgroup.kill", "1") && errno == ENOENT) return true;  // already gone
  bool all = true;
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> children;
    while (dirent* e = readdir(d))
      if (e->d_type == DT_DIR && e->d_name[0] != '.') children.push_back(dir + "/" + e->d_name);
    closedir(d);
    for (const auto& c : children) all = cgroup_kill_and_remove(c) && all;
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) all = false;  // EBUSY while the killed are still exiting
  return all;
}

void cgroup_sweep_leaves(const CgroupTree& t) {
  if (!t.enabled) return;
  DIR* d = opendir(t.serving.c_str());
  if (!d) return;
  std::vector<std::string> vhosts;
  while (dirent* e = readdir(d))
    if (std::strncmp(e->d_name, "v-", 2) == 0) vhosts.push_back(t.serving + "/" + e->d_name);
  closedir(d);
  for (const auto& v : vhosts) {
    DIR* vd = opendir(v.c_str());
    if (!vd) continue;
    std::vector<std::string> leaves;
    while (dirent* e = readdir(vd))
      if (e->d_type == DT_DIR && e->d_name[0] == 'c') leaves.push_back(v + "/" + e->d_name);
    closedir(vd);
    for (const auto& leaf : leaves) {
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

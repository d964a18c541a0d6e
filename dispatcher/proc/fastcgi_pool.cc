// FastCGI pools in the master: sockets in per-vhost directories only the vhost's uid can enter,
// app processes forked on demand into the vhost's cgroup and identity, idle pools stopped.
#include "proc/fastcgi_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/php_settings.h"
#include "proc/fastcgi_app.h"
#include "sys/dir_ptr.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/paths.h"
#include "sys/privileges.h"
#include "sys/tenant_dirs.h"

namespace itk {

namespace {

// Removes `name` in the directory `dir_fd` (the path `dir`), saying what stayed.
void remove_logged(int dir_fd, const std::string& dir, const std::string& name) {
  if (RemoveResult r = remove_tree(dir_fd, name.c_str()); !r) log(Level::warning, "%s", r.text(dir).c_str());
}

// A pending connection while app processes run is given this long to be taken by an idle one
// before another process is started.
constexpr int64_t kBusyCheckMs = 5;
// A new app process counts as capacity for a waiting connection until it waits for connections itself
// (php-cgi: 30 ms on a quiet machine, over 100 ms on a busy one), looked for this often, or until this
// long has passed (an app that waits in a way not recognised).
constexpr int64_t kStartCheckMs = 10;
constexpr int64_t kStartMaxMs = 10000;
// How often idle pools are looked for.
constexpr int64_t kSampleMs = 1000;
// An app process told to stop that is still there after this long (a script that never ends, a
// SIGTERM ignored) is killed.
constexpr int64_t kStopGraceMs = 30000;
// An app that dies within this long of its start counts as failing to start.
constexpr int64_t kFastFailureMs = 1000;
// After this many failed starts in a row, requests waiting for the app are answered (502) instead
// of waiting for a start that keeps failing.
constexpr unsigned kFailingStarts = 3;
constexpr const char* kShutDown = "it was shut down by a process holding it";

struct AppProcess {
  pid_t pid = 0;
  int64_t started_ms = 0;
  bool ready = false;        // seen waiting for a connection (or past kStartMaxMs)
  bool terminating = false;  // SIGTERM sent by us
  int64_t terminating_since = 0;
};

// Whether the app process waits for work: blocked in accept() on its listening socket (fd 0), or in a
// poll of any kind, per /proc/PID/syscall (the kernel's view; the master may read it). Anything else,
// or nothing readable, is "still starting".
bool waits_for_work(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/syscall");
  long nr = -1;
  std::string arg0;
  if (!(f >> nr >> arg0)) return false;
  switch (nr) {
    case SYS_accept:
    case SYS_accept4: return arg0 == "0x0";
    case SYS_poll: case SYS_ppoll: case SYS_select: case SYS_pselect6:
    case SYS_epoll_wait: case SYS_epoll_pwait: return true;
    default: return false;
  }
}

}  // namespace

struct FastCgiPool {
  std::string key;  // what makes two pools the same across a reload
  std::string vhost;
  std::string extension;
  std::string program;
  Identity identity;
  unsigned max_processes = 1;
  unsigned idle_timeout = 60;
  unsigned max_requests = 10000;
  std::string cgroup;  // empty: cgroups are off
  std::string temp_dir, php_ini_dir;  // the vhost's (VHostDirs), for the app's environment
  std::string dir;        // the vhost's socket directory
  std::string sock_name;  // the socket's name in it
  std::string socket_path;
  unique_fd listener;     // empty: a broken one could not be replaced yet (retried each second)
  bool retired = false;
  bool claimed = false;  // during sync
  std::vector<AppProcess> procs;
  int64_t check_at = 0;       // when to look again whether a pending connection is still waiting
  int64_t backoff_until = 0;  // apps failing at start: wait before the next
  unsigned fast_failures = 0;
  int64_t last_active = 0;
  uint32_t slot = 0;           // the vhost's scoreboard slot, where workers count the requests they hand over
  uint64_t requests_seen = 0;  // that count at the last look
  bool draining = false;       // stopped for idleness: nothing starts until its last process is gone

  bool failing() const { return fast_failures >= kFailingStarts && procs.empty(); }
  size_t live() const {
    size_t n = 0;
    for (const AppProcess& a : procs) n += !a.terminating;
    return n;
  }
  // A process still starting will take a waiting connection: no other starts for it meanwhile.
  bool starting() const {
    for (const AppProcess& a : procs)
      if (!a.ready && !a.terminating) return true;
    return false;
  }
};

namespace {

std::string pool_key(const VHost& vh, const VHostState& state, const FastCgiApp& app, const std::string& cgroup) {
  std::string k = vh.server_name + '\n' + app.extension + '\n' + app.program + '\n' + vh.document_root + '\n' + cgroup +
                  '\n' + state.temp_dir + '\n' + state.php_ini_dir + '\n' + php_settings_ini(vh);
  k += strprintf("\n%u:%u:%d:%d:%u", static_cast<unsigned>(vh.identity.uid), static_cast<unsigned>(vh.identity.gid),
                 vh.identity.nice ? 1 : 0, vh.identity.nice.value_or(0), vh.fastcgi.max_requests);
  for (gid_t g : vh.identity.groups) k += strprintf(",%u", static_cast<unsigned>(g));
  return k;
}

// The vhost's directory: root's, entered only by the vhost's uid. Returns it open, or an empty fd.
unique_fd prepare_vhost_dir(const std::string& dir, uid_t uid, gid_t gid) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    log(Level::err, "cannot create %s: %s", dir.c_str(), strerror(errno));
    return {};
  }
  unique_fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    log(Level::err, "cannot open %s: %s", dir.c_str(), strerror(errno));
    return {};
  }
  // Ownership and mode are reset only when they are not root's already: a chmod also resets the
  // ACL's mask, which for a moment would shut out the workers of a pool that keeps running here.
  struct stat st {};
  bool ours = fstat(fd.get(), &st) == 0 && st.st_uid == 0 && st.st_gid == 0 && (st.st_mode & 07067) == 0;
  if (!ours && (fchown(fd.get(), 0, 0) != 0 || fchmod(fd.get(), 0700) != 0)) {
    log(Level::err, "cannot make %s root's with mode 0700: %s", dir.c_str(), strerror(errno));
    return {};
  }
  if (SysResult acl = set_user_acl(fd.get(), uid, 1); !acl) {
    // Without ACLs the uid must own the directory to enter it; 0500 keeps it from writing there
    // unless it changes the mode itself, which harms only its own pool.
    log(Level::warning, "%s: no POSIX ACLs here (%s); giving the directory to uid %u with mode 0500 instead",
        dir.c_str(), strerror(acl.err), static_cast<unsigned>(uid));
    if (fchown(fd.get(), uid, gid) != 0 || fchmod(fd.get(), 0500) != 0) {
      log(Level::err, "cannot give %s to uid %u: %s", dir.c_str(), static_cast<unsigned>(uid), strerror(errno));
      return {};
    }
  }
  return fd;
}

// A listening socket at dir/name, owned by the vhost's uid and gid with mode 0600.
unique_fd make_listener(int dir_fd, const std::string& dir, const std::string& name, const Identity& id, int backlog) {
  std::string path = dir + "/" + name;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    log(Level::err, "FastCGI socket path %s is longer than %zu bytes; use a shorter RuntimeDirectory", path.c_str(),
        sizeof sa.sun_path - 1);
    return {};
  }
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  // Blocking: the app calls accept() on it, and php-cgi exits on EAGAIN.
  unique_fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    log(Level::err, "socket for %s failed: %s", path.c_str(), strerror(errno));
    return {};
  }
  (void)unlinkat(dir_fd, name.c_str(), 0);
  // Created with mode 0600 by bind itself: a later chmod by path would follow whatever a tenant put
  // there in the meantime, where the directory is the tenant's (file systems without ACLs).
  mode_t old_mask = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int bind_errno = errno;
  umask(old_mask);
  if (rc != 0) {
    log(Level::err, "bind to %s failed: %s", path.c_str(), strerror(bind_errno));
    return {};
  }
  if (fchownat(dir_fd, name.c_str(), id.uid, id.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    log(Level::err, "cannot give %s to uid %u: %s", path.c_str(), static_cast<unsigned>(id.uid), strerror(errno));
    return {};
  }
  if (listen(fd.get(), backlog) != 0) {
    log(Level::err, "listen on %s failed: %s", path.c_str(), strerror(errno));
    return {};
  }
  return fd;
}

enum class Queue { empty, pending, broken };

// What the kernel says of a listening socket, without accepting. A process holding it (the apps have
// it as fd 0, and so has whatever they start) can shut it down: then it polls as hung up for ever.
Queue queue_state(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return Queue::empty;
  if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return Queue::broken;
  return (p.revents & POLLIN) ? Queue::pending : Queue::empty;
}

std::string read_small(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

FastCgiPools::FastCgiPools() = default;
FastCgiPools::~FastCgiPools() = default;

bool FastCgiPools::init(std::string& error) {
  const std::string run = runtime_directory();
  std::string base = run + "/fastcgi";
  if (mkdir(run.c_str(), 0755) != 0 && errno != EEXIST) {
    error = strprintf("cannot create %s: %s (set RuntimeDirectory=itk in itk.service)", run.c_str(), strerror(errno));
    init_error_ = error;
    return false;
  }
  if (mkdir(base.c_str(), 0711) != 0 && errno != EEXIST) {
    error = strprintf("cannot create %s: %s", base.c_str(), strerror(errno));
    init_error_ = error;
    return false;
  }
  unique_fd fd(open(base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd || fchown(fd.get(), 0, 0) != 0 || fchmod(fd.get(), 0711) != 0) {
    error = strprintf("cannot make %s root's with mode 0711: %s", base.c_str(), strerror(errno));
    init_error_ = error;
    return false;
  }
  // Sockets of an earlier run: nothing listens on them any more.
  if (DirPtr d = open_dir(unique_fd(fcntl(fd.get(), F_DUPFD_CLOEXEC, 3)))) {
    std::vector<std::string> names;
    while (dirent* e = readdir(d.get()))
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
    for (const std::string& n : names) remove_logged(fd.get(), base, n);
  }
  // Tenants' workers must be able to walk down to their own directory.
  struct stat st {};
  if (stat(run.c_str(), &st) == 0 && (st.st_mode & 0001) == 0)
    log(Level::warning, "%s is not searchable by others (mode %03o): workers cannot reach their FastCGI sockets",
        run.c_str(), st.st_mode & 0777);
  base_ = base;
  return true;
}

void FastCgiPools::sync(Runtime& rt, const CgroupTree& cgroups) {
  const Config& cfg = *rt.config;
  for (auto& p : pools_) p->claimed = false;
  struct Wanted {
    const VHost* vh;
    const FastCgiApp* app;
    std::string* socket;  // where the workers of this generation find it
    std::string key;
    std::string cgroup;
    FastCgiPool* pool = nullptr;
  };
  std::vector<Wanted> wanted;
  for (const VHost& vh : cfg.vhosts) {
    VHostState& state = rt.state(vh);
    for (size_t i = 0; i < vh.fastcgi.apps.size(); i++) {
      const FastCgiApp& app = vh.fastcgi.apps[i];
      std::string cg = cgroups.enabled ? cgroup_fastcgi_dir(cgroups, vh) : "";
      Wanted w{&vh, &app, &state.fastcgi_sockets[i], pool_key(vh, state, app, cg), cg};
      for (auto& p : pools_) {
        if (!p->retired && !p->claimed && p->key == w.key && p->listener) {
          p->claimed = true;
          w.pool = p.get();
          break;
        }
      }
      wanted.push_back(std::move(w));
    }
  }
  if (!wanted.empty() && !tried_init_) {
    tried_init_ = true;
    std::string error;
    if (!init(error)) log(Level::err, "FastCGI: %s", error.c_str());
  }
  // Retire what is no longer wanted first: a new pool may take over its socket path.
  for (auto& p : pools_) {
    if (p->retired || p->claimed) continue;
    p->retired = true;
    if (p->listener) (void)unlink(p->socket_path.c_str());
    p->listener.reset();
    stop_pool(*p, "its vhost or app changed or was removed");
  }
  // A vhost without FastCGI apps now: its FastCGI cgroup goes once no pool uses it (else it would
  // count as one of its connections).
  if (cgroups.enabled) {
    for (const VHost& vh : cfg.vhosts) {
      if (!vh.fastcgi.apps.empty()) continue;
      std::string cg = cgroup_fastcgi_dir(cgroups, vh);
      bool used = false;
      for (auto& p : pools_) used = used || p->cgroup == cg;
      if (!used && access(cg.c_str(), F_OK) == 0) (void)cgroup_kill_and_remove(cg);
    }
  }
  std::vector<std::string> dirs_in_use;
  for (Wanted& w : wanted) {
    const VHost& vh = *w.vh;
    auto [it, added] = dir_ids_.emplace(vh.server_name, next_dir_id_);
    if (added) next_dir_id_++;
    std::string dir = base_.empty() ? "" : base_ + "/" + std::to_string(it->second);
    if (!dir.empty() && std::find(dirs_in_use.begin(), dirs_in_use.end(), dir) == dirs_in_use.end())
      dirs_in_use.push_back(dir);
    FastCgiPool* p = w.pool;
    if (!p && !dir.empty()) {
      unique_fd dfd(prepare_vhost_dir(dir, vh.identity.uid, vh.identity.gid));
      std::string name = w.app->extension.substr(1) + ".sock";
      unique_fd l;
      if (dfd) l = make_listener(dfd.get(), dir, name, vh.identity, static_cast<int>(vh.fastcgi.max_processes));
      if (l) {
        auto np = std::make_unique<FastCgiPool>();
        np->key = w.key;
        np->vhost = vh.server_name;
        np->extension = w.app->extension;
        np->program = w.app->program;
        np->identity = vh.identity;
        const VHostState& state = rt.state(vh);
        np->slot = state.slot;
        np->temp_dir = state.temp_dir;
        np->php_ini_dir = state.php_ini_dir;
        np->cgroup = w.cgroup;
        np->dir = dir;
        np->sock_name = name;
        np->socket_path = dir + "/" + name;
        np->listener = std::move(l);
        np->claimed = true;
        p = np.get();
        pools_.push_back(std::move(np));
      }
    } else if (p) {
      // A kept pool: its uid may be the same while the directory was made for an earlier one.
      unique_fd dfd(prepare_vhost_dir(dir, vh.identity.uid, vh.identity.gid));
      if (p->max_processes != vh.fastcgi.max_processes)
        (void)listen(p->listener.get(), static_cast<int>(vh.fastcgi.max_processes));
    }
    if (!p) {
      log(Level::err, "vhost %s: FastCGI %s %s has no socket%s%s; its requests get 503", vh.server_name.c_str(),
          w.app->extension.c_str(), w.app->program.c_str(), init_error_.empty() ? "" : ": ", init_error_.c_str());
      w.socket->clear();
      continue;
    }
    p->max_processes = vh.fastcgi.max_processes;
    p->idle_timeout = vh.fastcgi.idle_timeout;
    p->max_requests = vh.fastcgi.max_requests;
    *w.socket = p->socket_path;
  }
  // Directories of vhosts without FastCGI now.
  if (!base_.empty()) {
    unique_fd bfd(open(base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    for (auto it = dir_ids_.begin(); bfd && it != dir_ids_.end(); ++it) {
      std::string dir = base_ + "/" + std::to_string(it->second);
      if (std::find(dirs_in_use.begin(), dirs_in_use.end(), dir) == dirs_in_use.end())
        remove_logged(bfd.get(), base_, std::to_string(it->second));
    }
  }
  // Retired pools with no process left go now.
  std::vector<FastCgiPool*> done;
  for (auto& p : pools_)
    if (p->retired && p->procs.empty()) done.push_back(p.get());
  for (FastCgiPool* p : done) pool_emptied(*p);
}

void FastCgiPools::add_poll_fds(std::vector<pollfd>& fds) {
  polled_.clear();
  if (stopping_) return;
  int64_t now = now_ms();
  for (auto& p : pools_) {
    if (p->retired || !p->listener || p->check_at || p->starting()) continue;
    if (now < p->backoff_until && !p->failing()) continue;
    if (p->procs.size() >= p->max_processes || p->draining) continue;
    fds.push_back({p->listener.get(), POLLIN, 0});
    polled_.push_back(p.get());
  }
}

void FastCgiPools::on_poll(const std::vector<pollfd>& fds, size_t first) {
  int64_t now = now_ms();
  for (size_t i = 0; i < polled_.size() && first + i < fds.size(); i++) {
    if (!(fds[first + i].revents & POLLIN)) continue;
    FastCgiPool& p = *polled_[i];
    if (fds[first + i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      replace_listener(p, kShutDown);
      continue;
    }
    if (now < p.backoff_until) {
      refuse_waiting(p);
      continue;
    }
    // With a process of its own waiting in accept() the connection is about to be taken: look again shortly.
    if (p.live() == 0) spawn(p, now);
    else p.check_at = now + kBusyCheckMs;
  }
  polled_.clear();
}

void FastCgiPools::spawn(FastCgiPool& p, int64_t now) {
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of a FastCGI app for %s failed: %s; retrying in 1 s", p.vhost.c_str(), strerror(errno));
    p.backoff_until = now + 1000;
    return;
  }
  if (pid == 0)
    fastcgi_app_main({p.vhost, p.program, p.identity, p.cgroup, p.listener.get(), p.max_requests, p.temp_dir,
                      p.php_ini_dir});
  // A cold start gets a whole FastCGIIdleTimeout; starting more processes for a queue does not renew it,
  // since the tenant's own programs can fill the queue too.
  if (p.live() == 0) p.last_active = now;
  AppProcess a;
  a.pid = pid;
  a.started_ms = now;
  p.procs.push_back(a);
  log(Level::info, "vhost %s: started FastCGI app %s (pid %d, %zu of at most %u)", p.vhost.c_str(), p.program.c_str(),
      pid, p.procs.size(), p.max_processes);
}

// A new listening socket at the pool's path takes the place of the old one, and the processes holding
// the old one are stopped. Closing the master's descriptor of the old socket is how its queue is emptied:
// the kernel resets the connections still queued on a listening socket once nobody holds it, so their
// workers answer 502 at once. The master never accepts on a pool socket (see refuse_waiting).
void FastCgiPools::replace_listener(FastCgiPool& p, const char* why) {
  if (p.listener) log(Level::warning, "vhost %s: replacing the FastCGI socket %s: %s", p.vhost.c_str(), p.socket_path.c_str(), why);
  stop_pool(p, "their listening socket is being replaced");
  p.listener.reset();
  p.check_at = 0;
  unique_fd dfd(open(p.dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dfd) p.listener = make_listener(dfd.get(), p.dir, p.sock_name, p.identity, static_cast<int>(p.max_processes));
  if (!p.listener)
    log(Level::err, "vhost %s: no FastCGI socket at %s; its PHP requests get 503 until one can be made (retried "
                    "every second)", p.vhost.c_str(), p.socket_path.c_str());
}

// A pool whose app keeps failing at start, with requests waiting: they are refused (502) now rather
// than left to wait for a start that keeps failing. The socket is one open file description with
// whatever the tenant's processes inherited (php-cgi's fd 0 and everything it starts), so the tenant
// can change its flags and options and take connections from its queue at any moment: an accept() by
// the master could block for as long as the tenant likes. The master never accepts, reads or sets an
// option on it; it closes its descriptor and binds a fresh socket at the same path instead.
void FastCgiPools::refuse_waiting(FastCgiPool& p) {
  log(Level::err, "vhost %s: FastCGI app %s keeps failing at start; the requests waiting for it are answered 502",
      p.vhost.c_str(), p.program.c_str());
  replace_listener(p, "refusing the requests that wait for an app that keeps failing at start");
}

void FastCgiPools::stop_pool(FastCgiPool& p, const char* why) {
  size_t n = 0;
  for (AppProcess& a : p.procs) {
    if (a.terminating) continue;
    a.terminating = true;
    a.terminating_since = now_ms();
    (void)kill(a.pid, SIGTERM);
    n++;
  }
  if (n) log(Level::info, "vhost %s: stopping %zu FastCGI process(es) of %s: %s", p.vhost.c_str(), n, p.program.c_str(), why);
}

// A pool's last process ended: whatever its requests left running in the vhost's FastCGI cgroup ends
// too, once no pool of that vhost has a process; a retired pool is forgotten.
void FastCgiPools::pool_emptied(FastCgiPool& p) {
  polled_.clear();
  p.draining = false;
  if (!p.cgroup.empty()) {
    bool busy = false, wanted = false;
    for (auto& o : pools_) {
      if (o->cgroup != p.cgroup) continue;
      busy = busy || !o->procs.empty();
      wanted = wanted || !o->retired;
    }
    if (!busy) {
      if (!wanted) (void)cgroup_kill_and_remove(p.cgroup);
      else if (read_small(p.cgroup + "/cgroup.events").find("populated 1") != std::string::npos) {
        log(Level::info, "vhost %s: ending what its FastCGI requests left running", p.vhost.c_str());
        std::ofstream(p.cgroup + "/cgroup.kill") << "1";
      }
    }
  }
  if (p.retired)
    std::erase_if(pools_, [&p](const std::unique_ptr<FastCgiPool>& o) { return o.get() == &p; });
}

int64_t FastCgiPools::tick(int64_t now) {
  int64_t next = now + kSampleMs;
  for (auto& p : pools_) {
    // Starting processes: the pool's socket is not polled until they wait for connections themselves.
    for (AppProcess& a : p->procs)
      if (!a.ready && !a.terminating && (waits_for_work(a.pid) || now - a.started_ms >= kStartMaxMs)) a.ready = true;
    if (p->starting()) next = std::min(next, now + kStartCheckMs);
    if (p->check_at && now >= p->check_at) {
      p->check_at = 0;
      Queue q = p->listener ? queue_state(p->listener.get()) : Queue::empty;
      if (q == Queue::broken && !p->retired) replace_listener(*p, kShutDown);
      else if (!stopping_ && !p->retired && !p->draining && p->listener && p->procs.size() < p->max_processes &&
               now >= p->backoff_until && q == Queue::pending && !p->starting())
        spawn(*p, now);
    }
    for (int64_t t : {p->check_at, p->backoff_until})
      if (t > now) next = std::min(next, t);
  }
  if (now >= next_sample_) {
    next_sample_ = now + kSampleMs;
    for (auto& p : pools_)
      if (!p->retired && !p->listener && !stopping_) replace_listener(*p, "no socket yet");
    for (auto& p : pools_)
      for (AppProcess& a : p->procs)
        if (a.terminating && now - a.terminating_since >= kStopGraceMs) {
          log(Level::warning, "vhost %s: FastCGI app process %d still there %lld s after SIGTERM; killing it",
              p->vhost.c_str(), a.pid, static_cast<long long>(kStopGraceMs / 1000));
          (void)kill(a.pid, SIGKILL);
          a.terminating_since = now;  // once more after another grace, should SIGKILL not have been enough
        }
    for (auto& p : pools_) {
      if (p->procs.empty() || p->retired) continue;
      // Activity is what workers report: a request handed over, and a beat each second while they wait
      // for its answer. Nothing the app or the tenant's own programs do (CPU time, connections to the
      // socket from a daemon of theirs) keeps a pool, and what its requests left running, alive.
      uint64_t n = sb_ ? sb_->fastcgi_activity[p->slot % kMaxVHostSlots].load(std::memory_order_relaxed) : 0;
      if (n != p->requests_seen) {
        p->requests_seen = n;
        p->last_active = now;
      }
      if (p->idle_timeout && !p->draining && now - p->last_active >= static_cast<int64_t>(p->idle_timeout) * 1000) {
        // No new process until every old one is gone: the pool must empty, so that what its requests
        // left running is killed (pool_emptied), even while a tenant's daemon keeps its queue busy.
        p->draining = true;
        stop_pool(*p, strprintf("no requests for %u s (FastCGIIdleTimeout)", p->idle_timeout).c_str());
      }
    }
  }
  return std::max<int64_t>(0, std::min(next, next_sample_) - now);
}

bool FastCgiPools::on_exit(pid_t pid, int status) {
  for (auto& pp : pools_) {
    FastCgiPool& p = *pp;
    auto it = std::find_if(p.procs.begin(), p.procs.end(), [pid](const AppProcess& a) { return a.pid == pid; });
    if (it == p.procs.end()) continue;
    AppProcess a = *it;
    p.procs.erase(it);
    int64_t now = now_ms();
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    bool expected = a.terminating && (clean || (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM));
    if (!expected && !clean) {
      if (WIFSIGNALED(status))
        log(Level::warning, "vhost %s: FastCGI app %s (pid %d) was killed by signal %d (%s)", p.vhost.c_str(),
            p.program.c_str(), pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
      else
        log(Level::warning, "vhost %s: FastCGI app %s (pid %d) exited with status %d", p.vhost.c_str(), p.program.c_str(),
            pid, WEXITSTATUS(status));
    }
    // A process that ends within a second of its start, whatever its status, did not start: the
    // pool backs off. An outside SIGKILL (an operator, the OOM killer) says nothing either way.
    bool killed = WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM);
    if (now - a.started_ms >= kFastFailureMs) {
      p.fast_failures = 0;
    } else if (!a.terminating && !killed) {
      p.fast_failures = std::min(p.fast_failures + 1, 7u);
      p.backoff_until = now + (100LL << p.fast_failures);
      log(Level::warning, "vhost %s: FastCGI app %s fails at start; next attempt in %lld ms", p.vhost.c_str(),
          p.program.c_str(), static_cast<long long>(p.backoff_until - now));
    }
    if (p.failing() && p.listener && !p.retired && queue_state(p.listener.get()) != Queue::empty) refuse_waiting(p);
    if (p.procs.empty()) pool_emptied(p);
    return true;
  }
  return false;
}

void FastCgiPools::stop_all() {
  stopping_ = true;
  for (auto& p : pools_) stop_pool(*p, "itk is stopping");
}

void FastCgiPools::kill_all() {
  for (auto& p : pools_) {
    for (AppProcess& a : p->procs) (void)kill(a.pid, SIGKILL);
    if (!p->cgroup.empty()) std::ofstream(p->cgroup + "/cgroup.kill") << "1";
  }
}

void FastCgiPools::remove_sockets() {
  for (auto& p : pools_) p->listener.reset();
  if (base_.empty()) return;
  unique_fd bfd(open(base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!bfd) return;
  for (const auto& [name, id] : dir_ids_) remove_logged(bfd.get(), base_, std::to_string(id));
}

size_t FastCgiPools::processes() const {
  size_t n = 0;
  for (const auto& p : pools_) n += p->procs.size();
  return n;
}

size_t FastCgiPools::processes_of(uint32_t slot) const {
  size_t n = 0;
  for (const auto& p : pools_)
    if (p->slot % kMaxVHostSlots == slot % kMaxVHostSlots) n += p->procs.size();
  return n;
}

bool FastCgiPools::any_configured() const {
  for (const auto& p : pools_)
    if (!p->retired) return true;
  return false;
}

}  // namespace itk

// Spawner role: forks workers ahead of demand for the acceptors of one configuration generation, and
// kills those a tenant stopped. Its only inputs are fixed-size requests; its memory holds the configuration
// and nothing of any client, so every worker starts from a clean image.
#include "proc/spawner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>

#include "proc/spawn_protocol.h"
#include "proc/worker.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/proctitle.h"
#include "sys/privileges.h"
#include "sys/unique_fd.h"
#include "tls/key_client.h"
#include "tls/tls_config.h"

namespace itk {
namespace {

// The spawner's descriptors besides stdio: the log files follow from kFirstLogFd.
constexpr int kControlFd = 3;
constexpr int kKeyRegistrationFd = 4;
constexpr int kFirstLogFd = 5;
// Workers forked per turn of the loop before it looks at its sockets again, so that one acceptor's large
// request does not hold up another's, nor the reaping of stopped workers.
constexpr unsigned kForksPerTurn = 4;
// epoll tags: signals, the control socket, and acceptor channels (index + kChannelTag).
constexpr uint64_t kSignalTag = 0, kControlTag = 1, kChannelTag = 2;

struct Order {
  uint64_t channel = 0;  // the acceptor that asked
  uint32_t vhost = 0;
  uint32_t count = 0;
};

class Spawner {
 public:
  explicit Spawner(const ProcessContext& ctx) : ctx_(ctx), vhosts_(ctx.rt->config->vhosts) {}
  [[noreturn]] void run();

 private:
  void setup();
  void on_control();
  void on_channel(uint64_t id);
  void close_channel(uint64_t id);
  void fork_worker(const Order& o);
  void reap();
  void kill_stopped(pid_t pid, const VHost& vh);

  const ProcessContext& ctx_;
  const std::vector<VHost>& vhosts_;
  unique_fd epoll_, sigfd_;
  bool control_open_ = true;
  uint64_t next_channel_ = 0;
  std::unordered_map<uint64_t, unique_fd> channels_;  // acceptors' channels by id
  std::deque<Order> orders_;
  std::unordered_map<pid_t, uint32_t> workers_;        // live workers -> vhost index
  std::optional<TlsKeyMap> keys_;                       // with https: which key each vhost's handshakes use
};

void Spawner::setup() {
  log_set_role("spawner");
  (void)prctl(PR_SET_NAME, "itk-spawner", 0, 0, 0);
  proctitle_set({"spawner"});
  const ServerConfig& sc = ctx_.rt->config->server;
  const pid_t master = getppid();
  if (ctx_.tls.contexts) keys_.emplace(*ctx_.rt->config);
  become_spawner(sc.acceptor, sc.limit_uid_range, sc.limit_gid_range);
  (void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  if (getppid() != master) _exit(0);
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&mask, s);
  sigfd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!sigfd_ || !epoll_) {
    log(Level::err, "cannot create the spawner's signalfd/epoll: %s", strerror(errno));
    _exit(1);
  }
  for (auto [fd, tag] : {std::pair{sigfd_.get(), kSignalTag}, std::pair{kControlFd, kControlTag}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
      log(Level::err, "cannot watch the spawner's fd %d: %s", fd, strerror(errno));
      _exit(1);
    }
  }
}

void Spawner::on_control() {
  for (;;) {
    SpawnAcceptor m;
    unique_fd fd;
    int r = spawn_recv_acceptor(kControlFd, m, fd);
    if (r == -EAGAIN) return;
    if (r <= 0 || !fd) {
      if (r < 0 && r != -EBADMSG) log(Level::err, "reading the master's control socket failed: %s", strerror(-r));
      // The master let go of this generation: serve the acceptors it already has, then end.
      control_open_ = false;
      (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, kControlFd, nullptr);
      return;
    }
    uint64_t id = next_channel_++;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id + kChannelTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) < 0) {
      log(Level::err, "cannot watch the channel of acceptor %u: %s", m.index, strerror(errno));
      continue;
    }
    channels_[id] = std::move(fd);
  }
}

void Spawner::close_channel(uint64_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.get(), nullptr);
  channels_.erase(it);
  std::erase_if(orders_, [id](const Order& o) { return o.channel == id; });
}

// An acceptor's requests. Anything but a well-formed one ends its channel: an acceptor parses client
// bytes, so what it sends is checked as if a client had written it.
void Spawner::on_channel(uint64_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  for (;;) {
    SpawnRequest m;
    int r = spawn_recv_request(it->second.get(), m);
    if (r == -EAGAIN) return;
    if (r <= 0 || m.vhost >= vhosts_.size() || m.count == 0 || m.count > kMaxSpawnPerRequest) {
      if (r != 0) log(Level::err, "malformed request from an acceptor; closing its channel");
      return close_channel(id);
    }
    orders_.push_back({id, m.vhost, m.count});
  }
}

void Spawner::fork_worker(const Order& o) {
  auto ch = channels_.find(o.channel);
  if (ch == channels_.end()) return;
  const VHost& vh = vhosts_[o.vhost];
  SpawnReply reply;
  reply.vhost = o.vhost;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    log(Level::err, "socketpair for a worker of %s failed: %s", vh.server_name.c_str(), strerror(errno));
    (void)spawn_send_reply(ch->second.get(), reply, -1);
    return;
  }
  unique_fd mine(sv[0]), theirs(sv[1]);
  // The worker's own channel to the key process, registered by this trusted side and bound there to the one
  // key its vhost's handshakes use: a worker can sign with no other vhost's key, whatever it sends.
  unique_fd key;
  if (ctx_.tls.contexts && keys_) {
    std::optional<uint32_t> id = keys_->for_name(vh.server_name);
    // Clients without SNI, or with a name no certificate is for, get the default vhost and the default
    // certificate: that vhost's workers may use its key too.
    std::optional<uint32_t> also;
    if (o.vhost == ctx_.rt->config->default_vhost && keys_->default_key() != id) also = keys_->default_key();
    if (id) {
      if (int rc = key_register_bound_channel(kKeyRegistrationFd, *id, vh.server_name, key, also); rc < 0)
        log(Level::err, "registering a key channel for a worker of %s failed: %s", vh.server_name.c_str(),
            strerror(-rc));
    }
  }
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of a worker for %s failed: %s", vh.server_name.c_str(), strerror(errno));
    (void)spawn_send_reply(ch->second.get(), reply, -1);
    return;
  }
  if (pid == 0) worker_main(ctx_, vh, theirs.get(), key.get());
  workers_[pid] = o.vhost;
  // Into the vhost's spare/ cgroup before its acceptor hears of it: it is confined and counted under the
  // vhost before any connection reaches it, and the acceptor's later move into a connection's leaf cannot
  // race with one of the worker's own. If that fails it gets no acceptor, sees its channel close and exits.
  if (ctx_.cgroups && ctx_.cgroups->enabled) {
    const std::string dir = cgroup_spare_dir(*ctx_.cgroups, vh);
    if (!cgroup_move(dir, pid)) {
      log(Level::err, "cannot move a worker of %s into %s: %s", vh.server_name.c_str(), dir.c_str(), strerror(errno));
      (void)spawn_send_reply(ch->second.get(), reply, -1);
      return;
    }
  }
  reply.pid = pid;
  if (int rc = spawn_send_reply(ch->second.get(), reply, mine.get()); rc < 0) {
    // The worker sees its channel closed and exits; an acceptor that does not read its replies loses it.
    log(Level::err, "cannot hand a new worker to its acceptor: %s", strerror(-rc));
    if (rc != -EAGAIN) close_channel(o.channel);
  }
}

// A tenant's process may stop a worker (same uid); a stopped spare would take a connection and never serve
// it. The spawner holds no CAP_KILL: a child of it becomes the tenant for the one kill().
void Spawner::kill_stopped(pid_t pid, const VHost& vh) {
  log(Level::warning, "worker %d for %s was stopped by a signal; killing it", pid, vh.server_name.c_str());
  pid_t k = fork();
  if (k == 0) {
    if (setresgid(vh.identity.gid, vh.identity.gid, vh.identity.gid) == 0 &&
        setresuid(vh.identity.uid, vh.identity.uid, vh.identity.uid) == 0)
      (void)kill(pid, SIGKILL);
    _exit(0);
  }
}

void Spawner::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG | WUNTRACED);
    if (pid <= 0) return;
    auto it = workers_.find(pid);
    if (it == workers_.end()) continue;  // a kill_stopped child
    const VHost& vh = vhosts_[it->second];
    if (WIFSTOPPED(status)) {
      kill_stopped(pid, vh);
      continue;
    }
    if (WIFSIGNALED(status))
      log(Level::warning, "worker %d for %s was killed by signal %d", pid, vh.server_name.c_str(), WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
      log(Level::warning, "worker %d for %s exited with status %d", pid, vh.server_name.c_str(), WEXITSTATUS(status));
    workers_.erase(it);
  }
}

void Spawner::run() {
  setup();
  epoll_event events[64];
  for (;;) {
    // Without the master's socket and without acceptors nothing can ask for a worker again. Workers still
    // serving go on; the master, their subreaper, reaps them.
    if (!control_open_ && channels_.empty()) _exit(0);
    int n = epoll_wait(epoll_.get(), events, 64, orders_.empty() ? -1 : 0);
    if (n < 0 && errno != EINTR) {
      log(Level::err, "epoll_wait failed: %s", strerror(errno));
      _exit(1);
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == kSignalTag) {
        signalfd_siginfo si;
        while (read(sigfd_.get(), &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGCHLD) reap();
          else _exit(0);
        }
      } else if (tag == kControlTag) {
        on_control();
      } else {
        on_channel(tag - kChannelTag);
      }
    }
    for (unsigned forked = 0; forked < kForksPerTurn && !orders_.empty(); forked++) {
      Order& o = orders_.front();
      fork_worker(o);
      if (--o.count == 0) orders_.pop_front();
      else orders_.push_back(orders_.front()), orders_.pop_front();  // round robin between acceptors
    }
    reap();
  }
}

}  // namespace

[[noreturn]] void spawner_main(const ProcessContext& ctx, int control_fd) {
  // Descriptors: stdio, the control socket, the key registration socket and the log files (for its
  // workers); nothing of the master else.
  const int reg = ctx.tls.key_registration_fd;
  std::vector<std::pair<int, int>> moves{{control_fd, kControlFd}};
  if (reg >= 0) moves.emplace_back(reg, kKeyRegistrationFd);
  const size_t fixed = moves.size();
  LogFds logs = ctx.logs.renumbered(kFirstLogFd, moves);
  if (!arrange_descriptors(moves, kFirstLogFd + static_cast<int>(moves.size() - fixed))) _exit(1);
  if (reg < 0) (void)close(kKeyRegistrationFd);
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&mask, s);
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  // In serving/, as the acceptors: a worker can then move itself from here into its vhost's cgroup with
  // only the acceptor user's rights over serving/.
  if (ctx.cgroups && ctx.cgroups->enabled && !cgroup_join(ctx.cgroups->serving + "/acceptors")) {
    log(Level::err, "cannot move the spawner into %s/acceptors: %s", ctx.cgroups->serving.c_str(), strerror(errno));
    _exit(1);
  }
  // This frame never returns, so the workers forked below may keep referring to it.
  ProcessContext mine = ctx;
  mine.tls.key_registration_fd = reg >= 0 ? kKeyRegistrationFd : -1;
  mine.logs = std::move(logs);
  Spawner s(mine);
  s.run();
}

}  // namespace itk

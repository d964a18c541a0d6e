// Master role: supervise acceptors and the key process, hand it the session ticket secret, reload on
// SIGHUP, reopen the logs on SIGUSR1, stop gracefully on SIGTERM, report to systemd.
#include "proc/master.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "config/runtime.h"
#include "ctl/control_protocol.h"
#include "proc/acceptor.h"
#include "proc/control_server.h"
#include "proc/fastcgi_pool.h"
#include "proc/key_server.h"
#include "proc/process_context.h"
#include "proc/spawn_protocol.h"
#include "proc/spawner.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/notify.h"
#include "sys/paths.h"
#include "sys/proctitle.h"
#include "sys/unique_fd.h"
#include "sys/vhost_dirs.h"
#include "sys/vhost_logs.h"
#include "tls/ticket_secret.h"
#include "tls/tls.h"
#include "tls/tls_config.h"

namespace itk {
namespace {

// Loading even a few thousand keys takes well under this.
constexpr int kKeyProcessReadyMs = 30000;
// After the key process of the running configuration failed to start again.
constexpr int64_t kKeyProcessRetryMs = 5000;

// The TLS side of one generation: contexts for its acceptors and the key process that signs for them.
// It lives as long as the master uses it for new acceptors or an acceptor of it runs; when the last
// reference goes, the registration socket closes and the key process exits once its channels have.
struct TlsGeneration {
  std::unique_ptr<TlsContexts> contexts;
  unique_fd registration;  // the acceptors' end; acceptors get it by fork and keep only their own channel
  pid_t key_pid = 0;
};

// The spawner of a generation: it forks the workers its acceptors ask for. The master holds its control
// socket while it may start acceptors for the generation; when it lets go and the last of those acceptors
// has exited, the spawner ends.
struct SpawnerProc {
  pid_t pid = 0;
  uint64_t generation = 0;
  int64_t started_ms = 0;
  unique_fd control;  // closed once the generation is replaced
};

struct AcceptorProc {
  pid_t pid = 0;
  uint64_t generation = 0;
  uint32_t index = 0;
  int64_t started_ms = 0;
  std::shared_ptr<TlsGeneration> tls;
};

struct ProcStat {
  char state = 0;   // R, S, D, T (stopped by a signal), t, Z...
  pid_t ppid = -1;
};

// State and parent of `pid` from /proc (ppid -1 when it cannot be read). Used before signalling a pid
// read from the scoreboard, which tenants' workers could have written.
ProcStat proc_stat(pid_t pid) {
  ProcStat st;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return st;
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 4 > line.size()) return st;
  // After "comm)": " S PPID ..."
  st.state = line[close + 2];
  st.ppid = static_cast<pid_t>(atol(line.c_str() + close + 4));
  return st;
}

pid_t parent_of(pid_t pid) { return proc_stat(pid).ppid; }

class Master {
 public:
  Master(const LoadOptions& opts, std::vector<Listener> listeners) : opts_(opts), listeners_(std::move(listeners)) {}
  int run(std::unique_ptr<Config> cfg);

 private:
  void assign_slots(Runtime& rt);
  void check_proxy_listeners(const Config& cfg) const;
  bool start_tls(const Config& cfg, std::shared_ptr<TlsGeneration>& out, std::string& error);
  void replace_acceptors();
  bool start_spawner();
  void on_spawner_exit(size_t i, int status);
  void on_key_process_exit(pid_t pid, int status);
  void spawn_acceptor();
  void on_child_exit(pid_t pid, int status);
  void reap();
  void reload();
  void reopen_logs();
  void begin_stop();
  void signal_workers(int sig);
  bool is_our_worker(pid_t parent) const;
  void reclaim_workers();
  void publish_status(bool force);
  unsigned live_connections(const VHost& vh) const;
  std::pair<unsigned, unsigned> acceptors_busy_idle() const;
  std::string control_answer(std::string_view request) const;
  void sync_cgroups(int64_t grace_ms);
  void run_removals();
  bool children_left() const;

  LoadOptions opts_;
  std::vector<Listener> listeners_;
  bool https_ = false;                   // an https listener was passed in
  std::shared_ptr<TlsGeneration> tls_;   // of the current generation; null without https
  std::unordered_set<pid_t> key_pids_;   // key processes not yet reaped, of any generation
  TicketSecret ticket_secret_;            // with https: made at start, sent to every key process
  int64_t tls_retry_at_ = 0;             // when to start a key process again after a failed restart
  Scoreboard* sb_ = nullptr;
  CgroupTree cgroups_;
  FastCgiPools fastcgi_;
  VHostDirs vhost_dirs_;
  LogFiles logs_;                         // of the current generation; older ones live on in their processes
  struct PendingRemoval {
    std::string dir;
    int64_t at_ms;
  };
  std::vector<PendingRemoval> removals_;  // cgroups of removed vhosts, killed after a grace period
  bool sweep_ = false;                    // an orphaned worker ended: its leaf may be left empty
  std::unique_ptr<Runtime> current_;
  uint64_t generation_ = 0;
  std::vector<AcceptorProc> acceptors_;
  std::vector<SpawnerProc> spawners_;   // the current generation's last; older ones until they end
  int64_t spawner_retry_at_ = 0;        // when to start a spawner again after one failed at once
  std::unordered_map<std::string, uint32_t> slots_;  // ServerName -> scoreboard slot, stable across reloads
  uint32_t next_slot_ = 0;
  unsigned fast_failures_ = 0;
  int64_t respawn_at_ = 0;  // when missing acceptors of the current generation may be started again
  bool stopping_ = false;
  int64_t stop_deadline_ = 0;
  std::string note_;        // STATUS suffix after a failed reload
  uint64_t reloads_ = 0;    // reloads asked for since start (itkctl reload waits for this to move)
  std::string unit_;        // the systemd unit that started the master, if one did
  ControlServer control_;
  std::string last_status_;
  int64_t last_status_ms_ = 0;
  int64_t next_reclaim_ = 0;
};

// A ProxyProtocol name that no listener has may belong to a socket unit not started yet; said once a load.
void Master::check_proxy_listeners(const Config& cfg) const {
  for (const std::string& name : cfg.server.proxy_protocol) {
    bool found = false;
    for (const Listener& l : listeners_) found = found || l.name == name;
    if (!found)
      log(Level::warning, "ProxyProtocol names the listener `%s`, but systemd passed none of that name (its "
                          "FileDescriptorName=)", name.c_str());
  }
}

void Master::assign_slots(Runtime& rt) {
  for (const VHost& vh : rt.config->vhosts) {
    auto [it, inserted] = slots_.emplace(vh.server_name, next_slot_);
    if (inserted) next_slot_++;
    // Past 65536 distinct names since start, slots are shared; counts stay exact per slot, and
    // sharing only makes limits stricter. A restart resets the numbering.
    rt.state(vh).slot = it->second % kMaxVHostSlots;
  }
}

// Builds the contexts (certificates only, read here) and forks the key process, which reads the keys
// itself: the master, which every acceptor is forked from, never holds a private key byte.
bool Master::start_tls(const Config& cfg, std::shared_ptr<TlsGeneration>& out, std::string& error) {
  out.reset();
  if (!https_) return true;
  if (!tls_configured(cfg)) {
    error = "a listening socket named \"https\" was passed in, but no certificate is configured: set "
            "TLSCertificateFile and TLSCertificateKeyFile in [server] or in a vhost, or disable itk-tls.socket";
    return false;
  }
  auto g = std::make_shared<TlsGeneration>();
  g->contexts = TlsContexts::build(cfg, error);
  if (!g->contexts) return false;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    error = strprintf("socketpair for the key process failed: %s", strerror(errno));
    return false;
  }
  unique_fd mine(sv[0]), theirs(sv[1]);
  const pid_t master = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    error = strprintf("fork of the key process failed: %s", strerror(errno));
    return false;
  }
  if (pid == 0) {
    // Its descriptors: stdio and the registration socket as fd 3 (no listener, no other generation's).
    if (dup2(theirs.get(), 3) < 0) _exit(1);
    close_range(4, ~0U, 0);
    key_server_main(cfg, 3, master);
  }
  theirs.reset();
  key_pids_.insert(pid);
  g->key_pid = pid;
  g->registration = std::move(mine);
  std::string e = key_server_wait_ready(g->registration.get(), kKeyProcessReadyMs);
  if (e.empty()) {
    if (int rc = ticket_secret_send(g->registration.get(), ticket_secret_); rc < 0)
      e = strprintf("sending it the session ticket secret failed: %s", strerror(-rc));
  }
  if (!e.empty()) {
    (void)kill(pid, SIGKILL);  // it has exited already unless it hung
    error = "key process: " + e;
    return false;
  }
  out = std::move(g);
  return true;
}

// A new spawner and set of acceptors numbered generation_, for the current runtime and TLS generation; the
// old ones finish their heads and exit. Used at start, by reload, and after a
// key process or spawner restart (callers number the generation).
void Master::replace_acceptors() {
  for (SpawnerProc& s : spawners_) s.control.reset();
  if (start_spawner())
    for (unsigned i = 0; i < current_->config->server.start_servers; i++) spawn_acceptor();
  for (const AcceptorProc& a : acceptors_)
    if (a.generation != generation_) (void)kill(a.pid, SIGTERM);
}

// The generation's spawner, forked before its acceptors: from the master, whose memory holds the
// configuration and certificates but never a client's byte or a secret (the ticket secret is in memory
// that fork wipes), so the workers it forks start clean.
bool Master::start_spawner() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    log(Level::err, "socketpair for the spawner failed: %s; retrying in 1 s", strerror(errno));
    spawner_retry_at_ = now_ms() + 1000;
    return false;
  }
  unique_fd mine(sv[0]), theirs(sv[1]);
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of the spawner failed: %s; retrying in 1 s", strerror(errno));
    spawner_retry_at_ = now_ms() + 1000;
    return false;
  }
  if (pid == 0) {
    TlsInheritance inherited;
    if (tls_) {
      inherited.contexts = tls_->contexts.get();
      inherited.key_registration_fd = tls_->registration.get();
    }
    ProcessContext ctx{current_.get(), sb_, &listeners_, &cgroups_, inherited, logs_.fds()};
    spawner_main(ctx, theirs.get());
  }
  spawners_.push_back({pid, generation_, now_ms(), std::move(mine)});
  spawner_retry_at_ = 0;
  return true;
}

void Master::on_spawner_exit(size_t i, int status) {
  SpawnerProc s = std::move(spawners_[i]);
  spawners_.erase(spawners_.begin() + static_cast<long>(i));
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (stopping_ || s.generation != generation_) {
    if (!clean) log(Level::warning, "old spawner %d ended with status 0x%x", s.pid, status);
    return;
  }
  log(Level::err, "the spawner %d ended (status 0x%x); starting a new one with new acceptors", s.pid, status);
  // One that fails at once is tried again after a second, not in a loop.
  if (now_ms() - s.started_ms < 1000) {
    generation_++;
    for (const AcceptorProc& a : acceptors_) (void)kill(a.pid, SIGTERM);
    spawner_retry_at_ = now_ms() + 1000;
    return;
  }
  generation_++;
  replace_acceptors();
}

void Master::on_key_process_exit(pid_t pid, int status) {
  key_pids_.erase(pid);
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!tls_ || pid != tls_->key_pid || stopping_) {
    if (!clean) log(Level::warning, "key process %d ended with status 0x%x", pid, status);
    return;
  }
  log(Level::err, "the key process %d ended (status 0x%x); starting a new one with new acceptors", pid, status);
  std::shared_ptr<TlsGeneration> g;
  std::string error;
  if (!start_tls(*current_->config, g, error)) {
    log(Level::err, "%s; trying again in %lld s", error.c_str(), static_cast<long long>(kKeyProcessRetryMs / 1000));
    tls_->key_pid = 0;
    tls_retry_at_ = now_ms() + kKeyProcessRetryMs;
    return;
  }
  tls_ = std::move(g);
  tls_retry_at_ = 0;
  generation_++;
  replace_acceptors();
}

void Master::spawn_acceptor() {
  uint32_t index = kMaxAcceptors;
  for (uint32_t i = 0; i < kMaxAcceptors; i++) {
    if (sb_->acceptors[i].pid.load() == 0) {
      index = i;
      break;
    }
  }
  if (index == kMaxAcceptors) {
    log(Level::err, "no free acceptor slot (at most %u acceptors at once)", kMaxAcceptors);
    return;
  }
  if (spawners_.empty() || spawners_.back().generation != generation_ || !spawners_.back().control) return;
  // The acceptor's channel to the spawner: one end to each, the spawner's through its control socket.
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
    log(Level::err, "socketpair for an acceptor failed: %s; retrying in 1 s", strerror(errno));
    respawn_at_ = now_ms() + 1000;
    return;
  }
  unique_fd mine(sv[0]), theirs(sv[1]);
  if (int rc = spawn_send_acceptor(spawners_.back().control.get(), SpawnAcceptor{index}, theirs.get()); rc < 0) {
    log(Level::err, "cannot pass an acceptor's channel to the spawner: %s; retrying in 1 s", strerror(-rc));
    respawn_at_ = now_ms() + 1000;
    return;
  }
  theirs.reset();
  scoreboard_reset_acceptor(*sb_, index);
  sb_->acceptors[index].pid.store(-1);
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of an acceptor failed: %s; retrying in 1 s", strerror(errno));
    sb_->acceptors[index].pid.store(0);
    respawn_at_ = now_ms() + 1000;
    return;
  }
  if (pid == 0) {
    ProcessContext ctx{current_.get(), sb_, &listeners_, &cgroups_, TlsInheritance{}, logs_.fds()};
    acceptor_main(ctx, index, mine.get());
  }
  sb_->acceptors[index].pid.store(pid);
  acceptors_.push_back({pid, generation_, index, now_ms(), tls_});
}

// Workers are children of a spawner, or of the master once their spawner is gone (subreaper).
bool Master::is_our_worker(pid_t parent) const {
  if (parent == getpid()) return true;
  for (const SpawnerProc& s : spawners_)
    if (parent == s.pid) return true;
  return false;
}

void Master::signal_workers(int sig) {
  // Only after checking their parent, since the pid came from shared memory.
  for (uint32_t i = 0; i < kMaxWorkers; i++) {
    pid_t pid = sb_->worker_table[i].pid.load();
    if (pid > 0 && is_our_worker(parent_of(pid))) (void)kill(pid, sig);
  }
}

// A tenant's processes run as the same uid as its workers, so they may stop one for ever (`kill -STOP
// $PPID` in a CGI): its connection is then served by nobody while it holds a slot of MaxClientsVHost
// and MaxClients. Once a second, workers that hold a slot and are stopped, or whose connection is
// older than MaxConnectionTime, are killed; their slot comes back when they are reaped (by their
// acceptor, which also kills their connection cgroup, or here). The pid comes from the scoreboard,
// which a worker can write: it is signalled through a pidfd taken before /proc is asked whether it is
// a worker of ours, so that a pid reused in between is never hit.
void Master::reclaim_workers() {
  const int64_t now = now_ms();
  if (now < next_reclaim_) return;
  next_reclaim_ = now + 1000;
  const ServerConfig& sc = current_->config->server;
  const int64_t limit_ms = static_cast<int64_t>(sc.max_connection_time) * 1000;
  for (uint32_t i = 0; i < kMaxWorkers; i++) {
    WorkerEntry& e = sb_->worker_table[i];
    const pid_t pid = e.pid.load();
    if (pid <= 0) continue;
    const bool too_old = limit_ms && now - e.since.load() > limit_ms;
    unique_fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) continue;
    const ProcStat st = proc_stat(pid);
    const bool stopped = st.state == 'T';
    if ((!stopped && !too_old) || !is_our_worker(st.ppid)) continue;
    std::string vhost = "?";
    for (const VHost& vh : current_->config->vhosts)
      if (current_->state(vh).slot % kMaxVHostSlots == e.slot.load() % kMaxVHostSlots) vhost = vh.server_name;
    if (stopped)
      log(Level::warning, "worker %d of vhost %s was stopped by a signal (a process of its tenant can send one) "
                          "while holding a connection; killed to give its slot back", pid, vhost.c_str());
    else
      log(Level::warning, "worker %d of vhost %s has held its connection for over %u s (MaxConnectionTime); killed",
          pid, vhost.c_str(), sc.max_connection_time);
    if (syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH)
      log(Level::err, "cannot kill worker %d: %s", pid, strerror(errno));
  }
}

void Master::on_child_exit(pid_t pid, int status) {
  if (key_pids_.count(pid)) return on_key_process_exit(pid, status);
  if (fastcgi_.on_exit(pid, status)) return;
  if (vhost_dirs_.on_exit(pid, status)) return;
  for (size_t i = 0; i < spawners_.size(); i++)
    if (spawners_[i].pid == pid) return on_spawner_exit(i, status);
  for (size_t i = 0; i < acceptors_.size(); i++) {
    if (acceptors_[i].pid != pid) continue;
    AcceptorProc a = acceptors_[i];
    acceptors_.erase(acceptors_.begin() + static_cast<long>(i));
    scoreboard_reset_acceptor(*sb_, a.index);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    // The connection cgroups of an acceptor that did not end cleanly are nobody's now: the master removes
    // them once their workers are gone.
    if (!clean) sweep_ = cgroups_.enabled;
    if (stopping_ || a.generation != generation_) {
      if (!clean) log(Level::warning, "old acceptor %d ended with status 0x%x", pid, status);
      return;
    }
    if (WIFSIGNALED(status))
      log(Level::err, "acceptor %d was killed by signal %d (%s); starting a new one", pid, WTERMSIG(status),
          strsignal(WTERMSIG(status)));
    else
      log(Level::err, "acceptor %d exited with status %d; starting a new one", pid, WEXITSTATUS(status));
    // Crash-loop backoff: an acceptor that dies within a second of its start doubles the wait.
    if (now_ms() - a.started_ms < 1000) {
      fast_failures_ = std::min(fast_failures_ + 1, 10u);
      respawn_at_ = now_ms() + std::min<int64_t>(100LL << fast_failures_, 30000);
      log(Level::warning, "acceptors are failing at start; next attempt in %lld ms",
          static_cast<long long>(respawn_at_ - now_ms()));
    } else {
      fast_failures_ = 0;
    }
    return;
  }
  // Not an acceptor: a worker whose acceptor ended before it (we are its subreaper).
  uint32_t entry;
  if (scoreboard_find(*sb_, pid, &entry)) scoreboard_release(*sb_, entry);
  sweep_ = cgroups_.enabled;
}

void Master::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    on_child_exit(pid, status);
  }
}

void Master::reload() {
  reloads_++;
  notify("RELOADING=1");
  log(Level::notice, "reloading configuration from %s and %s", opts_.config_file.c_str(), opts_.config_dir.c_str());
  LoadResult r = load_config(opts_);
  for (const ConfigError& w : r.warnings) log(Level::warning, "%s", w.str().c_str());
  if (!r.errors.empty()) {
    for (const ConfigError& e : r.errors) log(Level::err, "reload refused: %s", e.str().c_str());
    note_ = "reload failed: " + r.errors.front().str();
    if (r.errors.size() > 1) note_ += strprintf(" (and %zu more errors)", r.errors.size() - 1);
    log(Level::err, "configuration has %zu error(s); still serving the previous configuration", r.errors.size());
    publish_status(true);
    notify("READY=1");
    return;
  }
  // New certificates and keys come with the new generation; connections of the old one keep theirs.
  std::shared_ptr<TlsGeneration> tls;
  std::string tls_error;
  if (!start_tls(*r.config, tls, tls_error)) {
    log(Level::err, "reload refused: %s", tls_error.c_str());
    log(Level::err, "TLS setup failed; still serving the previous configuration");
    note_ = "reload failed: " + tls_error;
    publish_status(true);
    notify("READY=1");
    return;
  }
  LogFiles logs;
  if (std::string e = logs.open(*r.config); !e.empty()) {
    log(Level::err, "reload refused: %s", e.c_str());
    note_ = "reload failed: " + e;
    publish_status(true);
    notify("READY=1");
    return;
  }
  logs_ = std::move(logs);
  check_proxy_listeners(*r.config);
  if (std::string e; !set_connection_options(listeners_, r.config->server.timeout, e))
    log(Level::err, "%s; connections keep the Timeout of the previous configuration", e.c_str());
  generation_++;
  std::unique_ptr<Runtime> next = make_runtime(std::move(r.config), generation_);
  assign_slots(*next);
  vhost_dirs_.sync(*next);
  fastcgi_.sync(*next, cgroups_);
  current_ = std::move(next);
  sync_cgroups(static_cast<int64_t>(current_->config->server.graceful_shutdown_timeout) * 1000);
  note_.clear();
  tls_ = std::move(tls);
  tls_retry_at_ = 0;
  replace_acceptors();
  log(Level::notice, "configuration reloaded: %zu vhosts", current_->config->vhosts.size());
  publish_status(true);
  notify("READY=1");
}

// logrotate's postrotate: the files are opened again by path (made anew where they were renamed) for a new
// generation with the same configuration, as a reload would. The old acceptors and workers finish with the
// descriptors they hold, so the lines of requests in flight go to the renamed files and none is lost.
void Master::reopen_logs() {
  LogFiles logs;
  if (std::string e = logs.open(*current_->config); !e.empty()) {
    log(Level::err, "reopening the logs failed: %s; still writing to the files already open", e.c_str());
    return;
  }
  logs_ = std::move(logs);
  generation_++;
  replace_acceptors();
  log(Level::notice, "log files reopened");
}

void Master::sync_cgroups(int64_t grace_ms) {
  if (!cgroups_.enabled) return;
  for (const std::string& name : cgroup_sync_vhosts(cgroups_, *current_->config, current_->config->server.acceptor)) {
    std::string dir = cgroups_.serving + "/" + name;
    bool known = false;
    for (const auto& r : removals_) known = known || r.dir == dir;
    if (!known) {
      log(Level::notice, "vhost cgroup %s is no longer configured; what still runs there ends in %lld s", dir.c_str(),
          static_cast<long long>(grace_ms / 1000));
      removals_.push_back({dir, now_ms() + grace_ms});
    }
  }
}

void Master::run_removals() {
  int64_t now = now_ms();
  for (auto it = removals_.begin(); it != removals_.end();) {
    if (it->at_ms > now) {
      ++it;
      continue;
    }
    // A vhost may have come back in a later reload: then its cgroup stays.
    bool configured = false;
    for (const VHost& vh : current_->config->vhosts) configured = configured || cgroup_vhost_dir(cgroups_, vh) == it->dir;
    if (configured || cgroup_kill_and_remove(it->dir)) {
      it = removals_.erase(it);
    } else {
      it->at_ms = now + 1000;  // its processes are still exiting
      ++it;
    }
  }
  if (sweep_) {
    sweep_ = false;
    std::vector<pid_t> live;
    for (const AcceptorProc& a : acceptors_) live.push_back(a.pid);
    cgroup_sweep_leaves(cgroups_, live);
  }
}

void Master::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  notify("STOPPING=1");
  stop_deadline_ = now_ms() + static_cast<int64_t>(current_->config->server.graceful_shutdown_timeout) * 1000;
  log(Level::notice, "stopping: letting in-flight requests finish (up to %u s)",
      current_->config->server.graceful_shutdown_timeout);
  for (const AcceptorProc& a : acceptors_) (void)kill(a.pid, SIGTERM);
  for (SpawnerProc& sp : spawners_) sp.control.reset();
  signal_workers(SIGTERM);
  fastcgi_.stop_all();
}

bool Master::children_left() const {
  return !acceptors_.empty() || !spawners_.empty() || sb_->workers.load() > 0 || fastcgi_.processes() > 0;
}

// The running generation's acceptors: those reading a request head now, and those waiting for one.
std::pair<unsigned, unsigned> Master::acceptors_busy_idle() const {
  unsigned busy = 0, idle = 0;
  for (const AcceptorProc& a : acceptors_) {
    if (a.generation != generation_) continue;
    if (sb_->acceptors[a.index].reading.load() > 0) busy++;
    else idle++;
  }
  return {busy, idle};
}

void Master::publish_status(bool force) {
  int64_t now = now_ms();
  if (!force && now - last_status_ms_ < 1000) return;
  StatusCounts c;
  c.vhosts = current_->config->vhosts.size();
  std::tie(c.acceptors_busy, c.acceptors_idle) = acceptors_busy_idle();
  c.workers = sb_->workers.load();
  c.served = sb_->served.load();
  c.refused = sb_->refused.load();
  c.note = note_;
  for (const VHost& vh : current_->config->vhosts)
    if (vh.max_clients_vhost && live_connections(vh) >= vh.max_clients_vhost) c.at_limit++;
  c.cgroups = cgroups_.enabled ? "on" : "off (" + cgroups_.reason + ")";
  for (const VHost& vh : current_->config->vhosts)
    if (!vh.document_root_problem.empty()) c.unusable_roots.push_back(vh.server_name);
  c.fastcgi_shown = fastcgi_.any_configured();
  c.fastcgi = fastcgi_.processes();
  std::string s = format_status(c);
  last_status_ms_ = now;
  if (s == last_status_) return;
  if (notify_status(s)) last_status_ = s;
}

// What MaxClientsVHost counts: the kernel's connection cgroups where there are, else the scoreboard.
unsigned Master::live_connections(const VHost& vh) const {
  return cgroups_.enabled ? static_cast<unsigned>(std::max(0, cgroup_vhost_connections(cgroups_, vh)))
                          : sb_->vhost_workers[current_->state(vh).slot % kMaxVHostSlots].load();
}

// `itkctl status`: the running generation's vhosts with their counts, read without waiting on anything.
std::string Master::control_answer(std::string_view request) const {
  if (request != kControlStatusRequest) return "itk-control 1\nerror unknown%20request\n";
  ServerStatus s;
  s.pid = getpid();
  s.generation = generation_;
  s.reloads = reloads_;
  constexpr std::string_view failed = "reload failed: ";
  if (note_.starts_with(failed)) s.reload_error = note_.substr(failed.size());
  s.unit = unit_;
  s.cgroups = cgroups_.enabled ? "on" : "off (" + cgroups_.reason + ")";
  s.config_file = opts_.config_file;
  s.config_dir = opts_.config_dir;
  std::tie(s.acceptors_busy, s.acceptors_idle) = acceptors_busy_idle();
  s.workers = sb_->workers.load();
  s.served = sb_->served.load();
  s.refused = sb_->refused.load();
  s.fastcgi = fastcgi_.processes();
  const std::unordered_map<uint32_t, uint32_t> spares = scoreboard_spares(*sb_);
  for (const VHost& vh : current_->config->vhosts) {
    const uint32_t slot = current_->state(vh).slot % kMaxVHostSlots;
    VHostStatus& v = s.vhosts.emplace_back();
    v.name = vh.server_name;
    v.workers = sb_->vhost_workers[slot].load();
    auto it = spares.find(slot);
    v.idle = it == spares.end() ? 0 : it->second;
    v.fastcgi = fastcgi_.processes_of(slot);
    v.served = sb_->vhost_served[slot].load();
    v.refused = sb_->vhost_refused[slot].load();
    v.max = vh.max_clients_vhost;
    v.at_limit = vh.max_clients_vhost && live_connections(vh) >= vh.max_clients_vhost;
    s.idle += v.idle;
    s.at_limit += v.at_limit;
  }
  return encode_status(s);
}

// SIGUSR1 (`itkctl reopen-logs`): itkd logs to stderr, which systemd's journal holds open, so there is no
// file of its own to reopen yet; the signal is taken (never the default action, which would end the
// master) and said.

int Master::run(std::unique_ptr<Config> cfg) {
  log_set_role("master");
  proctitle_set({"master"});
  sb_ = scoreboard_create();
  if (!sb_) {
    log(Level::err, "cannot map the shared scoreboard (%zu bytes): %s", sizeof(Scoreboard), strerror(errno));
    return 1;
  }
  // Workers outlive an acceptor that is replaced or reloaded away; as subreaper the master reaps them.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) log(Level::warning, "PR_SET_CHILD_SUBREAPER failed: %s", strerror(errno));
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &nofile);
  }

  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGUSR1}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  unique_fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) {
    log(Level::err, "signalfd failed: %s", strerror(errno));
    return 1;
  }

  cgroups_ = cgroup_setup(cfg->server.acceptor);
  if (cgroups_.enabled)
    log(Level::notice, "per-vhost cgroups under %s (controllers:%s%s%s)", cgroups_.serving.c_str(),
        cgroups_.pids ? " pids" : "", cgroups_.memory ? " memory" : "", cgroups_.cpu ? " cpu" : "");
  else
    log(Level::notice, "per-vhost cgroups off: %s; MaxClientsVHost is counted in shared memory", cgroups_.reason.c_str());
  for (const Listener& l : listeners_) https_ = https_ || l.kind == ListenerKind::https;
  if (https_) {
    // Before any fork: the page is wiped in every child, so only the key processes (by message) get it.
    if (int rc = ticket_secret_.generate(); rc < 0) {
      std::string e = strprintf("cannot make the session ticket secret: %s", strerror(-rc));
      log(Level::err, "%s", e.c_str());
      notify("STATUS=" + e);
      return 1;
    }
  }
  std::string tls_error;
  if (!start_tls(*cfg, tls_, tls_error)) {
    log(Level::err, "%s", tls_error.c_str());
    notify("STATUS=" + tls_error);
    return 1;
  }
  if (std::string e = logs_.open(*cfg); !e.empty()) {
    log(Level::err, "%s", e.c_str());
    notify("STATUS=" + e);
    return 1;
  }
  check_proxy_listeners(*cfg);
  if (std::string e; !set_connection_options(listeners_, cfg->server.timeout, e)) {
    // Without it a client that stops reading would hold a worker for ever.
    log(Level::err, "%s; itk does not serve without a bound on writes", e.c_str());
    notify("STATUS=" + e);
    return 1;
  }
  fastcgi_.set_scoreboard(sb_);
  generation_ = 1;
  current_ = make_runtime(std::move(cfg), generation_);
  assign_slots(*current_);
  vhost_dirs_.sync(*current_);
  fastcgi_.sync(*current_, cgroups_);
  // Leftovers of a previous run (a crash) are removed at once.
  sync_cgroups(0);
  if (cgroups_.enabled) {
    bool inert = false;
    for (const VHost& vh : current_->config->vhosts) {
      inert = inert || (vh.max_processes_vhost && !cgroups_.pids) || (vh.memory_max_vhost && !cgroups_.memory) ||
              (vh.cpu_weight_vhost && !cgroups_.cpu);
    }
    if (inert)
      log(Level::warning, "MaxProcessesVHost/MemoryMaxVHost/CPUWeightVHost need the pids/memory/cpu controllers, "
                          "which are not delegated here: the keys whose controller is missing have no effect");
  }
  replace_acceptors();
  // systemd sets INVOCATION_ID for the processes of a unit it starts; then `itkctl reload` goes through it.
  if (char* unit = nullptr; getenv("INVOCATION_ID") && sd_pid_get_unit(0, &unit) >= 0) {
    unit_ = unit;
    free(unit);
  }
  if (std::string error; !control_.open(runtime_directory() + "/" + kControlSocketName, error))
    log(Level::warning, "no control socket (itkctl status and reload will not reach this master): %s", error.c_str());
  log(Level::notice, "serving %zu vhosts with %u acceptors on %zu listening socket(s)", current_->config->vhosts.size(),
      current_->config->server.start_servers, listeners_.size());
  publish_status(true);
  notify("READY=1");

  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  int64_t next_watchdog = now_ms();

  for (;;) {
    if (stopping_) {
      if (!children_left()) break;
      if (now_ms() >= stop_deadline_) {
        log(Level::warning, "GracefulShutdownTimeout reached with %u worker(s) busy; killing them",
            sb_->workers.load());
        for (const AcceptorProc& a : acceptors_) (void)kill(a.pid, SIGKILL);
        for (const SpawnerProc& sp : spawners_) (void)kill(sp.pid, SIGKILL);
        signal_workers(SIGKILL);
        fastcgi_.kill_all();
        break;
      }
    } else {
      if (tls_retry_at_ && now_ms() >= tls_retry_at_) {
        std::shared_ptr<TlsGeneration> g;
        std::string error;
        if (start_tls(*current_->config, g, error)) {
          log(Level::notice, "key process started again");
          tls_ = std::move(g);
          tls_retry_at_ = 0;
          generation_++;
          replace_acceptors();
        } else {
          log(Level::err, "%s; trying again in %lld s", error.c_str(), static_cast<long long>(kKeyProcessRetryMs / 1000));
          tls_retry_at_ = now_ms() + kKeyProcessRetryMs;
        }
      }
      if (spawner_retry_at_ && now_ms() >= spawner_retry_at_) {
        generation_++;
        replace_acceptors();
      }
      size_t live = 0;
      for (const AcceptorProc& a : acceptors_) live += a.generation == generation_;
      if (live < current_->config->server.start_servers && now_ms() >= respawn_at_ && !tls_retry_at_) {
        for (size_t i = live; i < current_->config->server.start_servers; i++) spawn_acceptor();
      }
    }
    run_removals();
    if (!stopping_) reclaim_workers();
    publish_status(false);
    if (watchdog && now_ms() >= next_watchdog) {
      notify("WATCHDOG=1");
      next_watchdog = now_ms() + static_cast<int64_t>(watchdog_usec / 2000);
    }

    int64_t timeout = fastcgi_.tick(now_ms());
    // Woken when the next STATUS is due, not a whole second after any earlier wake (a SIGCHLD at 999 ms
    // skipped the publish and the line then lagged almost two seconds behind the counts).
    timeout = std::min<int64_t>(timeout, std::max<int64_t>(0, last_status_ms_ + 1000 - now_ms()));
    if (respawn_at_ > now_ms()) timeout = std::min<int64_t>(timeout, respawn_at_ - now_ms());
    if (spawner_retry_at_ > now_ms()) timeout = std::min<int64_t>(timeout, spawner_retry_at_ - now_ms());
    if (stopping_) timeout = std::min<int64_t>(timeout, 100);
    timeout = control_.expire(now_ms(), timeout);
    // The FastCGI listeners are only polled, never read: readable means a worker waits for an app.
    std::vector<pollfd> fds{{sigfd.get(), POLLIN, 0}};
    fastcgi_.add_poll_fds(fds);
    const size_t control_first = fds.size();
    control_.add_poll_fds(fds);
    int r = poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(timeout, 0)));
    if (r < 0 && errno != EINTR) {
      log(Level::err, "poll failed: %s", strerror(errno));
      return 1;
    }
    if (r > 0) {
      fastcgi_.on_poll(fds, 1);
      control_.on_poll(fds, control_first, [this](std::string_view req) { return control_answer(req); });
    }
    signalfd_siginfo si;
    while (read(sigfd.get(), &si, sizeof si) == sizeof si) {
      switch (si.ssi_signo) {
        case SIGCHLD: reap(); break;
        case SIGHUP:
          if (!stopping_) reload();
          break;
        case SIGUSR1:
          if (!stopping_) reopen_logs();
          break;
        default: begin_stop(); break;
      }
    }
    // A SIGCHLD can coalesce with another; reaping every wake costs one syscall.
    reap();
  }
  // Without acceptors the key processes see their channels close; dropping the registration sockets
  // lets them exit now rather than at the master's own exit.
  tls_.reset();
  acceptors_.clear();
  spawners_.clear();
  // Besides the key processes, spare workers whose acceptor ended are ours now (subreaper): they end
  // as soon as they see their channel closed. Reap whatever ends within 2 s (anything a script left
  // behind without a cgroup to end it is not waited for longer).
  for (int i = 0; i < 40; i++) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      key_pids_.erase(pid);
      continue;
    }
    if (pid < 0) break;  // no child left
    (void)poll(nullptr, 0, 50);
  }
  fastcgi_.remove_sockets();
  control_.close();
  log(Level::notice, "stopped: %llu requests served", static_cast<unsigned long long>(sb_->served.load()));
  return 0;
}

}  // namespace

int master_main(const LoadOptions& opts, std::unique_ptr<Config> cfg, std::vector<Listener> listeners) {
  Master m(opts, std::move(listeners));
  return m.run(std::move(cfg));
}

}  // namespace itk

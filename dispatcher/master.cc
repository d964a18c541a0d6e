// Master role: supervise acceptors, reload on SIGHUP, stop gracefully on SIGTERM, report to systemd.
#include "master.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "acceptor.h"
#include "io.h"
#include "log.h"
#include "notify.h"
#include "runtime.h"
#include "unique_fd.h"

namespace itk {
namespace {

struct AcceptorProc {
  pid_t pid = 0;
  uint64_t generation = 0;
  uint32_t index = 0;
  int64_t started_ms = 0;
};

// Parent pid of `pid` from /proc, or -1. Used before signalling a pid read from the scoreboard,
// which tenants' workers could have written.
pid_t parent_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 4 > line.size()) return -1;
  // After "comm)": " S PPID ..."
  return static_cast<pid_t>(atol(line.c_str() + close + 4));
}

class Master {
 public:
  Master(const LoadOptions& opts, std::vector<Listener> listeners) : opts_(opts), listeners_(std::move(listeners)) {}
  int run(std::unique_ptr<Config> cfg);

 private:
  void assign_slots(Config& cfg);
  void spawn_acceptor();
  void on_child_exit(pid_t pid, int status);
  void reap();
  void reload();
  void begin_stop();
  void signal_workers(int sig);
  void publish_status(bool force);
  bool children_left() const;

  LoadOptions opts_;
  std::vector<Listener> listeners_;
  Scoreboard* sb_ = nullptr;
  std::unique_ptr<Runtime> current_;
  uint64_t generation_ = 0;
  std::vector<AcceptorProc> acceptors_;
  std::unordered_map<std::string, uint32_t> slots_;  // ServerName -> scoreboard slot, stable across reloads
  uint32_t next_slot_ = 0;
  unsigned fast_failures_ = 0;
  int64_t respawn_at_ = 0;  // when missing acceptors of the current generation may be started again
  bool stopping_ = false;
  int64_t stop_deadline_ = 0;
  std::string note_;        // STATUS suffix after a failed reload
  std::string last_status_;
  int64_t last_status_ms_ = 0;
};

void Master::assign_slots(Config& cfg) {
  for (VHost& vh : cfg.vhosts) {
    auto [it, inserted] = slots_.emplace(vh.server_name, next_slot_);
    if (inserted) next_slot_++;
    // Past 65536 distinct names since start, slots are shared; counts stay exact per slot, and
    // sharing only makes limits stricter. A restart resets the numbering.
    vh.slot = it->second % kMaxVHostSlots;
  }
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
  sb_->acceptors[index].pid.store(-1);
  sb_->acceptors[index].reading.store(0);
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of an acceptor failed: %s; retrying in 1 s", strerror(errno));
    sb_->acceptors[index].pid.store(0);
    respawn_at_ = now_ms() + 1000;
    return;
  }
  if (pid == 0) {
    int max_listener = 2;
    for (const Listener& l : listeners_) max_listener = std::max(max_listener, l.fd);
    close_range(static_cast<unsigned>(max_listener) + 1, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ProcessContext ctx{current_.get(), sb_, &listeners_};
    acceptor_main(ctx, index);
  }
  sb_->acceptors[index].pid.store(pid);
  acceptors_.push_back({pid, generation_, index, now_ms()});
}

void Master::signal_workers(int sig) {
  // Orphaned workers (their acceptor is gone) are our children: only those are signalled here,
  // after checking their parent, since the pid came from shared memory.
  pid_t me = getpid();
  for (uint32_t i = 0; i < kMaxWorkers; i++) {
    pid_t pid = sb_->worker_table[i].pid.load();
    if (pid <= 0) continue;
    pid_t parent = parent_of(pid);
    bool ours = parent == me;
    for (const AcceptorProc& a : acceptors_) ours = ours || parent == a.pid;
    if (ours) (void)kill(pid, sig);
  }
}

void Master::on_child_exit(pid_t pid, int status) {
  for (size_t i = 0; i < acceptors_.size(); i++) {
    if (acceptors_[i].pid != pid) continue;
    AcceptorProc a = acceptors_[i];
    acceptors_.erase(acceptors_.begin() + static_cast<long>(i));
    sb_->acceptors[a.index].pid.store(0);
    sb_->acceptors[a.index].reading.store(0);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
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
  notify("RELOADING=1");
  log(Level::notice, "reloading configuration from %s and %s", opts_.config_file.c_str(), opts_.config_dir.c_str());
  LoadResult r = load_config(opts_);
  if (!r.errors.empty()) {
    for (const ConfigError& e : r.errors) log(Level::err, "reload refused: %s", e.str().c_str());
    note_ = "reload failed: " + r.errors.front().str();
    if (r.errors.size() > 1) note_ += strprintf(" (and %zu more errors)", r.errors.size() - 1);
    log(Level::err, "configuration has %zu error(s); still serving the previous configuration", r.errors.size());
    publish_status(true);
    notify("READY=1");
    return;
  }
  assign_slots(*r.config);
  generation_++;
  current_ = make_runtime(std::move(r.config), generation_);
  note_.clear();
  for (unsigned i = 0; i < current_->config->server.start_servers; i++) spawn_acceptor();
  for (const AcceptorProc& a : acceptors_)
    if (a.generation != generation_) (void)kill(a.pid, SIGTERM);
  log(Level::notice, "configuration reloaded: %zu vhosts", current_->config->vhosts.size());
  publish_status(true);
  notify("READY=1");
}

void Master::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  notify("STOPPING=1");
  stop_deadline_ = now_ms() + static_cast<int64_t>(current_->config->server.graceful_shutdown_timeout) * 1000;
  log(Level::notice, "stopping: letting in-flight requests finish (up to %u s)",
      current_->config->server.graceful_shutdown_timeout);
  for (const AcceptorProc& a : acceptors_) (void)kill(a.pid, SIGTERM);
  signal_workers(SIGTERM);
}

bool Master::children_left() const { return !acceptors_.empty() || sb_->workers.load() > 0; }

void Master::publish_status(bool force) {
  int64_t now = now_ms();
  if (!force && now - last_status_ms_ < 1000) return;
  StatusCounts c;
  c.vhosts = current_->config->vhosts.size();
  for (const AcceptorProc& a : acceptors_) {
    if (a.generation != generation_) continue;
    if (sb_->acceptors[a.index].reading.load() > 0) c.acceptors_busy++;
    else c.acceptors_idle++;
  }
  c.workers = sb_->workers.load();
  c.served = sb_->served.load();
  c.refused = sb_->refused.load();
  c.note = note_;
  std::string s = format_status(c);
  last_status_ms_ = now;
  if (s == last_status_) return;
  last_status_ = s;
  notify("STATUS=" + s);
}

int Master::run(std::unique_ptr<Config> cfg) {
  log_set_role("master");
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
  for (int s : {SIGCHLD, SIGHUP, SIGTERM, SIGINT}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  unique_fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) {
    log(Level::err, "signalfd failed: %s", strerror(errno));
    return 1;
  }

  assign_slots(*cfg);
  generation_ = 1;
  current_ = make_runtime(std::move(cfg), generation_);
  for (unsigned i = 0; i < current_->config->server.start_servers; i++) spawn_acceptor();
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
        signal_workers(SIGKILL);
        break;
      }
    } else {
      size_t live = 0;
      for (const AcceptorProc& a : acceptors_) live += a.generation == generation_;
      if (live < current_->config->server.start_servers && now_ms() >= respawn_at_) {
        for (size_t i = live; i < current_->config->server.start_servers; i++) spawn_acceptor();
      }
    }
    publish_status(false);
    if (watchdog && now_ms() >= next_watchdog) {
      notify("WATCHDOG=1");
      next_watchdog = now_ms() + static_cast<int64_t>(watchdog_usec / 2000);
    }

    pollfd p{sigfd.get(), POLLIN, 0};
    int timeout = 1000;
    if (respawn_at_ > now_ms()) timeout = static_cast<int>(std::min<int64_t>(timeout, respawn_at_ - now_ms()));
    if (stopping_) timeout = 100;
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno != EINTR) {
      log(Level::err, "poll failed: %s", strerror(errno));
      return 1;
    }
    signalfd_siginfo si;
    while (read(sigfd.get(), &si, sizeof si) == sizeof si) {
      switch (si.ssi_signo) {
        case SIGCHLD: reap(); break;
        case SIGHUP:
          if (!stopping_) reload();
          break;
        default: begin_stop(); break;
      }
    }
    // A SIGCHLD can coalesce with another; reaping every wake costs one syscall.
    reap();
  }
  log(Level::notice, "stopped: %llu requests served", static_cast<unsigned long long>(sb_->served.load()));
  return 0;
}

}  // namespace

int master_main(const LoadOptions& opts, std::unique_ptr<Config> cfg, std::vector<Listener> listeners) {
  Master m(opts, std::move(listeners));
  return m.run(std::move(cfg));
}

}  // namespace itk

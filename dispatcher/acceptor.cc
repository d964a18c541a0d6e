// Acceptor role: many connections per process while their heads arrive, so slow or silent
// clients cannot occupy it; a worker takes each connection once its vhost is known.
#include "acceptor.h"

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
#include <list>
#include <unordered_map>

#include "http_response.h"
#include "io.h"
#include "log.h"
#include "privileges.h"
#include "unique_fd.h"
#include "worker.h"

namespace itk {
namespace {

constexpr int kLingerMs = 2000;
constexpr size_t kMaxAcceptsPerWake = 64;

struct PendingConn {
  unique_fd fd;
  std::string buf;
  std::unique_ptr<HeadParser> parser;
  int64_t deadline = 0;
  std::string out;        // response still to write (errors only)
  size_t out_off = 0;
  bool lingering = false; // response written or being written; only draining input now
  std::list<PendingConn>::iterator self;
};

struct WorkerInfo {
  uint32_t entry;
  std::string vhost;
};

class Acceptor {
 public:
  Acceptor(const ProcessContext& ctx, uint32_t index) : ctx_(ctx), rt_(*ctx.rt), index_(index) {}
  [[noreturn]] void run();

 private:
  void setup();
  void accept_ready(int lfd);
  void on_readable(PendingConn& c);
  void on_writable(PendingConn& c);
  void dispatch(PendingConn& c);
  void refuse(PendingConn& c, int status, const char* why, std::string_view extra = {});
  void close_conn(PendingConn& c);
  void expire(int64_t now);
  void reap();
  void begin_stop();
  void update_reading();

  const ProcessContext& ctx_;
  const Runtime& rt_;
  uint32_t index_;
  unique_fd epoll_;
  unique_fd sigfd_;
  std::list<PendingConn> reading_;    // ordered by deadline (all get the same timeout)
  std::list<PendingConn> lingering_;  // ordered by deadline (all get the same linger time)
  std::unordered_map<pid_t, WorkerInfo> workers_;
  bool stopping_ = false;
  int64_t accept_paused_until_ = 0;
  bool listening_ = true;
};

void Acceptor::setup() {
  log_set_role("acceptor");
  (void)prctl(PR_SET_NAME, "itk-acceptor", 0, 0, 0);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);

  const ServerConfig& sc = rt_.config->server;
  const pid_t master = getppid();
  become_acceptor(sc.acceptor, sc.limit_uid_range, sc.limit_gid_range);
  // After the credential change, which clears it: stop when the master goes away. The master may
  // already be gone (then we were reparented); it may also be PID 1 itself, in a container.
  (void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  if (getppid() != master) _exit(0);

  sigfd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!sigfd_ || !epoll_) {
    log(Level::err, "cannot create the acceptor's signalfd/epoll: %s", strerror(errno));
    _exit(1);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, sigfd_.get(), &ev);
  for (const Listener& l : *ctx_.listeners) {
    epoll_event lev{};
    // EPOLLEXCLUSIVE: one acceptor wakes per connection instead of all of them.
    lev.events = EPOLLIN | EPOLLEXCLUSIVE;
    lev.data.u64 = static_cast<uint64_t>(l.fd) << 1 | 1;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, l.fd, &lev) < 0) {
      log(Level::err, "cannot watch listening fd %d: %s", l.fd, strerror(errno));
      _exit(1);
    }
  }
}

void Acceptor::update_reading() {
  ctx_.sb->acceptors[index_].reading.store(static_cast<uint32_t>(reading_.size()), std::memory_order_relaxed);
}

void Acceptor::accept_ready(int lfd) {
  if (stopping_ || now_ms() < accept_paused_until_) return;
  for (size_t i = 0; i < kMaxAcceptsPerWake; i++) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        log(Level::warning, "accept failed: %s; pausing accepts for 100 ms (raise LimitNOFILE?)", strerror(errno));
        accept_paused_until_ = now_ms() + 100;
        return;
      }
      log(Level::err, "accept on fd %d failed: %s", lfd, strerror(errno));
      return;
    }
    reading_.emplace_back();
    PendingConn& c = reading_.back();
    c.self = std::prev(reading_.end());
    c.fd.reset(fd);
    c.parser = std::make_unique<HeadParser>(rt_.limits);
    c.deadline = now_ms() + static_cast<int64_t>(rt_.config->server.request_read_timeout) * 1000;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
      log(Level::err, "cannot watch connection fd %d: %s", fd, strerror(errno));
      reading_.erase(c.self);
      continue;
    }
    // Most clients send the head together with the connect: try it at once.
    on_readable(c);
  }
  update_reading();
}

void Acceptor::close_conn(PendingConn& c) {
  // Explicit removal: a forked worker holds the same open file description, and epoll keeps a
  // registration until every descriptor of the description is closed.
  (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  auto& list = c.lingering ? lingering_ : reading_;
  list.erase(c.self);
}

void Acceptor::refuse(PendingConn& c, int status, const char* why, std::string_view extra) {
  if (status != 408) log(Level::info, "request refused with %d: %s", status, why);
  c.out = error_response(status, false, extra);
  c.out_off = 0;
  c.lingering = true;
  c.deadline = now_ms() + kLingerMs;
  lingering_.splice(lingering_.end(), reading_, c.self);
  update_reading();
  on_writable(c);
}

void Acceptor::on_writable(PendingConn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.ptr = &c;
        epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
        return;
      }
      close_conn(c);
      return;
    }
    c.out_off += static_cast<size_t>(n);
  }
  if (!c.out.empty()) {
    c.out.clear();
    (void)shutdown(c.fd.get(), SHUT_WR);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  }
}

void Acceptor::on_readable(PendingConn& c) {
  const size_t cap = rt_.limits.total + 1;
  for (;;) {
    char tmp[16384];
    ssize_t n = recv(c.fd.get(), tmp, sizeof tmp, MSG_DONTWAIT);
    if (n == 0) {
      close_conn(c);
      update_reading();
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      close_conn(c);
      update_reading();
      return;
    }
    if (c.lingering) continue;  // draining what the client still sends after an error
    size_t take = std::min(static_cast<size_t>(n), cap - std::min(cap, c.buf.size()));
    c.buf.append(tmp, take);
    HeadState st = c.parser->parse(c.buf);
    if (st == HeadState::complete) return dispatch(c);
    if (st == HeadState::error) return refuse(c, c.parser->error_status(), c.parser->error_reason().c_str());
    if (c.buf.size() >= cap) return refuse(c, 431, "request head over 64 KiB");
  }
}

void Acceptor::dispatch(PendingConn& c) {
  const RequestHead& head = c.parser->head();
  if (!head.host.empty() && VHostTable::normalize_host(head.host).empty())
    return refuse(c, 400, "invalid Host");
  const VHost* vh = rt_.vhosts.lookup(head.host);
  const ServerConfig& sc = rt_.config->server;
  // Workers that already exited must not count: under load their SIGCHLD may still be queued
  // behind other events, and one WNOHANG waitpid is cheap next to the fork that follows.
  reap();
  uint32_t entry = 0;
  Admission a = scoreboard_admit(*ctx_.sb, vh->slot, vh->max_clients_vhost, sc.max_clients, &entry);
  if (a != Admission::admitted) {
    ctx_.sb->refused.fetch_add(1, std::memory_order_relaxed);
    return refuse(c, 503, a == Admission::vhost_full ? "vhost at MaxClientsVHost" : "server at MaxClients",
                  "Retry-After: 2\r\n");
  }

  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of a worker for %s failed: %s", vh->server_name.c_str(), strerror(errno));
    scoreboard_release(*ctx_.sb, entry);
    return refuse(c, 503, "fork failed", "Retry-After: 2\r\n");
  }
  if (pid == 0) {
    scoreboard_set_pid(*ctx_.sb, entry, getpid());
    // The worker keeps exactly the connection (as fd 3) and stdio; everything else of the acceptor goes.
    if (dup2(c.fd.get(), 3) < 0) _exit(1);
    close_range(4, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    WorkerStart ws;
    ws.vhost = vh;
    ws.conn_fd = 3;
    ws.head_length = c.parser->head_length();
    ws.head = c.parser->head();
    ws.buffer = std::move(c.buf);
    worker_main(ctx_, std::move(ws));
  }
  scoreboard_set_pid(*ctx_.sb, entry, pid);
  workers_.emplace(pid, WorkerInfo{entry, vh->server_name});
  close_conn(c);
  update_reading();
}

void Acceptor::expire(int64_t now) {
  while (!reading_.empty() && reading_.front().deadline <= now)
    refuse(reading_.front(), 408, "head not complete within RequestReadTimeout");
  while (!lingering_.empty() && lingering_.front().deadline <= now) close_conn(lingering_.front());
  update_reading();
}

void Acceptor::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    auto it = workers_.find(pid);
    if (it == workers_.end()) continue;
    if (WIFSIGNALED(status))
      log(Level::warning, "worker %d for %s was killed by signal %d", pid, it->second.vhost.c_str(), WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
      log(Level::warning, "worker %d for %s exited with status %d", pid, it->second.vhost.c_str(), WEXITSTATUS(status));
    scoreboard_release(*ctx_.sb, it->second.entry);
    workers_.erase(it);
  }
}

void Acceptor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  for (const Listener& l : *ctx_.listeners) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, l.fd, nullptr);
  // Workers finish the response in hand, then close their keep-alive connection.
  for (const auto& [pid, info] : workers_) (void)kill(pid, SIGTERM);
}

void Acceptor::run() {
  setup();
  epoll_event events[64];
  for (;;) {
    if (stopping_ && reading_.empty() && lingering_.empty()) _exit(0);
    int64_t now = now_ms();
    int64_t next = now + 60000;
    if (!reading_.empty()) next = std::min(next, reading_.front().deadline);
    if (!lingering_.empty()) next = std::min(next, lingering_.front().deadline);
    if (accept_paused_until_ > now) next = std::min(next, accept_paused_until_);
    int timeout = static_cast<int>(std::max<int64_t>(0, next - now));
    int n = epoll_wait(epoll_.get(), events, 64, timeout);
    if (n < 0 && errno != EINTR) {
      log(Level::err, "epoll_wait failed: %s", strerror(errno));
      _exit(1);
    }
    for (int i = 0; i < n; i++) {
      epoll_event& ev = events[i];
      if (ev.data.ptr == nullptr) {
        signalfd_siginfo si;
        while (read(sigfd_.get(), &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGCHLD) reap();
          else begin_stop();
        }
      } else if (ev.data.u64 & 1) {
        accept_ready(static_cast<int>(ev.data.u64 >> 1));
      } else {
        auto* c = static_cast<PendingConn*>(ev.data.ptr);
        // A connection closed earlier in this batch cannot appear: each event refers to a distinct fd,
        // and only the event's own connection is closed while handling it.
        if (ev.events & EPOLLOUT) {
          on_writable(*c);
          continue;
        }
        on_readable(*c);
      }
    }
    expire(now_ms());
    if (stopping_) {
      // Heads already being read are finished (bounded by RequestReadTimeout); nothing new is accepted.
    }
  }
}

}  // namespace

[[noreturn]] void acceptor_main(const ProcessContext& ctx, uint32_t index) {
  Acceptor a(ctx, index);
  a.run();
}

}  // namespace itk

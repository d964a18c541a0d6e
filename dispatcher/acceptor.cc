// Acceptor role: many connections per process while their TLS handshakes and heads arrive, so slow or
// silent clients cannot occupy it; a worker takes each connection once its vhost is known.
#include "acceptor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <unordered_map>

#include "address_range.h"
#include "client_conn.h"
#include "handoff.h"
#include "http_response.h"
#include "io.h"
#include "key_client.h"
#include "log.h"
#include "privileges.h"
#include "proxy_protocol.h"
#include "tls.h"
#include "unique_fd.h"
#include "worker.h"

namespace itk {
namespace {

constexpr int kLingerMs = 2000;
// What is read and dropped after an error response, at most (the worker's lingering close drains as much).
constexpr size_t kMaxDrain = 1 << 20;
// What OpenSSL holds for one connection during the handshake and head: its record buffers and state.
constexpr size_t kTlsConnectionBytes = 48 << 10;
constexpr size_t kMaxAcceptsPerWake = 64;
// Idle workers kept for reuse: per vhost (at most its MaxClientsVHost), in all, and for how long
// without a connection. Enough for a burst's worth: a spare that is not there means a fork, and
// forks under load are what delay workers from coming back as spares.
constexpr size_t kMaxSparesPerVHost = 64;
constexpr size_t kMaxSpares = 256;
constexpr int64_t kSpareIdleMs = 10000;
// epoll tag of a worker's hand-over channel: (pid << 3) | kWorkerTag (connections are pointers,
// aligned; listeners have bit 0 set).
constexpr uint64_t kWorkerTag = 2;

struct PendingConn {
  unique_fd fd;
  SslPtr tls;              // https: the session; null on plain TCP
  bool handshaken = false; // the TLS handshake is complete (always false on plain TCP)
  std::string sni;         // the name the TLS client asked for, once handshaken
  uint32_t interest = 0;   // epoll events watched now
  std::string buf;
  std::unique_ptr<HeadParser> parser;
  int64_t deadline = 0;
  std::string out;        // response still to write (errors only)
  size_t out_off = 0;
  bool lingering = false; // response written or being written; only draining input now
  size_t drained = 0;     // bytes dropped while lingering
  size_t charged = 0;     // what this connection counts against LimitHeadBuffers
  bool proxy_wait = false;  // a PROXY protocol header must come first (ProxyProtocol listener)
  ConnAddrs addrs;          // what that header said; AF_UNSPEC: the socket's own
  std::list<PendingConn>::iterator self;
};

struct WorkerInfo {
  uint32_t entry = 0;
  bool has_entry = true;    // counted in the scoreboard (false while idle)
  std::string vhost;
  std::string leaf;         // its connection cgroup, if per-vhost cgroups are on
  const VHost* vh = nullptr;
  unique_fd ctl;            // plain HTTP: the hand-over channel; closed to retire the worker
  bool idle = false;
  int64_t idle_since = 0;
};

class Acceptor {
 public:
  Acceptor(const ProcessContext& ctx, uint32_t index) : ctx_(ctx), rt_(*ctx.rt), index_(index) {}
  [[noreturn]] void run();

 private:
  void setup();
  void accept_ready(int lfd, bool https);
  void read_proxy_header(PendingConn& c);
  void watch(PendingConn& c, uint32_t events);
  void handshake(PendingConn& c);
  ssize_t receive(PendingConn& c, char* buf, size_t len);
  void on_readable(PendingConn& c);
  void on_writable(PendingConn& c);
  void dispatch(PendingConn& c);
  void refuse(PendingConn& c, int status, const char* why, std::string_view extra = {});
  void close_conn(PendingConn& c);
  void charge(PendingConn& c);
  bool shed_for(PendingConn& c);
  void uncharge(PendingConn& c);
  void expire(int64_t now);
  void reap();
  void begin_stop();
  void update_reading();
  bool place_in_cgroup(const VHost& vh, std::string& leaf, bool& full);
  void on_worker_message(pid_t pid);
  void retire(WorkerInfo& w);
  bool hand_to_spare(PendingConn& c, const VHost& vh, uint32_t entry, const std::string& leaf);

  const ProcessContext& ctx_;
  const Runtime& rt_;
  const TlsContexts* tls_ = nullptr;  // this generation's contexts when there is an https listener
  uint32_t index_;
  unique_fd epoll_;
  unique_fd sigfd_;
  std::unordered_map<int, bool> proxy_listener_;  // listening fd -> its connections start with a PROXY header
  std::list<PendingConn> reading_;    // ordered by deadline (all get the same timeout): oldest first
  size_t head_bytes_ = 0;             // memory held for the heads of reading_, all together
  std::list<PendingConn> lingering_;  // ordered by deadline (all get the same linger time)
  std::unordered_map<pid_t, WorkerInfo> workers_;
  std::unordered_map<const VHost*, std::vector<pid_t>> spares_;  // idle workers by vhost, most recent last
  size_t spare_count_ = 0;
  std::vector<std::string> dying_leaves_;  // killed connection cgroups whose processes are still exiting
  uint64_t leaves_made_ = 0;
  bool stopping_ = false;
  int64_t accept_paused_until_ = 0;
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
  // This process still forks its workers, so it takes the spawner's sandbox, not the acceptor's.
  become_spawner(sc.acceptor, sc.limit_uid_range, sc.limit_gid_range);
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
  bool https = false;
  for (const Listener& l : *ctx_.listeners) https = https || l.kind == ListenerKind::https;
  if (https) {
    // The channel to the key process is this acceptor's own; the registration socket is not kept, and a
    // worker keeps neither (close_range at fork).
    const TlsInheritance& inherited = ctx_.tls;
    tls_ = inherited.contexts;
    std::string e = tls_ ? key_client_connect(inherited.key_registration_fd) : "no TLS contexts were inherited";
    if (inherited.key_registration_fd >= 0) (void)close(inherited.key_registration_fd);
    if (!e.empty()) {
      log(Level::err, "cannot serve https: %s", e.c_str());
      _exit(1);
    }
  }
  const auto& proxied = rt_.config->server.proxy_protocol;
  for (const Listener& l : *ctx_.listeners) {
    proxy_listener_[l.fd] = std::find(proxied.begin(), proxied.end(), l.name) != proxied.end();
    epoll_event lev{};
    // EPOLLEXCLUSIVE: one acceptor wakes per connection instead of all of them.
    lev.events = EPOLLIN | EPOLLEXCLUSIVE;
    lev.data.u64 = static_cast<uint64_t>(l.fd) << 2 | (l.kind == ListenerKind::https ? 2 : 0) | 1;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, l.fd, &lev) < 0) {
      log(Level::err, "cannot watch listening fd %d: %s", l.fd, strerror(errno));
      _exit(1);
    }
  }
}

void Acceptor::update_reading() {
  ctx_.sb->acceptors[index_].reading.store(static_cast<uint32_t>(reading_.size()), std::memory_order_relaxed);
}

void Acceptor::accept_ready(int lfd, bool https) {
  if (stopping_ || now_ms() < accept_paused_until_) return;
  const bool proxy = proxy_listener_[lfd];
  for (size_t i = 0; i < kMaxAcceptsPerWake; i++) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
    // On a ProxyProtocol listener only the load balancers may connect: anyone else could name any client.
    if (proxy && !address_in(rt_.config->server.proxy_protocol_from, peer)) {
      log(Level::warning, "connection from %s refused: not in ProxyProtocolFrom, and the listener expects a PROXY "
                          "protocol header", address_text(peer).c_str());
      (void)close(fd);
      continue;
    }
    reading_.emplace_back();
    PendingConn& c = reading_.back();
    c.proxy_wait = proxy;
    c.self = std::prev(reading_.end());
    c.fd.reset(fd);
    c.parser = std::make_unique<HeadParser>(rt_.limits);
    // One deadline for the handshake and the head together: a slow TLS client is a slowloris too.
    c.deadline = now_ms() + static_cast<int64_t>(rt_.config->server.request_read_timeout) * 1000;
    if (https) {
      c.tls = tls_new_connection(*tls_, fd);
      if (!c.tls) {
        log(Level::err, "cannot start TLS on a connection: %s", tls_error_text().c_str());
        reading_.erase(c.self);
        continue;
      }
      charge(c);
    }
    epoll_event ev{};
    ev.events = c.interest = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
      log(Level::err, "cannot watch connection fd %d: %s", fd, strerror(errno));
      uncharge(c);
      reading_.erase(c.self);
      continue;
    }
    if (shed_for(c)) continue;
    // Most clients send their ClientHello or head together with the connect: try it at once.
    on_readable(c);
  }
  update_reading();
}

void Acceptor::watch(PendingConn& c, uint32_t events) {
  events |= EPOLLRDHUP;
  if (c.interest == events) return;
  epoll_event ev{};
  ev.events = c.interest = events;
  ev.data.ptr = &c;
  epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
}

// One step of the non-blocking handshake; a signature it needs is one round trip to the key process.
void Acceptor::handshake(PendingConn& c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c.tls.get());
  if (r == 1) {
    c.handshaken = true;
    c.sni = tls_server_name(c.tls.get());
    watch(c, EPOLLIN);
    return on_readable(c);  // the request may have come with the client's Finished
  }
  int e = SSL_get_error(c.tls.get(), r);
  if (e == SSL_ERROR_WANT_READ) return watch(c, EPOLLIN);
  if (e == SSL_ERROR_WANT_WRITE) return watch(c, EPOLLOUT);
  // Old protocol versions, no shared cipher or ALPN, port scanners: the client's problem, said once.
  log(Level::info, "TLS handshake failed: %s",
      e == SSL_ERROR_SSL ? tls_error_text().c_str() : "the connection ended");
  ERR_clear_error();
  close_conn(c);
  update_reading();
}

// Reads request bytes: >0, 0 at the end, -1 with errno (EAGAIN: wait for the event now watched).
ssize_t Acceptor::receive(PendingConn& c, char* buf, size_t len) {
  if (!c.tls || c.lingering) {
    // After an error response only the raw stream is drained, encrypted or not: nothing is parsed.
    ssize_t n = recv(c.fd.get(), buf, len, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) errno = EAGAIN;
    return n;
  }
  ERR_clear_error();
  int n = SSL_read(c.tls.get(), buf, static_cast<int>(len));
  if (n > 0) return n;
  int e = SSL_get_error(c.tls.get(), n);
  ERR_clear_error();
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    watch(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  errno = EPROTO;
  return -1;
}

// A connection's buffer and parsed head count against LimitHeadBuffers while its head arrives.
void Acceptor::charge(PendingConn& c) {
  uncharge(c);
  // The buffer, the parsed copy of what it holds, and a TLS session's own buffers.
  c.charged = c.buf.capacity() + c.buf.size() + (c.tls ? kTlsConnectionBytes : 0);
  head_bytes_ += c.charged;
}

// Over the acceptor's budget for heads, the connections that have waited longest go first: a slow
// client's, never the one whose bytes are arriving now unless it is the oldest itself. True when `c`
// itself was shed (it may be gone: the caller must not touch it).
bool Acceptor::shed_for(PendingConn& c) {
  while (head_bytes_ > rt_.config->server.limit_head_buffers && !reading_.empty()) {
    PendingConn& oldest = reading_.front();
    bool self = &oldest == &c;
    refuse(oldest, 503, "LimitHeadBuffers reached: the acceptor sheds the unfinished head that waited longest",
           "Retry-After: 2\r\n");
    if (self) return true;
  }
  return false;
}

void Acceptor::uncharge(PendingConn& c) {
  head_bytes_ -= std::min(head_bytes_, c.charged);
  c.charged = 0;
}

void Acceptor::close_conn(PendingConn& c) {
  uncharge(c);
  // Explicit removal: a forked worker holds the same open file description, and epoll keeps a
  // registration until every descriptor of the description is closed.
  (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  auto& list = c.lingering ? lingering_ : reading_;
  list.erase(c.self);
}

void Acceptor::refuse(PendingConn& c, int status, const char* why, std::string_view extra) {
  if (c.tls && !c.handshaken) {
    // No TLS session yet, so no way to answer: a handshake past RequestReadTimeout just ends.
    close_conn(c);
    update_reading();
    return;
  }
  if (status != 408) log(Level::info, "request refused with %d: %s", status, why);
  // Nothing of the head is kept once it is refused: the memory goes back now, not after the linger.
  uncharge(c);
  if (!c.buf.empty()) OPENSSL_cleanse(c.buf.data(), c.buf.size());
  std::string().swap(c.buf);
  if (c.parser) c.parser->wipe();
  c.out = error_response(status, false, extra);
  c.out_off = 0;
  c.lingering = true;
  c.deadline = now_ms() + kLingerMs;
  lingering_.splice(lingering_.end(), reading_, c.self);
  update_reading();
  on_writable(c);
}

void Acceptor::on_writable(PendingConn& c) {
  if (!c.lingering) {
    // TLS only: the handshake, or a read that needed to write first, is waiting for room.
    if (c.tls && !c.handshaken) return handshake(c);
    return on_readable(c);
  }
  while (c.out_off < c.out.size()) {
    ssize_t n;
    if (c.tls) {
      ERR_clear_error();
      int r = SSL_write(c.tls.get(), c.out.data() + c.out_off, static_cast<int>(c.out.size() - c.out_off));
      int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c.tls.get(), r);
      ERR_clear_error();
      n = r > 0 ? r : -1;
      errno = e == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
    } else {
      n = send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return watch(c, EPOLLIN | EPOLLOUT);
      close_conn(c);
      return;
    }
    c.out_off += static_cast<size_t>(n);
  }
  if (!c.out.empty()) {
    c.out.clear();
    if (c.tls) {
      ERR_clear_error();
      (void)SSL_shutdown(c.tls.get());  // close_notify, if there is room for it; nothing is waited for
      ERR_clear_error();
    }
    (void)shutdown(c.fd.get(), SHUT_WR);
    watch(c, EPOLLIN);
  }
}

// The PROXY header of a connection from a load balancer, before its first TLS or HTTP byte: looked at
// with MSG_PEEK, then exactly its length is read, so nothing of what follows is taken.
void Acceptor::read_proxy_header(PendingConn& c) {
  char peek[kProxyMax];
  ssize_t n = recv(c.fd.get(), peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(c);
    return update_reading();
  }
  if (n < 0) return;
  ProxyHeader h;
  std::string why;
  ProxyParse st = proxy_parse(std::string_view(peek, static_cast<size_t>(n)), h, why);
  if (st == ProxyParse::incomplete && static_cast<size_t>(n) < sizeof peek) return;  // the rest is coming
  if (st != ProxyParse::complete) {
    if (st == ProxyParse::incomplete) why = "PROXY header longer than itk takes";
    log(Level::warning, "connection closed: %s", why.c_str());
    close_conn(c);
    return update_reading();
  }
  if (recv(c.fd.get(), peek, h.length, MSG_DONTWAIT) != static_cast<ssize_t>(h.length)) {
    close_conn(c);
    return update_reading();
  }
  c.proxy_wait = false;
  c.addrs = h.addrs;
  on_readable(c);  // the ClientHello or the head may have come with it
}

void Acceptor::on_readable(PendingConn& c) {
  if (c.proxy_wait && !c.lingering) return read_proxy_header(c);
  if (c.tls && !c.handshaken && !c.lingering) return handshake(c);
  const size_t cap = rt_.limits.total + 1;
  for (;;) {
    char tmp[16384];
    ssize_t n = receive(c, tmp, sizeof tmp);
    if (n == 0) {
      close_conn(c);
      update_reading();
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN) break;
      close_conn(c);
      update_reading();
      return;
    }
    if (c.lingering) {
      // Draining what the client still sends after an error, up to a bound.
      c.drained += static_cast<size_t>(n);
      if (c.drained > kMaxDrain) return close_conn(c);
      continue;
    }
    size_t take = std::min(static_cast<size_t>(n), cap - std::min(cap, c.buf.size()));
    c.buf.append(tmp, take);
    charge(c);
    if (shed_for(c)) return;
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
  if (c.tls && tls_misdirected(rt_.vhosts, c.sni, vh))
    return refuse(c, 421, "Host names another vhost than the TLS server name (SNI)");
  const ServerConfig& sc = rt_.config->server;
  // Workers that already exited must not count: under load their SIGCHLD may still be queued
  // behind other events, and one WNOHANG waitpid is cheap next to the fork that follows.
  reap();
  // With per-vhost cgroups the kernel counts the vhost's connections (its leaves) and the
  // scoreboard only bounds MaxClients; without them the scoreboard counts both.
  std::string leaf;
  bool vhost_full = false;
  const bool by_cgroup = ctx_.cgroups && ctx_.cgroups->enabled && place_in_cgroup(*vh, leaf, vhost_full);
  if (vhost_full) {
    ctx_.sb->refused.fetch_add(1, std::memory_order_relaxed);
    return refuse(c, 503, "vhost at MaxClientsVHost", "Retry-After: 2\r\n");
  }
  uint32_t entry = 0;
  Admission a = scoreboard_admit(*ctx_.sb, vh->slot, by_cgroup ? 0 : vh->max_clients_vhost, sc.max_clients, &entry);
  if (a != Admission::admitted) {
    if (!leaf.empty()) (void)rmdir(leaf.c_str());
    ctx_.sb->refused.fetch_add(1, std::memory_order_relaxed);
    return refuse(c, 503, a == Admission::vhost_full ? "vhost at MaxClientsVHost" : "server at MaxClients",
                  "Retry-After: 2\r\n");
  }

  // Plain HTTP goes to an idle worker of the vhost when there is one: no fork.
  if (!c.tls && hand_to_spare(c, *vh, entry, leaf)) return;
  unique_fd ctl_mine, ctl_theirs;
  if (!c.tls) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
      ctl_mine.reset(sv[0]);
      ctl_theirs.reset(sv[1]);
    }
  }
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of a worker for %s failed: %s", vh->server_name.c_str(), strerror(errno));
    scoreboard_release(*ctx_.sb, entry);
    if (!leaf.empty()) (void)rmdir(leaf.c_str());
    return refuse(c, 503, "fork failed", "Retry-After: 2\r\n");
  }
  if (pid == 0) {
    scoreboard_set_pid(*ctx_.sb, entry, getpid());
    // Into the connection's cgroup before anything else: a worker that is not counted and confined
    // there must not serve.
    if (!leaf.empty() && !cgroup_join(leaf)) {
      log(Level::err, "cannot move the worker into %s: %s", leaf.c_str(), strerror(errno));
      _exit(1);
    }
    // The worker keeps exactly the connection (as fd 3), its hand-over channel (fd 4) and stdio;
    // everything else of the acceptor goes.
    int ctl = ctl_theirs ? fcntl(ctl_theirs.get(), F_DUPFD_CLOEXEC, 5) : -1;
    if (dup2(c.fd.get(), 3) < 0 || (ctl >= 0 && dup2(ctl, 4) < 0)) _exit(1);
    close_range(ctl >= 0 ? 5 : 4, ~0U, 0);
    // The key channel went with close_range; the ticket keys and the other clients' sessions and bytes
    // must not stay in a process that runs as one tenant either.
    key_client_forget();
    tls_ticket_keys_wipe();
    for (auto* list : {&reading_, &lingering_}) {
      for (PendingConn& other : *list) {
        if (&other == &c) continue;
        (void)other.fd.release();  // closed by close_range already
        other.tls.reset();         // SSL_free wipes the session's keys
        if (!other.buf.empty()) OPENSSL_cleanse(other.buf.data(), other.buf.size());
        if (other.parser) {
          other.parser->wipe();
          other.parser.reset();
        }
      }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    WorkerStart ws;
    ws.vhost = vh;
    ws.conn_fd = 3;
    ws.head_length = c.parser->head_length();
    ws.head = c.parser->head();
    ws.buffer = std::move(c.buf);
    ws.tls = std::move(c.tls);
    ws.sni = std::move(c.sni);
    ws.ctl_fd = ctl >= 0 ? 4 : -1;
    ws.addrs = c.addrs;
    worker_main(ctx_, std::move(ws));
  }
  scoreboard_set_pid(*ctx_.sb, entry, pid);
  WorkerInfo& w = workers_[pid];
  w.entry = entry;
  w.vhost = vh->server_name;
  w.leaf = leaf;
  w.vh = vh;
  if (ctl_mine) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(pid) << 3 | kWorkerTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ctl_mine.get(), &ev) == 0) w.ctl = std::move(ctl_mine);
  }
  close_conn(c);
  update_reading();
}

bool Acceptor::place_in_cgroup(const VHost& vh, std::string& leaf, bool& full) {
  const std::string vdir = cgroup_vhost_dir(*ctx_.cgroups, vh);
  const int max = static_cast<int>(vh.max_clients_vhost);
  if (max && cgroup_vhost_connections(*ctx_.cgroups, vh) >= max) {
    full = true;
    return false;
  }
  leaf = vdir + strprintf("/c%u-%llu", index_, static_cast<unsigned long long>(++leaves_made_));
  if (mkdir(leaf.c_str(), 0755) != 0) {
    log(Level::err, "cannot create cgroup %s: %s; counting %s in shared memory", leaf.c_str(), strerror(errno),
        vh.server_name.c_str());
    leaf.clear();
    return false;
  }
  // Another acceptor may have placed a connection between the count and the mkdir: count again,
  // now including ours, so that the limit is never exceeded.
  if (max && cgroup_vhost_connections(*ctx_.cgroups, vh) > max) {
    (void)rmdir(leaf.c_str());
    leaf.clear();
    full = true;
    return false;
  }
  return true;
}

// A worker says its connection is done. It waits as a spare for its vhost's next connection, out of
// the counts (scoreboard, connection cgroup), unless enough spares wait already.
void Acceptor::on_worker_message(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end() || !it->second.ctl) return;
  WorkerInfo& w = it->second;
  if (!handoff_read_idle(w.ctl.get()) || w.idle) return retire(w);  // the channel closed, or nonsense
  std::vector<pid_t>& list = spares_[w.vh];
  size_t cap = w.vh->max_clients_vhost ? std::min<size_t>(kMaxSparesPerVHost, w.vh->max_clients_vhost) : kMaxSparesPerVHost;
  if (stopping_ || list.size() >= cap || spare_count_ >= kMaxSpares) return retire(w);
  if (!w.leaf.empty()) {
    // Out of its connection's cgroup first; then the leaf and whatever the connection left running go.
    if (!cgroup_move(cgroup_spare_dir(*ctx_.cgroups, *w.vh), pid)) return retire(w);
    if (!cgroup_kill_and_remove(w.leaf)) dying_leaves_.push_back(w.leaf);
    w.leaf.clear();
  }
  if (w.has_entry) scoreboard_release_own(*ctx_.sb, w.entry, pid);
  w.has_entry = false;
  w.idle = true;
  w.idle_since = now_ms();
  list.push_back(pid);
  spare_count_++;
}

// Closing the channel ends the worker (it is waiting for a connection, or will find it closed).
void Acceptor::retire(WorkerInfo& w) {
  if (w.idle) {
    std::vector<pid_t>& list = spares_[w.vh];
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (workers_.count(*it) && &workers_[*it] == &w) {
        list.erase(it);
        spare_count_--;
        break;
      }
    }
    w.idle = false;
  }
  w.ctl.reset();
}

// The connection goes to the most recently idle worker of the vhost, already admitted (`entry`,
// `leaf`). False when there is none or it is gone; the caller forks then, with the same admission.
bool Acceptor::hand_to_spare(PendingConn& c, const VHost& vh, uint32_t entry, const std::string& leaf) {
  auto sit = spares_.find(&vh);
  while (sit != spares_.end() && !sit->second.empty()) {
    pid_t pid = sit->second.back();
    sit->second.pop_back();
    spare_count_--;
    auto it = workers_.find(pid);
    if (it == workers_.end()) continue;
    WorkerInfo& w = it->second;
    w.idle = false;
    if (!leaf.empty() && !cgroup_move(leaf, pid)) {
      retire(w);
      continue;
    }
    // The pid first: the worker gives the entry back itself, by pid, when the connection ends. A
    // failed send leaves it for the fork that follows, which stores its own.
    scoreboard_set_pid(*ctx_.sb, entry, pid);
    if (!handoff_send(w.ctl.get(), c.fd.get(), entry, c.addrs, c.buf)) {
      retire(w);
      continue;
    }
    w.entry = entry;
    w.has_entry = true;
    w.leaf = leaf;
    close_conn(c);
    update_reading();
    return true;
  }
  return false;
}

void Acceptor::expire(int64_t now) {
  for (auto& [vh, list] : spares_) {
    // Oldest first: a spare idle past kSpareIdleMs is retired.
    while (!list.empty()) {
      auto it = workers_.find(list.front());
      if (it != workers_.end() && now - it->second.idle_since < kSpareIdleMs) break;
      pid_t pid = list.front();
      list.erase(list.begin());
      spare_count_--;
      if (it != workers_.end()) {
        it->second.idle = false;
        it->second.ctl.reset();
      }
      (void)pid;
    }
  }
  for (auto it = dying_leaves_.begin(); it != dying_leaves_.end();)
    it = cgroup_kill_and_remove(*it) ? dying_leaves_.erase(it) : std::next(it);
  while (!reading_.empty() && reading_.front().deadline <= now)
    refuse(reading_.front(), 408, "head not complete within RequestReadTimeout");
  while (!lingering_.empty() && lingering_.front().deadline <= now) close_conn(lingering_.front());
  update_reading();
}

void Acceptor::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG | WUNTRACED);
    if (pid <= 0) return;
    auto it = workers_.find(pid);
    if (it == workers_.end()) continue;
    if (WIFSTOPPED(status)) {
      // Stopped by a process of its tenant. A spare must not be handed a connection it will never serve;
      // one that holds a connection is the master's to kill (this process may not signal a tenant).
      log(Level::warning, "worker %d for %s was stopped by signal %d%s", pid, it->second.vhost.c_str(),
          WSTOPSIG(status), it->second.idle ? "; it is no longer used as a spare" : "");
      if (it->second.idle) retire(it->second);
      continue;
    }
    if (WIFSIGNALED(status))
      log(Level::warning, "worker %d for %s was killed by signal %d", pid, it->second.vhost.c_str(), WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
      log(Level::warning, "worker %d for %s exited with status %d", pid, it->second.vhost.c_str(), WEXITSTATUS(status));
    if (it->second.has_entry) scoreboard_release_own(*ctx_.sb, it->second.entry, pid);
    if (it->second.idle) retire(it->second);
    // Whatever the connection started (a daemonized CGI child included) ends with it.
    if (!it->second.leaf.empty() && !cgroup_kill_and_remove(it->second.leaf)) dying_leaves_.push_back(it->second.leaf);
    workers_.erase(it);
  }
}

void Acceptor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  for (const Listener& l : *ctx_.listeners) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, l.fd, nullptr);
  // Workers finish the response in hand, then close their keep-alive connection; spares just end.
  for (auto& [pid, info] : workers_) {
    if (info.idle) retire(info);
    (void)kill(pid, SIGTERM);
  }
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
    if (spare_count_ > 0) next = std::min(next, now + 1000);
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
        accept_ready(static_cast<int>(ev.data.u64 >> 2), (ev.data.u64 & 2) != 0);
      } else if ((ev.data.u64 & 7) == kWorkerTag) {
        on_worker_message(static_cast<pid_t>(ev.data.u64 >> 3));
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

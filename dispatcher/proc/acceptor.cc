// Acceptor role: many connections per process while their PROXY headers, TLS ClientHellos and plain heads
// arrive, so slow or silent clients cannot occupy it; a worker of the vhost takes each connection once the
// vhost is known. Holds no capability: it never forks, never changes user and never sees a private key.
#include "proc/acceptor.h"

#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <unordered_map>

#include "config/address_range.h"
#include "http/http_response.h"
#include "http/proxy_protocol.h"
#include "proc/handoff.h"
#include "proc/request_log.h"
#include "proc/spawn_protocol.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/proctitle.h"
#include "sys/privileges.h"
#include "sys/unique_fd.h"
#include "tls/client_hello.h"

namespace itk {
namespace {

constexpr int kLingerMs = 2000;
// What is read and dropped after an error response, at most (the worker's lingering close drains as much).
constexpr size_t kMaxDrain = 1 << 20;
constexpr size_t kMaxAcceptsPerWake = 64;
// How long an admitted connection may wait for a worker of its vhost (the spawner forks one in well under a
// second; past this the machine is overloaded) before it is answered 503.
constexpr int64_t kWorkerWaitMs = 10000;
// Idle workers forked ahead of demand: per vhost at most this (and its MaxClientsVHost); kept, in all, at most
// kMaxSpares, and for kSpareIdleMs without a connection once more are idle than the vhost's recent load asks
// for. A worker back from a connection is kept up to the vhost's MaxClientsVHost: load moves between the
// acceptors (the kernel wakes one of them per connection), and one that retired its workers the moment they
// were idle would fork them again a few milliseconds later when the load comes back to it.
constexpr size_t kMaxSparesPerVHost = 64;
// A connection that finds no idle worker of a vhost whose workers are busy waits this long for one of
// them before a new one is forked for it. A static request frees its worker within a fraction of it; a
// fork costs 0.1 to 1 ms, and workers forked for every short wait pile up as spares that are retired
// again, a fork per few connections under load.
constexpr int64_t kSpawnAfterWaitMs = 2;
// How often queued connections look for slots that other acceptors' workers gave back (this acceptor's own
// workers say so at once).
constexpr int64_t kQueueRetryMs = 1;
// The acceptors' nice value (docs/architecture.md): a CFS weight about ten times a nice-0 worker's.
constexpr int kAcceptorNice = -10;
constexpr size_t kMaxSpares = kMaxSparesPerAcceptor;
constexpr int64_t kSpareIdleMs = 10000;
// Spares past kSpareIdleMs go one a second per vhost, as Apache's idle maintenance kills one child a second
// over MaxSpareServers: load that comes back after a lull finds most of its workers still there instead of
// waiting for a hundred forks.
constexpr int64_t kRetireEveryMs = 1000;
// A vhost's recent concurrency is the peak of busy plus waiting connections over the current and the
// previous window of this length.
constexpr int64_t kLoadWindowMs = 5000;
// epoll tags: the signalfd is 0, connections are pointers (aligned: low 3 bits 0), listeners have bit 0
// set, a worker's channel is (pid << 3) | kWorkerTag, the spawner's channel is kSpawnerTag.
constexpr uint64_t kWorkerTag = 2;
constexpr uint64_t kSpawnerTag = 4;

// reading: its head (or ClientHello) arrives; queued: over MaxClientsVHost or MaxClients, waiting for a slot;
// waiting: admitted, waiting for a worker; lingering: refused, its answer leaving and what it still sends drained.
enum class Stage { reading, queued, waiting, lingering };

// 0.0.0.0 or [::]: the address a connection came to is known only to its socket.
bool is_wildcard(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr == htonl(INADDR_ANY);
  if (ss.ss_family == AF_INET6) return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr);
  return true;
}

struct PendingConn {
  unique_fd fd;
  bool https = false;       // on an https listener: the ClientHello is peeked at, never read, here
  bool plain_answer = false;  // https listener, but the client spoke plain HTTP: errors are answered in clear
  bool peer_closed = false; // the client shut its side (EPOLLRDHUP)
  uint32_t interest = 0;    // epoll events watched now
  bool watched = false;     // in the epoll set: only once a first read found nothing, or to linger
  std::string buf;          // plain HTTP: the head read so far
  std::unique_ptr<HeadParser> parser;
  int64_t deadline = 0;
  int64_t waiting_since = 0;  // admitted, no worker yet: since when
  std::string out;          // response still to write (errors only)
  size_t out_off = 0;
  size_t drained = 0;       // bytes dropped while lingering
  size_t charged = 0;       // what this connection counts against LimitHeadBuffers
  bool proxy_wait = false;  // a PROXY protocol header must come first (ProxyProtocol listener)
  ConnAddrs addrs;          // what that header said, else what accept4 and the listener say (AF_UNSPEC: ask the socket)
  // Once admitted: its vhost, scoreboard entry and connection cgroup, kept while it waits for a worker.
  const VHost* vh = nullptr;
  bool admitted = false;
  uint32_t entry = 0;
  std::string leaf;
  Stage stage = Stage::reading;
  std::list<PendingConn>::iterator self;
};

struct WorkerInfo {
  const VHost* vh = nullptr;
  unique_fd ctl;            // the hand-over channel; closing it ends the worker
  bool idle = true;
  int64_t idle_since = 0;
  bool has_entry = false;   // counted in the scoreboard (its connection's entry)
  uint32_t entry = 0;
  std::string leaf;         // its connection cgroup, if per-vhost cgroups are on
};

// This acceptor's workers of one vhost and the load they see.
struct Pool {
  std::vector<pid_t> idle;  // most recently idle last
  unsigned busy = 0;
  unsigned waiting = 0;     // admitted connections without a worker
  unsigned queued = 0;      // connections over a limit, waiting for a slot (QueueTimeout)
  unsigned requested = 0;   // workers asked of the spawner, not arrived yet
  int64_t waiting_since = 0;  // when the oldest of the `waiting` began to wait
  unsigned peak = 0, previous_peak = 0;
  int spare_pair = -1;      // where its idle count is published in the scoreboard; -1: none (no idle worker)
  int64_t retired_at = 0;   // when expire() last retired one of its spares
};

class Acceptor {
 public:
  Acceptor(const ProcessContext& ctx, uint32_t index, int spawner)
      : ctx_(ctx), rt_(*ctx.rt), index_(index), spawner_(spawner) {}
  [[noreturn]] void run();

 private:
  void setup();
  void accept_ready(int lfd, bool https);
  void read_proxy_header(PendingConn& c);
  void peek_client_hello(PendingConn& c);
  void watch(PendingConn& c, uint32_t events);
  void keep_watching(PendingConn& c);
  void unwatch(PendingConn& c);
  void on_readable(PendingConn& c);
  void on_writable(PendingConn& c);
  void dispatch(PendingConn& c, const VHost* vh);
  Admission reserve(PendingConn& c);
  void to_worker(PendingConn& c);
  void enqueue(PendingConn& c, Admission why);
  void admit_queued();
  const char* limit_reached() const;
  void uncount(PendingConn& c);
  void refuse(PendingConn& c, int status, const char* why, std::string_view extra = {});
  void close_conn(PendingConn& c);
  std::list<PendingConn>& list_of(const PendingConn& c);
  void release_admission(PendingConn& c);
  void charge(PendingConn& c);
  bool shed_for(PendingConn& c);
  void uncharge(PendingConn& c);
  void expire(int64_t now);
  void begin_stop();
  void update_reading();
  bool place_in_cgroup(const VHost& vh, std::string& leaf, bool& full);
  bool hand_to_spare(PendingConn& c);
  void wait_for_worker(PendingConn& c);
  void serve_waiting(const VHost* vh);
  void publish_spares(const VHost* vh);
  void ask_for_workers(const VHost* vh);
  unsigned returning(const VHost* vh) const;
  void on_spawner();
  void on_worker_message(pid_t pid);
  void worker_gone(pid_t pid);
  void retire(pid_t pid);

  const ProcessContext& ctx_;
  const Runtime& rt_;
  uint32_t index_;
  int spawner_;
  bool spawner_gone_ = false;
  unique_fd epoll_;
  unique_fd sigfd_;
  struct ListenerInfo {
    bool proxy = false;         // its connections start with a PROXY header
    sockaddr_storage local{};   // its address when bound to one; AF_UNSPEC for a wildcard (the worker asks)
  };
  std::unordered_map<int, ListenerInfo> listener_;  // by listening fd
  std::list<PendingConn> reading_;    // ordered by deadline (all get the same timeout): oldest first
  std::list<PendingConn> queued_;     // over a limit, waiting for a slot; ordered by deadline (and arrival)
  std::list<PendingConn> waiting_;    // admitted, waiting for a worker; ordered by deadline
  std::list<PendingConn> lingering_;  // ordered by deadline (all get the same linger time)
  size_t head_bytes_ = 0;             // memory held for the heads of reading_, queued_ and waiting_, all together
  std::unordered_map<pid_t, WorkerInfo> workers_;
  std::unordered_map<const VHost*, Pool> pools_;
  size_t spare_count_ = 0;
  std::vector<std::string> dying_leaves_;  // killed connection cgroups whose processes are still exiting
  uint64_t leaves_made_ = 0;
  int64_t window_end_ = 0;
  bool stopping_ = false;
  int64_t accept_paused_until_ = 0;
};

void Acceptor::setup() {
  log_set_role("acceptor");
  (void)prctl(PR_SET_NAME, "itk-acceptor", 0, 0, 0);
  proctitle_set({"acceptor"});
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Meant for the master (reload, reopen logs); `systemctl kill` without --kill-whom=main reaches every process.
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  // Everything that needs more than a socket is made before the sandbox: the signalfd and the epoll set.
  sigfd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!sigfd_ || !epoll_) {
    log(Level::err, "cannot create the acceptor's signalfd/epoll: %s", strerror(errno));
    _exit(1);
  }
  // A listener bound to one address is every connection's server address: the worker need not ask.
  const auto& proxied = rt_.config->server.proxy_protocol;
  for (const Listener& l : *ctx_.listeners) {
    ListenerInfo& info = listener_[l.fd];
    info.proxy = std::find(proxied.begin(), proxied.end(), l.name) != proxied.end();
    socklen_t len = sizeof info.local;
    if (getsockname(l.fd, reinterpret_cast<sockaddr*>(&info.local), &len) != 0 || is_wildcard(info.local))
      info.local = sockaddr_storage{};
  }
  const pid_t master = getppid();
  // Before the privileges go: the one process every connection passes through is not starved by the
  // workers. A tenant whose scripts keep every CPU busy would otherwise slow the dispatch of all vhosts,
  // and on a loaded machine answers lag behind the 'idle' messages of the workers, which then look busy.
  if (setpriority(PRIO_PROCESS, 0, kAcceptorNice) != 0)
    log(Level::info, "acceptor stays at the default priority: setpriority(%d) failed: %s", kAcceptorNice,
        strerror(errno));
  become_acceptor(rt_.config->server.acceptor);
  // After the credential change, which clears it: stop when the master goes away. The master may
  // already be gone (then we were reparented); it may also be PID 1 itself, in a container.
  (void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  if (getppid() != master) _exit(0);

  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, sigfd_.get(), &ev);
  ev.data.u64 = kSpawnerTag;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, spawner_, &ev) < 0) {
    log(Level::err, "cannot watch the spawner's channel: %s", strerror(errno));
    _exit(1);
  }
  for (const Listener& l : *ctx_.listeners) {
    epoll_event lev{};
    // EPOLLEXCLUSIVE: one acceptor wakes per connection instead of all of them.
    lev.events = EPOLLIN | EPOLLEXCLUSIVE;
    lev.data.u64 = static_cast<uint64_t>(l.fd) << 2 | (l.kind == ListenerKind::https ? 2 : 0) | 1;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, l.fd, &lev) < 0) {
      log(Level::err, "cannot watch listening fd %d: %s", l.fd, strerror(errno));
      _exit(1);
    }
  }
  window_end_ = now_ms() + kLoadWindowMs;
}

void Acceptor::update_reading() {
  ctx_.sb->acceptors[index_].reading.store(static_cast<uint32_t>(reading_.size() + queued_.size() + waiting_.size()),
                                           std::memory_order_relaxed);
}

void Acceptor::accept_ready(int lfd, bool https) {
  if (stopping_ || now_ms() < accept_paused_until_) return;
  const ListenerInfo& listener = listener_[lfd];
  const bool proxy = listener.proxy;
  for (size_t i = 0; i < kMaxAcceptsPerWake; i++) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    // Blocking, as the worker wants it (every read and write here says MSG_DONTWAIT); TCP_NODELAY and
    // SO_SNDTIMEO come from the listener (set_connection_options): no fcntl or setsockopt per connection.
    unique_fd fd(accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC));
    if (!fd) {
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
      continue;
    }
    reading_.emplace_back();
    PendingConn& c = reading_.back();
    c.proxy_wait = proxy;
    c.https = https;
    c.self = std::prev(reading_.end());
    c.fd = std::move(fd);
    if (!proxy) {
      c.addrs.client = peer;
      c.addrs.server = listener.local;
    }
    c.parser = std::make_unique<HeadParser>(rt_.limits);
    // One deadline for the PROXY header, the ClientHello or the head: a slow client is a slowloris either way.
    c.deadline = now_ms() + static_cast<int64_t>(rt_.config->server.request_read_timeout) * 1000;
    charge(c);
    if (shed_for(c)) continue;
    // Most clients send their ClientHello or head together with the connect: tried at once, and only a
    // connection that has not said all yet joins the epoll set (keep_watching), two system calls fewer.
    on_readable(c);
  }
  update_reading();
}

// Edge-triggered: a PROXY header and a ClientHello are only peeked at, so their bytes stay readable, and a
// level-triggered watch would fire again at once. Added with what is readable already, epoll reports it.
void Acceptor::watch(PendingConn& c, uint32_t events) {
  events |= EPOLLRDHUP | EPOLLET;
  if (c.watched && c.interest == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  if (epoll_ctl(epoll_.get(), c.watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd.get(), &ev) < 0) {
    // Its deadline still ends it.
    log(Level::err, "cannot watch connection fd %d: %s", c.fd.get(), strerror(errno));
    return;
  }
  c.interest = events;
  c.watched = true;
}

// A connection that waits for more bytes: in the epoll set, unless it is already (with what it waits for).
void Acceptor::keep_watching(PendingConn& c) {
  if (!c.watched) watch(c, EPOLLIN);
}

void Acceptor::unwatch(PendingConn& c) {
  if (c.watched) (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  c.watched = false;
  c.interest = 0;
}

// A connection's buffer and parsed head count against LimitHeadBuffers until a worker has it.
void Acceptor::charge(PendingConn& c) {
  uncharge(c);
  // The buffer, the parsed copy of what it holds, and a connection's own bookkeeping.
  c.charged = c.buf.capacity() + c.buf.size() + sizeof c;
  head_bytes_ += c.charged;
}

// Over the acceptor's budget for heads, the connections that have waited longest go first: a slow
// client's, then a queued one's, never the one whose bytes are arriving now unless it is the oldest itself.
// True when `c` itself was shed (it may be gone: the caller must not touch it).
bool Acceptor::shed_for(PendingConn& c) {
  while (head_bytes_ > rt_.config->server.limit_head_buffers && (!reading_.empty() || !queued_.empty())) {
    PendingConn& oldest = !reading_.empty() ? reading_.front() : queued_.front();
    bool self = &oldest == &c;
    refuse(oldest, 503, "LimitHeadBuffers reached: the acceptor sheds the head that waited longest",
           "Retry-After: 2\r\n");
    if (self) return true;
  }
  return false;
}

void Acceptor::uncharge(PendingConn& c) {
  head_bytes_ -= std::min(head_bytes_, c.charged);
  c.charged = 0;
}

std::list<PendingConn>& Acceptor::list_of(const PendingConn& c) {
  switch (c.stage) {
    case Stage::reading: return reading_;
    case Stage::queued: return queued_;
    case Stage::waiting: return waiting_;
    case Stage::lingering: break;
  }
  return lingering_;
}

// The connection leaves its vhost's count of queued or waiting connections (it keeps its stage).
void Acceptor::uncount(PendingConn& c) {
  if (c.stage == Stage::queued) pools_[c.vh].queued--;
  if (c.stage != Stage::waiting) return;
  Pool& p = pools_[c.vh];
  if (--p.waiting == 0) return;
  // The next oldest of the vhost, almost always the next of the list (it is in the order they began).
  for (const PendingConn& o : waiting_)
    if (o.vh == c.vh && &o != &c) {
      p.waiting_since = o.waiting_since;
      break;
    }
}

// Gives back what admission reserved for a connection that no worker took.
void Acceptor::release_admission(PendingConn& c) {
  if (!c.admitted) return;
  c.admitted = false;
  scoreboard_release(*ctx_.sb, c.entry);
  if (!c.leaf.empty()) (void)rmdir(c.leaf.c_str());
  c.leaf.clear();
}

void Acceptor::close_conn(PendingConn& c) {
  uncharge(c);
  release_admission(c);
  uncount(c);
  // Explicit removal: a worker holds the same open file description once it has the connection, and epoll
  // keeps a registration until every descriptor of the description is closed.
  unwatch(c);
  if (!c.buf.empty()) OPENSSL_cleanse(c.buf.data(), c.buf.size());
  list_of(c).erase(c.self);
}

// The vhost a refused connection's log line belongs to: the one it was dispatched to, else the one a Host
// header read before the head failed names (a header before the last, whose value is complete); null when
// nothing names one, and the line goes to the server-wide log.
const VHost* vhost_of(const Runtime& rt, const PendingConn& c) {
  if (c.vh) return c.vh;
  if (!c.parser) return nullptr;
  const auto& headers = c.parser->head().headers;
  for (size_t i = 0; i + 1 < headers.size(); i++)
    if (headers[i].first == "host" && !VHostTable::normalize_host(headers[i].second).empty())
      return rt.vhosts.lookup(headers[i].second);
  return nullptr;
}

void Acceptor::refuse(PendingConn& c, int status, const char* why, std::string_view extra) {
  const bool silent = c.https && !c.plain_answer;
  const VHost* vh = vhost_of(rt_, c);
  const std::string& name = vh ? vh->server_name : std::string();
  if (status != 408) {
    // No TLS session here to answer in: a TLS client sees the connection close.
    if (silent) log_vhost(Level::info, name, status, "TLS connection closed instead of %d: %s", status, why);
    else log_vhost(Level::info, name, status, "request refused with %d: %s", status, why);
  }
  std::string response = silent ? std::string() : error_response(status, false, extra);
  log_refusal(ctx_.logs, rt_, vh, c.fd.get(), c.addrs, c.parser ? &c.parser->head() : nullptr, status, response);
  uncount(c);
  // Lingering is watched: what the client still sends is drained.
  watch(c, EPOLLIN);
  release_admission(c);
  // Nothing of the head is kept once it is refused: the memory goes back now, not after the linger.
  uncharge(c);
  if (!c.buf.empty()) OPENSSL_cleanse(c.buf.data(), c.buf.size());
  std::string().swap(c.buf);
  if (c.parser) c.parser->wipe();
  c.out = std::move(response);
  c.out_off = 0;
  // A silent refusal is closed by expire() after this batch of events, which may still name it.
  c.deadline = silent ? 0 : now_ms() + kLingerMs;
  lingering_.splice(silent ? lingering_.begin() : lingering_.end(), list_of(c), c.self);
  c.stage = Stage::lingering;
  update_reading();
  if (silent) (void)shutdown(c.fd.get(), SHUT_RDWR);
  else on_writable(c);
}

void Acceptor::on_writable(PendingConn& c) {
  if (c.stage != Stage::lingering) return on_readable(c);
  while (c.out_off < c.out.size()) {
    ssize_t n = send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return watch(c, EPOLLIN | EPOLLOUT);
      return close_conn(c);
    }
    c.out_off += static_cast<size_t>(n);
  }
  if (!c.out.empty()) {
    c.out.clear();
    (void)shutdown(c.fd.get(), SHUT_WR);
    watch(c, EPOLLIN);
    on_readable(c);  // edge-triggered: what arrived meanwhile is drained now
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
  if (n < 0) return keep_watching(c);
  ProxyHeader h;
  std::string why;
  ProxyParse st = proxy_parse(std::string_view(peek, static_cast<size_t>(n)), h, why);
  if (st == ProxyParse::incomplete && static_cast<size_t>(n) < sizeof peek && !c.peer_closed)
    return keep_watching(c);
  if (st != ProxyParse::complete) {
    if (st == ProxyParse::incomplete) why = c.peer_closed ? "the connection ended inside the PROXY header"
                                                          : "PROXY header longer than itk takes";
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

// An https connection's ClientHello, peeked at for its SNI name: the vhost's worker reads it and does the
// handshake itself, with its vhost's certificate.
void Acceptor::peek_client_hello(PendingConn& c) {
  char peek[kMaxClientHelloBytes];
  ssize_t n = recv(c.fd.get(), peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(c);
    return update_reading();
  }
  if (n < 0) return keep_watching(c);
  std::string name, why;
  HelloParse st = parse_client_hello(std::string_view(peek, static_cast<size_t>(n)), name, why);
  OPENSSL_cleanse(peek, static_cast<size_t>(n));
  switch (st) {
    case HelloParse::incomplete:
      if (!c.peer_closed) return keep_watching(c);
      close_conn(c);
      return update_reading();
    case HelloParse::not_tls:
      // nginx's "plain HTTP request was sent to HTTPS port": said in clear, then closed.
      c.plain_answer = true;
      return refuse(c, 400, "plain HTTP on an https listener");
    case HelloParse::malformed:
      log(Level::info, "TLS connection closed: %s", why.c_str());
      close_conn(c);
      return update_reading();
    case HelloParse::complete: break;
  }
  if (!name.empty() && VHostTable::normalize_host(name).empty()) {
    log(Level::info, "TLS connection closed: invalid server name in its ClientHello");
    close_conn(c);
    return update_reading();
  }
  dispatch(c, rt_.vhosts.lookup(name));
}

void Acceptor::on_readable(PendingConn& c) {
  if (c.stage == Stage::waiting || c.stage == Stage::queued) return;
  if (c.stage == Stage::reading && c.proxy_wait) return read_proxy_header(c);
  if (c.stage == Stage::reading && c.https) return peek_client_hello(c);
  const size_t cap = rt_.limits.total + 1;
  for (;;) {
    char tmp[16384];
    ssize_t n = recv(c.fd.get(), tmp, sizeof tmp, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      close_conn(c);
      return update_reading();
    }
    if (n < 0) return keep_watching(c);
    if (c.stage == Stage::lingering) {
      // Draining what the client still sends after an error, up to a bound.
      c.drained += static_cast<size_t>(n);
      if (c.drained > kMaxDrain) return close_conn(c);
      continue;
    }
    size_t take = std::min(static_cast<size_t>(n), cap - std::min(cap, c.buf.size()));
    c.buf.append(tmp, take);
    OPENSSL_cleanse(tmp, static_cast<size_t>(n));
    charge(c);
    if (shed_for(c)) return;
    HeadState st = c.parser->parse(c.buf);
    if (st == HeadState::complete) {
      const RequestHead& head = c.parser->head();
      if (!head.host.empty() && VHostTable::normalize_host(head.host).empty())
        return refuse(c, 400, "invalid Host");
      return dispatch(c, rt_.vhosts.lookup(head.host));
    }
    if (st == HeadState::error) return refuse(c, c.parser->error_status(), c.parser->error_reason().c_str());
    if (c.buf.size() >= cap) return refuse(c, 431, "request head over 64 KiB");
  }
}

// Admission, then a worker of the vhost. Over MaxClientsVHost or MaxClients the connection is queued for a
// slot (QueueTimeout), behind the connections of its vhost queued here already: first come, first served.
void Acceptor::dispatch(PendingConn& c, const VHost* vh) {
  c.vh = vh;
  const Admission a = pools_[vh].queued ? Admission::vhost_full : reserve(c);
  if (a == Admission::admitted) return to_worker(c);
  enqueue(c, a);
}

// A slot of MaxClientsVHost and MaxClients for the connection: with per-vhost cgroups the kernel counts the
// vhost's connections (its leaves) and the scoreboard only bounds MaxClients; without them the scoreboard
// counts both.
Admission Acceptor::reserve(PendingConn& c) {
  const VHost& vh = *c.vh;
  std::string leaf;
  bool vhost_full = false;
  const bool by_cgroup = ctx_.cgroups && ctx_.cgroups->enabled && place_in_cgroup(vh, leaf, vhost_full);
  if (vhost_full) return Admission::vhost_full;
  uint32_t entry = 0;
  const Admission a = scoreboard_admit(*ctx_.sb, rt_.state(vh).slot, by_cgroup ? 0 : vh.max_clients_vhost,
                                       rt_.config->server.max_clients, &entry);
  if (a != Admission::admitted) {
    if (!leaf.empty()) (void)rmdir(leaf.c_str());
    return a;
  }
  c.admitted = true;
  c.entry = entry;
  c.leaf = std::move(leaf);
  return a;
}

// An admitted connection goes to an idle worker of its vhost at once, else waits for one (never holding up
// the others).
void Acceptor::to_worker(PendingConn& c) {
  const VHost* vh = c.vh;
  if (!hand_to_spare(c)) {
    wait_for_worker(c);
    Pool& p = pools_[vh];
    p.peak = std::max(p.peak, p.busy + p.waiting);
  }
  ask_for_workers(vh);
}

// Over a limit: the connection waits for a slot, out of the epoll set, for at most QueueTimeout (HAProxy's
// `timeout queue`; Apache leaves such connections in the listen queue). Refused at once with QueueTimeout 0
// (mpm-itk's MaxClientsVHost), or when MaxClients connections are queued in this acceptor already (each
// holds a descriptor; their heads count against LimitHeadBuffers).
void Acceptor::enqueue(PendingConn& c, Admission why) {
  const ServerConfig& sc = rt_.config->server;
  Pool& p = pools_[c.vh];
  if (sc.queue_timeout == 0 || queued_.size() >= sc.max_clients) {
    scoreboard_count_refused(*ctx_.sb, rt_.state(*c.vh).slot);
    std::string text = why == Admission::server_full ? "server at MaxClients" : "vhost at MaxClientsVHost";
    if (sc.queue_timeout != 0) text += ", and MaxClients connections wait for a slot already";
    return refuse(c, 503, text.c_str(), "Retry-After: 2\r\n");
  }
  unwatch(c);
  c.deadline = now_ms() + static_cast<int64_t>(sc.queue_timeout) * 1000;
  queued_.splice(queued_.end(), list_of(c), c.self);
  c.stage = Stage::queued;
  p.queued++;
  update_reading();
}

// Queued connections, oldest first, take the slots given back: by this acceptor's workers as they say they
// are idle, by other acceptors' workers as found every kQueueRetryMs. A slot alone is not enough while
// workers of the vhost here are busy: the connection goes with an idle one, or as the one connection of
// the vhost that waits for the next busy one to be back. Admitted without a worker, each would wait
// kSpawnAfterWaitMs and have one forked, and the other acceptor's idle workers, whose slots they took,
// would be retired again.
void Acceptor::admit_queued() {
  const ServerConfig& sc = rt_.config->server;
  std::vector<const VHost*> full;  // found at their limit in this pass: their later connections stay queued
  for (auto it = queued_.begin(); it != queued_.end();) {
    PendingConn& c = *it++;
    if (std::find(full.begin(), full.end(), c.vh) != full.end()) continue;
    const Pool& p = pools_[c.vh];
    if (p.idle.empty() && p.busy > 0 && p.waiting > 0) {
      full.push_back(c.vh);
      continue;
    }
    // The counts are read first, so that a full queue costs no write to shared memory or to the cgroup tree.
    if (ctx_.sb->workers.load(std::memory_order_relaxed) >= sc.max_clients) return;
    const uint32_t slot = rt_.state(*c.vh).slot % kMaxVHostSlots;
    if (c.vh->max_clients_vhost &&
        ctx_.sb->vhost_workers[slot].load(std::memory_order_relaxed) >= c.vh->max_clients_vhost) {
      full.push_back(c.vh);
      continue;
    }
    const Admission a = reserve(c);
    if (a == Admission::server_full) return;
    if (a != Admission::admitted) {
      full.push_back(c.vh);
      continue;
    }
    to_worker(c);  // out of queued_: `it` stays valid
  }
}

// Which limit keeps a queued connection out, for its refusal's log line.
const char* Acceptor::limit_reached() const {
  return ctx_.sb->workers.load(std::memory_order_relaxed) >= rt_.config->server.max_clients
             ? "server at MaxClients for QueueTimeout"
             : "vhost at MaxClientsVHost for QueueTimeout";
}

bool Acceptor::place_in_cgroup(const VHost& vh, std::string& leaf, bool& full) {
  const std::string vdir = cgroup_vhost_dir(*ctx_.cgroups, vh);
  const int max = static_cast<int>(vh.max_clients_vhost);
  if (max && cgroup_vhost_connections(*ctx_.cgroups, vh) >= max) {
    full = true;
    return false;
  }
  // Named by this acceptor's pid, so that the master can tell the leaves of an acceptor that died.
  leaf = vdir + strprintf("/c%d-%llu", static_cast<int>(getpid()), static_cast<unsigned long long>(++leaves_made_));
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

// The connection goes to the most recently idle worker of its vhost. False when there is none (or none
// that is still there).
bool Acceptor::hand_to_spare(PendingConn& c) {
  Pool& p = pools_[c.vh];
  while (!p.idle.empty()) {
    pid_t pid = p.idle.back();
    p.idle.pop_back();
    spare_count_--;
    publish_spares(c.vh);
    auto it = workers_.find(pid);
    if (it == workers_.end()) continue;
    WorkerInfo& w = it->second;
    w.idle = false;
    p.busy++;
    // A leaf removed under the connection is made again: retiring the worker would not bring it back, and
    // every worker forked for the connection would fail the same way.
    bool moved = c.leaf.empty() || cgroup_move(c.leaf, pid);
    if (!moved && access(c.leaf.c_str(), F_OK) != 0 && mkdir(c.leaf.c_str(), 0755) == 0)
      moved = cgroup_move(c.leaf, pid);
    if (!moved) {
      log(Level::err, "cannot move worker %d into %s: %s; retiring it", pid, c.leaf.c_str(), strerror(errno));
      retire(pid);
      ask_for_workers(c.vh);
      continue;
    }
    // The pid first: the worker gives the entry back itself, by pid, when the connection ends.
    scoreboard_set_pid(*ctx_.sb, c.entry, pid);
    Handoff h;
    h.entry = c.entry;
    h.flags = c.https ? kHandoffTls : 0;
    h.addrs = c.addrs;
    h.bytes = c.https ? std::string() : c.buf;
    bool sent = handoff_send(w.ctl.get(), c.fd.get(), h);
    if (!h.bytes.empty()) OPENSSL_cleanse(h.bytes.data(), h.bytes.size());
    if (!sent) {
      scoreboard_set_pid(*ctx_.sb, c.entry, -1);
      if (!c.leaf.empty()) (void)cgroup_move(cgroup_spare_dir(*ctx_.cgroups, *c.vh), pid);
      retire(pid);
      continue;
    }
    w.entry = c.entry;
    w.has_entry = true;
    w.leaf = std::move(c.leaf);
    c.admitted = false;  // the worker has what admission reserved
    uncount(c);
    unwatch(c);
    uncharge(c);
    if (!c.buf.empty()) OPENSSL_cleanse(c.buf.data(), c.buf.size());
    list_of(c).erase(c.self);
    p.peak = std::max(p.peak, p.busy + p.waiting);
    update_reading();
    return true;
  }
  return false;
}

// Out of the epoll set (its events would only repeat) until a worker takes it or its wait ends.
void Acceptor::wait_for_worker(PendingConn& c) {
  unwatch(c);
  uncount(c);
  c.waiting_since = now_ms();
  c.deadline = c.waiting_since + kWorkerWaitMs;
  waiting_.splice(waiting_.end(), list_of(c), c.self);
  c.stage = Stage::waiting;
  Pool& p = pools_[c.vh];
  if (p.waiting++ == 0) p.waiting_since = c.waiting_since;
  update_reading();
}

// Waiting connections of `vh` go, oldest first, to its idle workers.
void Acceptor::serve_waiting(const VHost* vh) {
  Pool& p = pools_[vh];
  for (auto it = waiting_.begin(); it != waiting_.end() && p.waiting > 0 && !p.idle.empty();) {
    PendingConn& c = *it++;
    if (c.vh == vh) (void)hand_to_spare(c);
  }
}

// The vhost's idle workers, as `itkctl status` counts them: this acceptor's pair for the vhost's slot in
// its scoreboard entry, taken while it has any and given back when it has none.
void Acceptor::publish_spares(const VHost* vh) {
  Pool& p = pools_[vh];
  AcceptorEntry& e = ctx_.sb->acceptors[index_];
  const auto n = static_cast<uint32_t>(p.idle.size());
  if (p.spare_pair < 0) {
    if (n == 0) return;
    for (uint32_t i = 0; i < kMaxSparesPerAcceptor && p.spare_pair < 0; i++) {
      if (e.spares[i].slot_plus_one.load(std::memory_order_relaxed) != 0) continue;
      e.spares[i].count.store(0, std::memory_order_relaxed);
      e.spares[i].slot_plus_one.store(rt_.state(*vh).slot % kMaxVHostSlots + 1, std::memory_order_relaxed);
      p.spare_pair = static_cast<int>(i);
    }
    if (p.spare_pair < 0) return;  // one more vhost with spares than pairs, for a moment: not shown
  }
  SpareCount& sc = e.spares[p.spare_pair];
  sc.count.store(n, std::memory_order_relaxed);
  if (n == 0) {
    sc.slot_plus_one.store(0, std::memory_order_relaxed);
    p.spare_pair = -1;
  }
}

// Busy workers of the vhost that have ended their connection (their scoreboard entry is no longer theirs)
// and are about to say they are idle.
unsigned Acceptor::returning(const VHost* vh) const {
  unsigned n = 0;
  for (const auto& [pid, w] : workers_)
    if (w.vh == vh && !w.idle && w.has_entry &&
        ctx_.sb->worker_table[w.entry % kMaxWorkers].pid.load(std::memory_order_relaxed) != pid)
      n++;
  return n;
}

// Keeps a vhost's idle workers at what its recent concurrency asks for (a quarter of the peak, plus one, for
// a vhost that had any connection in the last 5-10 s; none for one that had none) plus one per waiting
// connection. The spawner forks them outside this loop, ahead of the connections that will need them.
void Acceptor::ask_for_workers(const VHost* vh) {
  if (spawner_gone_) return;
  Pool& p = pools_[vh];
  const unsigned load = std::max(p.peak, p.previous_peak);
  const size_t cap = vh->max_clients_vhost ? std::min<size_t>(kMaxSparesPerVHost, vh->max_clients_vhost)
                                           : kMaxSparesPerVHost;
  const size_t target = load ? std::min<size_t>(cap, load / 4 + 1) : 0;
  // A vhost with no busy worker has nothing that will free up: its waiting connections need new ones now.
  const bool overdue = p.waiting && (p.busy == 0 || now_ms() - p.waiting_since >= kSpawnAfterWaitMs);
  // Ahead of demand, the busy workers count as spares to come: under load each is back within a request
  // (a fork is dearer than the wait), and a connection that waits too long for one is forked for.
  const size_t want = overdue ? target + p.waiting : target;
  // Overdue, still those busy workers whose connection has ended count: under load a worker may wait tens of
  // milliseconds for a CPU between giving back its slot and saying it is idle, and forking for each would
  // only add to the processes that wait for one.
  const size_t have = p.idle.size() + p.requested + (overdue ? returning(vh) : p.busy);
  if (have >= want || (stopping_ && p.waiting == 0)) return;
  // No more workers idle or on the way than connections that may still come to them: those waiting, and as
  // many more as MaxClientsVHost and MaxClients admit. Past the limit a spare would only be retired again
  // (at 256 clients of one vhost, a fork every 10 ms).
  const auto room = [](unsigned limit, uint32_t used) { return limit > used ? limit - used : 0u; };
  const Scoreboard& sb = *ctx_.sb;
  unsigned admissible = room(rt_.config->server.max_clients, sb.workers.load(std::memory_order_relaxed));
  if (vh->max_clients_vhost)
    admissible = std::min(admissible, room(vh->max_clients_vhost, sb.vhost_workers[rt_.state(*vh).slot % kMaxVHostSlots]
                                                                      .load(std::memory_order_relaxed)));
  const size_t bound = p.waiting + admissible;
  const size_t on_hand = p.idle.size() + p.requested;
  if (on_hand >= bound) return;
  SpawnRequest r;
  r.vhost = static_cast<uint32_t>(vh - rt_.config->vhosts.data());
  r.count = static_cast<uint32_t>(std::min<size_t>({want - have, bound - on_hand, kMaxSpawnPerRequest}));
  if (spawn_send_request(spawner_, r) == 0) p.requested += r.count;
}

// New workers from the spawner (or its failure to make one).
void Acceptor::on_spawner() {
  for (;;) {
    SpawnReply m;
    unique_fd ctl;
    int r = spawn_recv_reply(spawner_, m, ctl);
    if (r == -EAGAIN) return;
    if (r <= 0 || m.vhost >= rt_.config->vhosts.size() || (m.pid > 0) != static_cast<bool>(ctl)) {
      log(Level::err, "the spawner's channel %s; no new workers", r == 0 ? "closed" : "failed");
      spawner_gone_ = true;
      (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, spawner_, nullptr);
      // Nobody can take them now: answered 503 (or closed, on TLS) instead of waiting out their time.
      while (!waiting_.empty()) refuse(waiting_.front(), 503, "no worker can be started", "Retry-After: 2\r\n");
      return;
    }
    const VHost* vh = &rt_.config->vhosts[m.vhost];
    Pool& p = pools_[vh];
    if (p.requested) p.requested--;
    if (m.pid <= 0) {
      // Fork failed (memory, pids.max): the oldest waiting connection of the vhost is answered now.
      for (PendingConn& c : waiting_) {
        if (c.vh != vh) continue;
        refuse(c, 503, "no worker could be started for the vhost", "Retry-After: 2\r\n");
        break;
      }
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(m.pid) << 3 | kWorkerTag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ctl.get(), &ev) < 0) continue;  // closing it ends the worker
    WorkerInfo& w = workers_[m.pid];
    w.vh = vh;
    w.ctl = std::move(ctl);
    w.idle = true;
    w.idle_since = now_ms();
    // Coldest end: a worker that has served before (warm caches) is preferred, and a new one retired first.
    p.idle.insert(p.idle.begin(), m.pid);
    spare_count_++;
    publish_spares(vh);
    serve_waiting(vh);
  }
}

// A worker says its connection is done (it waits as a spare for the next one, out of the counts), or its
// channel ended (it exited).
void Acceptor::on_worker_message(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo& w = it->second;
  if (!handoff_read_idle(w.ctl.get()) || w.idle) return worker_gone(pid);
  Pool& p = pools_[w.vh];
  p.busy--;
  if (!w.leaf.empty()) {
    // Out of its connection's cgroup first; then the leaf and whatever the connection left running go.
    if (!cgroup_move(cgroup_spare_dir(*ctx_.cgroups, *w.vh), pid)) {
      p.busy++;
      return worker_gone(pid);
    }
    if (!cgroup_kill_and_remove(w.leaf)) dying_leaves_.push_back(w.leaf);
    w.leaf.clear();
  }
  if (w.has_entry) scoreboard_release_own(*ctx_.sb, w.entry, pid);
  w.has_entry = false;
  w.idle = true;
  w.idle_since = now_ms();
  p.idle.push_back(pid);
  spare_count_++;
  publish_spares(w.vh);
  const size_t cap = w.vh->max_clients_vhost ? std::min<size_t>(kMaxSpares, w.vh->max_clients_vhost) : kMaxSpares;
  if (p.waiting) return serve_waiting(w.vh);
  if (!queued_.empty()) {
    // Its slot is free: the oldest queued connection takes it (this worker, if of the same vhost).
    admit_queued();
    auto again = workers_.find(pid);
    if (again == workers_.end() || !again->second.idle) return;
  }
  if (stopping_) retire(pid);
  else if (p.idle.size() > cap || spare_count_ > kMaxSpares) retire(p.idle.front());  // the coldest goes
}

// The worker exited (or broke its channel): what it held is given back.
void Acceptor::worker_gone(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo& w = it->second;
  if (w.has_entry) scoreboard_release_own(*ctx_.sb, w.entry, pid);
  // Whatever the connection started (a daemonized CGI child included) ends with it.
  if (!w.leaf.empty() && !cgroup_kill_and_remove(w.leaf)) dying_leaves_.push_back(w.leaf);
  const VHost* vh = w.vh;
  retire(pid);
  if (pools_[vh].waiting) ask_for_workers(vh);
}

// Forgets a worker and closes its channel, which ends an idle one: it is waiting for a connection, or will find
// the channel closed.
void Acceptor::retire(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  WorkerInfo& w = it->second;
  Pool& p = pools_[w.vh];
  if (w.idle) {
    if (auto i = std::find(p.idle.begin(), p.idle.end(), pid); i != p.idle.end()) {
      p.idle.erase(i);
      spare_count_--;
      publish_spares(w.vh);
    }
  } else if (p.busy) {
    p.busy--;
  }
  workers_.erase(it);
}

void Acceptor::expire(int64_t now) {
  if (now >= window_end_) {
    window_end_ = now + kLoadWindowMs;
    for (auto& [vh, p] : pools_) {
      p.previous_peak = p.peak;
      p.peak = p.busy + p.waiting;
    }
  }
  for (auto& [vh, p] : pools_) {
    if (p.waiting && now - p.waiting_since >= kSpawnAfterWaitMs) ask_for_workers(vh);
    // Oldest first: a spare idle past kSpareIdleMs goes once more are idle than the load asks for, one per
    // kRetireEveryMs (all at once when stopping).
    const unsigned load = std::max(p.peak, p.previous_peak);
    const size_t keep = stopping_ ? 0 : load ? load / 4 + 1 : 0;
    while (p.idle.size() > keep && (stopping_ || now - p.retired_at >= kRetireEveryMs)) {
      auto it = workers_.find(p.idle.front());
      if (it != workers_.end() && now - it->second.idle_since < kSpareIdleMs && !stopping_) break;
      retire(p.idle.front());
      if (it != workers_.end()) p.retired_at = now;
    }
  }
  for (auto it = dying_leaves_.begin(); it != dying_leaves_.end();)
    it = cgroup_kill_and_remove(*it) ? dying_leaves_.erase(it) : std::next(it);
  while (!reading_.empty() && reading_.front().deadline <= now)
    refuse(reading_.front(), 408, "head not complete within RequestReadTimeout");
  // One more look for a slot before the oldest are refused.
  if (!queued_.empty()) admit_queued();
  while (!queued_.empty() && queued_.front().deadline <= now) {
    PendingConn& c = queued_.front();
    scoreboard_count_refused(*ctx_.sb, rt_.state(*c.vh).slot);
    refuse(c, 503, limit_reached(), "Retry-After: 2\r\n");
  }
  while (!waiting_.empty() && waiting_.front().deadline <= now)
    refuse(waiting_.front(), 503, "no worker of the vhost became free in time", "Retry-After: 2\r\n");
  while (!lingering_.empty() && lingering_.front().deadline <= now) close_conn(lingering_.front());
  update_reading();
}

void Acceptor::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  for (const Listener& l : *ctx_.listeners) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, l.fd, nullptr);
  // Spares end now; busy workers finish their connection (the master signals them on a full stop) and are
  // retired when they say they are idle.
  std::vector<pid_t> idle;
  for (auto& [pid, w] : workers_)
    if (w.idle) idle.push_back(pid);
  for (pid_t pid : idle) retire(pid);
}

void Acceptor::run() {
  setup();
  epoll_event events[64];
  for (;;) {
    // A stopping acceptor stays until its busy workers are done: it removes their connections' cgroups.
    if (stopping_ && reading_.empty() && queued_.empty() && waiting_.empty() && lingering_.empty() &&
        workers_.empty())
      _exit(0);
    int64_t now = now_ms();
    int64_t next = std::min(now + 60000, window_end_);
    for (auto* list : {&reading_, &queued_, &waiting_, &lingering_})
      if (!list->empty()) next = std::min(next, list->front().deadline);
    if (!queued_.empty()) next = std::min(next, now + kQueueRetryMs);
    if (accept_paused_until_ > now) next = std::min(next, accept_paused_until_);
    if (spare_count_ > 0 || !dying_leaves_.empty()) next = std::min(next, now + 1000);
    // The first wait to become overdue (one that is already was asked for in expire(); waking for it again
    // would spin until a worker comes).
    for (const PendingConn& c : waiting_)
      if (c.waiting_since + kSpawnAfterWaitMs > now) {
        next = std::min(next, c.waiting_since + kSpawnAfterWaitMs);
        break;
      }
    int timeout = static_cast<int>(std::max<int64_t>(0, next - now));
    int n = epoll_wait(epoll_.get(), events, 64, timeout);
    if (n < 0 && errno != EINTR) {
      log(Level::err, "epoll_wait failed: %s", strerror(errno));
      _exit(1);
    }
    // Workers that became idle first: a connection accepted in the same batch then finds one of them
    // instead of waiting (and asking for a fork).
    for (int i = 0; i < n; i++)
      if ((events[i].data.u64 & 7) == kWorkerTag) on_worker_message(static_cast<pid_t>(events[i].data.u64 >> 3));
    for (int i = 0; i < n; i++) {
      epoll_event& ev = events[i];
      if (ev.data.u64 == 0) {
        signalfd_siginfo si;
        while (read(sigfd_.get(), &si, sizeof si) == sizeof si) begin_stop();
      } else if (ev.data.u64 == kSpawnerTag) {
        on_spawner();
      } else if (ev.data.u64 & 1) {
        accept_ready(static_cast<int>(ev.data.u64 >> 2), (ev.data.u64 & 2) != 0);
      } else if ((ev.data.u64 & 7) == kWorkerTag) {
        continue;  // done above
      } else {
        auto* c = static_cast<PendingConn*>(ev.data.ptr);
        // A connection closed earlier in this batch cannot appear: each event refers to a distinct fd,
        // and only the event's own connection is closed while handling it.
        if (ev.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->peer_closed = true;
        if (ev.events & EPOLLOUT) on_writable(*c);
        else on_readable(*c);
      }
    }
    expire(now_ms());
  }
}

}  // namespace

[[noreturn]] void acceptor_main(const ProcessContext& ctx, uint32_t index, int spawner_fd) {
  // Descriptors: stdio, the listeners (where systemd put them) and, right above them, the spawner's channel
  // and the log files (each vhost's access log, for the lines of the requests it refuses).
  int spawner = 3;
  for (const Listener& l : *ctx.listeners) spawner = std::max(spawner, l.fd + 1);
  std::vector<std::pair<int, int>> moves{{spawner_fd, spawner}};
  // Access logs only: an acceptor writes no error log line.
  std::vector<bool> keep(ctx.logs.fds.size(), false);
  for (const LogFds::Files& f : ctx.logs.vhosts)
    if (f.access >= 0) keep[static_cast<size_t>(f.access)] = true;
  if (ctx.logs.server.access >= 0) keep[static_cast<size_t>(ctx.logs.server.access)] = true;
  ProcessContext mine = ctx;
  mine.logs = ctx.logs.renumbered(keep, spawner + 1, moves);
  if (!arrange_descriptors(moves, spawner + static_cast<int>(moves.size()))) _exit(1);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (ctx.cgroups && ctx.cgroups->enabled && !cgroup_join(ctx.cgroups->serving + "/acceptors"))
    log(Level::err, "cannot move acceptor into %s/acceptors: %s", ctx.cgroups->serving.c_str(), strerror(errno));
  // This frame never returns, so the acceptor may keep referring to `mine`.
  Acceptor a(mine, index, spawner);
  a.run();
}

}  // namespace itk

// Worker role: drop to the vhost's user, then serve the connection's requests until it closes,
// times out, or asks for a vhost of another identity.
#include "worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <openssl/crypto.h>

#include "cgi.h"
#include "fastcgi.h"
#include "handoff.h"
#include "client_conn.h"
#include "http_response.h"
#include "io.h"
#include "log.h"
#include "privileges.h"
#include "static_file.h"
#include "static_handler.h"
#include "tls.h"
#include "unique_fd.h"

namespace itk {
namespace {

enum class Next { request, closed, timeout, error, stopping };

// A worker that waits for its acceptor's next connection gives up after this long (the acceptor
// usually retires it sooner), and serves at most this many connections before it exits.
constexpr int64_t kSpareWaitMs = 60000;
constexpr unsigned kMaxConnectionsPerWorker = 10000;
// How long a finished connection is drained before it is closed, and how many are at once.
constexpr int kLingerMs = 2000;
constexpr size_t kMaxLingering = 8;

// Waits for `fd` to be readable for at most `ms`; SIGTERM (blocked otherwise) interrupts the wait,
// so a graceful stop never waits out a keep-alive timeout.
int wait_readable(int fd, int64_t ms, const sigset_t& during) {
  pollfd p{fd, POLLIN, 0};
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  return ppoll(&p, 1, &ts, &during);
}

struct Conn {
  ClientConn& io;
  std::string buf;  // unparsed bytes; starts with the next request
  const sigset_t* wait_mask;
  bool stopping = false;  // SIGTERM arrived: finish the request in hand, then close
};

// Reads the next request head into `parser`. Idle wait before its first byte: KeepAliveTimeout;
// the whole head then has RequestReadTimeout, as in the acceptor.
Next read_next(Conn& c, HeadParser& parser, const ServerConfig& sc) {
  int64_t idle_deadline = now_ms() + static_cast<int64_t>(sc.keep_alive_timeout) * 1000;
  int64_t head_deadline = 0;
  for (;;) {
    if (!c.buf.empty()) {
      if (head_deadline == 0) head_deadline = now_ms() + static_cast<int64_t>(sc.request_read_timeout) * 1000;
      HeadState st = parser.parse(c.buf);
      if (st == HeadState::complete) return Next::request;
      if (st == HeadState::error) return Next::error;
    } else if (c.stopping) {
      return Next::stopping;
    }
    int64_t left = (head_deadline ? head_deadline : idle_deadline) - now_ms();
    if (left <= 0) return c.buf.empty() ? Next::closed : Next::timeout;
    int r = conn_buffered(c.io) > 0 ? 1 : wait_readable(c.io.fd, left, *c.wait_mask);
    if (r < 0 && errno == EINTR) {
      // Only SIGTERM is unblocked during the wait, so EINTR means a graceful stop was asked for.
      c.stopping = true;
      if (c.buf.empty()) return Next::stopping;
      continue;  // a head already begun is finished, then served, then the connection closes
    }
    if (r <= 0) continue;  // the deadline check above decides
    char tmp[16384];
    ssize_t n = conn_read(c.io, tmp, sizeof tmp);
    if (n == 0) return Next::closed;
    if (n < 0) {
      if (errno == EAGAIN) continue;
      return Next::closed;
    }
    c.buf.append(tmp, static_cast<size_t>(n));
  }
}

// One request: a script when the vhost has CGI and the path names one, else a static file.
// A script's local redirect (Location: /path without Status) is served as a GET of that path.
ResponseOutcome serve(const Runtime& rt, Scoreboard& sb, const VHost& vh, int root_fd, const RequestHead& head,
                      ClientConn& io, std::string& buffered, bool keep_alive, bool in_leaf) {
  if (vh.cgi_extensions.empty() && vh.handlers.empty() && vh.fastcgi.apps.empty())
    return serve_static(rt, vh, root_fd, head, io, keep_alive && !head.has_body());
  RequestHead current = head;
  for (int hop = 0; hop < 10; hop++) {
    std::optional<std::string> path = decode_request_path(current.target);
    ScriptMatch m = path ? match_script(root_fd, *path, vh) : ScriptMatch{};
    if (m.kind != ScriptMatch::script) break;
    CgiOutcome o = m.fastcgi ? run_fastcgi(rt, vh, current, m, io, buffered, keep_alive,
                                           sb.fastcgi_activity[vh.slot % kMaxVHostSlots])
                             : run_cgi(rt, vh, current, m, io, buffered, keep_alive, in_leaf);
    if (o.local_redirect.empty()) return o.response;
    keep_alive = keep_alive && o.response.keep_alive;
    // RFC 3875 §6.2.2: the server serves the new path itself, as a GET without the original body.
    current.method = "GET";
    current.target = o.local_redirect;
    current.content_length.reset();
    current.chunked = false;
    current.expect_continue = false;
    std::erase_if(current.headers, [](const auto& h) {
      return h.first == "content-length" || h.first == "transfer-encoding" || h.first == "content-type";
    });
    if (hop == 9) {
      log(Level::err, "more than 10 local redirects from scripts, starting at %s", head.target.c_str());
      return {conn_write_all(io, error_response(500, false)), 500, false};
    }
  }
  return serve_static(rt, vh, root_fd, current, io, keep_alive && !current.has_body());
}

// A worker can only ever be one identity (user, groups, nice value).
bool same_identity(const VHost& a, const VHost& b) {
  return a.identity == b.identity && a.has_nice == b.has_nice && (!a.has_nice || a.nice_value == b.nice_value);
}

// The worker's socket options: blocking, bounded writes, no Nagle delay.
void prepare_socket(int fd, const ServerConfig& sc) {
  timeval tv{static_cast<time_t>(sc.timeout), 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

// Serves the requests of one connection, starting with `head` for `vh`, until it closes, times out,
// or asks for a vhost of another identity than `vh`'s.
template <typename RootOf>
void serve_connection(const ProcessContext& ctx, Conn& c, RequestHead head, const VHost* vh, RootOf& root_of) {
  const Runtime& rt = *ctx.rt;
  const ServerConfig& sc = rt.config->server;
  ClientConn& io = c.io;
  const VHost* first = vh;
  unsigned served = 0;

  for (;;) {
    served++;
    bool keep = head.keep_alive && sc.keep_alive_timeout > 0 &&
                (sc.max_keep_alive_requests == 0 || served < sc.max_keep_alive_requests) && !c.stopping;
    ResponseOutcome r = serve(rt, *ctx.sb, *vh, root_of(vh), head, io, c.buf, keep, ctx.cgroups && ctx.cgroups->enabled);
    ctx.sb->served.fetch_add(1, std::memory_order_relaxed);
    if (!r.ok || !r.keep_alive) break;

    HeadParser parser(rt.limits);
    Next next = read_next(c, parser, sc);
    if (next == Next::error || next == Next::timeout) {
      int status = next == Next::timeout ? 408 : parser.error_status();
      log(Level::info, "request refused with %d: %s", status,
          next == Next::timeout ? "head not complete within RequestReadTimeout" : parser.error_reason().c_str());
      (void)conn_write_all(io, error_response(status, false));
      ctx.sb->served.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    if (next != Next::request) break;
    head = parser.head();
    c.buf.erase(0, parser.head_length());
    const VHost* target = rt.vhosts.lookup(head.host);
    if (!head.host.empty() && VHostTable::normalize_host(head.host).empty()) {
      (void)conn_write_all(io, error_response(400, false));
      break;
    }
    if (io.tls && tls_misdirected(rt.vhosts, io.server_name, target)) {
      (void)conn_write_all(io, error_response(421, false));
      ctx.sb->served.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    // A worker can only ever be one identity; mpm-itk closes here too and clients retry on a new connection.
    if (!same_identity(*target, *first)) break;
    vh = target;
  }
}

// A plain connection whose last response is written: its write side is shut (the client sees the
// end), and it stays open, drained, until the client closes or kLingerMs passes, so that a client still
// sending gets no RST that would destroy the response it has not read. Meanwhile the worker already
// says it is idle, and may serve the next connection.
struct Lingering {
  unique_fd fd;
  int64_t until = 0;
  size_t drained = 0;
};

void linger_later(ClientConn& io, std::vector<Lingering>& lingering) {
  (void)shutdown(io.fd, SHUT_WR);
  // Off fd 3, which the next connection takes.
  int moved = fcntl(io.fd, F_DUPFD_CLOEXEC, 5);
  (void)close(io.fd);
  io.fd = -1;
  if (moved < 0) return;
  if (lingering.size() >= kMaxLingering) lingering.erase(lingering.begin());
  lingering.push_back({unique_fd(moved), now_ms() + kLingerMs, 0});
}

// Reads and drops what a lingering client still sends. False when it is done with: closed, failed,
// or more than a client may send after its last response.
bool drain(Lingering& l) {
  char sink[16384];
  for (;;) {
    ssize_t n = recv(l.fd.get(), sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) {
      l.drained += static_cast<size_t>(n);
      if (l.drained > (1u << 20)) return false;
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
  }
}

// Says "idle" and waits for the acceptor's next connection (at most kSpareWaitMs; SIGTERM ends it),
// finishing the lingering connections meanwhile. The new connection's fd, or -1.
int wait_for_connection(int ctl, std::vector<Lingering>& lingering, uint32_t& entry, std::string& bytes,
                        ConnAddrs& addrs, const sigset_t& during) {
  if (!handoff_idle(ctl)) return -1;
  const int64_t give_up = now_ms() + kSpareWaitMs;
  for (;;) {
    int64_t now = now_ms();
    std::erase_if(lingering, [now](const Lingering& l) { return now >= l.until; });
    if (now >= give_up) return -1;
    std::vector<pollfd> fds{{ctl, POLLIN, 0}};
    int64_t wait = give_up - now;
    for (const Lingering& l : lingering) {
      fds.push_back({l.fd.get(), POLLIN, 0});
      wait = std::min(wait, l.until - now);
    }
    timespec ts{static_cast<time_t>(wait / 1000), static_cast<long>((wait % 1000) * 1000000)};
    if (ppoll(fds.data(), fds.size(), &ts, &during) < 0) return -1;  // SIGTERM, or a broken poll
    for (size_t i = fds.size() - 1; i >= 1; i--)
      if (fds[i].revents && !drain(lingering[i - 1])) lingering.erase(lingering.begin() + static_cast<long>(i - 1));
    if (fds[0].revents) return handoff_receive(ctl, entry, addrs, bytes);
  }
}

// SIGTERM is blocked outside waits; the handler only has to exist so that ppoll returns EINTR.
void on_term(int) {}

}  // namespace

[[noreturn]] void worker_main(const ProcessContext& ctx, WorkerStart start) {
  const Runtime& rt = *ctx.rt;
  const ServerConfig& sc = rt.config->server;
  const VHost* first = start.vhost;
  log_set_role("worker " + first->server_name);
  (void)prctl(PR_SET_NAME, "itk-worker", 0, 0, 0);

  // Signals: SIGTERM means "finish the response in hand, then close"; it is delivered only inside waits.
  struct sigaction sa {};
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  (void)sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGHUP, SIG_IGN);
  sigset_t blocked, during_wait;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigprocmask(SIG_SETMASK, &blocked, &during_wait);
  sigdelset(&during_wait, SIGTERM);
  sigdelset(&during_wait, SIGCHLD);

  become_tenant(first->identity, first->has_nice ? std::optional<int>(first->nice_value) : std::nullopt);

  // DocumentRoots are opened as the tenant, who owns them and may remove or close them at any time:
  // then the vhost answers 404/403 (root_fd holds -errno) and the next request tries again, so the
  // site is back as soon as its directory is.
  std::vector<std::pair<const VHost*, unique_fd>> roots;
  auto root_of = [&](const VHost* vh) -> int {
    for (auto& [v, rfd] : roots)
      if (v == vh) return rfd.get();
    unique_fd rfd(open(vh->document_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rfd) {
      int err = errno;
      log(Level::err, "cannot open DocumentRoot %s as uid %u: %s; the vhost's user must be able to enter it",
          vh->document_root.c_str(), static_cast<unsigned>(vh->identity.uid), strerror(err));
      return -err;
    }
    int raw = rfd.get();
    roots.emplace_back(vh, std::move(rfd));
    return raw;
  };

  prepare_socket(start.conn_fd, sc);
  ClientConn io{start.conn_fd};
  io.addrs = start.addrs;
  conn_adopt_tls(io, std::move(start.tls), std::move(start.sni), sc.timeout);  // the TLS session the acceptor established, if this is https
  Conn c{io, std::move(start.buffer), &during_wait};
  c.buf.erase(0, start.head_length);
  // A SIGTERM that came before this point is still pending and ends the connection after this response.
  sigset_t pending;
  if (sigpending(&pending) == 0 && sigismember(&pending, SIGTERM)) c.stopping = true;
  serve_connection(ctx, c, std::move(start.head), first, root_of);
  std::vector<Lingering> lingering;
  if (start.ctl_fd >= 0 && !io.tls) linger_later(io, lingering);
  else conn_finish(io, kLingerMs);

  // Plain HTTP: instead of exiting, wait for the acceptor to hand over the next connection of this
  // vhost (a fork and exit saved per connection). The acceptor ends the wait by closing the channel.
  uint32_t entry = 0;
  bool handed = false;
  for (unsigned handled = 1; start.ctl_fd >= 0 && !c.stopping && handled < kMaxConnectionsPerWorker; handled++) {
    // Not a client any more: out of MaxClients now, not when the acceptor gets to it. Only an entry
    // that came with a hand-over, whose pid the acceptor stored before sending it: the first one's
    // pid is also stored by the acceptor after the fork, which could come after a release here.
    if (handed) scoreboard_release_own(*ctx.sb, entry, getpid());
    OPENSSL_cleanse(c.buf.data(), c.buf.size());
    c.buf.clear();
    int next = wait_for_connection(start.ctl_fd, lingering, entry, c.buf, io.addrs, during_wait);
    if (next < 0) break;
    handed = true;
    // The same number every time, as a forked worker has it.
    if (next != start.conn_fd) {
      if (dup2(next, start.conn_fd) < 0) _exit(1);
      (void)close(next);
    }
    io.fd = start.conn_fd;
    prepare_socket(io.fd, sc);
    HeadParser parser(rt.limits);
    const VHost* vh = parser.parse(c.buf) == HeadState::complete ? rt.vhosts.lookup(parser.head().host) : nullptr;
    // The acceptor parsed the same bytes with the same limits and chose this vhost: anything else
    // is a broken invariant, and the connection is not served by the wrong identity.
    if (!vh || !same_identity(*vh, *first)) {
      log(Level::err, "handed a connection this worker cannot serve; closing it");
      break;
    }
    c.buf.erase(0, parser.head_length());
    serve_connection(ctx, c, parser.head(), vh, root_of);
    linger_later(io, lingering);
  }
  for (Lingering& l : lingering) lingering_close(l.fd.get(), static_cast<int>(std::max<int64_t>(0, l.until - now_ms())));
  _exit(0);
}

}  // namespace itk

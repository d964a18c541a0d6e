// Worker role: drop to the vhost's user, then serve the connections of its vhost that its acceptor hands
// over, one after another (TLS handshake included), each until it closes, times out, or asks for a vhost of
// another identity.
#include "proc/worker.h"

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
#include <ctime>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config/address_range.h"
#include "http/access_rules.h"
#include "http/client_conn.h"
#include "http/http_response.h"
#include "http/static_file.h"
#include "http/static_handler.h"
#include "proc/handoff.h"
#include "proc/scoreboard.h"
#include "proc/request_log.h"
#include "proc/serve_request.h"
#include "script/cgi.h"
#include "script/fastcgi.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/proctitle.h"
#include "sys/privileges.h"
#include "sys/unique_fd.h"
#include "tls/key_client.h"
#include "tls/tls.h"

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
  std::string client;     // the client's address, for the process title
  // The client may still be sending (a body or requests not read, an error answered early): its end is
  // drained before the close, so that no RST destroys the response. nginx's `lingering_close on`.
  bool linger = true;
};

// The process title while a request is served (docs/security.md: what a title shows): method and path,
// never the query string, which may carry tokens or passwords. Memory writes only (the time zone was read
// at start).
void title_request(const Conn& c, const VHost& vh, const RequestHead& head) {
  const time_t t = time(nullptr);
  tm lt{};
  char since[16] = "?";
  if (localtime_r(&t, &lt)) snprintf(since, sizeof since, "%02d:%02d:%02d", lt.tm_hour, lt.tm_min, lt.tm_sec);
  const std::string_view target = std::string_view(head.target).substr(0, head.target.find('?'));
  proctitle_set({"worker", vh.server_name, c.client, head.method, target, "since", since});
}

// Reads the next request head into `parser`. Idle wait before its first byte: KeepAliveTimeout;
// the whole head then has RequestReadTimeout, as in the acceptor.
// With `deadline` (the first request of a TLS connection), the whole head must be there by then instead.
Next read_next(Conn& c, HeadParser& parser, const ServerConfig& sc, int64_t deadline = 0) {
  int64_t idle_deadline = deadline ? deadline : now_ms() + static_cast<int64_t>(sc.keep_alive_timeout) * 1000;
  int64_t head_deadline = deadline;
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

// A request the worker refuses itself (a bad or late head, a misdirected one): said in the journal and
// `vh`'s logs, then answered.
void refuse(const ProcessContext& ctx, const VHost& vh, const RequestHead& head, ClientConn& io, int status,
            const char* why) {
  RequestLog request_log(ctx.logs, *ctx.rt, vh, head, io);
  if (why) log_status(Level::info, status, "request refused with %d: %s", status, why);
  (void)conn_write_all(io, error_response(status, false));
  request_log.finish({true, status, false});
  scoreboard_count_served(*ctx.sb, ctx.rt->state(vh).slot);
}

const char* why_not(Next next, const HeadParser& parser) {
  return next == Next::timeout ? "head not complete within RequestReadTimeout" : parser.error_reason().c_str();
}

// Serves the requests of one connection, starting with `head` for `vh`, until it closes, times out,
// or asks for a vhost of another identity than `vh`'s.
template <typename RootOf>
void serve_connection(const ProcessContext& ctx, Conn& c, RequestHead head, const VHost* vh, RootOf& root_of,
                      AccessCheck& access) {
  const Runtime& rt = *ctx.rt;
  const ServerConfig& sc = rt.config->server;
  ClientConn& io = c.io;
  const VHost* first = vh;
  unsigned served = 0;

  for (;;) {
    served++;
    title_request(c, *vh, head);
    bool keep = head.keep_alive && sc.keep_alive_timeout > 0 &&
                (sc.max_keep_alive_requests == 0 || served < sc.max_keep_alive_requests) && !c.stopping;
    RequestLog request_log(ctx.logs, rt, *vh, head, io);
    ResponseOutcome r = serve_request(rt, *ctx.sb, *vh, root_of(vh), head, io, c.buf, keep,
                                      ctx.cgroups && ctx.cgroups->enabled, access);
    request_log.finish(r);
    scoreboard_count_served(*ctx.sb, rt.state(*vh).slot);
    // A client that asked for this request alone, and whose every byte was read, sends nothing more.
    if (!r.ok || !r.keep_alive) {
      c.linger = r.ok && (head.has_body() || !c.buf.empty());
      break;
    }

    proctitle_set({"worker", vh->server_name, c.client, "keep-alive"});
    HeadParser parser(rt.limits);
    Next next = read_next(c, parser, sc);
    if (next == Next::error || next == Next::timeout) {
      refuse(ctx, *vh, parser.head(), io, next == Next::timeout ? 408 : parser.error_status(), why_not(next, parser));
      break;
    }
    if (next != Next::request) {
      c.linger = next == Next::stopping && !c.buf.empty();
      break;
    }
    head = parser.head();
    c.buf.erase(0, parser.head_length());
    const VHost* target = rt.vhosts.lookup(head.host);
    if (!head.host.empty() && VHostTable::normalize_host(head.host).empty()) {
      refuse(ctx, *vh, head, io, 400, "invalid Host");
      break;
    }
    if (io.tls && tls_misdirected(rt.vhosts, io.server_name, target)) {
      refuse(ctx, *vh, head, io, 421, "Host names another vhost than the TLS server name (SNI)");
      break;
    }
    // A worker can only ever be one identity; mpm-itk closes here too and clients retry on a new connection.
    if (target->identity != first->identity) break;
    vh = target;
  }
}

// A connection whose last response is written, when its client may still be sending (Conn::linger): its
// write side is shut (the client sees the end), and it stays open, drained, until the client closes or
// kLingerMs passes, so that no RST destroys the response it has not read. Meanwhile the worker already
// says it is idle, and may serve the next connection. Any other is closed at once.
struct Lingering {
  unique_fd fd;
  int64_t until = 0;
  size_t drained = 0;
};

void end_connection(ClientConn& io, bool linger, std::vector<Lingering>& lingering) {
  if (!linger) {
    (void)close(io.fd);
    io.fd = -1;
    return;
  }
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

// Says "idle" (unless the acceptor already counts the worker as idle: a new one) and waits for the acceptor's
// next connection (at most kSpareWaitMs; SIGTERM ends it), finishing the lingering connections meanwhile.
// The new connection's fd, or -1.
int wait_for_connection(int ctl, bool say_idle, std::vector<Lingering>& lingering, Handoff& h,
                        const sigset_t& during) {
  if (say_idle && !handoff_idle(ctl)) return -1;
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
    if (fds[0].revents) return handoff_receive(ctl, h);
  }
}

// The TLS handshake of a handed-over connection, on the worker's own blocking socket, bounded as a whole by
// `deadline` (a client that trickles its handshake is a slowloris too). The vhost's certificate is chosen by
// SNI in the ClientHello callback (tls.cc); its signature is made by the key process over this worker's
// channel. False when the handshake failed or timed out (said at info: it is the client's problem).
bool handshake(ClientConn& io, const TlsContexts& contexts, int64_t deadline) {
  SslPtr ssl = tls_new_connection(contexts, io.fd);
  if (!ssl) {
    log(Level::err, "cannot start TLS on a connection: %s", tls_error_text().c_str());
    return false;
  }
  // The socket stays blocking: its BIO reads with MSG_DONTWAIT and sends a flight before it reads the
  // answer (socket_bio.h).
  bool done = false;
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl.get());
    if (r == 1) {
      done = true;
      break;
    }
    int e = SSL_get_error(ssl.get(), r);
    int64_t left = deadline - now_ms();
    if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left <= 0) {
      log(Level::info, "TLS handshake failed: %s",
          left <= 0 ? "not complete within RequestReadTimeout"
                    : e == SSL_ERROR_SSL ? tls_error_text().c_str() : "the connection ended");
      break;
    }
    pollfd p{io.fd, static_cast<short>(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
    (void)poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
  }
  ERR_clear_error();
  BIO* bio = SSL_get_wbio(ssl.get());
  if (!done) {
    (void)socket_bio_flush(bio);  // an alert says why, where there is one
    return false;
  }
  // TLS 1.2 ends with the server's flight, which the client waits for; TLS 1.3 with session tickets only,
  // which wait for the first response and leave with it.
  if (SSL_version(ssl.get()) < TLS1_3_VERSION && !socket_bio_flush(bio)) return false;
  socket_bio_handshake_done(bio);
  std::string sni = tls_server_name(ssl.get());
  conn_adopt_tls(io, std::move(ssl), std::move(sni));
  return true;
}

// The first request of a handed-over connection: parsed from the bytes the acceptor read (plain), or read
// after the handshake (TLS). Answers what it refuses itself. Null when the connection is done with.
const VHost* first_request(const ProcessContext& ctx, Conn& c, const Handoff& h, const VHost& own,
                           RequestHead& head) {
  const Runtime& rt = *ctx.rt;
  const ServerConfig& sc = rt.config->server;
  HeadParser parser(rt.limits);
  const bool tls = (h.flags & kHandoffTls) != 0;
  if (!tls) {
    // The acceptor parsed the same bytes with the same limits and chose this vhost: anything else is a
    // broken invariant, and the connection is not served by the wrong identity.
    const VHost* vh = parser.parse(c.buf) == HeadState::complete ? rt.vhosts.lookup(parser.head().host) : nullptr;
    if (!vh || vh->identity != own.identity) {
      log(Level::err, "handed a connection this worker cannot serve; closing it");
      return nullptr;
    }
    head = parser.head();
    c.buf.erase(0, parser.head_length());
    return vh;
  }
  const int64_t deadline = now_ms() + static_cast<int64_t>(sc.request_read_timeout) * 1000;
  if (!ctx.tls.contexts || !handshake(c.io, *ctx.tls.contexts, deadline)) return nullptr;
  Next next = read_next(c, parser, sc, deadline);
  if (next == Next::error || next == Next::timeout) {
    refuse(ctx, own, parser.head(), c.io, next == Next::timeout ? 408 : parser.error_status(), why_not(next, parser));
    return nullptr;
  }
  if (next != Next::request) return nullptr;
  head = parser.head();
  c.buf.erase(0, parser.head_length());
  if (!head.host.empty() && VHostTable::normalize_host(head.host).empty()) {
    refuse(ctx, own, head, c.io, 400, "invalid Host");
    return nullptr;
  }
  const VHost* vh = rt.vhosts.lookup(head.host);
  if (tls_misdirected(rt.vhosts, c.io.server_name, vh)) {
    refuse(ctx, own, head, c.io, 421, "Host names another vhost than the TLS server name (SNI)");
    return nullptr;
  }
  // The acceptor chose this worker by the SNI name; a Host of another identity is served by no one here,
  // as on a kept-alive connection (the client retries on a new one).
  if (vh->identity != own.identity) return nullptr;
  return vh;
}

// SIGTERM is blocked outside waits; the handler only has to exist so that ppoll returns EINTR.
void on_term(int) {}

// The worker's descriptors: stdio, then kWorkerCtlFd, kWorkerKeyFd and the log files of its identity's
// vhosts from kWorkerFirstLogFd; the connection comes later as kWorkerConnFd. Nothing of the spawner's
// stays: no other tenant's log, no socket of the spawner's. Returns the logs as numbered here.
LogFds arrange_fds(const ProcessContext& ctx, const VHost& own, int ctl_fd, int key_fd) {
  std::vector<std::pair<int, int>> moves{{ctl_fd, kWorkerCtlFd}};
  if (key_fd >= 0) moves.emplace_back(key_fd, kWorkerKeyFd);
  const size_t fixed = moves.size();
  std::vector<bool> keep(ctx.logs.fds.size(), false);
  const std::vector<VHost>& vhosts = ctx.rt->config->vhosts;
  for (size_t i = 0; i < vhosts.size() && i < ctx.logs.vhosts.size(); i++) {
    if (vhosts[i].identity != own.identity) continue;
    for (int f : {ctx.logs.vhosts[i].access, ctx.logs.vhosts[i].error})
      if (f >= 0) keep[static_cast<size_t>(f)] = true;
  }
  LogFds logs = ctx.logs.renumbered(keep, kWorkerFirstLogFd, moves);
  if (!arrange_descriptors(moves, kWorkerFirstLogFd + static_cast<int>(moves.size() - fixed))) _exit(1);
  (void)close(kWorkerConnFd);
  if (key_fd < 0) (void)close(kWorkerKeyFd);
  return logs;
}

}  // namespace

[[noreturn]] void worker_main(const ProcessContext& inherited, const VHost& own, int ctl_fd, int key_fd) {
  ProcessContext ctx = inherited;
  ctx.logs = arrange_fds(inherited, own, ctl_fd, key_fd);
  log_set_role("worker " + own.server_name);
  (void)prctl(PR_SET_NAME, "itk-worker", 0, 0, 0);

  // Signals: SIGTERM means "finish the response in hand, then close"; it is delivered only inside waits.
  struct sigaction sa {};
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  (void)sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  signal(SIGINT, SIG_DFL);
  sigset_t blocked, during_wait;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigprocmask(SIG_SETMASK, &blocked, &during_wait);
  sigdelset(&during_wait, SIGTERM);
  sigdelset(&during_wait, SIGCHLD);
  sigdelset(&during_wait, SIGINT);

  // The spawner has put this process into its vhost's spare/ cgroup before telling the acceptor about it,
  // so it is confined there before any connection can reach it (spawner.cc).
  become_tenant(own.identity);
  if (key_fd >= 0) {
    // The vhost's own session ticket keys, derived by the key process for this channel's vhost only.
    key_client_adopt(kWorkerKeyFd);
    std::string error;
    if (!tls_ticket_keys_load(error))
      log(Level::warning, "no session tickets for %s: %s", own.server_name.c_str(), error.c_str());
  }

  // DocumentRoots are opened as the tenant, who owns them and may remove or close them at any time:
  // then the vhost answers 404/403 and the next request tries again, so the site is back as soon as its
  // directory is. Opened again for each connection, never kept across: a deploy that switches `current`
  // is served from the next connection on, while a kept-alive one finishes with the release it began with.
  std::vector<std::pair<const VHost*, DocRoot>> roots;
  auto root_of = [&](const VHost* vh) -> const DocRoot& {
    for (auto& [v, root] : roots)
      if (v == vh && root.ok()) return root;
    std::erase_if(roots, [vh](const auto& e) { return e.first == vh; });
    DocRoot root = open_doc_root(*vh);
    if (!root.ok())
      log(Level::err, "cannot open DocumentRoot %s%s%s as uid %u: %s; the vhost's user must be able to enter it",
          vh->document_root.c_str(), vh->symlink_root.empty() ? "" : " beneath SymlinkRoot ",
          vh->symlink_root.c_str(), static_cast<unsigned>(vh->identity.uid),
          root.error == EXDEV ? "it leads outside SymlinkRoot" : strerror(root.error));
    return roots.emplace_back(vh, std::move(root)).second;
  };

  // .htaccess files read as the tenant, kept for the worker's life (each is looked at again when what was
  // seen is a second old, and re-read when it changed).
  AccessCheck access;
  const pid_t self = getpid();
  // Connections of this vhost, one after another, as the acceptor hands them over; the acceptor ends the
  // wait by closing the channel.
  ClientConn io;
  Conn c{io, {}, &during_wait, false, {}};
  std::vector<Lingering> lingering;
  Handoff h;
  bool say_idle = false;  // a new worker is idle for its acceptor without saying so
  for (unsigned handled = 0; !c.stopping && handled < kMaxConnectionsPerWorker; handled++) {
    OPENSSL_cleanse(c.buf.data(), c.buf.size());
    c.buf.clear();
    proctitle_set({"worker", own.server_name, "idle"});
    int next = wait_for_connection(kWorkerCtlFd, say_idle, lingering, h, during_wait);
    say_idle = true;
    if (next < 0) break;
    if (next != kWorkerConnFd) {
      if (dup2(next, kWorkerConnFd) < 0) _exit(1);
      (void)close(next);
    }
    io = ClientConn(kWorkerConnFd);
    io.worker = self;
    io.addrs = h.addrs;
    // Asked of the socket once per connection (unless a PROXY header stated them): every request's log
    // entry and script environment read them, and each system call counts on the hot path.
    io.addrs.client = conn_client(io);
    io.addrs.server = conn_server(io);
    c.client = address_text(io.addrs.client);
    c.linger = true;
    c.buf = std::move(h.bytes);
    h.bytes.clear();
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGTERM)) c.stopping = true;
    RequestHead head;
    const VHost* vh = first_request(ctx, c, h, own, head);
    roots.clear();
    if (vh) serve_connection(ctx, c, std::move(head), vh, root_of, access);
    // Not a client any more: out of MaxClients now, not when the acceptor gets to it.
    scoreboard_release_own(*ctx.sb, h.entry, self);
    if (io.tls) conn_close_notify(io);
    end_connection(io, c.linger, lingering);
  }
  for (Lingering& l : lingering) lingering_close(l.fd.get(), static_cast<int>(std::max<int64_t>(0, l.until - now_ms())));
  _exit(0);
}

}  // namespace itk

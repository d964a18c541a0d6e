// Standby: the master, still root, while no configuration has loaded. It never parses a client byte:
// a connection gets a fixed answer and whatever it sent so far is discarded unread, so that closing
// does not reset the answer away. Loads are retried on SIGHUP and on a timer (2 s doubling to 60 s),
// and a failure is logged only when its errors differ from the previous one's.
#include "proc/standby.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/io.h"
#include "sys/log.h"
#include "sys/proctitle.h"
#include "sys/notify.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr int64_t kFirstRetryMs = 2000;
constexpr int64_t kMaxRetryMs = 60000;
// Enough to take a request head or a TLS ClientHello out of the way; a client that sends more gets a
// reset, as from any server that stopped reading.
constexpr size_t kMaxDiscard = 65536;
// Accepts per listener per wake, so one busy port cannot hold up the signals and the other ports.
constexpr int kMaxAcceptsPerWake = 64;

void answer(int lfd, ListenerKind kind, const std::string& response) {
  for (int i = 0; i < kMaxAcceptsPerWake; i++) {
    unique_fd c(accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) return;  // EAGAIN, or a connection that went away: nothing to answer
    if (kind == ListenerKind::http) {
      (void)send(c.get(), response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)shutdown(c.get(), SHUT_WR);
    }
    char sink[4096];
    size_t discarded = 0;
    ssize_t n;
    while (discarded < kMaxDiscard && (n = recv(c.get(), sink, sizeof sink, MSG_DONTWAIT)) > 0)
      discarded += static_cast<size_t>(n);
  }
}

void log_errors(const std::vector<ConfigError>& errors) {
  for (const ConfigError& e : errors) log(Level::err, "%s", e.str().c_str());
  log(Level::err,
      "configuration has %zu error(s); answering 503 until it loads (fix it, then `systemctl reload itk`; "
      "`itkd --check` lists the errors)",
      errors.size());
}

std::string status_line(const std::vector<ConfigError>& errors) {
  return "STATUS=configuration error: " + errors.front().str() + " (" + std::to_string(errors.size()) +
         " in all); answering 503 until it loads";
}

}  // namespace

std::string standby_response() {
  const std::string body = "503 Service Unavailable: the server's configuration has errors.\n";
  return "HTTP/1.1 503 Service Unavailable\r\nServer: itk\r\nRetry-After: 10\r\nContent-Type: text/plain\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

bool same_errors(const std::vector<ConfigError>& a, const std::vector<ConfigError>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const ConfigError& x, const ConfigError& y) { return x.str() == y.str(); });
}

std::unique_ptr<Config> standby_until_loaded(const LoadOptions& opts, const std::vector<Listener>& listeners,
                                             const LoadResult& first) {
  log_set_role("master");
  proctitle_set({"master", "(standby: the configuration does not load)"});
  sigset_t mask;
  sigemptyset(&mask);
  // SIGUSR1 (logrotate's reopen) has nothing to reopen yet, and must not end the process.
  for (int s : {SIGHUP, SIGTERM, SIGINT, SIGUSR1}) sigaddset(&mask, s);
  // Left blocked for the master, which reads the same signals from a signalfd of its own.
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  unique_fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) {
    log(Level::err, "signalfd failed: %s; exiting", strerror(errno));
    return nullptr;
  }
  std::vector<ConfigError> last = first.errors;
  log_errors(last);
  // Started as far as systemd is concerned: `systemctl status` shows the line, and a reload can reach us.
  notify("READY=1\n" + status_line(last));

  const std::string response = standby_response();
  int64_t retry_ms = kFirstRetryMs;
  int64_t next_try = now_ms() + retry_ms;
  for (;;) {
    std::vector<pollfd> fds{{sigfd.get(), POLLIN, 0}};
    for (const Listener& l : listeners) fds.push_back({l.fd, POLLIN, 0});
    int timeout = static_cast<int>(std::max<int64_t>(0, next_try - now_ms()));
    int r = poll(fds.data(), fds.size(), timeout);
    if (r < 0 && errno != EINTR) {
      log(Level::err, "poll failed in standby: %s; exiting", strerror(errno));
      return nullptr;
    }
    bool reload = false;
    if (r > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo si;
      while (read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGHUP) reload = true;
        else if (si.ssi_signo != SIGUSR1) return nullptr;
      }
    }
    for (size_t i = 1; r > 0 && i < fds.size(); i++)
      if (fds[i].revents & POLLIN) answer(listeners[i - 1].fd, listeners[i - 1].kind, response);
    if (!reload && now_ms() < next_try) continue;

    if (reload) notify("RELOADING=1");
    LoadResult again = load_config(opts);
    if (again.errors.empty()) {
      for (const ConfigError& w : again.warnings) log(Level::warning, "%s", w.str().c_str());
      log(Level::notice, "configuration loaded; leaving standby");
      return std::move(again.config);
    }
    // Said again only when something changed (or when asked): a broken file stays one entry in the
    // journal, not one every few seconds.
    if (reload || !same_errors(again.errors, last)) log_errors(again.errors);
    last = std::move(again.errors);
    notify((reload ? "READY=1\n" : "") + status_line(last));
    retry_ms = reload ? kFirstRetryMs : std::min(retry_ms * 2, kMaxRetryMs);
    next_try = now_ms() + retry_ms;
  }
}

}  // namespace itk

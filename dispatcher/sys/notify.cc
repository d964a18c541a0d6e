// sd_notify wrapper and STATUS formatting.
#include "sys/notify.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {

std::string format_status(const StatusCounts& c) {
  std::string s = strprintf("vhosts: %zu, acceptors: %u busy/%u idle, workers: %u, served: %llu, refused: %llu",
                            c.vhosts, c.acceptors_busy, c.acceptors_idle, c.workers,
                            static_cast<unsigned long long>(c.served), static_cast<unsigned long long>(c.refused));
  s += strprintf(", at limit: %u", c.at_limit);
  if (c.fastcgi_shown) s += strprintf(", fastcgi: %zu", c.fastcgi);
  if (!c.cgroups.empty()) s += "; cgroups: " + c.cgroups;
  if (!c.unusable_roots.empty()) {
    // A few names say which sites; the journal has each one's reason.
    constexpr size_t kShown = 3;
    s += "; DocumentRoot unusable: ";
    for (size_t i = 0; i < c.unusable_roots.size() && i < kShown; i++) s += (i ? ", " : "") + c.unusable_roots[i];
    if (c.unusable_roots.size() > kShown) s += strprintf(" and %zu more", c.unusable_roots.size() - kShown);
  }
  if (!c.note.empty()) s += "; " + c.note;
  return s;
}

namespace {

// READY=1, RELOADING=1 and STOPPING=1 wait this long for room in a full receiver, then are dropped: a
// systemd that does not read (or a test that does not) must not hold the master in sendmsg for ever.
constexpr int kNotifyWaitMs = 3000;

// Sends `msg` to $NOTIFY_SOCKET, waiting at most `wait_ms` for room in its queue. 0 when sent or when
// there is no $NOTIFY_SOCKET (not under systemd: nothing to tell), else an errno.
int send_notify(const std::string& msg, int wait_ms) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@')) return 0;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof sa.sun_path) return ENAMETOOLONG;
  memcpy(sa.sun_path, path, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // an abstract socket
  unique_fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno;
  // Connected, so that poll() says when the receiver's queue has room again.
  socklen_t salen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), salen) != 0) return errno;
  const int64_t deadline = now_ms() + wait_ms;
  for (;;) {
    if (send(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(msg.size()))
      return 0;
    if (errno != EAGAIN && errno != EINTR) return errno;
    int64_t left = deadline - now_ms();
    if (left <= 0) return EAGAIN;
    pollfd p{fd.get(), POLLOUT, 0};
    (void)poll(&p, 1, static_cast<int>(left));
  }
}

}  // namespace

void notify(const std::string& state) {
  int err = send_notify(state, kNotifyWaitMs);
  // Only the master notifies; saying once that the channel is broken is enough.
  static bool reported = false;
  if (err && !reported) {
    reported = true;
    log(Level::warning, "sd_notify to $NOTIFY_SOCKET failed: %s; systemd may not see READY/STOPPING/STATUS",
        err == EAGAIN ? "its queue stayed full (the receiver does not read)" : strerror(err));
  }
}

bool notify_status(const std::string& status) { return send_notify("STATUS=" + status, 0) == 0; }

}  // namespace itk

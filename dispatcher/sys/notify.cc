// sd_notify wrapper and STATUS formatting.
#include "sys/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

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

void notify(const std::string& state) {
  int rc = sd_notify(0, state.c_str());
  // Only the master notifies; saying once that the channel is broken is enough.
  static bool reported = false;
  if (rc < 0 && !reported) {
    reported = true;
    log(Level::warning, "sd_notify to $NOTIFY_SOCKET failed: %s; systemd will not see READY/STATUS", strerror(-rc));
  }
}

bool notify_status(const std::string& status) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@')) return true;  // not under systemd: nothing to tell
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof sa.sun_path) return false;
  memcpy(sa.sun_path, path, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // an abstract socket
  unique_fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return false;
  std::string msg = "STATUS=" + status;
  socklen_t salen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  return sendto(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa),
                salen) == static_cast<ssize_t>(msg.size());
}

}  // namespace itk

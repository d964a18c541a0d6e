// sd_notify wrapper and STATUS formatting.
#include "sys/notify.h"

#include <systemd/sd-daemon.h>

#include <cstring>

#include "sys/log.h"

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

}  // namespace itk

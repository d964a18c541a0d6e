// sd_notify messages and the STATUS= line shown by `systemctl status itk`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace itk {

struct StatusCounts {
  size_t vhosts = 0;
  unsigned acceptors_busy = 0;
  unsigned acceptors_idle = 0;
  unsigned workers = 0;
  uint64_t served = 0;
  uint64_t refused = 0;
  unsigned at_limit = 0;  // vhosts at their MaxClientsVHost
  bool fastcgi_shown = false;  // a vhost has FastCGI: the line counts the app processes
  size_t fastcgi = 0;
  std::string cgroups;    // "on", or "off (why)"
  std::vector<std::string> unusable_roots;  // vhosts whose DocumentRoot their user could not enter at the last load
  std::string note;  // e.g. "reload failed: FILE:LINE: ..." ; empty when all is well
};

// "vhosts: 2, acceptors: 0 busy/2 idle, workers: 0, served: 10, refused: 0, at limit: 0[, fastcgi: 3];
//  cgroups: on[; DocumentRoot unusable: a.test, b.test][; NOTE]"
std::string format_status(const StatusCounts& c);

// Sends `state` (e.g. "READY=1\nSTATUS=...") to $NOTIFY_SOCKET if set, waiting at most 3 s for room in a
// full receiver; failures are logged once.
void notify(const std::string& state);
// A STATUS= line alone, sent without ever blocking: a receiver whose queue is full (a busy systemd)
// must not stall the master's loop, which also starts FastCGI apps and reaps children. False when it
// was not delivered (the caller sends it again later); true when there is no $NOTIFY_SOCKET.
bool notify_status(const std::string& status);

}  // namespace itk

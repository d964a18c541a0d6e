// Socket activation: accept only listening stream sockets with the names itk knows ("http", "https").
#include "sys/listen_fds.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "sys/log.h"

namespace itk {

bool collect_listeners(std::vector<Listener>& out, std::string& error) {
  char** names = nullptr;
  int n = sd_listen_fds_with_names(1, &names);
  if (n < 0) {
    error = strprintf("reading the listening sockets from systemd failed: %s", strerror(-n));
    return false;
  }
  if (n == 0) {
    error =
        "no listening sockets were passed in: itkd is socket-activated. Start it with `systemctl start itk.socket` "
        "(the first connection starts itk.service), or by hand with `systemd-socket-activate -l 127.0.0.1:8080 "
        "--fdname=http itkd ...`";
    return false;
  }
  bool ok = true;
  for (int i = 0; i < n; i++) {
    int fd = SD_LISTEN_FDS_START + i;
    std::string name = names && names[i] ? names[i] : "unknown";
    if (names) free(names[i]);
    if (!ok) continue;
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
      error = strprintf("fd %d (%s) is not a listening stream socket; check ListenStream= in the socket unit", fd,
                        name.c_str());
      ok = false;
      continue;
    }
    Listener l;
    l.fd = fd;
    l.name = name;
    // "https" needs a certificate in the configuration; the master checks that before it serves.
    if (name == "http") {
      l.kind = ListenerKind::http;
    } else if (name == "https") {
      l.kind = ListenerKind::https;
    } else {
      error = strprintf("listening socket fd %d is named \"%s\"; itk serves sockets named \"http\" and \"https\" "
                        "(TLS): set FileDescriptorName=http or FileDescriptorName=https in the socket unit "
                        "(systemd-socket-activate: --fdname=http)",
                        fd, name.c_str());
      ok = false;
      continue;
    }
    // Acceptors share these sockets with EPOLLEXCLUSIVE; accept() must never block one of them.
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      error = strprintf("setting O_NONBLOCK on listening fd %d failed: %s", fd, strerror(errno));
      ok = false;
      continue;
    }
    out.push_back(l);
  }
  free(names);
  return ok;
}

bool set_connection_options(const std::vector<Listener>& listeners, unsigned timeout_s, std::string& error) {
  bool ok = true;
  for (const Listener& l : listeners) {
    timeval tv{static_cast<time_t>(timeout_s), 0};
    if (setsockopt(l.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 && ok) {
      error = strprintf("setting SO_SNDTIMEO on listening socket %d (%s) failed: %s", l.fd, l.name.c_str(),
                        strerror(errno));
      ok = false;
    }
    // A unix stream socket has no Nagle to turn off.
    int one = 1;
    (void)setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return ok;
}

}  // namespace itk

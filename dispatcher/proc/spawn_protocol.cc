// The spawner's fixed-size messages: one send and one receive path shared by all three types.
#include "proc/spawn_protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sys/io.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

int send_fixed(int sock, const void* m, size_t size, int fd) {
  iovec iov{const_cast<void*>(m), size};
  ssize_t n;
  if (fd >= 0) {
    n = send_with_fd(sock, &iov, 1, fd, MSG_NOSIGNAL | MSG_DONTWAIT);
  } else {
    do n = send(sock, m, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
  }
  if (n < 0) return -errno;
  return n == static_cast<ssize_t>(size) ? 0 : -EMSGSIZE;
}

// One byte more than the message, so that a longer datagram shows as such instead of being cut to size.
int recv_fixed(int sock, void* m, size_t size, unique_fd& fd, bool fd_allowed) {
  char buf[64];
  iovec iov{buf, size + 1};
  ssize_t n = recv_with_fd(sock, &iov, 1, fd, MSG_DONTWAIT);
  if (n > 0 && (static_cast<size_t>(n) != size || (fd && !fd_allowed))) n = -EBADMSG;
  if (n <= 0) {
    fd.reset();
    return static_cast<int>(n);
  }
  memcpy(m, buf, size);
  return 1;
}

}  // namespace

int spawn_send_acceptor(int sock, const SpawnAcceptor& m, int fd) { return send_fixed(sock, &m, sizeof m, fd); }
int spawn_send_request(int sock, const SpawnRequest& m) { return send_fixed(sock, &m, sizeof m, -1); }
int spawn_send_reply(int sock, const SpawnReply& m, int fd) { return send_fixed(sock, &m, sizeof m, fd); }

int spawn_recv_acceptor(int sock, SpawnAcceptor& m, unique_fd& fd) { return recv_fixed(sock, &m, sizeof m, fd, true); }
int spawn_recv_request(int sock, SpawnRequest& m) {
  unique_fd unused;
  return recv_fixed(sock, &m, sizeof m, unused, false);
}
int spawn_recv_reply(int sock, SpawnReply& m, unique_fd& fd) { return recv_fixed(sock, &m, sizeof m, fd, true); }

}  // namespace itk

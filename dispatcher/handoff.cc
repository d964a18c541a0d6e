// Acceptor <-> worker hand-over of a connection: one SOCK_SEQPACKET message with the fd as
// SCM_RIGHTS and the bytes already read as its payload.
#include "handoff.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io.h"

namespace itk {

namespace {
// The acceptor never holds more than a head's limit plus one read: 64 KiB + 16 KiB.
constexpr size_t kMaxPayload = 128 * 1024;
}  // namespace

bool handoff_send(int ctl, int conn_fd, uint32_t entry, const ConnAddrs& addrs, std::string_view bytes) {
  if (bytes.empty() || bytes.size() > kMaxPayload) {
    errno = EMSGSIZE;
    return false;
  }
  // Member by member into zeroed memory: the struct's padding holds nothing of the acceptor's.
  ConnAddrs a;
  memset(static_cast<void*>(&a), 0, sizeof a);
  a.client = addrs.client;
  a.server = addrs.server;
  a.tls_at_balancer = addrs.tls_at_balancer;
  iovec iov[3] = {{&entry, sizeof entry}, {&a, sizeof a}, {const_cast<char*>(bytes.data()), bytes.size()}};
  ssize_t n = send_with_fd(ctl, iov, 3, conn_fd, MSG_NOSIGNAL | MSG_DONTWAIT);
  return n == static_cast<ssize_t>(sizeof entry + sizeof a + bytes.size());
}

bool handoff_idle(int ctl) {
  const char idle = 'I';
  return send(ctl, &idle, 1, MSG_NOSIGNAL) == 1;
}

int handoff_receive(int ctl, uint32_t& entry, ConnAddrs& addrs, std::string& bytes) {
  bytes.resize(kMaxPayload);
  iovec iov[3] = {{&entry, sizeof entry}, {&addrs, sizeof addrs}, {bytes.data(), bytes.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 3;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  int fd = -1;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); n > 0 && cm; cm = CMSG_NXTHDR(&msg, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  const ssize_t fixed = sizeof entry + sizeof addrs;
  if (n <= fixed || fd < 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (fd >= 0) close(fd);
    bytes.clear();
    return -1;
  }
  bytes.resize(static_cast<size_t>(n - fixed));
  return fd;
}

bool handoff_read_idle(int ctl) {
  char c = 0;
  ssize_t n = recv(ctl, &c, 1, MSG_DONTWAIT);
  return n == 1 && c == 'I';
}

}  // namespace itk

// Acceptor <-> worker hand-over of a connection: one SOCK_SEQPACKET message with the fd as
// SCM_RIGHTS and the bytes already read as its payload.
#include "proc/handoff.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/crypto.h>

#include "sys/io.h"
#include "sys/unique_fd.h"

namespace itk {

namespace {
// The acceptor never holds more than a head's limit plus one read: 64 KiB + 16 KiB.
constexpr size_t kMaxPayload = 128 * 1024;
}  // namespace

bool handoff_send(int ctl, int conn_fd, const Handoff& h) {
  const bool tls = (h.flags & kHandoffTls) != 0;
  if ((!tls && h.bytes.empty()) || (tls && !h.bytes.empty()) || h.bytes.size() > kMaxPayload) {
    errno = EMSGSIZE;
    return false;
  }
  // Member by member into zeroed memory: the struct's padding holds nothing of the acceptor's.
  ConnAddrs a;
  memset(static_cast<void*>(&a), 0, sizeof a);
  a.client = h.addrs.client;
  a.server = h.addrs.server;
  a.tls_at_balancer = h.addrs.tls_at_balancer;
  uint32_t entry = h.entry, flags = h.flags;
  iovec iov[4] = {{&entry, sizeof entry}, {&flags, sizeof flags}, {&a, sizeof a},
                  {const_cast<char*>(h.bytes.data()), h.bytes.size()}};
  ssize_t n = send_with_fd(ctl, iov, 4, conn_fd, MSG_NOSIGNAL | MSG_DONTWAIT);
  return n == static_cast<ssize_t>(sizeof entry + sizeof flags + sizeof a + h.bytes.size());
}

bool handoff_idle(int ctl) {
  const char idle = 'I';
  return send(ctl, &idle, 1, MSG_NOSIGNAL) == 1;
}

int handoff_receive(int ctl, Handoff& h) {
  if (!h.scratch) h.scratch.reset(new char[kMaxPayload]);
  h.bytes.clear();
  iovec iov[4] = {{&h.entry, sizeof h.entry}, {&h.flags, sizeof h.flags}, {&h.addrs, sizeof h.addrs},
                  {h.scratch.get(), kMaxPayload}};
  unique_fd fd;
  ssize_t n = recv_with_fd(ctl, iov, 4, fd, MSG_DONTWAIT);
  const ssize_t fixed = sizeof h.entry + sizeof h.flags + sizeof h.addrs;
  const bool tls = (h.flags & kHandoffTls) != 0;
  const size_t len = n > fixed ? static_cast<size_t>(n - fixed) : 0;
  const bool ok = n >= fixed && fd && (n == fixed) == tls;
  if (ok) h.bytes.assign(h.scratch.get(), len);
  // The kept buffer holds nothing of this client once its bytes are where the connection's are.
  OPENSSL_cleanse(h.scratch.get(), len);
  return ok ? fd.release() : -1;
}

bool handoff_read_idle(int ctl) {
  char c = 0;
  ssize_t n = recv(ctl, &c, 1, MSG_DONTWAIT);
  return n == 1 && c == 'I';
}

}  // namespace itk

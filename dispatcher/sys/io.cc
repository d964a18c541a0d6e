// Socket I/O: full writes, descriptor passing and lingering close.
#include "sys/io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace itk {

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

namespace {

// Repeats `step` (one send or write) until all of `data` is out.
template <typename Step>
SysResult write_all(std::string_view data, Step step) {
  while (!data.empty()) {
    ssize_t n = step(data);
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysResult{errno};
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

SysResult send_all(int fd, std::string_view data, bool more) {
  return write_all(data, [&](std::string_view d) { return send(fd, d.data(), d.size(), MSG_NOSIGNAL | (more ? MSG_MORE : 0)); });
}

SysResult write_all_fd(int fd, std::string_view data) {
  return write_all(data, [&](std::string_view d) { return write(fd, d.data(), d.size()); });
}

bool arrange_descriptors(const std::vector<std::pair<int, int>>& moves, int close_from) {
  // Every source is copied above every target first, so no dup below overwrites a source not yet moved.
  std::vector<int> copies;
  for (const auto& [from, to] : moves) {
    int c = fcntl(from, F_DUPFD_CLOEXEC, close_from);
    if (c < 0) return false;
    copies.push_back(c);
  }
  for (size_t i = 0; i < moves.size(); i++)
    if (dup3(copies[i], moves[i].second, O_CLOEXEC) < 0) return false;
  close_range(static_cast<unsigned>(close_from), ~0U, 0);
  return true;
}

ssize_t send_with_fd(int sock, iovec* iov, size_t iovcnt, int fd, int flags) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = iovcnt;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do n = sendmsg(sock, &mh, flags);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

ssize_t recv_fds(int sock, iovec* iov, size_t iovcnt, std::vector<unique_fd>& fds, int flags) {
  fds.clear();
  // Room for more descriptors than any message of itk carries, so that a sender attaching several
  // cannot leave one open here unseen: each that came is owned by `fds` before anything is checked.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = iovcnt;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      fds.emplace_back(got);
    }
  }
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    fds.clear();
    return -EMSGSIZE;
  }
  return n;
}

ssize_t recv_with_fd(int sock, iovec* iov, size_t iovcnt, unique_fd& fd, int flags) {
  std::vector<unique_fd> fds;
  ssize_t n = recv_fds(sock, iov, iovcnt, fds, flags);
  fd = fds.empty() ? unique_fd() : std::move(fds.front());
  return n;
}

void lingering_close(int fd, int ms) {
  (void)shutdown(fd, SHUT_WR);
  int64_t deadline = now_ms() + ms;
  char sink[16384];
  size_t total = 0;
  while (total < (1u << 20)) {
    int64_t left = deadline - now_ms();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r <= 0) break;
    ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
    if (n > 0) total += static_cast<size_t>(n);
  }
}

}  // namespace itk

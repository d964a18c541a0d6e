// Small blocking/non-blocking socket I/O shared by acceptor and worker, and the error convention of
// itk's system call wrappers: they return -errno or a SysResult, log nothing, and the caller reports.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "sys/unique_fd.h"

namespace itk {

// The outcome of a system call wrapper: 0, or the errno it failed with. True when it succeeded, so
// `if (!write_all_fd(...))` reads as before; errno is left as the failing call set it.
struct [[nodiscard]] SysResult {
  int err = 0;
  explicit operator bool() const { return err == 0; }
};

// Monotonic clock in milliseconds.
int64_t now_ms();

// Writes all of `data` to a blocking socket (SO_SNDTIMEO bounds each wait: EAGAIN).
SysResult send_all(int fd, std::string_view data, bool more = false);

// Writes all of `data` to a file or pipe (blocking).
SysResult write_all_fd(int fd, std::string_view data);

// sendmsg of `iov` with `fd` attached as SCM_RIGHTS, retried on EINTR. Bytes sent, or -errno (errno set too).
[[nodiscard]] ssize_t send_with_fd(int sock, iovec* iov, size_t iovcnt, int fd, int flags);

// recvmsg into `iov` with every descriptor attached (SCM_RIGHTS, close-on-exec) owned by `fds`, retried on
// EINTR: the one place itk receives descriptors. Bytes received, 0 at end of file, or -errno; a truncated
// message or control block is -EMSGSIZE, and any descriptor that came with it is closed.
[[nodiscard]] ssize_t recv_fds(int sock, iovec* iov, size_t iovcnt, std::vector<unique_fd>& fds, int flags);

// recv_fds for messages that carry at most one descriptor: the first is kept in `fd`, any other closed.
[[nodiscard]] ssize_t recv_with_fd(int sock, iovec* iov, size_t iovcnt, unique_fd& fd, int flags);

// A child's descriptor layout right after fork: each (from, to) of `moves` becomes descriptor `to`
// (close-on-exec), then every descriptor from `close_from` up is closed. Targets must be below
// `close_from`; a source may be any descriptor, a target included. False when a dup failed.
[[nodiscard]] bool arrange_descriptors(const std::vector<std::pair<int, int>>& moves, int close_from);

// After the last response: half-close, then read and discard what the client still sends for up to
// `ms`, so a client that is still sending does not get a RST that destroys the response it has not read.
void lingering_close(int fd, int ms);

}  // namespace itk

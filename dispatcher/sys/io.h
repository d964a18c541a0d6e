// Small blocking/non-blocking socket I/O shared by acceptor and worker, and the error convention of
// itk's system call wrappers: they return -errno or a SysResult, log nothing, and the caller reports.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <string_view>

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

// recvmsg into `iov` taking at most one descriptor (SCM_RIGHTS, close-on-exec) into `fd` (-1 when none came),
// retried on EINTR. Bytes received, or -1 with errno; a truncated message or control block is EMSGSIZE and
// any descriptor that came with it is closed. The one place itk receives descriptors.
[[nodiscard]] ssize_t recv_with_fd(int sock, iovec* iov, size_t iovcnt, int& fd, int flags);

// After the last response: half-close, then read and discard what the client still sends for up to
// `ms`, so a client that is still sending does not get a RST that destroys the response it has not read.
void lingering_close(int fd, int ms);

}  // namespace itk

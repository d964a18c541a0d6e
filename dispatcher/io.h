// Small blocking/non-blocking socket I/O helpers shared by acceptor and worker.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <string_view>

namespace itk {

// Monotonic clock in milliseconds.
int64_t now_ms();

// Writes all of `data` to a blocking socket (SO_SNDTIMEO bounds each wait). False on error/timeout.
bool send_all(int fd, std::string_view data, bool more = false);

// Writes all of `data` to a file or pipe (blocking).
bool write_all_fd(int fd, std::string_view data);

// sendmsg of `iov` with `fd` attached as SCM_RIGHTS, retried on EINTR. Bytes sent, or -1 with errno.
ssize_t send_with_fd(int sock, iovec* iov, size_t iovcnt, int fd, int flags);

// After the last response: half-close, then read and discard what the client still sends for up to
// `ms`, so a client that is still sending does not get a RST that destroys the response it has not read.
void lingering_close(int fd, int ms);

}  // namespace itk

// The byte stream of one client connection as the worker sees it: plain TCP today; a TLS
// connection adds its session here, and request handling never needs to know which it is.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

namespace itk {

struct ClientConn {
  int fd = -1;  // blocking socket, SO_SNDTIMEO set by the worker
};

// Non-blocking read: >0 bytes, 0 at end of stream, -1 with errno (EAGAIN: nothing available now).
ssize_t conn_read(ClientConn& c, void* buf, size_t len);
// Bytes already received and buffered inside the connection (a TLS record decrypted ahead);
// a caller must not wait for the socket to become readable while this is non-zero.
size_t conn_buffered(const ClientConn& c);
// Writes all of `data`; `more` says a body follows at once (lets TCP coalesce head and body).
bool conn_write_all(ClientConn& c, std::string_view data, bool more = false);
// Sends `len` bytes of `file` from `offset` (sendfile on plain TCP).
bool conn_send_file(ClientConn& c, int file, uint64_t offset, uint64_t len);
// Ends the connection after the last response: closes the sending side cleanly, then drains what
// the client still sends for up to `linger_ms` so it reads the response instead of a reset.
void conn_finish(ClientConn& c, int linger_ms);

}  // namespace itk

// Client connection I/O for workers.
#include "client_conn.h"

#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>

#include "io.h"

namespace itk {

ssize_t conn_read(ClientConn& c, void* buf, size_t len) {
  ssize_t n;
  do n = recv(c.fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

size_t conn_buffered(const ClientConn&) { return 0; }

bool conn_write_all(ClientConn& c, std::string_view data, bool more) { return send_all(c.fd, data, more); }

bool conn_send_file(ClientConn& c, int file, uint64_t offset, uint64_t len) {
  off_t off = static_cast<off_t>(offset);
  while (len > 0) {
    size_t chunk = len > (1u << 30) ? (1u << 30) : static_cast<size_t>(len);
    ssize_t n = sendfile(c.fd, file, &off, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return false;  // the file shrank under us: the promised length cannot be kept
    len -= static_cast<uint64_t>(n);
  }
  return true;
}

void conn_finish(ClientConn& c, int linger_ms) { lingering_close(c.fd, linger_ms); }

}  // namespace itk

// Client connection I/O for workers: plain sockets, or the inherited TLS session on them.
#include "http/client_conn.h"

#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <climits>

#include "sys/io.h"
#include "tls/socket_bio.h"

namespace itk {

sockaddr_storage conn_client(const ClientConn& c) {
  sockaddr_storage ss = c.addrs.client;
  socklen_t len = sizeof ss;
  if (ss.ss_family == AF_UNSPEC) (void)getpeername(c.fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ss;
}

sockaddr_storage conn_server(const ClientConn& c) {
  sockaddr_storage ss = c.addrs.server;
  socklen_t len = sizeof ss;
  if (ss.ss_family == AF_UNSPEC) (void)getsockname(c.fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ss;
}
namespace {

// A file body is read and encrypted in pieces of this size (four full TLS records).
constexpr size_t kTlsFileChunk = 65536;

bool tls_write_all(ClientConn& c, std::string_view data) {
  SSL* s = c.tls.get();
  while (!data.empty()) {
    if (c.tls_failed) return false;
    ERR_clear_error();
    int n = SSL_write(s, data.data(), static_cast<int>(std::min<size_t>(data.size(), INT_MAX)));
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    int e = SSL_get_error(s, n);
    // Retried only for a signal; EAGAIN on this blocking socket is SO_SNDTIMEO expiring: the client stalled.
    if ((e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) && errno == EINTR) continue;
    if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL) c.tls_failed = true;
    ERR_clear_error();
    return false;
  }
  // The records (and a session ticket still waiting from the handshake) leave in one write().
  if (!socket_bio_flush(SSL_get_wbio(s))) {
    c.tls_failed = true;
    return false;
  }
  return true;
}

// Keeps the head of the first final response written since the worker cleared it, for %{Name}o and %>s.
void note_written(ClientConn& c, std::string_view data) {
  c.bytes_out += data.size();
  // An interim 100 Continue is not the response the log describes.
  if (!c.response_head.empty() || data.substr(0, 7) != "HTTP/1." || data.size() < 10 || data[9] == '1') return;
  size_t end = data.find("\r\n\r\n");
  c.response_head = std::string(data.substr(0, end == std::string_view::npos ? data.size() : end + 4));
}

}  // namespace

void conn_adopt_tls(ClientConn& c, SslPtr tls, std::string server_name) {
  if (!tls) return;
  c.tls = std::move(tls);
  c.server_name = std::move(server_name);
  // SSL_MODE_AUTO_RETRY stays on: after a record without data (a key update) OpenSSL reads on, and as its
  // BIO never blocks, SSL_read says WANT_READ only once nothing complete is left (conn_buffered).
}

ssize_t conn_read(ClientConn& c, void* buf, size_t len) {
  if (c.tls) {
    SSL* s = c.tls.get();
    if (c.tls_failed) return 0;
    // The socket blocks (for writes); its BIO reads with MSG_DONTWAIT (socket_bio.h), so nothing waits here.
    ERR_clear_error();
    c.tls_want_read = false;
    int n = SSL_read(s, buf, static_cast<int>(std::min<size_t>(len, INT_MAX)));
    if (n > 0) return n;
    int e = SSL_get_error(s, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      c.tls_want_read = true;
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
    c.tls_failed = true;
    ERR_clear_error();
    // A client that closes TCP without close_notify (most do after Connection: close) is at its end too.
    if (e == SSL_ERROR_SYSCALL && errno == 0) return 0;
    if (errno == 0) errno = EPROTO;
    return -1;
  }
  ssize_t n;
  do n = recv(c.fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n;
}

size_t conn_buffered(const ClientConn& c) {
  if (!c.tls || c.tls_failed) return 0;
  // What OpenSSL holds after it asked for more is the start of a record: only the socket can finish it.
  // Counting it would have the caller read again at once, for ever (a client that never finishes a record).
  if (c.tls_want_read) return 0;
  // Read ahead (tls.cc): whole records may wait in OpenSSL's buffer, not yet decrypted.
  const int pending = SSL_pending(c.tls.get());
  return pending > 0 ? static_cast<size_t>(pending) : SSL_has_pending(c.tls.get()) ? 1 : 0;
}

bool conn_write_all(ClientConn& c, std::string_view data, bool more) {
  // With TLS each write is a record of its own; coalescing would mean holding back the head, and a
  // caller that writes nothing after it would leave the client waiting.
  bool ok = c.tls ? tls_write_all(c, data) : static_cast<bool>(send_all(c.fd, data, more));
  if (ok) note_written(c, data);
  return ok;
}

namespace {

bool send_file_range(ClientConn& c, int file, uint64_t offset, uint64_t len) {
  off_t off = static_cast<off_t>(offset);
  if (c.tls) {
    char buf[kTlsFileChunk];
    while (len > 0) {
      size_t want = len > sizeof buf ? sizeof buf : static_cast<size_t>(len);
      ssize_t n = pread(file, buf, want, off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // a read error, or the file shrank: the promised length cannot be kept
      if (!tls_write_all(c, std::string_view(buf, static_cast<size_t>(n)))) return false;
      off += n;
      len -= static_cast<uint64_t>(n);
    }
    return true;
  }
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

}  // namespace

bool conn_send_file(ClientConn& c, int file, uint64_t offset, uint64_t len) {
  bool ok = send_file_range(c, file, offset, len);
  if (ok) c.bytes_out += len;
  return ok;
}

bool conn_send_head_and_file(ClientConn& c, std::string& head, int file, uint64_t offset, uint64_t len) {
  constexpr size_t kRecord = 16384;  // the most plaintext one TLS record carries
  if (!c.tls || head.size() >= kRecord || len > kRecord - head.size()) {
    if (!conn_write_all(c, head, len > 0)) return false;
    return len == 0 || conn_send_file(c, file, offset, len);
  }
  const size_t at = head.size();
  head.resize(at + static_cast<size_t>(len));
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(file, head.data() + at + got, static_cast<size_t>(len) - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // a read error, or the file shrank: the promised length cannot be kept
      OPENSSL_cleanse(head.data() + at, got);
      head.resize(at);
      return false;
    }
    got += static_cast<size_t>(n);
  }
  bool ok = conn_write_all(c, head);
  // The file's bytes leave this buffer as they leave the worker's others: wiped.
  OPENSSL_cleanse(head.data() + at, got);
  head.resize(at);
  return ok;
}

void conn_close_notify(ClientConn& c) {
  if (c.tls && !c.tls_failed) {
    ERR_clear_error();
    (void)SSL_shutdown(c.tls.get());  // sends close_notify; the client's own is not waited for
    (void)socket_bio_flush(SSL_get_wbio(c.tls.get()));
    ERR_clear_error();
  }
  c.tls.reset();
}

void conn_finish(ClientConn& c, int linger_ms) {
  conn_close_notify(c);
  lingering_close(c.fd, linger_ms);
}

}  // namespace itk

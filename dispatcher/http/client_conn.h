// The byte stream of one client connection as the worker sees it: plain TCP, or the TLS session the
// worker established on it. Request handling never needs to know which.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "http/proxy_protocol.h"
#include "tls/tls_ptr.h"

namespace itk {

struct ResponsePolicy;

struct ClientConn {
  ClientConn() = default;
  explicit ClientConn(int socket) : fd(socket) {}

  int fd = -1;              // blocking socket (for writes; SO_SNDTIMEO comes from the listener)
  SslPtr tls;               // the TLS session on `fd`, or null for plain TCP
  std::string server_name;  // the name the TLS client asked for (SNI), lower-case; empty without one
  bool tls_failed = false;  // a fatal TLS error happened: OpenSSL must not be asked to write again
  bool tls_want_read = false;  // the last read needs more from the socket: what OpenSSL buffers is partial
  ConnAddrs addrs;          // what a load balancer's PROXY header said; AF_UNSPEC: the socket's own
  ResponsePolicy* policy = nullptr;  // the vhost's Header lines and ErrorDocuments for the request in hand
  // For the access log: bytes written, and the first final response head written since it was cleared.
  uint64_t bytes_out = 0;
  std::string response_head;
  pid_t worker = 0;         // the serving process, for the log (asked once, not per request)
};

// The client and this end of the connection as a PROXY header stated them, else as the socket has them.
sockaddr_storage conn_client(const ClientConn& c);
sockaddr_storage conn_server(const ClientConn& c);

// After the worker's handshake: moves the session, if any, into `c`. Its socket BIO never blocks a read
// (socket_bio.h): a record not yet complete is waited for by the worker's poll, under its deadlines.
void conn_adopt_tls(ClientConn& c, SslPtr tls, std::string server_name);

// Non-blocking read: >0 bytes, 0 at end of stream, -1 with errno (EAGAIN: nothing available now).
ssize_t conn_read(ClientConn& c, void* buf, size_t len);
// Non-zero when bytes are already received and buffered inside the connection (TLS records read ahead,
// or decrypted and not yet taken): a caller must not wait for the socket to become readable then.
size_t conn_buffered(const ClientConn& c);
// Writes all of `data`; `more` says a body follows at once (lets TCP coalesce head and body).
bool conn_write_all(ClientConn& c, std::string_view data, bool more = false);
// Sends `len` bytes of `file` from `offset` (sendfile on plain TCP; over TLS read and
// encrypt in chunks).
bool conn_send_file(ClientConn& c, int file, uint64_t offset, uint64_t len);
// A response head and `len` bytes of `file` from `offset`: over TLS, a head and body that fit one record
// (16 KiB) go as one record in one write; else as conn_write_all and conn_send_file.
bool conn_send_head_and_file(ClientConn& c, std::string& head, int file, uint64_t offset, uint64_t len);
// Ends a TLS session without ending the socket: sends close_notify (unless the session failed) and frees the
// session, whose buffers OpenSSL cleanses; the socket is then drained and closed as a plain one.
void conn_close_notify(ClientConn& c);
// Ends the connection after the last response: closes the sending side cleanly (TLS: close_notify),
// then drains what the client still sends for up to `linger_ms` so it reads the response instead of a reset.
void conn_finish(ClientConn& c, int linger_ms);

}  // namespace itk

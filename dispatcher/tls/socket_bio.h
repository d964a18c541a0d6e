// The worker's BIO on a client's socket: reads never block and writes are gathered until flushed, so a
// TLS connection needs no fcntl around its handshake, and a session ticket leaves with the response.
#pragma once

#include <openssl/bio.h>

#include <memory>

namespace itk {

struct BioMethodFree {
  void operator()(BIO_METHOD* m) const;
};
using BioMethodPtr = std::unique_ptr<BIO_METHOD, BioMethodFree>;

// The method, made once for all the connections of a set of contexts. Null when out of memory.
BioMethodPtr socket_bio_method();

// A BIO of `method` on the socket `fd` (not closed with it): reads are recv(MSG_DONTWAIT) (would-block is
// a retry, as on a non-blocking socket), writes are kept until socket_bio_flush or, while the handshake
// goes on, until the next read. Null when out of memory.
BIO* socket_bio_new(const BIO_METHOD* method, int fd);

// Sends what `bio` gathered, blocking (the socket's SO_SNDTIMEO bounds each wait). False when the socket
// failed or timed out; what is gathered is then dropped.
[[nodiscard]] bool socket_bio_flush(BIO* bio);

// The handshake is over: reads no longer send what is gathered first, so a TLS 1.3 session ticket written
// at the end of the handshake waits for the first response and leaves in the same write().
void socket_bio_handshake_done(BIO* bio);

}  // namespace itk

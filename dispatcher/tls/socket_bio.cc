// A BIO_METHOD of itk's own for the worker's client socket (see socket_bio.h). It holds ciphertext only.
#include "tls/socket_bio.h"

#include <sys/socket.h>

#include <openssl/bio.h>

#include <cerrno>
#include <string>

#include "sys/io.h"

namespace itk {
namespace {

// Gathered writes beyond this go out at once: memory stays bounded whatever OpenSSL writes.
constexpr size_t kMaxGathered = 64 * 1024;

struct SocketBio {
  int fd = -1;
  std::string out;               // ciphertext not sent yet
  bool flush_before_read = true;  // during the handshake: a flight must reach the peer before its answer
  bool failed = false;
};

SocketBio* data_of(BIO* b) { return static_cast<SocketBio*>(BIO_get_data(b)); }

bool send_gathered(SocketBio& d) {
  if (d.failed) return false;
  if (d.out.empty()) return true;
  if (!send_all(d.fd, d.out, false)) d.failed = true;
  d.out.clear();
  return !d.failed;
}

int bio_write(BIO* b, const char* in, int len) {
  SocketBio& d = *data_of(b);
  BIO_clear_retry_flags(b);
  if (d.failed) return -1;
  if (len <= 0) return 0;
  d.out.append(in, static_cast<size_t>(len));
  if (d.out.size() >= kMaxGathered && !send_gathered(d)) return -1;
  return len;
}

int bio_read(BIO* b, char* out, int len) {
  SocketBio& d = *data_of(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (d.flush_before_read && !send_gathered(d)) return -1;
  ssize_t n;
  do n = recv(d.fd, out, static_cast<size_t>(len), MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long bio_ctrl(BIO* b, int cmd, long, void* ptr) {
  SocketBio& d = *data_of(b);
  switch (cmd) {
    // OpenSSL flushes after each handshake message and record: sending is decided by itk (socket_bio.h).
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_C_SET_FD:
      d.fd = *static_cast<int*>(ptr);
      return 1;
    case BIO_C_GET_FD:
      if (ptr) *static_cast<int*>(ptr) = d.fd;
      return d.fd;
    case BIO_CTRL_WPENDING:
      return static_cast<long>(d.out.size());
    default:
      return 0;
  }
}

int bio_create(BIO* b) {
  BIO_set_data(b, new SocketBio);
  BIO_set_init(b, 1);
  return 1;
}

int bio_destroy(BIO* b) {
  delete data_of(b);
  BIO_set_data(b, nullptr);
  return 1;
}

}  // namespace

void BioMethodFree::operator()(BIO_METHOD* m) const { BIO_meth_free(m); }

BioMethodPtr socket_bio_method() {
  BioMethodPtr m(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "itk socket"));
  if (!m) return nullptr;
  if (BIO_meth_set_write(m.get(), bio_write) != 1 || BIO_meth_set_read(m.get(), bio_read) != 1 ||
      BIO_meth_set_ctrl(m.get(), bio_ctrl) != 1 ||
      BIO_meth_set_create(m.get(), bio_create) != 1 || BIO_meth_set_destroy(m.get(), bio_destroy) != 1)
    return nullptr;
  return m;
}

BIO* socket_bio_new(const BIO_METHOD* method, int fd) {
  BIO* b = BIO_new(method);
  if (b) data_of(b)->fd = fd;
  return b;
}

bool socket_bio_flush(BIO* bio) { return bio && send_gathered(*data_of(bio)); }

void socket_bio_handshake_done(BIO* bio) {
  if (bio) data_of(bio)->flush_before_read = false;
}

}  // namespace itk

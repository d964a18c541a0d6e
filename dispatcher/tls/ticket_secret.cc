// The ticket secret's page: mapped apart from the heap so that madvise can keep it out of every fork
// and every core dump, which no allocator guarantees for a heap buffer.
#include "tls/ticket_secret.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace itk {
namespace {

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

}  // namespace

TicketSecret::TicketSecret(TicketSecret&& o) noexcept : page_(std::exchange(o.page_, nullptr)) {}

TicketSecret& TicketSecret::operator=(TicketSecret&& o) noexcept {
  if (this != &o) {
    reset();
    page_ = std::exchange(o.page_, nullptr);
  }
  return *this;
}

TicketSecret::~TicketSecret() { reset(); }

void TicketSecret::reset() {
  if (!page_) return;
  OPENSSL_cleanse(page_, kTicketSecretSize);
  (void)munmap(page_, page_size());
  page_ = nullptr;
}

int TicketSecret::map() {
  reset();
  void* p = mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -errno;
  // Both before any byte is written: a fork between writing and marking would copy the secret.
  if (madvise(p, page_size(), MADV_WIPEONFORK) != 0 || madvise(p, page_size(), MADV_DONTDUMP) != 0) {
    int e = errno;
    (void)munmap(p, page_size());
    return -e;
  }
  page_ = static_cast<unsigned char*>(p);
  return 0;
}

int TicketSecret::generate() {
  if (int rc = map(); rc < 0) return rc;
  if (RAND_priv_bytes(page_, static_cast<int>(kTicketSecretSize)) != 1) {
    reset();
    return -EIO;
  }
  return 0;
}

int TicketSecret::assign(std::string_view bytes) {
  if (bytes.size() != kTicketSecretSize) return -EINVAL;
  if (int rc = map(); rc < 0) return rc;
  memcpy(page_, bytes.data(), kTicketSecretSize);
  return 0;
}

std::string_view TicketSecret::bytes() const {
  if (!page_) return {};
  return std::string_view(reinterpret_cast<const char*>(page_), kTicketSecretSize);
}

int ticket_secret_send(int registration_fd, const TicketSecret& secret) {
  if (secret.empty()) return -EINVAL;
  KeyMessage m;
  m.type = KeyMsg::ticket_secret;
  std::string header = key_encode_header(m, kTicketSecretSize);
  std::string_view body = secret.bytes();
  iovec iov[2] = {{header.data(), header.size()}, {const_cast<char*>(body.data()), body.size()}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  ssize_t n;
  do n = sendmsg(registration_fd, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  return n == static_cast<ssize_t>(header.size() + body.size()) ? 0 : -EMSGSIZE;
}

}  // namespace itk

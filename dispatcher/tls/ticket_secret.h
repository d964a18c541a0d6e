// The secret every vhost's session ticket keys derive from: made by the master at start, held in a page
// no child inherits, and handed to each key process, which alone derives keys from it.
#pragma once

#include <cstddef>
#include <string_view>

#include "tls/key_protocol.h"

namespace itk {

// kTicketSecretSize bytes in an anonymous page of their own, marked MADV_WIPEONFORK (a forked child
// sees zeros: acceptors and workers are forked from the master) and MADV_DONTDUMP (no core file holds
// it); wiped and unmapped by the destructor.
class TicketSecret {
 public:
  TicketSecret() = default;
  TicketSecret(const TicketSecret&) = delete;
  TicketSecret& operator=(const TicketSecret&) = delete;
  TicketSecret(TicketSecret&& o) noexcept;
  TicketSecret& operator=(TicketSecret&& o) noexcept;
  ~TicketSecret();

  // Fills a new page from OpenSSL's private random generator. Returns 0, or -errno (-EIO: the random
  // generator failed; -EINVAL: the kernel has no MADV_WIPEONFORK, before Linux 4.14).
  [[nodiscard]] int generate();
  // Copies `bytes` (exactly kTicketSecretSize) into a new page. Returns 0, or -errno (-EINVAL: wrong size).
  [[nodiscard]] int assign(std::string_view bytes);

  bool empty() const { return page_ == nullptr; }
  // The secret's bytes, valid while this object holds them.
  std::string_view bytes() const;

 private:
  [[nodiscard]] int map();
  void reset();

  unsigned char* page_ = nullptr;
};

// Sends KeyMsg::ticket_secret with `secret` on a key process's registration socket; the bytes go
// straight from the page (no copy on the heap). Returns 0, or -errno (-EINVAL: no secret; -EMSGSIZE:
// short send).
[[nodiscard]] int ticket_secret_send(int registration_fd, const TicketSecret& secret);

}  // namespace itk

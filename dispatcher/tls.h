// TLS for the acceptors: one context per certificate, chosen by SNI, built by the master from
// certificates only; the session ticket keys every acceptor shares; the Host/SNI rule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "tls_ptr.h"
#include "vhost_table.h"

namespace itk {

class TlsContexts {
 public:
  // One context per certificate/key pair of `cfg` (tls_key_files order: the key ids of the key process).
  // Reads the certificate files; returns nullptr with `error` naming the file when one cannot be used.
  static std::unique_ptr<TlsContexts> build(const Config& cfg, std::string& error);

  // The context every handshake starts with: the [server] certificate, else the default vhost's, else
  // the first vhost's that has one. Clients without SNI or with a name no certificate is for keep it.
  SSL_CTX* default_context() const { return default_; }
  // The context for the name a client sent: its vhost's (exact name, then longest wildcard), else the default.
  SSL_CTX* context_for(std::string_view sni) const;

 private:
  std::vector<SslCtxPtr> contexts_;
  std::unordered_map<std::string, SSL_CTX*> exact_;
  std::unordered_map<std::string, SSL_CTX*> wildcard_;  // key: the suffix after "*."
  SSL_CTX* default_ = nullptr;
};

// A server-side TLS connection on the non-blocking socket `fd`, starting in the default context.
SslPtr tls_new_connection(const TlsContexts& contexts, int fd);

// The name the client sent with SNI, lower-case; empty without one.
std::string tls_server_name(SSL* ssl);

// True when `sni` (the name a TLS client asked for; empty without SNI or on plain TCP) selects another
// vhost than `target`: such a request is answered 421 Misdirected Request (RFC 9110 §15.5.20).
bool tls_misdirected(const VHostTable& vhosts, std::string_view sni, const VHost* target);

// The last OpenSSL error as text for a log line (the error queue is cleared).
std::string tls_error_text();

// Session ticket keys: random, made by the master at start and rotated by it, never written anywhere.
// Acceptors get them by fork, so a ticket issued by one acceptor resumes in any other. After a rotation
// the previous key still decrypts (and the client gets a new ticket); anything older is a full handshake.
void tls_ticket_keys_rotate();
// Wipes both keys from this process: workers and the key process never need them.
void tls_ticket_keys_wipe();
constexpr int64_t kTicketKeyRotationMs = 12LL * 3600 * 1000;

// What an acceptor inherits from the master for its https listeners besides the Runtime: its
// generation's contexts and the registration socket of the key process. Filled in the acceptor's
// child right after fork (ProcessContext::tls); without https listeners contexts == nullptr.
struct TlsInheritance {
  const TlsContexts* contexts = nullptr;
  int key_registration_fd = -1;
};

}  // namespace itk

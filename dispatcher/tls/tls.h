// TLS contexts: one per certificate, chosen by SNI, built from certificates only; the vhost's session
// ticket keys, fetched from the key process; the Host/SNI rule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/vhost_table.h"
#include "tls/socket_bio.h"
#include "tls/tls_config.h"
#include "tls/tls_ptr.h"

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
  explicit TlsContexts(const Config& cfg) : keys_(cfg) {}

  TlsKeyMap keys_;
  std::vector<SslCtxPtr> contexts_;  // by key id
  SSL_CTX* default_ = nullptr;
  BioMethodPtr bio_method_;  // the worker's socket BIO (socket_bio.h)

  friend SslPtr tls_new_connection(const TlsContexts& contexts, int fd);
};

// A server-side TLS connection on the blocking socket `fd`, starting in the default context, through a
// socket BIO (socket_bio.h): reads never block, writes go out on socket_bio_flush.
SslPtr tls_new_connection(const TlsContexts& contexts, int fd);

// The name the client sent with SNI, lower-case; empty without one.
std::string tls_server_name(SSL* ssl);

// True when `sni` (the name a TLS client asked for; empty without SNI or on plain TCP) selects another
// vhost than `target`: such a request is answered 421 Misdirected Request (RFC 9110 §15.5.20).
bool tls_misdirected(const VHostTable& vhosts, std::string_view sni, const VHost* target);

// The last OpenSSL error as text for a log line (the error queue is cleared).
std::string tls_error_text();

// Session ticket keys: this process's vhost's, derived by the key process from the master's ticket
// secret and the ServerName its channel is bound to, so every process of one vhost (across reloads too)
// shares them and no other vhost has them. Fetches the keys of the current 12-hour epoch and of the one
// before over this process's channel (key_client_adopt). Returns false with `error` when the key
// process refused or could not be reached. New tickets are encrypted with the current key; a ticket
// under the previous one still resumes and gets a new ticket; older ones mean a full handshake. Once
// the wall clock enters a later epoch, the next ticket operation fetches the keys again. Without keys
// no ticket is issued.
bool tls_ticket_keys_load(std::string& error);
// Wipes this process's ticket keys: from then on no ticket is issued nor accepted.
void tls_ticket_keys_wipe();

// What the spawner inherits from the master for https listeners besides the Runtime: its generation's
// contexts (which its workers use for their handshakes) and the registration socket of the key process
// (on which it registers each worker's bound channel). Filled in the spawner's child right after fork
// (ProcessContext::tls); without https listeners contexts == nullptr, and acceptors get neither.
struct TlsInheritance {
  const TlsContexts* contexts = nullptr;
  int key_registration_fd = -1;
};

}  // namespace itk

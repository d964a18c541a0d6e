// Key process role: the one process of itk that holds private keys (relayd's ca.c, h2o's neverbleed)
// and derives session ticket keys; forked by the master per generation, it serves channels each bound
// to one key and one vhost, and does nothing else.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "tls/key_protocol.h"
#include "tls/ticket_secret.h"
#include "tls/tls_ptr.h"

namespace itk {

// What a channel may use, fixed when the master or the spawner registered it: one key and one vhost.
struct KeyChannel {
  uint32_t key = 0;          // the key id it signs with
  std::string server_name;   // its vhost's ServerName, which its session ticket keys derive from
  bool refusal_logged = false;  // a request for another key is logged once per channel
  std::optional<uint32_t> also;  // the default vhost's: the default certificate's key, for clients without SNI
};

// The signing core without any I/O, so tests drive it one message at a time.
class KeyStore {
 public:
  KeyStore();
  // Appends a key; its key id is its position.
  void add(EvpPkeyPtr key);
  size_t size() const { return keys_.size(); }
  // The secret ticket keys derive from (KeyMsg::ticket_secret). Returns 0, or -errno (-EINVAL: wrong size).
  [[nodiscard]] int set_ticket_secret(std::string_view secret) { return secret_.assign(secret); }
  bool has_ticket_secret() const { return !secret_.empty(); }

  // Handles one request datagram of `channel`. Returns false with `why` when the message is malformed
  // (the caller closes that channel). Otherwise `reply` is the datagram to send back: the signature or
  // the ticket keys, or a refusal for a key the channel is not bound to (logged at the first), a key of
  // the other type, input of the wrong size, or ticket keys before the secret came.
  bool handle(KeyChannel& channel, std::string_view request, std::string& reply, std::string& why) const;

  // The session ticket key of vhost `server_name` for rotation `epoch`: HKDF-SHA256 (RFC 5869) of the
  // secret with info "itk ticket keys" || server_name || epoch (8 bytes, big-endian), kTicketKeySize
  // bytes. False when there is no secret or OpenSSL fails.
  bool ticket_key(std::string_view server_name, uint64_t epoch, unsigned char out[kTicketKeySize]) const;

 private:
  std::vector<EvpPkeyPtr> keys_;
  TicketSecret secret_;
  // Fetched while OpenSSL may still read its configuration, before the system call filter.
  EvpKdfPtr kdf_;
};

// Receives channels on `registration_fd` (KeyMsg::register_channel) and the ticket secret (once:
// KeyMsg::ticket_secret), and serves the channels until that socket reaches end of file and every
// channel has closed. A registration for a key that does not exist is refused; a channel that sends a
// malformed message is closed and logged; nothing a client sends can stop the others from being served.
void key_serve(KeyStore& keys, int registration_fd);

// Main of the key process, in a child of the master (root) whose only descriptors are stdio and
// `registration_fd`. Loads the keys of tls_key_files(cfg) in order, tells the master on
// `registration_fd` whether that worked (KeyMsg::ready), drops privileges and serves; the master sends
// the ticket secret next. Never returns.
[[noreturn]] void key_server_main(const Config& cfg, int registration_fd, pid_t master);

// Master side: waits at most `timeout_ms` for the ready message. Returns "" when every key was loaded,
// else why not (the key process has exited then).
std::string key_server_wait_ready(int registration_fd, int timeout_ms);

}  // namespace itk

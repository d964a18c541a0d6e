// Key process role: the one process of itk that holds private keys (relayd's ca.c, h2o's neverbleed);
// forked by the master per generation, it signs for that generation's acceptors and does nothing else.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "tls_ptr.h"

namespace itk {

// The signing core without any I/O, so tests drive it one message at a time.
class KeyStore {
 public:
  // Appends a key; its key id is its position.
  void add(EvpPkeyPtr key);
  size_t size() const { return keys_.size(); }

  // Handles one request datagram of an acceptor. Returns false with `why` when the message is malformed
  // (the caller closes that channel). Otherwise `reply` is the datagram to send back: the signature, or a
  // refusal for an unknown key id, a key of the other type, or input of the wrong size.
  bool handle(std::string_view request, std::string& reply, std::string& why) const;

 private:
  std::vector<EvpPkeyPtr> keys_;
};

// Receives channels on `registration_fd` (KeyMsg::register_channel) and serves them until that socket
// reaches end of file and every channel has closed. A channel that sends a malformed message is closed
// and logged; nothing an acceptor sends can stop the others from being served.
void key_serve(const KeyStore& keys, int registration_fd);

// Main of the key process, in a child of the master (root) whose only descriptors are stdio and
// `registration_fd`. Loads the keys of tls_key_files(cfg) in order, tells the master on
// `registration_fd` whether that worked (KeyMsg::ready), drops privileges and serves. Never returns.
[[noreturn]] void key_server_main(const Config& cfg, int registration_fd, pid_t master);

// Master side: waits at most `timeout_ms` for the ready message. Returns "" when every key was loaded,
// else why not (the key process has exited then).
std::string key_server_wait_ready(int registration_fd, int timeout_ms);

}  // namespace itk

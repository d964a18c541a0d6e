// The listening sockets systemd hands to itkd (socket activation), checked and named.
#pragma once

#include <string>
#include <vector>

namespace itk {

enum class ListenerKind { http, https };

struct Listener {
  int fd = -1;  // owned by the master for its whole life; inherited by acceptors
  ListenerKind kind = ListenerKind::http;
  std::string name;
};

// Collects LISTEN_FDS/LISTEN_FDNAMES (and unsets them so no child inherits them). Returns false
// with a message saying what is wrong and how to start itkd properly.
bool collect_listeners(std::vector<Listener>& out, std::string& error);

// What every accepted connection inherits from its listener, set once per configuration instead of once
// per connection: TCP_NODELAY, and SO_SNDTIMEO of `timeout_s` (Timeout), which bounds each blocking write
// of a worker (no read of a client blocks: plain reads say MSG_DONTWAIT, and so does the TLS socket BIO).
// False, with a message naming the listener, when the send timeout could not be set.
bool set_connection_options(const std::vector<Listener>& listeners, unsigned timeout_s, std::string& error);

}  // namespace itk

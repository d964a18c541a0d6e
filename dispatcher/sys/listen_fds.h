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

}  // namespace itk

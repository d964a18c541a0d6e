// The channel between an acceptor and one of its plain-HTTP workers, so that a worker whose
// connection ended can serve the next connection of its vhost instead of exiting (no fork).
// Messages (SOCK_SEQPACKET): worker -> acceptor "I" (idle: ready for a connection);
// acceptor -> worker: a connection (SCM_RIGHTS), its scoreboard entry and the bytes read from it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy_protocol.h"

namespace itk {

// Acceptor: hands `conn_fd`, the addresses it is reported with and `bytes` (the request head and whatever
// followed) to the worker. False with errno when the worker is gone.
bool handoff_send(int ctl, int conn_fd, uint32_t entry, const ConnAddrs& addrs, std::string_view bytes);

// Worker: says it is idle. False when the acceptor is gone.
bool handoff_idle(int ctl);

// Worker: takes the connection waiting on `ctl` (readable): returns its fd and fills `entry`, `addrs`
// and `bytes`, or -1 when the acceptor closed the channel or sent something else.
int handoff_receive(int ctl, uint32_t& entry, ConnAddrs& addrs, std::string& bytes);


// Acceptor: reads one message from a worker; true when it is "I".
bool handoff_read_idle(int ctl);

}  // namespace itk

// The channel between an acceptor and one of its workers: the acceptor hands each connection of the
// worker's vhost over it, and the worker says when it is free for the next one.
// Messages (SOCK_SEQPACKET): worker -> acceptor "I" (idle: ready for a connection);
// acceptor -> worker: a connection (SCM_RIGHTS), its scoreboard entry, flags, addresses and the bytes read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/proxy_protocol.h"

namespace itk {

// The connection is TLS: nothing of it was read (the acceptor only peeked at the ClientHello), and the
// worker does the handshake. Without it, `bytes` holds the request head the acceptor read.
constexpr uint32_t kHandoffTls = 1;

struct Handoff {
  uint32_t entry = 0;  // scoreboard entry the connection counts in; the worker gives it back when done
  uint32_t flags = 0;
  ConnAddrs addrs;     // from a PROXY header, or AF_UNSPEC
  std::string bytes;   // plain HTTP: the head and whatever followed it; TLS: empty
  // The worker's receive buffer, made once and kept across connections: a fresh one of the largest
  // message's size for each connection is an mmap, its page faults and a munmap.
  std::unique_ptr<char[]> scratch;
};

// Acceptor: hands `conn_fd` to the worker. False with errno when the worker is gone or its channel is full.
bool handoff_send(int ctl, int conn_fd, const Handoff& h);

// Worker: says it is idle. False when the acceptor is gone.
bool handoff_idle(int ctl);

// Worker: takes the connection waiting on `ctl` (readable): returns its fd and fills `h`, or -1 when the
// acceptor closed the channel or sent something malformed.
int handoff_receive(int ctl, Handoff& h);

// Acceptor: reads one message from a worker; true when it is "I".
bool handoff_read_idle(int ctl);

}  // namespace itk

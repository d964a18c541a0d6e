// Wire format of the spawner's two sockets: the master's control socket, on which each new acceptor's
// channel arrives, and those channels, on which an acceptor asks for workers of a vhost and gets each
// new worker's hand-over channel back. Fixed-size SOCK_SEQPACKET messages: the spawner, which may change
// uid, never parses anything longer or of variable shape (OpenBSD httpd's imsg, in small).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "sys/unique_fd.h"

namespace itk {

// master -> spawner, with the spawner's end of the acceptor's channel (SCM_RIGHTS).
struct SpawnAcceptor {
  uint32_t index = 0;  // the acceptor's scoreboard index, for the journal
};

// acceptor -> spawner: `count` more workers of the vhost at `vhost` (an index into the generation's
// configuration, which both processes got from the master by fork).
struct SpawnRequest {
  uint32_t vhost = 0;
  uint32_t count = 0;
};

// spawner -> acceptor, with the acceptor's end of the new worker's channel (SCM_RIGHTS) when pid > 0;
// pid 0: the worker could not be started.
struct SpawnReply {
  int32_t pid = 0;
  uint32_t vhost = 0;
};

// At most this many workers per request: an acceptor asks again when it needs more.
constexpr uint32_t kMaxSpawnPerRequest = 16;

// Each sends one message, optionally with `fd` attached (-1: none), without blocking. 0 or -errno.
[[nodiscard]] int spawn_send_acceptor(int sock, const SpawnAcceptor& m, int fd);
[[nodiscard]] int spawn_send_request(int sock, const SpawnRequest& m);
[[nodiscard]] int spawn_send_reply(int sock, const SpawnReply& m, int fd);

// Each receives one message of exactly its size (the descriptor, if any, into `fd`, else -1). 1 when one
// was read, 0 at end of file, -errno otherwise (-EBADMSG: a message of another size, -EAGAIN: none yet).
[[nodiscard]] int spawn_recv_acceptor(int sock, SpawnAcceptor& m, unique_fd& fd);
[[nodiscard]] int spawn_recv_request(int sock, SpawnRequest& m);
[[nodiscard]] int spawn_recv_reply(int sock, SpawnReply& m, unique_fd& fd);

}  // namespace itk

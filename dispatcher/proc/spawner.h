// Spawner role: the one process that forks workers. Runs as the acceptor user with CAP_SETUID, CAP_SETGID and
// CAP_SYS_NICE only, and never reads a client byte: acceptors ask it, in fixed-size messages, for workers of
// a vhost; it looks the identity up in its own copy of the configuration and forks them, each into its
// vhost's cgroup and then, through become_tenant, into its vhost's user.
#pragma once

#include "proc/process_context.h"

namespace itk {

// In a child of the master (root), right after fork. `control_fd`: the master's control socket (new
// acceptors' channels arrive on it); ctx.tls.key_registration_fd: the key process's registration socket
// when there is an https listener, else -1. Never returns.
[[noreturn]] void spawner_main(const ProcessContext& ctx, int control_fd);

}  // namespace itk

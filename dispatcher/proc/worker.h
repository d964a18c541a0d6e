// Worker role: a process of one vhost's user that serves that vhost's connections one after another, as
// its acceptor hands them over. Forked by the spawner before any connection exists; never returns.
#pragma once

#include "proc/process_context.h"

namespace itk {

// Descriptors of a worker besides stdio: the connection it serves (while it serves one), its channel to
// its acceptor (handoff.h) and, with https listeners, its channel to the key process.
constexpr int kWorkerConnFd = 3;
constexpr int kWorkerCtlFd = 4;
constexpr int kWorkerKeyFd = 5;
// From here up: the log files of its vhost (and of the other vhosts of the same identity, whose requests
// may come on its connections), as LogFds numbers them.
constexpr int kWorkerFirstLogFd = 6;

// In the spawner's child right after fork: `ctl_fd` and `key_fd` (-1: none) are its ends of the two
// channels. Sets up its descriptors, signals and cgroup, becomes the vhost's user, then waits for
// connections of `vh`. Never returns.
[[noreturn]] void worker_main(const ProcessContext& ctx, const VHost& vh, int ctl_fd, int key_fd);

}  // namespace itk

// Master role: the root process. Owns the listening sockets, the config and the scoreboard,
// forks and supervises acceptors, talks to systemd. It never reads a byte from a client.
#pragma once

#include <memory>
#include <vector>

#include "config/config.h"
#include "sys/listen_fds.h"

namespace itk {

// Runs until SIGTERM/SIGINT; returns the process exit code.
int master_main(const LoadOptions& opts, std::unique_ptr<Config> cfg, std::vector<Listener> listeners);

}  // namespace itk

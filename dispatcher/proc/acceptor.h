// Acceptor role: unprivileged epoll loop that accepts connections, reads and parses request heads
// under deadlines, admits and forks one worker per connection. Entered in a child of the master.
#pragma once

#include <cstdint>

#include "proc/process_context.h"

namespace itk {

// In a child of the master (root), right after fork. `index` is this acceptor's entry in the scoreboard,
// `spawner_fd` its end of the channel to the generation's spawner. Keeps stdio, the listeners and that
// channel, joins the acceptors' cgroup, drops every privilege (become_acceptor). Never returns.
[[noreturn]] void acceptor_main(const ProcessContext& ctx, uint32_t index, int spawner_fd);

}  // namespace itk

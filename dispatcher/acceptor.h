// Acceptor role: unprivileged epoll loop that accepts connections, reads and parses request heads
// under deadlines, admits and forks one worker per connection. Entered in a child of the master.
#pragma once

#include <cstdint>

#include "runtime.h"

namespace itk {

// `index` is this acceptor's entry in the scoreboard. Never returns.
[[noreturn]] void acceptor_main(const ProcessContext& ctx, uint32_t index);

}  // namespace itk

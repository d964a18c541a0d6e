// Worker role: one process per connection, running as the vhost's user. Entered in the child of
// an acceptor's fork, with root-free but still privileged credentials; never returns.
#pragma once

#include <string>

#include "http_request.h"
#include "proxy_protocol.h"
#include "tls_ptr.h"
#include "runtime.h"

namespace itk {

struct WorkerStart {
  const VHost* vhost = nullptr;  // the vhost of the first request (decides the identity)
  int conn_fd = -1;              // the client connection; the worker owns it
  std::string buffer;            // bytes read so far: the first head and whatever followed it
  size_t head_length = 0;
  RequestHead head;
  SslPtr tls;                    // the TLS session the acceptor established (https), else null
  std::string sni;               // the server name the client asked for in it
  int ctl_fd = -1;               // plain HTTP: the hand-over channel to the acceptor (handoff.h), else -1
  ConnAddrs addrs;               // from a PROXY header, or AF_UNSPEC
};

[[noreturn]] void worker_main(const ProcessContext& ctx, WorkerStart start);

}  // namespace itk

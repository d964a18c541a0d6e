// The PROXY protocol header (HAProxy's specification, version 1 text and version 2 binary) that a load
// balancer sends before a connection's first byte: the client's and the server's addresses as the
// balancer saw them. Decoding only; which peers may send one is the acceptor's decision.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace itk {

// The addresses a connection is reported with (REMOTE_ADDR, SERVER_ADDR, ...): a load balancer's
// statement, or AF_UNSPEC for "the socket's own" (getpeername, getsockname).
struct ConnAddrs {
  sockaddr_storage client{};
  sockaddr_storage server{};
  bool tls_at_balancer = false;  // the balancer says the client spoke TLS to it (PP2_TYPE_SSL, PP2_CLIENT_SSL)
};

// Version 1 is one line of at most 107 bytes; a version 2 header is 16 bytes and its length field, of
// which itk takes up to this much (addresses and TLVs: HAProxy, cloud balancers send a few hundred).
constexpr size_t kProxyV1Max = 107;
constexpr size_t kProxyMax = 16 + 2048;

struct ProxyHeader {
  size_t length = 0;  // bytes the header takes at the start of the connection
  ConnAddrs addrs;    // AF_UNSPEC when the balancer speaks for itself (v2 LOCAL, health checks; v1 UNKNOWN)
};

enum class ProxyParse { incomplete, complete, invalid };

// Parses the header at the start of `bytes` (all that arrived so far). incomplete: more bytes are
// needed (never more than kProxyMax in all); invalid: `why` says what is wrong, e.g. no header at all.
ProxyParse proxy_parse(std::string_view bytes, ProxyHeader& out, std::string& why);

}  // namespace itk

// Fuzz target: the PROXY protocol header a load balancer sends first (v1 text, v2 binary with TLVs),
// read by an acceptor from any peer in ProxyProtocolFrom. Besides memory errors it checks that the
// decoder never claims more bytes than it was given, nor more than itk takes, and that what it decided
// on a prefix holds when more bytes come (a header is complete at one length only).
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  itk::ProxyHeader h;
  std::string why;
  itk::ProxyParse st = itk::proxy_parse(in, h, why);
  if (st == itk::ProxyParse::invalid) check(!why.empty());
  if (st == itk::ProxyParse::incomplete) check(size < itk::kProxyMax);
  if (st != itk::ProxyParse::complete) return 0;
  check(h.length > 0 && h.length <= size && h.length <= itk::kProxyMax);
  for (const sockaddr_storage* a : {&h.addrs.client, &h.addrs.server})
    check(a->ss_family == AF_UNSPEC || a->ss_family == AF_INET || a->ss_family == AF_INET6);
  // The header alone decodes to the same; every shorter prefix is still incomplete.
  itk::ProxyHeader again;
  check(itk::proxy_parse(in.substr(0, h.length), again, why) == itk::ProxyParse::complete);
  check(again.length == h.length && again.addrs.tls_at_balancer == h.addrs.tls_at_balancer &&
        memcmp(&again.addrs.client, &h.addrs.client, sizeof h.addrs.client) == 0 &&
        memcmp(&again.addrs.server, &h.addrs.server, sizeof h.addrs.server) == 0);
  for (size_t n = 0; n < h.length; n += 1 + n / 8) {
    itk::ProxyHeader part;
    check(itk::proxy_parse(in.substr(0, n), part, why) == itk::ProxyParse::incomplete);
  }
  return 0;
}

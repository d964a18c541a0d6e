// PROXY protocol decoding: v1 "PROXY TCP4 src dst sport dport\r\n", v2 signature, command, family,
// length, addresses, TLVs (only PP2_TYPE_SSL is read). Every size is checked before it is used.
#include "http/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace itk {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr uint8_t kTlvSsl = 0x20;
constexpr uint8_t kClientSsl = 0x01;

// Whether `bytes` could still become `prefix` (it is a prefix of it, or starts with it).
bool starts_like(std::string_view bytes, std::string_view prefix) {
  size_t n = std::min(bytes.size(), prefix.size());
  return bytes.substr(0, n) == prefix.substr(0, n);
}

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t sp = s.find(' ', start);
    parts.push_back(s.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
    if (sp == std::string_view::npos) return parts;
    start = sp + 1;
  }
}

bool parse_port(std::string_view s, uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

bool make_addr(int family, std::string_view text, uint16_t port, sockaddr_storage& out) {
  std::string t(text);
  out = sockaddr_storage{};
  if (family == AF_INET) {
    auto& a = reinterpret_cast<sockaddr_in&>(out);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    return inet_pton(AF_INET, t.c_str(), &a.sin_addr) == 1;
  }
  auto& a = reinterpret_cast<sockaddr_in6&>(out);
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  return inet_pton(AF_INET6, t.c_str(), &a.sin6_addr) == 1;
}

ProxyParse parse_v1(std::string_view bytes, ProxyHeader& out, std::string& why) {
  size_t crlf = bytes.find("\r\n");
  if (crlf == std::string_view::npos) {
    if (bytes.size() >= kProxyV1Max) {
      why = "PROXY v1 line longer than 107 bytes";
      return ProxyParse::invalid;
    }
    for (size_t i = 0; i < bytes.size(); i++)
      if ((static_cast<unsigned char>(bytes[i]) < 0x20 || bytes[i] == 0x7f) && !(bytes[i] == '\r' && i + 1 == bytes.size())) {
        why = "PROXY v1 line with a control character";
        return ProxyParse::invalid;
      }
    return ProxyParse::incomplete;
  }
  if (crlf + 2 > kProxyV1Max) {
    why = "PROXY v1 line longer than 107 bytes";
    return ProxyParse::invalid;
  }
  // Printable text only: inet_pton would stop at a NUL and take "1.2.3.4\0junk" for an address.
  for (char c : bytes.substr(0, crlf))
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      why = "PROXY v1 line with a control character";
      return ProxyParse::invalid;
    }
  std::vector<std::string_view> f = split_spaces(bytes.substr(kV1Prefix.size(), crlf - kV1Prefix.size()));
  out = ProxyHeader{};
  out.length = crlf + 2;
  if (f[0] == "UNKNOWN") return ProxyParse::complete;  // the balancer's own connection: addresses as they are
  int family = f[0] == "TCP4" ? AF_INET : f[0] == "TCP6" ? AF_INET6 : 0;
  uint16_t sport = 0, dport = 0;
  if (!family || f.size() != 5) {
    why = "PROXY v1 line is not `PROXY TCP4|TCP6 SRC DST SPORT DPORT`";
    return ProxyParse::invalid;
  }
  if (!make_addr(family, f[1], 0, out.addrs.client) || !make_addr(family, f[2], 0, out.addrs.server) ||
      !parse_port(f[3], sport) || !parse_port(f[4], dport) ||
      !make_addr(family, f[1], sport, out.addrs.client) || !make_addr(family, f[2], dport, out.addrs.server)) {
    why = "PROXY v1 line with an address or port that is not one";
    out.addrs = ConnAddrs{};
    return ProxyParse::invalid;
  }
  return ProxyParse::complete;
}

ProxyParse parse_v2(std::string_view bytes, ProxyHeader& out, std::string& why) {
  if (bytes.size() < 16) return ProxyParse::incomplete;
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t version = b[12] >> 4, command = b[12] & 0x0f, family = b[13] >> 4, transport = b[13] & 0x0f;
  const size_t len = static_cast<size_t>(b[14]) << 8 | b[15];
  if (version != 2 || command > 1) {
    why = "PROXY v2 header with an unknown version or command";
    return ProxyParse::invalid;
  }
  if (16 + len > kProxyMax) {
    why = "PROXY v2 header of " + std::to_string(16 + len) + " bytes, over itk's " + std::to_string(kProxyMax);
    return ProxyParse::invalid;
  }
  if (bytes.size() < 16 + len) return ProxyParse::incomplete;
  out = ProxyHeader{};
  out.length = 16 + len;
  if (command == 0) return ProxyParse::complete;  // LOCAL: the balancer's own connection (health checks)
  const uint8_t* body = b + 16;
  size_t addr_len = 0;
  if (family == 1 || family == 2) {
    if (transport != 1) {
      why = "PROXY v2 header for a transport other than a stream";
      return ProxyParse::invalid;
    }
    addr_len = family == 1 ? 12 : 36;
    if (len < addr_len) {
      why = "PROXY v2 header shorter than its addresses";
      return ProxyParse::invalid;
    }
    if (family == 1) {
      auto& c = reinterpret_cast<sockaddr_in&>(out.addrs.client);
      auto& s = reinterpret_cast<sockaddr_in&>(out.addrs.server);
      c.sin_family = s.sin_family = AF_INET;
      memcpy(&c.sin_addr, body, 4);
      memcpy(&s.sin_addr, body + 4, 4);
      memcpy(&c.sin_port, body + 8, 2);
      memcpy(&s.sin_port, body + 10, 2);
    } else {
      auto& c = reinterpret_cast<sockaddr_in6&>(out.addrs.client);
      auto& s = reinterpret_cast<sockaddr_in6&>(out.addrs.server);
      c.sin6_family = s.sin6_family = AF_INET6;
      memcpy(&c.sin6_addr, body, 16);
      memcpy(&s.sin6_addr, body + 16, 16);
      memcpy(&c.sin6_port, body + 32, 2);
      memcpy(&s.sin6_port, body + 34, 2);
    }
  } else if (family == 3) {
    addr_len = std::min<size_t>(len, 216);  // AF_UNIX paths: no address a script could use; the socket's stand
  } else if (family != 0) {
    why = "PROXY v2 header with an unknown address family";
    return ProxyParse::invalid;
  }
  // TLVs: type, 16-bit length, value. Only PP2_TYPE_SSL is read (whether the client spoke TLS to the
  // balancer); every other is skipped within its stated length.
  for (size_t at = addr_len; at < len;) {
    if (len - at < 3) {
      why = "PROXY v2 header with a truncated TLV";
      return ProxyParse::invalid;
    }
    const uint8_t type = body[at];
    const size_t tlv_len = static_cast<size_t>(body[at + 1]) << 8 | body[at + 2];
    if (len - at - 3 < tlv_len) {
      why = "PROXY v2 TLV longer than the header";
      return ProxyParse::invalid;
    }
    if (type == kTlvSsl && tlv_len >= 1 && (body[at + 3] & kClientSsl)) out.addrs.tls_at_balancer = true;
    at += 3 + tlv_len;
  }
  if (family == 3 || family == 0) out.addrs.client.ss_family = out.addrs.server.ss_family = AF_UNSPEC;
  return ProxyParse::complete;
}

}  // namespace

ProxyParse proxy_parse(std::string_view bytes, ProxyHeader& out, std::string& why) {
  const std::string_view sig(kV2Signature, sizeof kV2Signature);
  if (starts_like(bytes, sig)) return bytes.size() < sig.size() ? ProxyParse::incomplete : parse_v2(bytes, out, why);
  if (starts_like(bytes, kV1Prefix))
    return bytes.size() < kV1Prefix.size() ? ProxyParse::incomplete : parse_v1(bytes, out, why);
  why = "no PROXY protocol header (the listener expects one from the load balancer)";
  return ProxyParse::invalid;
}

}  // namespace itk

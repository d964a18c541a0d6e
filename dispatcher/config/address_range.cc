// Address ranges of the configuration, matched against peers; socket addresses as text.
#include "config/address_range.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace itk {

std::string parse_address_range(std::string_view text, AddressRange& out) {
  std::string addr(text.substr(0, text.find('/')));
  AddressRange r;
  if (inet_pton(AF_INET, addr.c_str(), r.bytes) == 1) {
    r.family = AF_INET;
    r.prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), r.bytes) == 1) {
    r.family = AF_INET6;
    r.prefix = 128;
  } else {
    return "is not an IPv4 or IPv6 address (with an optional /prefix)";
  }
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    unsigned max = r.prefix, n = 0;
    if (digits.empty() || digits.size() > 3) return "has a prefix length that is not a number";
    for (char c : digits) {
      if (c < '0' || c > '9') return "has a prefix length that is not a number";
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n > max) return "has a prefix length over " + std::to_string(max);
    r.prefix = n;
  }
  out = r;
  return "";
}

namespace {

// The peer's address bytes as one of the families a range is written in.
bool peer_bytes(const sockaddr_storage& ss, int& family, const uint8_t*& bytes) {
  if (ss.ss_family == AF_INET) {
    family = AF_INET;
    bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(ss).sin_addr);
    return true;
  }
  if (ss.ss_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      family = AF_INET;
      bytes = a.s6_addr + 12;
    } else {
      family = AF_INET6;
      bytes = a.s6_addr;
    }
    return true;
  }
  return false;
}

bool prefix_matches(const uint8_t* a, const uint8_t* b, unsigned bits) {
  unsigned whole = bits / 8;
  if (memcmp(a, b, whole) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

bool address_in(const std::vector<AddressRange>& ranges, const sockaddr_storage& peer) {
  int family = 0;
  const uint8_t* bytes = nullptr;
  if (!peer_bytes(peer, family, bytes)) return false;
  for (const AddressRange& r : ranges)
    if (r.family == family && prefix_matches(r.bytes, bytes, r.prefix)) return true;
  return false;
}

std::string address_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
  return buf;
}

std::string port_text(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return std::to_string(ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port));
  if (ss.ss_family == AF_INET6) return std::to_string(ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port));
  return {};
}

}  // namespace itk

// Addresses and networks as an administrator writes them ("10.0.0.0/8", "::1"), and whether a peer is
// in them: the load balancers allowed to send a PROXY protocol header.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace itk {

struct AddressRange {
  int family = 0;         // AF_INET or AF_INET6
  uint8_t bytes[16] = {};  // network address (4 bytes for AF_INET)
  unsigned prefix = 0;     // leading bits that must match
};

// "192.0.2.1", "192.0.2.0/24", "2001:db8::1", "2001:db8::/32". Returns "" or what is wrong, in words
// that follow the value in an error message.
std::string parse_address_range(std::string_view text, AddressRange& out);

// Whether `peer` (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as its IPv4 address) lies in
// one of `ranges`.
bool address_in(const std::vector<AddressRange>& ranges, const sockaddr_storage& peer);

// "192.0.2.1" / "2001:db8::1" for an AF_INET/AF_INET6 address, its port as text; "" otherwise.
std::string address_text(const sockaddr_storage& ss);
std::string port_text(const sockaddr_storage& ss);

}  // namespace itk

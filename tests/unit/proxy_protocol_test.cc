// PROXY protocol headers (v1 text, v2 binary) and the address ranges of ProxyProtocolFrom.
#include "http/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "config/address_range.h"

namespace itk {
namespace {

std::string v2(uint8_t ver_cmd, uint8_t fam, const std::string& body) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(ver_cmd);
  h += static_cast<char>(fam);
  h += static_cast<char>(body.size() >> 8);
  h += static_cast<char>(body.size() & 0xff);
  return h + body;
}

std::string inet4(const char* src, const char* dst, uint16_t sport, uint16_t dport) {
  std::string b(12, '\0');
  inet_pton(AF_INET, src, b.data());
  inet_pton(AF_INET, dst, b.data() + 4);
  uint16_t s = htons(sport), d = htons(dport);
  memcpy(b.data() + 8, &s, 2);
  memcpy(b.data() + 10, &d, 2);
  return b;
}

ProxyParse parse(const std::string& bytes, ProxyHeader& h) {
  std::string why;
  return proxy_parse(bytes, h, why);
}

}  // namespace

TEST(ProxyProtocol, Version1) {
  ProxyHeader h;
  std::string line = "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n";
  ASSERT_EQ(parse(line + "GET / HTTP/1.1\r\n", h), ProxyParse::complete);
  EXPECT_EQ(h.length, line.size());
  EXPECT_EQ(address_text(h.addrs.client), "203.0.113.7");
  EXPECT_EQ(port_text(h.addrs.client), "56324");
  EXPECT_EQ(address_text(h.addrs.server), "192.0.2.1");
  EXPECT_EQ(port_text(h.addrs.server), "443");
  ASSERT_EQ(parse("PROXY TCP6 2001:db8::7 2001:db8::1 1 80\r\n", h), ProxyParse::complete);
  EXPECT_EQ(address_text(h.addrs.client), "2001:db8::7");
  // UNKNOWN: the balancer's own connection; the socket's addresses stand.
  ASSERT_EQ(parse("PROXY UNKNOWN whatever\r\n", h), ProxyParse::complete);
  EXPECT_EQ(h.addrs.client.ss_family, AF_UNSPEC);
}

TEST(ProxyProtocol, Version1ArrivesInPieces) {
  std::string line = "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n";
  for (size_t n = 0; n < line.size(); n++) {
    ProxyHeader h;
    EXPECT_EQ(parse(line.substr(0, n), h), ProxyParse::incomplete) << n;
  }
}

TEST(ProxyProtocol, Version1Refused) {
  for (const std::string& bad :
       {std::string("GET / HTTP/1.1\r\n"), std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
        std::string("PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n"), std::string("PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n"),
        std::string("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), std::string("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
        std::string("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), std::string("PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n"),
        "PROXY TCP4 " + std::string(120, '1') + "\r\n", "PROXY TCP4 " + std::string(120, '1'),
        // found by fuzzing: inet_pton stops at a NUL, so "203.0.7.1\0junk" passed for an address
        std::string("PROXY TCP4 203.0.7.1\0\x19 192.0.41.4 4424 443\r\n", 44)}) {
    ProxyHeader h;
    EXPECT_EQ(parse(bad, h), ProxyParse::invalid) << bad;
  }
}

TEST(ProxyProtocol, Version2) {
  ProxyHeader h;
  std::string hdr = v2(0x21, 0x11, inet4("203.0.113.7", "192.0.2.1", 56324, 443));
  ASSERT_EQ(parse(hdr + "\x16\x03\x01", h), ProxyParse::complete);
  EXPECT_EQ(h.length, hdr.size());
  EXPECT_EQ(address_text(h.addrs.client), "203.0.113.7");
  EXPECT_EQ(port_text(h.addrs.server), "443");
  EXPECT_FALSE(h.addrs.tls_at_balancer);
  for (size_t n = 0; n < hdr.size(); n++) EXPECT_EQ(parse(hdr.substr(0, n), h), ProxyParse::incomplete) << n;
  // TLVs are skipped; PP2_TYPE_SSL with PP2_CLIENT_SSL says the client spoke TLS to the balancer.
  std::string tlvs = std::string("\x04\x00\x03xyz", 6) + std::string("\x20\x00\x05\x01\x00\x00\x00\x00", 8);
  ASSERT_EQ(parse(v2(0x21, 0x11, inet4("203.0.113.7", "192.0.2.1", 1, 443) + tlvs), h), ProxyParse::complete);
  EXPECT_TRUE(h.addrs.tls_at_balancer);
  // LOCAL (health checks): the balancer speaks for itself.
  ASSERT_EQ(parse(v2(0x20, 0x00, ""), h), ProxyParse::complete);
  EXPECT_EQ(h.addrs.client.ss_family, AF_UNSPEC);
  EXPECT_EQ(h.length, 16u);
}

TEST(ProxyProtocol, Version2Refused) {
  std::string addrs = inet4("203.0.113.7", "192.0.2.1", 1, 2);
  for (const std::string& bad : {v2(0x31, 0x11, addrs), v2(0x22, 0x11, addrs), v2(0x21, 0x12, addrs),
                                 v2(0x21, 0x11, addrs.substr(0, 8)), v2(0x21, 0x41, addrs),
                                 v2(0x21, 0x11, addrs + std::string("\x20\x00\x09\x01", 4)),
                                 v2(0x21, 0x11, addrs + std::string("\x20\x00", 2)),
                                 v2(0x21, 0x11, std::string(kProxyMax, 'x'))}) {
    ProxyHeader h;
    EXPECT_EQ(parse(bad, h), ProxyParse::invalid);
  }
}

TEST(AddressRange, ParsesAndMatches) {
  std::vector<AddressRange> ranges;
  for (const char* t : {"127.0.0.1", "10.0.0.0/8", "2001:db8::/32", "192.0.2.128/25"}) {
    AddressRange r;
    ASSERT_EQ(parse_address_range(t, r), "") << t;
    ranges.push_back(r);
  }
  auto v4 = [](const char* a) {
    sockaddr_storage ss{};
    auto& s = reinterpret_cast<sockaddr_in&>(ss);
    s.sin_family = AF_INET;
    inet_pton(AF_INET, a, &s.sin_addr);
    return ss;
  };
  auto v6 = [](const char* a) {
    sockaddr_storage ss{};
    auto& s = reinterpret_cast<sockaddr_in6&>(ss);
    s.sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return ss;
  };
  EXPECT_TRUE(address_in(ranges, v4("127.0.0.1")));
  EXPECT_FALSE(address_in(ranges, v4("127.0.0.2")));
  EXPECT_TRUE(address_in(ranges, v4("10.255.0.1")));
  EXPECT_FALSE(address_in(ranges, v4("11.0.0.1")));
  EXPECT_TRUE(address_in(ranges, v4("192.0.2.200")));
  EXPECT_FALSE(address_in(ranges, v4("192.0.2.100")));
  EXPECT_TRUE(address_in(ranges, v6("2001:db8:1::5")));
  EXPECT_FALSE(address_in(ranges, v6("2001:db9::5")));
  EXPECT_TRUE(address_in(ranges, v6("::ffff:10.1.2.3")));  // IPv4 on a dual-stack socket
  AddressRange r;
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0/8", "example.org", "10.0.0.0/", "10.0.0.0/x", ""})
    EXPECT_NE(parse_address_range(bad, r), "") << bad;
}

}  // namespace itk

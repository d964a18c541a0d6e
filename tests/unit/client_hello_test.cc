// The SNI of a peeked ClientHello: real hellos made by OpenSSL's client (TLS 1.2 and 1.3, every prefix, re-framed
// into many records) and hand-made ones with every length wrong, duplicates, bad names and oversized hellos.
#include "tls/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "tls/tls_ptr.h"

namespace itk {
namespace {

struct Parsed {
  HelloParse st;
  std::string name;
  std::string why;
};

Parsed parse(std::string_view bytes) {
  Parsed p{};
  p.st = parse_client_hello(bytes, p.name, p.why);
  return p;
}

// The first flight of an OpenSSL client: SSL_connect on memory BIOs, once; what it wrote is the hello.
struct ClientOptions {
  const char* sni = nullptr;
  int max_version = TLS1_3_VERSION;
  size_t extra_extension = 0;  // bytes of a private extension, to make the hello as large as that
  unsigned max_fragment = 0;   // OpenSSL's own record size, to have it fragment the hello
};

std::string openssl_hello(const ClientOptions& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), o.max_version);
  const std::string extra(o.extra_extension, 'x');
  if (o.extra_extension)
    SSL_CTX_add_custom_ext(
        ctx.get(), 0xfe00, SSL_EXT_CLIENT_HELLO,
        [](SSL*, unsigned, unsigned, const unsigned char** out, size_t* outlen, X509*, size_t, int*, void* arg) {
          const auto* data = static_cast<const std::string*>(arg);
          *out = reinterpret_cast<const unsigned char*>(data->data());
          *outlen = data->size();
          return 1;
        },
        nullptr, const_cast<std::string*>(&extra), nullptr, nullptr);
  SslPtr ssl(SSL_new(ctx.get()));
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);
  if (o.sni) SSL_set_tlsext_host_name(ssl.get(), o.sni);
  if (o.max_fragment) SSL_set_max_send_fragment(ssl.get(), o.max_fragment);
  EXPECT_EQ(SSL_connect(ssl.get()), -1);
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string u8(size_t v) { return std::string(1, static_cast<char>(v)); }
std::string u16(size_t v) { return u8(v >> 8) + u8(v & 0xff); }
std::string u24(size_t v) { return u8(v >> 16) + u16(v & 0xffff); }
// A vector with its length prefix; `lie` makes the prefix say more or less than it holds.
std::string vec8(const std::string& s, int lie = 0) { return u8(s.size() + lie) + s; }
std::string vec16(const std::string& s, int lie = 0) { return u16(s.size() + lie) + s; }

std::string extension(unsigned type, const std::string& data, int lie = 0) { return u16(type) + vec16(data, lie); }
std::string sni(const std::string& name) { return extension(0, vec16(u8(0) + vec16(name))); }
const std::string kGroups = extension(10, vec16(u16(29)));

struct Fields {
  std::string random = std::string(32, 'r');
  std::string session_id = vec8(std::string(32, 's'));
  std::string ciphers = vec16(u16(0x1301) + u16(0xc02f));
  std::string compression = vec8(u8(0));
  std::string extensions = vec16(sni("a.test") + kGroups);
};

std::string body(const Fields& f) {
  return u16(0x0303) + f.random + f.session_id + f.ciphers + f.compression + f.extensions;
}
std::string handshake(const std::string& body, unsigned type = 1, int lie = 0) {
  return u8(type) + u24(body.size() + lie) + body;
}
std::string record(const std::string& payload, unsigned version = 0x0301, int lie = 0, unsigned type = 22) {
  return u8(type) + u16(version) + vec16(payload, lie);
}
std::string hello(const Fields& f) { return record(handshake(body(f))); }

// The handshake bytes of a hello that OpenSSL sent in one record, framed again in records of `size`.
std::string reframe(const std::string& one_record, size_t size) {
  std::string payload = one_record.substr(5), out;
  for (size_t at = 0; at < payload.size(); at += size) out += record(payload.substr(at, size));
  return out;
}

}  // namespace

TEST(ClientHello, RealHellos) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    Parsed p = parse(openssl_hello({.sni = "www.example.org", .max_version = version}));
    EXPECT_EQ(p.st, HelloParse::complete) << p.why;
    EXPECT_EQ(p.name, "www.example.org");
    p = parse(openssl_hello({.max_version = version}));
    EXPECT_EQ(p.st, HelloParse::complete) << p.why;
    EXPECT_EQ(p.name, "");
    p = parse(openssl_hello({.sni = "WWW.Example.ORG", .max_version = version}));
    EXPECT_EQ(p.st, HelloParse::complete) << p.why;
    EXPECT_EQ(p.name, "www.example.org");
    p = parse(openssl_hello({.sni = "_acme.Example.org.", .max_version = version}));
    EXPECT_EQ(p.st, HelloParse::complete) << p.why;
    EXPECT_EQ(p.name, "_acme.example.org");
  }
  // The size of a hello with a post-quantum key share, and the largest that one record holds.
  for (size_t extra : {1800, 15000}) {
    Parsed p = parse(openssl_hello({.sni = "b.test", .extra_extension = extra}));
    EXPECT_EQ(p.st, HelloParse::complete) << p.why;
    EXPECT_EQ(p.name, "b.test");
  }
}

TEST(ClientHello, EveryPrefixIsIncomplete) {
  for (const std::string& whole : {openssl_hello({.sni = "www.example.org"}), openssl_hello({}),
                                   openssl_hello({.sni = "www.example.org", .max_version = TLS1_2_VERSION})}) {
    for (size_t n = 0; n < whole.size(); n++) {
      Parsed p = parse(std::string_view(whole).substr(0, n));
      ASSERT_EQ(p.st, HelloParse::incomplete) << n << " of " << whole.size() << ": " << p.why;
      EXPECT_EQ(p.name, "");
    }
    // What follows the hello is not read: the same answer with more bytes.
    EXPECT_EQ(parse(whole + "\x14\x03\x03\x00\x01\x01").st, HelloParse::complete);
  }
}

TEST(ClientHello, FragmentedOverRecords) {
  const std::string whole = openssl_hello({.sni = "www.example.org"});
  for (size_t size : {1, 2, 3, 4, 5, 7, 64, 511}) {
    const std::string split = reframe(whole, size);
    Parsed p = parse(split);
    EXPECT_EQ(p.st, HelloParse::complete) << size << ": " << p.why;
    EXPECT_EQ(p.name, "www.example.org") << size;
    for (size_t n = 0; n < split.size(); n++) ASSERT_EQ(parse(split.substr(0, n)).st, HelloParse::incomplete) << size << " " << n;
  }
  // OpenSSL's own fragmentation of a large hello.
  const std::string fragmented = openssl_hello({.sni = "c.test", .extra_extension = 3000, .max_fragment = 512});
  ASSERT_GT(fragmented.size(), 3000u);
  ASSERT_EQ(fragmented.substr(512 + 5, 3), "\x16\x03\x01") << "OpenSSL sent a second record";
  Parsed p = parse(fragmented);
  EXPECT_EQ(p.st, HelloParse::complete) << p.why;
  EXPECT_EQ(p.name, "c.test");
}

TEST(ClientHello, HandMadeHellos) {
  Parsed p = parse(hello(Fields{}));
  EXPECT_EQ(p.st, HelloParse::complete) << p.why;
  EXPECT_EQ(p.name, "a.test");
  Fields no_extensions;
  no_extensions.extensions = "";
  p = parse(hello(no_extensions));
  EXPECT_EQ(p.st, HelloParse::complete) << p.why;
  EXPECT_EQ(p.name, "");
  Fields empty_extensions;
  empty_extensions.extensions = vec16("");
  EXPECT_EQ(parse(hello(empty_extensions)).st, HelloParse::complete);
  // A record that says more than the hello: the rest of it is for the worker's OpenSSL to judge.
  EXPECT_EQ(parse(record(handshake(body(Fields{})), 0x0301, 10)).st, HelloParse::complete);
  // Empty records before and inside the hello are skipped.
  const std::string h = handshake(body(Fields{}));
  p = parse(record("") + record(h.substr(0, 10)) + record("") + record(h.substr(10)));
  EXPECT_EQ(p.st, HelloParse::complete) << p.why;
  EXPECT_EQ(p.name, "a.test");
  // A handshake message longer than its records so far waits for the next one.
  EXPECT_EQ(parse(record(h.substr(0, 100))).st, HelloParse::incomplete);
  EXPECT_EQ(parse(record(h.substr(0, 100)) + "\x16\x03").st, HelloParse::incomplete);
}

TEST(ClientHello, Malformed) {
  auto with = [](auto change) {
    Fields f;
    change(f);
    return hello(f);
  };
  const std::string b = body(Fields{});
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"session id longer than it says", with([](Fields& f) { f.session_id = vec8(std::string(8, 's'), 1); })},
      {"session id shorter than it says", with([](Fields& f) { f.session_id = vec8(std::string(8, 's'), -1); })},
      {"session id of 33 bytes", with([](Fields& f) { f.session_id = vec8(std::string(33, 's')); })},
      {"cipher suites longer", with([](Fields& f) { f.ciphers = vec16(u16(0x1301), 2); })},
      {"cipher suites shorter", with([](Fields& f) { f.ciphers = vec16(u16(0x1301) + u16(0x1302), -2); })},
      {"cipher suites odd", with([](Fields& f) { f.ciphers = vec16(u16(0x1301) + u8(0x13)); })},
      {"cipher suites empty", with([](Fields& f) { f.ciphers = vec16(""); })},
      {"compression longer", with([](Fields& f) { f.compression = vec8(u8(0), 1); })},
      {"compression shorter", with([](Fields& f) { f.compression = vec8(u8(0) + u8(0), -1); })},
      {"compression empty", with([](Fields& f) { f.compression = vec8(""); })},
      {"extensions longer", with([](Fields& f) { f.extensions = vec16(sni("a.test") + kGroups, 1); })},
      {"extensions shorter", with([](Fields& f) { f.extensions = vec16(sni("a.test") + kGroups, -1); })},
      {"an extension longer", with([](Fields& f) { f.extensions = vec16(sni("a.test") + extension(10, vec16(u16(29)), 1)); })},
      {"an extension shorter", with([](Fields& f) { f.extensions = vec16(extension(10, vec16(u16(29)), -1) + sni("a.test")); })},
      {"server_name longer", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test")), 1)); })},
      {"server_name shorter", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test")), -1)); })},
      {"name list longer", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test"), 1))); })},
      {"name list shorter", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test"), -1))); })},
      {"name longer", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test", 1)))); })},
      {"name shorter", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test", -1)))); })},
      {"duplicate extension", with([](Fields& f) { f.extensions = vec16(kGroups + sni("a.test") + kGroups); })},
      {"two server_names", with([](Fields& f) { f.extensions = vec16(sni("a.test") + sni("a.test")); })},
      {"two names", with([](Fields& f) {
         f.extensions = vec16(extension(0, vec16(u8(0) + vec16("a.test") + u8(0) + vec16("b.test"))));
       })},
      {"name type 1", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(u8(1) + vec16("a.test")))); })},
      {"empty name list", with([](Fields& f) { f.extensions = vec16(extension(0, vec16(""))); })},
      {"empty extension", with([](Fields& f) { f.extensions = vec16(extension(0, "")); })},
      {"empty name", with([](Fields& f) { f.extensions = vec16(sni("")); })},
      {"only a dot", with([](Fields& f) { f.extensions = vec16(sni(".")); })},
      {"leading dot", with([](Fields& f) { f.extensions = vec16(sni(".a.test")); })},
      {"empty label", with([](Fields& f) { f.extensions = vec16(sni("a..test")); })},
      {"two trailing dots", with([](Fields& f) { f.extensions = vec16(sni("a.test..")); })},
      {"name of 256 bytes", with([](Fields& f) { f.extensions = vec16(sni(std::string(252, 'a') + ".com")); })},
      {"space", with([](Fields& f) { f.extensions = vec16(sni("a .test")); })},
      {"NUL", with([](Fields& f) { f.extensions = vec16(sni(std::string("a\0.test", 7))); })},
      {"UTF-8", with([](Fields& f) { f.extensions = vec16(sni("b\xc3\xbc.test")); })},
      {"slash", with([](Fields& f) { f.extensions = vec16(sni("a/b.test")); })},
      {"port", with([](Fields& f) { f.extensions = vec16(sni("a.test:443")); })},
      {"bytes after the extensions", with([](Fields& f) { f.extensions = vec16(sni("a.test")) + "x"; })},
      {"handshake shorter", record(handshake(b, 1, -1))},
      {"handshake longer", record(handshake(b, 1, 1))},
      {"record shorter", record(handshake(b), 0x0301, -1)},
      {"handshake type 2", record(handshake(b, 2))},
      {"record of 16385 bytes", record(handshake(b) + std::string(16385 - 4 - b.size(), 'p'))},
      {"record version 3.0", record(handshake(b), 0x0300)},
      {"record version 3.4", record(handshake(b), 0x0304)},
      {"record version 2.1", record(handshake(b), 0x0201)},
      {"record shorter, then another type", record(handshake(b), 0x0301, -1) + record("x", 0x0303, 0, 21)},
      {"an alert between the fragments", record(handshake(b).substr(0, 20)) + record("\x02\x28", 0x0303, 0, 21)},
      {"SSLv2 hello", std::string("\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10", 11) + std::string(37, 'x')},
  };
  for (const auto& [what, bytes] : cases) {
    Parsed p = parse(bytes);
    EXPECT_EQ(p.st, HelloParse::malformed) << what;
    EXPECT_FALSE(p.why.empty()) << what;
    EXPECT_EQ(p.name, "") << what;
    // A prefix is incomplete or already malformed, never complete; once malformed, it stays so.
    bool bad = false;
    for (size_t n = 0; n < bytes.size(); n++) {
      HelloParse st = parse(bytes.substr(0, n)).st;
      ASSERT_TRUE(st == HelloParse::incomplete || st == HelloParse::malformed) << what << " " << n;
      ASSERT_TRUE(!bad || st == HelloParse::malformed) << what << " " << n;
      bad = st == HelloParse::malformed;
    }
  }
}

TEST(ClientHello, Size) {
  // The largest hello in one record is complete; one byte more is malformed as soon as its header is in.
  auto padded = [](size_t pad) {
    Fields f;
    f.extensions = vec16(sni("a.test") + extension(21, std::string(pad, '\0')));
    return body(f);
  };
  const size_t pad = kMaxClientHelloBytes - record(handshake(padded(0))).size();
  const std::string h = record(handshake(padded(pad)));
  ASSERT_EQ(h.size(), kMaxClientHelloBytes);
  EXPECT_EQ(parse(h).st, HelloParse::complete);
  EXPECT_EQ(parse(std::string_view(h).substr(0, h.size() - 1)).st, HelloParse::incomplete);
  Parsed p = parse(record(handshake(padded(pad + 1)).substr(0, 4)));
  EXPECT_EQ(p.st, HelloParse::malformed);
  EXPECT_NE(p.why.find("over"), std::string::npos) << p.why;
  // Small records cost their headers: a hello that would fit whole does not in 1-byte records.
  Fields big;
  big.extensions = vec16(sni("a.test") + extension(21, std::string(3000, '\0')));
  const std::string split = reframe(hello(big), 1);
  EXPECT_EQ(parse(split).st, HelloParse::malformed);
  EXPECT_EQ(parse(split.substr(0, kMaxClientHelloBytes)).st, HelloParse::malformed);
  // Whatever the bytes, kMaxClientHelloBytes of them are never incomplete.
  std::string empties;
  while (empties.size() < kMaxClientHelloBytes) empties += record("");
  EXPECT_EQ(parse(empties.substr(0, kMaxClientHelloBytes - 1)).st, HelloParse::incomplete);
  EXPECT_EQ(parse(empties.substr(0, kMaxClientHelloBytes)).st, HelloParse::malformed);
  EXPECT_EQ(parse(empties).st, HelloParse::malformed);
}

TEST(ClientHello, NotTls) {
  Parsed p = parse("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  EXPECT_EQ(p.st, HelloParse::not_tls);
  EXPECT_FALSE(p.why.empty());
  EXPECT_EQ(parse("G").st, HelloParse::not_tls);
  EXPECT_EQ(parse(std::string(1, '\0')).st, HelloParse::not_tls);
  EXPECT_EQ(parse("").st, HelloParse::incomplete);
  EXPECT_EQ(parse("\x16").st, HelloParse::incomplete);
}

}  // namespace itk

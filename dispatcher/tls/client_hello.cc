// ClientHello decoding for routing by SNI: handshake records reassembled into the first handshake message,
// whose fields are walked to the server_name extension. Every length is checked before it is used.
#include "tls/client_hello.h"

#include <algorithm>
#include <bitset>
#include <cstdint>

#include "http/http_chars.h"

namespace itk {
namespace {

constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384;  // RFC 8446 §5.1, RFC 5246 §6.2.1
constexpr size_t kHandshakeHeader = 4;
constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr unsigned kServerNameExtension = 0;
constexpr unsigned kHostName = 0;
constexpr size_t kMaxSessionId = 32;
constexpr size_t kMaxHostName = 255;  // RFC 6066 §3; OpenSSL refuses longer ones too

// A ClientHello body of which only a prefix may have arrived. A field that overruns the vector holding it
// is malformed at once, whatever comes later; one that merely has not arrived is incomplete.
class Cursor {
 public:
  Cursor(std::string_view have, std::string& why) : have_(have), why_(why) {}

  HelloParse result() const { return result_; }
  size_t at() const { return at_; }

  bool fail(std::string why) {
    why_ = std::move(why);
    result_ = HelloParse::malformed;
    return false;
  }

  // Steps over n bytes that must end by `end`.
  bool take(size_t n, size_t end, const char* what) {
    if (n > end - at_) return fail(std::string("ClientHello ") + what + " overruns its enclosing length");
    if (n > have_.size() - at_) {
      result_ = HelloParse::incomplete;
      return false;
    }
    at_ += n;
    return true;
  }

  // Reads a big-endian number of `width` bytes that must end by `end`.
  bool number(size_t width, size_t end, const char* what, size_t& n) {
    const size_t start = at_;
    if (!take(width, end, what)) return false;
    n = 0;
    for (size_t i = start; i < at_; i++) n = n << 8 | static_cast<uint8_t>(have_[i]);
    return true;
  }

  // Reads the length of a vector whose contents must end by `end`; they need not have arrived.
  bool length(size_t width, size_t end, const char* what, size_t& n) {
    if (!number(width, end, what, n)) return false;
    if (n > end - at_) return fail(std::string("ClientHello ") + what + " longer than what holds it");
    return true;
  }

  // What arrived of the next n bytes.
  std::string_view arrived(size_t n) const { return have_.substr(at_, n); }

 private:
  std::string_view have_;
  std::string& why_;
  size_t at_ = 0;
  HelloParse result_ = HelloParse::complete;
};

// Letters, digits, hyphen, dot; the underscore too, which DNS names of services carry and which Host
// headers are allowed. Nothing else can name a vhost, and a NUL or a byte above 127 would let the name
// the acceptor routes by differ from the one a vhost's software later reads.
bool host_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

// The server_name extension (RFC 6066 §3) from the cursor to `end`: exactly one host_name entry filling
// the list. RFC 6066 allows other name types, but none was ever defined and OpenSSL refuses them.
bool server_name(Cursor& c, size_t end, std::string& name) {
  size_t list = 0, n = 0, type = 0;
  if (!c.length(2, end, "server_name list", list)) return false;
  if (c.at() + list != end) return c.fail("server_name list that does not fill its extension");
  if (list == 0) return c.fail("empty server_name list");
  if (!c.number(1, end, "server_name type", type)) return false;
  if (type != kHostName) return c.fail("server_name of type " + std::to_string(type) + ", not host_name");
  if (!c.length(2, end, "host name", n)) return false;
  if (c.at() + n != end) return c.fail("server_name list with more than one name");
  if (n == 0) return c.fail("empty host name");
  if (n > kMaxHostName) return c.fail("host name of " + std::to_string(n) + " bytes, over 255");
  const std::string_view got = c.arrived(n);
  if (!std::all_of(got.begin(), got.end(), host_name_char))
    return c.fail("host name with a byte other than a letter, digit, '-', '.' or '_'");
  // An empty label names no host; only the last dot (the absolute form) may end one.
  if (got.starts_with('.') || got.find("..") != std::string_view::npos)
    return c.fail("host name with an empty label");
  if (!c.take(n, end, "host name")) return false;
  name.assign(got);
  for (char& ch : name) ch = ascii_lower(ch);
  if (name.back() == '.') name.pop_back();  // the absolute form names the same host
  return true;
}

// The ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) of `size` bytes, of which `have` arrived.
HelloParse hello_body(std::string_view have, size_t size, std::string& name, std::string& why) {
  Cursor c(have, why);
  size_t n = 0;
  // legacy_version and random are OpenSSL's to judge, in the worker: the version chosen does not change
  // where the connection goes.
  if (!c.take(2 + 32, size, "version and random")) return c.result();
  if (!c.length(1, size, "session id", n)) return c.result();
  if (n > kMaxSessionId) {
    c.fail("session id of " + std::to_string(n) + " bytes, over 32");
    return c.result();
  }
  if (!c.take(n, size, "session id")) return c.result();
  if (!c.length(2, size, "cipher suites", n)) return c.result();
  if (n < 2 || n % 2) {
    c.fail("cipher suites of " + std::to_string(n) + " bytes, not a non-empty list of 2-byte values");
    return c.result();
  }
  if (!c.take(n, size, "cipher suites")) return c.result();
  if (!c.length(1, size, "compression methods", n)) return c.result();
  if (n == 0) {
    c.fail("empty compression methods");
    return c.result();
  }
  if (!c.take(n, size, "compression methods")) return c.result();
  if (c.at() == size) return HelloParse::complete;  // no extensions at all (TLS 1.2 allows it): no name
  if (!c.length(2, size, "extensions", n)) return c.result();
  if (c.at() + n != size) {
    c.fail("ClientHello with bytes after its extensions");
    return c.result();
  }
  // RFC 8446 §4.2: no two extensions of a type; two server_names would be two answers to "which vhost".
  std::bitset<65536> seen;
  while (c.at() < size) {
    size_t type = 0, len = 0;
    if (!c.number(2, size, "extension type", type)) return c.result();
    if (seen[type]) {
      c.fail("extension " + std::to_string(type) + " twice (RFC 8446 §4.2)");
      return c.result();
    }
    seen[type] = true;
    if (!c.length(2, size, "extension", len)) return c.result();
    const size_t end = c.at() + len;
    if (type == kServerNameExtension ? !server_name(c, end, name) : !c.take(len, end, "extension")) return c.result();
  }
  return HelloParse::complete;
}

}  // namespace

HelloParse parse_client_hello(std::string_view bytes, std::string& server_name, std::string& why) {
  server_name.clear();
  if (bytes.empty()) return HelloParse::incomplete;
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  // An SSLv2-compatible hello (a 2-byte length with the high bit set) comes only from clients older than
  // TLS 1.2, which itk refuses, and cannot carry extensions, so no name. malformed, not not_tls: it is no
  // HTTP request either, and a 400 in plain text would answer nobody.
  if (b[0] & 0x80) {
    why = "SSLv2-style ClientHello";
    return HelloParse::malformed;
  }
  if (b[0] != kHandshakeRecord) {
    why = "not a TLS handshake record";
    return HelloParse::not_tls;
  }
  const bool capped = bytes.size() >= kMaxClientHelloBytes;
  bytes = bytes.substr(0, kMaxClientHelloBytes);
  auto malformed = [&](std::string reason) {
    why = std::move(reason);
    return HelloParse::malformed;
  };
  // The first handshake message, reassembled from the records' payloads (RFC 8446 §5.1: a message may
  // span records, and only the bytes up to its end are taken, so what follows it is the worker's).
  std::string message;
  size_t message_size = 0;  // with its header, once that arrived
  // A record header is judged by what arrived of it, so that no prefix that cannot end well is incomplete.
  for (size_t at = 0; at < bytes.size();) {
    const size_t header = bytes.size() - at;
    if (b[at] != kHandshakeRecord)
      return malformed("record of type " + std::to_string(b[at]) + " inside the ClientHello");
    if (header < 3) break;
    const unsigned version = b[at + 1] << 8 | b[at + 2];
    if (version < 0x0301 || version > 0x0303)
      return malformed("record version " + std::to_string(version >> 8) + "." + std::to_string(version & 0xff) +
                       ", not one of TLS 1.0 to 1.2");
    if (header < kRecordHeader) break;
    const size_t len = static_cast<size_t>(b[at + 3]) << 8 | b[at + 4];
    if (len > kMaxRecord) return malformed("record of " + std::to_string(len) + " bytes, over 16384");
    at += kRecordHeader;
    const size_t arrived = std::min(len, bytes.size() - at);
    const size_t want = message_size ? message_size - message.size() : kHandshakeHeader - message.size();
    size_t used = std::min(want, arrived);
    message.append(bytes.substr(at, used));
    if (!message.empty() && static_cast<uint8_t>(message[0]) != kClientHello)
      return malformed("handshake message of type " + std::to_string(static_cast<uint8_t>(message[0])) +
                       ", not a ClientHello");
    if (!message_size && message.size() == kHandshakeHeader) {
      message_size = kHandshakeHeader + (static_cast<size_t>(static_cast<uint8_t>(message[1])) << 16 |
                                         static_cast<size_t>(static_cast<uint8_t>(message[2])) << 8 |
                                         static_cast<uint8_t>(message[3]));
      const size_t more = std::min(message_size - message.size(), arrived - used);
      message.append(bytes.substr(at + used, more));
      used += more;
    }
    if (message_size) {
      // The earliest the message can end: what it lacks after what this record holds, and one more
      // header if this record cannot hold it.
      const size_t lacking = message_size - message.size();
      const size_t earliest = at + used + lacking + (lacking > len - used ? kRecordHeader : 0);
      if (earliest > kMaxClientHelloBytes)
        return malformed("ClientHello of " + std::to_string(message_size) + " bytes in records, over itk's " +
                         std::to_string(kMaxClientHelloBytes));
      if (lacking == 0) break;
    }
    if (arrived < len) break;
    at += len;
  }
  HelloParse st = HelloParse::incomplete;
  if (message_size)
    st = hello_body(std::string_view(message).substr(kHandshakeHeader), message_size - kHandshakeHeader,
                    server_name, why);
  if (st == HelloParse::incomplete && capped)
    st = malformed("ClientHello not complete in " + std::to_string(kMaxClientHelloBytes) + " bytes");
  if (st != HelloParse::complete) server_name.clear();
  return st;
}

}  // namespace itk

// Encoding and strict decoding of key process messages (native byte order: both ends are this host).
#include "tls/key_protocol.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "sys/io.h"
#include "sys/log.h"

namespace itk {

int key_send_registration(int registration_fd, int channel, uint32_t key_id, std::string_view server_name,
                          std::optional<uint32_t> also) {
  if (server_name.empty() || server_name.size() > kKeyMaxServerName) return -EINVAL;
  KeyMessage m;
  m.type = KeyMsg::register_channel;
  m.key = key_id;
  m.arg = also ? *also + 1 : 0;
  m.payload.assign(server_name);
  std::string d = key_encode(m);
  iovec iov{d.data(), d.size()};
  ssize_t n = send_with_fd(registration_fd, &iov, 1, channel, MSG_NOSIGNAL);
  if (n < 0) return -errno;
  return n == static_cast<ssize_t>(d.size()) ? 0 : -EMSGSIZE;
}

uint64_t ticket_epoch_now() {
  timespec ts{};
  (void)clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) / kTicketEpochSeconds;
}

const char* key_status_text(uint32_t status) {
  switch (static_cast<KeyStatus>(status)) {
    case KeyStatus::ok: return "ok";
    case KeyStatus::no_such_key: return "no such key";
    case KeyStatus::wrong_key_type: return "wrong key type";
    case KeyStatus::bad_input: return "bad input";
    case KeyStatus::failed: return "signing failed";
    case KeyStatus::not_bound: return "the channel is not bound to this key";
    case KeyStatus::no_ticket_secret: return "no ticket secret";
  }
  return "unknown status";
}

namespace {

void put32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }

uint32_t get32(std::string_view in, size_t at) {
  uint32_t v;
  memcpy(&v, in.data() + at, sizeof v);
  return v;
}

}  // namespace

std::string key_encode_header(const KeyMessage& m, size_t payload_size) {
  std::string out;
  out.reserve(kKeyHeaderSize + payload_size);
  put32(out, static_cast<uint32_t>(m.type));
  put32(out, m.id);
  put32(out, m.key);
  put32(out, m.arg);
  put32(out, static_cast<uint32_t>(payload_size));
  return out;
}

std::string key_encode(const KeyMessage& m) {
  std::string_view payload = m.payload;
  if (payload.size() > kKeyMaxPayload) payload = payload.substr(0, kKeyMaxPayload);
  std::string out = key_encode_header(m, payload.size());
  out.append(payload);
  return out;
}

std::string key_decode(std::string_view datagram, std::initializer_list<KeyMsg> allowed, KeyMessage& out) {
  if (datagram.size() < kKeyHeaderSize)
    return strprintf("message of %zu bytes is shorter than the %zu-byte header", datagram.size(), kKeyHeaderSize);
  if (datagram.size() > kKeyMaxMessage)
    return strprintf("message of %zu bytes is over the limit of %zu", datagram.size(), kKeyMaxMessage);
  uint32_t type = get32(datagram, 0);
  bool known = false;
  for (KeyMsg k : allowed) known = known || static_cast<uint32_t>(k) == type;
  if (!known) return strprintf("message type 0x%x is not expected here", type);
  uint32_t len = get32(datagram, 16);
  if (len != datagram.size() - kKeyHeaderSize)
    return strprintf("length field says %u payload bytes, the message carries %zu", len,
                     datagram.size() - kKeyHeaderSize);
  out.type = static_cast<KeyMsg>(type);
  out.id = get32(datagram, 4);
  out.key = get32(datagram, 8);
  out.arg = get32(datagram, 12);
  out.payload.assign(datagram.substr(kKeyHeaderSize));
  return "";
}

}  // namespace itk

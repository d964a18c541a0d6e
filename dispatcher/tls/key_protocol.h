// Wire format between the key process, its clients and the processes that register them: a 20-byte
// header and a bounded payload per SOCK_SEQPACKET datagram, every size checked, an unexpected type
// refused (relayd's ca.c).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace itk {

enum class KeyMsg : uint32_t {
  // client -> keys, on its channel. key: the channel's key id; arg: the RSA padding; payload: the block
  // to transform with the private key (for TLS: a PSS-encoded block with RSA_NO_PADDING, or a
  // DigestInfo with PKCS#1 padding).
  rsa_private_encrypt = 1,
  // client -> keys, on its channel. key: the channel's key id; payload: the digest; the reply carries a
  // DER ECDSA-Sig-Value.
  ecdsa_sign = 2,
  // client -> keys, on its channel. key and arg 0, no payload: the channel's binding names the vhost.
  // The reply's payload is kTicketKeysReplySize bytes: the rotation epoch (uint64) and the ticket keys
  // of that epoch and of the one before (kTicketKeySize bytes each).
  ticket_keys = 3,
  // keys -> client. id and key: the request's; arg: 0 done, else a KeyStatus; payload: the result.
  reply = 0x80,
  // master or spawner -> keys, on the registration socket, with exactly one descriptor (SCM_RIGHTS):
  // the key process's end of a new channel. key: the one key id the channel may sign with; payload:
  // the ServerName of its vhost (1 to kKeyMaxServerName bytes), which its ticket keys derive from.
  register_channel = 0x100,
  // keys -> master, once, on the registration socket. arg: 0 every key loaded, 1 failed; payload: why.
  ready = 0x200,
  // master -> keys, once, on the registration socket right after ready. payload: the
  // kTicketSecretSize-byte secret every vhost's session ticket keys derive from.
  ticket_secret = 0x201,
};

// Why the key process refused a well-formed request (reply arg). not_bound: the channel is bound to
// another key; no_ticket_secret: the master has not sent the ticket secret.
enum class KeyStatus : uint32_t {
  ok = 0,
  no_such_key = 1,
  wrong_key_type = 2,
  bad_input = 3,
  failed = 4,
  not_bound = 5,
  no_ticket_secret = 6,
};

// Text for a reply's status, for error messages.
const char* key_status_text(uint32_t status);

constexpr size_t kKeyHeaderSize = 20;
// An RSA-16384 block is 2048 bytes; error texts are cut to fit.
constexpr size_t kKeyMaxPayload = 4096;
constexpr size_t kKeyMaxMessage = kKeyHeaderSize + kKeyMaxPayload;
// A DNS name has at most 253 characters; the rest is slack for a trailing dot or a port.
constexpr size_t kKeyMaxServerName = 255;

constexpr size_t kTicketSecretSize = 32;
// One session ticket key, laid out as RFC 5077 §4 suggests: key name, HMAC-SHA256 key, AES-256 key.
constexpr size_t kTicketKeyNameSize = 16, kTicketHmacKeySize = 32, kTicketAesKeySize = 32;
constexpr size_t kTicketKeySize = kTicketKeyNameSize + kTicketHmacKeySize + kTicketAesKeySize;
constexpr size_t kTicketKeysReplySize = 8 + 2 * kTicketKeySize;
// Ticket keys change every 12 hours: epoch = unix time / kTicketEpochSeconds.
constexpr uint64_t kTicketEpochSeconds = 12 * 3600;
// The ticket key epoch of the wall clock now.
uint64_t ticket_epoch_now();

struct KeyMessage {
  KeyMsg type = KeyMsg::reply;
  uint32_t id = 0;   // matches a reply to its request
  uint32_t key = 0;  // key id: index into tls_key_files()
  uint32_t arg = 0;
  std::string payload;
};

// The datagram for `m`; a payload over kKeyMaxPayload is cut (callers never send one).
std::string key_encode(const KeyMessage& m);
// The header alone, for `payload_size` bytes that follow it from elsewhere (m.payload is not read):
// a secret can then go out in a second iovec without being copied onto the heap.
std::string key_encode_header(const KeyMessage& m, size_t payload_size);

// Sends register_channel on the key process's registration socket with `channel` (one end of a new
// socketpair) attached by SCM_RIGHTS, bound to key `key_id` and the vhost `server_name`. Returns 0, or
// -errno (-EINVAL: a name that is empty or longer than kKeyMaxServerName; -EMSGSIZE: short send).
// `also` (arg = id + 1, 0 for none): a second key the channel may use, the default certificate's for the
// default vhost, whose clients without SNI are shown that one.
[[nodiscard]] int key_send_registration(int registration_fd, int channel, uint32_t key_id, std::string_view server_name,
                                        std::optional<uint32_t> also = std::nullopt);

// Parses one whole datagram. Returns "" or why it is refused: shorter than the header, a length field
// that disagrees with the datagram, a payload over the limit, or a type not in `allowed`.
std::string key_decode(std::string_view datagram, std::initializer_list<KeyMsg> allowed, KeyMessage& out);

}  // namespace itk

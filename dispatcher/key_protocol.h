// Wire format between acceptors, the master and the key process: a 20-byte header and a bounded
// payload per SOCK_SEQPACKET datagram, every size checked, an unexpected type refused (relayd's ca.c).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace itk {

enum class KeyMsg : uint32_t {
  // acceptor -> keys, on its channel. arg: the RSA padding; payload: the block to transform with the
  // private key (for TLS: a PSS-encoded block with RSA_NO_PADDING, or a DigestInfo with PKCS#1 padding).
  rsa_private_encrypt = 1,
  // acceptor -> keys, on its channel. payload: the digest; the reply carries a DER ECDSA-Sig-Value.
  ecdsa_sign = 2,
  // keys -> acceptor. id: the request's; arg: 0 done, else a KeyStatus; payload: the signature.
  reply = 0x80,
  // acceptor -> keys, on the registration socket, with exactly one descriptor (SCM_RIGHTS): the key
  // process's end of the acceptor's new channel.
  register_channel = 0x100,
  // keys -> master, once, on the registration socket. arg: 0 every key loaded, 1 failed; payload: why.
  ready = 0x200,
};

// Why the key process refused a well-formed request (reply arg).
enum class KeyStatus : uint32_t { ok = 0, no_such_key = 1, wrong_key_type = 2, bad_input = 3, failed = 4 };

constexpr size_t kKeyHeaderSize = 20;
// An RSA-16384 block is 2048 bytes; error texts are cut to fit.
constexpr size_t kKeyMaxPayload = 4096;
constexpr size_t kKeyMaxMessage = kKeyHeaderSize + kKeyMaxPayload;

struct KeyMessage {
  KeyMsg type = KeyMsg::reply;
  uint32_t id = 0;   // matches a reply to its request
  uint32_t key = 0;  // key id: index into tls_key_files()
  uint32_t arg = 0;
  std::string payload;
};

// The datagram for `m`; a payload over kKeyMaxPayload is cut (callers never send one).
std::string key_encode(const KeyMessage& m);

// Sends register_channel on the key process's registration socket with `channel` (one end of the
// acceptor's new socketpair) attached by SCM_RIGHTS. Returns 0, or -errno (-EMSGSIZE: short send).
int key_send_registration(int registration_fd, int channel);

// Parses one whole datagram. Returns "" or why it is refused: shorter than the header, a length field
// that disagrees with the datagram, a payload over the limit, or a type not in `allowed`.
std::string key_decode(std::string_view datagram, std::initializer_list<KeyMsg> allowed, KeyMessage& out);

}  // namespace itk

// Fuzz target: what the key process reads from a client's channel: the datagram decoder and the signing
// and ticket key core behind it (an RSA and an EC key made at start, a channel bound to each). A
// compromised worker may send anything: it must get a refusal, a signature or its own vhost's ticket
// keys, never a crash or a read out of bounds.
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tls/key_protocol.h"
#include "proc/key_server.h"

namespace {

itk::KeyStore* keys = nullptr;
itk::KeyChannel* channels = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  keys = new itk::KeyStore();
  keys->add(itk::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024})));
  keys->add(itk::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")));
  if (keys->set_ticket_secret(std::string(itk::kTicketSecretSize, 's')) != 0) abort();
  channels = new itk::KeyChannel[2]{{0, "a.test", false, std::nullopt}, {1, "b.test", false, std::nullopt}};
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  itk::KeyMessage m;
  std::string why =
      itk::key_decode(in, {itk::KeyMsg::rsa_private_encrypt, itk::KeyMsg::ecdsa_sign, itk::KeyMsg::ticket_keys}, m);
  if (why.empty()) {
    check(m.payload.size() <= itk::kKeyMaxPayload);
    // What decodes encodes back to the same datagram.
    check(itk::key_encode(m) == in);
  }
  for (uint32_t c = 0; c < 2; c++) {
    std::string reply;
    if (!keys->handle(channels[c], in, reply, why)) continue;
    itk::KeyMessage r;
    check(itk::key_decode(reply, {itk::KeyMsg::reply}, r).empty());
    // Nothing but the bound key signs.
    if (r.arg == static_cast<uint32_t>(itk::KeyStatus::ok) && m.type != itk::KeyMsg::ticket_keys) check(m.key == c);
  }
  return 0;
}

// Fuzz target: what the key process reads from an acceptor's channel: the datagram decoder and the
// signing core behind it (an RSA and an EC key made at start). A compromised acceptor may send anything:
// it must get a refusal or a signature, never a crash or a read out of bounds.
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "key_protocol.h"
#include "key_server.h"

namespace {


itk::KeyStore* keys = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  keys = new itk::KeyStore();
  keys->add(itk::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024})));
  keys->add(itk::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  itk::KeyMessage m;
  std::string why = itk::key_decode(in, {itk::KeyMsg::rsa_private_encrypt, itk::KeyMsg::ecdsa_sign}, m);
  if (why.empty()) {
    check(m.payload.size() <= itk::kKeyMaxPayload);
    // What decodes encodes back to the same datagram.
    check(itk::key_encode(m) == in);
  }
  std::string reply;
  if (keys->handle(in, reply, why)) {
    itk::KeyMessage r;
    check(itk::key_decode(reply, {itk::KeyMsg::reply}, r).empty());
  }
  return 0;
}

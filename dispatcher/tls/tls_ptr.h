// Owners for OpenSSL handles: each object is freed in exactly one place, as unique_fd does for descriptors.
#pragma once

#include <openssl/types.h>

#include <memory>

namespace itk {

struct SslFree {
  void operator()(SSL* p) const;
};
struct SslCtxFree {
  void operator()(SSL_CTX* p) const;
};
struct X509Free {
  void operator()(X509* p) const;
};
struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const;
};
struct BioFree {
  void operator()(BIO* p) const;
};
struct EvpKdfFree {
  void operator()(EVP_KDF* p) const;
};
struct EvpKdfCtxFree {
  void operator()(EVP_KDF_CTX* p) const;
};
struct EvpPkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const;
};
struct BignumFree {
  void operator()(BIGNUM* p) const;
};
// The legacy key types behind the key process's RSA_METHOD/EC_KEY_METHOD (tls/key_client.cc).
struct RsaFree {
  void operator()(RSA* p) const;
};
struct EcKeyFree {
  void operator()(EC_KEY* p) const;
};

using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using EvpKdfPtr = std::unique_ptr<EVP_KDF, EvpKdfFree>;
using EvpKdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, EvpKdfCtxFree>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using BignumPtr = std::unique_ptr<BIGNUM, BignumFree>;
using RsaPtr = std::unique_ptr<RSA, RsaFree>;
using EcKeyPtr = std::unique_ptr<EC_KEY, EcKeyFree>;

}  // namespace itk

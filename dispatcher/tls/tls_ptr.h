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

using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using EvpKdfPtr = std::unique_ptr<EVP_KDF, EvpKdfFree>;

}  // namespace itk

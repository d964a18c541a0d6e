// Deleters of the OpenSSL owners (kept out of the header so users need not include libssl's headers).
// RSA_free and EC_KEY_free are deprecated with the types they free, which the key process still uses.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tls/tls_ptr.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace itk {

void SslFree::operator()(SSL* p) const { SSL_free(p); }
void SslCtxFree::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
void X509Free::operator()(X509* p) const { X509_free(p); }
void EvpPkeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
void BioFree::operator()(BIO* p) const { BIO_free(p); }
void EvpKdfFree::operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
void EvpKdfCtxFree::operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
void EvpPkeyCtxFree::operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
void BignumFree::operator()(BIGNUM* p) const { BN_free(p); }
void RsaFree::operator()(RSA* p) const { RSA_free(p); }
void EcKeyFree::operator()(EC_KEY* p) const { EC_KEY_free(p); }

}  // namespace itk

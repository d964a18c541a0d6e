// Deleters of the OpenSSL owners (kept out of the header so users need not include libssl's headers).
#include "tls/tls_ptr.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace itk {

void SslFree::operator()(SSL* p) const { SSL_free(p); }
void SslCtxFree::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
void X509Free::operator()(X509* p) const { X509_free(p); }
void EvpPkeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
void BioFree::operator()(BIO* p) const { BIO_free(p); }
void EvpKdfFree::operator()(EVP_KDF* p) const { EVP_KDF_free(p); }

}  // namespace itk

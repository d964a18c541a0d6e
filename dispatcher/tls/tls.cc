// TLS contexts (TLS 1.2/1.3, AEAD ciphers with ECDHE, ALPN http/1.1, no renegotiation), SNI selection in
// the ClientHello callback, and the session ticket keys fetched from the key process.
#include "tls/tls.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>

#include <cstring>
#include <optional>

#include "sys/log.h"
#include "tls/key_client.h"
#include "tls/tls_config.h"

namespace itk {
namespace {

// Mozilla's "intermediate" TLS 1.2 list without DHE and without RSA key exchange: every suite is
// forward secret and AEAD, and the key process only ever signs (it never decrypts).
constexpr const char* kCipherList =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
// How long a session may be resumed (ticket lifetime hint): well inside the rotation period.
constexpr long kSessionTimeoutS = 7200;

struct TicketKey {
  unsigned char name[kTicketKeyNameSize];
  unsigned char hmac[kTicketHmacKeySize];
  unsigned char aes[kTicketAesKeySize];
};
static_assert(sizeof(TicketKey) == kTicketKeySize, "the key process's layout");

struct TicketKeys {
  uint64_t epoch = 0;
  TicketKey key[2];  // [0] of `epoch` encrypts new tickets, [1] (of the epoch before) only decrypts
  bool loaded = false;
};
// The other process-wide global besides the key channel (docs/architecture.md): OpenSSL's ticket
// callback carries no context pointer of ours.
TicketKeys g_tickets;

// Once the wall clock is past the loaded epoch, the keys are fetched again (a blocking round trip; a
// worker serves one connection at a time). If that fails, the old keys stay: their tickets will not
// resume elsewhere, which costs a full handshake, never a failed one.
void refresh_ticket_keys() {
  if (!g_tickets.loaded || ticket_epoch_now() <= g_tickets.epoch) return;
  std::string error;
  if (!tls_ticket_keys_load(error))
    log(Level::warning, "cannot fetch the session ticket keys of the new epoch: %s; keeping those of epoch %llu",
        error.c_str(), static_cast<unsigned long long>(g_tickets.epoch));
}

int ticket_key_cb(SSL* ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cipher,
                  EVP_MAC_CTX* mac, int enc) {
  refresh_ticket_keys();
  if (!g_tickets.loaded) return 0;  // no ticket: the session simply cannot be resumed
  const TicketKey* key = nullptr;
  int result = 1;
  if (enc) {
    key = &g_tickets.key[0];
    memcpy(key_name, key->name, sizeof key->name);
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv) != 1) return -1;
  } else {
    for (int i = 0; i < 2 && !key; i++) {
      if (CRYPTO_memcmp(key_name, g_tickets.key[i].name, sizeof g_tickets.key[i].name) == 0) {
        key = &g_tickets.key[i];
        result = i == 0 ? 1 : 2;  // 2: valid, but issue a ticket under the current key
      }
    }
    if (!key) return 0;
    // TLS 1.3 clients use a ticket once (RFC 8446 C.4: browsers do, and OpenSSL's client keeps no
    // session from a resumption that brought no new ticket): a resumption that issued none made every
    // other handshake of such a client a full one, with a signature.
    if (SSL_version(ssl) >= TLS1_3_VERSION) result = 2;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv) != 1) return -1;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac), sizeof key->hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return result;
}

// ALPN: HTTP/1.1 is the only protocol itk speaks. A client that offers ALPN without it gets the
// no_application_protocol alert (RFC 7301 §3.2); a client that offers no ALPN at all is served.
int alpn_cb(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
            void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  unsigned char len = 0;
  if (SSL_select_next_proto(&selected, &len, kHttp11, sizeof kHttp11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  *outlen = len;
  return SSL_TLSEXT_ERR_OK;
}

// The host name of a server_name extension (RFC 6066 §3), or empty.
std::string_view sni_from_extension(const unsigned char* p, size_t len) {
  if (len < 2) return {};
  size_t list = static_cast<size_t>(p[0]) << 8 | p[1];
  if (list + 2 != len || list < 3) return {};
  if (p[2] != TLSEXT_NAMETYPE_host_name) return {};
  size_t name = static_cast<size_t>(p[3]) << 8 | p[4];
  if (name == 0 || name + 3 > list) return {};
  return std::string_view(reinterpret_cast<const char*>(p + 5), name);
}

// Runs before anything else of the handshake, so the certificate, the session id context (which keeps
// a ticket from one certificate out of another's handshake) and the signing key all follow the SNI name.
int client_hello_cb(SSL* ssl, int*, void* arg) {
  const auto* contexts = static_cast<const TlsContexts*>(arg);
  const unsigned char* ext = nullptr;
  size_t len = 0;
  std::string_view name;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1) name = sni_from_extension(ext, len);
  SSL_CTX* ctx = name.empty() ? contexts->default_context() : contexts->context_for(name);
  if (ctx != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, ctx)) return SSL_CLIENT_HELLO_ERROR;
  return SSL_CLIENT_HELLO_SUCCESS;
}

SslCtxPtr new_context(const TlsContexts* owner, X509* leaf, std::vector<X509Ptr>& chain, EVP_PKEY* key,
                      std::string& error) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    error = "SSL_CTX_new failed: " + tls_error_text();
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  bool ok = SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1 && SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_cipher_list(c, kCipherList) == 1 && SSL_CTX_set1_groups_list(c, kGroups) == 1;
  if (!ok) {
    error = "setting protocol versions, ciphers or groups failed: " + tls_error_text();
    return nullptr;
  }
  // No renegotiation: a worker never needs a signature, and so never a key process, after the handshake.
  // CLEANSE_PLAINTEXT: records read are wiped once the application has them, so a buffer freed or kept
  // for the next record holds no request bytes (a script later running in this process never sees them).
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CLEANSE_PLAINTEXT);
  // Buffers are kept for the connection (a worker has one at a time): releasing them between records was a
  // malloc and a free per record. Read ahead: a record's header and body, and whatever follows, in one
  // read() instead of two per record.
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(c, 1);
  // Resumption is by tickets only: a server-side cache would live in one acceptor.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(c, kSessionTimeoutS);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_key_cb);
  SSL_CTX_set_alpn_select_cb(c, alpn_cb, nullptr);
  SSL_CTX_set_client_hello_cb(c, client_hello_cb, const_cast<TlsContexts*>(owner));
  // The session id context is the certificate's digest: stable across reloads, different per certificate.
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (X509_digest(leaf, EVP_sha256(), digest, &dlen) != 1 ||
      SSL_CTX_set_session_id_context(c, digest, std::min<unsigned int>(dlen, SSL_MAX_SID_CTX_LENGTH)) != 1) {
    error = "setting the session id context failed: " + tls_error_text();
    return nullptr;
  }
  if (SSL_CTX_use_certificate(c, leaf) != 1) {
    error = "the certificate is refused: " + tls_error_text();
    return nullptr;
  }
  for (X509Ptr& x : chain) {
    if (SSL_CTX_add0_chain_cert(c, x.get()) != 1) {
      error = "a chain certificate is refused: " + tls_error_text();
      return nullptr;
    }
    (void)x.release();  // owned by the context now
  }
  if (SSL_CTX_use_PrivateKey(c, key) != 1 || SSL_CTX_check_private_key(c) != 1) {
    error = "the key handle does not fit the certificate: " + tls_error_text();
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::unique_ptr<TlsContexts> TlsContexts::build(const Config& cfg, std::string& error) {
  std::unique_ptr<TlsContexts> t(new TlsContexts(cfg));
  std::vector<const TlsFiles*> files = tls_key_files(cfg);
  for (size_t i = 0; i < files.size(); i++) {
    const TlsFiles& f = *files[i];
    X509Ptr leaf;
    std::vector<X509Ptr> chain;
    std::string e = tls_read_certificates(f.certificate_file, leaf, chain);
    EvpPkeyPtr key;
    if (e.empty()) key = key_client_pkey(leaf.get(), static_cast<uint32_t>(i), e);
    SslCtxPtr ctx;
    if (e.empty()) ctx = new_context(t.get(), leaf.get(), chain, key.get(), e);
    if (!e.empty()) {
      error = strprintf("%s: TLSCertificateFile `%s`: %s", f.certificate_at.str().c_str(), f.certificate_file.c_str(),
                        e.c_str());
      return nullptr;
    }
    t->contexts_.push_back(std::move(ctx));
  }
  std::optional<uint32_t> id = t->keys_.default_key();
  if (!id) {
    error = "no certificate is configured: set TLSCertificateFile and TLSCertificateKeyFile in [server] or in a vhost";
    return nullptr;
  }
  t->default_ = t->contexts_[*id].get();
  t->bio_method_ = socket_bio_method();
  if (!t->bio_method_) {
    error = "cannot make the TLS socket BIO: " + tls_error_text();
    return nullptr;
  }
  return t;
}

SSL_CTX* TlsContexts::context_for(std::string_view sni) const {
  std::optional<uint32_t> id = keys_.for_name(sni);
  return id ? contexts_[*id].get() : default_;
}

SslPtr tls_new_connection(const TlsContexts& contexts, int fd) {
  if (!contexts.bio_method_) return nullptr;
  SslPtr ssl(SSL_new(contexts.default_context()));
  if (!ssl) return nullptr;
  BIO* bio = socket_bio_new(contexts.bio_method_.get(), fd);
  if (!bio) return nullptr;
  SSL_set_bio(ssl.get(), bio, bio);  // one reference, for both directions
  SSL_set_accept_state(ssl.get());
  return ssl;
}

std::string tls_server_name(SSL* ssl) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return "";
  std::string out = name;
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

bool tls_misdirected(const VHostTable& vhosts, std::string_view sni, const VHost* target) {
  return !sni.empty() && vhosts.lookup(sni) != target;
}

std::string tls_error_text() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error recorded";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool tls_ticket_keys_load(std::string& error) {
  std::string reply;
  if (!key_client_call(KeyMsg::ticket_keys, 0, 0, "", reply, error)) return false;
  if (reply.size() != kTicketKeysReplySize) {
    OPENSSL_cleanse(reply.data(), reply.size());
    error = strprintf("the key process sent %zu bytes of ticket keys, expected %zu", reply.size(), kTicketKeysReplySize);
    return false;
  }
  TicketKeys next;
  memcpy(&next.epoch, reply.data(), sizeof next.epoch);
  memcpy(next.key, reply.data() + sizeof next.epoch, sizeof next.key);
  next.loaded = true;
  OPENSSL_cleanse(reply.data(), reply.size());
  g_tickets = next;
  OPENSSL_cleanse(&next, sizeof next);
  return true;
}

void tls_ticket_keys_wipe() { OPENSSL_cleanse(&g_tickets, sizeof g_tickets); }

}  // namespace itk

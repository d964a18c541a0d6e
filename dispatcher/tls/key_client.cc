// Remote private keys for OpenSSL: RSA and EC key methods whose private operations go to the key process.

// OpenSSL 3 deprecates RSA_METHOD and EC_KEY_METHOD in favour of providers, but keeps them working:
// an EVP_PKEY built from an RSA or EC_KEY with a non-default method is "foreign" and takes the legacy
// code path, where TLS signing reaches these functions (PSS: RSA_NO_PADDING on a block libcrypto already
// encoded; PKCS#1 v1.5: a DigestInfo; ECDSA: the digest). A provider would need its own key management,
// signature and encoder implementations to do the same; the methods are what h2o's neverbleed uses
// with OpenSSL 3, and what the integration tests exercise on every handshake.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tls/key_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

// A handshake waits this long for a signature; the key process answers in well under a millisecond
// for ECDSA and about one for RSA-2048, so only a dead or stuck key process reaches it.
constexpr int kCallTimeoutMs = 5000;

// This process's channel: see key_client_adopt for why it is a global.
int g_channel = -1;
uint32_t g_next_id = 1;

struct Methods {
  RSA_METHOD* rsa = nullptr;
  EC_KEY_METHOD* ec = nullptr;
  int rsa_index = -1;  // ex_data slot holding key id + 1
  int ec_index = -1;
};

uint32_t key_id_of(void* slot) { return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(slot) - 1); }

int rsa_priv_enc(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding);
int rsa_priv_dec(int, const unsigned char*, unsigned char*, RSA*, int);
int ec_sign(int type, const unsigned char* dgst, int dlen, unsigned char* sig, unsigned int* siglen,
            const BIGNUM* kinv, const BIGNUM* r, EC_KEY* eckey);
int ec_sign_setup(EC_KEY*, BN_CTX*, BIGNUM**, BIGNUM**);
ECDSA_SIG* ec_sign_sig(const unsigned char* dgst, int dlen, const BIGNUM* kinv, const BIGNUM* r, EC_KEY* eckey);

// Created once per process and never freed: every remote key of every generation points at them.
const Methods& methods() {
  static Methods m = [] {
    Methods x;
    x.rsa = RSA_meth_dup(RSA_PKCS1_OpenSSL());
    if (x.rsa) {
      RSA_meth_set1_name(x.rsa, "itk key process");
      RSA_meth_set_priv_enc(x.rsa, rsa_priv_enc);
      RSA_meth_set_priv_dec(x.rsa, rsa_priv_dec);
    }
    x.ec = EC_KEY_METHOD_new(EC_KEY_get_default_method());
    if (x.ec) EC_KEY_METHOD_set_sign(x.ec, ec_sign, ec_sign_setup, ec_sign_sig);
    x.rsa_index = RSA_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    x.ec_index = EC_KEY_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return x;
  }();
  return m;
}

int rsa_priv_enc(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
  uint32_t id = key_id_of(RSA_get_ex_data(rsa, methods().rsa_index));
  std::string sig, error;
  if (flen < 0 || !key_client_call(KeyMsg::rsa_private_encrypt, id, static_cast<uint32_t>(padding),
                                   std::string_view(reinterpret_cast<const char*>(from), static_cast<size_t>(flen)),
                                   sig, error)) {
    log(Level::err, "RSA signature by key %u failed: %s", id, error.c_str());
    return -1;
  }
  if (sig.size() != static_cast<size_t>(RSA_size(rsa))) {
    log(Level::err, "RSA signature by key %u has %zu bytes, expected %d", id, sig.size(), RSA_size(rsa));
    return -1;
  }
  memcpy(to, sig.data(), sig.size());
  return static_cast<int>(sig.size());
}

// RSA key exchange is not among the cipher suites itk offers (ECDHE only), so nothing is ever decrypted.
int rsa_priv_dec(int, const unsigned char*, unsigned char*, RSA*, int) { return -1; }

bool ec_call(const unsigned char* dgst, int dlen, EC_KEY* eckey, std::string& sig) {
  uint32_t id = key_id_of(EC_KEY_get_ex_data(eckey, methods().ec_index));
  std::string error;
  if (dlen < 0 || !key_client_call(KeyMsg::ecdsa_sign, id, 0,
                                   std::string_view(reinterpret_cast<const char*>(dgst), static_cast<size_t>(dlen)),
                                   sig, error)) {
    log(Level::err, "ECDSA signature by key %u failed: %s", id, error.c_str());
    return false;
  }
  return true;
}

int ec_sign(int, const unsigned char* dgst, int dlen, unsigned char* sig, unsigned int* siglen, const BIGNUM*,
            const BIGNUM*, EC_KEY* eckey) {
  std::string der;
  if (!ec_call(dgst, dlen, eckey, der)) return 0;
  if (der.size() > static_cast<size_t>(ECDSA_size(eckey))) {
    log(Level::err, "ECDSA signature of %zu bytes is over the key's %d", der.size(), ECDSA_size(eckey));
    return 0;
  }
  memcpy(sig, der.data(), der.size());
  *siglen = static_cast<unsigned int>(der.size());
  return 1;
}

// Precomputing (k, r) needs the private key; TLS never asks for it.
int ec_sign_setup(EC_KEY*, BN_CTX*, BIGNUM**, BIGNUM**) { return 0; }

ECDSA_SIG* ec_sign_sig(const unsigned char* dgst, int dlen, const BIGNUM*, const BIGNUM*, EC_KEY* eckey) {
  std::string der;
  if (!ec_call(dgst, dlen, eckey, der)) return nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
}

[[noreturn]] void protocol_violation(const std::string& why) {
  log(Level::err, "malformed reply from the key process: %s; exiting", why.c_str());
  _exit(1);
}

}  // namespace

EvpPkeyPtr key_client_pkey(X509* cert, uint32_t key_id, std::string& error) {
  const Methods& m = methods();
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  if (!pub) {
    error = "the certificate's public key cannot be read";
    return nullptr;
  }
  EvpPkeyPtr out(EVP_PKEY_new());
  if (!out || !m.rsa || !m.ec || m.rsa_index < 0 || m.ec_index < 0) {
    error = "out of memory";
    return nullptr;
  }
  void* slot = reinterpret_cast<void*>(static_cast<uintptr_t>(key_id) + 1);
  int type = EVP_PKEY_get_base_id(pub);
  if (type == EVP_PKEY_RSA) {
    RsaPtr src(EVP_PKEY_get1_RSA(pub));
    RsaPtr rsa(RSA_new());
    if (!src || !rsa || RSA_set_method(rsa.get(), m.rsa) != 1) {
      error = "cannot build the RSA key handle";
      return nullptr;
    }
    BignumPtr n(BN_dup(RSA_get0_n(src.get())));
    BignumPtr e(BN_dup(RSA_get0_e(src.get())));
    if (!n || !e || RSA_set0_key(rsa.get(), n.get(), e.get(), nullptr) != 1) {
      error = "cannot copy the RSA public key";
      return nullptr;
    }
    // Owned by `rsa` now.
    (void)n.release();
    (void)e.release();
    RSA_set_ex_data(rsa.get(), m.rsa_index, slot);
    if (EVP_PKEY_assign_RSA(out.get(), rsa.get()) != 1) {
      error = "cannot wrap the RSA key handle";
      return nullptr;
    }
    (void)rsa.release();  // owned by `out` now
    return out;
  }
  if (type == EVP_PKEY_EC) {
    EcKeyPtr src(EVP_PKEY_get1_EC_KEY(pub));
    EcKeyPtr ec(EC_KEY_new());
    if (!src || !ec || EC_KEY_set_method(ec.get(), m.ec) != 1 ||
        EC_KEY_set_group(ec.get(), EC_KEY_get0_group(src.get())) != 1 ||
        EC_KEY_set_public_key(ec.get(), EC_KEY_get0_public_key(src.get())) != 1) {
      error = "cannot build the EC key handle";
      return nullptr;
    }
    EC_KEY_set_ex_data(ec.get(), m.ec_index, slot);
    if (EVP_PKEY_assign_EC_KEY(out.get(), ec.get()) != 1) {
      error = "cannot wrap the EC key handle";
      return nullptr;
    }
    (void)ec.release();
    return out;
  }
  error = "the certificate's key is neither RSA nor EC";
  return nullptr;
}

int key_register_bound_channel(int registration_fd, uint32_t key_id, std::string_view server_name,
                               unique_fd& client_end, std::optional<uint32_t> also) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  unique_fd mine(sv[0]), theirs(sv[1]);
  if (int rc = key_send_registration(registration_fd, theirs.get(), key_id, server_name, also); rc < 0) return rc;
  client_end = std::move(mine);
  return 0;
}

void key_client_adopt(int fd) {
  if (g_channel >= 0 && g_channel != fd) (void)close(g_channel);
  g_channel = fd;
}

void key_client_close() {
  if (g_channel >= 0) (void)close(g_channel);
  g_channel = -1;
}

bool key_client_call(KeyMsg op, uint32_t key, uint32_t arg, std::string_view in, std::string& out,
                     std::string& error) {
  if (g_channel < 0) {
    error = "this process has no channel to the key process";
    return false;
  }
  KeyMessage req;
  req.type = op;
  req.id = g_next_id++;
  req.key = key;
  req.arg = arg;
  req.payload.assign(in);
  if (req.payload.size() > kKeyMaxPayload) {
    error = strprintf("input of %zu bytes is over the limit of %zu", in.size(), kKeyMaxPayload);
    return false;
  }
  std::string d = key_encode(req);
  ssize_t n;
  do n = send(g_channel, d.data(), d.size(), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(d.size())) {
    error = strprintf("sending to the key process failed: %s", n < 0 ? strerror(errno) : "short send");
    return false;
  }
  int64_t deadline = now_ms() + kCallTimeoutMs;
  for (;;) {
    int64_t left = deadline - now_ms();
    pollfd p{g_channel, POLLIN, 0};
    int r = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      error = strprintf("waiting for the key process failed: %s", strerror(errno));
      return false;
    }
    if (r == 0) {
      // A late reply is recognised by its id and skipped by the next call.
      error = strprintf("no answer from the key process within %d s", kCallTimeoutMs / 1000);
      return false;
    }
    char buf[kKeyMaxMessage + 1];
    n = recv(g_channel, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      error = n == 0 ? "the key process closed the channel" : strprintf("reading from the key process failed: %s", strerror(errno));
      return false;
    }
    if (static_cast<size_t>(n) > kKeyMaxMessage) protocol_violation(strprintf("%zd bytes", n));
    KeyMessage rep;
    std::string why = key_decode(std::string_view(buf, static_cast<size_t>(n)), {KeyMsg::reply}, rep);
    if (!why.empty()) protocol_violation(why);
    if (rep.id < req.id) continue;  // the answer to a request that timed out earlier
    if (rep.id != req.id || rep.key != req.key)
      protocol_violation(strprintf("reply for request %u (key %u) to request %u (key %u)", rep.id, rep.key, req.id, key));
    if (rep.arg != static_cast<uint32_t>(KeyStatus::ok)) {
      error = strprintf("the key process refused: %s", key_status_text(rep.arg));
      return false;
    }
    out = std::move(rep.payload);
    return true;
  }
}

}  // namespace itk

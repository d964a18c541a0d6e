// Unit tests of TLS: key process protocol and refusals, signing through the key methods, certificate/key
// checks of a load, SNI, ALPN and tickets across key rotations; keys and certificates are made here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config.h"
#include "key_client.h"
#include "key_protocol.h"
#include "key_server.h"
#include "tls.h"
#include "tls_config.h"
#include "unique_fd.h"

namespace itk {
namespace {

namespace fs = std::filesystem;

// ---- material made at test time ----

EvpPkeyPtr new_key(const char* type) {
  if (std::string(type) == "RSA") return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  if (std::string(type) == "RSA1024") return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

// A self-signed certificate for `name`, valid from `from_days` to `to_days` relative to now.
X509Ptr new_cert(EVP_PKEY* key, const std::string& name, long from_days = -1, long to_days = 30) {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), static_cast<long>(random() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(x.get()), from_days * 86400);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), to_days * 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* n = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), n);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
  std::string san = "DNS:" + name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(x.get(), ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x.get(), key, EVP_sha256());
  return x;
}

std::string pem_of(X509* x) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string pem_of(EVP_PKEY* k, bool encrypted = false) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (encrypted)
    PEM_write_bio_PrivateKey(b.get(), k, EVP_aes_256_cbc(), nullptr, 0, nullptr, const_cast<char*>("secret"));
  else
    PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/itk-tls-test-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Keys are slow to make under the sanitizers: one set for every test of the binary.
struct Material {
  EvpPkeyPtr rsa = new_key("RSA");
  EvpPkeyPtr rsa2 = new_key("RSA");
  EvpPkeyPtr ec = new_key("EC");
  X509Ptr rsa_cert = new_cert(rsa.get(), "a.test");
  X509Ptr rsa2_cert = new_cert(rsa2.get(), "default.test");
  X509Ptr ec_cert = new_cert(ec.get(), "b.test");
};

const Material& material() {
  static Material* m = new Material();
  return *m;
}

EvpPkeyPtr copy_key(EVP_PKEY* k) {
  EVP_PKEY_up_ref(k);
  return EvpPkeyPtr(k);
}

// ---- framing ----

TEST(KeyProtocol, RoundTrip) {
  KeyMessage m;
  m.type = KeyMsg::ecdsa_sign;
  m.id = 7;
  m.key = 3;
  m.arg = 9;
  m.payload = std::string(32, 'x');
  std::string d = key_encode(m);
  EXPECT_EQ(d.size(), kKeyHeaderSize + 32);
  KeyMessage out;
  EXPECT_EQ(key_decode(d, {KeyMsg::ecdsa_sign}, out), "");
  EXPECT_EQ(out.type, KeyMsg::ecdsa_sign);
  EXPECT_EQ(out.id, 7u);
  EXPECT_EQ(out.key, 3u);
  EXPECT_EQ(out.arg, 9u);
  EXPECT_EQ(out.payload, m.payload);
}

TEST(KeyProtocol, EveryMalformedMessageIsRefused) {
  KeyMessage m;
  m.type = KeyMsg::rsa_private_encrypt;
  m.payload = "abc";
  std::string good = key_encode(m);
  KeyMessage out;
  EXPECT_EQ(key_decode(good.substr(0, 19), {KeyMsg::rsa_private_encrypt}, out),
            "message of 19 bytes is shorter than the 20-byte header");
  EXPECT_EQ(key_decode(good + "d", {KeyMsg::rsa_private_encrypt}, out),
            "length field says 3 payload bytes, the message carries 4");
  EXPECT_EQ(key_decode(good.substr(0, 22), {KeyMsg::rsa_private_encrypt}, out),
            "length field says 3 payload bytes, the message carries 2");
  // A known type in the wrong place is as unknown as an invented one.
  EXPECT_EQ(key_decode(good, {KeyMsg::reply}, out), "message type 0x1 is not expected here");
  std::string invented = good;
  invented[0] = 0x55;
  EXPECT_EQ(key_decode(invented, {KeyMsg::rsa_private_encrypt, KeyMsg::ecdsa_sign}, out),
            "message type 0x55 is not expected here");
  std::string big(kKeyMaxMessage + 1, '\0');
  memcpy(big.data(), good.data(), 16);
  EXPECT_EQ(key_decode(big, {KeyMsg::rsa_private_encrypt}, out), "message of 4117 bytes is over the limit of 4116");
}

// ---- the signing core ----

KeyStore store() {
  KeyStore s;
  s.add(copy_key(material().rsa.get()));
  s.add(copy_key(material().ec.get()));
  return s;
}

KeyMessage request(KeyMsg op, uint32_t key, uint32_t arg, std::string payload) {
  KeyMessage m;
  m.type = op;
  m.id = 42;
  m.key = key;
  m.arg = arg;
  m.payload = std::move(payload);
  return m;
}

KeyMessage ask(const KeyStore& s, const KeyMessage& req) {
  std::string reply, why;
  EXPECT_TRUE(s.handle(key_encode(req), reply, why)) << why;
  KeyMessage out;
  EXPECT_EQ(key_decode(reply, {KeyMsg::reply}, out), "");
  EXPECT_EQ(out.id, req.id);
  return out;
}

std::string rsa_block() {
  std::string block(256, '\x5a');
  block[0] = 0;  // below the modulus
  return block;
}

// What the public key recovers from an RSA signature made with `padding`.
std::string recover(EVP_PKEY* key, const std::string& sig, int padding) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY_verify_recover_init(ctx.get());
  EVP_PKEY_CTX_set_rsa_padding(ctx.get(), padding);
  std::string out(512, '\0');
  size_t len = out.size();
  if (EVP_PKEY_verify_recover(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                              reinterpret_cast<const unsigned char*>(sig.data()), sig.size()) != 1)
    return "(does not verify)";
  out.resize(len);
  return out;
}

bool ecdsa_verifies(EVP_PKEY* key, const std::string& digest, const std::string& sig) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY_verify_init(ctx.get());
  return EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(digest.data()), digest.size()) == 1;
}

TEST(KeyStore, SignsWhatTlsAsksFor) {
  KeyStore s = store();
  std::string block = rsa_block();
  KeyMessage r = ask(s, request(KeyMsg::rsa_private_encrypt, 0, RSA_NO_PADDING, block));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  EXPECT_EQ(recover(material().rsa.get(), r.payload, RSA_NO_PADDING), block);

  std::string digest_info(51, '\x11');  // the size of a SHA-256 DigestInfo
  r = ask(s, request(KeyMsg::rsa_private_encrypt, 0, RSA_PKCS1_PADDING, digest_info));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  EXPECT_EQ(recover(material().rsa.get(), r.payload, RSA_PKCS1_PADDING), digest_info);

  std::string digest(32, '\x22');
  r = ask(s, request(KeyMsg::ecdsa_sign, 1, 0, digest));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  EXPECT_TRUE(ecdsa_verifies(material().ec.get(), digest, r.payload));
}

TEST(KeyStore, RefusesWrongRequestsButKeepsTheChannel) {
  KeyStore s = store();
  auto status = [&](const KeyMessage& m) { return static_cast<KeyStatus>(ask(s, m).arg); };
  EXPECT_EQ(status(request(KeyMsg::ecdsa_sign, 2, 0, std::string(32, 'd'))), KeyStatus::no_such_key);
  EXPECT_EQ(status(request(KeyMsg::ecdsa_sign, 0, 0, std::string(32, 'd'))), KeyStatus::wrong_key_type);
  EXPECT_EQ(status(request(KeyMsg::rsa_private_encrypt, 1, RSA_NO_PADDING, rsa_block())), KeyStatus::wrong_key_type);
  // No padding needs exactly one block; PKCS#1 at most a block less 11; other paddings are not for TLS.
  EXPECT_EQ(status(request(KeyMsg::rsa_private_encrypt, 0, RSA_NO_PADDING, std::string(255, 'b'))),
            KeyStatus::bad_input);
  EXPECT_EQ(status(request(KeyMsg::rsa_private_encrypt, 0, RSA_PKCS1_PADDING, std::string(246, 'b'))),
            KeyStatus::bad_input);
  EXPECT_EQ(status(request(KeyMsg::rsa_private_encrypt, 0, RSA_PKCS1_OAEP_PADDING, std::string(20, 'b'))),
            KeyStatus::bad_input);
  EXPECT_EQ(status(request(KeyMsg::ecdsa_sign, 1, 0, std::string(65, 'd'))), KeyStatus::bad_input);
  EXPECT_EQ(status(request(KeyMsg::ecdsa_sign, 1, 0, "")), KeyStatus::bad_input);
}

TEST(KeyStore, MalformedMessagesEndTheChannel) {
  KeyStore s = store();
  std::string reply, why;
  std::string good = key_encode(request(KeyMsg::ecdsa_sign, 1, 0, std::string(32, 'd')));
  EXPECT_FALSE(s.handle(good.substr(0, 10), reply, why));
  EXPECT_EQ(why, "message of 10 bytes is shorter than the 20-byte header");
  EXPECT_FALSE(s.handle(good + "x", reply, why));
  EXPECT_EQ(why, "length field says 32 payload bytes, the message carries 33");
  // Messages that only the key process sends, or only the registration socket carries.
  for (KeyMsg t : {KeyMsg::reply, KeyMsg::ready, KeyMsg::register_channel}) {
    KeyMessage m = request(t, 0, 0, "");
    EXPECT_FALSE(s.handle(key_encode(m), reply, why));
    EXPECT_NE(why.find("is not expected here"), std::string::npos) << why;
  }
}

// ---- the key process loop over real sockets ----

// Runs key_serve in a child; the registration socket's other end is `registration`.
class KeyServer {
 public:
  explicit KeyServer(const KeyStore& keys) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid_ = fork();
    if (pid_ == 0) {
      close(sv[0]);
      key_serve(keys, sv[1]);
      _exit(0);
    }
    close(sv[1]);
    registration.reset(sv[0]);
  }
  ~KeyServer() {
    registration.reset();
    key_client_close();
    // The child also waits for every channel to close; ours are closed by the tests or here by the kill.
    int status = 0;
    for (int i = 0; i < 50 && waitpid(pid_, &status, WNOHANG) == 0; i++) usleep(20000);
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  unique_fd registration;

 private:
  pid_t pid_ = -1;
};

// A channel registered by hand, for sending what key_client never would.
unique_fd raw_channel(int registration) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  EXPECT_EQ(key_send_registration(registration, sv[1]), 0);
  close(sv[1]);
  return unique_fd(sv[0]);
}

TEST(KeyChannel, SignsThroughTheKeyMethods) {
  KeyStore keys = store();
  KeyServer server(keys);
  ASSERT_EQ(key_client_connect(server.registration.get()), "");
  std::string error;
  // The handles hold only the public keys; signing with them is a round trip to the child.
  EvpPkeyPtr rsa = key_client_pkey(material().rsa_cert.get(), 0, error);
  ASSERT_TRUE(rsa) << error;
  EvpPkeyPtr ec = key_client_pkey(material().ec_cert.get(), 1, error);
  ASSERT_TRUE(ec) << error;
  for (EVP_PKEY* k : {rsa.get(), ec.get()}) {
    for (bool pss : {false, true}) {
      if (pss && k == ec.get()) continue;
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
      EVP_PKEY_CTX* pctx = nullptr;
      ASSERT_EQ(EVP_DigestSignInit(md.get(), &pctx, EVP_sha256(), nullptr, k), 1);
      if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
      }
      const unsigned char msg[] = "what a TLS handshake signs";
      unsigned char sig[512];
      size_t len = sizeof sig;
      ASSERT_EQ(EVP_DigestSign(md.get(), sig, &len, msg, sizeof msg), 1) << "pss " << pss;
      // Verified with the certificate's own public key.
      EVP_PKEY* pub = X509_get0_pubkey(k == rsa.get() ? material().rsa_cert.get() : material().ec_cert.get());
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> vmd(EVP_MD_CTX_new(), EVP_MD_CTX_free);
      EVP_PKEY_CTX* vctx = nullptr;
      ASSERT_EQ(EVP_DigestVerifyInit(vmd.get(), &vctx, EVP_sha256(), nullptr, pub), 1);
      if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(vctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(vctx, RSA_PSS_SALTLEN_DIGEST);
      }
      EXPECT_EQ(EVP_DigestVerify(vmd.get(), sig, len, msg, sizeof msg), 1) << "pss " << pss;
    }
  }
}

TEST(KeyChannel, AMalformedChannelIsClosedAndTheOthersGoOn) {
  KeyStore keys = store();
  KeyServer server(keys);
  ASSERT_EQ(key_client_connect(server.registration.get()), "");
  unique_fd bad = raw_channel(server.registration.get());
  std::string junk = "not a key message at all";
  ASSERT_EQ(send(bad.get(), junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
  char buf[64];
  timeval tv{5, 0};
  setsockopt(bad.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(recv(bad.get(), buf, sizeof buf, 0), 0) << "the key process must close a channel that sent junk";

  // A registration without a descriptor is refused; the key process keeps serving.
  KeyMessage m;
  m.type = KeyMsg::register_channel;
  std::string d = key_encode(m);
  ASSERT_EQ(send(server.registration.get(), d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));

  std::string sig, error;
  ASSERT_TRUE(key_client_call(KeyMsg::ecdsa_sign, 1, 0, std::string(32, 'd'), sig, error)) << error;
  EXPECT_TRUE(ecdsa_verifies(material().ec.get(), std::string(32, 'd'), sig));
  EXPECT_FALSE(key_client_call(KeyMsg::ecdsa_sign, 9, 0, std::string(32, 'd'), sig, error));
  EXPECT_EQ(error, "the key process refused: no such key");
}

TEST(KeyChannel, WithoutAChannelNothingIsSigned) {
  key_client_forget();
  std::string sig, error;
  EXPECT_FALSE(key_client_call(KeyMsg::ecdsa_sign, 0, 0, std::string(32, 'd'), sig, error));
  EXPECT_EQ(error, "this process has no channel to the key process");
}

// ---- certificate and key checks of a load ----

struct Files {
  TempDir dir;
  std::string a_cert = dir.write("a.pem", pem_of(material().rsa_cert.get()), 0644);
  std::string a_key = dir.write("a.key", pem_of(material().rsa.get()));
  std::string b_cert = dir.write("b.pem", pem_of(material().ec_cert.get()), 0644);
  std::string b_key = dir.write("b.key", pem_of(material().ec.get()));
};

TlsFiles pair(const std::string& cert, const std::string& key) {
  TlsFiles f;
  f.certificate_file = cert;
  f.key_file = key;
  f.certificate_at = {"a.conf", 5};
  f.key_at = {"a.conf", 6};
  return f;
}

Config one_vhost(const TlsFiles& f, const std::string& name = "a.test") {
  Config cfg;
  VHost v;
  v.server_name = name;
  v.tls = f;
  cfg.vhosts.push_back(v);
  return cfg;
}

std::vector<std::string> check(const Config& cfg, std::vector<std::string>* warnings = nullptr) {
  std::vector<ConfigError> errors, warns;
  validate_tls(cfg, true, errors, warns);
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.str());
  if (warnings)
    for (const auto& w : warns) warnings->push_back(w.str());
  return out;
}

TEST(TlsChecks, AMatchingPairPasses) {
  Files f;
  std::vector<std::string> warnings;
  EXPECT_EQ(check(one_vhost(pair(f.a_cert, f.a_key)), &warnings), std::vector<std::string>{});
  EXPECT_EQ(warnings, std::vector<std::string>{});
  EXPECT_EQ(check(one_vhost(pair(f.b_cert, f.b_key), "b.test")), std::vector<std::string>{});
}

TEST(TlsChecks, KeyOfAnotherCertificate) {
  Files f;
  EXPECT_EQ(check(one_vhost(pair(f.a_cert, f.b_key))),
            std::vector<std::string>{"a.conf:6: TLSCertificateKeyFile: `" + f.b_key +
                                     "` (vhost a.test): does not match the certificate `" + f.a_cert +
                                     "` (give the key that certificate was issued for)"});
}

TEST(TlsChecks, UnreadableMissingAndWrongFiles) {
  Files f;
  EXPECT_EQ(check(one_vhost(pair(f.a_cert, f.dir.path() + "/none.key"))),
            std::vector<std::string>{"a.conf:6: TLSCertificateKeyFile: `" + f.dir.path() +
                                     "/none.key` (vhost a.test): cannot open: No such file or directory"});
  EXPECT_EQ(check(one_vhost(pair(f.a_key, f.a_key))),
            std::vector<std::string>{"a.conf:5: TLSCertificateFile: `" + f.a_key +
                                     "` (vhost a.test): holds a private key: keep the key in its own file "
                                     "(TLSCertificateKeyFile), readable by root only; itk never lets the process "
                                     "that forks acceptors read key bytes"});
  std::string text = f.dir.write("text.pem", "hello\n");
  EXPECT_EQ(check(one_vhost(pair(text, f.a_key))),
            std::vector<std::string>{"a.conf:5: TLSCertificateFile: `" + text +
                                     "` (vhost a.test): holds no PEM certificate (expected a -----BEGIN "
                                     "CERTIFICATE----- block)"});
  EXPECT_EQ(check(one_vhost(pair(f.a_cert, f.a_cert))),
            std::vector<std::string>{"a.conf:6: TLSCertificateKeyFile: `" + f.a_cert +
                                     "` (vhost a.test): holds no PEM private key (expected a -----BEGIN PRIVATE "
                                     "KEY----- block)"});
  std::string enc = f.dir.write("enc.key", pem_of(material().rsa.get(), true));
  std::vector<std::string> e = check(one_vhost(pair(f.a_cert, enc)));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("is encrypted, and itk cannot ask for a passphrase"), std::string::npos) << e[0];
  EXPECT_EQ(check(one_vhost(pair(f.dir.path(), f.a_key)))[0],
            "a.conf:5: TLSCertificateFile: `" + f.dir.path() + "` (vhost a.test): is not a regular file");
}

TEST(TlsChecks, WeakKeysAreRefused) {
  Files f;
  EvpPkeyPtr weak = new_key("RSA1024");
  X509Ptr cert = new_cert(weak.get(), "a.test");
  std::string c = f.dir.write("weak.pem", pem_of(cert.get()), 0644);
  std::string k = f.dir.write("weak.key", pem_of(weak.get()));
  EXPECT_EQ(check(one_vhost(pair(c, k))),
            std::vector<std::string>{"a.conf:5: TLSCertificateFile: `" + c +
                                     "` (vhost a.test): the certificate is for a 1024-bit RSA key; TLS needs 2048 "
                                     "bits or more"});
}

TEST(TlsChecks, HalfAPairIsAnError) {
  TlsFiles only_cert = pair("/x.pem", "");
  only_cert.key_at = {};
  EXPECT_EQ(check(one_vhost(only_cert)),
            std::vector<std::string>{"a.conf:5: TLSCertificateFile: has no TLSCertificateKeyFile beside it: give "
                                     "the certificate's private key in the same section"});
  TlsFiles only_key = pair("", "/x.key");
  only_key.certificate_at = {};
  EXPECT_EQ(check(one_vhost(only_key)),
            std::vector<std::string>{"a.conf:6: TLSCertificateKeyFile: has no TLSCertificateFile beside it: give "
                                     "the key's certificate in the same section"});
}

TEST(TlsChecks, ExpiredCertificatesAndOpenKeysAreWarnings) {
  Files f;
  X509Ptr old = new_cert(material().rsa.get(), "a.test", -60, -30);
  std::string c = f.dir.write("old.pem", pem_of(old.get()), 0644);
  std::string k = f.dir.write("open.key", pem_of(material().rsa.get()), 0644);
  std::vector<std::string> warnings;
  Config cfg = one_vhost(pair(c, k));
  EXPECT_EQ(check(cfg, &warnings), std::vector<std::string>{});
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("a.conf:5: TLSCertificateFile: `" + c + "` (vhost a.test): the certificate expired on "),
            std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[0].find("; it is still served (renew it, then `systemctl reload itk`)"), std::string::npos);
  EXPECT_EQ(warnings[1], "a.conf:6: TLSCertificateKeyFile: `" + k +
                             "` (vhost a.test): every user can read this private key (mode 0644): make it readable "
                             "by root only (chmod 600)");
  // A certificate for another name is served too, with a warning.
  warnings.clear();
  EXPECT_EQ(check(one_vhost(pair(f.a_cert, f.a_key), "c.test"), &warnings), std::vector<std::string>{});
  EXPECT_EQ(warnings, std::vector<std::string>{"a.conf:5: TLSCertificateFile: `" + f.a_cert +
                                               "` (vhost c.test): the certificate does not name c.test; clients "
                                               "will refuse it for that name"});
}

TEST(TlsChecks, KeyIdsFollowTheConfiguration) {
  Config cfg;
  cfg.server.tls = pair("/d.pem", "/d.key");
  for (const char* n : {"a", "b", "c"}) {
    VHost v;
    v.server_name = std::string(n) + ".test";
    if (std::string(n) != "b") v.tls = pair("/" + std::string(n) + ".pem", "/" + std::string(n) + ".key");
    cfg.vhosts.push_back(v);
  }
  cfg.vhosts.push_back(cfg.vhosts[0]);  // a second vhost with a.test's pair shares its key id
  cfg.vhosts.back().server_name = "a2.test";
  std::vector<const TlsFiles*> files = tls_key_files(cfg);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0]->certificate_file, "/d.pem");
  EXPECT_EQ(files[1]->certificate_file, "/a.pem");
  EXPECT_EQ(files[2]->certificate_file, "/c.pem");
  EXPECT_TRUE(tls_configured(cfg));
  EXPECT_FALSE(tls_configured(Config{}));
}

// ---- handshakes in memory: SNI, ALPN, tickets ----

struct Handshake {
  SslPtr client;
  SslPtr server;
  bool ok = false;
};

// Runs client and server against each other over a BIO pair until both are done or one fails.
Handshake handshake(const TlsContexts& contexts, SSL_CTX* client_ctx, const char* sni, SSL_SESSION* session = nullptr) {
  Handshake h;
  h.client.reset(SSL_new(client_ctx));
  h.server.reset(SSL_new(contexts.default_context()));
  BIO *cb = nullptr, *sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(h.client.get(), cb, cb);
  SSL_set_bio(h.server.get(), sb, sb);
  SSL_set_connect_state(h.client.get());
  SSL_set_accept_state(h.server.get());
  if (sni) SSL_set_tlsext_host_name(h.client.get(), sni);
  if (session) SSL_set_session(h.client.get(), session);
  bool cdone = false, sdone = false;
  for (int i = 0; i < 50 && !(cdone && sdone); i++) {
    if (!cdone) {
      int r = SSL_do_handshake(h.client.get());
      if (r == 1) cdone = true;
      else if (SSL_get_error(h.client.get(), r) != SSL_ERROR_WANT_READ) break;
    }
    if (!sdone) {
      int r = SSL_do_handshake(h.server.get());
      if (r == 1) sdone = true;
      else if (SSL_get_error(h.server.get(), r) != SSL_ERROR_WANT_READ) break;
    }
  }
  ERR_clear_error();
  h.ok = cdone && sdone;
  if (h.ok) {
    // TLS 1.3 tickets follow the handshake; a read lets the client take them.
    char c;
    (void)SSL_read(h.client.get(), &c, 1);
    ERR_clear_error();
  }
  return h;
}

std::string peer_cn(SSL* client) {
  X509* x = SSL_get0_peer_certificate(client);
  if (!x) return "(none)";
  char cn[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
  return cn;
}

class TlsHandshakes : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_.server.tls = pair(files_.dir.write("d.pem", pem_of(material().rsa2_cert.get()), 0644),
                           files_.dir.write("d.key", pem_of(material().rsa2.get())));
    VHost a;
    a.server_name = "a.test";
    a.aliases = {"www.a.test", "*.wild.test"};
    a.tls = pair(files_.a_cert, files_.a_key);
    VHost b;
    b.server_name = "b.test";
    b.tls = pair(files_.b_cert, files_.b_key);
    VHost c;
    c.server_name = "c.test";  // no certificate of its own
    cfg_.vhosts = {a, b, c};
    KeyStore keys;
    for (const TlsFiles* f : tls_key_files(cfg_)) {
      EvpPkeyPtr k;
      ASSERT_EQ(tls_load_key_pair(*f, k), "");
      keys.add(std::move(k));
    }
    server_ = std::make_unique<KeyServer>(keys);
    ASSERT_EQ(key_client_connect(server_->registration.get()), "");
    std::string error;
    contexts_ = TlsContexts::build(cfg_, error);
    ASSERT_TRUE(contexts_) << error;
    tls_ticket_keys_rotate();
    client_.reset(SSL_CTX_new(TLS_client_method()));
  }
  void TearDown() override {
    contexts_.reset();
    server_.reset();
  }

  Files files_;
  Config cfg_;
  std::unique_ptr<KeyServer> server_;
  std::unique_ptr<TlsContexts> contexts_;
  SslCtxPtr client_;
};

TEST_F(TlsHandshakes, SniSelectsTheVhostsCertificate) {
  struct Case {
    const char* sni;
    const char* cn;
  };
  for (Case c : {Case{"a.test", "a.test"}, Case{"B.TEST", "b.test"}, Case{"www.a.test", "a.test"},
                 Case{"x.y.wild.test", "a.test"}, Case{"c.test", "default.test"}, Case{"other.test", "default.test"},
                 Case{nullptr, "default.test"}}) {
    Handshake h = handshake(*contexts_, client_.get(), c.sni);
    ASSERT_TRUE(h.ok) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(peer_cn(h.client.get()), c.cn) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(tls_server_name(h.server.get()), c.sni ? VHostTable::normalize_host(c.sni) : "");
  }
}

TEST_F(TlsHandshakes, OnlyModernProtocolsAndHttp11) {
  SSL_CTX_set_max_proto_version(client_.get(), TLS1_1_VERSION);
  SSL_CTX_set_security_level(client_.get(), 0);
  EXPECT_FALSE(handshake(*contexts_, client_.get(), "a.test").ok) << "TLS 1.1 must be refused";
  SSL_CTX_set_max_proto_version(client_.get(), TLS1_3_VERSION);

  static const unsigned char h2_only[] = "\x02h2";
  SSL_CTX_set_alpn_protos(client_.get(), h2_only, sizeof h2_only - 1);
  EXPECT_FALSE(handshake(*contexts_, client_.get(), "a.test").ok) << "ALPN without http/1.1 must be refused";
  static const unsigned char both[] = "\x02h2\x08http/1.1";
  SSL_CTX_set_alpn_protos(client_.get(), both, sizeof both - 1);
  Handshake h = handshake(*contexts_, client_.get(), "a.test");
  ASSERT_TRUE(h.ok);
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(h.client.get(), &proto, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), len), "http/1.1");
}

TEST_F(TlsHandshakes, TicketsSurviveOneRotationNotTwo) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SSL_CTX_set_min_proto_version(client_.get(), version);
    SSL_CTX_set_max_proto_version(client_.get(), version);
    Handshake first = handshake(*contexts_, client_.get(), "a.test");
    ASSERT_TRUE(first.ok);
    std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> s(SSL_get1_session(first.client.get()), SSL_SESSION_free);
    ASSERT_TRUE(s && SSL_SESSION_has_ticket(s.get())) << version;

    Handshake again = handshake(*contexts_, client_.get(), "a.test", s.get());
    ASSERT_TRUE(again.ok);
    EXPECT_TRUE(SSL_session_reused(again.client.get())) << version;

    // Another certificate never resumes it, even when the client offers it for that name.
    std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> moved(SSL_SESSION_dup(s.get()), SSL_SESSION_free);
    ASSERT_EQ(SSL_SESSION_set1_hostname(moved.get(), "b.test"), 1);
    Handshake other = handshake(*contexts_, client_.get(), "b.test", moved.get());
    ASSERT_TRUE(other.ok);
    EXPECT_FALSE(SSL_session_reused(other.client.get())) << version;
    EXPECT_EQ(peer_cn(other.client.get()), "b.test");

    tls_ticket_keys_rotate();
    Handshake after_one = handshake(*contexts_, client_.get(), "a.test", s.get());
    ASSERT_TRUE(after_one.ok);
    EXPECT_TRUE(SSL_session_reused(after_one.client.get())) << "the previous key still decrypts, " << version;

    tls_ticket_keys_rotate();
    Handshake after_two = handshake(*contexts_, client_.get(), "a.test", s.get());
    ASSERT_TRUE(after_two.ok);
    EXPECT_FALSE(SSL_session_reused(after_two.client.get())) << "two rotations later, " << version;
  }
  tls_ticket_keys_wipe();
  Handshake wiped = handshake(*contexts_, client_.get(), "a.test");
  ASSERT_TRUE(wiped.ok) << "without ticket keys handshakes still work";
  std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> s(SSL_get1_session(wiped.client.get()), SSL_SESSION_free);
  EXPECT_FALSE(s && SSL_SESSION_has_ticket(s.get())) << "no ticket is issued once the keys are wiped";
}

TEST(TlsMisdirected, HostMustNameTheSniVhost) {
  Config cfg;
  for (const char* n : {"a.test", "b.test"}) {
    VHost v;
    v.server_name = n;
    cfg.vhosts.push_back(v);
  }
  cfg.vhosts[0].aliases = {"www.a.test"};
  VHostTable table(cfg);
  const VHost* a = &cfg.vhosts[0];
  const VHost* b = &cfg.vhosts[1];
  EXPECT_FALSE(tls_misdirected(table, "a.test", a));
  EXPECT_FALSE(tls_misdirected(table, "www.a.test", a));
  EXPECT_TRUE(tls_misdirected(table, "a.test", b));
  EXPECT_FALSE(tls_misdirected(table, "", b)) << "without SNI any Host is served";
  EXPECT_FALSE(tls_misdirected(table, "unknown.test", a)) << "an unknown name means the default vhost";
  EXPECT_TRUE(tls_misdirected(table, "unknown.test", b));
}

}  // namespace
}  // namespace itk

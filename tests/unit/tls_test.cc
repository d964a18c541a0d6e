// Unit tests of TLS: key process protocol and refusals, channels bound to one key, per-vhost ticket keys,
// signing through the key methods, certificate/key checks of a load, SNI, ALPN and tickets; keys and
// certificates are made here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "tls/key_client.h"
#include "tls/key_protocol.h"
#include "tls/socket_bio.h"
#include "sys/io.h"
#include "proc/key_server.h"
#include "tls/ticket_secret.h"
#include "tls/tls.h"
#include "tls/tls_config.h"
#include "sys/unique_fd.h"

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

KeyMessage ask(const KeyStore& s, KeyChannel& channel, const KeyMessage& req) {
  std::string reply, why;
  EXPECT_TRUE(s.handle(channel, key_encode(req), reply, why)) << why;
  KeyMessage out;
  EXPECT_EQ(key_decode(reply, {KeyMsg::reply}, out), "");
  EXPECT_EQ(out.id, req.id);
  return out;
}

// On a channel bound to the key the request names.
KeyMessage ask(const KeyStore& s, const KeyMessage& req) {
  KeyChannel channel{req.key, "a.test", false, std::nullopt};
  return ask(s, channel, req);
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
  KeyChannel channel{1, "b.test", false, std::nullopt};
  std::string reply, why;
  std::string good = key_encode(request(KeyMsg::ecdsa_sign, 1, 0, std::string(32, 'd')));
  EXPECT_FALSE(s.handle(channel, good.substr(0, 10), reply, why));
  EXPECT_EQ(why, "message of 10 bytes is shorter than the 20-byte header");
  EXPECT_FALSE(s.handle(channel, good + "x", reply, why));
  EXPECT_EQ(why, "length field says 32 payload bytes, the message carries 33");
  // Messages that only the key process sends, or only the registration socket carries.
  for (KeyMsg t : {KeyMsg::reply, KeyMsg::ready, KeyMsg::register_channel, KeyMsg::ticket_secret}) {
    KeyMessage m = request(t, 0, 0, "");
    EXPECT_FALSE(s.handle(channel, key_encode(m), reply, why));
    EXPECT_NE(why.find("is not expected here"), std::string::npos) << why;
  }
}


TEST(KeyStore, ABoundChannelSignsWithItsKeyOnly) {
  KeyStore s = store();
  auto status = [&](KeyChannel& c, const KeyMessage& m) { return static_cast<KeyStatus>(ask(s, c, m).arg); };
  std::string digest(32, '\x22');
  KeyChannel rsa{0, "a.test", false, std::nullopt};
  KeyMessage r = ask(s, rsa, request(KeyMsg::rsa_private_encrypt, 0, RSA_NO_PADDING, rsa_block()));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  EXPECT_EQ(recover(material().rsa.get(), r.payload, RSA_NO_PADDING), rsa_block());
  EXPECT_FALSE(rsa.refusal_logged);
  EXPECT_EQ(status(rsa, request(KeyMsg::ecdsa_sign, 1, 0, digest)), KeyStatus::not_bound);
  EXPECT_TRUE(rsa.refusal_logged);
  EXPECT_EQ(status(rsa, request(KeyMsg::rsa_private_encrypt, 1, RSA_NO_PADDING, rsa_block())), KeyStatus::not_bound);
  // Not even a key id that does not exist gets another answer than "not yours".
  EXPECT_EQ(status(rsa, request(KeyMsg::ecdsa_sign, 7, 0, digest)), KeyStatus::not_bound);

  KeyChannel ec{1, "b.test", false, std::nullopt};
  r = ask(s, ec, request(KeyMsg::ecdsa_sign, 1, 0, digest));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  EXPECT_TRUE(ecdsa_verifies(material().ec.get(), digest, r.payload));
  EXPECT_EQ(status(ec, request(KeyMsg::rsa_private_encrypt, 0, RSA_NO_PADDING, rsa_block())), KeyStatus::not_bound);
  EXPECT_EQ(status(ec, request(KeyMsg::rsa_private_encrypt, 0, RSA_PKCS1_PADDING, std::string(51, 'b'))),
            KeyStatus::not_bound);
}

// The default vhost's channel may also use the default certificate's key (clients without SNI), and nothing else.
TEST(KeyStore, TheDefaultVhostsChannelAlsoSignsWithTheDefaultKey) {
  KeyStore s = store();
  std::string digest(32, '\x22');
  KeyChannel both{1, "b.test", false, 0u};
  KeyMessage r = ask(s, both, request(KeyMsg::ecdsa_sign, 1, 0, digest));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  r = ask(s, both, request(KeyMsg::rsa_private_encrypt, 0, RSA_NO_PADDING, rsa_block()));
  EXPECT_EQ(r.arg, static_cast<uint32_t>(KeyStatus::ok));
  EXPECT_EQ(recover(material().rsa.get(), r.payload, RSA_NO_PADDING), rsa_block());
  EXPECT_EQ(static_cast<KeyStatus>(ask(s, both, request(KeyMsg::ecdsa_sign, 2, 0, digest)).arg), KeyStatus::not_bound);
}

// HKDF-SHA256 as the key process is documented to do it, through EVP_PKEY_HKDF rather than EVP_KDF.
std::string expected_ticket_key(const std::string& secret, const std::string& name, uint64_t epoch) {
  std::string info = "itk ticket keys" + name;
  for (int shift = 56; shift >= 0; shift -= 8) info.push_back(static_cast<char>(epoch >> shift & 0xff));
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr),
                                                                  EVP_PKEY_CTX_free);
  std::string out(kTicketKeySize, '\0');
  size_t len = out.size();
  EXPECT_EQ(EVP_PKEY_derive_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                                       static_cast<int>(secret.size())), 1);
  EXPECT_EQ(EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const unsigned char*>(info.data()),
                                        static_cast<int>(info.size())), 1);
  EXPECT_EQ(EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len), 1);
  return out;
}

struct TicketKeysReply {
  uint64_t epoch = 0;
  std::string current, previous;
};

TicketKeysReply parse_ticket_keys(const std::string& payload) {
  TicketKeysReply r;
  EXPECT_EQ(payload.size(), kTicketKeysReplySize);
  if (payload.size() != kTicketKeysReplySize) return r;
  memcpy(&r.epoch, payload.data(), sizeof r.epoch);
  r.current = payload.substr(8, kTicketKeySize);
  r.previous = payload.substr(8 + kTicketKeySize, kTicketKeySize);
  return r;
}

TEST(KeyStore, TicketKeysDeriveFromTheSecretAndTheChannelsVhost) {
  const std::string secret(kTicketSecretSize, '\x42');
  KeyStore s = store();
  KeyChannel a{0, "a.test", false, std::nullopt}, b{1, "b.test", false, std::nullopt};
  KeyMessage req = request(KeyMsg::ticket_keys, 0, 0, "");
  EXPECT_EQ(static_cast<KeyStatus>(ask(s, a, req).arg), KeyStatus::no_ticket_secret);
  ASSERT_EQ(s.set_ticket_secret(std::string(5, 'x')), -EINVAL);
  ASSERT_EQ(s.set_ticket_secret(secret), 0);

  uint64_t before = ticket_epoch_now();
  KeyMessage ra = ask(s, a, req);
  ASSERT_EQ(ra.arg, static_cast<uint32_t>(KeyStatus::ok));
  TicketKeysReply ka = parse_ticket_keys(ra.payload);
  EXPECT_GE(ka.epoch, before);
  EXPECT_LE(ka.epoch, ticket_epoch_now());
  EXPECT_EQ(ka.current, expected_ticket_key(secret, "a.test", ka.epoch));
  EXPECT_EQ(ka.previous, expected_ticket_key(secret, "a.test", ka.epoch - 1));
  EXPECT_NE(ka.current, ka.previous);

  TicketKeysReply kb = parse_ticket_keys(ask(s, b, req).payload);
  EXPECT_EQ(kb.current, expected_ticket_key(secret, "b.test", kb.epoch));
  EXPECT_NE(kb.current.substr(0, kTicketKeyNameSize), ka.current.substr(0, kTicketKeyNameSize));

  // Another store with the same secret (a key process after a reload) derives the same keys.
  KeyStore other;
  ASSERT_EQ(other.set_ticket_secret(secret), 0);
  KeyChannel a2{0, "a.test", false, std::nullopt};
  EXPECT_EQ(parse_ticket_keys(ask(other, a2, req).payload).current, ka.current);

  // The request names nothing: a payload or a key id is refused, not read as another vhost.
  EXPECT_EQ(static_cast<KeyStatus>(ask(s, a, request(KeyMsg::ticket_keys, 0, 0, "b.test")).arg), KeyStatus::bad_input);
  EXPECT_EQ(static_cast<KeyStatus>(ask(s, a, request(KeyMsg::ticket_keys, 1, 0, "")).arg), KeyStatus::bad_input);
}

// ---- the session ticket secret's page ----

// The VmFlags line of the mapping that holds `p`, from /proc/self/smaps.
std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find('-')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}

TEST(TicketSecret, NoForkedChildInheritsIt) {
  TicketSecret secret;
  ASSERT_EQ(secret.generate(), 0);
  std::string copy(secret.bytes());
  ASSERT_EQ(copy.size(), kTicketSecretSize);
  ASSERT_NE(copy, std::string(kTicketSecretSize, '\0'));
  std::string flags = vm_flags_of(secret.bytes().data());
  EXPECT_NE(flags.find(" wf"), std::string::npos) << flags;  // MADV_WIPEONFORK
  EXPECT_NE(flags.find(" dd"), std::string::npos) << flags;  // MADV_DONTDUMP
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The same address, now a page of zeros.
    std::string_view seen = secret.bytes();
    _exit(seen == std::string_view(std::string(kTicketSecretSize, '\0')) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child saw the secret";
  EXPECT_EQ(std::string(secret.bytes()), copy) << "the parent keeps it";

  TicketSecret moved = std::move(secret);
  EXPECT_TRUE(secret.empty());
  EXPECT_EQ(std::string(moved.bytes()), copy);
  EXPECT_EQ(moved.assign("short"), -EINVAL);
}

// ---- the key process loop over real sockets ----

// Runs key_serve in a child; the registration socket's other end is `registration`.
class KeyServer {
 public:
  explicit KeyServer(KeyStore& keys) {
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

// A channel registered by hand, bound to `key` and `name` whatever they are, for sending what
// key_client never would.
unique_fd raw_channel(int registration, uint32_t key = 0, const std::string& name = "a.test") {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  KeyMessage m;
  m.type = KeyMsg::register_channel;
  m.key = key;
  m.payload = name;
  std::string d = key_encode(m);
  iovec iov{d.data(), d.size()};
  EXPECT_EQ(send_with_fd(registration, &iov, 1, sv[1], 0), static_cast<ssize_t>(d.size()));
  close(sv[1]);
  return unique_fd(sv[0]);
}

// Registers a channel bound to `key` and `name` and makes it this process's.
void adopt(int registration, uint32_t key, const std::string& name) {
  unique_fd end;
  ASSERT_EQ(key_register_bound_channel(registration, key, name, end), 0);
  key_client_adopt(end.release());
}

// True when the key process closed `fd` (it refused the channel) within 5 s.
bool closed_by_peer(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64];
  return recv(fd, buf, sizeof buf, 0) == 0;
}

TEST(KeyChannel, SignsThroughTheKeyMethods) {
  KeyStore keys = store();
  KeyServer server(keys);
  std::string error;
  // The handles hold only the public keys; signing with them is a round trip to the child.
  EvpPkeyPtr rsa = key_client_pkey(material().rsa_cert.get(), 0, error);
  ASSERT_TRUE(rsa) << error;
  EvpPkeyPtr ec = key_client_pkey(material().ec_cert.get(), 1, error);
  ASSERT_TRUE(ec) << error;
  for (EVP_PKEY* k : {rsa.get(), ec.get()}) {
    adopt(server.registration.get(), k == rsa.get() ? 0 : 1, k == rsa.get() ? "a.test" : "b.test");
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
  adopt(server.registration.get(), 1, "b.test");
  unique_fd bad = raw_channel(server.registration.get());
  std::string junk = "not a key message at all";
  ASSERT_EQ(send(bad.get(), junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
  EXPECT_TRUE(closed_by_peer(bad.get())) << "the key process must close a channel that sent junk";

  // A registration without a descriptor is refused; the key process keeps serving.
  KeyMessage m;
  m.type = KeyMsg::register_channel;
  std::string d = key_encode(m);
  ASSERT_EQ(send(server.registration.get(), d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));

  std::string sig, error;
  ASSERT_TRUE(key_client_call(KeyMsg::ecdsa_sign, 1, 0, std::string(32, 'd'), sig, error)) << error;
  EXPECT_TRUE(ecdsa_verifies(material().ec.get(), std::string(32, 'd'), sig));
  EXPECT_FALSE(key_client_call(KeyMsg::ecdsa_sign, 9, 0, std::string(32, 'd'), sig, error));
  EXPECT_EQ(error, "the key process refused: the channel is not bound to this key");
}

TEST(KeyChannel, RegistrationsNameOneExistingKeyAndAName) {
  KeyStore keys = store();
  KeyServer server(keys);
  unique_fd end;
  EXPECT_EQ(key_register_bound_channel(server.registration.get(), 0, "", end), -EINVAL);
  EXPECT_EQ(key_register_bound_channel(server.registration.get(), 0, std::string(kKeyMaxServerName + 1, 'a'), end),
            -EINVAL);
  EXPECT_FALSE(end);
  // What key_client refuses to send, the key process refuses to take.
  unique_fd no_key = raw_channel(server.registration.get(), 2, "a.test");
  EXPECT_TRUE(closed_by_peer(no_key.get())) << "a channel for a key that does not exist";
  unique_fd no_name = raw_channel(server.registration.get(), 0, "");
  EXPECT_TRUE(closed_by_peer(no_name.get())) << "a channel without a vhost";
  adopt(server.registration.get(), 1, "b.test");
  std::string sig, error;
  EXPECT_TRUE(key_client_call(KeyMsg::ecdsa_sign, 1, 0, std::string(32, 'd'), sig, error)) << error;
}

TEST(KeyChannel, ABoundChannelCannotUseAnotherVhostsKey) {
  KeyStore keys = store();
  KeyServer server(keys);
  std::string error, sig;
  adopt(server.registration.get(), 0, "a.test");  // vhost a's RSA key
  EvpPkeyPtr theirs = key_client_pkey(material().ec_cert.get(), 1, error);
  ASSERT_TRUE(theirs) << error;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  ASSERT_EQ(EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, theirs.get()), 1);
  const unsigned char msg[] = "a handshake of vhost b";
  unsigned char out[512];
  size_t len = sizeof out;
  EXPECT_NE(EVP_DigestSign(md.get(), out, &len, msg, sizeof msg), 1) << "signed with vhost b's key";
  ERR_clear_error();
  EXPECT_FALSE(key_client_call(KeyMsg::ecdsa_sign, 1, 0, std::string(32, 'd'), sig, error));
  EXPECT_EQ(error, "the key process refused: the channel is not bound to this key");
  // Its own key still signs on the same channel.
  EXPECT_TRUE(key_client_call(KeyMsg::rsa_private_encrypt, 0, RSA_NO_PADDING, rsa_block(), sig, error)) << error;
  EXPECT_EQ(recover(material().rsa.get(), sig, RSA_NO_PADDING), rsa_block());
}

// The ticket keys a channel bound to `name` gets from the key process behind `registration`.
TicketKeysReply ticket_keys_of(int registration, const std::string& name) {
  adopt(registration, 0, name);
  std::string payload, error;
  EXPECT_TRUE(key_client_call(KeyMsg::ticket_keys, 0, 0, "", payload, error)) << error;
  return parse_ticket_keys(payload);
}

TEST(KeyChannel, TicketKeysArePerVhostAndSurviveAnotherKeyProcess) {
  TicketSecret secret;
  ASSERT_EQ(secret.generate(), 0);
  KeyStore keys = store();
  KeyServer first(keys);
  std::string payload, error;
  adopt(first.registration.get(), 0, "a.test");
  EXPECT_FALSE(key_client_call(KeyMsg::ticket_keys, 0, 0, "", payload, error));
  EXPECT_EQ(error, "the key process refused: no ticket secret");
  ASSERT_EQ(ticket_secret_send(first.registration.get(), secret), 0);
  // Only the first secret counts.
  TicketSecret another;
  ASSERT_EQ(another.generate(), 0);
  ASSERT_EQ(ticket_secret_send(first.registration.get(), another), 0);

  TicketKeysReply a = ticket_keys_of(first.registration.get(), "a.test");
  TicketKeysReply b = ticket_keys_of(first.registration.get(), "b.test");
  EXPECT_EQ(a.current, expected_ticket_key(std::string(secret.bytes()), "a.test", a.epoch));
  EXPECT_NE(a.current, b.current);
  EXPECT_NE(a.previous, b.previous);
  // A request cannot name another vhost: its payload is refused, and the channel gets its own keys again.
  adopt(first.registration.get(), 0, "a.test");
  EXPECT_FALSE(key_client_call(KeyMsg::ticket_keys, 0, 0, "b.test", payload, error));
  EXPECT_EQ(error, "the key process refused: bad input");
  ASSERT_TRUE(key_client_call(KeyMsg::ticket_keys, 0, 0, "", payload, error)) << error;
  EXPECT_EQ(parse_ticket_keys(payload).current, a.current);

  // A second key process given the same secret (a reload) derives the same keys for the same vhost.
  KeyStore keys2 = store();
  KeyServer second(keys2);
  ASSERT_EQ(ticket_secret_send(second.registration.get(), secret), 0);
  TicketKeysReply again = ticket_keys_of(second.registration.get(), "a.test");
  EXPECT_EQ(again.epoch, a.epoch);
  EXPECT_EQ(again.current, a.current);
  EXPECT_EQ(again.previous, a.previous);
}

TEST(KeyChannel, WithoutAChannelNothingIsSigned) {
  key_client_close();
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

  // The key a vhost's handshake signs with: its own, else the default one.
  EXPECT_EQ(key_id_for(cfg, cfg.vhosts[0]), 1u);
  EXPECT_EQ(key_id_for(cfg, cfg.vhosts[1]), 0u);
  EXPECT_EQ(key_id_for(cfg, cfg.vhosts[2]), 2u);
  EXPECT_EQ(key_id_for(cfg, cfg.vhosts[3]), 1u);
  // Without [server]'s, the default vhost's, as for a client without SNI.
  cfg.server.tls = TlsFiles{};
  cfg.default_vhost = 2;
  EXPECT_EQ(key_id_for(cfg, cfg.vhosts[1]), 1u);  // c's pair is key 1 now
  EXPECT_EQ(TlsKeyMap(cfg).for_name(""), 1u);
  // No certificate anywhere: none at all.
  Config bare;
  bare.vhosts.push_back(cfg.vhosts[1]);
  EXPECT_EQ(key_id_for(bare, bare.vhosts[0]), std::nullopt);
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
    VHost d;
    d.server_name = "d.test";  // none either: c's and d's handshakes use the same key
    cfg_.vhosts = {a, b, c, d};
    KeyStore keys;
    for (const TlsFiles* f : tls_key_files(cfg_)) {
      EvpPkeyPtr k;
      ASSERT_EQ(tls_load_key_pair(*f, k), "");
      keys.add(std::move(k));
    }
    server_ = std::make_unique<KeyServer>(keys);
    ASSERT_EQ(secret_.generate(), 0);
    ASSERT_EQ(ticket_secret_send(server_->registration.get(), secret_), 0);
    std::string error;
    contexts_ = TlsContexts::build(cfg_, error);
    ASSERT_TRUE(contexts_) << error;
    client_.reset(SSL_CTX_new(TLS_client_method()));
  }

  // Makes this process the server of vhost `name` (a worker's view): a channel bound to the key its
  // handshakes use, and that vhost's ticket keys.
  void serve_as(const std::string& name) {
    const VHost* v = nullptr;
    for (const VHost& x : cfg_.vhosts)
      if (x.server_name == name) v = &x;
    ASSERT_NE(v, nullptr) << name;
    std::optional<uint32_t> key = key_id_for(cfg_, *v);
    ASSERT_TRUE(key);
    adopt(server_->registration.get(), *key, name);
    std::string error;
    ASSERT_TRUE(tls_ticket_keys_load(error)) << error;
  }
  void TearDown() override {
    tls_ticket_keys_wipe();
    contexts_.reset();
    server_.reset();
  }

  Files files_;
  Config cfg_;
  TicketSecret secret_;
  std::unique_ptr<KeyServer> server_;
  std::unique_ptr<TlsContexts> contexts_;
  SslCtxPtr client_;
};

TEST_F(TlsHandshakes, SniSelectsTheVhostsCertificate) {
  struct Case {
    const char* sni;
    const char* cn;
    const char* vhost;  // whose key the handshake needs
  };
  for (Case c : {Case{"a.test", "a.test", "a.test"}, Case{"B.TEST", "b.test", "b.test"},
                 Case{"www.a.test", "a.test", "a.test"}, Case{"x.y.wild.test", "a.test", "a.test"},
                 Case{"c.test", "default.test", "c.test"}, Case{"other.test", "default.test", "c.test"},
                 Case{nullptr, "default.test", "c.test"}}) {
    serve_as(c.vhost);
    Handshake h = handshake(*contexts_, client_.get(), c.sni);
    ASSERT_TRUE(h.ok) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(peer_cn(h.client.get()), c.cn) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(tls_server_name(h.server.get()), c.sni ? VHostTable::normalize_host(c.sni) : "");
  }
}

TEST_F(TlsHandshakes, OnlyModernProtocolsAndHttp11) {
  serve_as("a.test");
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

using SessionPtr = std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)>;

TEST_F(TlsHandshakes, ABoundKeySignsOnlyItsVhostsHandshakes) {
  serve_as("a.test");
  EXPECT_TRUE(handshake(*contexts_, client_.get(), "a.test").ok);
  // b's certificate needs b's key, which a's channel cannot use: the handshake fails, nothing is signed.
  EXPECT_FALSE(handshake(*contexts_, client_.get(), "b.test").ok);
  serve_as("b.test");
  EXPECT_TRUE(handshake(*contexts_, client_.get(), "b.test").ok);
}

TEST_F(TlsHandshakes, TicketsResumeUnderTheirOwnVhostsKeysOnly) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SSL_CTX_set_min_proto_version(client_.get(), version);
    SSL_CTX_set_max_proto_version(client_.get(), version);
    serve_as("a.test");
    Handshake first = handshake(*contexts_, client_.get(), "a.test");
    ASSERT_TRUE(first.ok);
    EXPECT_FALSE(SSL_session_reused(first.client.get())) << version;
    SessionPtr s(SSL_get1_session(first.client.get()), SSL_SESSION_free);
    ASSERT_TRUE(s && SSL_SESSION_has_ticket(s.get())) << version;

    Handshake again = handshake(*contexts_, client_.get(), "a.test", s.get());
    ASSERT_TRUE(again.ok);
    EXPECT_TRUE(SSL_session_reused(again.client.get())) << version;

    // Another certificate never resumes it, even when the client offers it for that name.
    serve_as("b.test");
    SessionPtr moved(SSL_SESSION_dup(s.get()), SSL_SESSION_free);
    ASSERT_EQ(SSL_SESSION_set1_hostname(moved.get(), "b.test"), 1);
    Handshake other = handshake(*contexts_, client_.get(), "b.test", moved.get());
    ASSERT_TRUE(other.ok);
    EXPECT_FALSE(SSL_session_reused(other.client.get())) << version;
    EXPECT_EQ(peer_cn(other.client.get()), "b.test");

    // c and d present the same certificate, so only their ticket keys keep c's ticket out of d.
    serve_as("c.test");
    Handshake c = handshake(*contexts_, client_.get(), "c.test");
    ASSERT_TRUE(c.ok);
    SessionPtr cs(SSL_get1_session(c.client.get()), SSL_SESSION_free);
    ASSERT_TRUE(cs && SSL_SESSION_has_ticket(cs.get())) << version;
    serve_as("d.test");
    SessionPtr to_d(SSL_SESSION_dup(cs.get()), SSL_SESSION_free);
    ASSERT_EQ(SSL_SESSION_set1_hostname(to_d.get(), "d.test"), 1);
    Handshake d = handshake(*contexts_, client_.get(), "d.test", to_d.get());
    ASSERT_TRUE(d.ok);
    EXPECT_FALSE(SSL_session_reused(d.client.get())) << "d decrypted c's ticket, " << version;
    EXPECT_EQ(peer_cn(d.client.get()), "default.test");
    // Back in c (another process of c, or c after a reload: the same keys), the ticket resumes.
    serve_as("c.test");
    Handshake c_again = handshake(*contexts_, client_.get(), "c.test", cs.get());
    ASSERT_TRUE(c_again.ok);
    EXPECT_TRUE(SSL_session_reused(c_again.client.get())) << version;
  }
  tls_ticket_keys_wipe();
  Handshake wiped = handshake(*contexts_, client_.get(), "c.test");
  ASSERT_TRUE(wiped.ok) << "without ticket keys handshakes still work";
  SessionPtr s(SSL_get1_session(wiped.client.get()), SSL_SESSION_free);
  EXPECT_FALSE(s && SSL_SESSION_has_ticket(s.get())) << "no ticket is issued without keys";
}

TEST_F(TlsHandshakes, TicketKeysNeedTheSecret) {
  // A key process that never got the secret: the worker has no keys, and says why.
  KeyStore keys = store();
  KeyServer bare(keys);
  adopt(bare.registration.get(), 0, "c.test");
  std::string error;
  EXPECT_FALSE(tls_ticket_keys_load(error));
  EXPECT_EQ(error, "the key process refused: no ticket secret");
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

// The worker's socket BIO: what it writes waits for a flush (or, during the handshake, for the next read),
// and a read with nothing there is a retry, not a wait.
TEST(SocketBio, WritesWaitForAFlushAndReadsNeverBlock) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  unique_fd mine(sv[0]), peer(sv[1]);
  BioMethodPtr method = socket_bio_method();
  ASSERT_TRUE(method);
  BioPtr bio(socket_bio_new(method.get(), mine.get()));
  ASSERT_TRUE(bio);
  char buf[64];
  // Nothing to read: -1 with the retry flag, at once (the socket itself blocks).
  EXPECT_EQ(BIO_read(bio.get(), buf, sizeof buf), -1);
  EXPECT_TRUE(BIO_should_retry(bio.get()));
  EXPECT_TRUE(BIO_should_read(bio.get()));
  // A write and OpenSSL's own flush send nothing...
  EXPECT_EQ(BIO_write(bio.get(), "flight", 6), 6);
  EXPECT_EQ(BIO_flush(bio.get()), 1);
  EXPECT_EQ(recv(peer.get(), buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  // ...until the handshake reads: a flight reaches the peer before its answer is awaited.
  EXPECT_EQ(BIO_read(bio.get(), buf, sizeof buf), -1);
  ASSERT_EQ(recv(peer.get(), buf, sizeof buf, MSG_DONTWAIT), 6);
  EXPECT_EQ(std::string(buf, 6), "flight");
  // After the handshake a read leaves what is written (a session ticket) for the response's flush.
  socket_bio_handshake_done(bio.get());
  EXPECT_EQ(BIO_write(bio.get(), "ticket", 6), 6);
  ASSERT_EQ(send(peer.get(), "request", 7, 0), 7);
  ASSERT_EQ(BIO_read(bio.get(), buf, sizeof buf), 7);
  EXPECT_EQ(std::string(buf, 7), "request");
  EXPECT_EQ(recv(peer.get(), buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(BIO_write(bio.get(), "response", 8), 8);
  ASSERT_TRUE(socket_bio_flush(bio.get()));
  ASSERT_EQ(recv(peer.get(), buf, sizeof buf, MSG_DONTWAIT), 14);
  EXPECT_EQ(std::string(buf, 14), "ticketresponse");
  // The peer gone: a flush fails and says so, and so does every later write.
  peer.reset();
  EXPECT_EQ(BIO_write(bio.get(), "late", 4), 4);
  EXPECT_FALSE(socket_bio_flush(bio.get()));
  EXPECT_EQ(BIO_write(bio.get(), "later", 5), -1);
  EXPECT_EQ(BIO_read(bio.get(), buf, sizeof buf), 0);  // end of stream
}

}  // namespace
}  // namespace itk

// Key process: loads the private keys, reports to the master, drops to the acceptor user, then signs and
// derives ticket keys for channels each bound to one key and one vhost.
#include "proc/key_server.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "proc/scoreboard.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/proctitle.h"
#include "sys/privileges.h"
#include "sys/unique_fd.h"
#include "tls/key_protocol.h"
#include "tls/tls_config.h"

namespace itk {
namespace {

// Digests are at most 64 bytes (SHA-512); anything else for ECDSA is not a TLS signature.
constexpr size_t kMaxDigest = 64;
// One channel per live worker and per acceptor at most.
constexpr size_t kMaxChannels = kMaxWorkers + kMaxAcceptors;

std::string reply(const KeyMessage& req, KeyStatus status, std::string payload = {}) {
  KeyMessage r;
  r.type = KeyMsg::reply;
  r.id = req.id;
  r.key = req.key;
  r.arg = static_cast<uint32_t>(status);
  r.payload = std::move(payload);
  return key_encode(r);
}

std::optional<std::string> sign_raw(EVP_PKEY* key, int rsa_padding, std::string_view in) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) return std::nullopt;
  if (rsa_padding != 0 && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), rsa_padding) != 1) return std::nullopt;
  const auto* data = reinterpret_cast<const unsigned char*>(in.data());
  size_t len = 0;
  if (EVP_PKEY_sign(ctx.get(), nullptr, &len, data, in.size()) != 1) return std::nullopt;
  std::string out(len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, data, in.size()) != 1)
    return std::nullopt;
  out.resize(len);
  return out;
}

// Sends the ready message; the master waits for it before it forks any acceptor.
void report_ready(int fd, bool ok, size_t keys, const std::string& why) {
  KeyMessage m;
  m.type = KeyMsg::ready;
  m.key = static_cast<uint32_t>(keys);
  m.arg = ok ? 0 : 1;
  m.payload = why;
  std::string d = key_encode(m);
  (void)send(fd, d.data(), d.size(), MSG_NOSIGNAL);
}

// A registered channel and its binding.
struct Channel {
  unique_fd fd;
  KeyChannel binding;
};

// Why a register_channel message `m` with descriptors `fds` is refused, or "".
std::string registration_problem(const KeyStore& keys, const KeyMessage& m, const std::vector<unique_fd>& fds,
                                 size_t channels) {
  if (fds.size() != 1) return strprintf("expected one descriptor, got %zu", fds.size());
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fds[0].get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET)
    return "the descriptor is not a SOCK_SEQPACKET socket";
  len = sizeof domain;
  if (getsockopt(fds[0].get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX)
    return "the descriptor is not a unix socket";
  if (m.key >= keys.size()) return strprintf("key %u does not exist (%zu keys)", m.key, keys.size());
  if (m.arg > keys.size()) return strprintf("key %u does not exist (%zu keys)", m.arg - 1, keys.size());
  if (m.payload.empty() || m.payload.size() > kKeyMaxServerName)
    return strprintf("a server name of %zu bytes (1 to %zu expected)", m.payload.size(), kKeyMaxServerName);
  if (channels >= kMaxChannels) return strprintf("already %zu channels", channels);
  return "";
}

// Takes a new channel, or the ticket secret, from the registration socket. False at end of file (no
// channel can be registered any more).
bool accept_registration(KeyStore& keys, int reg, std::vector<Channel>& channels) {
  char buf[kKeyMaxMessage + 1];
  iovec iov{buf, sizeof buf};
  // Every descriptor that came is owned here first, so a refused message leaks none of them.
  std::vector<unique_fd> fds;
  ssize_t n = recv_fds(reg, &iov, 1, fds, MSG_DONTWAIT);
  if (n < 0 && n != -EMSGSIZE) return n == -EAGAIN || n == -EINTR;
  if (n == 0) return false;
  KeyMessage m;
  std::string why;
  if (n == -EMSGSIZE)
    why = "message or its descriptors truncated";
  else
    why = key_decode(std::string_view(buf, static_cast<size_t>(n)), {KeyMsg::register_channel, KeyMsg::ticket_secret}, m);
  OPENSSL_cleanse(buf, n > 0 ? static_cast<size_t>(n) : sizeof buf);
  if (why.empty() && m.type == KeyMsg::ticket_secret) {
    // Only the first counts: the master sends it before anyone else can write to this socket.
    if (!fds.empty())
      why = "the ticket secret came with descriptors";
    else if (keys.has_ticket_secret())
      why = "a second ticket secret";
    else if (int rc = keys.set_ticket_secret(m.payload); rc < 0)
      why = strprintf("a ticket secret of %zu bytes (%zu expected)", m.payload.size(), kTicketSecretSize);
    OPENSSL_cleanse(m.payload.data(), m.payload.size());
    if (!why.empty()) log(Level::err, "ticket secret refused: %s", why.c_str());
    return true;
  }
  if (why.empty()) why = registration_problem(keys, m, fds, channels.size());
  if (!why.empty()) {
    log(Level::err, "channel registration refused: %s", why.c_str());
    return true;
  }
  channels.push_back({std::move(fds[0]), KeyChannel{m.key, std::move(m.payload), false, m.arg ? std::optional<uint32_t>(m.arg - 1) : std::nullopt}});
  return true;
}

// Serves one readable channel. False when the channel has to be closed.
bool serve_channel(const KeyStore& keys, Channel& ch) {
  char buf[kKeyMaxMessage + 1];
  // MSG_TRUNC: the return value is the datagram's real length, so an oversized one is seen as such.
  ssize_t n = recv(ch.fd.get(), buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;  // the client exited
  std::string reply_msg, why;
  if (static_cast<size_t>(n) > kKeyMaxMessage)
    why = strprintf("message of %zd bytes is over the limit of %zu", n, kKeyMaxMessage);
  else
    (void)keys.handle(ch.binding, std::string_view(buf, static_cast<size_t>(n)), reply_msg, why);  // `why` set when malformed
  if (!why.empty()) {
    log(Level::err, "closing the channel of %s (key %u): %s", ch.binding.server_name.c_str(), ch.binding.key,
        why.c_str());
    return false;
  }
  // An honest client has one request in flight and reads its reply; one that does not is dropped.
  if (send(ch.fd.get(), reply_msg.data(), reply_msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
      static_cast<ssize_t>(reply_msg.size())) {
    log(Level::err, "closing the channel of %s (key %u): sending the reply failed: %s",
        ch.binding.server_name.c_str(), ch.binding.key, strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

KeyStore::KeyStore() : kdf_(EVP_KDF_fetch(nullptr, "HKDF", nullptr)) {}

void KeyStore::add(EvpPkeyPtr key) { keys_.push_back(std::move(key)); }

bool KeyStore::ticket_key(std::string_view server_name, uint64_t epoch, unsigned char out[kTicketKeySize]) const {
  if (secret_.empty() || !kdf_) return false;
  std::string info = "itk ticket keys";
  info.append(server_name);
  for (int shift = 56; shift >= 0; shift -= 8) info.push_back(static_cast<char>(epoch >> shift & 0xff));
  EvpKdfCtxPtr ctx(EVP_KDF_CTX_new(kdf_.get()));
  std::string_view secret = secret_.bytes();
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end(),
  };
  if (!ctx || EVP_KDF_derive(ctx.get(), out, kTicketKeySize, params) != 1) {
    ERR_clear_error();
    return false;
  }
  return true;
}

bool KeyStore::handle(KeyChannel& channel, std::string_view request, std::string& out, std::string& why) const {
  KeyMessage req;
  why = key_decode(request, {KeyMsg::rsa_private_encrypt, KeyMsg::ecdsa_sign, KeyMsg::ticket_keys}, req);
  if (!why.empty()) return false;
  if (req.type == KeyMsg::ticket_keys) {
    if (req.key != 0 || req.arg != 0 || !req.payload.empty()) {
      out = reply(req, KeyStatus::bad_input);
      return true;
    }
    if (secret_.empty()) {
      out = reply(req, KeyStatus::no_ticket_secret);
      return true;
    }
    // The epoch, then the key of this epoch and the previous one's (which still decrypts).
    uint64_t epoch = ticket_epoch_now();
    std::string keys(kTicketKeysReplySize, '\0');
    memcpy(keys.data(), &epoch, sizeof epoch);
    auto* at = reinterpret_cast<unsigned char*>(keys.data() + sizeof epoch);
    bool ok = ticket_key(channel.server_name, epoch, at) && ticket_key(channel.server_name, epoch - 1, at + kTicketKeySize);
    if (!ok) {
      OPENSSL_cleanse(keys.data(), keys.size());
      log(Level::err, "deriving the ticket keys of %s failed", channel.server_name.c_str());
      out = reply(req, KeyStatus::failed);
      return true;
    }
    out = reply(req, KeyStatus::ok, std::move(keys));
    return true;
  }
  if (req.key != channel.key && req.key != channel.also) {
    if (!channel.refusal_logged)
      log(Level::warning, "the channel of %s, bound to key %u, asked for key %u: refused (logged once per channel)",
          channel.server_name.c_str(), channel.key, req.key);
    channel.refusal_logged = true;
    out = reply(req, KeyStatus::not_bound);
    return true;
  }
  if (req.key >= keys_.size()) {
    out = reply(req, KeyStatus::no_such_key);
    return true;
  }
  EVP_PKEY* key = keys_[req.key].get();
  std::optional<std::string> sig;
  if (req.type == KeyMsg::rsa_private_encrypt) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
      out = reply(req, KeyStatus::wrong_key_type);
      return true;
    }
    size_t size = static_cast<size_t>(EVP_PKEY_get_size(key));
    // TLS needs exactly these: PSS blocks (encoded by the acceptor) and PKCS#1 v1.5 DigestInfos.
    bool ok = (req.arg == RSA_NO_PADDING && req.payload.size() == size) ||
              (req.arg == RSA_PKCS1_PADDING && !req.payload.empty() && req.payload.size() + 11 <= size);
    if (!ok) {
      out = reply(req, KeyStatus::bad_input);
      return true;
    }
    sig = sign_raw(key, static_cast<int>(req.arg), req.payload);
  } else {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
      out = reply(req, KeyStatus::wrong_key_type);
      return true;
    }
    if (req.payload.empty() || req.payload.size() > kMaxDigest) {
      out = reply(req, KeyStatus::bad_input);
      return true;
    }
    sig = sign_raw(key, 0, req.payload);
  }
  if (!sig) {
    log(Level::err, "signing with key %u failed: %s", req.key, ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    out = reply(req, KeyStatus::failed);
    return true;
  }
  out = reply(req, KeyStatus::ok, std::move(*sig));
  return true;
}

void key_serve(KeyStore& keys, int registration_fd) {
  std::vector<Channel> channels;
  bool registering = true;
  std::vector<pollfd> fds;
  while (registering || !channels.empty()) {
    fds.clear();
    if (registering) fds.push_back({registration_fd, POLLIN, 0});
    for (const Channel& c : channels) fds.push_back({c.fd.get(), POLLIN, 0});
    int r = poll(fds.data(), fds.size(), -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      log(Level::err, "poll failed: %s", strerror(errno));
      return;
    }
    size_t first = 0;
    if (registering) first = 1;
    // Channels added by a registration below are not in `fds`; they are polled on the next round.
    std::vector<bool> drop(fds.size() - first, false);
    for (size_t i = first; i < fds.size(); i++) {
      if (!fds[i].revents) continue;
      drop[i - first] = !serve_channel(keys, channels[i - first]);
    }
    for (size_t i = drop.size(); i-- > 0;)
      if (drop[i]) channels.erase(channels.begin() + static_cast<long>(i));
    if (registering && fds[0].revents) registering = accept_registration(keys, registration_fd, channels);
  }
}

[[noreturn]] void key_server_main(const Config& cfg, int registration_fd, pid_t master) {
  log_set_role("keys");
  (void)prctl(PR_SET_NAME, "itk-keys", 0, 0, 0);
  proctitle_set({"keys"});
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);

  KeyStore keys;
  for (const TlsFiles* f : tls_key_files(cfg)) {
    EvpPkeyPtr key;
    std::string e = tls_load_key_pair(*f, key);
    if (!e.empty()) {
      std::string why = strprintf("TLSCertificateKeyFile `%s`: %s", f->key_file.c_str(), e.c_str());
      log(Level::err, "%s", why.c_str());
      report_ready(registration_fd, false, keys.size(), why);
      _exit(1);
    }
    keys.add(std::move(key));
  }

  // The acceptor user in the key process's sandbox (privileges.cc): no capability in any set, locked
  // securebits, no_new_privs, non-dumpable (no ptrace, no /proc/PID/mem for anyone but root), and the
  // system calls of a datagram loop. It never gets a tenant's uid, so no tenant can signal it either.
  become_key_process(cfg.server.acceptor);
  // After the uid change, which clears it.
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != master) _exit(0);
  report_ready(registration_fd, true, keys.size(), "");
  key_serve(keys, registration_fd);
  _exit(0);
}

std::string key_server_wait_ready(int registration_fd, int timeout_ms) {
  pollfd p{registration_fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r == 0) return strprintf("the key process did not report within %d s", timeout_ms / 1000);
  if (r < 0) return strprintf("waiting for the key process failed: %s", strerror(errno));
  char buf[kKeyMaxMessage + 1];
  ssize_t n = recv(registration_fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
  if (n == 0) return "the key process exited before loading the keys (see its log line above)";
  if (n < 0) return strprintf("reading from the key process failed: %s", strerror(errno));
  if (static_cast<size_t>(n) > kKeyMaxMessage) return "the key process sent an oversized message";
  KeyMessage m;
  std::string why = key_decode(std::string_view(buf, static_cast<size_t>(n)), {KeyMsg::ready}, m);
  if (!why.empty()) return "malformed message from the key process: " + why;
  if (m.arg != 0) return m.payload.empty() ? std::string("the key process failed") : m.payload;
  return "";
}

}  // namespace itk

// Certificates and keys at load time: parsing, the key id order, and the checks of `itkd --check`, start
// and reload. Private keys are parsed only in processes that never fork a serving process.
#include "tls/tls_config.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "config/vhost_table.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

// Certificate chains and keys are a few kilobytes; the cap keeps a wrong path such as /dev/zero harmless.
constexpr size_t kMaxPemFile = 1u << 20;
// How long the checking child may take to read and compare one key.
constexpr int kCheckTimeoutMs = 10000;

// Reads a regular file of at most kMaxPemFile bytes. Returns "" or why not. O_NONBLOCK keeps a FIFO named
// by mistake from hanging the load; it is refused as "not a regular file" right after.
std::string read_pem_file(const std::string& path, std::string& out) {
  unique_fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return strprintf("cannot open: %s", strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) return strprintf("cannot stat: %s", strerror(errno));
  if (!S_ISREG(st.st_mode)) return "is not a regular file";
  if (static_cast<uint64_t>(st.st_size) > kMaxPemFile)
    return strprintf("is larger than %zu KiB; a PEM file is a few kilobytes", kMaxPemFile >> 10);
  out.assign(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return strprintf("cannot read: %s", strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return "";
}

// Wipes a buffer that may hold key material before it is freed.
void wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

// Refuses to prompt: a key with a passphrase cannot be loaded unattended.
int no_passphrase(char*, int, int, void*) { return -1; }

std::string openssl_reason() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  const char* r = ERR_reason_error_string(e);
  return r ? r : strprintf("OpenSSL error 0x%lx", e);
}

std::string key_type_problem(EVP_PKEY* key, const char* what) {
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits < 2048) return strprintf("%s a %d-bit RSA key; TLS needs 2048 bits or more", what, bits);
    return "";
  }
  if (id == EVP_PKEY_EC) {
    char group[64] = "";
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return strprintf("%s an EC key on no named curve", what);
    std::string_view g = group;
    if (g == "prime256v1" || g == "secp384r1" || g == "secp521r1") return "";
    return strprintf("%s an EC key on curve %s; TLS clients accept P-256, P-384 and P-521", what, group);
  }
  const char* name = OBJ_nid2sn(id);
  return strprintf("%s a %s key; itk signs with RSA and EC (ECDSA) keys only", what, name ? name : "non-RSA, non-EC");
}

std::string asn1_time_text(const ASN1_TIME* t) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || ASN1_TIME_print(b.get(), t) != 1) return "(unreadable date)";
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string quoted_path(const std::string& path, const std::string& owner) {
  return "`" + path + "` (" + owner + ")";
}

// The key check, in a child that reads the key, compares it and exits: "" when the key matches.
std::string check_key_in_child(const TlsFiles& files) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return strprintf("cannot check the key: pipe failed: %s", strerror(errno));
  unique_fd rd(p[0]), wr(p[1]);
  pid_t pid = fork();
  if (pid < 0) return strprintf("cannot check the key: fork failed: %s", strerror(errno));
  if (pid == 0) {
    rd.reset();
    EvpPkeyPtr key;
    std::string e = tls_load_key_pair(files, key);
    (void)write_all_fd(wr.get(), e.empty() ? std::string("ok") : "error:" + e);
    _exit(0);
  }
  wr.reset();
  std::string answer;
  int64_t deadline = now_ms() + kCheckTimeoutMs;
  for (;;) {
    int64_t left = deadline - now_ms();
    pollfd pfd{rd.get(), POLLIN, 0};
    int r = left > 0 ? poll(&pfd, 1, static_cast<int>(left)) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      (void)kill(pid, SIGKILL);
      answer = "timeout";
      break;
    }
    char buf[4096];
    ssize_t n = read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (answer.size() < 8192) answer.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (answer == "ok") return "";
  if (answer.rfind("error:", 0) == 0) return answer.substr(6);
  if (answer == "timeout") return strprintf("checking the key took longer than %d s", kCheckTimeoutMs / 1000);
  return strprintf("checking the key failed (the checking process ended with status 0x%x)", status);
}

struct PairResult {
  X509Ptr leaf;
  std::string cert_error;
  std::string key_error;
  std::vector<std::string> cert_warnings;
  std::vector<std::string> key_warnings;
};

PairResult check_pair(const TlsFiles& f) {
  PairResult r;
  std::vector<X509Ptr> chain;
  r.cert_error = tls_read_certificates(f.certificate_file, r.leaf, chain);
  if (!r.cert_error.empty()) return r;
  X509* leaf = r.leaf.get();
  const ASN1_TIME* not_after = X509_get0_notAfter(leaf);
  const ASN1_TIME* not_before = X509_get0_notBefore(leaf);
  if (X509_cmp_current_time(not_after) < 0)
    r.cert_warnings.push_back(strprintf("the certificate expired on %s; it is still served (renew it, then "
                                        "`systemctl reload itk`)",
                                        asn1_time_text(not_after).c_str()));
  else if (X509_cmp_current_time(not_before) > 0)
    r.cert_warnings.push_back(strprintf("the certificate is not valid before %s; it is served anyway",
                                        asn1_time_text(not_before).c_str()));
  struct stat st {};
  if (stat(f.key_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH))
    r.key_warnings.push_back(strprintf("every user can read this private key (mode %04o): make it readable by "
                                       "root only (chmod 600)",
                                       static_cast<unsigned>(st.st_mode & 07777)));
  r.key_error = check_key_in_child(f);
  return r;
}

}  // namespace

bool tls_configured(const Config& cfg) {
  if (!cfg.server.tls.certificate_file.empty()) return true;
  for (const VHost& v : cfg.vhosts)
    if (!v.tls.certificate_file.empty()) return true;
  return false;
}

std::vector<const TlsFiles*> tls_key_files(const Config& cfg) {
  std::vector<const TlsFiles*> out;
  auto add = [&](const TlsFiles& f) {
    if (f.certificate_file.empty() || f.key_file.empty()) return;
    for (const TlsFiles* o : out)
      if (o->certificate_file == f.certificate_file && o->key_file == f.key_file) return;
    out.push_back(&f);
  };
  add(cfg.server.tls);
  for (const VHost& v : cfg.vhosts) add(v.tls);
  return out;
}

TlsKeyMap::TlsKeyMap(const Config& cfg) {
  std::vector<const TlsFiles*> files = tls_key_files(cfg);
  auto id_of = [&](const TlsFiles& f) -> std::optional<uint32_t> {
    for (size_t i = 0; i < files.size(); i++)
      if (files[i]->certificate_file == f.certificate_file && files[i]->key_file == f.key_file)
        return static_cast<uint32_t>(i);
    return std::nullopt;
  };
  std::optional<uint32_t> first;
  for (const VHost& v : cfg.vhosts) {
    std::optional<uint32_t> id = id_of(v.tls);
    if (!id) continue;
    if (!first) first = id;
    exact_.emplace(v.server_name, *id);
    for (const std::string& a : v.aliases) {
      if (a.rfind("*.", 0) == 0)
        wildcard_.emplace(a.substr(2), *id);
      else
        exact_.emplace(a, *id);
    }
  }
  default_ = id_of(cfg.server.tls);
  if (!default_ && cfg.default_vhost < cfg.vhosts.size()) default_ = id_of(cfg.vhosts[cfg.default_vhost].tls);
  if (!default_) default_ = first;
}

std::optional<uint32_t> TlsKeyMap::for_name(std::string_view sni) const {
  std::string host = VHostTable::normalize_host(sni);
  if (host.empty()) return default_;
  if (auto it = exact_.find(host); it != exact_.end()) return it->second;
  // Longest suffix first: "a.b.example.org" tries "b.example.org", then "example.org", then "org".
  for (size_t dot = host.find('.'); dot != std::string::npos; dot = host.find('.', dot + 1)) {
    if (auto it = wildcard_.find(host.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  return default_;
}

std::optional<uint32_t> key_id_for(const Config& cfg, const VHost& vhost) {
  return TlsKeyMap(cfg).for_name(vhost.server_name);
}

std::string tls_read_certificates(const std::string& path, X509Ptr& leaf, std::vector<X509Ptr>& chain) {
  std::string text;
  std::string e = read_pem_file(path, text);
  if (!e.empty()) return e;
  // Checked before OpenSSL parses anything: its PEM reader would copy a key block it skips into memory
  // it frees without wiping, and the master's memory is what every acceptor inherits.
  if (text.find("PRIVATE KEY-----") != std::string::npos) {
    wipe(text);
    return "holds a private key: keep the key in its own file (TLSCertificateKeyFile), readable by root only; "
           "itk never lets the process that forks acceptors read key bytes";
  }
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return "out of memory";
  leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) {
    ERR_clear_error();
    return "holds no PEM certificate (expected a -----BEGIN CERTIFICATE----- block)";
  }
  chain.clear();
  for (;;) {
    X509Ptr next(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!next) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        break;
      }
      return strprintf("certificate %zu of the chain cannot be parsed: %s", chain.size() + 2, openssl_reason().c_str());
    }
    chain.push_back(std::move(next));
  }
  EVP_PKEY* pub = X509_get0_pubkey(leaf.get());
  if (!pub) return "the certificate's public key cannot be parsed: " + openssl_reason();
  return key_type_problem(pub, "the certificate is for");
}

std::string tls_read_private_key(const std::string& path, EvpPkeyPtr& key) {
  std::string text;
  std::string e = read_pem_file(path, text);
  if (!e.empty()) return e;
  if (text.find("ENCRYPTED") != std::string::npos) {
    wipe(text);
    return "is encrypted, and itk cannot ask for a passphrase: store it unencrypted, readable by root only "
           "(openssl pkey -in KEY -out NEWKEY)";
  }
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (bio) key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  bio.reset();
  wipe(text);
  if (!key) {
    ERR_clear_error();
    return "holds no PEM private key (expected a -----BEGIN PRIVATE KEY----- block)";
  }
  return key_type_problem(key.get(), "is");
}

std::string tls_load_key_pair(const TlsFiles& files, EvpPkeyPtr& key) {
  X509Ptr leaf;
  std::vector<X509Ptr> chain;
  std::string e = tls_read_certificates(files.certificate_file, leaf, chain);
  if (!e.empty()) return strprintf("its certificate `%s` %s", files.certificate_file.c_str(), e.c_str());
  e = tls_read_private_key(files.key_file, key);
  if (!e.empty()) return e;
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), key.get()) != 1) {
    ERR_clear_error();
    key.reset();
    return strprintf("does not match the certificate `%s` (give the key that certificate was issued for)",
                     files.certificate_file.c_str());
  }
  return "";
}

void validate_tls(const Config& cfg, bool check_files, std::vector<ConfigError>& errors,
                  std::vector<ConfigError>& warnings) {
  struct Owner {
    const TlsFiles* files;
    std::string what;
    std::string server_name;
  };
  std::vector<Owner> owners;
  if (!cfg.server.tls.empty()) owners.push_back({&cfg.server.tls, "default certificate", ""});
  for (const VHost& v : cfg.vhosts)
    if (!v.tls.empty()) owners.push_back({&v.tls, "vhost " + v.server_name, v.server_name});

  std::map<std::pair<std::string, std::string>, PairResult> checked;
  for (const Owner& o : owners) {
    const TlsFiles& f = *o.files;
    // A half given with a bad value (key_at/certificate_at set, path empty) was reported at its line.
    if (f.key_file.empty()) {
      if (f.key_at.line == 0)
        errors.push_back({f.certificate_at, "TLSCertificateFile",
                          "has no TLSCertificateKeyFile beside it: give the certificate's private key in the same "
                          "section"});
      continue;
    }
    if (f.certificate_file.empty()) {
      if (f.certificate_at.line == 0)
        errors.push_back({f.key_at, "TLSCertificateKeyFile",
                          "has no TLSCertificateFile beside it: give the key's certificate in the same section"});
      continue;
    }
    if (!check_files) continue;
    auto id = std::make_pair(f.certificate_file, f.key_file);
    auto it = checked.find(id);
    if (it == checked.end()) it = checked.emplace(id, check_pair(f)).first;
    const PairResult& r = it->second;
    std::string cert = quoted_path(f.certificate_file, o.what);
    std::string key = quoted_path(f.key_file, o.what);
    if (!r.cert_error.empty()) {
      errors.push_back({f.certificate_at, "TLSCertificateFile", cert + ": " + r.cert_error});
      continue;
    }
    if (!r.key_error.empty()) errors.push_back({f.key_at, "TLSCertificateKeyFile", key + ": " + r.key_error});
    for (const std::string& w : r.cert_warnings) warnings.push_back({f.certificate_at, "TLSCertificateFile", cert + ": " + w});
    if (!o.server_name.empty() &&
        X509_check_host(r.leaf.get(), o.server_name.c_str(), o.server_name.size(), 0, nullptr) != 1)
      warnings.push_back({f.certificate_at, "TLSCertificateFile",
                          cert + ": the certificate does not name " + o.server_name +
                              "; clients will refuse it for that name"});
    for (const std::string& w : r.key_warnings) warnings.push_back({f.key_at, "TLSCertificateKeyFile", key + ": " + w});
  }
}

}  // namespace itk

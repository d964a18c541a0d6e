// TLS files of a configuration: reading certificates and keys, the list that numbers the keys, and the
// checks every load runs. Keys are read only by the key process or a checking child, never the master.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "tls/tls_ptr.h"

namespace itk {

// Whether any certificate is configured ([server] or a vhost).
bool tls_configured(const Config& cfg);

// The distinct certificate/key pairs of `cfg`: [server]'s first, then the vhosts' in load order, each
// pair once. A pair's index is its key id in the key process; master and key process both derive it
// from the same Config, so they agree. Incomplete pairs (a config error) are left out.
std::vector<const TlsFiles*> tls_key_files(const Config& cfg);

// Which key a handshake uses for the name a client sent: a vhost's own certificate by its ServerName or
// an alias (exact first, then the longest wildcard), else the default one ([server]'s, else the default
// vhost's, else the first vhost's that has one). The rule of SNI selection, on key ids, so that it holds
// without any SSL_CTX.
class TlsKeyMap {
 public:
  explicit TlsKeyMap(const Config& cfg);
  // The key id for `sni` (empty: no SNI); nullopt when no certificate is configured at all.
  std::optional<uint32_t> for_name(std::string_view sni) const;
  std::optional<uint32_t> default_key() const { return default_; }

 private:
  std::unordered_map<std::string, uint32_t> exact_;
  std::unordered_map<std::string, uint32_t> wildcard_;  // key: the suffix after "*."
  std::optional<uint32_t> default_;
};

// The key id of the certificate a handshake for `vhost` presents: TlsKeyMap(cfg).for_name of its
// ServerName, so its own certificate, else the default one (or another vhost's whose wildcard alias
// covers the name). nullopt: no certificate is configured, so the vhost has none at all.
std::optional<uint32_t> key_id_for(const Config& cfg, const VHost& vhost);

// Reads a PEM file holding a certificate followed by its chain. Returns "" or what is wrong, phrased to
// follow the path ("cannot open: Permission denied").
std::string tls_read_certificates(const std::string& path, X509Ptr& leaf, std::vector<X509Ptr>& chain);

// Reads an unencrypted PEM private key, RSA or EC on a TLS curve. Returns "" or what is wrong. The file's
// bytes are wiped from memory after parsing.
std::string tls_read_private_key(const std::string& path, EvpPkeyPtr& key);

// Reads both files of `files` and checks that the key is the certificate's. Returns "" or what is wrong
// with the key file. Used by the key process and by the checking child.
std::string tls_load_key_pair(const TlsFiles& files, EvpPkeyPtr& key);

// The TLS checks of a load: both keys of a pair given; with `check_files`, a readable certificate and a
// key that matches it (read in a child process). An expired or not yet valid certificate and a key file
// every user can read are warnings: the configuration is still served, as Apache serves it.
void validate_tls(const Config& cfg, bool check_files, std::vector<ConfigError>& errors,
                  std::vector<ConfigError>& warnings);

}  // namespace itk

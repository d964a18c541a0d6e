// TLS files of a configuration: reading certificates and keys, the list that numbers the keys, and the
// checks every load runs. Keys are read only by the key process or a checking child, never the master.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "tls_ptr.h"

namespace itk {

// Whether any certificate is configured ([server] or a vhost).
bool tls_configured(const Config& cfg);

// The distinct certificate/key pairs of `cfg`: [server]'s first, then the vhosts' in load order, each
// pair once. A pair's index is its key id in the key process; master and key process both derive it
// from the same Config, so they agree. Incomplete pairs (a config error) are left out.
std::vector<const TlsFiles*> tls_key_files(const Config& cfg);

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

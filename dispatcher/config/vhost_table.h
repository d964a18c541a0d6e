// Host header -> vhost lookup: exact names and aliases in a hash map, then wildcards, then the default.
// Built once per config generation; the per-request cost is one normalisation and a few hash probes.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

#include "config/config.h"

namespace itk {

class VHostTable {
 public:
  VHostTable() = default;
  explicit VHostTable(const Config& cfg);

  // `host` is the raw Host header value (may carry a port, a trailing dot, upper case, [v6]).
  // Never returns null when the config has at least one vhost.
  const VHost* lookup(std::string_view host) const;

  // Lower-cased host without port and trailing dot; empty if the value is not a valid host.
  static std::string normalize_host(std::string_view host);

 private:
  const Config* cfg_ = nullptr;
  std::unordered_map<std::string, const VHost*> exact_;
  std::unordered_map<std::string, const VHost*> wildcard_;  // key: suffix after "*." (e.g. "example.org")
};

}  // namespace itk

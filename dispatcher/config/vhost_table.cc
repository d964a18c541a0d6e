// Host -> vhost lookup table, built once per config generation.
#include "config/vhost_table.h"

namespace itk {

VHostTable::VHostTable(const Config& cfg) : cfg_(&cfg) {
  for (const auto& vh : cfg.vhosts) {
    exact_.emplace(vh.server_name, &vh);
    for (const auto& alias : vh.aliases) {
      if (alias.size() > 2 && alias[0] == '*' && alias[1] == '.') wildcard_.emplace(alias.substr(2), &vh);
      else exact_.emplace(alias, &vh);
    }
  }
}

std::string VHostTable::normalize_host(std::string_view host) {
  std::string out;
  if (host.empty()) return out;
  if (host[0] == '[') {  // IPv6 literal, kept with its brackets
    size_t close = host.find(']');
    if (close == std::string_view::npos) return {};
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') return {};
    for (char c : host.substr(0, close + 1)) {
      bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.' ||
                c == '[' || c == ']';
      if (!ok) return {};
      out.push_back(static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c));
    }
    return out;
  }
  size_t colon = host.find(':');
  std::string_view name = host.substr(0, colon);
  if (colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    if (port.size() > 5) return {};
    for (char c : port)
      if (c < '0' || c > '9') return {};
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return {};
  out.reserve(name.size());
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return {};
    out.push_back(c);
  }
  return out;
}

const VHost* VHostTable::lookup(std::string_view host) const {
  if (!cfg_ || cfg_->vhosts.empty()) return nullptr;
  std::string name = normalize_host(host);
  if (!name.empty()) {
    if (auto it = exact_.find(name); it != exact_.end()) return it->second;
    if (!wildcard_.empty()) {
      // Longest suffix first: "a.b.example.org" tries "b.example.org", then "example.org", then "org".
      for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1)) {
        if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return it->second;
      }
    }
  }
  return &cfg_->vhosts[cfg_->default_vhost];
}

}  // namespace itk

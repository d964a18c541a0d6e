// Checks that need the whole configuration: at least one vhost, the default vhost, StartServers, DocumentRoot on disk.
// Checks of one key (identities, ranges, duplicate names, Default) run in config.cc, where the key's line is known.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config.h"
#include "log.h"

namespace itk {

namespace {

constexpr long kMaxStartServers = 64;

unsigned online_cpus() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<unsigned>(std::clamp(n, 1L, kMaxStartServers));
}

// Reported at the [vhost] line (the key's own line is not kept after parsing), so the message names the path
// and the vhost.
void check_document_root(const VHost& v, std::vector<ConfigError>& errors) {
  std::string what = "`" + v.document_root + "`";
  if (!v.server_name.empty()) what += " (vhost " + v.server_name + ")";
  struct stat st {};
  if (stat(v.document_root.c_str(), &st) < 0) {
    int err = errno;
    errors.push_back(
        {v.origin, "DocumentRoot",
         strprintf("%s: %s (create the directory, or correct DocumentRoot)", what.c_str(), strerror(err))});
    return;
  }
  if (!S_ISDIR(st.st_mode))
    errors.push_back({v.origin, "DocumentRoot", strprintf("%s is not a directory", what.c_str())});
}

// A vhost takes each FastCGI setting it does not set from [server]; an inherited app whose extension
// the vhost runs as CGI or through a Handler is left out (the vhost's own choice wins).
void inherit_fastcgi(const FastCgiSettings& server, VHost& v) {
  FastCgiSettings& f = v.fastcgi;
  if (!f.apps_set) {
    for (const FastCgiApp& a : server.apps) {
      bool taken = std::find(v.cgi_extensions.begin(), v.cgi_extensions.end(), a.extension) != v.cgi_extensions.end();
      for (const Handler& h : v.handlers) taken = taken || h.extension == a.extension;
      if (!taken) f.apps.push_back(a);
    }
  }
  if (!f.max_processes_set) f.max_processes = server.max_processes;
  if (!f.idle_timeout_set) f.idle_timeout = server.idle_timeout;
  if (!f.max_requests_set) f.max_requests = server.max_requests;
  if (f.max_processes == 0) f.max_processes = v.max_clients_vhost ? v.max_clients_vhost : kDefaultFastCgiProcesses;
}

}  // namespace

void validate_config(Config& cfg, bool check_filesystem, std::vector<ConfigError>& errors) {
  if (cfg.vhosts.empty()) {
    const std::string& dir = cfg.config_dir.empty() ? std::string("/etc/itk.d") : cfg.config_dir;
    errors.push_back({Origin{dir, 0}, "", strprintf("no vhost configured (add a drop-in to %s)", dir.c_str())});
  }

  // Apache's rule: without an explicit default, the first vhost loaded answers unknown Host names.
  cfg.default_vhost = 0;
  for (size_t i = 0; i < cfg.vhosts.size(); i++) {
    if (cfg.vhosts[i].is_default) {
      cfg.default_vhost = i;
      break;
    }
  }

  if (cfg.server.start_servers == 0) cfg.server.start_servers = online_cpus();
  for (VHost& v : cfg.vhosts) {
    if (v.cgi_timeout == 0) v.cgi_timeout = cfg.server.cgi_timeout;
    inherit_fastcgi(cfg.server.fastcgi, v);
  }

  // An empty DocumentRoot was already reported as missing or invalid at its line.
  if (check_filesystem)
    for (const VHost& v : cfg.vhosts)
      if (!v.document_root.empty()) check_document_root(v, errors);
}

}  // namespace itk

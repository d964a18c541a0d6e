// Checks that need the whole configuration: at least one vhost, the default vhost, StartServers, DocumentRoot on disk
// (as the vhost's user; a warning, since tenants own their directories).
// Checks of one key (identities, ranges, duplicate names, Default) run in config.cc, where the key's line is known.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/config.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {

namespace {

constexpr long kMaxStartServers = 64;

unsigned online_cpus() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<unsigned>(std::clamp(n, 1L, kMaxStartServers));
}

// How long the check of every DocumentRoot may take at a load: a directory on a dead network file
// system must not hold up a reload, nor the master.
constexpr int kRootProbeMs = 10000;
constexpr int kNotProbed = -1;

// Whether the vhost's identity can enter `path`: 0 or an errno. Resolving "." beneath the directory
// needs search permission on it too, as every file the worker opens there will.
int probe_root(const std::string& path) {
  unique_fd fd(open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno;
  unique_fd inner(openat(fd.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  return inner ? 0 : errno;
}

// Per vhost, 0 or the errno its user meets opening its DocumentRoot (kNotProbed: no answer in time).
// As root the check runs in a child that takes each vhost's uid, gid and groups for file access
// (setfsuid), so that it sees what the worker will; the parent waits kRootProbeMs at most. Without
// root the directories are only looked at as the caller (itkd --check by hand).
std::vector<int> probe_document_roots(const std::vector<VHost>& vhosts) {
  std::vector<int> out(vhosts.size(), kNotProbed);
  if (geteuid() != 0) {
    for (size_t i = 0; i < vhosts.size(); i++) out[i] = probe_root(vhosts[i].document_root);
    return out;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return out;
  unique_fd rd(p[0]), wr(p[1]);
  pid_t pid = fork();
  if (pid < 0) return out;
  if (pid == 0) {
    rd.reset();
    for (const VHost& v : vhosts) {
      const Identity& id = v.identity;
      int32_t err = EPERM;
      const std::vector<gid_t>& groups = id.groups.empty() ? std::vector<gid_t>{id.gid} : id.groups;
      if (setgroups(groups.size(), groups.data()) == 0) {
        (void)setfsgid(id.gid);
        (void)setfsuid(id.uid);
        // setfsuid reports the previous value; asking again tells whether the change took.
        bool switched = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))) == id.uid &&
                        static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))) == id.gid;
        err = switched ? probe_root(v.document_root) : EPERM;
        (void)setfsuid(0);
        (void)setfsgid(0);
      }
      if (!write_all_fd(wr.get(), std::string_view(reinterpret_cast<const char*>(&err), sizeof err))) _exit(1);
    }
    _exit(0);
  }
  wr.reset();
  std::string got;
  const int64_t deadline = now_ms() + kRootProbeMs;
  while (got.size() < vhosts.size() * sizeof(int32_t)) {
    pollfd pf{rd.get(), POLLIN, 0};
    int64_t left = deadline - now_ms();
    if (left <= 0 || poll(&pf, 1, static_cast<int>(left)) <= 0) break;
    char buf[4096];
    ssize_t n = read(rd.get(), buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  (void)kill(pid, SIGKILL);
  (void)waitpid(pid, nullptr, 0);
  for (size_t i = 0; i < vhosts.size() && (i + 1) * sizeof(int32_t) <= got.size(); i++) {
    int32_t err;
    memcpy(&err, got.data() + i * sizeof err, sizeof err);
    out[i] = err;
  }
  return out;
}

// A DocumentRoot the vhost's user cannot enter is the tenant's state, not the admin's configuration:
// a warning (as Apache's AH00112), the vhost answers 404/403 until it is back, every other vhost is
// served. Reported at the [vhost] line (the key's own line is not kept after parsing).
void check_document_roots(std::vector<VHost>& vhosts, std::vector<ConfigError>& warnings) {
  std::vector<int> errs = probe_document_roots(vhosts);
  for (size_t i = 0; i < vhosts.size(); i++) {
    VHost& v = vhosts[i];
    const int err = errs[i];
    if (err == 0) continue;
    std::string what = "`" + v.document_root + "` (vhost " + v.server_name + ")";
    if (err == kNotProbed)
      v.document_root_problem = strprintf("could not be checked within %d s", kRootProbeMs / 1000);
    else if (err == ENOENT || err == ENOTDIR)
      v.document_root_problem = std::string(strerror(err)) + "; the vhost answers 404 until it is there (create the "
                                                             "directory, or correct DocumentRoot)";
    else if (err == EACCES || err == EPERM)
      v.document_root_problem =
          strprintf("uid %u cannot enter it: %s; the vhost answers 403 until it can (give the vhost's user search "
                    "permission on the directory and its parents)",
                    static_cast<unsigned>(v.identity.uid), strerror(err));
    else
      v.document_root_problem = strerror(err);
    warnings.push_back({v.origin, "DocumentRoot", what + ": " + v.document_root_problem});
  }
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
  if (f.max_processes == 0) f.max_processes = v.max_clients_vhost_set ? v.max_clients_vhost : kDefaultFastCgiProcesses;
}

// Whether `path` is `dir` or beneath it, by text (both normalised).
bool is_beneath(const std::string& path, const std::string& dir) {
  return !dir.empty() && path.compare(0, dir.size(), dir) == 0 && (path.size() == dir.size() || path[dir.size()] == '/');
}

// A tenant owns its DocumentRoot, so a log file in any DocumentRoot could be read, replaced or linked
// elsewhere by that tenant: refused, whoever's log it is.
void check_log_path(const std::vector<VHost>& vhosts, const std::string& path, const Origin& at, const char* key,
                    const std::string& whose, std::vector<ConfigError>& errors) {
  for (const VHost& o : vhosts) {
    if (!is_beneath(path, o.document_root)) continue;
    errors.push_back({at, key,
                      strprintf("%s`%s` lies in the DocumentRoot of %s, whose user could replace or remove it: put logs "
                                "outside every DocumentRoot (such as /var/log/itk)",
                                whose.c_str(), path.c_str(), o.server_name.c_str())});
    return;
  }
}

// Each vhost's final log paths and format: its own, else [server]'s (with %v as its ServerName).
void resolve_logs(Config& cfg, std::vector<ConfigError>& errors) {
  LogSettings& server = cfg.server.logs;
  if (!server.format_set) (void)parse_log_format(kCombinedLogFormat, server.format);
  for (VHost& v : cfg.vhosts) {
    LogSettings& l = v.logs;
    if (!l.format_set) l.format = server.format;
    struct {
      std::string LogSettings::*path;
      bool LogSettings::*set;
      Origin LogSettings::*at;
      const char* key;
    } const kinds[] = {{&LogSettings::access_log, &LogSettings::access_log_set, &LogSettings::access_log_at, "AccessLog"},
                       {&LogSettings::error_log, &LogSettings::error_log_set, &LogSettings::error_log_at, "ErrorLog"}};
    for (const auto& k : kinds) {
      const bool own = l.*k.set;
      if (!own) l.*k.at = server.*k.at;
      l.*k.path = expand_log_path(own ? l.*k.path : server.*k.path, v.server_name);
      if (!(l.*k.path).empty())
        check_log_path(cfg.vhosts, l.*k.path, l.*k.at, k.key, own ? "" : "for " + v.server_name + ": ",
                       errors);
    }
  }
}

// A vhost's compression settings: each one it does not set comes from [server].
void inherit_compress(const CompressSettings& server, VHost& v) {
  CompressSettings& c = v.compress;
  if (!c.enabled_set) c.enabled = server.enabled;
  if (!c.types_set) c.types = server.types;
  if (!c.min_size_set) c.min_size = server.min_size;
}

}  // namespace

void validate_config(Config& cfg, bool check_filesystem, std::vector<ConfigError>& errors,
                     std::vector<ConfigError>& warnings) {
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
  // A PROXY header says who the client is: only the load balancers named may send one.
  const ServerConfig& sc = cfg.server;
  if (!sc.proxy_protocol.empty() && sc.proxy_protocol_from.empty())
    errors.push_back({sc.proxy_protocol_at, "ProxyProtocol",
                      "needs ProxyProtocolFrom: the addresses of the load balancers that may send the header "
                      "(no other peer is trusted to say who the client is)"});
  if (sc.proxy_protocol.empty() && !sc.proxy_protocol_from.empty())
    errors.push_back({sc.proxy_protocol_from_at, "ProxyProtocolFrom",
                      "has no effect without ProxyProtocol (the listeners that expect the header)"});
  // Every vhost has a share below MaxClients, so that one tenant (whose scripts can stop or hold its own
  // workers) can exhaust its own share, never the whole server.
  const unsigned share =
      cfg.server.max_clients_vhost ? cfg.server.max_clients_vhost : std::max(1u, cfg.server.max_clients / 2);
  for (VHost& v : cfg.vhosts) {
    if (v.cgi_timeout == 0) v.cgi_timeout = cfg.server.cgi_timeout;
    inherit_fastcgi(cfg.server.fastcgi, v);
    inherit_compress(cfg.server.compress, v);
    if (!v.max_clients_vhost_set) v.max_clients_vhost = share;
    if (!v.fallback_resource_set) v.fallback_resource = cfg.server.fallback_resource;
    // Where the DocumentRoot's links lead is the tenant's to change, and is checked for each connection;
    // that the DocumentRoot is written below SymlinkRoot is the admin's, and checked here.
    const std::string& s = v.symlink_root;
    const std::string& d = v.document_root;
    if (!s.empty() && !d.empty() && s != d && (d.size() <= s.size() || d.compare(0, s.size(), s) != 0 || d[s.size()] != '/'))
      errors.push_back({v.symlink_root_at, "SymlinkRoot",
                        strprintf("`%s` does not contain the DocumentRoot `%s` (give the site's own directory above it, "
                                  "e.g. the one holding `current`, `releases` and `shared`)", s.c_str(), d.c_str())});
  }
  resolve_logs(cfg, errors);

  // Only when every vhost is complete: an empty DocumentRoot or identity was reported at its line.
  if (check_filesystem && errors.empty()) check_document_roots(cfg.vhosts, warnings);
}

}  // namespace itk

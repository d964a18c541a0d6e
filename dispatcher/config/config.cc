// Loader for /etc/itk.conf and /etc/itk.d/*.conf: reads each file, feeds inih one counted line at a time,
// and checks every value at the line it was read, so each error names its file:line and key.
#include "config/config.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <type_traits>

#include "config/php_settings.h"
#include "config/vhost_routes.h"
#include "sys/dir_ptr.h"
#include "sys/log.h"
#include "sys/unique_fd.h"
#include "tls/tls_config.h"

namespace itk {

std::string Origin::str() const {
  if (line > 0) return file + ":" + std::to_string(line);
  return file;
}

std::string ConfigError::str() const {
  std::string s = origin.str();
  if (!key.empty()) s += ": " + key;
  s += ": " + message;
  return s;
}

namespace {

// An id that never names a real account: setresuid() reads it as "leave unchanged".
constexpr uid_t kNoUid = static_cast<uid_t>(-1);
constexpr gid_t kNoGid = static_cast<gid_t>(-1);
constexpr uint64_t kMaxId = 4294967294u;
// Config files are a few kilobytes; the cap keeps a mistaken path such as /dev/zero from eating memory.
constexpr size_t kMaxFileSize = 16u << 20;

// ---- text helpers (isspace() because inih strips with it) ----

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) i++;
    size_t start = i;
    while (i < s.size() && !is_space(s[i])) i++;
    if (i > start) words.emplace_back(s.substr(start, i - start));
  }
  return words;
}

// inih's find_chars_or_comment(): the first of `chars`, or an inline ';' comment that follows whitespace.
size_t find_chars_or_comment(std::string_view s, std::string_view chars) {
  bool was_space = false;
  for (size_t i = 0; i < s.size(); i++) {
    if (chars.find(s[i]) != std::string_view::npos) return i;
    if (was_space && s[i] == ';') return i;
    was_space = is_space(s[i]);
  }
  return s.size();
}

// ---- numbers: decimal digits only, overflow is an error ----

bool parse_digits(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    unsigned d = static_cast<unsigned>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string range_text(int64_t min, uint64_t max) {
  return strprintf("%lld..%llu", static_cast<long long>(min), static_cast<unsigned long long>(max));
}

// Returns an error message, or "" when `v` is a decimal integer in [min, max].
std::string parse_uint(std::string_view v, uint64_t min, uint64_t max, uint64_t& out) {
  std::string allowed = range_text(static_cast<int64_t>(min), max);
  uint64_t n = 0;
  if (!parse_digits(v, n)) {
    // A too-long run of digits or a negative number is a range problem, not a spelling one.
    if (all_digits(v) || (v.size() > 1 && v[0] == '-' && all_digits(v.substr(1))))
      return strprintf("`%.*s` is out of range (allowed: %s)", static_cast<int>(v.size()), v.data(), allowed.c_str());
    return strprintf("`%.*s` is not a decimal number (allowed: %s)", static_cast<int>(v.size()), v.data(),
                     allowed.c_str());
  }
  if (n < min || n > max)
    return strprintf("`%.*s` is out of range (allowed: %s)", static_cast<int>(v.size()), v.data(), allowed.c_str());
  out = n;
  return "";
}

std::string parse_int(std::string_view v, int64_t min, int64_t max, int64_t& out) {
  std::string allowed = range_text(min, static_cast<uint64_t>(max));
  bool negative = !v.empty() && v[0] == '-';
  std::string_view digits = negative ? v.substr(1) : v;
  uint64_t n = 0;
  if (!parse_digits(digits, n)) {
    if (all_digits(digits))
      return strprintf("`%.*s` is out of range (allowed: %s)", static_cast<int>(v.size()), v.data(), allowed.c_str());
    return strprintf("`%.*s` is not a decimal number (allowed: %s)", static_cast<int>(v.size()), v.data(),
                     allowed.c_str());
  }
  // The range of every signed key is small, so anything past 2^62 is out of it whatever its sign.
  if (n > (uint64_t{1} << 62))
    return strprintf("`%.*s` is out of range (allowed: %s)", static_cast<int>(v.size()), v.data(), allowed.c_str());
  int64_t s = negative ? -static_cast<int64_t>(n) : static_cast<int64_t>(n);
  if (s < min || s > max)
    return strprintf("`%.*s` is out of range (allowed: %s)", static_cast<int>(v.size()), v.data(), allowed.c_str());
  out = s;
  return "";
}

std::string parse_bool(std::string_view v, bool& out) {
  std::string l = lower(v);
  if (l == "yes" || l == "true" || l == "on" || l == "1") {
    out = true;
    return "";
  }
  if (l == "no" || l == "false" || l == "off" || l == "0") {
    out = false;
    return "";
  }
  return strprintf("`%.*s` is not a boolean (use yes or no)", static_cast<int>(v.size()), v.data());
}

// "#1001" → 1001. The largest uid_t is reserved: setresuid() reads it as "unchanged".
std::string parse_numeric_id(std::string_view token, uint32_t& out) {
  uint64_t n = 0;
  std::string_view digits = token.substr(1);
  if (!parse_digits(digits, n) || n > kMaxId)
    return strprintf("`%.*s` is not a numeric id (write #N with N from 0 to %llu)", static_cast<int>(token.size()),
                     token.data(), static_cast<unsigned long long>(kMaxId));
  out = static_cast<uint32_t>(n);
  return "";
}

// ---- NSS lookups (done here, in the master, so a worker never calls NSS) ----

// getpwnam_r and getgrnam_r report "no such entry" as 0 or, depending on the NSS module, one of these.
bool is_not_found(int rc) { return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM; }

enum class Found { yes, no, error };

Found lookup_user(const std::string& name, uid_t& uid, gid_t& gid, int& err) {
  std::vector<char> buf(16384);
  for (;;) {
    passwd pw{};
    passwd* result = nullptr;
    int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result);
    if (rc == ERANGE && buf.size() < (1u << 22)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (result) {
      uid = pw.pw_uid;
      gid = pw.pw_gid;
      return Found::yes;
    }
    if (is_not_found(rc)) return Found::no;
    err = rc;
    return Found::error;
  }
}

Found lookup_group(const std::string& name, gid_t& gid, int& err) {
  std::vector<char> buf(16384);
  for (;;) {
    group gr{};
    group* result = nullptr;
    int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result);
    if (rc == ERANGE && buf.size() < (1u << 22)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (result) {
      gid = gr.gr_gid;
      return Found::yes;
    }
    if (is_not_found(rc)) return Found::no;
    err = rc;
    return Found::error;
  }
}

// The groups the worker will setgroups(): `gid` plus every group that lists `user` as a member.
std::vector<gid_t> group_list(const std::string& user, gid_t gid) {
  int n = 32;
  std::vector<gid_t> groups;
  for (int attempt = 0; attempt < 8; attempt++) {
    groups.resize(static_cast<size_t>(n));
    int want = n;
    if (getgrouplist(user.c_str(), gid, groups.data(), &want) >= 0) {
      groups.resize(static_cast<size_t>(want));
      break;
    }
    // -1 means the array was too small and `want` now holds the size needed.
    n = std::max(want, n * 2);
  }
  if (groups.empty()) groups.push_back(gid);
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  return groups;
}

// Records that User was given but is unusable (already reported), so the default `itk` is not tried as well.
void mark_acceptor_failed(ServerConfig& server, const std::string& value) {
  server.acceptor = Identity{};
  server.acceptor.uid = kNoUid;
  server.acceptor.gid = kNoGid;
  server.acceptor.user_name = value.empty() ? "(empty)" : value;
}

// Resolves the acceptor's User ("name" or "#uid"). On failure the identity keeps the name with kNoUid,
// which tells later checks that the error has been reported already.
void resolve_acceptor(ServerConfig& server, const Origin& at, bool is_default, const std::string& config_file,
                      std::vector<ConfigError>& errors) {
  Identity& id = server.acceptor;
  id = Identity{};
  id.user_name = server.user;
  id.uid = kNoUid;
  id.gid = kNoGid;
  const std::string& v = server.user;
  if (v.size() > 1 && v[0] == '#') {
    uint32_t n = 0;
    std::string e = parse_numeric_id(v, n);
    if (!e.empty()) {
      errors.push_back({at, "User", e});
      return;
    }
    id.uid = n;
    id.gid = n;
  } else {
    int err = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    Found f = lookup_user(v, uid, gid, err);
    if (f == Found::error) {
      errors.push_back({at, "User", strprintf("cannot look up user `%s`: %s", v.c_str(), strerror(err))});
      return;
    }
    if (f == Found::no) {
      if (is_default)
        errors.push_back({at, "User",
                          strprintf("the acceptor user `%s` does not exist: install itk's sysusers.d file and run "
                                    "systemd-sysusers, or set User in the [server] section of %s",
                                    v.c_str(), config_file.c_str())});
      else
        errors.push_back(
            {at, "User",
             strprintf("user `%s` does not exist (create it, use #uid, or remove User to run as `itk`)", v.c_str())});
      return;
    }
    id.uid = uid;
    id.gid = gid;
  }
  if (id.uid == 0 || id.gid == 0) {
    errors.push_back({at, "User",
                      strprintf("`%s` is root's %s: acceptors read client bytes and must run unprivileged", v.c_str(),
                                id.uid == 0 ? "uid" : "gid")});
    id.uid = kNoUid;
    id.gid = kNoGid;
  }
}

// ---- value checks ----

// A ServerName or ServerAlias entry: DNS letters, digits, '-' and '.', optionally "*." in front of an alias.
std::string check_host_name(std::string_view name, bool allow_wildcard) {
  auto quoted = [&] { return "`" + std::string(name) + "`"; };
  std::string_view rest = name;
  if (allow_wildcard && rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  if (rest.find('*') != std::string_view::npos) {
    if (!allow_wildcard) return quoted() + ": ServerName cannot be a wildcard (put `*.example.org` in ServerAlias)";
    return quoted() + ": a wildcard is only allowed as a leading `*.` (as in `*.example.org`)";
  }
  if (rest.find(':') != std::string_view::npos)
    return quoted() + ": write the host name without a port (itk matches the Host header without its port)";
  if (rest.size() > 253) return quoted() + " is longer than 253 bytes";
  size_t start = 0;
  for (;;) {
    size_t dot = rest.find('.', start);
    std::string_view label = rest.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return quoted() + " has an empty label (a leading, trailing or doubled '.')";
    if (label.size() > 63) return quoted() + " has a label longer than 63 bytes";
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok)
        return quoted() + strprintf(" contains %s: a host name has letters, digits, '-' and '.' only",
                                    (c > 32 && c < 127)
                                        ? strprintf("`%c`", c).c_str()
                                        : strprintf("byte 0x%02x", static_cast<unsigned char>(c)).c_str());
    }
    if (label.front() == '-' || label.back() == '-') return quoted() + " has a label that starts or ends with '-'";
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

// Absolute, no "..", no control bytes; "//" and "/./" collapse and a trailing '/' goes.
std::string normalize_root(std::string_view v, std::string& out) {
  std::string q = "`" + std::string(v) + "`";
  if (v.empty() || v[0] != '/') return q + " is not an absolute path";
  for (char c : v)
    if (static_cast<unsigned char>(c) < 32 || c == 127) return q + " contains a control character";
  std::string path;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && v[i] == '/') i++;
    size_t start = i;
    while (i < v.size() && v[i] != '/') i++;
    std::string_view comp = v.substr(start, i - start);
    if (comp.empty() || comp == ".") continue;
    // Resolving ".." by text would be wrong across symlinks; the admin writes the real path instead.
    if (comp == "..") return q + " contains `..`: write the directory's path without it";
    path += '/';
    path += comp;
  }
  if (path.empty()) return "DocumentRoot = / would publish the whole file system; name the site's own directory";
  out = path;
  return "";
}

// ---- the parser ----

// Where each host name and the Default vhost were first seen, across every file of one load.
struct NameIndex {
  std::map<std::string, Origin> names;
  bool has_default = false;
  Origin default_at;
};

enum class Section { none, server, vhost, ignored };

struct Parser {
  std::string_view text;
  size_t pos = 0;
  int lineno = 0;
  std::string file;
  bool is_dropin = false;
  Config& cfg;
  std::vector<ConfigError>& errors;
  NameIndex& index;

  Section section = Section::none;
  int section_line = 0;
  std::map<std::string, int> seen;         // lower-case key → first line, in the current section
  std::map<std::string, int> server_seen;  // the same across every [server] section of the file
  std::string prev_key;                    // what inih would append a continuation line to
  int prev_key_line = 0;
  std::set<int> refused_lines;  // lines already reported and hidden from inih

  Parser(std::string_view t, const std::string& f, bool dropin, Config& c, std::vector<ConfigError>& e, NameIndex& i)
      : text(t), file(f), is_dropin(dropin), cfg(c), errors(e), index(i) {}

  Origin here() const { return Origin{file, lineno}; }
  void error(const std::string& key, const std::string& message) { errors.push_back({here(), key, message}); }
  void error_at(int line, const std::string& key, const std::string& message) {
    errors.push_back({Origin{file, line}, key, message});
  }
};

constexpr const char* kSyntaxError = "syntax error: expected `Key = value` or `[section]`";

void report_missing_vhost_keys(Parser& p);

void finish_section(Parser& p) {
  if (p.section == Section::vhost) report_missing_vhost_keys(p);
  p.section = Section::none;
  p.seen.clear();
}

void start_section(Parser& p, std::string_view raw_name) {
  finish_section(p);
  p.section_line = p.lineno;
  std::string name = lower(trim(raw_name));
  std::string shown = "[" + std::string(raw_name) + "]";
  if (name == "server") {
    if (p.is_dropin) {
      p.error("", strprintf("%s belongs in %s, not in a drop-in", shown.c_str(),
                            p.cfg.config_file.empty() ? "/etc/itk.conf" : p.cfg.config_file.c_str()));
      p.section = Section::ignored;
      return;
    }
    p.section = Section::server;
    return;
  }
  if (name == "vhost") {
    if (!p.is_dropin) {
      p.error("", strprintf("%s sections belong in drop-ins (%s/*.conf), not in the main file", shown.c_str(),
                            p.cfg.config_dir.empty() ? "/etc/itk.d" : p.cfg.config_dir.c_str()));
      p.section = Section::ignored;
      return;
    }
    VHost v;
    v.origin = p.here();
    p.cfg.vhosts.push_back(std::move(v));
    p.section = Section::vhost;
    return;
  }
  p.error("", strprintf("unknown section %s (%s)", shown.c_str(),
                        p.is_dropin ? "a drop-in holds [vhost] sections" : "the main file holds only [server]"));
  p.section = Section::ignored;
}

int on_key(void* user, const char* section, const char* name_c, const char* value_c);

// Panels write every alias of a site on one line; the bound only keeps a mistaken file from being one line.
constexpr size_t kMaxLineLength = 64 * 1024;

// Hands inih exactly one line per call so its count matches ours. A line itk refuses is reported here and
// replaced by an empty one, which keeps inih going (every error is collected) without it seeing the line.
// A line longer than inih's fixed buffer (Debian builds it with INI_MAX_LINE 200 and no realloc) is
// dispatched here, split as inih splits it, and inih gets an empty line in its place.
char* read_line(char* buf, int num, void* stream) {
  Parser& p = *static_cast<Parser*>(stream);
  if (p.pos >= p.text.size()) return nullptr;
  if (num < 3) {  // inih passes INI_MAX_LINE (200); a buffer this small could not even hold "\n"
    p.error("", strprintf("inih offers a %d-byte line buffer; itk needs at least 3", num));
    return nullptr;
  }
  size_t nl = p.text.find('\n', p.pos);
  size_t end = nl == std::string_view::npos ? p.text.size() : nl;
  std::string_view line = p.text.substr(p.pos, end - p.pos);
  p.pos = nl == std::string_view::npos ? p.text.size() : nl + 1;
  p.lineno++;

  auto empty_line = [&] {
    buf[0] = '\n';
    buf[1] = '\0';
    return buf;
  };
  auto refuse = [&](const std::string& message) {
    p.error("", message);
    p.refused_lines.insert(p.lineno);
    return empty_line();
  };

  if (line.size() > kMaxLineLength)
    return refuse(strprintf("line is %zu bytes long; itk reads at most %zu bytes per line (split a long ServerAlias "
                            "over several ServerAlias lines)",
                            line.size(), kMaxLineLength));
  // inih's buffer holds num-1 bytes and a NUL; the line's newline must fit too, or inih cuts the line and
  // parses the rest as a new one.
  const bool fits = line.size() <= static_cast<size_t>(num) - 2;

  // Classify the line as inih will, in inih's order, to catch what it would accept silently or report late.
  std::string_view body = line;
  if (p.lineno == 1 && body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  std::string_view s = trim(body);
  bool indented = !s.empty() && s.data() != line.data();
  if (s.empty() || s[0] == ';' || s[0] == '#') {
    // blank or comment
  } else if (!p.prev_key.empty() && indented) {
    return refuse(
        strprintf("continuation line: inih would append it to the value of `%s` on line %d; itk does not "
                  "accept multi-line values (remove the leading whitespace; ServerAlias and DirectoryIndex "
                  "may be repeated instead)",
                  p.prev_key.c_str(), p.prev_key_line));
  } else if (s[0] == '[') {
    size_t close = find_chars_or_comment(s.substr(1), "]");
    if (close >= s.size() - 1 || s[1 + close] != ']') return refuse(kSyntaxError);
    p.prev_key.clear();
    start_section(p, s.substr(1, close));
  } else {
    size_t sep = find_chars_or_comment(s, "=:");
    if (sep >= s.size() || (s[sep] != '=' && s[sep] != ':')) return refuse(kSyntaxError);
    p.prev_key = std::string(trim(s.substr(0, sep)));
    p.prev_key_line = p.lineno;
    if (!fits) {
      std::string_view value = s.substr(sep + 1);
      value = trim(value.substr(0, find_chars_or_comment(value, "")));
      (void)on_key(&p, "", p.prev_key.c_str(), std::string(value).c_str());
    }
  }
  if (!fits) return empty_line();  // sections were started above; comments need nothing
  memcpy(buf, line.data(), line.size());
  buf[line.size()] = '\n';
  buf[line.size() + 1] = '\0';
  return buf;
}

// ---- [server] keys ----

struct UintKey {
  const char* name;
  uint64_t min;
  uint64_t max;
  unsigned ServerConfig::*field;
};

const UintKey kServerUintKeys[] = {
    {"StartServers", 1, 64, &ServerConfig::start_servers},
    {"MaxClients", 1, 16384, &ServerConfig::max_clients},
    {"Timeout", 1, 3600, &ServerConfig::timeout},
    {"KeepAliveTimeout", 0, 3600, &ServerConfig::keep_alive_timeout},
    {"MaxKeepAliveRequests", 0, 1000000, &ServerConfig::max_keep_alive_requests},
    {"RequestReadTimeout", 1, 3600, &ServerConfig::request_read_timeout},
    {"QueueTimeout", 0, 3600, &ServerConfig::queue_timeout},
    {"LimitRequestLine", 256, 65536, &ServerConfig::limit_request_line},
    {"LimitRequestFieldSize", 256, 65536, &ServerConfig::limit_request_field_size},
    {"LimitRequestFields", 1, 1000, &ServerConfig::limit_request_fields},
    {"LimitHeadBuffers", 1u << 20, 4294967295u, &ServerConfig::limit_head_buffers},
    {"GracefulShutdownTimeout", 0, 3600, &ServerConfig::graceful_shutdown_timeout},
    {"CGITimeout", 1, 86400, &ServerConfig::cgi_timeout},
    {"MaxConnectionTime", 0, 604800, &ServerConfig::max_connection_time},
};

const char* const kServerOtherKeys[] = {"LimitRequestBody", "LimitUIDRange", "LimitGIDRange", "User",
                                        "ProxyProtocol", "ProxyProtocolFrom"};

std::string parse_id_range(std::string_view v, IdRange& out) {
  std::vector<std::string> w = split_words(v);
  if (w.size() != 2) return strprintf("expected `min max`, got `%.*s`", static_cast<int>(v.size()), v.data());
  uint64_t lo = 0, hi = 0;
  std::string e = parse_uint(w[0], 0, kMaxId, lo);
  if (e.empty()) e = parse_uint(w[1], 0, kMaxId, hi);
  if (!e.empty()) return e;
  if (lo == 0) return "the range includes 0 (root), which itk never serves as; start it at 1 or above";
  if (lo > hi)
    return strprintf("the minimum %llu is above the maximum %llu", static_cast<unsigned long long>(lo),
                     static_cast<unsigned long long>(hi));
  out.min = static_cast<uint32_t>(lo);
  out.max = static_cast<uint32_t>(hi);
  return "";
}

// TLSCertificateFile and TLSCertificateKeyFile: in [server] the default certificate, in [vhost] its own.
// The files are checked once every file is parsed (validate_tls), where both halves of the pair are known.
bool tls_key(Parser& p, const std::string& lkey, const char* key, std::string_view value, TlsFiles& f) {
  bool cert = lkey == "tlscertificatefile";
  if (!cert && lkey != "tlscertificatekeyfile") return false;
  std::string path(trim(value));
  // The line is recorded even for a bad value, so the pair check does not report the key a second time.
  (cert ? f.certificate_at : f.key_at) = p.here();
  if (path.empty() || path[0] != '/') {
    p.error(key, strprintf("`%s` is not an absolute path", path.c_str()));
    return true;
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 32 || c == 127) {
      p.error(key, strprintf("`%s` contains a control character", path.c_str()));
      return true;
    }
  }
  (cert ? f.certificate_file : f.key_file) = path;
  return true;
}

// AccessLog, ErrorLog and LogFormat, the same in [server] (defaults) and [vhost]. A path may hold %v (the
// vhost's ServerName) and %%, nothing else of LogFormat's; `off` turns a log off where [server] set one.
bool log_key(Parser& p, const std::string& lkey, const char* key, std::string_view value, LogSettings& l) {
  if (lkey == "logformat") {
    std::string e = parse_log_format(trim(value), l.format);
    if (!e.empty()) p.error(key, e);
    l.format_set = e.empty();
    return true;
  }
  const bool access = lkey == "accesslog";
  if (!access && lkey != "errorlog") return false;
  std::string& path = access ? l.access_log : l.error_log;
  (access ? l.access_log_at : l.error_log_at) = p.here();
  (access ? l.access_log_set : l.error_log_set) = true;
  std::string v(trim(value));
  if (lower(v) == "off") {
    path.clear();
    return true;
  }
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] != '%') continue;
    if (i + 1 < v.size() && (v[i + 1] == 'v' || v[i + 1] == '%')) {
      i++;
      continue;
    }
    p.error(key, strprintf("`%s`: only %%v (the vhost's ServerName) and %%%% may appear in a log path", v.c_str()));
    return true;
  }
  std::string normal;
  std::string e = normalize_root(v, normal);
  if (!e.empty()) {
    p.error(key, e);
    return true;
  }
  path = normal;
  return true;
}

std::string check_program(const std::string& path);
std::string check_extension(std::string_view ext);
std::string claimed_as_cgi(const VHost& v, const std::string& ext);

// The FastCGI keys, the same in [server] (defaults) and [vhost]. `claimed` says whether the section
// already runs an extension another way (CGI, Handler); it is empty for [server].
bool fastcgi_key(Parser& p, const std::string& lkey, const char* key, std::string_view value, FastCgiSettings& f,
                 const std::function<std::string(const std::string&)>& claimed) {
  if (lkey == "fastcgi") {
    std::vector<std::string> w = split_words(value);
    if (w.size() != 2) {
      p.error(key, "expected `.ext /path/to/fastcgi-app` (one extension per FastCGI line)");
      return true;
    }
    std::string ext = lower(w[0]);
    std::string e = check_extension(w[0]);
    if (e.empty() && claimed) e = claimed(ext);
    for (const auto& a : f.apps)
      if (e.empty() && a.extension == ext) e = strprintf("%s already has a FastCGI app (%s)", ext.c_str(), a.program.c_str());
    if (e.empty()) e = check_program(w[1]);
    if (!e.empty()) {
      p.error(key, e);
      return true;
    }
    f.apps.push_back({ext, w[1]});
    f.apps_set = true;
    return true;
  }
  struct {
    const char* name;
    uint64_t min, max;
    unsigned FastCgiSettings::*field;
    bool FastCgiSettings::*set;
  } const numbers[] = {
      {"fastcgimaxprocesses", 1, 4096, &FastCgiSettings::max_processes, &FastCgiSettings::max_processes_set},
      {"fastcgiidletimeout", 0, 86400, &FastCgiSettings::idle_timeout, &FastCgiSettings::idle_timeout_set},
      {"fastcgimaxrequests", 0, 100000000, &FastCgiSettings::max_requests, &FastCgiSettings::max_requests_set},
  };
  for (const auto& n : numbers) {
    if (lkey != n.name) continue;
    uint64_t v = 0;
    std::string e = parse_uint(value, n.min, n.max, v);
    if (!e.empty()) {
      p.error(key, e);
      return true;
    }
    f.*n.field = static_cast<unsigned>(v);
    f.*n.set = true;
    return true;
  }
  return false;
}

// "text/html", "text/*": a media type without parameters, as CompressTypes names them.
std::string check_media_type(std::string_view t) {
  size_t slash = t.find('/');
  auto token = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$&-^_.+").find(c) != std::string_view::npos;
    });
  };
  if (slash == std::string_view::npos || !token(t.substr(0, slash)) ||
      (t.substr(slash + 1) != "*" && !token(t.substr(slash + 1))))
    return strprintf("`%.*s` is not a media type (write `type/subtype` or `type/*`, without parameters)",
                     static_cast<int>(t.size()), t.data());
  return {};
}

// The Compress keys, the same in [server] (defaults) and [vhost].
bool compress_key(Parser& p, const std::string& lkey, const char* key, std::string_view value, CompressSettings& c) {
  std::string e;
  if (lkey == "compress") {
    e = parse_bool(value, c.enabled);
    c.enabled_set = true;
  } else if (lkey == "compresstypes") {
    // The first line replaces the built-in list; later lines add to it.
    if (!c.types_set) c.types.clear();
    c.types_set = true;
    for (const std::string& w : split_words(value)) {
      std::string t = check_media_type(w);
      if (t.empty()) c.types.push_back(lower(w));
      else p.error(key, t);
    }
  } else if (lkey == "compressminsize") {
    e = parse_uint(value, 0, 1u << 20, c.min_size);
    c.min_size_set = true;
  } else {
    return false;
  }
  if (!e.empty()) p.error(key, e);
  return true;
}

void server_key(Parser& p, const std::string& lkey, const char* key, std::string_view value) {
  ServerConfig& s = p.cfg.server;
  if (tls_key(p, lkey, key, value, s.tls)) return;
  if (log_key(p, lkey, key, value, s.logs)) return;
  if (fastcgi_key(p, lkey, key, value, s.fastcgi, nullptr)) return;
  if (compress_key(p, lkey, key, value, s.compress)) return;
  if (lkey == "fallbackresource") {
    std::string e = parse_fallback_resource(value, s.fallback_resource);
    if (!e.empty()) p.error(key, e);
    return;
  }
  for (const auto& k : kServerUintKeys) {
    if (lower(k.name) != lkey) continue;
    uint64_t n = 0;
    std::string e = parse_uint(value, k.min, k.max, n);
    if (!e.empty()) return p.error(key, e);
    s.*k.field = static_cast<unsigned>(n);
    return;
  }
  if (lkey == "maxclientsvhost") {
    uint64_t n = 0;
    std::string e = parse_uint(value, 1, 16384, n);
    if (!e.empty()) return p.error(key, e);
    s.max_clients_vhost = static_cast<unsigned>(n);
  } else if (lkey == "limitrequestbody") {
    uint64_t n = 0;
    std::string e = parse_uint(value, 0, uint64_t{1} << 63, n);
    if (!e.empty()) return p.error(key, e);
    s.limit_request_body = n;
  } else if (lkey == "proxyprotocol") {
    // Listener names as systemd passes them (FileDescriptorName=, LISTEN_FDNAMES): letters, digits, . _ -
    for (const std::string& w : split_words(value)) {
      bool ok = std::all_of(w.begin(), w.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; });
      if (!ok) return p.error(key, strprintf("`%s` is not a listener name (such as `http` or `https`)", w.c_str()));
      s.proxy_protocol.push_back(w);
    }
    s.proxy_protocol_at = p.here();
  } else if (lkey == "proxyprotocolfrom") {
    for (const std::string& w : split_words(value)) {
      AddressRange r;
      std::string e = parse_address_range(w, r);
      if (!e.empty()) return p.error(key, strprintf("`%s` %s", w.c_str(), e.c_str()));
      s.proxy_protocol_from.push_back(r);
    }
    s.proxy_protocol_from_at = p.here();
  } else if (lkey == "limituidrange" || lkey == "limitgidrange") {
    IdRange r;
    std::string e = parse_id_range(value, r);
    if (!e.empty()) return p.error(key, e);
    (lkey == "limituidrange" ? s.limit_uid_range : s.limit_gid_range) = r;
  } else if (lkey == "user") {
    std::vector<std::string> w = split_words(value);
    if (w.size() != 1) {
      mark_acceptor_failed(s, std::string(value));
      return p.error(
          key, strprintf("expected one user name or #uid, got `%.*s`", static_cast<int>(value.size()), value.data()));
    }
    s.user = w[0];
    resolve_acceptor(s, p.here(), false, p.cfg.config_file, p.errors);
  }
}

// ---- [vhost] keys ----

void add_name(Parser& p, VHost& v, const char* key, const std::string& name, bool is_alias) {
  auto it = p.index.names.find(name);
  if (it != p.index.names.end()) {
    p.error(key, strprintf("`%s` is already a name of a vhost (also at %s)", name.c_str(), it->second.str().c_str()));
    return;
  }
  p.index.names.emplace(name, p.here());
  if (is_alias)
    v.aliases.push_back(name);
  else
    v.server_name = name;
}

void assign_user_id(Parser& p, VHost& v, const char* key, std::string_view value) {
  std::vector<std::string> w = split_words(value);
  if (w.size() != 2)
    return p.error(key, strprintf("expected `user group` (names, or #uid #gid), got `%.*s`",
                                  static_cast<int>(value.size()), value.data()));
  const std::string& user = w[0];
  const std::string& grp = w[1];
  bool ok = true;
  auto fail = [&](const std::string& message) {
    p.error(key, message);
    ok = false;
  };
  uid_t uid = 0;
  gid_t gid = 0;
  bool user_by_name = user[0] != '#';
  if (!user_by_name) {
    uint32_t n = 0;
    std::string e = parse_numeric_id(user, n);
    if (!e.empty()) fail(e);
    uid = n;
  } else {
    int err = 0;
    gid_t primary = 0;
    Found f = lookup_user(user, uid, primary, err);
    if (f == Found::no) fail(strprintf("user `%s` does not exist (create it, or give a numeric #uid)", user.c_str()));
    if (f == Found::error) fail(strprintf("cannot look up user `%s`: %s", user.c_str(), strerror(err)));
  }
  if (grp[0] == '#') {
    uint32_t n = 0;
    std::string e = parse_numeric_id(grp, n);
    if (!e.empty()) fail(e);
    gid = n;
  } else {
    int err = 0;
    Found f = lookup_group(grp, gid, err);
    if (f == Found::no) fail(strprintf("group `%s` does not exist (create it, or give a numeric #gid)", grp.c_str()));
    if (f == Found::error) fail(strprintf("cannot look up group `%s`: %s", grp.c_str(), strerror(err)));
  }
  if (!ok) return;

  const ServerConfig& s = p.cfg.server;
  const std::string where = p.cfg.config_file.empty() ? "/etc/itk.conf" : p.cfg.config_file;
  if (uid == 0)
    p.error(key,
            strprintf("`%s` is uid 0 (root): itk never serves as root; give the site a user of its own", user.c_str()));
  else if (!s.limit_uid_range.contains(uid))
    p.error(key, strprintf("uid %u of `%s` is outside LimitUIDRange %u %u (widen the range in %s, or give the site a "
                           "uid inside it)",
                           static_cast<unsigned>(uid), user.c_str(), s.limit_uid_range.min, s.limit_uid_range.max,
                           where.c_str()));
  if (gid == 0)
    p.error(key,
            strprintf("`%s` is gid 0 (root): itk never serves as root; give the site a group of its own", grp.c_str()));
  else if (!s.limit_gid_range.contains(gid))
    p.error(key, strprintf("gid %u of `%s` is outside LimitGIDRange %u %u (widen the range in %s, or give the site a "
                           "gid inside it)",
                           static_cast<unsigned>(gid), grp.c_str(), s.limit_gid_range.min, s.limit_gid_range.max,
                           where.c_str()));
  std::vector<gid_t> groups = user_by_name ? group_list(user, gid) : std::vector<gid_t>{gid};
  if (gid != 0 && std::find(groups.begin(), groups.end(), gid_t{0}) != groups.end())
    p.error(key, strprintf("user `%s` is a member of group 0 (root) and the worker would keep it: itk never serves "
                           "as root; remove the user from that group",
                           user.c_str()));
  if (!s.acceptor.user_name.empty() && s.acceptor.uid != kNoUid && uid != 0 && uid == s.acceptor.uid)
    p.error(key, strprintf("uid %u is the acceptor's (User = %s): a site must not own the processes that read every "
                           "site's requests; give it a user of its own",
                           static_cast<unsigned>(uid), s.acceptor.user_name.c_str()));

  v.identity.uid = uid;
  v.identity.gid = gid;
  v.identity.groups = std::move(groups);
  v.identity.user_name = user;
}

// "512M", "2G", "1048576": bytes with an optional K/M/G/T suffix (powers of 1024), as systemd's MemoryMax=.
std::string parse_size(std::string_view v, uint64_t& out) {
  std::string_view digits = v;
  uint64_t mult = 1;
  if (!v.empty()) {
    switch (v.back()) {
      case 'K': case 'k': mult = 1ull << 10; break;
      case 'M': case 'm': mult = 1ull << 20; break;
      case 'G': case 'g': mult = 1ull << 30; break;
      case 'T': case 't': mult = 1ull << 40; break;
      default: break;
    }
    if (mult != 1) digits.remove_suffix(1);
  }
  uint64_t n = 0;
  std::string e = parse_uint(digits, 1, (uint64_t{1} << 50), n);
  if (!e.empty()) return strprintf("`%.*s` is not a size (bytes, or a number with K, M, G or T)",
                                   static_cast<int>(v.size()), v.data());
  out = n * mult;
  if (out < (1u << 20)) return "below 1M: too small for a vhost's processes";
  return {};
}

// ".cgi": a dot, then at least one character that is neither '/' nor another dot.
std::string check_extension(std::string_view ext) {
  if (ext.size() < 2 || ext[0] != '.' || ext.find_first_of("/.", 1) != std::string_view::npos)
    return strprintf("`%.*s` is not a file extension (write it with its dot, e.g. .cgi)", static_cast<int>(ext.size()),
                     ext.data());
  return {};
}

std::string claimed_as_cgi(const VHost& v, const std::string& ext) {
  for (const auto& e : v.cgi_extensions)
    if (e == ext) return strprintf("%s is already listed in CGI", ext.c_str());
  for (const auto& h : v.handlers)
    if (h.extension == ext) return strprintf("%s already has a Handler (%s)", ext.c_str(), h.program.c_str());
  return {};
}

// One extension runs one way: directly, through one handler, or through one FastCGI app.
std::string claim_extension(const VHost& v, const std::string& ext) {
  std::string e = claimed_as_cgi(v, ext);
  if (!e.empty()) return e;
  for (const auto& a : v.fastcgi.apps)
    if (a.extension == ext) return strprintf("%s already has a FastCGI app (%s)", ext.c_str(), a.program.c_str());
  return {};
}

std::string check_program(const std::string& path) {
  if (path.empty() || path[0] != '/') return strprintf("`%s` must be an absolute path", path.c_str());
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return strprintf("%s: %s (install it or fix the path)", path.c_str(), strerror(errno));
  if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) return strprintf("%s is not an executable file", path.c_str());
  return {};
}

// One function per [vhost] directive: checks the value at its line and stores it in the vhost.
using VHostParse = void (*)(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value);

// A whole-number key stored in `Field` (and `Set` marked, when the vhost must know it was given).
template <auto Field, uint64_t Min, uint64_t Max, bool VHost::*Set = nullptr>
void vhost_number(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  uint64_t n = 0;
  std::string e = parse_uint(value, Min, Max, n);
  if (!e.empty()) return p.error(key, e);
  v.*Field = static_cast<std::remove_reference_t<decltype(v.*Field)>>(n);
  if constexpr (Set != nullptr) v.*Set = true;
}

void vhost_server_name(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::vector<std::string> w = split_words(value);
  if (w.size() != 1) return p.error(key, "give one name here and put the other names in ServerAlias");
  std::string e = check_host_name(w[0], false);
  if (!e.empty()) return p.error(key, e);
  add_name(p, v, key, lower(w[0]), false);
}

void vhost_server_alias(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  for (const std::string& w : split_words(value)) {
    std::string e = check_host_name(w, true);
    if (!e.empty()) {
      p.error(key, e);
      continue;
    }
    add_name(p, v, key, lower(w), true);
  }
}

void vhost_document_root(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::string root;
  std::string e = normalize_root(value, root);
  if (!e.empty()) return p.error(key, e);
  v.document_root = root;
}

void vhost_symlink_root(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  if (trim(value).find_first_not_of('/') == std::string_view::npos)
    return p.error(key, "SymlinkRoot = / would let the site's links reach the whole file system; name the site's "
                        "own directory");
  std::string root;
  std::string e = normalize_root(value, root);
  if (!e.empty()) return p.error(key, e);
  v.symlink_root = root;
  v.symlink_root_at = p.here();
}

void vhost_assign_user_id(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  assign_user_id(p, v, key, value);
}

void vhost_nice_value(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  int64_t n = 0;
  std::string e = parse_int(value, -20, 19, n);
  if (!e.empty()) return p.error(key, e);
  v.identity.nice = static_cast<int>(n);
}

void vhost_directory_index(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value) {
  // The first DirectoryIndex line replaces the default; later ones add to it.
  if (p.seen.at(lkey) == p.lineno) v.directory_index.clear();
  for (const std::string& w : split_words(value)) {
    if (w.find('/') != std::string::npos || w == "." || w == "..")
      p.error(key, strprintf("`%s` is not a file name (no '/', not . or ..)", w.c_str()));
    else
      v.directory_index.push_back(w);
  }
}

void vhost_default(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  bool b = false;
  std::string e = parse_bool(value, b);
  if (!e.empty()) return p.error(key, e);
  if (b && p.index.has_default) {
    p.error(key, strprintf("only one vhost can be the default (also at %s)", p.index.default_at.str().c_str()));
    return;
  }
  if (b) {
    p.index.has_default = true;
    p.index.default_at = p.here();
  }
  v.is_default = b;
}

void vhost_cgi(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  for (const std::string& w : split_words(value)) {
    std::string e = check_extension(w);
    if (e.empty()) e = claim_extension(v, lower(w));
    if (!e.empty()) p.error(key, e);
    else v.cgi_extensions.push_back(lower(w));
  }
}

void vhost_handler(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::vector<std::string> w = split_words(value);
  if (w.size() != 2) return p.error(key, "expected `.ext /path/to/program` (one extension per Handler line)");
  std::string e = check_extension(w[0]);
  if (e.empty()) e = claim_extension(v, lower(w[0]));
  if (e.empty()) e = check_program(w[1]);
  if (!e.empty()) return p.error(key, e);
  v.handlers.push_back({lower(w[0]), w[1]});
}

void vhost_memory_max(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  uint64_t n = 0;
  std::string e = parse_size(value, n);
  if (!e.empty()) return p.error(key, e);
  v.memory_max_vhost = n;
}

void vhost_fastcgi(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value) {
  // An extension the vhost runs as CGI or through a Handler cannot have an app as well.
  std::function<std::string(const std::string&)> claimed;
  if (lkey == "fastcgi") claimed = [&v](const std::string& ext) { return claimed_as_cgi(v, ext); };
  (void)fastcgi_key(p, lkey, key, value, v.fastcgi, claimed);
}

void vhost_deny(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  for (const std::string& w : split_words(value)) {
    std::string prefix;
    // "/" alone refuses the whole site; otherwise a prefix is written as a DocumentRoot is.
    std::string e = w.find_first_not_of('/') == std::string::npos ? "" : normalize_root(w, prefix);
    if (!e.empty()) {
      p.error(key, e);
      continue;
    }
    v.deny_prefixes.push_back(prefix.empty() ? "/" : prefix);
  }
}

void vhost_deny_dot_files(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::string e = parse_bool(value, v.deny_dot_files);
  if (!e.empty()) p.error(key, e);
}

void vhost_tls(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value) {
  (void)tls_key(p, lkey, key, value, v.tls);
}

void vhost_log(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value) {
  (void)log_key(p, lkey, key, value, v.logs);
}

void vhost_fallback_resource(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::string e = parse_fallback_resource(value, v.fallback_resource);
  if (!e.empty()) return p.error(key, e);
  v.fallback_resource_set = true;
}

void vhost_redirect(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  RedirectRule r;
  std::string e = parse_redirect(value, r);
  if (!e.empty()) return p.error(key, e);
  v.redirects.push_back(std::move(r));
}

void vhost_redirect_https(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::string e = parse_bool(value, v.redirect_https);
  if (!e.empty()) p.error(key, e);
}

void vhost_error_document(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  ErrorDocument d;
  std::string e = parse_error_document(value, d);
  for (const ErrorDocument& o : v.error_documents)
    if (e.empty() && o.status == d.status) e = strprintf("%d already has a document (%s)", d.status, o.target.c_str());
  if (!e.empty()) return p.error(key, e);
  v.error_documents.push_back(std::move(d));
}

void vhost_header(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  HeaderLine h;
  std::string e = parse_header_line(value, h);
  for (const HeaderLine& o : v.headers)
    if (e.empty() && lower(o.name) == lower(h.name)) e = strprintf("%s is already set by an earlier Header line", h.name.c_str());
  if (!e.empty()) return p.error(key, e);
  v.headers.push_back(std::move(h));
}

void vhost_no_exec(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::string e = parse_no_exec(value, v.no_exec);
  if (!e.empty()) p.error(key, e);
}

void vhost_compress(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value) {
  (void)compress_key(p, lkey, key, value, v.compress);
}

// PHPAdminValue, PHPValue (`name value`), PHPAdminFlag, PHPFlag (`name on|off`): one directive per line.
void vhost_php_setting(Parser& p, VHost& v, const std::string& lkey, const char* key, std::string_view value) {
  value = trim(value);
  size_t space = value.find_first_of(" \t");
  PhpSetting s;
  s.name = std::string(value.substr(0, space));
  std::string_view rest = space == std::string_view::npos ? std::string_view() : trim(value.substr(space));
  s.admin = lkey.find("admin") != std::string::npos;
  s.flag = lkey.ends_with("flag");
  s.at = p.here();
  std::string e = check_php_name(s.name);
  if (e.empty() && s.flag) {
    bool on = false;
    e = rest.empty() ? "expected `name on` or `name off`" : parse_bool(rest, on);
    s.value = on ? "On" : "Off";
  } else if (e.empty()) {
    e = check_php_value(rest);
    s.value = std::string(rest);
  }
  for (const PhpSetting& o : v.php_settings)
    if (e.empty() && o.name == s.name) e = strprintf("%s is already set at line %d", s.name.c_str(), o.at.line);
  if (!e.empty()) return p.error(key, e);
  v.php_settings.push_back(std::move(s));
}

void vhost_php_user_ini(Parser& p, VHost& v, const std::string&, const char* key, std::string_view value) {
  std::string e = parse_bool(value, v.php_user_ini);
  if (!e.empty()) p.error(key, e);
}

enum class Repeat { once, adds };  // adds: the key may be given again, each line adding to its list

// The [vhost] directives. `server` marks the keys [server] takes too, as the default of every vhost;
// `required` ones are reported at the [vhost] line when missing, in this order.
struct VHostDirective {
  const char* name;  // the documented spelling; matched in any case
  bool required;
  Repeat repeat;
  bool server;
  VHostParse parse;
};

const VHostDirective kVHostDirectives[] = {
    {"ServerName", true, Repeat::once, false, vhost_server_name},
    {"ServerAlias", false, Repeat::adds, false, vhost_server_alias},
    {"DocumentRoot", true, Repeat::once, false, vhost_document_root},
    {"SymlinkRoot", false, Repeat::once, false, vhost_symlink_root},
    {"AssignUserID", true, Repeat::once, false, vhost_assign_user_id},
    {"NiceValue", false, Repeat::once, false, vhost_nice_value},
    {"MaxClientsVHost", false, Repeat::once, true,
     vhost_number<&VHost::max_clients_vhost, 1, 16384, &VHost::max_clients_vhost_set>},
    {"DirectoryIndex", false, Repeat::adds, false, vhost_directory_index},
    {"Default", false, Repeat::once, false, vhost_default},
    {"CGI", false, Repeat::adds, false, vhost_cgi},
    {"Handler", false, Repeat::adds, false, vhost_handler},
    {"CGITimeout", false, Repeat::once, true, vhost_number<&VHost::cgi_timeout, 1, 86400>},
    {"FastCGI", false, Repeat::adds, true, vhost_fastcgi},
    {"FastCGIMaxProcesses", false, Repeat::once, true, vhost_fastcgi},
    {"FastCGIIdleTimeout", false, Repeat::once, true, vhost_fastcgi},
    {"FastCGIMaxRequests", false, Repeat::once, true, vhost_fastcgi},
    {"MaxProcessesVHost", false, Repeat::once, false, vhost_number<&VHost::max_processes_vhost, 1, 4194304>},
    {"MemoryMaxVHost", false, Repeat::once, false, vhost_memory_max},
    {"CPUWeightVHost", false, Repeat::once, false, vhost_number<&VHost::cpu_weight_vhost, 1, 10000>},
    {"Deny", false, Repeat::adds, false, vhost_deny},
    {"DenyDotFiles", false, Repeat::once, false, vhost_deny_dot_files},
    {"TLSCertificateFile", false, Repeat::once, true, vhost_tls},
    {"TLSCertificateKeyFile", false, Repeat::once, true, vhost_tls},
    {"FallbackResource", false, Repeat::once, true, vhost_fallback_resource},
    {"Redirect", false, Repeat::adds, false, vhost_redirect},
    {"RedirectHTTPS", false, Repeat::once, false, vhost_redirect_https},
    {"ErrorDocument", false, Repeat::adds, false, vhost_error_document},
    {"Header", false, Repeat::adds, false, vhost_header},
    {"NoExec", false, Repeat::adds, false, vhost_no_exec},
    {"AccessLog", false, Repeat::once, true, vhost_log},
    {"ErrorLog", false, Repeat::once, true, vhost_log},
    {"LogFormat", false, Repeat::once, true, vhost_log},
    {"Compress", false, Repeat::once, true, vhost_compress},
    {"CompressTypes", false, Repeat::adds, true, vhost_compress},
    {"CompressMinSize", false, Repeat::once, true, vhost_compress},
    {"PHPAdminValue", false, Repeat::adds, false, vhost_php_setting},
    {"PHPAdminFlag", false, Repeat::adds, false, vhost_php_setting},
    {"PHPValue", false, Repeat::adds, false, vhost_php_setting},
    {"PHPFlag", false, Repeat::adds, false, vhost_php_setting},
    {"PHPUserIni", false, Repeat::once, false, vhost_php_user_ini},
};

const VHostDirective* vhost_directive(const std::string& lkey) {
  for (const VHostDirective& d : kVHostDirectives)
    if (lower(d.name) == lkey) return &d;
  return nullptr;
}

void report_missing_vhost_keys(Parser& p) {
  for (const VHostDirective& d : kVHostDirectives)
    if (d.required && !p.seen.count(lower(d.name))) p.error_at(p.section_line, d.name, "missing: every [vhost] needs one");
}

// The documented spelling of a key only [server] takes, written in any case; nullptr for any other.
const char* server_only_key(const std::string& lkey) {
  for (const auto& k : kServerUintKeys)
    if (lower(k.name) == lkey) return k.name;
  for (const char* k : kServerOtherKeys)
    if (lower(k) == lkey) return k;
  return nullptr;
}

bool is_future_key(const std::string& lkey) { return lkey.rfind("tls", 0) == 0; }

int on_key(void* user, const char* /*section*/, const char* name_c, const char* value_c) {
  Parser& p = *static_cast<Parser*>(user);
  std::string name = name_c;
  std::string_view value = value_c;
  std::string lkey = lower(name);

  if (name.empty()) {
    p.error("", kSyntaxError);
    return 1;
  }
  if (p.section == Section::ignored) return 1;  // the section header was reported; its keys would only add noise
  if (p.section == Section::none) {
    p.error(name, strprintf("key outside a section: put it under %s", p.is_dropin ? "[vhost]" : "[server]"));
    return 1;
  }
  const VHostDirective* directive = vhost_directive(lkey);
  const char* server_only = directive ? nullptr : server_only_key(lkey);
  const char* key = directive ? directive->name : server_only;
  const bool is_vhost = directive != nullptr;
  const bool is_server = server_only != nullptr || (directive && directive->server);
  bool in_server = p.section == Section::server;
  if (!key) {
    if (is_future_key(lkey))
      p.error(name, "not supported by this version of itk");
    else
      p.error(name, strprintf("unknown key in [%s]", in_server ? "server" : "vhost"));
    return 1;
  }
  if (in_server && !is_server) {
    p.error(key, "belongs in a [vhost] section of a drop-in");
    return 1;
  }
  if (!in_server && !is_vhost) {
    p.error(key, strprintf("is a [server] key: set it in %s",
                           p.cfg.config_file.empty() ? "/etc/itk.conf" : p.cfg.config_file.c_str()));
    return 1;
  }

  auto& seen = in_server ? p.server_seen : p.seen;
  bool repeatable = directive && directive->repeat == Repeat::adds;
  auto [it, first] = seen.emplace(lkey, p.lineno);
  if (!first && !repeatable) {
    p.error(key, strprintf("given twice in this section (first at line %d)", it->second));
    return 1;
  }
  if (trim(value).empty()) {
    if (lkey == "user") mark_acceptor_failed(p.cfg.server, "");
    p.error(key, "empty value");
    return 1;
  }
  if (in_server)
    server_key(p, lkey, key, value);
  else
    directive->parse(p, p.cfg.vhosts.back(), lkey, key, value);
  return 1;  // errors are collected here, so inih's return value reports only its own syntax errors
}

void parse_text(const std::string& text, const std::string& name, bool is_dropin, Config& out,
                std::vector<ConfigError>& errors, NameIndex& index) {
  size_t first_new = errors.size();
  size_t nul = text.find('\0');
  if (nul != std::string::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<ptrdiff_t>(nul), '\n'));
    errors.push_back({Origin{name, line}, "", "the file contains a NUL byte; is it a text file? (not read)"});
    return;
  }
  Parser p(text, name, is_dropin, out, errors, index);
  int rc = ini_parse_stream(read_line, &p, on_key, &p);
  finish_section(p);
  if (rc > 0 && !p.refused_lines.count(rc))
    errors.push_back({Origin{name, rc}, "", kSyntaxError});
  else if (rc < 0)
    errors.push_back({Origin{name, 0}, "", strprintf("inih failed (code %d)", rc)});
  // Missing keys are found at the end of a section but belong to its header line.
  std::stable_sort(errors.begin() + static_cast<ptrdiff_t>(first_new), errors.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.origin.line < b.origin.line; });
}

// Reads a whole file; returns "" or what went wrong, phrased to follow "FILE: ".
std::string read_file(const std::string& path, std::string& out, int& err) {
  err = 0;
  unique_fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    err = errno;
    return strprintf("cannot open: %s", strerror(err));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) {
    err = errno;
    return strprintf("cannot stat: %s", strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    err = EISDIR;
    return strprintf("cannot read: %s", strerror(EISDIR));
  }
  out.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return strprintf("cannot read: %s", strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileSize)
      return strprintf("larger than %zu MiB; itk config files are small text files", kMaxFileSize >> 20);
  }
  return "";
}

// *.conf names in byte order; hidden files and other names (foo.conf.dpkg-old, README) are skipped.
std::string list_dropins(const std::string& dir, std::vector<std::string>& names, bool& missing) {
  missing = false;
  DirPtr d = open_dir(dir);
  if (!d) {
    if (errno == ENOENT) {
      missing = true;
      return "";
    }
    return strprintf("cannot open the drop-in directory: %s", strerror(errno));
  }
  for (;;) {
    errno = 0;
    dirent* e = readdir(d.get());
    if (!e) {
      if (errno != 0) return strprintf("cannot list the drop-in directory: %s", strerror(errno));
      break;
    }
    std::string_view n = e->d_name;
    if (n.empty() || n[0] == '.') continue;
    if (n.size() <= 5 || n.substr(n.size() - 5) != ".conf") continue;
    names.emplace_back(n);
  }
  std::sort(names.begin(), names.end());  // std::string compares bytes as unsigned char, as `LC_ALL=C ls` does
  return "";
}

}  // namespace

std::string expand_log_path(const std::string& path, const std::string& server_name) {
  if (server_name.empty()) return path;
  std::string out;
  for (size_t i = 0; i < path.size(); i++) {
    if (path[i] == '%' && i + 1 < path.size()) {
      out += path[i + 1] == 'v' ? server_name : std::string(1, path[i + 1]);
      i++;
    } else {
      out += path[i];
    }
  }
  return out;
}

void parse_config_text(const std::string& text, const std::string& name, bool is_dropin, Config& out,
                       std::vector<ConfigError>& errors) {
  // Names loaded before this call are known only by their [vhost] line.
  NameIndex index;
  for (const VHost& v : out.vhosts) {
    if (!v.server_name.empty()) index.names.emplace(v.server_name, v.origin);
    for (const std::string& a : v.aliases) index.names.emplace(a, v.origin);
    if (v.is_default && !index.has_default) {
      index.has_default = true;
      index.default_at = v.origin;
    }
  }
  parse_text(text, name, is_dropin, out, errors, index);
}

LoadResult load_config(const LoadOptions& opts) {
  LoadResult result;
  auto cfg = std::make_unique<Config>();
  cfg->config_file = opts.config_file;
  cfg->config_dir = opts.config_dir;
  std::vector<ConfigError>& errors = result.errors;
  NameIndex index;
  std::map<std::string, size_t> file_rank;  // errors are reported in load order
  file_rank[opts.config_file] = 0;

  std::string text;
  int err = 0;
  std::string e = read_file(opts.config_file, text, err);
  if (!e.empty()) {
    if (err == ENOENT && !opts.config_file_explicit)
      text.clear();  // no /etc/itk.conf: every [server] key keeps its default
    else
      errors.push_back({Origin{opts.config_file, 0}, "", e});
  } else {
    parse_text(text, opts.config_file, false, *cfg, errors, index);
  }
  // Resolved before the drop-ins so each AssignUserID can be compared with it at its own line.
  if (cfg->server.acceptor.user_name.empty())
    resolve_acceptor(cfg->server, Origin{opts.config_file, 0}, true, opts.config_file, errors);

  std::vector<std::string> names;
  bool missing = false;
  e = list_dropins(opts.config_dir, names, missing);
  if (!e.empty()) errors.push_back({Origin{opts.config_dir, 0}, "", e});
  std::string dir = opts.config_dir;
  if (!dir.empty() && dir.back() != '/') dir += '/';
  for (const std::string& n : names) {
    std::string path = dir + n;
    file_rank.emplace(path, file_rank.size());
    e = read_file(path, text, err);
    if (!e.empty()) {
      errors.push_back({Origin{path, 0}, "", e});
      continue;
    }
    parse_text(text, path, true, *cfg, errors, index);
  }

  validate_config(*cfg, opts.check_filesystem, errors, result.warnings);
  validate_tls(*cfg, opts.check_filesystem, errors, result.warnings);

  size_t last = file_rank.size();
  auto rank = [&](const ConfigError& x) {
    auto it = file_rank.find(x.origin.file);
    return it == file_rank.end() ? last : it->second;
  };
  std::stable_sort(errors.begin(), errors.end(), [&](const ConfigError& a, const ConfigError& b) {
    size_t ra = rank(a), rb = rank(b);
    return ra != rb ? ra < rb : a.origin.line < b.origin.line;
  });
  if (errors.empty()) result.config = std::move(cfg);
  return result;
}

}  // namespace itk

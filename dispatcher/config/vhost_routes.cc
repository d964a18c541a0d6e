// A vhost's Apache-style routing rules: checking their values at load, and matching paths against them
// in the worker. Paths are always the decoded, normalised ones decode_request_path gives, so a rule sees
// the same path the file system is asked for, however the client encoded it.
#include "config/vhost_routes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "http/http_chars.h"
#include "http/static_file.h"
#include "sys/fd_path.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits off the first word of `s` (whitespace-separated); `s` keeps the rest, trimmed.
std::string_view next_word(std::string_view& s) {
  s = trim(s);
  size_t end = 0;
  while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end]))) end++;
  std::string_view w = s.substr(0, end);
  s = trim(s.substr(end));
  return w;
}

std::string quoted(std::string_view s) { return "`" + std::string(s) + "`"; }

// Visible ASCII only: what a URL or a path in a Location header may hold without any encoding.
bool visible_ascii(std::string_view s) {
  for (char c : s)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

// A target for a Location header or an internal request: a local path (never "//host", which a browser
// reads as another host), visible ASCII, whose path part decodes like a request's.
std::string check_local_target(std::string_view t) {
  if (t.empty() || t[0] != '/') return quoted(t) + " is not a local path (start it with /)";
  if (t.size() > 1 && (t[1] == '/' || t[1] == '\\')) return quoted(t) + " would name another host (//...)";
  if (!visible_ascii(t)) return quoted(t) + " contains a space, a control character or a non-ASCII byte (percent-encode it)";
  if (!decode_request_path(t)) return quoted(t) + " is not a valid path (a bad %-escape, an encoded / or NUL, or ..)";
  return {};
}

bool has_scheme(std::string_view url) {
  size_t colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0 || !std::isalpha(static_cast<unsigned char>(url[0]))) return false;
  for (char c : url.substr(0, colon))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
  return url.substr(colon + 1, 2) == "//" && url.size() > colon + 3;
}

// Where `path` really is, relative to the root ("/" for the root itself), or empty when it does not exist
// or cannot be found out.
std::string resolved_beneath(const DocRoot& doc, const std::string& root, const std::string& path) {
  int fd = open_path_beneath(doc, path);
  if (fd < 0) return {};
  unique_fd owner(fd);
  std::string real = fd_path(fd);
  if (real.empty()) return {};
  if (root == "/") return real;
  if (real == root) return "/";
  if (real.compare(0, root.size(), root) != 0 || real[root.size()] != '/') return {};
  return real.substr(root.size());
}

}  // namespace

std::string parse_local_path(std::string_view value, std::string& out) {
  std::string_view rest = value;
  std::string_view w = next_word(rest);
  if (!rest.empty()) return "expected one path, got " + quoted(trim(value));
  if (w.find_first_of("?#") != std::string_view::npos) return quoted(w) + " has a query or fragment; give the path alone";
  std::string e = check_local_target(w);
  if (!e.empty()) return e;
  out = *decode_request_path(w);
  return {};
}

std::string parse_fallback_resource(std::string_view value, std::string& out) {
  if (iequals(trim(value), "disabled")) {
    out.clear();
    return {};
  }
  std::string path;
  std::string e = parse_local_path(value, path);
  if (!e.empty()) return e;
  if (path.back() == '/') return quoted(path) + " is a directory; name the script or file itself (e.g. /index.php)";
  out = path;
  return {};
}

std::string parse_no_exec(std::string_view value, std::vector<std::string>& out) {
  std::string_view rest = value;
  while (!rest.empty()) {
    std::string_view w = next_word(rest);
    std::string path;
    std::string e = parse_local_path(w, path);
    if (!e.empty()) return e;
    if (path.size() > 1 && path.back() == '/') path.pop_back();
    out.push_back(path);
  }
  return {};
}

std::string parse_redirect(std::string_view value, RedirectRule& out) {
  static constexpr struct {
    const char* word;
    int status;
  } kStatuses[] = {{"permanent", 301}, {"temp", 302},  {"seeother", 303}, {"gone", 410}, {"301", 301},
                   {"302", 302},       {"303", 303},   {"307", 307},      {"308", 308},  {"410", 410}};
  std::string_view rest = value;
  std::string_view first = next_word(rest);
  RedirectRule r;
  if (!first.empty() && first[0] != '/') {
    bool known = false;
    for (const auto& s : kStatuses)
      if (iequals(first, s.word)) {
        r.status = s.status;
        known = true;
      }
    if (!known)
      return quoted(first) + " is not a status (permanent, temp, seeother, gone, or 301, 302, 303, 307, 308, 410)";
    first = next_word(rest);
  }
  std::string_view url = next_word(rest);
  if (!rest.empty()) return "expected `[status] /path URL`, got more: " + quoted(rest);
  if (first.empty()) return "expected `[status] /path URL`";
  std::string e = parse_local_path(first, r.path);
  if (!e.empty()) return e;
  if (r.status == 410) {
    if (!url.empty()) return "a `gone` (410) redirect takes no URL";
    out = r;
    return {};
  }
  if (url.empty()) return "expected `[status] /path URL`: the URL is missing";
  if (url[0] == '/') {
    e = check_local_target(url);
    if (!e.empty()) return e;
  } else if (!has_scheme(url) || !visible_ascii(url)) {
    return quoted(url) + " is not a URL (such as https://example.org/path) or a local path";
  }
  r.url = std::string(url);
  out = r;
  return {};
}

std::string parse_error_document(std::string_view value, ErrorDocument& out) {
  std::string_view rest = value;
  std::string_view code = next_word(rest);
  std::string_view target = next_word(rest);
  if (code.size() != 3 || !std::isdigit(static_cast<unsigned char>(code[0])) ||
      !std::isdigit(static_cast<unsigned char>(code[1])) || !std::isdigit(static_cast<unsigned char>(code[2])))
    return "expected `code /path` with a three-digit code, got " + quoted(trim(value));
  int status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (status < 400 || status > 599) return quoted(code) + " is not an error status (400..599)";
  if (target.empty()) return "expected `code /path`: the path is missing";
  if (!rest.empty() || target[0] == '"')
    return "itk serves a local document (a path); text messages are not supported";
  if (target[0] != '/') return quoted(target) + " is not a local path: itk serves local documents only (start it with /)";
  std::string e = check_local_target(target);
  if (!e.empty()) return e;
  out.status = status;
  out.target = std::string(target);
  return {};
}

std::string parse_header_line(std::string_view value, HeaderLine& out) {
  // Hop-by-hop and framing fields are itk's: a wrong Content-Length or Connection breaks the connection.
  static constexpr const char* kReserved[] = {"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
                                              "Upgrade", "TE", "Trailer", "Proxy-Connection", "Status"};
  // Checked before splitting into words: a CR or LF anywhere would start a header or a response of its own.
  for (char c : value)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
      return "contains a control character (CR, LF, ...): a header must be one line";
  std::string_view rest = trim(value);
  std::string_view save = rest;
  std::string_view w = next_word(rest);
  if (iequals(w, "always")) {
    save = rest;
    w = next_word(rest);
  }
  if (!iequals(w, "set")) rest = save;
  std::string_view name = next_word(rest);
  if (name.size() > 1 && name.back() == ':') name.remove_suffix(1);
  if (name.empty()) return "expected `Name \"value\"`";
  for (char c : name)
    if (!is_tchar(c)) return quoted(name) + " is not a header name (letters, digits and !#$%&'*+-.^_`|~)";
  for (const char* r : kReserved)
    if (iequals(name, r)) return quoted(name) + " is set by itk itself for each response";
  std::string_view v = rest;
  if (!v.empty() && v[0] == '"') {
    if (v.size() < 2 || v.back() != '"') return "the value's opening \" has no closing \"";
    v = v.substr(1, v.size() - 2);
  }
  out.name = std::string(name);
  out.value = std::string(trim(v));
  return {};
}

bool path_under(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

const RedirectRule* match_redirect(const std::vector<RedirectRule>& rules, std::string_view path) {
  for (const RedirectRule& r : rules)
    if (path_under(path, r.path)) return &r;
  return nullptr;
}

std::string encode_path(std::string_view decoded) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : decoded) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || std::strchr("/-._~!$&'()*+,;=:@", ch) != nullptr) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string redirect_location(const RedirectRule& rule, std::string_view path, std::string_view query) {
  std::string out = rule.url + encode_path(path.substr(std::min(rule.path.size(), path.size())));
  if (!query.empty() && rule.url.find('?') == std::string::npos) out += query;
  return out;
}

bool is_acme_challenge(std::string_view path) { return path_under(path, "/.well-known/acme-challenge/"); }

std::string https_location(std::string_view host, std::string_view fallback_host, std::string_view target) {
  return "https://" + std::string(host.empty() ? fallback_host : host) + std::string(target);
}

void apply_headers(std::string& head, const std::vector<HeaderLine>& lines) {
  if (lines.empty()) return;
  size_t end = head.rfind("\r\n\r\n");
  if (end == std::string::npos) return;
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < end + 2) {
    size_t eol = head.find("\r\n", pos);
    std::string_view line(head.data() + pos, eol - pos);
    bool replaced = false;
    if (!first) {
      std::string_view name = line.substr(0, line.find(':'));
      for (const HeaderLine& h : lines)
        if (iequals(name, h.name)) replaced = true;
    }
    if (!replaced) {
      out.append(line);
      out += "\r\n";
    }
    first = false;
    pos = eol + 2;
  }
  for (const HeaderLine& h : lines) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  out.append(head, end + 4);
  head = std::move(out);
}

bool no_exec_blocks(const DocRoot& doc, const std::string& script_path, const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return false;
  for (const std::string& p : prefixes)
    if (path_under(script_path, p)) return true;
  const std::string& root = doc.real;
  std::string real = root.empty() ? std::string() : resolved_beneath(doc, root, script_path);
  if (real.empty()) {
    log(Level::warning, "cannot tell where %s leads beneath the DocumentRoot; refused as under NoExec",
        script_path.c_str());
    return true;
  }
  for (const std::string& p : prefixes) {
    if (path_under(real, p)) return true;
    std::string real_prefix = resolved_beneath(doc, root, p);
    if (!real_prefix.empty() && path_under(real, real_prefix)) return true;
  }
  return false;
}

}  // namespace itk

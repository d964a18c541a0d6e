// CGI meta-variables.
#include "script/cgi_env.h"

#include <algorithm>
#include <map>

#include "sys/vhost_dirs.h"

namespace itk {

std::vector<std::string> cgi_environment(const CgiRequest& r) {
  std::map<std::string, std::string> env;
  const RequestHead& h = *r.head;
  env["GATEWAY_INTERFACE"] = "CGI/1.1";
  env["SERVER_SOFTWARE"] = "itk";
  env["SERVER_PROTOCOL"] = "HTTP/" + std::to_string(h.version_major) + "." + std::to_string(h.version_minor);
  env["SERVER_NAME"] = r.vhost->server_name;
  env["SERVER_ADDR"] = r.server_addr;
  env["SERVER_PORT"] = r.server_port;
  env["REMOTE_ADDR"] = r.remote_addr;
  env["REMOTE_PORT"] = r.remote_port;
  env["REQUEST_METHOD"] = h.method;
  env["REQUEST_URI"] = r.request_uri.empty() ? h.target : r.request_uri;
  env["REQUEST_SCHEME"] = r.https ? "https" : "http";
  if (r.https) env["HTTPS"] = "on";
  env["SCRIPT_NAME"] = r.script_name;
  env["SCRIPT_FILENAME"] = r.script_filename;
  env["DOCUMENT_ROOT"] = r.document_root;
  env["QUERY_STRING"] = r.query;
  if (!r.path_info.empty()) {
    env["PATH_INFO"] = r.path_info;
    env["PATH_TRANSLATED"] = r.document_root + r.path_info;
  }
  // php-cgi refuses to run without it (its force-cgi-redirect guard).
  env["REDIRECT_STATUS"] = "200";
  if (r.redirect_env)
    for (const auto& [k, v] : *r.redirect_env) env[k] = v;
  env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  // The vhost's own temporary directory, and for PHP the ini directory that names it (sessions, uploads)
  // and holds the vhost's PHP settings.
  if (!r.temp_dir.empty()) env["TMPDIR"] = r.temp_dir;
  if (!r.php_ini_dir.empty()) env["PHP_INI_SCAN_DIR"] = php_ini_scan_dir(r.php_ini_dir);
  if (h.content_length) env["CONTENT_LENGTH"] = std::to_string(*h.content_length);
  for (const auto& [name, value] : h.headers) {
    if (name == "content-type") {
      env["CONTENT_TYPE"] = value;
      continue;
    }
    if (name == "content-length" || name == "proxy" || name.find('_') != std::string::npos) continue;
    std::string key = "HTTP_";
    for (char c : name) key.push_back(c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c));
    auto [it, fresh] = env.emplace(key, value);
    if (!fresh) it->second += (name == "cookie" ? "; " : ", ") + value;
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

}  // namespace itk

// The environment a CGI script gets (RFC 3875 §4.1 meta-variables), built from the request
// alone: nothing of itkd's own environment ever reaches a script.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "http/http_request.h"

namespace itk {

struct CgiRequest {
  const VHost* vhost = nullptr;
  std::string temp_dir;         // the vhost's private TMPDIR this generation (VHostState), or empty
  std::string php_ini_dir;      // its PHP ini directory, or empty
  std::string document_root;    // the DocumentRoot's real path for this connection (DocRoot::real)
  const RequestHead* head = nullptr;
  std::string script_name;      // URL path of the script, decoded ("/app/x.cgi")
  std::string script_filename;  // DocumentRoot + script_name
  std::string path_info;        // decoded rest of the path after the script ("/extra/path"), may be empty
  std::string query;            // query string without '?'
  std::string remote_addr, remote_port, server_addr, server_port;
  bool https = false;
  std::string request_uri;  // empty: the request's target
  const std::vector<std::pair<std::string, std::string>>* redirect_env = nullptr;  // replace or add
};

// "NAME=value" strings, sorted by name. Request headers become HTTP_* except Proxy (httpoxy),
// Content-Length/Content-Type (they are CONTENT_*), and names containing '_' (which could pass
// for another header once '-' is mapped to '_'; Apache and nginx drop them too).
std::vector<std::string> cgi_environment(const CgiRequest& r);

}  // namespace itk

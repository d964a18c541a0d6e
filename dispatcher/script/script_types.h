// The values CGI and FastCGI share: which script a request names, and what running it did.
// Kept apart from either runner so neither includes the other.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "http/response_outcome.h"

namespace itk {

struct ScriptMatch {
  enum Kind { none, script, not_found, forbidden } kind = none;  // none: not a script, serve statically
  std::string script_name;  // decoded URL path of the script
  std::string document_root;  // the DocumentRoot's real path as this connection opened it: scripts get it
  std::string path_info;    // decoded rest
  std::string program;      // handler program, or empty to run the script itself
  const FastCgiApp* fastcgi = nullptr;  // set: the vhost's FastCGI pool for this extension runs it
  // An ErrorDocument script is told about the request that failed, as Apache tells it.
  std::string request_uri;  // REQUEST_URI when not the request's own target
  std::vector<std::pair<std::string, std::string>> redirect_env;  // REDIRECT_STATUS, REDIRECT_URL, ...
  int default_status = 0;   // the status of a response that gives no Status (0: 200)
};

struct CgiOutcome {
  ResponseOutcome response;
  std::string local_redirect;  // set when the script answered with a local Location: serve that path
};

}  // namespace itk

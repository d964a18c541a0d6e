// The values CGI and FastCGI share: which script a request names, and what running it did.
// Kept apart from either runner so neither includes the other.
#pragma once

#include <string>

#include "config/config.h"
#include "http/response_outcome.h"

namespace itk {

struct ScriptMatch {
  enum Kind { none, script, not_found, forbidden } kind = none;  // none: not a script, serve statically
  std::string script_name;  // decoded URL path of the script
  std::string path_info;    // decoded rest
  std::string program;      // handler program, or empty to run the script itself
  const FastCgiApp* fastcgi = nullptr;  // set: the vhost's FastCGI pool for this extension runs it
};

struct CgiOutcome {
  ResponseOutcome response;
  std::string local_redirect;  // set when the script answered with a local Location: serve that path
};

}  // namespace itk

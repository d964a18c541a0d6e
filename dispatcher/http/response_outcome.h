// What writing one response did to its connection: every handler (static, CGI, FastCGI, the
// worker's own error pages) returns it, so it lives below all of them.
#pragma once

namespace itk {

struct ResponseOutcome {
  bool ok = true;          // false: the connection broke while writing; close it
  int status = 0;          // for the log
  bool keep_alive = false; // what the response told the client
};

}  // namespace itk

// CGI in the worker (already the vhost's user): which requests are scripts, and running one
// with its body streamed in and its output streamed out.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/runtime.h"
#include "http/client_conn.h"
#include "http/doc_root.h"
#include "http/http_request.h"
#include "script/script_types.h"

namespace itk {

// Finds the script a decoded request path names, if any: the first path prefix that is a regular
// file with a CGI, Handler or FastCGI extension (in that order of precedence) (the rest is PATH_INFO), or a DirectoryIndex entry with such
// an extension when the path is a directory with a trailing '/'. Resolved beneath `root`.
ScriptMatch match_script(const DocRoot& root, const std::string& decoded_path, const VHost& vh);

// Runs the script for `head`. `buffered` holds the bytes read after the head (body, then maybe
// the next request); the body bytes are consumed from it. `keep_alive` is what the client asked
// for and the server allows; the outcome says what the response really did.
// `in_leaf`: the worker runs in its own connection cgroup, so whatever the script left running
// (even outside its process group) is killed when the request ends.
CgiOutcome run_cgi(const Runtime& rt, const VHost& vh, const RequestHead& head, const ScriptMatch& m,
                   ClientConn& conn, std::string& buffered, bool keep_alive, bool in_leaf);

}  // namespace itk

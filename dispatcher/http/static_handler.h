// Answers one request for a static file under a vhost's DocumentRoot (in the worker, as the tenant).
#pragma once

#include <string>
#include <string_view>

#include "config/runtime.h"
#include "http/access_rules.h"
#include "http/client_conn.h"
#include "http/http_request.h"
#include "http/response_outcome.h"

namespace itk {

// Writes the whole response for `head` to `conn`. `root` is the vhost's DocumentRoot opened by the
// tenant for this connection, or its error (ENOENT, ENOTDIR -> 404; EACCES, EPERM, EXDEV: outside
// SymlinkRoot -> 403; else 500). `keep_alive` decides the Connection header.
// The Location of the redirect of a directory requested without its trailing '/': `raw_path` as the
// client sent it (percent-encoded), with one '/' appended. It can never name another host: leading
// slashes are collapsed to one and backslashes encoded.
std::string directory_location(std::string_view raw_path);

// `access` has passed the request's path already; the file it resolves to is checked here, once known.
// `as_error` (an ErrorDocument for that status) sends the file with that status instead of 200, with
// `extra` header lines and without validators or ranges.
ResponseOutcome serve_static(const Runtime& rt, const VHost& vh, const DocRoot& root, const RequestHead& head, ClientConn& conn,
                             bool keep_alive, AccessCheck& access, int as_error = 0, std::string_view extra = {});

}  // namespace itk

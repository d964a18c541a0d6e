// One request of a vhost in its worker, from its path to its response: RedirectHTTPS, Redirect, scripts
// (never under NoExec, never where the access rules refuse), FallbackResource, static files, and the
// ErrorDocument of an error the worker made.
#pragma once

#include <string>

#include "config/runtime.h"
#include "http/access_rules.h"
#include "http/client_conn.h"
#include "http/http_request.h"
#include "http/static_handler.h"
#include "proc/scoreboard.h"

namespace itk {

// Writes the whole response to `head` for `vh`. `root` is its DocumentRoot as the tenant opened it
// (or -errno); `buffered` holds the bytes after the head (a body is taken from it); `keep_alive` is what
// the client asked for and the server allows; `in_leaf`: the worker runs in its connection's own cgroup;
// `access` is the worker's check of the access rules (dotfiles, Deny, .htaccess), applied before anything
// is run or sent.
ResponseOutcome serve_request(const Runtime& rt, Scoreboard& sb, const VHost& vh, const DocRoot& root, const RequestHead& head,
                              ClientConn& io, std::string& buffered, bool keep_alive, bool in_leaf,
                              AccessCheck& access);

}  // namespace itk

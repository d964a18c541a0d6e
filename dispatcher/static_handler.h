// Answers one request for a static file under a vhost's DocumentRoot (in the worker, as the tenant).
#pragma once

#include "client_conn.h"
#include "http_request.h"
#include "runtime.h"

namespace itk {

struct ResponseOutcome {
  bool ok = true;          // false: the connection broke while writing; close it
  int status = 0;          // for the log
  bool keep_alive = false; // what the response told the client
};

// Writes the whole response for `head` to `conn`. `root_fd` is the vhost's DocumentRoot opened by
// the tenant (O_PATH|O_DIRECTORY), or -errno if that failed (ENOENT, ENOTDIR -> 404; EACCES, EPERM
// -> 403; else 500). `keep_alive` decides the Connection header.
ResponseOutcome serve_static(const Runtime& rt, const VHost& vh, int root_fd, const RequestHead& head, ClientConn& conn,
                             bool keep_alive);

}  // namespace itk

// FastCGI in the worker (already the vhost's user): one request sent to the vhost's warm app pool
// over its Unix socket, the response relayed as a CGI response is.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "config/runtime.h"
#include "http/client_conn.h"
#include "http/http_request.h"
#include "script/script_types.h"

namespace itk {

// How long a worker waits for room in a full pool's queue before answering 503.
constexpr int kFastCgiQueueWaitMs = 3000;

// Runs `m` (m.fastcgi set) through its pool. Same contract as run_cgi: `buffered` holds the bytes
// after the head, `keep_alive` what the client asked for and the server allows. `activity` (the vhost's
// entry in the scoreboard) is counted up when the request is handed over and once a second while its
// answer is awaited: the master stops an idle pool by it.
CgiOutcome run_fastcgi(const Runtime& rt, const VHost& vh, const RequestHead& head, const ScriptMatch& m,
                       ClientConn& conn, std::string& buffered, bool keep_alive, std::atomic<uint64_t>& activity);

}  // namespace itk

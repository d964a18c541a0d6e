// A worker's record of one request for its vhost's logs: while the request is served, what itk logs also
// goes to the vhost's ErrorLog; at its end, one access log line, and the reason for an error status that
// nothing has explained yet.
#pragma once

#include <ctime>
#include <string>

#include "config/runtime.h"
#include "http/client_conn.h"
#include "http/http_request.h"
#include "http/response_outcome.h"
#include "sys/vhost_logs.h"

namespace itk {

class RequestLog {
 public:
  // From just before `head` is answered on `io` for `vh`.
  RequestLog(const LogFds& logs, const Runtime& rt, const VHost& vh, const RequestHead& head, ClientConn& io);
  ~RequestLog();
  RequestLog(const RequestLog&) = delete;
  RequestLog& operator=(const RequestLog&) = delete;

  // After the response: writes the access log line (one write()), and says why for a 403, 404, 500, 502
  // or 504 that no line of the request has explained.
  void finish(const ResponseOutcome& out);

 private:
  const LogFds& logs_;
  const Runtime& rt_;
  const VHost& vh_;
  const RequestHead& head_;
  ClientConn& io_;
  timespec start_{};
  int64_t start_us_ = 0;
  uint64_t bytes_out_ = 0;
  std::string client_ip_, local_port_;
  bool finished_ = false;
};

// The access log line of a request the acceptor refused on socket `sock` with `response` (empty when it
// closed a TLS connection without answering): in `vh`'s access log, or in the server-wide one when no
// vhost is known (null). `head` is what was parsed of the request, or null.
void log_refusal(const LogFds& logs, const Runtime& rt, const VHost* vh, int sock, const ConnAddrs& addrs,
                 const RequestHead* head, int status, std::string_view response);

}  // namespace itk

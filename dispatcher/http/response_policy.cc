// Error pages and Header lines of the request in hand, applied where the worker writes a head.
#include "http/response_policy.h"

#include "config/vhost_routes.h"
#include "http/http_response.h"

namespace itk {

const ErrorDocument* ResponsePolicy::document_for(int code) const {
  if (!documents) return nullptr;
  for (const ErrorDocument& d : *documents)
    if (d.status == code) return &d;
  return nullptr;
}

ResponseOutcome answer_error(ClientConn& conn, int status, bool keep_alive, bool head_only, std::string_view extra) {
  ResponsePolicy* p = conn.policy;
  // Only the first error of a request is held: what follows it (a script's stop) is the same failure.
  if (p && p->status == 0 && status >= 400 && (p->hold_every_error || p->document_for(status))) {
    p->status = status;
    p->keep_alive = keep_alive;
    p->extra = std::string(extra);
    return {true, status, keep_alive};
  }
  std::string out = error_response(status, keep_alive, extra, head_only);
  apply_policy_headers(conn, out);
  return {conn_write_all(conn, out), status, keep_alive};
}

void apply_policy_headers(const ClientConn& conn, std::string& head) {
  if (conn.policy && conn.policy->headers) apply_headers(head, *conn.policy->headers);
}

}  // namespace itk

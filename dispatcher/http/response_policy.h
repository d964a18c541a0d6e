// What a vhost adds to the responses its worker writes: its Header lines on every head, and its
// ErrorDocuments in place of the built-in error pages (the error is held back here and served after).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/client_conn.h"
#include "http/static_handler.h"

namespace itk {

// Set on the connection (ClientConn::policy) for the request in hand.
struct ResponsePolicy {
  const std::vector<HeaderLine>* headers = nullptr;
  const std::vector<ErrorDocument>* documents = nullptr;
  bool hold_every_error = false;  // while an ErrorDocument is served: any error of its own is held too

  // The error that was held back instead of written (status 0: none).
  int status = 0;
  bool keep_alive = false;
  std::string extra;  // its extra header lines (Allow, Retry-After, ...)

  const ErrorDocument* document_for(int code) const;
};

// Points `conn` at `policy` for as long as it lives.
class PolicyScope {
 public:
  PolicyScope(ClientConn& conn, ResponsePolicy& policy) : conn_(conn), prev_(conn.policy) { conn.policy = &policy; }
  ~PolicyScope() { conn_.policy = prev_; }
  PolicyScope(const PolicyScope&) = delete;
  PolicyScope& operator=(const PolicyScope&) = delete;

 private:
  ClientConn& conn_;
  ResponsePolicy* prev_;
};

// Writes the built-in page for `status` (with `extra` header lines), or holds it back when the connection's
// policy has a document for it. Every error page of a vhost goes through here.
ResponseOutcome answer_error(ClientConn& conn, int status, bool keep_alive, bool head_only, std::string_view extra = {});

// The vhost's Header lines set on a complete response head about to be written on `conn`.
void apply_policy_headers(const ClientConn& conn, std::string& head);

}  // namespace itk

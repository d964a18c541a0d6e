// The end of a CGI or FastCGI request once its relay stopped: the answer when the script gave none,
// the end of its response when it did, and whether the connection can carry another request.
#pragma once

#include <string>

#include "http/client_conn.h"
#include "http/http_request.h"
#include "script/script_io.h"
#include "script/script_types.h"

namespace itk {

// Why a relay stopped. Only one reason counts: the first that ends the loop.
enum class RelayEnd {
  output_done,   // the script's output ended as it should (stdout closed; FastCGI END_REQUEST)
  output_cut,    // it ended early: the app closed or broke the protocol, or a malformed header block
  timed_out,     // CGITimeout passed
  body_stalled,  // the request body stopped arriving for Timeout
  body_refused,  // the request body broke its framing or its limit
  client_gone,   // the client closed or a write to it failed
  local_error,   // our own failure, logged where it happened
};

struct Relay {
  RelayEnd end = RelayEnd::output_done;
  bool body_done = false;    // the request body was read to its end
  bool crashed = false;      // the script died by a signal of its own: its output may be incomplete
  int refused_status = 0;    // body_refused: the status the body's error calls for
  std::string failure;       // what the journal says when the output failed or was cut short; empty: said already
};

class BodyDecoder;

// Decodes the request body bytes at hand in `buffered` into `out`, noting in `relay` when the body is
// complete. False when the body is refused: `relay` then says so and with which status.
bool decode_body(BodyDecoder& body, std::string& buffered, std::string& out, Relay& relay);

// `keep_alive` is the variable `resp` lowers; `stopped` ends the journal line of a request given up
// ("script stopped"); `timeout_s` is the Timeout a stalled body was given.
CgiOutcome finish_script(ClientConn& conn, const RequestHead& head, const std::string& script_name,
                         ScriptResponse& resp, const Relay& relay, bool& keep_alive, const char* stopped,
                         unsigned timeout_s);

}  // namespace itk

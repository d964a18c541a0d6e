// What CGI and FastCGI requests share in the worker: the meta-variables, a chunked body spooled,
// the script's stderr logged, and its output (CGI header block, then body) relayed to the client.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/runtime.h"
#include "http/client_conn.h"
#include "http/compression.h"
#include "http/encoder.h"
#include "http/http_request.h"
#include "http/response_outcome.h"
#include "http/response_policy.h"
#include "script/cgi_response.h"
#include "script/script_types.h"
#include "sys/unique_fd.h"

namespace itk {

struct VHost;
struct CompressSettings;

// The RFC 3875 environment for the script `m` names (decoded URL path, PATH_INFO, what an internal
// request adds), with what this generation assigned the vhost (`state`: TMPDIR, PHP ini directory).
std::vector<std::string> script_environment(const VHost& vh, const VHostState& state, const RequestHead& head,
                                            const ClientConn& conn, const ScriptMatch& m,
                                            const std::string& script_filename);

// How fast a body being spooled must arrive on average, after a first Timeout: Apache's MinRate.
constexpr uint64_t kBodyMinRate = 500;

// Reads a whole chunked body into an unlinked file in `spool_dir` (the vhost's temporary directory;
// memory only if that fails) so the script gets CONTENT_LENGTH, which RFC 3875 requires and php-cgi
// relies on. Bounded by LimitRequestBody (in `body`), by `timeout_s` of silence, and overall by
// `timeout_s` plus a second per kBodyMinRate bytes. Returns 0, an HTTP status to answer, or -1 when the
// client went away.
class BodyDecoder;
int spool_chunked(ClientConn& conn, BodyDecoder& body, std::string& buffered, unsigned timeout_s,
                  const std::string& spool_dir, unique_fd& out, uint64_t& size, const char*& why);

// The request body's first step for CGI and FastCGI: "100 Continue" when asked for, and a chunked
// body spooled into `spool` (in `spool_dir`) with `env_head` (a copy of the head) rewritten to carry
// its length. False when the request was answered (or the client left) here; `answered` says how.
bool prepare_body(ClientConn& conn, const RequestHead& head, BodyDecoder& body, std::string& buffered,
                  unsigned timeout_s, const std::string& spool_dir, RequestHead& env_head, unique_fd& spool,
                  ResponseOutcome& answered);

// One read of request body bytes from the client into `buffered`; `progress` becomes now when
// bytes came. False when the client closed or failed.
bool read_body_bytes(ClientConn& conn, std::string& buffered, int64_t& progress);

// The script's stderr goes to the journal line by line, tagged by the worker's role (its vhost).
class StderrLog {
 public:
  explicit StderrLog(std::string script) : script_(std::move(script)) {}
  void add(const char* data, size_t n);
  void flush();

 private:
  void emit(const std::string& line);
  std::string script_;
  std::string pending_;
};

// The response side of a script: collects the header block, sends the status line and headers,
// then the body (chunked when the script gives no length and the client speaks HTTP/1.1), compressed
// when `compress` allows it, the client takes a coding and the script set none.
class ScriptResponse {
 public:
  // `keep_alive` is the caller's: this lowers it when the response cannot be followed by another.
  // `default_status`: the status of a response without Status (0: 200). `compress`: the vhost's
  // settings (nullptr: never compressed).
  ScriptResponse(ClientConn& conn, const RequestHead& head, std::string script_name, bool& keep_alive,
                 int default_status = 0, const CompressSettings* compress = nullptr)
      : conn_(conn), head_(head), script_(std::move(script_name)), keep_alive_(keep_alive),
        default_status_(default_status), compress_(compress) {}

  enum class Fed { ok, bad_head, client_gone };
  // Script output bytes. `body_done`: the request body was read to its end (else the connection
  // must close after this response). bad_head: malformed or over-long header block, nothing sent.
  Fed feed(const char* data, size_t n, bool body_done);
  // Ends the body (the last chunk) unless the script was cut off, and sends what is held.
  // False when the client is gone.
  bool finish(bool cut_off);
  // Sends what is held: output is collected between waits so that a short response leaves in one
  // send. Call before waiting for more script output. False when the client is gone.
  bool flush();
  // Someone else answered (an error before the script's head): nothing more goes out.
  void answered_elsewhere(int status);

  bool head_sent() const { return head_sent_; }
  bool head_complete() const;
  bool short_of_length() const { return declared_ && sent_ < *declared_ && !discard_body_; }
  int status() const { return status_; }
  const std::string& local_redirect() const { return local_redirect_; }
  bool has_output() const { return head_sent_ || !head_buf_.empty(); }

 private:
  bool start(bool body_done);
  bool write_body(const char* data, size_t n);
  bool compress_candidate() const;
  // Puts the head into the output with coding `c` (identity: as the script framed it), then what was held.
  bool emit_head(Coding c);
  bool emit_body(std::string_view data);

  ClientConn& conn_;
  const RequestHead& head_;
  std::string script_;
  bool& keep_alive_;
  std::string head_buf_;
  std::string out_;  // status line, headers and body bytes not yet sent
  bool head_sent_ = false, chunked_out_ = false, discard_body_ = false;
  bool no_body_ = false;  // HEAD, 204, 304: a head without a body
  std::optional<uint64_t> declared_;
  uint64_t sent_ = 0;
  int status_ = 0;
  int default_status_ = 0;
  std::string local_redirect_;

  const CompressSettings* compress_;
  CgiHead parsed_;                 // the script's header block, until the head goes out
  bool vary_ = false;              // the type is compressible: the answer depends on Accept-Encoding
  Coding offered_ = Coding::identity;  // what the client takes best, when the response may be compressed
  // The head waits for the coding decision until CompressMinSize bytes of body, the end of the output,
  // or `decide_by_ms_` (a script that pauses must not be held up for long).
  bool undecided_ = false;
  int64_t decide_by_ms_ = 0;
  std::string held_body_;
  std::optional<Encoder> encoder_;
};

}  // namespace itk

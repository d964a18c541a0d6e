// Incremental HTTP/1.x request-head parser on top of llhttp, with the configured size limits.
// Used by the acceptor (first request) and the worker (keep-alive requests); no I/O here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace itk {

struct HeadLimits {
  size_t request_line = 8190;   // LimitRequestLine (request target + method + version)
  size_t field_size = 8190;     // LimitRequestFieldSize (name + value of one field)
  size_t fields = 100;          // LimitRequestFields
  size_t total = 65536;         // whole head
  uint64_t body = 134217728;    // LimitRequestBody (declared Content-Length)
};

struct RequestHead {
  std::string method;                 // as sent (case-sensitive per RFC 9110)
  std::string target;                 // request-target as sent
  int version_major = 1;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  std::string host;                   // Host header, or the authority of an absolute-form target
  bool keep_alive = false;            // what the client asked for (llhttp_should_keep_alive)
  bool chunked = false;
  std::optional<uint64_t> content_length;
  bool expect_continue = false;

  // First value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
  bool has_body() const { return chunked || (content_length && *content_length > 0); }
};

// Result of feeding bytes.
enum class HeadState { incomplete, complete, error };

class HeadParser {
 public:
  explicit HeadParser(const HeadLimits& limits);
  ~HeadParser();
  HeadParser(const HeadParser&) = delete;
  HeadParser& operator=(const HeadParser&) = delete;

  // Parses `data`, which must hold the whole head so far, from its first byte (callers keep one
  // buffer and call again with it when more bytes arrive; only the new bytes are fed to llhttp,
  // so a client that trickles bytes costs linear, not quadratic, work).
  // On complete, head_length() bytes of `data` are the head; the rest is body or the next request.
  HeadState parse(std::string_view data);

  // Overwrites every parsed byte (method, target, headers) before the memory is given back: a
  // worker forked from the acceptor must not keep other clients' requests.
  void wipe();

  const RequestHead& head() const { return head_; }
  RequestHead& head() { return head_; }
  size_t head_length() const { return head_length_; }
  int error_status() const { return error_status_; }      // 400, 413, 414, 431, 501, 505 on error
  const std::string& error_reason() const { return error_reason_; }  // for the log

  struct Impl;

 private:
  HeadState judge_version(std::string_view data);

  friend struct HeadParserAccess;
  std::unique_ptr<Impl> impl_;  // llhttp state, created on first parse()
  HeadLimits limits_;
  RequestHead head_;
  size_t head_length_ = 0;
  int error_status_ = 0;
  std::string error_reason_;
  bool version_pending_ = false;  // llhttp refused the version; the answer waits for the end of the line
};

}  // namespace itk

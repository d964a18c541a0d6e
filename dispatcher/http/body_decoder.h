// Request body framing (RFC 9112 §6): Content-Length or chunked, decoded incrementally so a
// body is streamed to a CGI script without ever being held whole.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace itk {

class BodyDecoder {
 public:
  enum class State { more, complete, error };

  // `limit` is LimitRequestBody for the decoded length (0 = unlimited).
  BodyDecoder(std::optional<uint64_t> content_length, bool chunked, uint64_t limit);

  // Decodes from `in`, appending payload bytes to `out`; sets `consumed` to the bytes of `in`
  // used. Bytes after the end of the body are left unconsumed (they start the next request).
  State feed(std::string_view in, std::string& out, size_t& consumed);

  State state() const { return state_; }
  int error_status() const { return error_status_; }  // 400 (bad framing) or 413 (over the limit)
  const char* error_reason() const { return error_reason_; }
  uint64_t decoded() const { return decoded_; }

 private:
  enum class Phase { length, size, size_ext, size_lf, data, data_cr, data_lf, trailer_line, trailer_lf, done };
  State fail(int status, const char* why);

  bool chunked_;
  uint64_t remaining_ = 0;  // of the Content-Length body, or of the current chunk
  uint64_t limit_;
  uint64_t decoded_ = 0;
  Phase phase_;
  unsigned size_digits_ = 0;
  size_t trailer_line_len_ = 0;
  size_t trailer_bytes_ = 0;
  State state_ = State::more;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace itk

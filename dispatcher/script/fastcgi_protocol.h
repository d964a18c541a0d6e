// FastCGI 1.0 records (the web-server side): encoding a request, decoding what the application sends back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace itk::fcgi {

enum Type : uint8_t { begin_request = 1, abort_request = 2, end_request = 3, params = 4, stdin_stream = 5,
                      stdout_stream = 6, stderr_stream = 7, data = 8, get_values = 9, get_values_result = 10,
                      unknown_type = 11 };

constexpr size_t kMaxContent = 65535;

// One record: 8-byte header (version 1, type, request id, content length, padding length) + content +
// padding so the record is a multiple of 8 bytes. content.size() must be <= kMaxContent (a longer one
// aborts: its 16-bit length would wrap and desynchronise the application's parser).
void append_record(std::string& out, Type type, uint16_t id, std::string_view content);

// BEGIN_REQUEST, role RESPONDER (1), flags 0: the application closes the connection after the request.
void append_begin_request(std::string& out, uint16_t id);

// The name-value pairs (1-byte lengths below 128, else 4-byte with the high bit set) packed into PARAMS
// records of whole pairs (php-cgi refuses a pair split across records), then the empty PARAMS record
// that ends the stream. False, with `out` partly written, when one pair alone exceeds kMaxContent.
bool append_params(std::string& out, uint16_t id, const std::vector<std::pair<std::string, std::string>>& pairs);

// Request body bytes as STDIN records of at most kMaxContent each; empty `data` appends the empty STDIN
// record that ends the stream.
void append_stdin(std::string& out, uint16_t id, std::string_view data);

struct Record {
  Type type{};
  uint16_t id = 0;
  std::string content;  // padding removed
};

// Incremental decoder for the application's byte stream (any split of the bytes gives the same records).
// Types and request ids are passed through unchecked: which ones are acceptable is the caller's decision.
class RecordReader {
 public:
  // Appends bytes read from the socket.
  void feed(std::string_view bytes);
  // Next complete record into `out`: returns 1 when one was produced, 0 when more bytes are needed,
  // -1 on a protocol error (version != 1); error() then says what was wrong. After -1 it stays -1.
  int next(Record& out);
  const std::string& error() const { return error_; }
  // Bytes held that do not yet form a whole record.
  size_t pending() const;

 private:
  std::string buf_;
  size_t pos_ = 0;  // consumed prefix of buf_, compacted now and then so memory stays bounded
  std::string error_;
};

struct EndRequest {
  uint32_t app_status = 0;
  uint8_t protocol_status = 0;  // 0 REQUEST_COMPLETE, 1 CANT_MPX_CONN, 2 OVERLOADED, 3 UNKNOWN_ROLE
};

// Parses END_REQUEST content (8 bytes); false when it is shorter.
bool parse_end_request(std::string_view content, EndRequest& out);

}  // namespace itk::fcgi

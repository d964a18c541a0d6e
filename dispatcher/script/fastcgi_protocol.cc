// FastCGI 1.0 record encoding and incremental decoding; all multi-byte fields are big-endian on the wire.
#include "script/fastcgi_protocol.h"

#include <cstdlib>

namespace itk::fcgi {
namespace {

constexpr size_t kHeaderSize = 8;
constexpr uint8_t kVersion = 1;
constexpr uint16_t kRoleResponder = 1;
constexpr size_t kMaxPairLength = 0x7fffffff;  // the 4-byte length form keeps the top bit as its marker

void put8(std::string& out, size_t v) { out.push_back(static_cast<char>(v & 0xff)); }

void put16(std::string& out, size_t v) {
  put8(out, v >> 8);
  put8(out, v);
}

uint32_t get8(std::string_view in, size_t at) { return static_cast<unsigned char>(in[at]); }

void put_pair_length(std::string& out, size_t n) {
  if (n > kMaxPairLength) abort();
  if (n < 128) {
    put8(out, n);
    return;
  }
  put8(out, (n >> 24) | 0x80);
  put8(out, n >> 16);
  put8(out, n >> 8);
  put8(out, n);
}

// Splits `stream` into records of at most kMaxContent bytes; nothing at all for an empty stream.
void append_chunks(std::string& out, Type type, uint16_t id, std::string_view stream) {
  while (!stream.empty()) {
    size_t n = stream.size() < kMaxContent ? stream.size() : kMaxContent;
    append_record(out, type, id, stream.substr(0, n));
    stream.remove_prefix(n);
  }
}

}  // namespace

void append_record(std::string& out, Type type, uint16_t id, std::string_view content) {
  if (content.size() > kMaxContent) abort();
  size_t padding = (8 - content.size() % 8) % 8;
  out.reserve(out.size() + kHeaderSize + content.size() + padding);
  put8(out, kVersion);
  put8(out, type);
  put16(out, id);
  put16(out, content.size());
  put8(out, padding);
  put8(out, 0);  // reserved
  out.append(content);
  out.append(padding, '\0');
}

void append_begin_request(std::string& out, uint16_t id) {
  std::string body;
  put16(body, kRoleResponder);
  put8(body, 0);  // flags: no FCGI_KEEP_CONN
  body.append(5, '\0');
  append_record(out, begin_request, id, body);
}

bool append_params(std::string& out, uint16_t id, const std::vector<std::pair<std::string, std::string>>& pairs) {
  // Every record holds whole pairs: php-cgi decodes each PARAMS record on its own and drops the
  // request when a pair runs past a record's end (nginx never splits one either).
  std::string record;
  for (const auto& [name, value] : pairs) {
    std::string pair;
    put_pair_length(pair, name.size());
    put_pair_length(pair, value.size());
    pair.append(name);
    pair.append(value);
    if (pair.size() > kMaxContent) return false;
    if (record.size() + pair.size() > kMaxContent) {
      append_record(out, params, id, record);
      record.clear();
    }
    record += pair;
  }
  if (!record.empty()) append_record(out, params, id, record);
  append_record(out, params, id, {});
  return true;
}

void append_stdin(std::string& out, uint16_t id, std::string_view data) {
  if (data.empty()) {
    append_record(out, stdin_stream, id, {});
    return;
  }
  append_chunks(out, stdin_stream, id, data);
}

void RecordReader::feed(std::string_view bytes) {
  if (!error_.empty()) return;  // nothing more will be decoded; do not let the buffer grow
  // Dropping the consumed prefix only once it is at least as large as what remains keeps the copying
  // linear in the bytes fed and the buffer within twice the unconsumed bytes.
  if (pos_ > 0 && pos_ >= buf_.size() - pos_) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

int RecordReader::next(Record& out) {
  if (!error_.empty()) return -1;
  std::string_view in(buf_);
  in.remove_prefix(pos_);
  if (in.size() < kHeaderSize) return 0;
  uint32_t version = get8(in, 0);
  if (version != kVersion) {
    error_ = "FastCGI record with version " + std::to_string(version) +
             ", expected 1: the application does not speak FastCGI 1.0 or the stream is out of step";
    return -1;
  }
  size_t content_length = get8(in, 4) << 8 | get8(in, 5);
  size_t padding_length = get8(in, 6);
  if (in.size() < kHeaderSize + content_length + padding_length) return 0;
  out.type = static_cast<Type>(get8(in, 1));
  out.id = static_cast<uint16_t>(get8(in, 2) << 8 | get8(in, 3));
  out.content.assign(in.substr(kHeaderSize, content_length));
  pos_ += kHeaderSize + content_length + padding_length;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return 1;
}

size_t RecordReader::pending() const { return buf_.size() - pos_; }

bool parse_end_request(std::string_view content, EndRequest& out) {
  if (content.size() < 8) return false;
  out.app_status = get8(content, 0) << 24 | get8(content, 1) << 16 | get8(content, 2) << 8 | get8(content, 3);
  out.protocol_status = static_cast<uint8_t>(get8(content, 4));
  return true;
}

}  // namespace itk::fcgi

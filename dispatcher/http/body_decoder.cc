// Incremental Content-Length / chunked request-body decoding with LimitRequestBody.
#include "http/body_decoder.h"

#include <algorithm>

namespace itk {
namespace {
constexpr size_t kMaxTrailerBytes = 8192;  // trailers are read and dropped; bounded like a head
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

BodyDecoder::BodyDecoder(std::optional<uint64_t> content_length, bool chunked, uint64_t limit)
    : chunked_(chunked), limit_(limit), phase_(chunked ? Phase::size : Phase::length) {
  if (!chunked) {
    remaining_ = content_length.value_or(0);
    if (remaining_ == 0) {
      phase_ = Phase::done;
      state_ = State::complete;
    }
  }
}

BodyDecoder::State BodyDecoder::fail(int status, const char* why) {
  state_ = State::error;
  error_status_ = status;
  error_reason_ = why;
  return state_;
}

BodyDecoder::State BodyDecoder::feed(std::string_view in, std::string& out, size_t& consumed) {
  size_t i = 0;
  while (i < in.size() && state_ == State::more) {
    char c = in[i];
    switch (phase_) {
      case Phase::length:
      case Phase::data: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        if (limit_ != 0 && decoded_ + take > limit_) {
          consumed = i;
          return fail(413, "request body over LimitRequestBody");
        }
        out.append(in.data() + i, take);
        decoded_ += take;
        remaining_ -= take;
        i += take;
        if (remaining_ == 0) {
          if (phase_ == Phase::length) {
            phase_ = Phase::done;
            state_ = State::complete;
          } else {
            phase_ = Phase::data_cr;
          }
        }
        continue;
      }
      case Phase::size: {
        int h = hex_value(c);
        if (h >= 0) {
          if (++size_digits_ > 15) return fail(400, "chunk size too large");
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(h);
        } else if (size_digits_ == 0) {
          return fail(400, "malformed chunk size");
        } else if (c == ';') {
          phase_ = Phase::size_ext;
        } else if (c == '\r') {
          phase_ = Phase::size_lf;
        } else {
          return fail(400, "malformed chunk size");
        }
        break;
      }
      case Phase::size_ext:  // chunk extensions carry nothing itk uses; bounded by the trailer budget
        if (++trailer_bytes_ > kMaxTrailerBytes) return fail(400, "chunk extensions too long");
        if (c == '\r') phase_ = Phase::size_lf;
        else if (c == '\n') return fail(400, "bare LF in chunked body");
        break;
      case Phase::size_lf:
        if (c != '\n') return fail(400, "expected LF after chunk size");
        size_digits_ = 0;
        if (remaining_ == 0) {
          phase_ = Phase::trailer_line;
          trailer_line_len_ = 0;
        } else {
          phase_ = Phase::data;
        }
        break;
      case Phase::data_cr:
        if (c != '\r') return fail(400, "expected CRLF after chunk data");
        phase_ = Phase::data_lf;
        break;
      case Phase::data_lf:
        if (c != '\n') return fail(400, "expected CRLF after chunk data");
        phase_ = Phase::size;
        break;
      case Phase::trailer_line:
        if (++trailer_bytes_ > kMaxTrailerBytes) return fail(400, "trailer section too long");
        if (c == '\r') phase_ = Phase::trailer_lf;
        else if (c == '\n') return fail(400, "bare LF in trailer section");
        else trailer_line_len_++;
        break;
      case Phase::trailer_lf:
        if (c != '\n') return fail(400, "expected LF in trailer section");
        if (trailer_line_len_ == 0) {
          phase_ = Phase::done;
          state_ = State::complete;
        } else {
          phase_ = Phase::trailer_line;
          trailer_line_len_ = 0;
        }
        break;
      case Phase::done:
        break;
    }
    i++;
  }
  consumed = i;
  (void)chunked_;
  return state_;
}

}  // namespace itk

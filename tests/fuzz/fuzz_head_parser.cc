// Fuzz target: the request head parser (llhttp and itk's own checks). Besides memory errors (ASan, UBSan)
// it checks what itk promises of a head: the same answer however the bytes are split into reads, and a
// head taken as complete ends with CRLF CRLF and holds no CR or LF that is not part of a CRLF.
// Input: the first byte chooses where the bytes are split; the rest is what the client sent.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/http_request.h"

using itk::HeadLimits;
using itk::HeadParser;
using itk::HeadState;

namespace {


// Limits small enough that the fuzzer reaches them.
HeadLimits limits() {
  HeadLimits l;
  l.request_line = 512;
  l.field_size = 512;
  l.fields = 16;
  l.total = 4096;
  l.body = 1000;
  return l;
}

HeadState feed_in_two(HeadParser& p, std::string_view in, size_t cut) {
  HeadState st = p.parse(in.substr(0, cut));
  return st == HeadState::incomplete ? p.parse(in) : st;
}

HeadState feed_bytewise(HeadParser& p, std::string_view in) {
  HeadState st = HeadState::incomplete;
  for (size_t i = 1; i <= in.size() && st == HeadState::incomplete; i++) st = p.parse(in.substr(0, i));
  return st;
}

bool same_head(const itk::RequestHead& a, const itk::RequestHead& b) {
  return a.method == b.method && a.target == b.target && a.headers == b.headers && a.host == b.host &&
         a.chunked == b.chunked && a.content_length == b.content_length && a.keep_alive == b.keep_alive;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = in.empty() ? 0 : data[0] % (in.size() + 1);

  HeadParser whole(limits());
  HeadState a = whole.parse(in);
  HeadParser two(limits());
  HeadState b = feed_in_two(two, in, cut);
  check(a == b && whole.error_status() == two.error_status());
  if (in.size() <= 1024) {
    HeadParser bytes(limits());
    HeadState c = feed_bytewise(bytes, in);
    check(a == c && whole.error_status() == bytes.error_status());
  }
  if (a == HeadState::error) check(whole.error_status() >= 400 && whole.error_status() <= 505);
  if (a != HeadState::complete) return 0;

  check(whole.head_length() == two.head_length() && same_head(whole.head(), two.head()));
  const size_t n = whole.head_length();
  check(n >= 4 && n <= in.size() && n <= limits().total && in.substr(n - 4, 4) == "\r\n\r\n");
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '\r') check(i + 1 < n && in[i + 1] == '\n');
    if (in[i] == '\n') check(i > 0 && in[i - 1] == '\r');
  }
  for (const auto& [name, value] : whole.head().headers) {
    check(!name.empty());
    check(value.find_first_of("\r\n") == std::string::npos);
  }
  // With an absolute-form target the Host header names what the request is routed to.
  if (const std::string* host = whole.head().header("host")) check(whole.head().host == *host);
  return 0;
}

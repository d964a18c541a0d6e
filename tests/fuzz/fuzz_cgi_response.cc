// Fuzz target: the CGI response header block a script prints (RFC 3875 §6), as CGI and FastCGI responses
// are both parsed. Besides memory errors it checks what is passed on to the client: a final status,
// header names that are tokens, and no CR, LF or other control byte in a name or value.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_check.h"
#include "script/cgi_response.h"
#include "http/http_chars.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t end = itk::find_cgi_head_end(in);
  if (end == std::string_view::npos) return 0;
  check(end <= in.size() && end >= 2);
  itk::CgiHead h;
  if (!itk::parse_cgi_head(in.substr(0, end), h).empty()) return 0;
  check(h.status >= 200 && h.status <= 599);
  for (const auto& [name, value] : h.headers) {
    check(!name.empty());
    for (char c : name) check(itk::is_tchar(c));
    for (char c : value) check((static_cast<unsigned char>(c) >= 0x20 || c == '\t') && c != 0x7f);
  }
  if (h.local_redirect) check(h.location && !h.location->empty() && (*h.location)[0] == '/');
  return 0;
}

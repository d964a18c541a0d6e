// Building response heads and the small bodies itk writes itself (errors, redirects).
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace itk {

const char* status_text(int status);

// RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(time_t t);
// Parses the three date formats of RFC 9110 §5.6.7; returns -1 if not a date.
time_t parse_http_date(std::string_view s);

// A complete response (head + small HTML body) for an error or a redirect.
// `extra_headers` are full lines each ending in "\r\n" (e.g. "Allow: GET, HEAD\r\n").
// With head_only (HEAD requests) the body is left out but Content-Length still counts it.
std::string error_response(int status, bool keep_alive, std::string_view extra_headers = {},
                           bool head_only = false);

// Appends `data` to `out` as one chunk of a chunked body (RFC 9112 §7.1). Nothing for empty data: an empty
// chunk would end the body.
void append_chunk(std::string& out, std::string_view data);

// The last chunk, which ends a chunked body (no trailer fields).
constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace itk

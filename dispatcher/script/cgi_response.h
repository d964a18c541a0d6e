// The header block a CGI script prints (RFC 3875 §6), parsed into what the client is sent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace itk {

struct CgiHead {
  int status = 200;
  bool status_given = false;                // a Status line set `status`
  std::string reason;                       // empty: the standard text for `status`
  std::vector<std::pair<std::string, std::string>> headers;  // passed on, in order, as written
  std::optional<std::string> location;
  bool local_redirect = false;              // Location is a local path and no Status was given
  std::optional<uint64_t> content_length;
};

// Finds the end of the header block in `data`: the index just past the blank line (CRLF or LF
// line ends, as scripts print either), or npos while it is incomplete.
size_t find_cgi_head_end(std::string_view data);

// Parses a complete header block. Returns an error text (empty on success) for: a line without
// ':', a header name that is not a token, a bad Status, a bad Content-Length.
std::string parse_cgi_head(std::string_view block, CgiHead& out);

}  // namespace itk

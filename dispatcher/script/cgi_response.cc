// CGI response header parsing: Status, Location, Content-Length; hop-by-hop headers dropped.
#include "script/cgi_response.h"

#include <cstring>

#include "http/http_chars.h"
#include "sys/log.h"

namespace itk {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

size_t find_cgi_head_end(std::string_view data) {
  for (size_t i = 0; i < data.size(); i++) {
    if (data[i] != '\n') continue;
    if (i + 1 < data.size() && data[i + 1] == '\n') return i + 2;
    if (i + 2 < data.size() && data[i + 1] == '\r' && data[i + 2] == '\n') return i + 3;
  }
  // A script that prints no header at all but a blank first line is malformed anyway.
  return std::string_view::npos;
}

std::string parse_cgi_head(std::string_view block, CgiHead& out) {
  bool has_status = false;
  // An empty first line ends the header block at once: whatever the script meant as its Status and
  // Location would go out as body under a 200.
  if (block.substr(0, 1) == "\n" || block.substr(0, 2) == "\r\n")
    return "the output starts with a blank line: the header block is empty";
  while (!block.empty()) {
    size_t eol = block.find('\n');
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return strprintf("header line without a name and ':': `%.*s`", static_cast<int>(std::min<size_t>(line.size(), 80)),
                       line.data());
    std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!is_tchar(c)) return strprintf("invalid header name `%.*s`", static_cast<int>(name.size()), name.data());
    std::string_view value = trim(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
        return strprintf("control character in the value of %.*s", static_cast<int>(name.size()), name.data());
    if (iequals(name, "Status")) {
      if (value.size() < 3 || value[0] < '1' || value[0] > '5' || value[1] < '0' || value[1] > '9' || value[2] < '0' ||
          value[2] > '9' || (value.size() > 3 && value[3] != ' '))
        return strprintf("bad Status `%.*s` (expected e.g. `404 Not Found`)", static_cast<int>(value.size()), value.data());
      out.status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
      // 1xx are interim responses: as a final one (a 101 "upgrade" above all) the client would take
      // what follows on the connection for something else.
      if (out.status < 200)
        return strprintf("Status %d is not a final response (1xx are interim)", out.status);
      out.reason = value.size() > 4 ? std::string(trim(value.substr(4))) : std::string();
      has_status = true;
      out.status_given = true;
    } else if (iequals(name, "Location")) {
      out.location = std::string(value);
      out.headers.emplace_back("Location", std::string(value));
    } else if (iequals(name, "Content-Length")) {
      uint64_t n = 0;
      if (value.empty() || value.size() > 18) return "bad Content-Length";
      for (char c : value) {
        if (c < '0' || c > '9') return "bad Content-Length";
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (out.content_length && *out.content_length != n) return "two different Content-Length headers";
      out.content_length = n;
    } else if (iequals(name, "Connection") || iequals(name, "Keep-Alive") || iequals(name, "Transfer-Encoding") ||
               iequals(name, "Date") || iequals(name, "Server") || iequals(name, "Upgrade") ||
               iequals(name, "Proxy-Connection") || iequals(name, "TE") || iequals(name, "Trailer")) {
      // Framing and connection management belong to itk, not to the script.
    } else {
      out.headers.emplace_back(std::string(name), std::string(value));
    }
  }
  if (out.location && !has_status) {
    if (!out.location->empty() && (*out.location)[0] == '/') {
      out.local_redirect = true;
    } else {
      out.status = 302;
    }
  }
  return {};
}

}  // namespace itk

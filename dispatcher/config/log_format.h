// LogFormat: Apache's access log format strings, parsed once at load into the items a worker writes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace itk {

struct LogItem {
  enum class Kind {
    literal,          // `text` as written (%% included)
    client_ip,        // %h, %a: no reverse lookups, so both are the address
    ident,            // %l: always "-"
    user,             // %u: always "-" (itk does no HTTP authentication)
    time,             // %t, or %{strftime}t with `text` the format
    request_line,     // %r
    status,           // %s, %>s
    body_bytes_clf,   // %b: "-" for none
    body_bytes,       // %B
    duration_us,      // %D
    duration_s,       // %T
    server_name,      // %v
    host,             // %V: the Host the client asked for, else ServerName
    request_header,   // %{Name}i, `text` lower-case
    response_header,  // %{Name}o, `text` lower-case
    local_port,       // %p
    pid,              // %P
    bytes_in,         // %I
    bytes_out,        // %O
  };
  Kind kind = Kind::literal;
  std::string text;
};

struct LogFormat {
  std::vector<LogItem> items;
  std::string source;  // as configured, for messages
};

// Apache's "combined": the default of every AccessLog.
constexpr const char* kCombinedLogFormat = "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";
constexpr const char* kCommonLogFormat = "%h %l %u %t \"%r\" %>s %b";

// Parses `text` (or the nicknames `combined` and `common`); "" or why not, naming the directive.
std::string parse_log_format(std::string_view text, LogFormat& out);

}  // namespace itk

// Access log lines: one request as LogFormat describes it, formatted without any I/O so tests can check
// every directive; the worker and the acceptor write each line with one write().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/log_format.h"

namespace itk {

// What one request left for its log line. Views point at the caller's strings for the call only.
struct AccessRecord {
  std::string_view client_ip;      // "-" when unknown
  std::string_view local_port;
  timespec start{};                 // wall clock when its head was complete
  int64_t duration_us = 0;
  std::string_view request_line;   // "GET / HTTP/1.1" as sent; empty: "-"
  int status = 0;                   // 0: "-"
  uint64_t body_bytes = 0;          // response body bytes sent
  uint64_t bytes_in = 0;            // request bytes received, head included
  uint64_t bytes_out = 0;           // response bytes sent, head included
  std::string_view server_name;
  std::string_view host;            // the Host asked for; empty: server_name
  const std::vector<std::pair<std::string, std::string>>* request_headers = nullptr;  // names lower-case
  std::string_view response_head;  // the head as written ("HTTP/1.1 200 OK\r\n...\r\n\r\n"), or empty
  pid_t pid = 0;
};

// The line for `r` in `format`, with its newline.
std::string format_access_line(const LogFormat& format, const AccessRecord& r);

// "METHOD target HTTP/x.y" of a head, for %r.
std::string request_line_of(std::string_view method, std::string_view target, int major, int minor);

}  // namespace itk

// Access log line formatting: LogFormat items to text, with Apache's escaping of every value a client or
// script chose (request line, headers).
#include "http/access_log.h"

#include <cctype>

#include "sys/log.h"

namespace itk {
namespace {

using Kind = LogItem::Kind;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// The first value of `name` in a response head as written; `found` false when it has none.
std::string_view response_header(std::string_view head, std::string_view name, bool& found) {
  found = false;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos || end == start) break;
    std::string_view line = head.substr(start, end - start);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && iequals(line.substr(0, colon), name)) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      found = true;
      return v;
    }
    pos = end;
  }
  return {};
}

void append_value(std::string& out, std::string_view v, bool found) {
  if (!found || v.empty()) out += '-';
  else append_log_escaped(out, v);
}

void append_time(std::string& out, const timespec& when, const std::string& fmt) {
  tm t{};
  localtime_r(&when.tv_sec, &t);
  char buf[256];
  if (!fmt.empty()) {
    size_t n = strftime(buf, sizeof buf, fmt.c_str(), &t);
    append_log_escaped(out, std::string_view(buf, n));
    return;
  }
  strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S ", &t);
  out += buf;
  long off = t.tm_gmtoff / 60;
  out += strprintf("%c%02ld%02ld]", off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}

}  // namespace

std::string request_line_of(std::string_view method, std::string_view target, int major, int minor) {
  if (method.empty()) return {};
  return std::string(method) + " " + std::string(target) + strprintf(" HTTP/%d.%d", major, minor);
}

std::string format_access_line(const LogFormat& format, const AccessRecord& r) {
  std::string out;
  out.reserve(256);
  for (const LogItem& item : format.items) {
    switch (item.kind) {
      case Kind::literal: out += item.text; break;
      case Kind::client_ip: out += r.client_ip.empty() ? std::string_view("-") : r.client_ip; break;
      case Kind::ident:
      case Kind::user: out += '-'; break;
      case Kind::time: append_time(out, r.start, item.text); break;
      case Kind::request_line: append_value(out, r.request_line, true); break;
      case Kind::status: out += r.status ? std::to_string(r.status) : "-"; break;
      case Kind::body_bytes_clf: out += r.body_bytes ? std::to_string(r.body_bytes) : "-"; break;
      case Kind::body_bytes: out += std::to_string(r.body_bytes); break;
      case Kind::duration_us: out += std::to_string(r.duration_us); break;
      case Kind::duration_s: out += std::to_string(r.duration_us / 1000000); break;
      case Kind::server_name: append_value(out, r.server_name, true); break;
      case Kind::host: append_value(out, r.host.empty() ? r.server_name : r.host, true); break;
      case Kind::request_header: {
        bool found = false;
        std::string_view v;
        if (r.request_headers)
          for (const auto& [name, value] : *r.request_headers)
            if (name == item.text) {
              v = value;
              found = true;
              break;
            }
        append_value(out, v, found);
        break;
      }
      case Kind::response_header: {
        bool found = false;
        std::string_view v = response_header(r.response_head, item.text, found);
        append_value(out, v, found);
        break;
      }
      case Kind::local_port: out += r.local_port.empty() ? std::string_view("-") : r.local_port; break;
      case Kind::pid: out += std::to_string(r.pid); break;
      case Kind::bytes_in: out += std::to_string(r.bytes_in); break;
      case Kind::bytes_out: out += std::to_string(r.bytes_out); break;
    }
  }
  out += '\n';
  return out;
}

}  // namespace itk

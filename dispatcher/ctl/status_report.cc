// Rendering of the master's status for people (a table) and for programs (JSON).
#include "ctl/status_report.h"

#include <algorithm>

#include "ctl/json.h"

namespace itk {
namespace {

std::string pad_left(const std::string& s, size_t width) { return std::string(width > s.size() ? width - s.size() : 0, ' ') + s; }
std::string pad_right(const std::string& s, size_t width) { return s + std::string(width > s.size() ? width - s.size() : 0, ' '); }

void append_or_null(std::string& out, const std::string& s) {
  if (s.empty()) out += "null";
  else json_append_string(out, s);
}

}  // namespace

std::string format_status_table(const ServerStatus& s) {
  std::string out = "itkd " + std::to_string(s.pid) + ", generation " + std::to_string(s.generation) + ": " +
                    std::to_string(s.vhosts.size()) + " vhosts, workers " + std::to_string(s.workers) + " busy/" +
                    std::to_string(s.idle) + " idle, fastcgi " + std::to_string(s.fastcgi) + ", served " +
                    std::to_string(s.served) + ", refused " + std::to_string(s.refused) + "; cgroups: " + s.cgroups +
                    "\n";
  size_t name_width = 5;
  for (const VHostStatus& v : s.vhosts) name_width = std::max(name_width, v.name.size());
  out += pad_right("VHOST", name_width) + "   BUSY   IDLE    PHP     SERVED    503  LIMIT\n";
  for (const VHostStatus& v : s.vhosts) {
    out += pad_right(v.name, name_width) + pad_left(std::to_string(v.workers), 7) + pad_left(std::to_string(v.idle), 7) +
           pad_left(std::to_string(v.fastcgi), 7) + pad_left(std::to_string(v.served), 11) +
           pad_left(std::to_string(v.refused), 7) + "  " + std::to_string(v.workers) + "/" +
           (v.max ? std::to_string(v.max) : std::string("-")) + (v.at_limit ? " at limit" : "") + "\n";
  }
  if (!s.reload_error.empty()) out += "last reload refused: " + s.reload_error + "\n";
  return out;
}

std::string status_json(const ServerStatus& s) {
  const auto num = [](uint64_t n) { return std::to_string(n); };
  std::string out = "{\"pid\": " + num(static_cast<uint64_t>(s.pid)) + ", \"generation\": " + num(s.generation) +
                    ", \"reloads\": " + num(s.reloads) + ", \"reload_error\": ";
  append_or_null(out, s.reload_error);
  out += ", \"unit\": ";
  append_or_null(out, s.unit);
  out += ", \"cgroups\": ";
  json_append_string(out, s.cgroups);
  out += ", \"acceptors\": {\"busy\": " + num(s.acceptors_busy) + ", \"idle\": " + num(s.acceptors_idle) + "}" +
         ", \"workers\": " + num(s.workers) + ", \"idle\": " + num(s.idle) + ", \"fastcgi\": " + num(s.fastcgi) +
         ", \"served\": " + num(s.served) + ", \"refused\": " + num(s.refused) + ", \"at_limit\": " + num(s.at_limit) +
         ", \"vhosts\": [";
  for (size_t i = 0; i < s.vhosts.size(); i++) {
    const VHostStatus& v = s.vhosts[i];
    if (i) out += ", ";
    out += "{\"name\": ";
    json_append_string(out, v.name);
    out += ", \"workers\": " + num(v.workers) + ", \"idle\": " + num(v.idle) + ", \"fastcgi\": " + num(v.fastcgi) +
           ", \"served\": " + num(v.served) + ", \"refused\": " + num(v.refused) + ", \"max_clients\": " + num(v.max) +
           ", \"at_limit\": " + (v.at_limit ? "true" : "false") + "}";
  }
  out += "]}\n";
  return out;
}

}  // namespace itk

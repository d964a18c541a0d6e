// The control socket's answer: encoding by the master, decoding by itkctl.
#include "ctl/control_protocol.h"

#include <cstdlib>

namespace itk {
namespace {

// Percent-encodes what would end a field or a line, and '%' itself.
void put(std::string& out, std::string_view key, std::string_view value) {
  static const char kHex[] = "0123456789ABCDEF";
  out += ' ';
  out += key;
  out += '=';
  for (char ch : value) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '%' || c == '=' || c >= 0x7F) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
}

void put(std::string& out, std::string_view key, uint64_t value) { put(out, key, std::to_string(value)); }

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string unescape(std::string_view v) {
  std::string s;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
      s += static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2]));
      i += 2;
    } else {
      s += v[i];
    }
  }
  return s;
}

uint64_t number(const std::string& v) { return strtoull(v.c_str(), nullptr, 10); }

// Calls `field(key, value)` for each `key=value` of a record's line after its first word.
template <typename F>
void fields(std::string_view line, F field) {
  size_t pos = line.find(' ');
  while (pos != std::string_view::npos) {
    size_t start = pos + 1;
    pos = line.find(' ', start);
    std::string_view item = line.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
    size_t eq = item.find('=');
    if (eq != std::string_view::npos) field(item.substr(0, eq), unescape(item.substr(eq + 1)));
  }
}

}  // namespace

std::string encode_status(const ServerStatus& s) {
  std::string out = "itk-control 1\nserver";
  put(out, "pid", static_cast<uint64_t>(s.pid));
  put(out, "generation", s.generation);
  put(out, "reloads", s.reloads);
  put(out, "acceptors_busy", s.acceptors_busy);
  put(out, "acceptors_idle", s.acceptors_idle);
  put(out, "workers", s.workers);
  put(out, "idle", s.idle);
  put(out, "fastcgi", s.fastcgi);
  put(out, "served", s.served);
  put(out, "refused", s.refused);
  put(out, "at_limit", s.at_limit);
  put(out, "cgroups", s.cgroups);
  put(out, "unit", s.unit);
  put(out, "config", s.config_file);
  put(out, "config_dir", s.config_dir);
  put(out, "reload_error", s.reload_error);
  out += '\n';
  for (const VHostStatus& v : s.vhosts) {
    out += "vhost";
    put(out, "name", v.name);
    put(out, "workers", v.workers);
    put(out, "idle", v.idle);
    put(out, "fastcgi", v.fastcgi);
    put(out, "served", v.served);
    put(out, "refused", v.refused);
    put(out, "max", v.max);
    put(out, "at_limit", v.at_limit ? 1 : 0);
    out += '\n';
  }
  out += "end\n";
  return out;
}

bool decode_status(std::string_view text, ServerStatus& out, std::string& error) {
  out = ServerStatus{};
  bool header = false, end = false;
  size_t start = 0;
  while (start < text.size() && !end) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) break;  // a line cut short: no "end" follows
    std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    std::string_view kind = line.substr(0, line.find(' '));
    if (!header) {
      if (line != "itk-control 1") {
        error = "not an itk control answer: " + std::string(line.substr(0, 80));
        return false;
      }
      header = true;
    } else if (kind == "server") {
      fields(line, [&](std::string_view k, std::string v) {
        if (k == "pid") out.pid = static_cast<pid_t>(number(v));
        else if (k == "generation") out.generation = number(v);
        else if (k == "reloads") out.reloads = number(v);
        else if (k == "acceptors_busy") out.acceptors_busy = number(v);
        else if (k == "acceptors_idle") out.acceptors_idle = number(v);
        else if (k == "workers") out.workers = number(v);
        else if (k == "idle") out.idle = number(v);
        else if (k == "fastcgi") out.fastcgi = number(v);
        else if (k == "served") out.served = number(v);
        else if (k == "refused") out.refused = number(v);
        else if (k == "at_limit") out.at_limit = number(v);
        else if (k == "cgroups") out.cgroups = std::move(v);
        else if (k == "unit") out.unit = std::move(v);
        else if (k == "config") out.config_file = std::move(v);
        else if (k == "config_dir") out.config_dir = std::move(v);
        else if (k == "reload_error") out.reload_error = std::move(v);
      });
    } else if (kind == "vhost") {
      VHostStatus& vs = out.vhosts.emplace_back();
      fields(line, [&](std::string_view k, std::string v) {
        if (k == "name") vs.name = std::move(v);
        else if (k == "workers") vs.workers = number(v);
        else if (k == "idle") vs.idle = number(v);
        else if (k == "fastcgi") vs.fastcgi = number(v);
        else if (k == "served") vs.served = number(v);
        else if (k == "refused") vs.refused = number(v);
        else if (k == "max") vs.max = number(v);
        else if (k == "at_limit") vs.at_limit = number(v) != 0;
      });
    } else if (line == "end") {
      end = true;
    } else if (kind == "error") {
      error = "the master says: " + unescape(line.substr(std::min(line.size(), size_t{6})));
      return false;
    }
  }
  if (!end) {
    error = header ? "the answer was cut short" : "empty answer";
    return false;
  }
  return true;
}

}  // namespace itk

// Response heads and the small bodies itk writes itself; HTTP dates formatted and parsed without the C
// locale machinery, so the result never depends on LANG/LC_TIME and needs no lock after fork.
#include "http/http_response.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace itk {

const char* status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace {

constexpr const char* kDays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                      "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// IMF-fixdate has a four-digit year; times outside years 0000-9999 are clamped rather than printed
// in a form no client parses.
constexpr int64_t kMinTime = -62167219200;  // 0000-01-01T00:00:00Z
constexpr int64_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil); exact for
// every year, independent of TZ and of the libc's time_t range checks.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kLen[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kLen[m - 1];
}

void put2(std::string& out, int v) {
  out.push_back(static_cast<char>('0' + v / 10 % 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

// A cursor over the date text; every accessor fails (returns false) instead of reading past the end.
struct DateScanner {
  std::string_view s;
  size_t pos = 0;

  bool literal(std::string_view lit) {
    if (s.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
  }
  // Exactly `n` digits.
  bool digits(size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s[pos + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos += n;
    out = v;
    return true;
  }
  bool month(unsigned& out) {
    for (unsigned i = 0; i < 12; ++i) {
      if (literal(kMonths[i])) {
        out = i + 1;
        return true;
      }
    }
    return false;
  }
  // "HH:MM:SS"
  bool time_of_day(int& h, int& m, int& sec) {
    return digits(2, h) && literal(":") && digits(2, m) && literal(":") && digits(2, sec);
  }
  bool at_end() const { return pos == s.size(); }
};

// RFC 850 two-digit years: RFC 9110 §5.6.7 says a year that looks more than 50 years in the future
// is the most recent past year with the same last two digits.
int64_t expand_two_digit_year(int yy) {
  time_t now = time(nullptr);
  struct tm tm {};
  int64_t current = 2000;
  if (gmtime_r(&now, &tm) != nullptr) current = static_cast<int64_t>(tm.tm_year) + 1900;
  int64_t year = current - current % 100 + yy;
  if (year > current + 50) year -= 100;
  return year;
}

time_t make_time(int64_t year, unsigned month, int day, int hour, int minute, int second) {
  if (month < 1 || month > 12 || day < 1 || static_cast<unsigned>(day) > days_in_month(year, month) ||
      hour > 23 || minute > 59 || second > 60) {
    return -1;
  }
  // A leap second names the same instant a POSIX clock calls :59 plus one, which is the next minute.
  int64_t t = days_from_civil(year, month, static_cast<unsigned>(day)) * 86400 + hour * 3600 +
              minute * 60 + second;
  if (t < kMinTime || t > kMaxTime + 1) return -1;
  return static_cast<time_t>(t);
}

}  // namespace

std::string http_date(time_t t) {
  int64_t v = static_cast<int64_t>(t);
  if (v < kMinTime) v = kMinTime;
  if (v > kMaxTime) v = kMaxTime;
  int64_t days = v / 86400;
  int64_t secs = v % 86400;
  if (secs < 0) {
    secs += 86400;
    days -= 1;
  }
  // civil_from_days (inverse of days_from_civil).
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned day = doy - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = static_cast<int64_t>(yoe) + era * 400 + (month <= 2);
  // 1970-01-01 was a Thursday (index 4).
  const int64_t wday = ((days % 7) + 7 + 4) % 7;

  std::string out;
  out.reserve(29);
  out += kDays[wday];
  out += ", ";
  put2(out, static_cast<int>(day));
  out.push_back(' ');
  out += kMonths[month - 1];
  out.push_back(' ');
  put2(out, static_cast<int>(year / 100));
  put2(out, static_cast<int>(year % 100));
  out.push_back(' ');
  put2(out, static_cast<int>(secs / 3600));
  out.push_back(':');
  put2(out, static_cast<int>(secs / 60 % 60));
  out.push_back(':');
  put2(out, static_cast<int>(secs % 60));
  out += " GMT";
  return out;
}

time_t parse_http_date(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);

  DateScanner sc{s};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  unsigned month = 0;

  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  for (const char* name : kDays) {
    sc.pos = 0;
    if (!sc.literal(name) || !sc.literal(", ")) continue;
    if (sc.digits(2, day) && sc.literal(" ") && sc.month(month) && sc.literal(" ") && sc.digits(4, year) &&
        sc.literal(" ") && sc.time_of_day(hour, minute, second) && sc.literal(" GMT") && sc.at_end()) {
      return make_time(year, month, day, hour, minute, second);
    }
    return -1;
  }

  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
  for (const char* name : kLongDays) {
    sc.pos = 0;
    if (!sc.literal(name) || !sc.literal(", ")) continue;
    if (sc.digits(2, day) && sc.literal("-") && sc.month(month) && sc.literal("-") && sc.digits(2, year) &&
        sc.literal(" ") && sc.time_of_day(hour, minute, second) && sc.literal(" GMT") && sc.at_end()) {
      return make_time(expand_two_digit_year(year), month, day, hour, minute, second);
    }
    return -1;
  }

  // asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space, or two digits)
  for (const char* name : kDays) {
    sc.pos = 0;
    if (!sc.literal(name) || !sc.literal(" ")) continue;
    if (!sc.month(month) || !sc.literal(" ")) return -1;
    if (sc.literal(" ")) {
      if (!sc.digits(1, day)) return -1;
    } else if (!sc.digits(2, day)) {
      return -1;
    }
    if (sc.literal(" ") && sc.time_of_day(hour, minute, second) && sc.literal(" ") && sc.digits(4, year) &&
        sc.at_end()) {
      return make_time(year, month, day, hour, minute, second);
    }
    return -1;
  }
  return -1;
}

std::string error_response(int status, bool keep_alive, std::string_view extra_headers, bool head_only) {
  const char* text = status_text(status);
  std::string out;
  out.reserve(256 + extra_headers.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out.push_back(' ');
  out += text;
  out += "\r\nDate: ";
  out += http_date(time(nullptr));
  out += "\r\nServer: itk\r\n";

  // RFC 9110 §6.4.1, §15.4.5: 1xx, 204 and 304 never have content, and a Content-Length there would
  // make a client wait for bytes that never come (304) or be invalid (1xx, 204).
  const bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
  std::string body;
  if (!bodiless) {
    std::string title = std::to_string(status) + " " + text;
    body = "<!DOCTYPE html>\n<html><head><title>" + title + "</title></head><body><h1>" + title +
           "</h1></body></html>\n";
    out += "Content-Type: text/html; charset=utf-8\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out.append(extra_headers.data(), extra_headers.size());
  out += "\r\n";
  if (!head_only) out += body;
  return out;
}

void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", data.size());
  out.append(size, static_cast<size_t>(n));
  out.append(data);
  out += "\r\n";
}

}  // namespace itk

// Tests for status texts, HTTP date formatting/parsing (all three RFC 9110 formats) and error responses.
#include "http/http_response.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

namespace itk {
namespace {

constexpr time_t kRfcExample = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7)

TEST(StatusText, CodesItkUses) {
  EXPECT_STREQ(status_text(200), "OK");
  EXPECT_STREQ(status_text(206), "Partial Content");
  EXPECT_STREQ(status_text(301), "Moved Permanently");
  EXPECT_STREQ(status_text(302), "Found");
  EXPECT_STREQ(status_text(304), "Not Modified");
  EXPECT_STREQ(status_text(400), "Bad Request");
  EXPECT_STREQ(status_text(403), "Forbidden");
  EXPECT_STREQ(status_text(404), "Not Found");
  EXPECT_STREQ(status_text(405), "Method Not Allowed");
  EXPECT_STREQ(status_text(408), "Request Timeout");
  EXPECT_STREQ(status_text(413), "Content Too Large");
  EXPECT_STREQ(status_text(414), "URI Too Long");
  EXPECT_STREQ(status_text(416), "Range Not Satisfiable");
  EXPECT_STREQ(status_text(421), "Misdirected Request");
  EXPECT_STREQ(status_text(431), "Request Header Fields Too Large");
  EXPECT_STREQ(status_text(500), "Internal Server Error");
  EXPECT_STREQ(status_text(501), "Not Implemented");
  EXPECT_STREQ(status_text(502), "Bad Gateway");
  EXPECT_STREQ(status_text(503), "Service Unavailable");
  EXPECT_STREQ(status_text(504), "Gateway Timeout");
  EXPECT_STREQ(status_text(505), "HTTP Version Not Supported");
}

TEST(StatusText, EveryCommonCodeHasText) {
  for (int code : {100, 101, 201, 202, 203, 204, 205, 300, 303, 307, 308, 401, 402, 406, 407, 409, 410, 411,
                   412, 415, 417, 422, 426, 428, 429}) {
    EXPECT_STRNE(status_text(code), "Unknown") << code;
  }
}

TEST(StatusText, UnknownCode) {
  EXPECT_STREQ(status_text(299), "Unknown");
  EXPECT_STREQ(status_text(0), "Unknown");
  EXPECT_STREQ(status_text(-1), "Unknown");
}

TEST(HttpDate, KnownValues) {
  EXPECT_EQ(http_date(kRfcExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
  EXPECT_EQ(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(http_date(2147483648LL), "Tue, 19 Jan 2038 03:14:08 GMT");
  EXPECT_EQ(http_date(4102444800LL), "Fri, 01 Jan 2100 00:00:00 GMT");
}

TEST(HttpDate, ClampsToFourDigitYears) {
  EXPECT_EQ(http_date(static_cast<time_t>(1) << 60), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(http_date(-(static_cast<time_t>(1) << 60)), "Sat, 01 Jan 0000 00:00:00 GMT");
}

// gmtime_r + strftime in the C locale is the reference; itk's formatter must agree everywhere.
TEST(HttpDate, AgreesWithGmtime) {
  unsigned seed = 12345;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1103515245u + 12345u;
    time_t t = static_cast<time_t>(seed) * 7 - 4000000000LL + i * 86399LL;
    struct tm tm {};
    ASSERT_NE(gmtime_r(&t, &tm), nullptr);
    char buf[64];
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ASSERT_EQ(http_date(t), buf) << t;
  }
}

TEST(HttpDate, IndependentOfTimeZone) {
  const char* old = getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", "America/New_York", 1);
  tzset();
  EXPECT_EQ(http_date(kRfcExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);
  if (old) {
    setenv("TZ", saved.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

TEST(ParseHttpDate, ImfFixdate) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kRfcExample);
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
  EXPECT_EQ(parse_http_date("Tue, 19 Jan 2038 03:14:08 GMT"), 2147483648LL);
  // Surrounding whitespace of a field value is not part of it.
  EXPECT_EQ(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\t"), kRfcExample);
}

TEST(ParseHttpDate, Rfc850) {
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kRfcExample);
  // Two-digit years within 50 years of now are in this century.
  EXPECT_EQ(parse_http_date("Thursday, 01-Jan-15 00:00:00 GMT"), 1420070400);
  EXPECT_EQ(parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT"), 946684800);
}

TEST(ParseHttpDate, Asctime) {
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kRfcExample);
  EXPECT_EQ(parse_http_date("Wed Nov 16 08:49:37 1994"), kRfcExample + 10 * 86400);
  EXPECT_EQ(parse_http_date("Thu Jan  1 00:00:00 1970"), 0);
}

TEST(ParseHttpDate, LeapSecondIsNextSecond) {
  EXPECT_EQ(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT"), 1483228800);
}

TEST(ParseHttpDate, Garbage) {
  const char* bad[] = {
      "",
      "garbage",
      "0",
      "784111777",
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 06 Nov 1994 08:49:37 gmt",
      "Sun, 06 Nov 1994 08:49:37",
      "Sun, 06 Nov 1994 08:49:37 GMT extra",
      "Sun, 6 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun 06 Nov 1994 08:49:37 GMT",
      "Sun,  06 Nov 1994 08:49:37 GMT",
      "sun, 06 nov 1994 08:49:37 GMT",
      "Xyz, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Xyz 1994 08:49:37 GMT",
      "Sun, 00 Nov 1994 08:49:37 GMT",
      "Sun, 31 Nov 1994 08:49:37 GMT",
      "Sat, 29 Feb 2003 00:00:00 GMT",
      "Mon, 29 Feb 1900 00:00:00 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",
      "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 06 Nov 1994 8:49:37 GMT",
      "Sun, 06 Nov 1994 08-49-37 GMT",
      "Sun, 06 Nov +994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:3x GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sunday, 06 Nov 94 08:49:37 GMT",
      "Sun, 06-Nov-94 08:49:37 GMT",
      "Sunday, 06-Nov-94 08:49:37",
      "Sun Nov 6 08:49:37 1994",
      "Sun Nov  6 08:49:37 94",
      "Sun Nov  6 08:49:37 1994 GMT",
      "Sun, Nov  6 08:49:37 1994",
      "Sun Nov   6 08:49:37 1994",
      "Sun Nov 06  08:49:37 1994",
  };
  for (const char* s : bad) EXPECT_EQ(parse_http_date(s), -1) << '"' << s << '"';
}

TEST(ParseHttpDate, EveryTruncationIsRejected) {
  for (std::string full : {std::string("Sun, 06 Nov 1994 08:49:37 GMT"), std::string("Sunday, 06-Nov-94 08:49:37 GMT"),
                           std::string("Sun Nov  6 08:49:37 1994")}) {
    for (size_t n = 0; n < full.size(); ++n) {
      std::string prefix = full.substr(0, n);
      // A prefix ending in whitespace trims to a shorter prefix; all of them must fail.
      EXPECT_EQ(parse_http_date(prefix), -1) << '"' << prefix << '"';
    }
    EXPECT_NE(parse_http_date(full), -1) << full;
  }
}

TEST(ParseHttpDate, EmbeddedNulIsRejected) {
  std::string s("Sun, 06 Nov 1994 08:49:37 GMT");
  s[3] = '\0';
  EXPECT_EQ(parse_http_date(s), -1);
  EXPECT_EQ(parse_http_date(std::string("Sun, 06 Nov 1994 08:49:37 GMT\0", 30)), -1);
}

TEST(ParseHttpDate, RoundTripsHttpDate) {
  for (time_t t : {time_t{0}, time_t{1}, kRfcExample, time_t{951782400}, time_t{1700000000}, time_t{2147483647},
                   time_t{2147483648LL}, time_t{253402300799LL}, time_t{-86400}}) {
    EXPECT_EQ(parse_http_date(http_date(t)), t) << t;
  }
}

// Splits a response into head lines and body.
struct Parsed {
  std::string status_line;
  std::vector<std::string> headers;
  std::string body;
  bool complete = false;
};

Parsed parse(const std::string& r) {
  Parsed p;
  size_t end = r.find("\r\n\r\n");
  if (end == std::string::npos) return p;
  std::string head = r.substr(0, end + 2);
  p.body = r.substr(end + 4);
  size_t pos = 0;
  bool first = true;
  while (pos < head.size()) {
    size_t nl = head.find("\r\n", pos);
    std::string line = head.substr(pos, nl - pos);
    if (first) {
      p.status_line = line;
      first = false;
    } else {
      p.headers.push_back(line);
    }
    pos = nl + 2;
  }
  p.complete = true;
  return p;
}

std::string header(const Parsed& p, const std::string& name) {
  for (const auto& h : p.headers) {
    if (h.compare(0, name.size() + 2, name + ": ") == 0) return h.substr(name.size() + 2);
  }
  return "<absent>";
}

TEST(ErrorResponse, NotFoundKeepAlive) {
  std::string r = error_response(404, true);
  Parsed p = parse(r);
  ASSERT_TRUE(p.complete) << r;
  EXPECT_EQ(p.status_line, "HTTP/1.1 404 Not Found");
  ASSERT_GE(p.headers.size(), 5u);
  EXPECT_EQ(p.headers[0].substr(0, 6), "Date: ");
  EXPECT_NE(parse_http_date(header(p, "Date")), -1);
  EXPECT_LE(std::llabs(static_cast<long long>(parse_http_date(header(p, "Date")) - time(nullptr))), 5);
  EXPECT_EQ(p.headers[1], "Server: itk");
  EXPECT_EQ(p.headers[2], "Content-Type: text/html; charset=utf-8");
  EXPECT_EQ(p.headers[3], "Content-Length: " + std::to_string(p.body.size()));
  EXPECT_EQ(p.headers[4], "Connection: keep-alive");
  EXPECT_EQ(p.headers.size(), 5u);
  EXPECT_NE(p.body.find("404 Not Found"), std::string::npos);
  EXPECT_NE(p.body.find("<html>"), std::string::npos);
}

TEST(ErrorResponse, CloseAndExtraHeaders) {
  std::string r = error_response(405, false, "Allow: GET, HEAD\r\n");
  Parsed p = parse(r);
  ASSERT_TRUE(p.complete);
  EXPECT_EQ(p.status_line, "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(header(p, "Connection"), "close");
  EXPECT_EQ(header(p, "Allow"), "GET, HEAD");
  EXPECT_EQ(header(p, "Content-Length"), std::to_string(p.body.size()));
  EXPECT_NE(p.body.find("405 Method Not Allowed"), std::string::npos);
}

TEST(ErrorResponse, Redirect) {
  std::string r = error_response(301, true, "Location: /dir/?a=1\r\n");
  Parsed p = parse(r);
  ASSERT_TRUE(p.complete);
  EXPECT_EQ(p.status_line, "HTTP/1.1 301 Moved Permanently");
  EXPECT_EQ(header(p, "Location"), "/dir/?a=1");
  EXPECT_EQ(header(p, "Content-Length"), std::to_string(p.body.size()));
}

TEST(ErrorResponse, ServiceUnavailableWithRetryAfter) {
  Parsed p = parse(error_response(503, false, "Retry-After: 5\r\n"));
  ASSERT_TRUE(p.complete);
  EXPECT_EQ(p.status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(header(p, "Retry-After"), "5");
}

TEST(ErrorResponse, HeadOnlyKeepsLengthDropsBody) {
  std::string full = error_response(403, true);
  std::string head = error_response(403, true, {}, true);
  Parsed pf = parse(full);
  Parsed ph = parse(head);
  ASSERT_TRUE(pf.complete);
  ASSERT_TRUE(ph.complete);
  EXPECT_TRUE(ph.body.empty());
  EXPECT_FALSE(pf.body.empty());
  EXPECT_EQ(header(ph, "Content-Length"), std::to_string(pf.body.size()));
  EXPECT_EQ(head.size() + pf.body.size(), full.size());
}

TEST(ErrorResponse, NotModifiedHasNoBodyNorLength) {
  for (bool head_only : {false, true}) {
    std::string r = error_response(304, true, "ETag: \"1-2\"\r\n", head_only);
    Parsed p = parse(r);
    ASSERT_TRUE(p.complete);
    EXPECT_EQ(p.status_line, "HTTP/1.1 304 Not Modified");
    EXPECT_TRUE(p.body.empty());
    EXPECT_EQ(header(p, "Content-Length"), "<absent>");
    EXPECT_EQ(header(p, "Content-Type"), "<absent>");
    EXPECT_EQ(header(p, "ETag"), "\"1-2\"");
    EXPECT_EQ(header(p, "Connection"), "keep-alive");
  }
}

TEST(ErrorResponse, InformationalAndNoContentHaveNoBody) {
  for (int code : {100, 101, 204}) {
    Parsed p = parse(error_response(code, true));
    ASSERT_TRUE(p.complete);
    EXPECT_TRUE(p.body.empty()) << code;
    EXPECT_EQ(header(p, "Content-Length"), "<absent>") << code;
  }
}

TEST(ErrorResponse, EveryStatusIsWellFormed) {
  for (int code : {400, 403, 404, 405, 408, 413, 414, 416, 421, 431, 500, 501, 502, 503, 504, 505}) {
    std::string r = error_response(code, code % 2 == 0);
    Parsed p = parse(r);
    ASSERT_TRUE(p.complete) << code;
    EXPECT_EQ(p.status_line, "HTTP/1.1 " + std::to_string(code) + " " + status_text(code));
    EXPECT_EQ(header(p, "Content-Length"), std::to_string(p.body.size()));
    // No bare LF anywhere in the head.
    std::string head = r.substr(0, r.find("\r\n\r\n") + 4);
    for (size_t i = 0; i < head.size(); ++i) {
      if (head[i] == '\n') {
        EXPECT_EQ(head[i - 1], '\r') << code;
      }
    }
  }
}

}  // namespace
}  // namespace itk

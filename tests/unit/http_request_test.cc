// Request-head parser: grammar via llhttp, limits and smuggling defences added by itk.
#include "http/http_request.h"

#include <gtest/gtest.h>

#include <string>

using itk::HeadLimits;
using itk::HeadParser;
using itk::HeadState;

namespace {

struct Parsed {
  HeadState state;
  int status;
  size_t head_length;
  itk::RequestHead head;
};

Parsed parse(const std::string& raw, HeadLimits lim = {}) {
  HeadParser p(lim);
  HeadState st = p.parse(raw);
  return {st, p.error_status(), p.head_length(), p.head()};
}

// Feeds one byte at a time, as a slow client would.
Parsed parse_trickle(const std::string& raw, HeadLimits lim = {}) {
  HeadParser p(lim);
  HeadState st = HeadState::incomplete;
  for (size_t i = 1; i <= raw.size() && st == HeadState::incomplete; i++) st = p.parse(std::string_view(raw).substr(0, i));
  return {st, p.error_status(), p.head_length(), p.head()};
}

}  // namespace

TEST(HttpRequest, SimpleGet) {
  std::string raw = "GET /index.html?x=1 HTTP/1.1\r\nHost: Example.org:8080\r\nAccept: */*  \r\n\r\n";
  Parsed r = parse(raw);
  ASSERT_EQ(r.state, HeadState::complete);
  EXPECT_EQ(r.head_length, raw.size());
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.target, "/index.html?x=1");
  EXPECT_EQ(r.head.host, "Example.org:8080");
  ASSERT_NE(r.head.header("accept"), nullptr);
  EXPECT_EQ(*r.head.header("accept"), "*/*");
  EXPECT_TRUE(r.head.keep_alive);
  EXPECT_FALSE(r.head.has_body());
}

TEST(HttpRequest, TrickledBytesGiveTheSameResult) {
  std::string raw = "GET /a HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n";
  Parsed r = parse_trickle(raw);
  ASSERT_EQ(r.state, HeadState::complete);
  EXPECT_EQ(r.head.target, "/a");
  EXPECT_EQ(*r.head.header("x-long"), "0123456789");
  EXPECT_EQ(r.head_length, raw.size());
}

TEST(HttpRequest, IncompleteHeadWaits) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n").state, HeadState::incomplete);
  EXPECT_EQ(parse("GET /slow HT").state, HeadState::incomplete);
}

TEST(HttpRequest, PipelinedRequestsStopAtTheFirstHead) {
  std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  Parsed r = parse(first + "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.state, HeadState::complete);
  EXPECT_EQ(r.head_length, first.size());
  EXPECT_EQ(r.head.target, "/1");
}

TEST(HttpRequest, BodyAfterHeadIsNotScannedAsHead) {
  std::string head = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
  Parsed r = parse(head + " \n\n\n ");
  ASSERT_EQ(r.state, HeadState::complete);
  EXPECT_EQ(r.head_length, head.size());
  EXPECT_EQ(r.head.content_length.value_or(0), 5u);
}

TEST(HttpRequest, Http10KeepAliveOnlyWhenAsked) {
  EXPECT_FALSE(parse("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").head.keep_alive);
}

TEST(HttpRequest, Http10WithoutHostIsFine) {
  Parsed r = parse("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.state, HeadState::complete);
  EXPECT_EQ(r.head.host, "");
}

TEST(HttpRequest, AbsoluteFormTakesHostFromTarget) {
  Parsed r = parse("GET http://Other.example/p?q HTTP/1.1\r\nHost: ignored\r\n\r\n");
  ASSERT_EQ(r.state, HeadState::complete);
  EXPECT_EQ(r.head.host, "Other.example");
  EXPECT_EQ(r.head.target, "/p?q");
  // The Host header takes the authority too: scripts see HTTP_HOST of the vhost that serves them.
  ASSERT_NE(r.head.header("host"), nullptr);
  EXPECT_EQ(*r.head.header("host"), "Other.example");
  Parsed old = parse("GET http://b.test:8080/x HTTP/1.0\r\n\r\n");
  ASSERT_EQ(old.state, HeadState::complete);
  ASSERT_NE(old.head.header("host"), nullptr);
  EXPECT_EQ(*old.head.header("host"), "b.test:8080");
  Parsed bare = parse("GET http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n");
  EXPECT_EQ(bare.head.target, "/");
}

struct BadCase {
  const char* name;
  std::string raw;
  int status;
};

class HttpRequestBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(HttpRequestBad, IsRefusedWithStatus) {
  const BadCase& c = GetParam();
  Parsed r = parse(c.raw);
  EXPECT_EQ(r.state, HeadState::error) << c.name;
  EXPECT_EQ(r.status, c.status) << c.name;
  Parsed t = parse_trickle(c.raw);
  EXPECT_EQ(t.state, HeadState::error) << c.name << " (trickled)";
  EXPECT_EQ(t.status, c.status) << c.name << " (trickled)";
}

INSTANTIATE_TEST_SUITE_P(
    BadInput, HttpRequestBad,
    ::testing::Values(
        BadCase{"garbage", "HELLO\r\n\r\n", 400}, BadCase{"no version", "GET /\r\n\r\n", 400},
        BadCase{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
        BadCase{"bare LF in one header", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
        BadCase{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n", 400},
        BadCase{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400},
        BadCase{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        BadCase{"bad header name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400},
        BadCase{"space before colon other header", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400},
        BadCase{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        BadCase{"duplicate CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
        BadCase{"duplicate equal CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400},
        BadCase{"no Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
        BadCase{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        BadCase{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        BadCase{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505},
        BadCase{"unknown method", "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        BadCase{"TE not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        BadCase{"unknown Expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
        // A CR not followed by LF, in every place of a head (llhttp 8 ends a head at CR LF CR and any byte).
        BadCase{"bare CR in the request line", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        BadCase{"bare CR after the version", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
        BadCase{"bare CR in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
        BadCase{"bare CR hides a header", "GET / HTTP/1.1\r\nHost: a\r\nx:\rXTransfer-Encoding: chunked\r\n\r\n", 400},
        BadCase{"bare CR as the terminator", "GET / HTTP/1.1\r\nHost: a\r\n\rSome-Header: x\r\n\r\n", 400},
        BadCase{"CR CR LF as the terminator", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400},
        BadCase{"bare CR before a header name", "GET / HTTP/1.1\r\nHost: a\r\n\rX: y\r\n\r\n", 400},
        BadCase{"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400},
        BadCase{"empty Transfer-Encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400},
        BadCase{"empty Transfer-Encoding and CL",
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello", 400},
        BadCase{"chunked and an empty Transfer-Encoding",
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n", 400},
        BadCase{"unknown method with bare LF later", "BREW /pot HTTP/1.1\nHost: a\n\n", 501},
        // The version is judged at the end of the head; the bare LF comes first.
        BadCase{"HTTP/2.0 with bare LF later", "GET / HTTP/2.0\r\nHost: a\nX: y\r\n\r\n", 400}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(HttpRequestLimits, RequestLineOverLimitIs414) {
  HeadLimits lim;
  lim.request_line = 300;
  Parsed r = parse("GET /" + std::string(400, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", lim);
  EXPECT_EQ(r.state, HeadState::error);
  EXPECT_EQ(r.status, 414);
  // Just under the limit is fine.
  Parsed ok = parse("GET /" + std::string(250, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", lim);
  EXPECT_EQ(ok.state, HeadState::complete);
}

TEST(HttpRequestLimits, FieldOverLimitIs431) {
  HeadLimits lim;
  lim.field_size = 100;
  Parsed r = parse("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(200, 'b') + "\r\n\r\n", lim);
  EXPECT_EQ(r.status, 431);
  Parsed ok = parse("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(80, 'b') + "\r\n\r\n", lim);
  EXPECT_EQ(ok.state, HeadState::complete);
}

TEST(HttpRequestLimits, TooManyFieldsIs431) {
  HeadLimits lim;
  lim.fields = 5;
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 5; i++) raw += "X-" + std::to_string(i) + ": v\r\n";
  Parsed r = parse(raw + "\r\n", lim);
  EXPECT_EQ(r.status, 431);
}

TEST(HttpRequestLimits, HeadOverTotalIs431) {
  HeadLimits lim;
  lim.total = 4096;
  lim.fields = 1000;
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; i++) raw += "X-" + std::to_string(i) + ": " + std::string(50, 'v') + "\r\n";
  Parsed r = parse(raw + "\r\n", lim);
  EXPECT_EQ(r.state, HeadState::error);
  EXPECT_EQ(r.status, 431);
}

TEST(HttpRequestLimits, ContentLengthOverLimitIs413) {
  HeadLimits lim;
  lim.body = 1000;
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", lim).status, 413);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n", lim).state, HeadState::complete);
  lim.body = 0;  // unlimited
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", lim).state, HeadState::complete);
}

TEST(HttpRequest, ChunkedAndExpect) {
  Parsed r = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(r.state, HeadState::complete);
  EXPECT_TRUE(r.head.chunked);
  EXPECT_TRUE(r.head.expect_continue);
  EXPECT_TRUE(r.head.has_body());
}

TEST(HttpRequest, WipeForgetsTheParsedHead) {
  HeadParser p(HeadLimits{});
  ASSERT_EQ(p.parse("GET /secret?token=abc HTTP/1.1\r\nHost: a\r\nCookie: session=xyz\r\n\r\n"), HeadState::complete);
  p.wipe();
  EXPECT_EQ(p.head().target, "");
  EXPECT_EQ(p.head().method, "");
  EXPECT_TRUE(p.head().headers.empty());
  EXPECT_EQ(p.head().header("cookie"), nullptr);
}

// The answer to a request never depends on how its bytes were split into reads: every split in two,
// and one byte at a time, gives what the whole gives.
TEST(HttpRequest, EverySplitGivesTheSameAnswer) {
  const std::string cases[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\rSome-Header: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nx:\rXTransfer-Encoding: chunked\r\n\r\n",
      "BREW /pot HTTP/1.1\nHost: a\n\n",
      "GET / HTTP/2.0\r\nHost: a\nX: y\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/3\r\nHost: a\r\n\r\n",
      "G\rET / HTTP/1.1\r\n\r\n",
      "GET http://b.test/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n",
      "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",
      // found by fuzzing: llhttp refuses HTTP/0.1 at once, 505 or 400 depends on what follows it
      "POST / HTTP/0.1odHost: a\r\nCondent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/0.1\r\nHost: a\r\n\r\n",
      // found by fuzzing: a limit must not be judged on the part of a header name a read boundary cut off
      "GET /\r\n" + [] {
        std::string many;
        for (int i = 0; i < 100; i++) many += "o:\r\n";
        return many;
      }() + "A)",
      "GET /" + std::string(9000, 'a') + "\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-" + std::string(9000, 'b') + "(: c\r\n\r\n",
  };
  for (const std::string& raw : cases) {
    Parsed whole = parse(raw);
    Parsed trickled = parse_trickle(raw);
    EXPECT_EQ(trickled.state, whole.state) << raw;
    EXPECT_EQ(trickled.status, whole.status) << raw;
    for (size_t cut = 1; cut < raw.size(); cut++) {
      HeadParser p{HeadLimits{}};
      HeadState st = p.parse(std::string_view(raw).substr(0, cut));
      if (st == HeadState::incomplete) st = p.parse(raw);
      EXPECT_EQ(st, whole.state) << raw << " split at " << cut;
      EXPECT_EQ(p.error_status(), whole.status) << raw << " split at " << cut;
    }
  }
}

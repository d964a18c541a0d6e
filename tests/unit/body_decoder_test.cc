// Request body framing: Content-Length and chunked, fed whole and byte by byte.
#include "http/body_decoder.h"

#include <gtest/gtest.h>

using itk::BodyDecoder;

namespace {

struct Result {
  BodyDecoder::State state;
  std::string out;
  size_t consumed;
  int status;
};

Result decode(BodyDecoder d, const std::string& in, bool trickle) {
  std::string out;
  size_t total = 0;
  BodyDecoder::State st = d.state();
  if (!trickle) {
    st = d.feed(in, out, total);
  } else {
    for (size_t i = 0; i < in.size() && st == BodyDecoder::State::more; i++) {
      size_t used = 0;
      st = d.feed(std::string_view(in).substr(i, 1), out, used);
      total += used;
    }
  }
  return {st, out, total, d.error_status()};
}

}  // namespace

class BodyBothWays : public ::testing::TestWithParam<bool> {};

TEST_P(BodyBothWays, ContentLengthStopsAtItsEnd) {
  Result r = decode(BodyDecoder(5, false, 0), "helloGET / HTTP/1.1", GetParam());
  EXPECT_EQ(r.state, BodyDecoder::State::complete);
  EXPECT_EQ(r.out, "hello");
  EXPECT_EQ(r.consumed, 5u);
}

TEST_P(BodyBothWays, ChunkedWithExtensionsAndTrailers) {
  std::string body = "5;name=v\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n";
  Result r = decode(BodyDecoder(std::nullopt, true, 0), body + "NEXT", GetParam());
  EXPECT_EQ(r.state, BodyDecoder::State::complete);
  EXPECT_EQ(r.out, "hello world!");
  EXPECT_EQ(r.consumed, body.size());
}

TEST_P(BodyBothWays, ChunkedUpperCaseHex) {
  std::string data(0x1A, 'x');
  Result r = decode(BodyDecoder(std::nullopt, true, 0), "1A\r\n" + data + "\r\n0\r\n\r\n", GetParam());
  EXPECT_EQ(r.state, BodyDecoder::State::complete);
  EXPECT_EQ(r.out, data);
}

TEST_P(BodyBothWays, MalformedChunkedIs400) {
  for (const char* bad : {"x\r\n", "5\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "\r\n", "5 \r\nhello\r\n",
                          "10000000000000000\r\n", "0\r\nTrailer\n\r\n"}) {
    Result r = decode(BodyDecoder(std::nullopt, true, 0), bad, GetParam());
    EXPECT_EQ(r.state, BodyDecoder::State::error) << bad;
    EXPECT_EQ(r.status, 400) << bad;
  }
}

TEST_P(BodyBothWays, LimitAppliesToDecodedBytes) {
  Result over = decode(BodyDecoder(std::nullopt, true, 8), "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", GetParam());
  EXPECT_EQ(over.state, BodyDecoder::State::error);
  EXPECT_EQ(over.status, 413);
  Result at = decode(BodyDecoder(std::nullopt, true, 10), "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", GetParam());
  EXPECT_EQ(at.state, BodyDecoder::State::complete);
  Result cl = decode(BodyDecoder(20, false, 10), std::string(20, 'a'), GetParam());
  EXPECT_EQ(cl.status, 413);
}

INSTANTIATE_TEST_SUITE_P(WholeAndTrickled, BodyBothWays, ::testing::Bool());

TEST(Body, EmptyContentLengthIsCompleteAtOnce) {
  BodyDecoder d(0, false, 0);
  EXPECT_EQ(d.state(), BodyDecoder::State::complete);
  BodyDecoder none(std::nullopt, false, 0);
  EXPECT_EQ(none.state(), BodyDecoder::State::complete);
}

TEST(Body, TrailerSectionIsBounded) {
  std::string huge = "0\r\n" + std::string(10000, 'a') + "\r\n\r\n";
  Result r = decode(BodyDecoder(std::nullopt, true, 0), huge, false);
  EXPECT_EQ(r.state, BodyDecoder::State::error);
}

// FastCGI record codec: exact bytes of headers, padding, BEGIN_REQUEST, PARAMS and STDIN framing, and the
// incremental reader fed whole and byte by byte.
#include "script/fastcgi_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace fcgi = itk::fcgi;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

std::string bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

uint32_t u8(const std::string& s, size_t at) { return static_cast<unsigned char>(s.at(at)); }

// Splits `wire` into records independently of RecordReader, checking each header as it goes.
std::vector<fcgi::Record> split_records(const std::string& wire) {
  std::vector<fcgi::Record> out;
  size_t at = 0;
  while (at < wire.size()) {
    EXPECT_LE(at + 8, wire.size());
    if (at + 8 > wire.size()) break;
    EXPECT_EQ(u8(wire, at), 1u) << "version at " << at;
    EXPECT_EQ(u8(wire, at + 7), 0u) << "reserved at " << at;
    size_t len = u8(wire, at + 4) << 8 | u8(wire, at + 5);
    size_t pad = u8(wire, at + 6);
    EXPECT_EQ((len + pad) % 8, 0u) << "record at " << at << " not a multiple of 8";
    EXPECT_LT(pad, 8u);
    EXPECT_LE(at + 8 + len + pad, wire.size());
    if (at + 8 + len + pad > wire.size()) break;
    fcgi::Record r;
    r.type = static_cast<fcgi::Type>(u8(wire, at + 1));
    r.id = static_cast<uint16_t>(u8(wire, at + 2) << 8 | u8(wire, at + 3));
    r.content = wire.substr(at + 8, len);
    for (size_t i = 0; i < pad; i++) EXPECT_EQ(u8(wire, at + 8 + len + i), 0u);
    out.push_back(std::move(r));
    at += 8 + len + pad;
  }
  return out;
}

// Decodes a name-value pair stream as the application would (spec section 3.4).
bool decode_pairs(const std::string& s, Pairs& out) {
  size_t at = 0;
  auto length = [&](size_t& n) {
    if (at >= s.size()) return false;
    uint32_t b = u8(s, at);
    if (b < 128) {
      n = b;
      at += 1;
      return true;
    }
    if (at + 4 > s.size()) return false;
    n = (b & 0x7f) << 24 | u8(s, at + 1) << 16 | u8(s, at + 2) << 8 | u8(s, at + 3);
    at += 4;
    return true;
  };
  while (at < s.size()) {
    size_t nl = 0, vl = 0;
    if (!length(nl) || !length(vl) || at + nl + vl > s.size()) return false;
    out.emplace_back(s.substr(at, nl), s.substr(at + nl, vl));
    at += nl + vl;
  }
  return true;
}

// Every record RecordReader yields from `wire`, fed in pieces of `step` bytes (0: all at once).
std::vector<fcgi::Record> read_all(const std::string& wire, size_t step, fcgi::RecordReader& r) {
  std::vector<fcgi::Record> out;
  fcgi::Record rec;
  auto drain = [&] {
    int rc;
    while ((rc = r.next(rec)) == 1) out.push_back(rec);
    EXPECT_EQ(rc, 0) << r.error();
  };
  if (step == 0) {
    r.feed(wire);
    drain();
  } else {
    for (size_t i = 0; i < wire.size(); i += step) {
      r.feed(std::string_view(wire).substr(i, step));
      drain();
    }
  }
  return out;
}

void expect_same(const std::vector<fcgi::Record>& a, const std::vector<fcgi::Record>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].type, b[i].type) << "record " << i;
    EXPECT_EQ(a[i].id, b[i].id) << "record " << i;
    EXPECT_EQ(a[i].content, b[i].content) << "record " << i;
  }
}

}  // namespace

TEST(FastcgiProtocol, RecordHeaderAndPadding) {
  struct Case {
    size_t len;
    int padding;
  };
  for (Case c : {Case{0, 0}, Case{1, 7}, Case{7, 1}, Case{8, 0}, Case{9, 7}, Case{65535, 1}}) {
    SCOPED_TRACE(c.len);
    std::string content(c.len, 'x');
    std::string out = "prefix";
    fcgi::append_record(out, fcgi::stdout_stream, 0x1234, content);
    ASSERT_EQ(out.size(), 6 + 8 + c.len + c.padding);
    EXPECT_EQ(out.substr(0, 6), "prefix");
    EXPECT_EQ(out.substr(6, 8), bytes({1, 6, 0x12, 0x34, static_cast<int>(c.len >> 8),
                                       static_cast<int>(c.len & 0xff), c.padding, 0}));
    EXPECT_EQ(out.substr(14, c.len), content);
    EXPECT_EQ(out.substr(14 + c.len), std::string(c.padding, '\0'));
    EXPECT_EQ((out.size() - 6) % 8, 0u);
  }
}

TEST(FastcgiProtocol, OversizedRecordAborts) {
  std::string out;
  std::string content(fcgi::kMaxContent + 1, 'x');
  EXPECT_DEATH(fcgi::append_record(out, fcgi::stdin_stream, 1, content), "");
}

TEST(FastcgiProtocol, BeginRequestBytes) {
  std::string out;
  fcgi::append_begin_request(out, 1);
  EXPECT_EQ(out, bytes({1, 1, 0, 1, 0, 8, 0, 0,  // header: BEGIN_REQUEST, id 1, 8 bytes, no padding
                        0, 1, 0, 0, 0, 0, 0, 0}));  // role RESPONDER, flags 0 (close after), reserved
  out.clear();
  fcgi::append_begin_request(out, 0xabcd);
  EXPECT_EQ(out.substr(2, 2), bytes({0xab, 0xcd}));
}

TEST(FastcgiProtocol, ParamsShortPairBytes) {
  std::string out;
  fcgi::append_params(out, 1, {{"A", "bc"}});
  EXPECT_EQ(out, bytes({1, 4, 0, 1, 0, 5, 3, 0, 1, 2, 'A', 'b', 'c', 0, 0, 0,  // one pair, padded
                        1, 4, 0, 1, 0, 0, 0, 0}));                                // end of stream
}

TEST(FastcgiProtocol, ParamsEmptyIsOnlyTerminator) {
  std::string out;
  fcgi::append_params(out, 7, {});
  EXPECT_EQ(out, bytes({1, 4, 0, 7, 0, 0, 0, 0}));
}

TEST(FastcgiProtocol, ParamsLengthEncodingBoundaries) {
  std::string n127(127, 'n'), v128(128, 'v'), n300(300, 'N'), v70000(65000, 'V');
  std::string out;
  ASSERT_TRUE(fcgi::append_params(out, 2, {{n127, v128}, {n300, v70000}, {"", ""}}));
  std::vector<fcgi::Record> recs = split_records(out);
  ASSERT_GE(recs.size(), 2u);
  std::string stream;
  for (size_t i = 0; i < recs.size(); i++) {
    EXPECT_EQ(recs[i].type, fcgi::params);
    EXPECT_EQ(recs[i].id, 2);
    if (i + 1 < recs.size()) {
      EXPECT_FALSE(recs[i].content.empty());
    } else {
      EXPECT_TRUE(recs[i].content.empty());
    }
    stream += recs[i].content;
  }
  // 127 is the largest 1-byte length; 128 takes the 4-byte form with the top bit set.
  EXPECT_EQ(stream.substr(0, 5), bytes({127, 0x80, 0, 0, 128}));
  size_t second = 5 + 127 + 128;
  EXPECT_EQ(stream.substr(second, 8), bytes({0x80, 0, 0x01, 0x2c, 0x80, 0x00, 0xfd, 0xe8}));
  Pairs back;
  ASSERT_TRUE(decode_pairs(stream, back));
  EXPECT_EQ(back, (Pairs{{n127, v128}, {n300, v70000}, {"", ""}}));
}

TEST(FastcgiProtocol, ParamsOver65535InRecordsOfWholePairs) {
  Pairs pairs;
  size_t encoded = 0;
  for (int i = 0; encoded <= 3 * fcgi::kMaxContent; i++) {
    std::string name = "HTTP_X_HEADER_" + std::to_string(i);
    std::string value(static_cast<size_t>(i % 3 == 0 ? 40 : 1000 + i), static_cast<char>('a' + i % 26));
    encoded += (name.size() < 128 ? 1 : 4) + (value.size() < 128 ? 1 : 4) + name.size() + value.size();
    pairs.emplace_back(std::move(name), std::move(value));
  }
  std::string out;
  ASSERT_TRUE(fcgi::append_params(out, 3, pairs));
  std::vector<fcgi::Record> recs = split_records(out);
  ASSERT_GE(recs.size(), 5u);  // at least four records of pairs, then the empty terminator
  std::string stream;
  Pairs back;
  for (size_t i = 0; i < recs.size(); i++) {
    EXPECT_EQ(recs[i].type, fcgi::params);
    EXPECT_EQ(recs[i].id, 3);
    EXPECT_LE(recs[i].content.size(), fcgi::kMaxContent);
    // Each record decodes on its own, as php-cgi decodes them.
    Pairs in_record;
    EXPECT_TRUE(decode_pairs(recs[i].content, in_record)) << "record " << i << " ends inside a pair";
    back.insert(back.end(), in_record.begin(), in_record.end());
    stream += recs[i].content;
  }
  EXPECT_TRUE(recs.back().content.empty());
  EXPECT_EQ(stream.size(), encoded);
  EXPECT_EQ(back, pairs);
}

TEST(FastcgiProtocol, ParamsPairOverMaxContentIsRefused) {
  std::string out;
  EXPECT_FALSE(fcgi::append_params(out, 1, {{"QUERY_STRING", std::string(fcgi::kMaxContent, 'q')}}));
  out.clear();
  EXPECT_TRUE(fcgi::append_params(out, 1, {{"Q", std::string(fcgi::kMaxContent - 6, 'q')}}));
}

TEST(FastcgiProtocol, StdinSplitsAtMaxContent) {
  std::string body(2 * fcgi::kMaxContent + 10, '\0');
  for (size_t i = 0; i < body.size(); i++) body[i] = static_cast<char>(i * 7);
  std::string out;
  fcgi::append_stdin(out, 5, body);
  std::vector<fcgi::Record> recs = split_records(out);
  ASSERT_EQ(recs.size(), 3u);  // no terminator: that comes from an empty call
  EXPECT_EQ(recs[0].content.size(), fcgi::kMaxContent);
  EXPECT_EQ(recs[1].content.size(), fcgi::kMaxContent);
  EXPECT_EQ(recs[2].content.size(), 10u);
  std::string joined;
  for (const auto& r : recs) {
    EXPECT_EQ(r.type, fcgi::stdin_stream);
    EXPECT_EQ(r.id, 5);
    joined += r.content;
  }
  EXPECT_EQ(joined, body);

  out.clear();
  fcgi::append_stdin(out, 5, std::string(fcgi::kMaxContent, 'z'));
  EXPECT_EQ(split_records(out).size(), 1u);
}

TEST(FastcgiProtocol, StdinEmptyIsTerminator) {
  std::string out;
  fcgi::append_stdin(out, 9, {});
  EXPECT_EQ(out, bytes({1, 5, 0, 9, 0, 0, 0, 0}));
}

TEST(FastcgiProtocol, ReaderByteAtATimeMatchesWhole) {
  std::string wire;
  fcgi::append_record(wire, fcgi::stdout_stream, 1, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhi");
  fcgi::append_record(wire, fcgi::stderr_stream, 1, "PHP Notice: x");
  fcgi::append_record(wire, fcgi::stdout_stream, 1, std::string(70000 - fcgi::kMaxContent, 'b'));
  fcgi::append_record(wire, fcgi::stdout_stream, 1, std::string(fcgi::kMaxContent, 'a'));
  fcgi::append_record(wire, fcgi::stdout_stream, 1, {});
  fcgi::append_record(wire, fcgi::end_request, 1, bytes({0, 0, 0, 0, 0, 0, 0, 0}));
  std::vector<fcgi::Record> expected = split_records(wire);
  ASSERT_EQ(expected.size(), 6u);

  fcgi::RecordReader whole, bytewise, odd;
  std::vector<fcgi::Record> a = read_all(wire, 0, whole);
  std::vector<fcgi::Record> b = read_all(wire, 1, bytewise);
  std::vector<fcgi::Record> c = read_all(wire, 4093, odd);
  expect_same(a, expected);
  expect_same(b, expected);
  expect_same(c, expected);
  EXPECT_EQ(whole.pending(), 0u);
  EXPECT_EQ(bytewise.pending(), 0u);
  EXPECT_EQ(odd.pending(), 0u);
}

TEST(FastcgiProtocol, ReaderSkipsPadding) {
  // Padding the application chose itself (more than needed for alignment) is dropped as well.
  std::string wire = bytes({1, 6, 0, 1, 0, 3, 5, 0, 'a', 'b', 'c', 9, 9, 9, 9, 9});
  wire += bytes({1, 6, 0, 1, 0, 1, 0, 0, 'd'});
  fcgi::RecordReader r;
  r.feed(wire);
  fcgi::Record rec;
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.type, fcgi::stdout_stream);
  EXPECT_EQ(rec.id, 1);
  EXPECT_EQ(rec.content, "abc");
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.content, "d");
  EXPECT_EQ(r.next(rec), 0);
  EXPECT_EQ(r.pending(), 0u);
}

TEST(FastcgiProtocol, ReaderWaitsForPadding) {
  std::string wire;
  fcgi::append_record(wire, fcgi::stdout_stream, 1, "x");  // 1 byte of content, 7 of padding
  fcgi::RecordReader r;
  fcgi::Record rec;
  r.feed(std::string_view(wire).substr(0, wire.size() - 1));
  EXPECT_EQ(r.next(rec), 0);
  EXPECT_EQ(r.pending(), wire.size() - 1);
  r.feed(std::string_view(wire).substr(wire.size() - 1));
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.content, "x");
}

TEST(FastcgiProtocol, ReaderPassesUnknownTypesThrough) {
  std::string wire = bytes({1, 200, 0xff, 0xff, 0, 0, 0, 0});
  fcgi::RecordReader r;
  r.feed(wire);
  fcgi::Record rec;
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(static_cast<int>(rec.type), 200);
  EXPECT_EQ(rec.id, 0xffff);
  EXPECT_TRUE(rec.content.empty());
}

TEST(FastcgiProtocol, ReaderRejectsVersion2) {
  std::string wire;
  fcgi::append_record(wire, fcgi::stdout_stream, 1, "ok");
  std::string bad;
  fcgi::append_record(bad, fcgi::stdout_stream, 1, "bad");
  bad[0] = 2;
  fcgi::RecordReader r;
  r.feed(wire + bad);
  fcgi::Record rec;
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.content, "ok");
  EXPECT_EQ(r.next(rec), -1);
  EXPECT_NE(r.error().find("version 2"), std::string::npos) << r.error();
  // It stays failed, even when good records follow.
  r.feed(wire);
  EXPECT_EQ(r.next(rec), -1);
  EXPECT_FALSE(r.error().empty());
}

TEST(FastcgiProtocol, ReaderVersionCheckedOnceHeaderComplete) {
  fcgi::RecordReader r;
  fcgi::Record rec;
  r.feed(bytes({0, 6, 0, 1, 0, 0, 0}));  // 7 bytes: not a header yet
  EXPECT_EQ(r.next(rec), 0);
  EXPECT_TRUE(r.error().empty());
  EXPECT_EQ(r.pending(), 7u);
  r.feed(bytes({0}));
  EXPECT_EQ(r.next(rec), -1);
  EXPECT_NE(r.error().find("version 0"), std::string::npos) << r.error();
}

TEST(FastcgiProtocol, ReaderPending) {
  fcgi::RecordReader r;
  EXPECT_EQ(r.pending(), 0u);
  std::string wire;
  fcgi::append_record(wire, fcgi::stdout_stream, 1, "hello");  // 8 + 5 + 3
  fcgi::append_record(wire, fcgi::stdout_stream, 1, "world!!!");  // 8 + 8
  fcgi::Record rec;
  r.feed(std::string_view(wire).substr(0, 3));
  EXPECT_EQ(r.next(rec), 0);
  EXPECT_EQ(r.pending(), 3u);
  r.feed(std::string_view(wire).substr(3, 16 + 10 - 3));  // first record whole, 10 bytes of the second
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.content, "hello");
  EXPECT_EQ(r.next(rec), 0);
  EXPECT_EQ(r.pending(), 10u);  // what a truncated stream leaves behind at EOF
  r.feed(std::string_view(wire).substr(26));
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.content, "world!!!");
  EXPECT_EQ(r.pending(), 0u);
}

TEST(FastcgiProtocol, ReaderManyRecordsStayCorrect) {
  // Many small records fed in pieces that straddle record boundaries, so the consumed prefix is dropped
  // repeatedly while a partial record is held.
  std::string wire;
  std::vector<fcgi::Record> expected;
  for (int i = 0; i < 5000; i++) {
    std::string content(static_cast<size_t>(i % 37), static_cast<char>('a' + i % 26));
    fcgi::append_record(wire, fcgi::stdout_stream, 1, content);
    expected.push_back({fcgi::stdout_stream, 1, content});
  }
  fcgi::RecordReader r;
  expect_same(read_all(wire, 13, r), expected);
  EXPECT_EQ(r.pending(), 0u);
}

TEST(FastcgiProtocol, ParseEndRequest) {
  fcgi::EndRequest er;
  ASSERT_TRUE(fcgi::parse_end_request(bytes({0x01, 0x02, 0x03, 0x04, 2, 0, 0, 0}), er));
  EXPECT_EQ(er.app_status, 0x01020304u);
  EXPECT_EQ(er.protocol_status, 2);
  ASSERT_TRUE(fcgi::parse_end_request(bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}), er));
  EXPECT_EQ(er.app_status, 0xffffffffu);
  EXPECT_EQ(er.protocol_status, 0);
  fcgi::EndRequest untouched;
  EXPECT_FALSE(fcgi::parse_end_request(bytes({0, 0, 0, 0, 0, 0, 0}), untouched));
  EXPECT_FALSE(fcgi::parse_end_request({}, untouched));
}

TEST(FastcgiProtocol, EndRequestThroughReader) {
  std::string wire;
  fcgi::append_record(wire, fcgi::end_request, 4, bytes({0, 0, 0, 255, 0, 0, 0, 0}));
  fcgi::RecordReader r;
  r.feed(wire);
  fcgi::Record rec;
  ASSERT_EQ(r.next(rec), 1);
  EXPECT_EQ(rec.type, fcgi::end_request);
  EXPECT_EQ(rec.id, 4);
  fcgi::EndRequest er;
  ASSERT_TRUE(fcgi::parse_end_request(rec.content, er));
  EXPECT_EQ(er.app_status, 255u);
  EXPECT_EQ(er.protocol_status, 0);
}

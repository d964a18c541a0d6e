// Tests for content-coding negotiation, the type filter, encoded validators, the rules a precompressed file
// must meet, and the streaming encoders decoded back with zlib's and brotli's own decoders.
#include "http/compression.h"
#include "http/encoder.h"
#include "http/static_file.h"

#include <brotli/decode.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "http/doc_root.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

// ---- Accept-Encoding ----

struct Negotiation {
  const char* header;
  Coding first;
  Coding second;
};

TEST(Negotiate, QValuesStarAndIdentity) {
  using enum Coding;
  const Negotiation cases[] = {
      {"", identity, identity},
      {"gzip", gzip, identity},
      {"x-gzip", gzip, identity},
      {"br", br, identity},
      {"gzip, deflate, br", br, gzip},  // equal q: br first
      {"deflate, gzip;q=0.9, br;q=0.9", br, gzip},
      {"br;q=0.5, gzip", gzip, br},
      {" gzip ;  q=0.5 , br ; Q=0.4", gzip, br},
      {"gzip;q=0", identity, identity},
      {"gzip;q=0.000, br", br, identity},
      {"gzip;q=0.001", gzip, identity},
      {"*", br, gzip},
      {"*;q=0", identity, identity},
      {"*;q=0, gzip", gzip, identity},
      {"br;q=0, *", gzip, identity},
      {"gzip;q=0.2, *;q=0.5", br, gzip},
      {"identity", identity, identity},
      {"identity;q=0", identity, identity},
      {"identity;q=0, gzip", gzip, identity},
      {"deflate, compress, zstd", identity, identity},
      {"GZIP, BR", br, gzip},
      {"gzip;q=1.5", identity, identity},  // malformed q-values drop their element
      {"gzip;q=0.5x, br;q=abc", identity, identity},
      {"gzip;q=1.000", gzip, identity},
      {"gzip;level=9;q=0.3, br;q=0.2", gzip, br},
      {",,gzip,,", gzip, identity},
  };
  for (const Negotiation& c : cases) {
    std::string h = c.header;
    AcceptedCodings a = negotiate_codings(&h);
    EXPECT_EQ(a.first, c.first) << c.header;
    EXPECT_EQ(a.second, c.second) << c.header;
  }
  AcceptedCodings none = negotiate_codings(nullptr);
  EXPECT_EQ(none.first, Coding::identity);
  std::string both = "gzip, br";
  EXPECT_TRUE(negotiate_codings(&both).accepts(Coding::gzip));
  EXPECT_FALSE(negotiate_codings(&both).accepts(Coding::identity));
}

// ---- media types ----

TEST(CompressibleType, DefaultsAndParameters) {
  const std::vector<std::string> types = CompressSettings{}.types;
  for (const char* t : {"text/html", "text/html; charset=utf-8", "TEXT/CSS", "text/javascript; charset=utf-8",
                        "application/javascript", "application/json;charset=utf-8", "image/svg+xml", "application/wasm",
                        "application/xml", " text/plain "})
    EXPECT_TRUE(compressible_type(t, types)) << t;
  for (const char* t : {"image/png", "image/jpeg", "application/gzip", "application/zip", "font/woff2", "video/mp4",
                        "application/octet-stream", "", "text", "text/event-stream", "text/event-stream; charset=utf-8",
                        "textual/html"})
    EXPECT_FALSE(compressible_type(t, types)) << t;
  const std::vector<std::string> own = {"application/x-foo"};
  EXPECT_TRUE(compressible_type("application/X-Foo", own));
  EXPECT_FALSE(compressible_type("text/html", own));
}

// ---- validators ----

TEST(EncodedETag, WeakAndSuffixed) {
  EXPECT_EQ(encoded_etag("\"5f-1a\"", Coding::gzip), "W/\"5f-1a-gzip\"");
  EXPECT_EQ(encoded_etag("\"5f-1a\"", Coding::br), "W/\"5f-1a-br\"");
  EXPECT_EQ(encoded_etag("W/\"x\"", Coding::br), "W/\"x-br\"");
  EXPECT_EQ(encoded_etag("\"5f-1a\"", Coding::identity), "\"5f-1a\"");
  EXPECT_EQ(encoded_etag("unquoted", Coding::gzip), "");
  EXPECT_EQ(encoded_etag("\"", Coding::gzip), "");
}

// ---- precompressed files ----

struct stat at(time_t sec, long nsec, mode_t mode = S_IFREG | 0644) {
  struct stat st {};
  st.st_mode = mode;
  st.st_mtim.tv_sec = sec;
  st.st_mtim.tv_nsec = nsec;
  return st;
}

TEST(Precompressed, NotOlderAndRegular) {
  EXPECT_TRUE(precompressed_usable(at(100, 5), at(100, 5)));
  EXPECT_TRUE(precompressed_usable(at(100, 5), at(100, 6)));
  EXPECT_TRUE(precompressed_usable(at(100, 999999999), at(101, 0)));
  EXPECT_FALSE(precompressed_usable(at(100, 5), at(100, 4)));
  EXPECT_FALSE(precompressed_usable(at(100, 0), at(99, 999999999)));
  EXPECT_FALSE(precompressed_usable(at(100, 0), at(200, 0, S_IFDIR | 0755)));
  EXPECT_FALSE(precompressed_usable(at(100, 0), at(200, 0, S_IFIFO | 0644)));
}

namespace fs = std::filesystem;

class PrecompressedFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/itk-precompressed-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "root" / "js");
    write(dir_ / "root" / "js" / "app.js", "original");
    root_ = doc_root_at(unique_fd(open((dir_ / "root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)));
    ASSERT_TRUE(root_.anchor);
  }
  void TearDown() override {
    fs::remove_all(dir_);
  }
  static void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
  static void set_mtime(const fs::path& p, time_t sec) {
    timespec times[2] = {{sec, 0}, {sec, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }
  struct stat original() const {
    struct stat st {};
    EXPECT_EQ(stat((dir_ / "root" / "js" / "app.js").c_str(), &st), 0);
    return st;
  }
  fs::path dir_;
  DocRoot root_;
};

TEST_F(PrecompressedFiles, UsedWhenPresentAndNotOlder) {
  write(dir_ / "root" / "js" / "app.js.gz", "gz");
  set_mtime(dir_ / "root" / "js" / "app.js", 1000);
  set_mtime(dir_ / "root" / "js" / "app.js.gz", 1000);
  OpenResult r = open_precompressed(root_, "/js/app.js", ".gz", original());
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.path, "/js/app.js.gz");
  EXPECT_EQ(r.st.st_size, 2);
  EXPECT_EQ(open_precompressed(root_, "/js/app.js", ".br", original()).outcome, OpenOutcome::not_found);
}

TEST_F(PrecompressedFiles, IgnoredWhenOlderNotRegularOrOutside) {
  write(dir_ / "root" / "js" / "app.js.gz", "gz");
  set_mtime(dir_ / "root" / "js" / "app.js", 2000);
  set_mtime(dir_ / "root" / "js" / "app.js.gz", 1000);
  EXPECT_EQ(open_precompressed(root_, "/js/app.js", ".gz", original()).outcome, OpenOutcome::not_found);

  fs::create_directory(dir_ / "root" / "js" / "app.js.br");
  EXPECT_EQ(open_precompressed(root_, "/js/app.js", ".br", original()).outcome, OpenOutcome::not_found);

  // A link out of the DocumentRoot is never followed, however fresh its target.
  fs::remove(dir_ / "root" / "js" / "app.js.gz");
  write(dir_ / "outside.gz", "secret");
  fs::create_symlink(dir_ / "outside.gz", dir_ / "root" / "js" / "app.js.gz");
  EXPECT_EQ(open_precompressed(root_, "/js/app.js", ".gz", original()).outcome, OpenOutcome::not_found);
}

// ---- encoders ----

std::string gunzip(const std::string& in, bool partial = false) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  char buf[16384];
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_SYNC_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_BUF_ERROR && partial) break;
  }
  EXPECT_EQ(rc, partial ? Z_BUF_ERROR : Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

std::string unbrotli(const std::string& in, bool partial = false) {
  BrotliDecoderState* s = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  std::string out;
  size_t avail_in = in.size();
  const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
  BrotliDecoderResult rc;
  do {
    uint8_t buf[16384];
    size_t avail_out = sizeof buf;
    uint8_t* next_out = buf;
    rc = BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    out.append(reinterpret_cast<char*>(buf), sizeof buf - avail_out);
  } while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
  EXPECT_EQ(rc, partial ? BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT : BROTLI_DECODER_RESULT_SUCCESS);
  BrotliDecoderDestroyInstance(s);
  return out;
}

std::string decode(Coding c, const std::string& in, bool partial = false) {
  return c == Coding::gzip ? gunzip(in, partial) : unbrotli(in, partial);
}

// Text that compresses as source code does, but not to nothing: numbered lines with some variety.
std::string sample_text(size_t size) {
  std::string s;
  uint32_t x = 12345;
  while (s.size() < size) {
    x = x * 1103515245 + 12345;
    s += "function f" + std::to_string(x % 997) + "(a, b) { return a * " + std::to_string(x % 31) + " + b; }\n";
  }
  s.resize(size);
  return s;
}

class EncoderRoundTrip : public ::testing::TestWithParam<Coding> {};

TEST_P(EncoderRoundTrip, WholeBodyInOddPieces) {
  const std::string text = sample_text(300000);
  Encoder enc(GetParam(), text.size());
  ASSERT_TRUE(enc.ok());
  std::string out;
  for (size_t off = 0, piece = 1; off < text.size(); off += piece, piece = piece * 3 + 7) {
    piece = std::min(piece, text.size() - off);
    ASSERT_TRUE(enc.write(std::string_view(text).substr(off, piece), out));
  }
  ASSERT_TRUE(enc.write({}, out, Encoder::Op::finish));
  EXPECT_LT(out.size(), text.size() / 3);
  EXPECT_EQ(decode(GetParam(), out), text);
}

// After a flush, what was written so far can be decoded from the output so far: a script's pause is seen.
TEST_P(EncoderRoundTrip, FlushMakesEverythingSoFarDecodable) {
  Encoder enc(GetParam());
  ASSERT_TRUE(enc.ok());
  std::string out;
  ASSERT_TRUE(enc.write("data: first\n", out));
  EXPECT_TRUE(enc.pending());
  ASSERT_TRUE(enc.write({}, out, Encoder::Op::flush));
  EXPECT_FALSE(enc.pending());
  EXPECT_EQ(decode(GetParam(), out, true), "data: first\n");
  ASSERT_TRUE(enc.write("data: second\n", out, Encoder::Op::flush));
  EXPECT_EQ(decode(GetParam(), out, true), "data: first\ndata: second\n");
  ASSERT_TRUE(enc.write({}, out, Encoder::Op::finish));
  EXPECT_EQ(decode(GetParam(), out), "data: first\ndata: second\n");
}

TEST_P(EncoderRoundTrip, EmptyBody) {
  Encoder enc(GetParam());
  std::string out;
  ASSERT_TRUE(enc.write({}, out, Encoder::Op::finish));
  EXPECT_FALSE(out.empty());
  EXPECT_EQ(decode(GetParam(), out), "");
}

// Encoders are values: moving one keeps its stream intact (zlib's state points back at its z_stream).
TEST_P(EncoderRoundTrip, Movable) {
  std::optional<Encoder> a;
  a.emplace(GetParam());
  std::string out;
  ASSERT_TRUE(a->write("before the move ", out));
  Encoder b = std::move(*a);
  a.reset();
  ASSERT_TRUE(b.write("and after", out, Encoder::Op::finish));
  EXPECT_EQ(decode(GetParam(), out), "before the move and after");
}

INSTANTIATE_TEST_SUITE_P(Codings, EncoderRoundTrip, ::testing::Values(Coding::gzip, Coding::br),
                         [](const auto& info) { return std::string(coding_name(info.param)); });

TEST(Encoder, IdentityIsNoEncoder) {
  Encoder e(Coding::identity);
  EXPECT_FALSE(e.ok());
  std::string out;
  EXPECT_FALSE(e.write("x", out));
}

}  // namespace
}  // namespace itk

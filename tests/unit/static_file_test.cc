// Tests for request path decoding, validators, ranges, preconditions and opening files beneath a
// DocumentRoot on a real file system (symlink escapes, loops, FIFOs, permissions).
#include "http/static_file.h"
#include "http/static_handler.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "http/http_response.h"

namespace itk {
namespace {

// ---------------------------------------------------------------------------------------------
// decode_request_path

struct DecodeCase {
  std::string target;
  std::optional<std::string> expected;
};

TEST(DecodeRequestPath, Accepted) {
  const DecodeCase cases[] = {
      {"/", "/"},
      {"/a/b", "/a/b"},
      {"/a/b?x=1&y=/../", "/a/b"},
      {"/a/b#frag/../x", "/a/b"},
      {"/a/./b", "/a/b"},
      {"/./a", "/a"},
      {"//a", "/a"},
      {"/a//b", "/a/b"},
      {"///", "/"},
      {"/a/", "/a/"},
      {"/a//", "/a/"},
      {"/a/.", "/a/"},
      {"/a/./", "/a/"},
      {"/.", "/"},
      {"/./", "/"},
      {"/a/%2e", "/a/"},
      {"/a/%2E/b", "/a/b"},
      {"/%41%62", "/Ab"},
      {"/a%20b", "/a b"},
      {"/a+b", "/a+b"},
      {"/caf%C3%A9", "/caf\xC3\xA9"},
      {"/%25", "/%"},
      {"/100%25/x", "/100%/x"},
      // A backslash is an ordinary byte on Linux, so "a\..\b" is one segment, not a traversal.
      {"/a\\b", "/a\\b"},
      {"/a\\..\\b", "/a\\..\\b"},
      {"/..\\", "/..\\"},
      {"/%5c..%5c", "/\\..\\"},
      // Dots that are not a whole segment are ordinary names.
      {"/...", "/..."},
      {"/..a", "/..a"},
      {"/a..", "/a.."},
      {"/a..b/c", "/a..b/c"},
      {"/.hidden", "/.hidden"},
      {"/.%2e%2e", "/..."},
      // Decoded once: "%252e%252e" is the literal name "%2e%2e", not a traversal.
      {"/%252e%252e", "/%2e%2e"},
      {"/%252e%252e/x", "/%2e%2e/x"},
      {"/a/%252e%252e/%252e%252e/etc/passwd", "/a/%2e%2e/%2e%2e/etc/passwd"},
      {"/%252f", "/%2f"},
      {"/%2500", "/%00"},
      {"/a?", "/a"},
      {"/?/..", "/"},
  };
  for (const auto& c : cases) {
    auto got = decode_request_path(c.target);
    ASSERT_TRUE(got.has_value()) << c.target;
    EXPECT_EQ(*got, *c.expected) << c.target;
  }
}

TEST(DecodeRequestPath, Rejected) {
  const std::string cases[] = {
      "",
      "a/b",
      "*",
      "?x",
      "http://example.org/",
      // ".." raw and encoded, in every case and position
      "/..",
      "/../",
      "/../etc/passwd",
      "/a/../b",
      "/a/..",
      "/a/../",
      "/a/b/../../..",
      "/..?x",
      "/%2e%2e",
      "/%2E%2E",
      "/%2e%2E",
      "/.%2e",
      "/.%2E",
      "/%2e.",
      "/%2E.",
      "/a/%2e%2e/b",
      "/a/%2e%2e",
      "/%2e%2e/",
      "//..//",
      "/./../",
      // encoded slash
      "/a%2fb",
      "/a%2Fb",
      "/%2f",
      "/..%2f",
      "/%2e%2e%2f",
      "/%2e%2e%2fetc%2fpasswd",
      // NUL, raw and encoded
      "/%00",
      "/a%00.html",
      "/index.html%00.txt",
      std::string("/a\0b", 4),
      std::string("/\0", 2),
      // bad escapes
      "/%",
      "/%4",
      "/a%2",
      "/%zz",
      "/%g0",
      "/%0g",
      "/% 1",
      "/%%41",
      "/%-1",
      // control bytes
      "/%0a",
      "/%0d%0a",
      "/a%0d%0aSet-Cookie:%20x",
      "/%09",
      "/%7f",
      "/%1b",
      std::string("/a\nb"),
      std::string("/a\rb"),
  };
  for (const auto& t : cases) {
    auto got = decode_request_path(t);
    EXPECT_FALSE(got.has_value()) << "accepted: \"" << t << "\" -> \"" << got.value_or("") << '"';
  }
}

TEST(DecodeRequestPath, ResultNeverHoldsDotSegments) {
  // Every combination of short segments made of '.', "%2e", "%2E", 'a' and '/' either is refused or
  // comes out without a "." or ".." segment and without "//".
  const std::vector<std::string> parts = {".", "%2e", "%2E", "a", "/", "%2f", "%00", "%25"};
  std::function<void(std::string, int)> gen = [&](std::string t, int depth) {
    auto got = decode_request_path(t);
    if (got) {
      const std::string& p = *got;
      ASSERT_EQ(p.front(), '/') << t;
      EXPECT_EQ(p.find("//"), std::string::npos) << t << " -> " << p;
      EXPECT_EQ(p.find('\0'), std::string::npos) << t;
      EXPECT_EQ(p.find("/../"), std::string::npos) << t << " -> " << p;
      EXPECT_EQ(p.find("/./"), std::string::npos) << t << " -> " << p;
      EXPECT_FALSE(p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0) << t << " -> " << p;
      EXPECT_FALSE(p.size() >= 2 && p.compare(p.size() - 2, 2, "/.") == 0) << t << " -> " << p;
    }
    if (depth == 0) return;
    for (const auto& part : parts) gen(t + part, depth - 1);
  };
  gen("/", 5);
}

TEST(TargetQuery, Cases) {
  EXPECT_EQ(target_query("/a?b=1"), "?b=1");
  EXPECT_EQ(target_query("/a"), "");
  EXPECT_EQ(target_query("/a?"), "?");
  EXPECT_EQ(target_query("/a?x=1#frag"), "?x=1");
  EXPECT_EQ(target_query("/a#f?x"), "");
  EXPECT_EQ(target_query("/a?x=?y"), "?x=?y");
}

// ---------------------------------------------------------------------------------------------
// make_etag

TEST(MakeEtag, NginxFormat) {
  struct stat st {};
  st.st_mtime = 0x5f3c2a1b;
  st.st_size = 0x1a4;
  EXPECT_EQ(make_etag(st), "\"5f3c2a1b-1a4\"");
  st.st_mtime = 0;
  st.st_size = 0;
  EXPECT_EQ(make_etag(st), "\"0-0\"");
}

TEST(MakeEtag, ChangesWithMtimeAndSize) {
  struct stat a {};
  a.st_mtime = 1000;
  a.st_size = 10;
  struct stat b = a;
  b.st_size = 11;
  struct stat c = a;
  c.st_mtime = 1001;
  EXPECT_NE(make_etag(a), make_etag(b));
  EXPECT_NE(make_etag(a), make_etag(c));
  EXPECT_EQ(make_etag(a).front(), '"');
  EXPECT_EQ(make_etag(a).back(), '"');
}

// ---------------------------------------------------------------------------------------------
// parse_range

struct RangeCase {
  const char* header;
  uint64_t size;
  RangeResult result;
  uint64_t first = 0;
  uint64_t last = 0;
};

TEST(ParseRange, TruthTable) {
  using R = RangeResult;
  const RangeCase cases[] = {
      {"bytes=0-0", 100, R::satisfiable, 0, 0},
      {"bytes=0-99", 100, R::satisfiable, 0, 99},
      {"bytes=10-19", 100, R::satisfiable, 10, 19},
      {"bytes=0-1000", 100, R::satisfiable, 0, 99},
      {"bytes=50-100", 100, R::satisfiable, 50, 99},
      {"bytes=5-", 100, R::satisfiable, 5, 99},
      {"bytes=0-", 100, R::satisfiable, 0, 99},
      {"bytes=99-", 100, R::satisfiable, 99, 99},
      {"bytes=99-99", 100, R::satisfiable, 99, 99},
      {"bytes=-5", 100, R::satisfiable, 95, 99},
      {"bytes=-1", 100, R::satisfiable, 99, 99},
      {"bytes=-100", 100, R::satisfiable, 0, 99},
      {"bytes=-1000", 100, R::satisfiable, 0, 99},
      {"bytes=0-", 1, R::satisfiable, 0, 0},
      {"bytes=-1", 1, R::satisfiable, 0, 0},
      {"bytes=-2", 1, R::satisfiable, 0, 0},
      {"Bytes=0-1", 100, R::satisfiable, 0, 1},
      {"BYTES=0-1", 100, R::satisfiable, 0, 1},
      {"bytes=007-008", 100, R::satisfiable, 7, 8},
      {"bytes=0-18446744073709551615", 100, R::satisfiable, 0, 99},
      {"bytes=0-99999999999999999999", 100, R::none},  // overflow
      {" bytes=1-2 ", 100, R::satisfiable, 1, 2},     // field-value OWS is not part of the value
      // unsatisfiable
      {"bytes=100-", 100, R::unsatisfiable},
      {"bytes=100-200", 100, R::unsatisfiable},
      {"bytes=1000-", 100, R::unsatisfiable},
      {"bytes=-0", 100, R::unsatisfiable},
      {"bytes=18446744073709551615-", 100, R::unsatisfiable},
      {"bytes=0-0", 0, R::unsatisfiable},
      {"bytes=0-", 0, R::unsatisfiable},
      {"bytes=-5", 0, R::unsatisfiable},
      {"bytes=5-10", 0, R::unsatisfiable},
      // invalid -> serve the whole file
      {"bytes=10-5", 100, R::none},
      {"bytes=1-0", 100, R::none},
      {"bytes=0-1,5-6", 100, R::none},
      {"bytes=0-1, 5-6", 100, R::none},
      {"bytes=0-1,", 100, R::none},
      {"bytes=", 100, R::none},
      {"bytes=-", 100, R::none},
      {"bytes", 100, R::none},
      {"bytes0-1", 100, R::none},
      {"bytes =0-1", 100, R::none},
      {"bytes= 0-1", 100, R::none},
      {"bytes=0 -1", 100, R::none},
      {"bytes=0- 1", 100, R::none},
      {"bytes=0-1 x", 100, R::none},
      {"byte=0-1", 100, R::none},
      {"bytesx=0-1", 100, R::none},
      {"items=0-1", 100, R::none},
      {"=0-1", 100, R::none},
      {"", 100, R::none},
      {"bytes=a-b", 100, R::none},
      {"bytes=1-2-3", 100, R::none},
      {"bytes=+1-2", 100, R::none},
      {"bytes=1-+2", 100, R::none},
      {"bytes=0x1-2", 100, R::none},
      {"bytes=--5", 100, R::none},
      {"bytes=5", 100, R::none},
      {"bytes=1.5-2", 100, R::none},
      {"bytes=99999999999999999999-", 100, R::none},
      {"bytes=18446744073709551616-", 100, R::none},
      {"bytes=-99999999999999999999", 100, R::none},
      {"bytes=x", 0, R::none},
  };
  for (const auto& c : cases) {
    ByteRange r{12345, 67890};
    RangeResult got = parse_range(c.header, c.size, r);
    EXPECT_EQ(got, c.result) << '"' << c.header << "\" size " << c.size;
    if (got == R::satisfiable && c.result == R::satisfiable) {
      EXPECT_EQ(r.first, c.first) << c.header;
      EXPECT_EQ(r.last, c.last) << c.header;
    }
  }
}

TEST(ParseRange, HugeFile) {
  const uint64_t size = UINT64_MAX;
  ByteRange r;
  EXPECT_EQ(parse_range("bytes=-18446744073709551615", size, r), RangeResult::satisfiable);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, size - 1);
  EXPECT_EQ(parse_range("bytes=18446744073709551614-", size, r), RangeResult::satisfiable);
  EXPECT_EQ(r.first, size - 1);
  EXPECT_EQ(r.last, size - 1);
}

TEST(ParseRange, SatisfiableRangeAlwaysInside) {
  for (uint64_t size : {1u, 2u, 7u, 100u}) {
    for (int a = -3; a < 110; ++a) {
      for (int b = -3; b < 110; ++b) {
        std::string h = "bytes=" + (a >= 0 ? std::to_string(a) : std::string()) + "-" +
                        (b >= 0 ? std::to_string(b) : std::string());
        ByteRange r;
        if (parse_range(h, size, r) == RangeResult::satisfiable) {
          ASSERT_LE(r.first, r.last) << h;
          ASSERT_LT(r.last, size) << h;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// not_modified / if_range_allows

constexpr time_t kMtime = 1000000000;  // Sun, 09 Sep 2001 01:46:40 GMT
const std::string kEtag = "\"3b9aca00-64\"";

bool nm(const char* inm, const char* ims, const std::string& etag = kEtag, time_t mtime = kMtime) {
  std::string a = inm ? inm : "", b = ims ? ims : "";
  Preconditions p;
  if (inm) p.if_none_match = &a;
  if (ims) p.if_modified_since = &b;
  return not_modified(p, etag, mtime);
}

TEST(NotModified, NoConditions) { EXPECT_FALSE(nm(nullptr, nullptr)); }

TEST(NotModified, IfNoneMatchWeakComparison) {
  EXPECT_TRUE(nm("\"3b9aca00-64\"", nullptr));
  EXPECT_TRUE(nm("W/\"3b9aca00-64\"", nullptr));
  EXPECT_TRUE(nm("*", nullptr));
  EXPECT_TRUE(nm(" * ", nullptr));
  EXPECT_TRUE(nm("\"x\", \"3b9aca00-64\"", nullptr));
  EXPECT_TRUE(nm("\"x\",W/\"3b9aca00-64\"", nullptr));
  EXPECT_TRUE(nm("\"x\" ,\t\"3b9aca00-64\"", nullptr));
  EXPECT_TRUE(nm(" \"3b9aca00-64\" ", nullptr));
  EXPECT_TRUE(nm(", ,\"3b9aca00-64\"", nullptr));
  EXPECT_TRUE(nm("\"a,b\", \"3b9aca00-64\"", nullptr));  // a comma inside a tag is part of it
  EXPECT_TRUE(nm("\"3b9aca00-64\"", nullptr, "W/\"3b9aca00-64\""));  // our tag weak: still a weak match

  EXPECT_FALSE(nm("\"other\"", nullptr));
  EXPECT_FALSE(nm("\"x\", \"y\"", nullptr));
  EXPECT_FALSE(nm("", nullptr));
  EXPECT_FALSE(nm("3b9aca00-64", nullptr));       // unquoted
  EXPECT_FALSE(nm("\"3b9aca00-64", nullptr));     // unterminated
  EXPECT_FALSE(nm("w/\"3b9aca00-64\"", nullptr));  // "W/" is case-sensitive
  EXPECT_FALSE(nm("\"3B9ACA00-64\"", nullptr));   // opaque tags compare byte for byte
  EXPECT_FALSE(nm("\"3b9aca00-64\"x", nullptr));
  EXPECT_FALSE(nm("\"3b9aca00-6\"", nullptr));
  EXPECT_FALSE(nm("**", nullptr));
  EXPECT_FALSE(nm("\"*\"", nullptr));
  EXPECT_FALSE(nm("\"x\", *", nullptr));
  EXPECT_FALSE(nm("\"3b9aca00-64\"", nullptr, ""));
}

TEST(NotModified, IfNoneMatchDecidesAlone) {
  const std::string same = http_date(kMtime);
  // A failing If-None-Match wins over a matching If-Modified-Since ...
  EXPECT_FALSE(nm("\"other\"", same.c_str()));
  // ... and a matching one wins over a failing If-Modified-Since.
  EXPECT_TRUE(nm("\"3b9aca00-64\"", http_date(kMtime - 3600).c_str()));
  EXPECT_TRUE(nm("\"3b9aca00-64\"", "garbage"));
}

TEST(NotModified, IfModifiedSince) {
  EXPECT_TRUE(nm(nullptr, http_date(kMtime).c_str()));
  EXPECT_TRUE(nm(nullptr, http_date(kMtime + 1).c_str()));
  EXPECT_TRUE(nm(nullptr, http_date(kMtime + 86400 * 365).c_str()));
  EXPECT_FALSE(nm(nullptr, http_date(kMtime - 1).c_str()));
  EXPECT_FALSE(nm(nullptr, http_date(0).c_str()));
  EXPECT_TRUE(nm(nullptr, "Sunday, 09-Sep-01 01:46:40 GMT"));
  EXPECT_TRUE(nm(nullptr, "Sun Sep  9 01:46:40 2001"));
  EXPECT_FALSE(nm(nullptr, "garbage"));
  EXPECT_FALSE(nm(nullptr, ""));
  EXPECT_FALSE(nm(nullptr, "1000000000"));
}

TEST(NotModified, FutureIfModifiedSinceIsIgnored) {
  time_t now = time(nullptr);
  // A file modified before the date, but the date lies in the future: ignored, so the file is sent.
  EXPECT_FALSE(nm(nullptr, http_date(now + 3600).c_str(), kEtag, now - 60));
  EXPECT_TRUE(nm(nullptr, http_date(now - 10).c_str(), kEtag, now - 60));
}

bool ir(const char* if_range, const std::string& etag = kEtag, time_t mtime = kMtime) {
  std::string v = if_range ? if_range : "";
  Preconditions p;
  if (if_range) p.if_range = &v;
  return if_range_allows(p, etag, mtime);
}

TEST(IfRange, TruthTable) {
  EXPECT_TRUE(ir(nullptr));
  EXPECT_TRUE(ir("\"3b9aca00-64\""));
  EXPECT_TRUE(ir(" \"3b9aca00-64\" "));
  EXPECT_TRUE(ir(http_date(kMtime).c_str()));
  EXPECT_TRUE(ir("Sunday, 09-Sep-01 01:46:40 GMT"));

  EXPECT_FALSE(ir("\"other\""));
  EXPECT_FALSE(ir("W/\"3b9aca00-64\""));                 // weak tags never match strongly
  EXPECT_FALSE(ir("\"3b9aca00-64\"", "W/\"3b9aca00-64\""));  // nor does our tag when weak
  EXPECT_FALSE(ir("W/\"3b9aca00-64\"", "W/\"3b9aca00-64\""));
  EXPECT_FALSE(ir("\"3b9aca00-64\", \"x\""));            // one tag, not a list
  EXPECT_FALSE(ir("*"));
  EXPECT_FALSE(ir(http_date(kMtime + 1).c_str()));        // a date must be exact
  EXPECT_FALSE(ir(http_date(kMtime - 1).c_str()));
  EXPECT_FALSE(ir("garbage"));
  EXPECT_FALSE(ir(""));
  EXPECT_FALSE(ir("\"3b9aca00-64\"", ""));
}

TEST(IfRange, DateOfAFileModifiedThisSecondIsWeak) {
  time_t now = time(nullptr);
  EXPECT_FALSE(ir(http_date(now + 5).c_str(), kEtag, now + 5));
  EXPECT_TRUE(ir(http_date(now - 5).c_str(), kEtag, now - 5));
  // The entity-tag path is unaffected.
  EXPECT_TRUE(ir(kEtag.c_str(), kEtag, now + 5));
}

// ---------------------------------------------------------------------------------------------
// open_beneath on a real tree

class OpenBeneath : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "itk-static-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
    base_ = tmpl;
    root_ = base_ + "/root";
    ASSERT_EQ(chmod(base_.c_str(), 0755), 0);
    mkdir_p("");
    write("outside.txt", "secret outside the root", base_);
    write("file.txt", "hello");
    write("empty.txt", "");
    mkdir_p("sub");
    write("sub/page.html", "<p>page</p>");
    mkdir_p("withindex");
    write("withindex/index.html", "index here");
    mkdir_p("secondindex");
    write("secondindex/index.htm", "second index");
    mkdir_p("noindex");
    write("noindex/other.txt", "x");
    mkdir_p("badindex");
    symlink_at("/etc/passwd", "badindex/index.html");
    write("badindex/index.htm", "never served");
    mkdir_p("dirindex");
    mkdir_p("dirindex/index.html");
    write("dirindex/index.htm", "never served");
    symlink_at("file.txt", "link_in");
    symlink_at("../file.txt", "sub/link_up");
    symlink_at("sub", "link_dir");
    symlink_at((root_ + "/file.txt").c_str(), "link_abs_in");
    symlink_at("/etc/passwd", "link_etc");
    symlink_at("/etc", "link_etc_dir");
    symlink_at("../outside.txt", "link_escape");
    symlink_at("../../outside.txt", "sub/deep_escape");
    symlink_at("sub/../../outside.txt", "link_escape_via_sub");
    symlink_at("/proc/self/root/etc/passwd", "link_magic");
    symlink_at("loop_b", "loop_a");
    symlink_at("loop_a", "loop_b");
    symlink_at("self", "self");
    symlink_at("nonexistent", "dangling");
    ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0644), 0) << strerror(errno);
    make_socket("sock");

    root_fd_ = doc_root_at(unique_fd(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
    ASSERT_TRUE(root_fd_.ok()) << strerror(root_fd_.error);
  }

  void TearDown() override {
    root_fd_ = DocRoot{};
    if (base_.empty()) return;
    // Give back the permissions a test took away, so that the tree can be deleted when not root.
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             base_, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      // Directories only, and never through a symlink (link_etc_dir points at /etc).
      std::error_code sec;
      if (it->symlink_status(sec).type() == std::filesystem::file_type::directory) {
        (void)chmod(it->path().c_str(), 0755);
      }
    }
    (void)chmod(base_.c_str(), 0755);
    std::filesystem::remove_all(base_, ec);
    EXPECT_FALSE(ec) << "cannot remove " << base_ << ": " << ec.message();
  }

  void mkdir_p(const std::string& rel) {
    std::string p = rel.empty() ? root_ : root_ + "/" + rel;
    ASSERT_EQ(mkdir(p.c_str(), 0755), 0) << p << ": " << strerror(errno);
    ASSERT_EQ(chmod(p.c_str(), 0755), 0);
  }
  void write(const std::string& rel, const std::string& content, const std::string& dir = {}) {
    std::string p = (dir.empty() ? root_ : dir) + "/" + rel;
    unique_fd fd(open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd) << p << ": " << strerror(errno);
    ASSERT_EQ(::write(fd.get(), content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ASSERT_EQ(fchmod(fd.get(), 0644), 0);
  }
  void symlink_at(const char* target, const std::string& rel) {
    std::string p = root_ + "/" + rel;
    ASSERT_EQ(symlink(target, p.c_str()), 0) << p << ": " << strerror(errno);
  }
  void make_socket(const std::string& rel) {
    std::string p = root_ + "/" + rel;
    unique_fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(s);
    struct sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    ASSERT_LT(p.size(), sizeof sa.sun_path) << "temp path too long for a socket";
    memcpy(sa.sun_path, p.c_str(), p.size() + 1);
    ASSERT_EQ(bind(s.get(), reinterpret_cast<struct sockaddr*>(&sa), sizeof sa), 0) << strerror(errno);
  }

  OpenResult beneath(const std::string& path, const std::vector<std::string>& index = {"index.html"}) {
    return open_beneath(root_fd_, path, index);
  }

  static std::string contents(const OpenResult& r) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = pread(r.fd.get(), buf, sizeof buf, static_cast<off_t>(out.size()))) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // Runs `fn` as an unprivileged user so that file permissions apply: in a forked child that drops
  // to uid/gid 65534 when the tests run as root, in this process otherwise. Returns fn's result,
  // or -1 when the privilege drop itself failed (the caller skips).
  static int unprivileged(const std::function<int()>& fn) {
    if (geteuid() != 0) return fn();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
          setresuid(65534, 65534, 65534) != 0 || geteuid() == 0) {
        _exit(255);
      }
      _exit(fn());
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) == 255) return -1;
    return WEXITSTATUS(status);
  }

  std::string base_;
  std::string root_;
  DocRoot root_fd_;
};

TEST_F(OpenBeneath, RegularFile) {
  OpenResult r = beneath("/file.txt");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  ASSERT_TRUE(r.fd);
  EXPECT_EQ(r.path, "/file.txt");
  EXPECT_TRUE(S_ISREG(r.st.st_mode));
  EXPECT_EQ(r.st.st_size, 5);
  EXPECT_EQ(contents(r), "hello");
  struct stat st {};
  ASSERT_EQ(fstat(r.fd.get(), &st), 0);
  EXPECT_EQ(st.st_ino, r.st.st_ino);
  // Read-only (O_NONBLOCK stays from the open: a regular file reads whole regardless, as contents()
  // shows), and never inherited by a CGI child.
  int fl = fcntl(r.fd.get(), F_GETFL);
  EXPECT_EQ(fl & O_ACCMODE, O_RDONLY);
  EXPECT_NE(fcntl(r.fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST_F(OpenBeneath, EmptyFile) {
  OpenResult r = beneath("/empty.txt");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.st.st_size, 0);
}

TEST_F(OpenBeneath, NestedFile) {
  OpenResult r = beneath("/sub/page.html");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(contents(r), "<p>page</p>");
}

TEST_F(OpenBeneath, Missing) {
  EXPECT_EQ(beneath("/missing").outcome, OpenOutcome::not_found);
  EXPECT_EQ(beneath("/missing/").outcome, OpenOutcome::not_found);
  EXPECT_EQ(beneath("/missing/x").outcome, OpenOutcome::not_found);
  EXPECT_EQ(beneath("/sub/missing.html").outcome, OpenOutcome::not_found);
  EXPECT_EQ(beneath("/dangling").outcome, OpenOutcome::not_found);
  // A file used as a directory.
  EXPECT_EQ(beneath("/file.txt/").outcome, OpenOutcome::not_found);
  EXPECT_EQ(beneath("/file.txt/x").outcome, OpenOutcome::not_found);
  EXPECT_EQ(beneath("/" + std::string(300, 'a')).outcome, OpenOutcome::not_found);
  EXPECT_FALSE(beneath("/missing").fd);
}

TEST_F(OpenBeneath, DirectoryWithoutSlashRedirects) {
  OpenResult r = beneath("/sub");
  EXPECT_EQ(r.outcome, OpenOutcome::directory_redirect);
  EXPECT_EQ(r.path, "/sub");
  EXPECT_FALSE(r.fd);
  EXPECT_EQ(beneath("/withindex").outcome, OpenOutcome::directory_redirect);
  EXPECT_EQ(beneath("/link_dir").outcome, OpenOutcome::directory_redirect);
}

TEST_F(OpenBeneath, IndexFile) {
  OpenResult r = beneath("/withindex/");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.path, "/withindex/index.html");
  EXPECT_EQ(contents(r), "index here");
}

TEST_F(OpenBeneath, IndexListTriedInOrder) {
  OpenResult r = beneath("/secondindex/", {"index.html", "index.htm"});
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.path, "/secondindex/index.htm");
  EXPECT_EQ(contents(r), "second index");
  // The first existing entry wins.
  r = beneath("/withindex/", {"index.htm", "index.html"});
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.path, "/withindex/index.html");
}

TEST_F(OpenBeneath, RootDirectory) {
  EXPECT_EQ(beneath("/").outcome, OpenOutcome::forbidden);
  OpenResult r = beneath("/", {"index.html", "file.txt"});
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.path, "/file.txt");
  EXPECT_EQ(contents(r), "hello");
}

TEST_F(OpenBeneath, NoIndexIsForbidden) {
  EXPECT_EQ(beneath("/noindex/").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/noindex/", {}).outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/sub/", {"index.html", "index.htm"}).outcome, OpenOutcome::forbidden);
}

TEST_F(OpenBeneath, ForbiddenIndexStopsTheSearch) {
  // index.html escapes the root: forbidden, even though index.htm would be servable.
  EXPECT_EQ(beneath("/badindex/", {"index.html", "index.htm"}).outcome, OpenOutcome::forbidden);
  // An index that is a directory is not served either.
  EXPECT_EQ(beneath("/dirindex/", {"index.html", "index.htm"}).outcome, OpenOutcome::forbidden);
}

TEST_F(OpenBeneath, IndexNamesCannotWalk) {
  EXPECT_EQ(beneath("/sub/", {"../file.txt"}).outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/sub/", {".."}).outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/sub/", {"."}).outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/sub/", {""}).outcome, OpenOutcome::forbidden);
  OpenResult r = beneath("/sub/", {"../file.txt", "page.html"});
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(r.path, "/sub/page.html");
}

TEST_F(OpenBeneath, SymlinksInsideRootAreFollowed) {
  OpenResult r = beneath("/link_in");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(contents(r), "hello");
  r = beneath("/sub/link_up");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(contents(r), "hello");
  r = beneath("/link_dir/page.html");
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(contents(r), "<p>page</p>");
}

TEST_F(OpenBeneath, AbsoluteSymlinkIsForbiddenEvenInsideRoot) {
  // RESOLVE_BENEATH refuses every absolute symlink: the root a process sees is not the DocumentRoot.
  EXPECT_EQ(beneath("/link_abs_in").outcome, OpenOutcome::forbidden);
}

TEST_F(OpenBeneath, SymlinkOutOfRootIsForbidden) {
  EXPECT_EQ(beneath("/link_etc").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/link_etc_dir/passwd").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/link_etc_dir").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/link_etc_dir/").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/link_escape").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/sub/deep_escape").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/link_escape_via_sub").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/link_magic").outcome, OpenOutcome::forbidden);
  EXPECT_FALSE(beneath("/link_escape").fd);
}

TEST_F(OpenBeneath, SymlinkLoopIsForbidden) {
  EXPECT_EQ(beneath("/loop_a").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/self").outcome, OpenOutcome::forbidden);
  EXPECT_EQ(beneath("/self/x").outcome, OpenOutcome::forbidden);
}

TEST_F(OpenBeneath, FifoIsForbiddenWithoutBlocking) {
  // Opening a FIFO for reading without O_NONBLOCK would wait for a writer forever; the alarm turns
  // such a hang into a failure instead of a stuck test run.
  alarm(10);
  OpenResult r = beneath("/fifo");
  alarm(0);
  EXPECT_EQ(r.outcome, OpenOutcome::forbidden);
  EXPECT_FALSE(r.fd);
}

TEST_F(OpenBeneath, SocketIsForbidden) { EXPECT_EQ(beneath("/sock").outcome, OpenOutcome::forbidden); }

TEST_F(OpenBeneath, NotADecodedPathIsBadRequest) {
  EXPECT_EQ(beneath("").outcome, OpenOutcome::bad_request);
  EXPECT_EQ(beneath("file.txt").outcome, OpenOutcome::bad_request);
  EXPECT_EQ(beneath(std::string("/file.txt\0/x", 12)).outcome, OpenOutcome::bad_request);
}

TEST_F(OpenBeneath, DecodedTraversalNeverLeavesRoot) {
  // The literal name "%2e%2e" (from "%252e%252e") is a file name, looked up as such.
  EXPECT_EQ(beneath(*decode_request_path("/%252e%252e/outside.txt")).outcome, OpenOutcome::not_found);
  write("%2e%2e", "literal");
  OpenResult r = beneath(*decode_request_path("/%252e%252e"));
  ASSERT_EQ(r.outcome, OpenOutcome::file);
  EXPECT_EQ(contents(r), "literal");
}

TEST_F(OpenBeneath, UnreadableFileIsForbidden) {
  write("noperm.txt", "private");
  ASSERT_EQ(chmod((root_ + "/noperm.txt").c_str(), 0000), 0);
  int got = unprivileged([this] {
    if (beneath("/file.txt").outcome != OpenOutcome::file) return 100;  // the tree is not reachable
    return static_cast<int>(beneath("/noperm.txt").outcome);
  });
  if (got == -1 || got == 100) {
    GTEST_SKIP() << "running as root and cannot drop to uid 65534 (or it cannot read the test tree), "
                    "so file permissions would not apply: root reads a mode 0000 file";
  }
  EXPECT_EQ(got, static_cast<int>(OpenOutcome::forbidden));
}

TEST_F(OpenBeneath, UnreadableDirectoryIsForbidden) {
  mkdir_p("closed");
  write("closed/index.html", "x");
  ASSERT_EQ(chmod((root_ + "/closed").c_str(), 0000), 0);
  int got = unprivileged([this] {
    if (beneath("/file.txt").outcome != OpenOutcome::file) return 100;
    return static_cast<int>(beneath("/closed/index.html").outcome) * 10 +
           static_cast<int>(beneath("/closed/").outcome);
  });
  if (got == -1 || got == 100) GTEST_SKIP() << "cannot run unprivileged as root; see UnreadableFileIsForbidden";
  EXPECT_EQ(got, static_cast<int>(OpenOutcome::forbidden) * 10 + static_cast<int>(OpenOutcome::forbidden));
}

TEST_F(OpenBeneath, SearchOnlyDirectoryStillServesItsIndex) {
  // Mode 0711 (search but no read), as shared hosts set on home directories: the directory cannot be
  // listed, yet its index and files are served and the slash redirect still happens.
  mkdir_p("searchonly");
  write("searchonly/index.html", "searchable");
  ASSERT_EQ(chmod((root_ + "/searchonly").c_str(), 0711), 0);
  int got = unprivileged([this] {
    if (beneath("/file.txt").outcome != OpenOutcome::file) return 100;
    OpenResult r = beneath("/searchonly/");
    if (r.outcome != OpenOutcome::file) return 1;
    if (r.path != "/searchonly/index.html") return 2;
    if (beneath("/searchonly").outcome != OpenOutcome::directory_redirect) return 3;
    if (beneath("/searchonly/index.html").outcome != OpenOutcome::file) return 4;
    return 0;
  });
  if (got == -1 || got == 100) GTEST_SKIP() << "cannot run unprivileged as root; see UnreadableFileIsForbidden";
  EXPECT_EQ(got, 0);
}

TEST_F(OpenBeneath, NothingOutsideRootIsEverOpened) {
  // Every way a decoded request path could name the file beside the root.
  const char* targets[] = {"/../outside.txt",        "/%2e%2e/outside.txt", "/sub/../../outside.txt",
                           "/%2e%2e%2foutside.txt",  "/.%2e/outside.txt",   "/link_escape",
                           "/sub/deep_escape",       "/link_escape_via_sub"};
  for (const char* t : targets) {
    auto decoded = decode_request_path(t);
    if (!decoded) continue;  // 400 before any open
    OpenResult r = beneath(*decoded);
    EXPECT_NE(r.outcome, OpenOutcome::file) << t;
    if (r.fd) {
      EXPECT_NE(contents(r), "secret outside the root") << t;
    }
  }
}

}  // namespace
}  // namespace itk

// The Location of a directory's redirect never names another host.
TEST(StaticHandler, DirectoryLocationStaysOnThisHost) {
  EXPECT_EQ(itk::directory_location("/dir"), "/dir/");
  EXPECT_EQ(itk::directory_location("/a%20b"), "/a%20b/");
  EXPECT_EQ(itk::directory_location("//static"), "/static/");
  EXPECT_EQ(itk::directory_location("///evil.example/x"), "/evil.example/x/");
  EXPECT_EQ(itk::directory_location("/\\evil.example"), "/%5Cevil.example/");
  EXPECT_EQ(itk::directory_location("/a\\b"), "/a%5Cb/");
}

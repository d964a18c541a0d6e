// Tests for media type lookup: the built-in table, extension rules, and mime.types(5) files.
#include "config/mime.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr const char* kOctet = "application/octet-stream";

TEST(MimeTypes, BuiltinWebTypes) {
  MimeTypes m;
  EXPECT_EQ(m.lookup("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("index.htm"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("style.css"), "text/css; charset=utf-8");
  EXPECT_EQ(m.lookup("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(m.lookup("mod.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(m.lookup("readme.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(m.lookup("notes.md"), "text/markdown; charset=utf-8");
  EXPECT_EQ(m.lookup("data.csv"), "text/csv; charset=utf-8");
  EXPECT_EQ(m.lookup("data.json"), "application/json");
  EXPECT_EQ(m.lookup("feed.xml"), "application/xml");
  EXPECT_EQ(m.lookup("logo.svg"), "image/svg+xml");
  EXPECT_EQ(m.lookup("a.png"), "image/png");
  EXPECT_EQ(m.lookup("a.jpg"), "image/jpeg");
  EXPECT_EQ(m.lookup("a.jpeg"), "image/jpeg");
  EXPECT_EQ(m.lookup("a.gif"), "image/gif");
  EXPECT_EQ(m.lookup("a.webp"), "image/webp");
  EXPECT_EQ(m.lookup("a.avif"), "image/avif");
  EXPECT_EQ(m.lookup("favicon.ico"), "image/x-icon");
  EXPECT_EQ(m.lookup("f.woff"), "font/woff");
  EXPECT_EQ(m.lookup("f.woff2"), "font/woff2");
  EXPECT_EQ(m.lookup("f.ttf"), "font/ttf");
  EXPECT_EQ(m.lookup("f.otf"), "font/otf");
  EXPECT_EQ(m.lookup("doc.pdf"), "application/pdf");
  EXPECT_EQ(m.lookup("a.zip"), "application/zip");
  EXPECT_EQ(m.lookup("a.gz"), "application/gzip");
  EXPECT_EQ(m.lookup("v.mp4"), "video/mp4");
  EXPECT_EQ(m.lookup("v.webm"), "video/webm");
  EXPECT_EQ(m.lookup("s.mp3"), "audio/mpeg");
  EXPECT_EQ(m.lookup("s.ogg"), "audio/ogg");
  EXPECT_EQ(m.lookup("m.wasm"), "application/wasm");
}

TEST(MimeTypes, LastExtensionCaseInsensitive) {
  MimeTypes m;
  EXPECT_EQ(m.lookup("INDEX.HTML"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("a.PnG"), "image/png");
  EXPECT_EQ(m.lookup("backup.tar.gz"), "application/gzip");
  EXPECT_EQ(m.lookup("page.html.gz"), "application/gzip");
  EXPECT_EQ(m.lookup("archive.gz.html"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("/srv/www/site/dir/a.css"), "text/css; charset=utf-8");
}

TEST(MimeTypes, NoExtension) {
  MimeTypes m;
  EXPECT_EQ(m.lookup(""), kOctet);
  EXPECT_EQ(m.lookup("README"), kOctet);
  EXPECT_EQ(m.lookup(".htaccess"), kOctet);
  EXPECT_EQ(m.lookup(".html"), kOctet);  // a dotfile named ".html" has no extension
  EXPECT_EQ(m.lookup("dir/.htaccess"), kOctet);
  EXPECT_EQ(m.lookup("/a/.css"), kOctet);
  EXPECT_EQ(m.lookup("file."), kOctet);
  EXPECT_EQ(m.lookup("."), kOctet);
  EXPECT_EQ(m.lookup(".."), kOctet);
  EXPECT_EQ(m.lookup("site.d/file"), kOctet);  // a dot in a directory name is no extension
  EXPECT_EQ(m.lookup("dir.html/"), kOctet);
  EXPECT_EQ(m.lookup("x.unknownext"), kOctet);
  EXPECT_EQ(m.lookup("x.html "), kOctet);
  // A dotfile can still have an extension after its name.
  EXPECT_EQ(m.lookup(".hidden.txt"), "text/plain; charset=utf-8");
}

class MimeFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "itk-mime-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content) {
    std::string p = dir_ + "/" + name;
    unique_fd fd(open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    EXPECT_TRUE(fd) << strerror(errno);
    EXPECT_EQ(::write(fd.get(), content.data(), content.size()), static_cast<ssize_t>(content.size()));
    return p;
  }
  std::string dir_;
};

TEST_F(MimeFile, EntriesOverrideBuiltins) {
  std::string p = write("mime.types",
                        "# comment line\n"
                        "\n"
                        "   \t \n"
                        "image/x-custom\t\tpng PNGX\n"
                        "application/x-thing  thing   # trailing comment\n"
                        "application/x-multi a1 a2\ta3\n"
                        "application/only-type\n"
                        "bogus-no-slash foo\n"
                        "/nosubtype bar\n"
                        "notype/ baz\n"
                        "#image/x-commented commented\n"
                        "text/vnd.custom .dotted\n"
                        "Image/X-Upper upper\n"
                        "text/plain;charset=iso-8859-1 latin\n"
                        "text/html html htm shtml\n"
                        "application/x-crlf crlf\r\n"
                        "application/x-last last");  // no final newline
  MimeTypes m;
  m.load_file(p);
  EXPECT_EQ(m.lookup("a.png"), "image/x-custom");
  EXPECT_EQ(m.lookup("a.pngx"), "image/x-custom");
  EXPECT_EQ(m.lookup("a.thing"), "application/x-thing");
  EXPECT_EQ(m.lookup("a.a1"), "application/x-multi");
  EXPECT_EQ(m.lookup("a.a2"), "application/x-multi");
  EXPECT_EQ(m.lookup("a.a3"), "application/x-multi");
  EXPECT_EQ(m.lookup("a.foo"), kOctet);
  EXPECT_EQ(m.lookup("a.bar"), kOctet);
  EXPECT_EQ(m.lookup("a.baz"), kOctet);
  EXPECT_EQ(m.lookup("a.commented"), kOctet);
  EXPECT_EQ(m.lookup("a.dotted"), "text/vnd.custom");
  EXPECT_EQ(m.lookup("a.upper"), "image/x-upper");
  EXPECT_EQ(m.lookup("a.latin"), "text/plain;charset=iso-8859-1");
  // A textual type from the file gets the same charset as the built-in one would.
  EXPECT_EQ(m.lookup("a.html"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("a.shtml"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("a.crlf"), "application/x-crlf");
  EXPECT_EQ(m.lookup("a.last"), "application/x-last");
  // Built-ins the file does not mention stay.
  EXPECT_EQ(m.lookup("a.css"), "text/css; charset=utf-8");
  EXPECT_EQ(m.lookup("a.woff2"), "font/woff2");
}

TEST_F(MimeFile, LaterLineWins) {
  std::string p = write("mime.types", "application/x-one dup\napplication/x-two dup\n");
  MimeTypes m;
  m.load_file(p);
  EXPECT_EQ(m.lookup("a.dup"), "application/x-two");
}

TEST_F(MimeFile, MissingFileIsIgnored) {
  MimeTypes m;
  m.load_file(dir_ + "/does-not-exist");
  EXPECT_EQ(m.lookup("a.html"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("a.png"), "image/png");
}

TEST_F(MimeFile, UnreadableFileLeavesBuiltins) {
  MimeTypes m;
  m.load_file(dir_);  // a directory: read() fails with EISDIR
  EXPECT_EQ(m.lookup("a.html"), "text/html; charset=utf-8");
}

TEST_F(MimeFile, EmptyFile) {
  MimeTypes m;
  m.load_file(write("empty", ""));
  EXPECT_EQ(m.lookup("a.png"), "image/png");
}

TEST(MimeTypes, SystemMimeTypesKeepsCharsets) {
  if (access("/etc/mime.types", R_OK) != 0) GTEST_SKIP() << "/etc/mime.types is not installed (package media-types)";
  MimeTypes m;
  m.load_file("/etc/mime.types");
  EXPECT_EQ(m.lookup("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(m.lookup("a.css"), "text/css; charset=utf-8");
  EXPECT_EQ(m.lookup("a.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(m.lookup("a.png"), "image/png");
  EXPECT_EQ(m.lookup("a.pdf"), "application/pdf");
}

}  // namespace
}  // namespace itk

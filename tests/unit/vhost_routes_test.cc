// Unit tests of the Apache-style vhost rules: every new key parsed (and refused with its file:line), the
// segment-wise prefix and redirect matching, Header lines set on a head, and NoExec on a real tree with
// symbolic links.
#include "config/vhost_routes.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "http/doc_root.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

namespace fs = std::filesystem;

// A drop-in "a.conf" holding one vhost whose keys after the required three start at line 5; the errors of
// the whole load (a [server] text first, when given) as "file:line: Key: message".
Config load_vhost(const std::string& extra, std::vector<std::string>& errors, const std::string& server = "") {
  Config cfg;
  cfg.config_file = "itk.conf";
  cfg.config_dir = "itk.d";
  std::vector<ConfigError> found;
  if (!server.empty()) parse_config_text(server, "itk.conf", false, cfg, found);
  parse_config_text("[vhost]\nServerName = a.test\nDocumentRoot = /srv/a\nAssignUserID = #2001 #2001\n" + extra,
                    "a.conf", true, cfg, found);
  for (const ConfigError& e : found) errors.push_back(e.str());
  return cfg;
}

std::vector<std::string> error_lines(const std::string& extra) {
  std::vector<std::string> errors;
  (void)load_vhost(extra, errors);
  return errors;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += "\n  " + l;
  return s.empty() ? " (no errors)" : s;
}

// ---- parsing through the loader ----

TEST(VHostRoutesConfig, EveryKeyAccepted) {
  std::vector<std::string> errors;
  Config cfg = load_vhost(
      "FallbackResource = /index.php\n"
      "Redirect = 301 /.well-known/carddav /remote.php/dav/\n"
      "Redirect = /old https://example.org/new\n"
      "Redirect = gone /removed\n"
      "Redirect = seeother /form /thanks?x=1\n"
      "RedirectHTTPS = yes\n"
      "ErrorDocument = 404 /errors/404.html\n"
      "ErrorDocument = 503 /errors/busy.php?why=load\n"
      "Header = X-Frame-Options \"SAMEORIGIN\"\n"
      "Header = always set Strict-Transport-Security \"max-age=31536000; includeSubDomains\"\n"
      "Header = X-Plain plain value\n"
      "NoExec = /wp-content/uploads/ /files\n"
      "NoExec = /a/%62/./c//\n",
      errors);
  ASSERT_TRUE(errors.empty()) << joined(errors);
  const VHost& v = cfg.vhosts.at(0);
  EXPECT_EQ(v.fallback_resource, "/index.php");
  EXPECT_TRUE(v.fallback_resource_set);
  ASSERT_EQ(v.redirects.size(), 4u);
  EXPECT_EQ(v.redirects[0].status, 301);
  EXPECT_EQ(v.redirects[0].path, "/.well-known/carddav");
  EXPECT_EQ(v.redirects[0].url, "/remote.php/dav/");
  EXPECT_EQ(v.redirects[1].status, 302);
  EXPECT_EQ(v.redirects[1].url, "https://example.org/new");
  EXPECT_EQ(v.redirects[2].status, 410);
  EXPECT_EQ(v.redirects[2].url, "");
  EXPECT_EQ(v.redirects[3].status, 303);
  EXPECT_TRUE(v.redirect_https);
  ASSERT_EQ(v.error_documents.size(), 2u);
  EXPECT_EQ(v.error_documents[0].status, 404);
  EXPECT_EQ(v.error_documents[0].target, "/errors/404.html");
  EXPECT_EQ(v.error_documents[1].target, "/errors/busy.php?why=load");
  ASSERT_EQ(v.headers.size(), 3u);
  EXPECT_EQ(v.headers[0].name, "X-Frame-Options");
  EXPECT_EQ(v.headers[0].value, "SAMEORIGIN");
  EXPECT_EQ(v.headers[1].name, "Strict-Transport-Security");
  EXPECT_EQ(v.headers[1].value, "max-age=31536000; includeSubDomains");
  EXPECT_EQ(v.headers[2].value, "plain value");
  EXPECT_EQ(v.no_exec, (std::vector<std::string>{"/wp-content/uploads", "/files", "/a/b/c"}));
}

TEST(VHostRoutesConfig, BadValuesNameFileAndLine) {
  // Each text after the vhost's first four lines, and the one error it must give ("" for none).
  const struct {
    const char* text;
    const char* error;
  } cases[] = {
      {"FallbackResource = index.php\n", "a.conf:5: FallbackResource: `index.php` is not a local path (start it with /)"},
      {"\nFallbackResource = /a/../x.php\n",
       "a.conf:6: FallbackResource: `/a/../x.php` is not a valid path (a bad %-escape, an encoded / or NUL, or ..)"},
      {"FallbackResource = /app/\n",
       "a.conf:5: FallbackResource: `/app/` is a directory; name the script or file itself (e.g. /index.php)"},
      {"FallbackResource = /index.php?x=1\n",
       "a.conf:5: FallbackResource: `/index.php?x=1` has a query or fragment; give the path alone"},
      {"FallbackResource = /a /b\n", "a.conf:5: FallbackResource: expected one path, got `/a /b`"},
      {"Redirect = 399 /a /b\n",
       "a.conf:5: Redirect: `399` is not a status (permanent, temp, seeother, gone, or 301, 302, 303, 307, 308, 410)"},
      {"Redirect = /a\n", "a.conf:5: Redirect: expected `[status] /path URL`: the URL is missing"},
      {"Redirect = gone /a /b\n", "a.conf:5: Redirect: a `gone` (410) redirect takes no URL"},
      {"Redirect = /a example.org/b\n",
       "a.conf:5: Redirect: `example.org/b` is not a URL (such as https://example.org/path) or a local path"},
      {"Redirect = /a //evil.test/\n", "a.conf:5: Redirect: `//evil.test/` would name another host (//...)"},
      {"Redirect = 301 /a /b /c\n", "a.conf:5: Redirect: expected `[status] /path URL`, got more: `/c`"},
      {"RedirectHTTPS = maybe\n", "a.conf:5: RedirectHTTPS: `maybe` is not a boolean (use yes or no)"},
      {"RedirectHTTPS = yes\nRedirectHTTPS = no\n", "a.conf:6: RedirectHTTPS: given twice in this section (first at line 5)"},
      {"ErrorDocument = 200 /ok.html\n", "a.conf:5: ErrorDocument: `200` is not an error status (400..599)"},
      {"ErrorDocument = 404 \"Not here\"\n",
       "a.conf:5: ErrorDocument: itk serves a local document (a path); text messages are not supported"},
      {"ErrorDocument = 404 http://example.org/\n",
       "a.conf:5: ErrorDocument: `http://example.org/` is not a local path: itk serves local documents only (start it "
       "with /)"},
      {"ErrorDocument = 404 /a.html\nErrorDocument = 404 /b.html\n",
       "a.conf:6: ErrorDocument: 404 already has a document (/a.html)"},
      {"Header = X Bad Name: v\n", ""},  // the value is "Bad Name: v"
      {"Header = X-A \"a\tb\"\n", ""},  // a tab is allowed
      {"Header = X(y) v\n", "a.conf:5: Header: `X(y)` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"},
      {"Header = Content-Length 5\n", "a.conf:5: Header: `Content-Length` is set by itk itself for each response"},
      {"Header = X-A \"open\n", "a.conf:5: Header: the value's opening \" has no closing \""},
      {"Header = X-A 1\nHeader = x-a 2\n", "a.conf:6: Header: x-a is already set by an earlier Header line"},
      {"NoExec = uploads\n", "a.conf:5: NoExec: `uploads` is not a local path (start it with /)"},
      {"NoExec = /up%2floads\n",
       "a.conf:5: NoExec: `/up%2floads` is not a valid path (a bad %-escape, an encoded / or NUL, or ..)"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> errors = error_lines(c.text);
    std::vector<std::string> want;
    if (*c.error) want.emplace_back(c.error);
    EXPECT_EQ(errors, want) << c.text;
  }
}

TEST(VHostRoutesConfig, ControlCharactersInHeaderRefused) {
  HeaderLine h;
  const std::string refused = "contains a control character (CR, LF, ...): a header must be one line";
  EXPECT_EQ(parse_header_line("X-A \"a\rb\"", h), refused);
  EXPECT_EQ(parse_header_line("X-A a\nb", h), refused);
  EXPECT_EQ(parse_header_line("X-A a\x7f", h), refused);
  EXPECT_EQ(parse_header_line("X\rA v", h), refused);
  EXPECT_EQ(parse_header_line("X\nInjected: 1", h), refused);
  EXPECT_EQ(parse_header_line("X-Empty \"\"", h), "");
  EXPECT_EQ(h.value, "");
}

TEST(VHostRoutesConfig, FallbackResourceFromServerAndDisabled) {
  std::vector<std::string> errors;
  Config cfg = load_vhost("[vhost]\nServerName = b.test\nDocumentRoot = /srv/b\nAssignUserID = #2002 #2002\n"
                    "FallbackResource = disabled\n"
                    "[vhost]\nServerName = c.test\nDocumentRoot = /srv/c\nAssignUserID = #2003 #2003\n"
                    "FallbackResource = /app.html\n",
                    errors, "[server]\nFallbackResource = /index.php\n");
  ASSERT_TRUE(errors.empty()) << joined(errors);
  EXPECT_EQ(cfg.server.fallback_resource, "/index.php");
  std::vector<ConfigError> more, warnings;
  validate_config(cfg, false, more, warnings);
  EXPECT_EQ(cfg.vhosts.at(0).fallback_resource, "/index.php");
  EXPECT_EQ(cfg.vhosts.at(1).fallback_resource, "");
  EXPECT_EQ(cfg.vhosts.at(2).fallback_resource, "/app.html");
}

TEST(VHostRoutesConfig, ServerRefusesVHostOnlyKeys) {
  std::vector<std::string> errors;
  (void)load_vhost("", errors, "[server]\nRedirect = /a /b\nFallbackResource = nope\n");
  EXPECT_EQ(errors, (std::vector<std::string>{
                        "itk.conf:2: Redirect: belongs in a [vhost] section of a drop-in",
                        "itk.conf:3: FallbackResource: `nope` is not a local path (start it with /)"}));
}

// ---- matching ----

TEST(VHostRoutesMatch, PathUnderIsSegmentWise) {
  EXPECT_TRUE(path_under("/wp-content/uploads", "/wp-content/uploads"));
  EXPECT_TRUE(path_under("/wp-content/uploads/x.php", "/wp-content/uploads"));
  EXPECT_FALSE(path_under("/wp-content/uploadsx/x.php", "/wp-content/uploads"));
  EXPECT_FALSE(path_under("/wp-content/Uploads/x.php", "/wp-content/uploads"));
  EXPECT_FALSE(path_under("/wp-content", "/wp-content/uploads"));
  EXPECT_TRUE(path_under("/anything", "/"));
  EXPECT_TRUE(path_under("/dir/x", "/dir/"));
  EXPECT_FALSE(path_under("/dir", "/dir/"));
}

TEST(VHostRoutesMatch, RedirectsAppendTheRestAndKeepTheQuery) {
  std::vector<RedirectRule> rules(3);
  ASSERT_EQ(parse_redirect("301 /.well-known/carddav /remote.php/dav/", rules[0]), "");
  ASSERT_EQ(parse_redirect("/old https://example.org/new", rules[1]), "");
  ASSERT_EQ(parse_redirect("308 /q /target?fixed=1", rules[2]), "");
  const RedirectRule* r = match_redirect(rules, "/.well-known/carddav");
  ASSERT_EQ(r, &rules[0]);
  EXPECT_EQ(redirect_location(*r, "/.well-known/carddav", ""), "/remote.php/dav/");
  EXPECT_EQ(match_redirect(rules, "/.well-known/carddavx"), nullptr);
  r = match_redirect(rules, "/old/a b/c");
  ASSERT_EQ(r, &rules[1]);
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(redirect_location(*r, "/old/a b/c", "?x=1&y=2"), "https://example.org/new/a%20b/c?x=1&y=2");
  EXPECT_EQ(redirect_location(rules[2], "/q/z", "?x=1"), "/target?fixed=1/z");
  EXPECT_EQ(match_redirect(rules, "/older"), nullptr);
  EXPECT_EQ(encode_path("/a\"<>%\xc3\xa9"), "/a%22%3C%3E%25%C3%A9");
}

TEST(VHostRoutesMatch, AcmeAndHttpsLocation) {
  EXPECT_TRUE(is_acme_challenge("/.well-known/acme-challenge/token"));
  EXPECT_FALSE(is_acme_challenge("/.well-known/acme-challenge"));
  EXPECT_FALSE(is_acme_challenge("/.well-known/other"));
  EXPECT_EQ(https_location("example.org", "fallback.test", "/a?b"), "https://example.org/a?b");
  EXPECT_EQ(https_location("", "fallback.test", "/"), "https://fallback.test/");
}

TEST(VHostRoutesMatch, ApplyHeadersReplacesSameName) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nx-frame-options: DENY\r\nConnection: close\r\n\r\nbody";
  apply_headers(head, {{"X-Frame-Options", "SAMEORIGIN"}, {"X-New", "1"}});
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nX-Frame-Options: SAMEORIGIN\r\n"
            "X-New: 1\r\n\r\nbody");
  std::string unchanged = "HTTP/1.1 404 Not Found\r\n\r\n";
  apply_headers(unchanged, {});
  EXPECT_EQ(unchanged, "HTTP/1.1 404 Not Found\r\n\r\n");
}

// ---- NoExec on a real tree ----

class NoExecTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/itk-noexec-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "wp-content/uploads/2026");
    fs::create_directories(dir_ / "real");
    std::ofstream(dir_ / "wp-content/uploads/x.php") << "<?php\n";
    std::ofstream(dir_ / "wp-content/uploads/2026/y.php") << "<?php\n";
    std::ofstream(dir_ / "index.php") << "<?php\n";
    std::ofstream(dir_ / "real/z.php") << "<?php\n";
    fs::create_directory_symlink("wp-content/uploads", dir_ / "media");
    fs::create_symlink("wp-content/uploads/x.php", dir_ / "innocent.php");
    fs::create_directory_symlink("../real", dir_ / "wp-content/files");  // a NoExec prefix that is a link
    root_ = doc_root_at(unique_fd(open(dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)));
    ASSERT_TRUE(root_.ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  DocRoot root_;
};

TEST_F(NoExecTree, TextualAndResolvedPathsAreBothChecked) {
  const std::vector<std::string> prefixes = {"/wp-content/uploads", "/wp-content/files"};
  EXPECT_TRUE(no_exec_blocks(root_, "/wp-content/uploads/x.php", prefixes));
  EXPECT_TRUE(no_exec_blocks(root_, "/wp-content/uploads/2026/y.php", prefixes));
  EXPECT_TRUE(no_exec_blocks(root_, "/media/x.php", prefixes));    // a directory link into uploads
  EXPECT_TRUE(no_exec_blocks(root_, "/innocent.php", prefixes));   // a file link into uploads
  EXPECT_TRUE(no_exec_blocks(root_, "/real/z.php", prefixes));     // where a prefix link leads
  EXPECT_FALSE(no_exec_blocks(root_, "/index.php", prefixes));
  EXPECT_FALSE(no_exec_blocks(root_, "/index.php", {}));
  EXPECT_TRUE(no_exec_blocks(root_, "/missing.php", prefixes));    // cannot be resolved: refused
}

}  // namespace
}  // namespace itk

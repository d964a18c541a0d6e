// Unit tests of the access rules: the .htaccess parser (each honoured form, blocks, lines not applied,
// broken files), its cache, and the path checks against hostile request targets on a real directory tree.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "http/access_rules.h"
#include "http/htaccess.h"
#include "http/static_file.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

namespace fs = std::filesystem;

std::vector<int> note_lines(const Htaccess& h) {
  std::vector<int> v;
  for (const auto& n : h.notes) v.push_back(n.line);
  return v;
}

// ---- the parser ----

TEST(Htaccess, RequireAllDenied) {
  Htaccess h = parse_htaccess("# protect\nRequire all denied\n");
  EXPECT_EQ(h.denies_directory(), 2);
  EXPECT_TRUE(h.notes.empty());
  EXPECT_EQ(parse_htaccess("  REQUIRE   All   DENIED  \r\n").denies_directory(), 1);
}

TEST(Htaccess, DenyFromAllWithOrWithoutOrder) {
  EXPECT_EQ(parse_htaccess("Deny from all\n").denies_directory(), 1);
  Htaccess h = parse_htaccess("Order allow,deny\nDeny from all\n");
  EXPECT_EQ(h.denies_directory(), 2);
  EXPECT_TRUE(h.notes.empty());
  h = parse_htaccess("order deny,allow\ndeny from ALL\n");
  EXPECT_EQ(h.denies_directory(), 2);
  // An allow-list after it opens nothing: itk grants nothing from .htaccess.
  h = parse_htaccess("Order deny,allow\nDeny from all\nAllow from 127.0.0.1\n");
  EXPECT_EQ(h.denies_directory(), 2);
  EXPECT_EQ(note_lines(h), std::vector<int>{3});
}

TEST(Htaccess, IfModulePairAsDokuWikiShipsIt) {
  Htaccess h = parse_htaccess(
      "## no access to the data directory\n"
      "<IfModule mod_authz_core.c>\n"
      "  Require all denied\n"
      "</IfModule>\n"
      "<IfModule !mod_authz_core.c>\n"
      "  Order allow,deny\n"
      "  Deny from all\n"
      "</IfModule>\n");
  ASSERT_EQ(h.denies.size(), 2u);
  EXPECT_EQ(h.denies_directory(), 3);
  EXPECT_TRUE(h.notes.empty());
}

TEST(Htaccess, FilesBlocksApplyToMatchingNamesOnly) {
  Htaccess h = parse_htaccess(
      "<Files wp-config.php>\n"         // 1
      "Require all denied\n"
      "</Files>\n"
      "<Files \"*.log\">\n"              // 4: a wildcard, as Apache's <Files>
      "Deny from all\n"
      "</Files>\n"
      "<Files ~ \"\\.bak$\">\n"           // 7: the regex form
      "Require all denied\n"
      "</Files>\n");
  EXPECT_EQ(h.denies_directory(), 0);
  EXPECT_EQ(h.denies_file("wp-config.php"), 2);
  EXPECT_EQ(h.denies_file("wp-config.php.txt"), 0);
  EXPECT_EQ(h.denies_file("error.log"), 5);
  EXPECT_EQ(h.denies_file("a.bak"), 8);
  EXPECT_EQ(h.denies_file("a.bak.html"), 0);
  EXPECT_EQ(h.denies_file("index.php"), 0);
}

TEST(Htaccess, FilesMatchRegexQuotedOrNotWithInlineCaseFlag) {
  Htaccess h = parse_htaccess("<FilesMatch \"\\.(log|txt)$\">\nRequire all denied\n</FilesMatch>\n");
  EXPECT_EQ(h.denies_file("start.txt"), 2);
  EXPECT_EQ(h.denies_file("x.log"), 2);
  EXPECT_EQ(h.denies_file("x.TXT"), 0);
  EXPECT_EQ(h.denies_file("txt.html"), 0);
  h = parse_htaccess("<filesmatch ^\\.>\nDeny from all\n</FILESMATCH>\n");
  EXPECT_EQ(h.denies_file(".user.ini"), 2);
  EXPECT_EQ(h.denies_file("user.ini"), 0);
  h = parse_htaccess("<FilesMatch \"(?i)\\.(sql|bak)$\">\nRequire all denied\n</FilesMatch>\n");
  EXPECT_EQ(h.denies_file("DUMP.SQL"), 2);
  EXPECT_EQ(h.denies_file("dump.sql.html"), 0);
}

TEST(Htaccess, BlocksNestAndWordfenceStyleFiles) {
  Htaccess h = parse_htaccess(
      "<Files \".user.ini\">\n"
      "<IfModule mod_authz_core.c>\n"
      "\tRequire all denied\n"
      "</IfModule>\n"
      "<IfModule !mod_authz_core.c>\n"
      "\tOrder deny,allow\n"
      "\tDeny from all\n"
      "</IfModule>\n"
      "</Files>\n");
  EXPECT_EQ(h.denies_directory(), 0);
  EXPECT_EQ(h.denies_file(".user.ini"), 3);
  EXPECT_EQ(h.denies_file("index.php"), 0);
}

TEST(Htaccess, GrantsNeverReopen) {
  Htaccess h = parse_htaccess("Require all denied\nRequire all granted\nAllow from all\n");
  EXPECT_EQ(h.denies_directory(), 1);
  EXPECT_EQ(note_lines(h), (std::vector<int>{2, 3}));
  EXPECT_NE(h.notes[0].text.find("never grants"), std::string::npos) << h.notes[0].text;
  h = parse_htaccess("Require all granted\n");
  EXPECT_EQ(h.denies_directory(), 0);
}

TEST(Htaccess, AllowListsItkCannotEvaluateAreRefusedToEveryone) {
  for (const char* line : {"Require valid-user", "Require ip 10.0.0.0/8", "Require local", "Require user admin",
                           "Require host example.org", "Require expr %{REMOTE_ADDR} == '1.2.3.4'"}) {
    Htaccess h = parse_htaccess(std::string("AuthType Basic\n") + line + "\n");
    EXPECT_EQ(h.denies_directory(), 2) << line;
    EXPECT_EQ(note_lines(h), (std::vector<int>{1, 2})) << line;
  }
}

TEST(Htaccess, BlockListsAreNotApplied) {
  Htaccess h = parse_htaccess("Deny from 192.0.2.1\nRequire not ip 192.0.2.2\n");
  EXPECT_EQ(h.denies_directory(), 0);
  EXPECT_EQ(note_lines(h), (std::vector<int>{1, 2}));
}

TEST(Htaccess, UnknownLinesAreNotedWithTheirLineNeverApplied) {
  Htaccess h = parse_htaccess(
      "# BEGIN WordPress\n"             // 1
      "<IfModule mod_rewrite.c>\n"      // 2
      "RewriteEngine On\n"              // 3
      "RewriteRule . /index.php [L]\n"  // 4
      "</IfModule>\n"                   // 5
      "\n"                              // 6
      "Options -Indexes\n");            // 7
  EXPECT_TRUE(h.denies.empty());
  EXPECT_EQ(note_lines(h), (std::vector<int>{3, 4, 7}));
  EXPECT_NE(h.notes[0].text.find("`RewriteEngine On` is not applied"), std::string::npos) << h.notes[0].text;
}

TEST(Htaccess, ConditionsItkDoesNotEvaluateNeverNarrowADeny) {
  Htaccess h = parse_htaccess("<Limit POST PUT>\nDeny from all\n</Limit>\n");
  EXPECT_EQ(h.denies_directory(), 2);
  EXPECT_EQ(note_lines(h), std::vector<int>{1});
  h = parse_htaccess("<If \"%{HTTP_HOST} == 'x'\">\n<Files a.txt>\nRequire all denied\n</Files>\n</If>\n");
  EXPECT_EQ(h.denies_file("a.txt"), 3);
  EXPECT_EQ(h.denies_file("b.txt"), 0);
}

TEST(Htaccess, ContinuationLines) {
  Htaccess h = parse_htaccess("Require \\\n  all \\\n denied\nRewriteEngine on\n");
  EXPECT_EQ(h.denies_directory(), 1);
  EXPECT_EQ(note_lines(h), std::vector<int>{4});
}

TEST(Htaccess, BrokenStructureDeniesTheDirectory) {
  Htaccess h = parse_htaccess("<Files a.txt>\nRequire all denied\n");  // never closed
  EXPECT_EQ(h.denies_directory(), 1);
  h = parse_htaccess("<IfModule x>\n</Files>\nRequire all granted\n");  // closes the wrong block
  EXPECT_EQ(h.denies_directory(), 2);
  EXPECT_EQ(note_lines(h), std::vector<int>{2});  // nothing after it is read
  h = parse_htaccess("RewriteEngine on\n<Files a.txt\n");
  EXPECT_EQ(h.denies_directory(), 2);
  h = parse_htaccess("<FilesMatch>\n</FilesMatch>\n");
  EXPECT_EQ(h.denies_directory(), 1);
  h = parse_htaccess("</IfModule>\n");
  EXPECT_EQ(h.denies_directory(), 1);
}

TEST(Htaccess, RegexItCannotUseAppliesToEveryFile) {
  // Look-behind is PCRE, not ECMAScript: the block's deny then covers every name.
  Htaccess h = parse_htaccess("<FilesMatch \"(?<!index)\\.php$\">\nRequire all denied\n</FilesMatch>\n");
  EXPECT_EQ(h.denies_file("index.php"), 2);
  EXPECT_EQ(h.denies_file("a.html"), 2);
  EXPECT_EQ(note_lines(h), std::vector<int>{1});
  h = parse_htaccess("<FilesMatch \"" + std::string(kMaxNamePatternLength + 1, 'a') + "\">\nDeny from all\n</FilesMatch>\n");
  EXPECT_EQ(h.denies_file("b"), 2);
}

TEST(Htaccess, ArbitraryBytesNeverCrash) {
  std::string s;
  for (int i = 0; i < 4096; i++) s += static_cast<char>((i * 7919) % 256);
  (void)parse_htaccess(s);
  (void)parse_htaccess("<");
  (void)parse_htaccess(">");
  (void)parse_htaccess("<>\n</>\n<FilesMatch \"\">\n");
  (void)parse_htaccess("\\");
  (void)parse_htaccess("<FilesMatch \"(((\">\nRequire all denied\n</FilesMatch>");
}

// ---- a document root on disk ----

class Tree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/itk-access-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root = tmpl;
    vh.document_root = root;
    root_fd = doc_root_at(unique_fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)));
    ASSERT_TRUE(root_fd.ok());
  }
  void TearDown() override { fs::remove_all(root); }

  void write(const std::string& rel, const std::string& text) {
    fs::path p = fs::path(root) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  }

  // What a request for `target` (as the client sends it) gets from the checks before anything is opened:
  // "400" when the target cannot be decoded, "deny" or "ok".
  std::string asked(const std::string& target) { return asked_of(access, target); }
  std::string asked_of(AccessCheck& check, const std::string& target) {
    std::optional<std::string> path = decode_request_path(target);
    if (!path) return "400";
    return check.check_request(root_fd, vh, *path).allowed ? "ok" : "deny";
  }

  void expect_answers(const std::vector<std::pair<std::string, std::string>>& cases) {
    for (const auto& [target, want] : cases) EXPECT_EQ(asked(target), want) << target;
  }

  // The check of what `rel` really is, after opening it as a request for `asked_path` would.
  bool resolved_allowed(const std::string& rel, const std::string& asked_path) {
    unique_fd fd(open((root + "/" + rel).c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd) << rel;
    return access.check_resolved(root_fd, vh, fd.get(), asked_path).allowed;
  }

  std::string root;
  DocRoot root_fd;
  VHost vh;
  AccessCheck access;
};

TEST(AccessPaths, DotSegments) {
  EXPECT_TRUE(has_dot_segment("/.htaccess"));
  EXPECT_TRUE(has_dot_segment("/.git/config"));
  EXPECT_TRUE(has_dot_segment("/a/.env"));
  EXPECT_TRUE(has_dot_segment("/a/.svn/"));
  EXPECT_TRUE(has_dot_segment("/.well-known/.secret"));
  EXPECT_TRUE(has_dot_segment("/a/.well-known/x"));  // only the top-level one is ACME's
  EXPECT_FALSE(has_dot_segment("/.well-known/acme-challenge/token"));
  EXPECT_FALSE(has_dot_segment("/a.b/c.d"));
  EXPECT_FALSE(has_dot_segment("/"));
}

TEST(AccessPaths, PrefixesByWholeSegments) {
  std::vector<std::string> p{"/data", "/inc/lib"};
  EXPECT_NE(denying_prefix(p, "/data"), nullptr);
  EXPECT_NE(denying_prefix(p, "/data/"), nullptr);
  EXPECT_NE(denying_prefix(p, "/data/pages/start.txt"), nullptr);
  EXPECT_NE(denying_prefix(p, "/inc/lib/x.php"), nullptr);
  EXPECT_EQ(denying_prefix(p, "/database"), nullptr);
  EXPECT_EQ(denying_prefix(p, "/inc"), nullptr);
  EXPECT_EQ(denying_prefix(p, "/x/data"), nullptr);
  std::vector<std::string> all{"/"};
  EXPECT_NE(denying_prefix(all, "/index.html"), nullptr);
}

TEST_F(Tree, DotFilesByDefaultButWellKnown) {
  write("index.html", "x");
  write(".well-known/acme-challenge/token", "t");
  expect_answers({{"/.htaccess", "deny"}, {"/.user.ini", "deny"}, {"/.env", "deny"}, {"/.git/config", "deny"},
                  {"/.well-known/acme-challenge/token", "ok"}, {"/index.html", "ok"}});
  vh.deny_dot_files = false;
  expect_answers({{"/.env", "ok"}, {"/.git/config", "ok"}, {"/.htaccess", "deny"}, {"/a/.htpasswd", "deny"},
                  {"/%2ehtaccess", "deny"}});
}

TEST_F(Tree, HostileEncodingsOfDotFiles) {
  expect_answers({
      {"/%2egit/config", "deny"}, {"/%2Egit/config", "deny"}, {"/%2e%68taccess", "deny"},
      {"//.git//config", "deny"}, {"/./.git/./config", "deny"}, {"/a/%2e/.env", "deny"},
      {"/.git;x/config", "deny"}, {"/.git./config", "deny"}, {"/.env?x=1", "deny"},
      {"/.git%2fconfig", "400"},  // an encoded '/' is never decoded
      {"/a/../.git/config", "400"}, {"/a/%2e%2e/.git/config", "400"},
  });
}

TEST_F(Tree, DenyPrefixesAgainstHostileEncodings) {
  vh.deny_prefixes = {"/data", "/conf"};
  write("data/pages/start.txt", "wiki");
  write("doku.php", "x");
  expect_answers({
      {"/data/pages/start.txt", "deny"}, {"/data", "deny"}, {"/data/", "deny"},
      {"/%64ata/pages/start.txt", "deny"}, {"//data///pages/start.txt", "deny"},
      {"/./data/./pages/start.txt", "deny"}, {"/data/pages/start.txt/extra/path", "deny"},
      {"/data%2Fpages/start.txt", "400"}, {"/x/../data/pages/start.txt", "400"},
      {"/doku.php", "ok"}, {"/database", "ok"},
  });
}

TEST_F(Tree, HtaccessOfEveryDirectoryDownTheWalk) {
  write("data/.htaccess",
        "<IfModule mod_authz_core.c>\n  Require all denied\n</IfModule>\n"
        "<IfModule !mod_authz_core.c>\n  Order allow,deny\n  Deny from all\n</IfModule>\n");
  write("data/pages/start.txt", "wiki");
  write("data/pages/.htaccess", "Require all granted\n");  // does not reopen what data/ denies
  write("conf/.htaccess", "Require all denied\n");
  write("conf/local.php", "x");
  write("doku.php", "x");
  write("lib/tpl/style.css", "x");
  EXPECT_EQ(asked("/data/pages/start.txt"), "deny");
  EXPECT_EQ(asked("/data/pages/"), "deny");
  EXPECT_EQ(asked("/data"), "deny");  // the directory itself, before any redirect
  EXPECT_EQ(asked("/data/pages/start.txt/path/info"), "deny");
  EXPECT_EQ(asked("/%64ata/pages/start.txt"), "deny");
  EXPECT_EQ(asked("/data//pages/./start.txt"), "deny");
  EXPECT_EQ(asked("/conf/local.php"), "deny");
  EXPECT_EQ(asked("/conf/missing.php"), "deny");
  EXPECT_EQ(asked("/doku.php"), "ok");
  EXPECT_EQ(asked("/lib/tpl/style.css"), "ok");
  EXPECT_EQ(asked("/missing/deeper/x"), "ok");  // the open answers 404
}

TEST_F(Tree, FilesMatchInAParentCoversSubdirectories) {
  write(".htaccess", "<FilesMatch \"\\.(log|txt)$\">\nRequire all denied\n</FilesMatch>\n");
  write("logs/app.log", "secret");
  write("logs/app.html", "fine");
  EXPECT_EQ(asked("/logs/app.log"), "deny");
  EXPECT_EQ(asked("/app.txt"), "deny");
  EXPECT_EQ(asked("/logs/app.html"), "ok");
}

TEST_F(Tree, SymlinksAreJudgedWhereTheyLead) {
  write("data/.htaccess", "Require all denied\n");
  write("data/pages/start.txt", "wiki");
  write("logs/.htaccess", "<Files *.log>\nDeny from all\n</Files>\n");
  write("logs/app.log", "secret");
  write(".git/config", "[core]");
  write("public/index.html", "x");
  fs::create_symlink("../data/pages/start.txt", fs::path(root) / "public/start.html");
  fs::create_symlink("../logs/app.log", fs::path(root) / "public/app.html");
  fs::create_symlink("../.git/config", fs::path(root) / "public/config.html");
  fs::create_symlink("../data/pages", fs::path(root) / "public/pages");
  // The path asked for shows nothing; where it leads does.
  EXPECT_EQ(asked("/public/start.html"), "ok");
  EXPECT_FALSE(resolved_allowed("public/start.html", "/public/start.html"));
  EXPECT_FALSE(resolved_allowed("public/app.html", "/public/app.html"));
  EXPECT_FALSE(resolved_allowed("public/config.html", "/public/config.html"));
  EXPECT_FALSE(resolved_allowed("public/pages/start.txt", "/public/pages/start.txt"));
  EXPECT_TRUE(resolved_allowed("public/index.html", "/public/index.html"));
  EXPECT_TRUE(resolved_allowed("public/index.html", "/public/"));  // the DirectoryIndex of the asked path
  vh.deny_prefixes = {"/secret"};
  write("secret/a.html", "s");
  fs::create_symlink("../secret/a.html", fs::path(root) / "public/a.html");
  EXPECT_FALSE(resolved_allowed("public/a.html", "/public/a.html"));
  EXPECT_TRUE(access.check_resolved_path(root_fd, vh, "/public/index.html", "/public/index.html").allowed);
  EXPECT_FALSE(access.check_resolved_path(root_fd, vh, "/public/a.html", "/public/a.html").allowed);
}

TEST_F(Tree, EditedHtaccessIsReadAgain) {
  AccessCheck every_time(0);  // looks at the directories at every request
  write("d/a.txt", "x");
  EXPECT_EQ(asked_of(every_time, "/d/a.txt"), "ok");
  write("d/.htaccess", "RewriteEngine on\n");
  EXPECT_EQ(asked_of(every_time, "/d/a.txt"), "ok");
  write("d/.htaccess", "Require all denied\n");  // another size
  EXPECT_EQ(asked_of(every_time, "/d/a.txt"), "deny");
  // The same size, only the mtime tells.
  write("d/.htaccess", "Require all granted");
  struct timespec times[2] = {{0, UTIME_OMIT}, {time(nullptr) + 5, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (root + "/d/.htaccess").c_str(), times, 0), 0);
  EXPECT_EQ(asked_of(every_time, "/d/a.txt"), "ok");
  fs::remove(fs::path(root) / "d/.htaccess");
  EXPECT_EQ(asked_of(every_time, "/d/a.txt"), "ok");
}

TEST_F(Tree, DirectoriesAreLookedAtAgainAfterTheRecheckTime) {
  write("d/a.txt", "x");
  write("e/a.txt", "x");
  AccessCheck hourly(3600'000'000'000);
  AccessCheck quick(20'000'000);  // 20 ms
  EXPECT_EQ(asked_of(hourly, "/d/a.txt"), "ok");
  EXPECT_EQ(asked_of(quick, "/d/a.txt"), "ok");
  EXPECT_EQ(asked_of(hourly, "/e/a.txt"), "ok");
  write("d/.htaccess", "Require all denied\n");
  fs::remove_all(fs::path(root) / "e");
  write("e", "now a file");
  // Within the recheck time what was seen stands, a deny the tenant just wrote too...
  EXPECT_EQ(asked_of(hourly, "/d/a.txt"), "ok");
  EXPECT_EQ(asked_of(hourly, "/e/a.txt"), "ok");
  // ...but a directory not seen yet is looked at now.
  write("f/.htaccess", "Require all denied\n");
  EXPECT_EQ(asked_of(hourly, "/f/a.txt"), "deny");
  struct timespec pause = {0, 100'000'000};
  nanosleep(&pause, nullptr);
  EXPECT_EQ(asked_of(quick, "/d/a.txt"), "deny");
  // The default: one second.
  EXPECT_EQ(kHtaccessRecheckNs, 1'000'000'000);
}

TEST_F(Tree, UnusableHtaccessFailsClosed) {
  write("big/.htaccess", "# " + std::string(kMaxHtaccessSize, 'x') + "\n");
  write("big/a.txt", "x");
  EXPECT_EQ(asked("/big/a.txt"), "deny");
  fs::create_directories(fs::path(root) / "dir/.htaccess");
  EXPECT_EQ(asked("/dir/a.txt"), "deny");
  write("elsewhere", "Require all granted\n");
  fs::create_directories(fs::path(root) / "link");
  fs::create_symlink("../elsewhere", fs::path(root) / "link/.htaccess");
  EXPECT_EQ(asked("/link/a.txt"), "deny");
  fs::create_directories(fs::path(root) / "fifo");
  ASSERT_EQ(mkfifo((root + "/fifo/.htaccess").c_str(), 0600), 0);
  EXPECT_EQ(asked("/fifo/a.txt"), "deny");
}

}  // namespace
}  // namespace itk

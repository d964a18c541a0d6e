// Unit tests of the configuration loader: every key, every error with its exact file:line, the inih line
// limit, drop-in order. Only ids that exist on any Debian (root, daemon, nobody) or numeric #ids are used.
#include "config/config.h"
#include "config/runtime.h"

#include <sys/wait.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <ini.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace itk {
namespace {

namespace fs = std::filesystem;

// The longest line inih r55 takes whole: its buffer holds the line, its newline and a NUL. Longer lines are
// split by the reader in front of it, up to kMaxLineLength.
constexpr size_t kInihLine = INI_MAX_LINE - 2;
constexpr size_t kMaxLineLength = 64 * 1024;

const char* const kLongLineHint = "(split a long ServerAlias over several ServerAlias lines)";

struct Parsed {
  Config cfg;
  std::vector<ConfigError> errors;
};

std::string dump(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += "\n  " + e.str();
  return s.empty() ? " (no errors)" : s;
}

std::vector<std::string> strs(const std::vector<ConfigError>& errors) {
  std::vector<std::string> v;
  for (const auto& e : errors) v.push_back(e.str());
  return v;
}

Parsed parse_main(const std::string& text) {
  Parsed p;
  p.cfg.config_file = "itk.conf";
  p.cfg.config_dir = "itk.d";
  parse_config_text(text, "itk.conf", false, p.cfg, p.errors);
  return p;
}

// A drop-in parsed as "a.conf", with `base` supplying [server] values such as the ranges or the acceptor.
Parsed parse_dropin(const std::string& text, const Config& base = Config{}) {
  Parsed p;
  p.cfg = base;
  if (p.cfg.config_file.empty()) p.cfg.config_file = "itk.conf";
  if (p.cfg.config_dir.empty()) p.cfg.config_dir = "itk.d";
  parse_config_text(text, "a.conf", true, p.cfg, p.errors);
  return p;
}

// The three required keys; line numbers in tests count from the [vhost] header as line 1.
std::string vhost(const std::string& name, const std::string& extra = "", const std::string& ids = "#2001 #2001") {
  return "[vhost]\nServerName = " + name + "\nDocumentRoot = /srv/" + name + "\nAssignUserID = " + ids + "\n" + extra;
}

// Parses one key in a [server] section and returns the single error it gives (or "" when accepted).
std::string server_error(const std::string& key, const std::string& value) {
  Parsed p = parse_main("[server]\n" + key + " = " + value + "\n");
  if (p.errors.empty()) return "";
  EXPECT_EQ(p.errors.size(), 1u) << key << " = " << value << dump(p.errors);
  return p.errors[0].str();
}

std::string vhost_error(const std::string& key_line, const Config& base = Config{}) {
  Parsed p = parse_dropin(vhost("a.test", key_line + "\n"), base);
  if (p.errors.empty()) return "";
  EXPECT_EQ(p.errors.size(), 1u) << key_line << dump(p.errors);
  return p.errors[0].str();
}

// ---- formatting ----

TEST(ConfigError, Format) {
  EXPECT_EQ((Origin{"/etc/itk.conf", 3}).str(), "/etc/itk.conf:3");
  EXPECT_EQ((Origin{"/etc/itk.conf", 0}).str(), "/etc/itk.conf");
  EXPECT_EQ((ConfigError{{"f.conf", 7}, "NiceValue", "bad"}).str(), "f.conf:7: NiceValue: bad");
  EXPECT_EQ((ConfigError{{"f.conf", 7}, "", "bad"}).str(), "f.conf:7: bad");
  EXPECT_EQ((ConfigError{{"f.conf", 0}, "", "bad"}).str(), "f.conf: bad");
  EXPECT_EQ((ConfigError{{"f.conf", 0}, "User", "bad"}).str(), "f.conf: User: bad");
}

// ---- [server] ----

TEST(ServerConfig, DefaultsWhenEmpty) {
  Parsed p = parse_main("");
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
  const ServerConfig& s = p.cfg.server;
  EXPECT_EQ(s.start_servers, 0u);  // filled from the CPU count by load_config
  EXPECT_EQ(s.max_clients, 256u);
  EXPECT_EQ(s.timeout, 60u);
  EXPECT_EQ(s.keep_alive_timeout, 5u);
  EXPECT_EQ(s.max_keep_alive_requests, 100u);
  EXPECT_EQ(s.request_read_timeout, 20u);
  EXPECT_EQ(s.queue_timeout, 5u);
  EXPECT_EQ(s.limit_request_line, 8190u);
  EXPECT_EQ(s.limit_request_field_size, 8190u);
  EXPECT_EQ(s.limit_request_fields, 100u);
  EXPECT_EQ(s.limit_request_body, 134217728u);
  EXPECT_EQ(s.graceful_shutdown_timeout, 30u);
  EXPECT_EQ(s.limit_uid_range.min, 1000u);
  EXPECT_EQ(s.limit_uid_range.max, 59999u);
  EXPECT_EQ(s.limit_gid_range.min, 1000u);
  EXPECT_EQ(s.limit_gid_range.max, 59999u);
  EXPECT_EQ(s.user, "itk");
  EXPECT_TRUE(p.cfg.vhosts.empty());
}

TEST(ServerConfig, EveryKeySet) {
  Parsed p = parse_main(
      "; the server section\n"
      "# both comment styles\n"
      "[server]\n"
      "StartServers = 3\n"
      "MaxClients = 512\n"
      "Timeout = 90\n"
      "KeepAliveTimeout = 0\n"
      "MaxKeepAliveRequests = 0\n"
      "RequestReadTimeout = 15\n"
      "QueueTimeout = 0\n"
      "LimitRequestLine = 4096\n"
      "LimitRequestFieldSize = 300\n"
      "LimitRequestFields = 50\n"
      "LimitRequestBody = 0\n"
      "GracefulShutdownTimeout = 0\n"
      "LimitUIDRange = 2000 3000\n"
      "LimitGIDRange = 2001   3001\n"
      "User = #990\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  const ServerConfig& s = p.cfg.server;
  EXPECT_EQ(s.start_servers, 3u);
  EXPECT_EQ(s.max_clients, 512u);
  EXPECT_EQ(s.timeout, 90u);
  EXPECT_EQ(s.keep_alive_timeout, 0u);
  EXPECT_EQ(s.max_keep_alive_requests, 0u);
  EXPECT_EQ(s.request_read_timeout, 15u);
  EXPECT_EQ(s.queue_timeout, 0u);
  EXPECT_EQ(s.limit_request_line, 4096u);
  EXPECT_EQ(s.limit_request_field_size, 300u);
  EXPECT_EQ(s.limit_request_fields, 50u);
  EXPECT_EQ(s.limit_request_body, 0u);
  EXPECT_EQ(s.graceful_shutdown_timeout, 0u);
  EXPECT_EQ(s.limit_uid_range.min, 2000u);
  EXPECT_EQ(s.limit_uid_range.max, 3000u);
  EXPECT_EQ(s.limit_gid_range.min, 2001u);
  EXPECT_EQ(s.limit_gid_range.max, 3001u);
  EXPECT_EQ(s.user, "#990");
  EXPECT_EQ(s.acceptor.uid, 990u);
  EXPECT_EQ(s.acceptor.gid, 990u);
  EXPECT_TRUE(s.acceptor.groups.empty());
  EXPECT_EQ(s.acceptor.user_name, "#990");
}

struct RangeCase {
  const char* key;
  const char* min;
  const char* max;
  const char* below;  // nullptr when min is 0
  const char* above;
  const char* allowed;
};

TEST(ServerConfig, NumericRangesAndSyntax) {
  const RangeCase cases[] = {
      {"StartServers", "1", "64", "0", "65", "1..64"},
      {"MaxClients", "1", "16384", "0", "16385", "1..16384"},
      {"Timeout", "1", "3600", "0", "3601", "1..3600"},
      {"KeepAliveTimeout", "0", "3600", nullptr, "3601", "0..3600"},
      {"MaxKeepAliveRequests", "0", "1000000", nullptr, "1000001", "0..1000000"},
      {"RequestReadTimeout", "1", "3600", "0", "3601", "1..3600"},
      {"QueueTimeout", "0", "3600", nullptr, "3601", "0..3600"},
      {"LimitRequestLine", "256", "65536", "255", "65537", "256..65536"},
      {"LimitRequestFieldSize", "256", "65536", "255", "65537", "256..65536"},
      {"LimitRequestFields", "1", "1000", "0", "1001", "1..1000"},
      {"LimitRequestBody", "0", "9223372036854775808", nullptr, "9223372036854775809", "0..9223372036854775808"},
      {"GracefulShutdownTimeout", "0", "3600", nullptr, "3601", "0..3600"},
  };
  for (const auto& c : cases) {
    std::string k = c.key;
    EXPECT_EQ(server_error(k, c.min), "") << k;
    EXPECT_EQ(server_error(k, c.max), "") << k;
    std::string prefix = "itk.conf:2: " + k + ": ";
    if (c.below) {
      EXPECT_EQ(server_error(k, c.below), prefix + "`" + c.below + "` is out of range (allowed: " + c.allowed + ")");
    }
    EXPECT_EQ(server_error(k, c.above), prefix + "`" + c.above + "` is out of range (allowed: " + c.allowed + ")");
    EXPECT_EQ(server_error(k, "-1"), prefix + "`-1` is out of range (allowed: " + c.allowed + ")");
    EXPECT_EQ(server_error(k, "99999999999999999999999"),
              prefix + "`99999999999999999999999` is out of range (allowed: " + c.allowed + ")");
    for (const char* bad : {"12abc", "+5", "0x10", "1.5", "1e3", "ten", "5 5"})
      EXPECT_EQ(server_error(k, bad), prefix + "`" + bad + "` is not a decimal number (allowed: " + c.allowed + ")");
  }
  // Leading zeros are still decimal, never octal.
  Parsed p = parse_main("[server]\nTimeout = 010\n");
  EXPECT_EQ(p.cfg.server.timeout, 10u);
}

TEST(ServerConfig, IdRanges) {
  for (const char* key : {"LimitUIDRange", "LimitGIDRange"}) {
    std::string k = key;
    std::string prefix = "itk.conf:2: " + k + ": ";
    EXPECT_EQ(server_error(k, "1 4294967294"), "");
    EXPECT_EQ(server_error(k, "5000 5000"), "");
    EXPECT_EQ(server_error(k, "0 59999"),
              prefix + "the range includes 0 (root), which itk never serves as; start it at 1 or above");
    EXPECT_EQ(server_error(k, "2000 1000"), prefix + "the minimum 2000 is above the maximum 1000");
    EXPECT_EQ(server_error(k, "1000"), prefix + "expected `min max`, got `1000`");
    EXPECT_EQ(server_error(k, "1 2 3"), prefix + "expected `min max`, got `1 2 3`");
    EXPECT_EQ(server_error(k, "1 4294967295"), prefix + "`4294967295` is out of range (allowed: 0..4294967294)");
    EXPECT_EQ(server_error(k, "-1 5"), prefix + "`-1` is out of range (allowed: 0..4294967294)");
  }
}

TEST(ServerConfig, User) {
  Parsed p = parse_main("[server]\nUser = nobody\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.server.acceptor.uid, 65534u);
  EXPECT_EQ(p.cfg.server.acceptor.user_name, "nobody");

  EXPECT_EQ(server_error("User", "itk-test-no-such-user"),
            "itk.conf:2: User: user `itk-test-no-such-user` does not exist (create it, use #uid, or remove User to "
            "run as `itk`)");
  EXPECT_EQ(server_error("User", "root"),
            "itk.conf:2: User: `root` is root's uid: acceptors read client bytes and must run unprivileged");
  EXPECT_EQ(server_error("User", "#0"),
            "itk.conf:2: User: `#0` is root's uid: acceptors read client bytes and must run unprivileged");
  EXPECT_EQ(server_error("User", "#4294967295"),
            "itk.conf:2: User: `#4294967295` is not a numeric id (write #N with N from 0 to 4294967294)");
  EXPECT_EQ(server_error("User", "#x1"),
            "itk.conf:2: User: `#x1` is not a numeric id (write #N with N from 0 to 4294967294)");
  EXPECT_EQ(server_error("User", "a b"), "itk.conf:2: User: expected one user name or #uid, got `a b`");
}

TEST(ServerConfig, SectionAndKeyErrors) {
  Parsed p = parse_main(
      "MaxClients = 5\n"       // 1: outside a section
      "[server]\n"             // 2
      "Timeout = 5\n"          // 3
      "timeout = 6\n"          // 4: duplicate, any case
      "Frobnicate = 1\n"       // 5
      "ServerName = a.test\n"  // 6: a [vhost] key
      "[vhost]\n"              // 7: not in the main file
      "ServerName = b.test\n"  // 8: ignored with its section
      "[server]\n"             // 9: a second [server] is the same section
      "TIMEOUT = 7\n"          // 10: duplicate of line 3
      "[Bogus]\n"              // 11
      "Anything = 1\n"         // 12: ignored with its section
      "[server]\n"             // 13
      "MaxClients =\n");       // 14
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "itk.conf:1: MaxClients: key outside a section: put it under [server]",
                                "itk.conf:4: Timeout: given twice in this section (first at line 3)",
                                "itk.conf:5: Frobnicate: unknown key in [server]",
                                "itk.conf:6: ServerName: belongs in a [vhost] section of a drop-in",
                                "itk.conf:7: [vhost] sections belong in drop-ins (itk.d/*.conf), not in the main file",
                                "itk.conf:10: Timeout: given twice in this section (first at line 3)",
                                "itk.conf:11: unknown section [Bogus] (the main file holds only [server])",
                                "itk.conf:14: MaxClients: empty value",
                            }));
  EXPECT_EQ(p.cfg.server.timeout, 5u);
  EXPECT_TRUE(p.cfg.vhosts.empty());
}

TEST(ServerConfig, CaseInsensitive) {
  Parsed p = parse_main("[SERVER]\nmaxclients = 17\nKEEPALIVETIMEOUT = 9\n[Server]\nuser = #990\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.server.max_clients, 17u);
  EXPECT_EQ(p.cfg.server.keep_alive_timeout, 9u);
  EXPECT_EQ(p.cfg.server.acceptor.uid, 990u);
}

// ---- [vhost] ----

TEST(VHost, Defaults) {
  Parsed p = parse_dropin("# site a\n\n" + vhost("a.test"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  ASSERT_EQ(p.cfg.vhosts.size(), 1u);
  const VHost& v = p.cfg.vhosts[0];
  EXPECT_EQ(v.server_name, "a.test");
  EXPECT_TRUE(v.aliases.empty());
  EXPECT_EQ(v.document_root, "/srv/a.test");
  EXPECT_EQ(v.identity.uid, 2001u);
  EXPECT_EQ(v.identity.gid, 2001u);
  EXPECT_EQ(v.identity.groups, std::vector<gid_t>{2001});
  EXPECT_EQ(v.identity.user_name, "#2001");
  EXPECT_FALSE(v.identity.nice);
  EXPECT_EQ(v.max_clients_vhost, 0u);  // filled in by validation: see MaxClientsVHostShare
  EXPECT_FALSE(v.max_clients_vhost_set);
  EXPECT_EQ(v.directory_index, std::vector<std::string>{"index.html"});
  EXPECT_FALSE(v.is_default);
  EXPECT_EQ(v.origin.str(), "a.conf:3");
}

TEST(VHost, EveryKeySet) {
  Parsed p = parse_dropin(
      "[vhost]\n"
      "ServerName = Example.ORG\n"
      "ServerAlias = www.example.org *.Example.org\n"
      "ServerAlias = example.net\n"
      "DocumentRoot = /srv//www/./example.org/\n"
      "AssignUserID = #2001 #2002\n"
      "NiceValue = -5\n"
      "MaxClientsVHost = 20\n"
      "DirectoryIndex = index.php index.html\n"
      "DirectoryIndex = default.htm\n"
      "Default = yes\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  ASSERT_EQ(p.cfg.vhosts.size(), 1u);
  const VHost& v = p.cfg.vhosts[0];
  EXPECT_EQ(v.server_name, "example.org");
  EXPECT_EQ(v.aliases, (std::vector<std::string>{"www.example.org", "*.example.org", "example.net"}));
  EXPECT_EQ(v.document_root, "/srv/www/example.org");
  EXPECT_EQ(v.identity.uid, 2001u);
  EXPECT_EQ(v.identity.gid, 2002u);
  EXPECT_EQ(v.identity.groups, std::vector<gid_t>{2002});
  EXPECT_EQ(v.identity.nice, -5);
  EXPECT_EQ(v.max_clients_vhost, 20u);
  EXPECT_EQ(v.directory_index, (std::vector<std::string>{"index.php", "index.html", "default.htm"}));
  EXPECT_TRUE(v.is_default);
}

TEST(VHost, ValueRanges) {
  EXPECT_EQ(vhost_error("NiceValue = -20"), "");
  EXPECT_EQ(vhost_error("NiceValue = 19"), "");
  EXPECT_EQ(vhost_error("NiceValue = 0"), "");
  EXPECT_EQ(vhost_error("NiceValue = -21"), "a.conf:5: NiceValue: `-21` is out of range (allowed: -20..19)");
  EXPECT_EQ(vhost_error("NiceValue = 20"), "a.conf:5: NiceValue: `20` is out of range (allowed: -20..19)");
  EXPECT_EQ(vhost_error("NiceValue = +5"), "a.conf:5: NiceValue: `+5` is not a decimal number (allowed: -20..19)");
  EXPECT_EQ(vhost_error("NiceValue = --1"), "a.conf:5: NiceValue: `--1` is not a decimal number (allowed: -20..19)");
  EXPECT_EQ(vhost_error("NiceValue = -99999999999999999999"),
            "a.conf:5: NiceValue: `-99999999999999999999` is out of range (allowed: -20..19)");
  EXPECT_EQ(vhost_error("MaxClientsVHost = 1"), "");
  EXPECT_EQ(vhost_error("MaxClientsVHost = 16384"), "");
  EXPECT_EQ(vhost_error("MaxClientsVHost = 0"), "a.conf:5: MaxClientsVHost: `0` is out of range (allowed: 1..16384)");
  EXPECT_EQ(vhost_error("MaxClientsVHost = 16385"),
            "a.conf:5: MaxClientsVHost: `16385` is out of range (allowed: 1..16384)");
  EXPECT_EQ(vhost_error("MaxClientsVHost = 5x"),
            "a.conf:5: MaxClientsVHost: `5x` is not a decimal number (allowed: 1..16384)");
}

TEST(VHost, Booleans) {
  for (const char* yes : {"yes", "YES", "True", "on", "1"}) {
    Parsed p = parse_dropin(vhost("a.test", std::string("Default = ") + yes + "\n"));
    ASSERT_TRUE(p.errors.empty()) << yes << dump(p.errors);
    EXPECT_TRUE(p.cfg.vhosts[0].is_default) << yes;
  }
  for (const char* no : {"no", "No", "FALSE", "off", "0"}) {
    Parsed p = parse_dropin(vhost("a.test", std::string("Default = ") + no + "\n"));
    ASSERT_TRUE(p.errors.empty()) << no << dump(p.errors);
    EXPECT_FALSE(p.cfg.vhosts[0].is_default) << no;
  }
  EXPECT_EQ(vhost_error("Default = maybe"), "a.conf:5: Default: `maybe` is not a boolean (use yes or no)");
}

TEST(VHost, KeysAndSectionsAnyCase) {
  Parsed p = parse_dropin("[VHost]\nservername = A.Test\nDOCUMENTROOT = /srv/a\nassignUserId = #2001 #2001\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts.at(0).server_name, "a.test");
}

TEST(VHost, MissingRequiredKeysNameTheHeader) {
  Parsed p = parse_dropin(vhost("a.test") +  // lines 1-4
                          "\n"               // 5
                          "[vhost]\n"        // 6
                          "NiceValue = 3\n"  // 7
                          "[vhost]\n"        // 8
                          "ServerName = c.test\n");
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "a.conf:6: ServerName: missing: every [vhost] needs one",
                                "a.conf:6: DocumentRoot: missing: every [vhost] needs one",
                                "a.conf:6: AssignUserID: missing: every [vhost] needs one",
                                "a.conf:8: DocumentRoot: missing: every [vhost] needs one",
                                "a.conf:8: AssignUserID: missing: every [vhost] needs one",
                            }));
  ASSERT_EQ(p.cfg.vhosts.size(), 3u);
  EXPECT_EQ(p.cfg.vhosts[1].origin.line, 6);
  EXPECT_EQ(p.cfg.vhosts[2].origin.line, 8);
}

TEST(VHost, SeveralPerFile) {
  Parsed p = parse_dropin(vhost("a.test") + vhost("b.test", "", "#2002 #2002") + vhost("c.test", "", "#2003 #2003"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  ASSERT_EQ(p.cfg.vhosts.size(), 3u);
  EXPECT_EQ(p.cfg.vhosts[1].server_name, "b.test");
  EXPECT_EQ(p.cfg.vhosts[1].origin.line, 5);
  EXPECT_EQ(p.cfg.vhosts[2].identity.uid, 2003u);
}

TEST(VHost, DuplicateKeys) {
  Parsed p = parse_dropin(vhost("a.test",
                                "NiceValue = 1\n"                                // 5
                                "nicevalue = 2\n"                                // 6
                                "ServerName = b.test\n"                          // 7
                                "Default = no\n"                                 // 8
                                "Default = no\n"                                 // 9
                                "DocumentRoot = /srv/x\n")                       // 10
                          + vhost("b.test", "NiceValue = 4\n", "#2002 #2002"));  // a new section starts over
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "a.conf:6: NiceValue: given twice in this section (first at line 5)",
                                "a.conf:7: ServerName: given twice in this section (first at line 2)",
                                "a.conf:9: Default: given twice in this section (first at line 8)",
                                "a.conf:10: DocumentRoot: given twice in this section (first at line 3)",
                            }));
  EXPECT_EQ(p.cfg.vhosts[0].identity.nice, 1);
  EXPECT_EQ(p.cfg.vhosts[0].document_root, "/srv/a.test");
  EXPECT_EQ(p.cfg.vhosts[1].identity.nice, 4);
}

TEST(VHost, DirectoryIndex) {
  Parsed p = parse_dropin(vhost("a.test", "DirectoryIndex = a.html\n"));
  EXPECT_EQ(p.cfg.vhosts[0].directory_index, std::vector<std::string>{"a.html"});
  // '#' is a comment only at the start of a line.
  p = parse_dropin(vhost("a.test", "DirectoryIndex = index.html #x\n"));
  EXPECT_EQ(p.cfg.vhosts[0].directory_index, (std::vector<std::string>{"index.html", "#x"}));
  EXPECT_EQ(vhost_error("DirectoryIndex = a/index.html"),
            "a.conf:5: DirectoryIndex: `a/index.html` is not a file name (no '/', not . or ..)");
  EXPECT_EQ(vhost_error("DirectoryIndex = .."),
            "a.conf:5: DirectoryIndex: `..` is not a file name (no '/', not . or ..)");
}

TEST(VHost, UnknownKeysAndSections) {
  Parsed p = parse_dropin(
      "NiceValue = 1\n"                      // 1
      "[server]\n"                           // 2
      "MaxClients = 3\n"                     // 3: ignored with its section
      + vhost("a.test",                      // 4-7
              "Frobnicate = 1\n"             // 8
              "CGI = .cgi\n"                 // 9
              "FastCGI = .cgi /bin/sh\n"     // 10
              "TLSProtocol = TLSv1.3\n"      // 11
              "MaxClients = 5\n") +          // 12
      "[virtualhost]\n"                      // 13
      "ServerName = z.test\n");              // 14: ignored
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "a.conf:1: NiceValue: key outside a section: put it under [vhost]",
                                "a.conf:2: [server] belongs in itk.conf, not in a drop-in",
                                "a.conf:8: Frobnicate: unknown key in [vhost]",
                                "a.conf:10: FastCGI: .cgi is already listed in CGI",
                                "a.conf:11: TLSProtocol: not supported by this version of itk",
                                "a.conf:12: MaxClients: is a [server] key: set it in itk.conf",
                                "a.conf:13: unknown section [virtualhost] (a drop-in holds [vhost] sections)",
                            }));
  EXPECT_EQ(p.cfg.server.max_clients, 256u);
}

TEST(VHost, ServerNameSyntax) {
  auto err = [](const std::string& v) { return vhost_error("ServerAlias = " + v); };
  auto name_err = [](const std::string& v) {
    Parsed p = parse_dropin("[vhost]\nServerName = " + v + "\nDocumentRoot = /srv/a\nAssignUserID = #2001 #2001\n");
    return p.errors.empty() ? std::string() : p.errors[0].str();
  };
  EXPECT_EQ(name_err("*.a.test"),
            "a.conf:2: ServerName: `*.a.test`: ServerName cannot be a wildcard (put `*.example.org` in ServerAlias)");
  EXPECT_EQ(name_err("a.test:8080"),
            "a.conf:2: ServerName: `a.test:8080`: write the host name without a port (itk matches the Host header "
            "without its port)");
  EXPECT_EQ(name_err("a.test b.test"),
            "a.conf:2: ServerName: give one name here and put the other names in ServerAlias");
  EXPECT_EQ(name_err("a..test"),
            "a.conf:2: ServerName: `a..test` has an empty label (a leading, trailing or doubled '.')");
  EXPECT_EQ(name_err("a.test."),
            "a.conf:2: ServerName: `a.test.` has an empty label (a leading, trailing or doubled '.')");
  EXPECT_EQ(name_err("a_b.test"),
            "a.conf:2: ServerName: `a_b.test` contains `_`: a host name has letters, digits, '-' and '.' only");
  EXPECT_EQ(name_err("-a.test"), "a.conf:2: ServerName: `-a.test` has a label that starts or ends with '-'");
  EXPECT_EQ(name_err(std::string(64, 'a') + ".test"),
            "a.conf:2: ServerName: `" + std::string(64, 'a') + ".test` has a label longer than 63 bytes");
  EXPECT_EQ(name_err("127.0.0.1"), "");
  EXPECT_EQ(name_err("xn--bcher-kva.example"), "");
  EXPECT_EQ(err("*.b.test"), "");
  EXPECT_EQ(err("*"),
            "a.conf:5: ServerAlias: `*`: a wildcard is only allowed as a leading `*.` (as in `*.example.org`)");
  EXPECT_EQ(err("a.*.test"),
            "a.conf:5: ServerAlias: `a.*.test`: a wildcard is only allowed as a leading `*.` (as in `*.example.org`)");
  EXPECT_EQ(err("*.*.test"),
            "a.conf:5: ServerAlias: `*.*.test`: a wildcard is only allowed as a leading `*.` (as in `*.example.org`)");
  EXPECT_EQ(err("*."), "a.conf:5: ServerAlias: `*.` has an empty label (a leading, trailing or doubled '.')");
}

TEST(VHost, WildcardAliasesAndDuplicateNames) {
  Parsed p = parse_dropin(vhost("a.test",
                                "ServerAlias = *.a.test www.a.test\n"  // 5
                                "ServerAlias = A.TEST\n") +            // 6: its own ServerName
                          vhost("b.test",                              // 7-10
                                "ServerAlias = *.A.test\n"             // 11: identical wildcard
                                "ServerAlias = x.a.test\n"             // 12: fine: exact beats wildcard
                                "ServerAlias = b.test\n",              // 13
                                "#2002 #2002") +
                          "[vhost]\nServerName = WWW.a.test\nDocumentRoot = /srv/c\nAssignUserID = #2003 #2003\n");
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "a.conf:6: ServerAlias: `a.test` is already a name of a vhost (also at a.conf:2)",
                                "a.conf:11: ServerAlias: `*.a.test` is already a name of a vhost (also at a.conf:5)",
                                "a.conf:13: ServerAlias: `b.test` is already a name of a vhost (also at a.conf:8)",
                                "a.conf:15: ServerName: `www.a.test` is already a name of a vhost (also at a.conf:5)",
                            }));
  EXPECT_EQ(p.cfg.vhosts[0].aliases, (std::vector<std::string>{"*.a.test", "www.a.test"}));
  EXPECT_EQ(p.cfg.vhosts[1].aliases, (std::vector<std::string>{"x.a.test"}));
}

TEST(VHost, DuplicatesAgainstEarlierParses) {
  // Names from an earlier parse are known by their [vhost] line only.
  Parsed p = parse_dropin(vhost("a.test", "Default = yes\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  parse_config_text(vhost("b.test", "ServerAlias = a.test\nDefault = yes\n", "#2002 #2002"), "b.conf", true, p.cfg,
                    p.errors);
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "b.conf:5: ServerAlias: `a.test` is already a name of a vhost (also at a.conf:1)",
                                "b.conf:6: Default: only one vhost can be the default (also at a.conf:1)",
                            }));
}

TEST(VHost, DocumentRoot) {
  auto root = [](const std::string& v) {
    Parsed p = parse_dropin("[vhost]\nServerName = a.test\nDocumentRoot = " + v + "\nAssignUserID = #2001 #2001\n");
    return p.errors.empty() ? p.cfg.vhosts[0].document_root : p.errors[0].str();
  };
  EXPECT_EQ(root("/srv/www"), "/srv/www");
  EXPECT_EQ(root("/srv/www/"), "/srv/www");
  EXPECT_EQ(root("//srv//./www//"), "/srv/www");
  EXPECT_EQ(root("/srv/my site"), "/srv/my site");
  EXPECT_EQ(root("/srv/a;b"), "/srv/a;b");
  EXPECT_EQ(root("/srv/a ; a comment"), "/srv/a");
  EXPECT_EQ(root("srv/www"), "a.conf:3: DocumentRoot: `srv/www` is not an absolute path");
  EXPECT_EQ(root("/srv/../etc"),
            "a.conf:3: DocumentRoot: `/srv/../etc` contains `..`: write the directory's path without it");
  EXPECT_EQ(root("/"),
            "a.conf:3: DocumentRoot: DocumentRoot = / would publish the whole file system; name the site's "
            "own directory");
  EXPECT_EQ(root("/srv/a\tb"), "a.conf:3: DocumentRoot: `/srv/a\tb` contains a control character");
}

// ---- identities ----

TEST(Identity, NumericIds) {
  Parsed p = parse_dropin(vhost("a.test", "", "#1001 #1002"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  const Identity& id = p.cfg.vhosts[0].identity;
  EXPECT_EQ(id.uid, 1001u);
  EXPECT_EQ(id.gid, 1002u);
  EXPECT_EQ(id.groups, std::vector<gid_t>{1002});
  EXPECT_EQ(id.user_name, "#1001");
  // A value may start with '#'; only a line that starts with one is a comment. Inline comments need "; ".
  p = parse_dropin(
      "#[vhost]\n[vhost]\n  # indented comment\nServerName = a.test ; the site\n"
      "DocumentRoot = /srv/a\nAssignUserID = #1001 #1001   ; numeric ids\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts.at(0).identity.uid, 1001u);
  EXPECT_EQ(p.cfg.vhosts.at(0).server_name, "a.test");
}

TEST(Identity, Syntax) {
  auto err = [](const std::string& ids) {
    Parsed p = parse_dropin(vhost("a.test", "", ids));
    return strs(p.errors);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(err("#2001"), V{"a.conf:4: AssignUserID: expected `user group` (names, or #uid #gid), got `#2001`"});
  EXPECT_EQ(err("#2001 #2001 #2001"),
            V{"a.conf:4: AssignUserID: expected `user group` (names, or #uid #gid), got `#2001 #2001 #2001`"});
  EXPECT_EQ(err("#20x1 #"), (V{"a.conf:4: AssignUserID: `#20x1` is not a numeric id (write #N with N from 0 to "
                               "4294967294)",
                               "a.conf:4: AssignUserID: `#` is not a numeric id (write #N with N from 0 to "
                               "4294967294)"}));
  EXPECT_EQ(err("#4294967295 #-1"), (V{"a.conf:4: AssignUserID: `#4294967295` is not a numeric id (write #N with N "
                                       "from 0 to 4294967294)",
                                       "a.conf:4: AssignUserID: `#-1` is not a numeric id (write #N with N from 0 to "
                                       "4294967294)"}));
}

TEST(Identity, RootIsRefused) {
  Parsed p = parse_dropin(vhost("a.test", "", "root root"));
  EXPECT_EQ(
      strs(p.errors),
      (std::vector<std::string>{
          "a.conf:4: AssignUserID: `root` is uid 0 (root): itk never serves as root; give the site a user of its "
          "own",
          "a.conf:4: AssignUserID: `root` is gid 0 (root): itk never serves as root; give the site a group of its "
          "own",
      }));
  p = parse_dropin(vhost("a.test", "", "#0 #2001"));
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{"a.conf:4: AssignUserID: `#0` is uid 0 (root): itk never serves "
                                                      "as root; give the site a user of its own"}));
  p = parse_dropin(vhost("a.test", "", "#2001 #0"));
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{"a.conf:4: AssignUserID: `#0` is gid 0 (root): itk never serves "
                                                      "as root; give the site a group of its own"}));
}

TEST(Identity, OutsideRanges) {
  Parsed p = parse_dropin(vhost("a.test", "", "daemon daemon"));  // uid 1 and gid 1 on every Debian
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:4: AssignUserID: uid 1 of `daemon` is outside LimitUIDRange 1000 59999 (widen the range in "
                "itk.conf, or give the site a uid inside it)",
                "a.conf:4: AssignUserID: gid 1 of `daemon` is outside LimitGIDRange 1000 59999 (widen the range in "
                "itk.conf, or give the site a gid inside it)",
            }));
  p = parse_dropin(vhost("a.test", "", "#60000 #999"));
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:4: AssignUserID: uid 60000 of `#60000` is outside LimitUIDRange 1000 59999 (widen the range in "
                "itk.conf, or give the site a uid inside it)",
                "a.conf:4: AssignUserID: gid 999 of `#999` is outside LimitGIDRange 1000 59999 (widen the range in "
                "itk.conf, or give the site a gid inside it)",
            }));
  Config base;
  base.server.limit_uid_range = {1000, 65534};
  base.server.limit_gid_range = {1000, 65534};
  p = parse_dropin(vhost("a.test", "", "#1000 #65534"), base);
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
}

TEST(Identity, Names) {
  // nobody (65534) and nogroup (65534) exist on every Debian.
  Parsed p = parse_dropin(vhost("a.test", "", "nobody nogroup"));
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:4: AssignUserID: uid 65534 of `nobody` is outside LimitUIDRange 1000 59999 (widen the range in "
                "itk.conf, or give the site a uid inside it)",
                "a.conf:4: AssignUserID: gid 65534 of `nogroup` is outside LimitGIDRange 1000 59999 (widen the range "
                "in itk.conf, or give the site a gid inside it)",
            }));
  Config base;
  base.server.limit_uid_range = {1000, 65534};
  base.server.limit_gid_range = {1000, 65534};
  p = parse_dropin(vhost("a.test", "", "nobody nogroup"), base);
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  const Identity& id = p.cfg.vhosts[0].identity;
  EXPECT_EQ(id.uid, 65534u);
  EXPECT_EQ(id.gid, 65534u);
  EXPECT_EQ(id.user_name, "nobody");
  EXPECT_NE(std::find(id.groups.begin(), id.groups.end(), gid_t{65534}), id.groups.end());
  // A name and a number mix; the user's group list then starts from the given gid.
  p = parse_dropin(vhost("a.test", "", "nobody #2001"), base);
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].identity.gid, 2001u);
  EXPECT_NE(std::find(p.cfg.vhosts[0].identity.groups.begin(), p.cfg.vhosts[0].identity.groups.end(), gid_t{2001}),
            p.cfg.vhosts[0].identity.groups.end());
  p = parse_dropin(vhost("a.test", "", "#2001 nogroup"), base);
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].identity.groups, std::vector<gid_t>{65534});
}

TEST(Identity, MissingUserOrGroup) {
  Parsed p = parse_dropin(vhost("a.test", "", "itk-test-no-such-user itk-test-no-such-group"));
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:4: AssignUserID: user `itk-test-no-such-user` does not exist (create it, or give a numeric "
                "#uid)",
                "a.conf:4: AssignUserID: group `itk-test-no-such-group` does not exist (create it, or give a numeric "
                "#gid)",
            }));
}

TEST(Identity, AcceptorUidIsRefused) {
  Config base;
  base.server.user = "#2001";
  base.server.acceptor = Identity{2001, 2001, {}, std::nullopt, "#2001"};
  Parsed p = parse_dropin(vhost("a.test", "", "#2001 #2002"), base);
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:4: AssignUserID: uid 2001 is the acceptor's (User = #2001): a site must not own "
                "the processes that read every site's requests; give it a user of its own"}));
}

// ---- the reader in front of inih ----

// "ServerAlias = " followed by aliases "nNNN.test" separated by spaces, padded to exactly `len` bytes.
std::string alias_line(size_t len, std::vector<std::string>& aliases) {
  std::string line = "ServerAlias =";
  for (int i = 0;; i++) {
    std::string a = "n" + std::to_string(1000 + i) + ".test";
    if (line.size() + 1 + a.size() > len) break;
    line += " " + a;
    aliases.push_back(a);
  }
  // Pad with spaces before the list so the last alias stays last and the length is exact.
  line.insert(strlen("ServerAlias ="), std::string(len - line.size(), ' '));
  return line;
}

TEST(LineLimit, InihBufferIsTheDebianOne) {
  // The lines this reader dispatches itself are the ones past this buffer; the tests below cross it.
  ASSERT_EQ(kInihLine, 198u);  // Debian 12's inih r55: INI_MAX_LINE 200, no realloc
}

TEST(LineLimit, PanelLineOfHundredsOfAliasesIsKeptWhole) {
  // A hosting panel writes every alias of a site on one line: 4 KiB, over 300 names.
  std::vector<std::string> aliases;
  std::string line = alias_line(4096, aliases);
  ASSERT_EQ(line.size(), 4096u);
  ASSERT_GE(aliases.size(), 300u);
  Parsed p = parse_dropin(vhost("a.test", line + "\nNiceValue = 3\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].aliases, aliases);
  EXPECT_EQ(p.cfg.vhosts[0].identity.nice, 3);
  // The last line of a file may lack its newline; a CRLF file's '\r' is whitespace at the end.
  aliases.clear();
  p = parse_dropin(vhost("a.test", alias_line(4096, aliases)));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].aliases, aliases);
  aliases.clear();
  p = parse_dropin(vhost("a.test", alias_line(4096, aliases) + "\r\nDefault = yes\r\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].aliases, aliases);
  EXPECT_TRUE(p.cfg.vhosts[0].is_default);
}

TEST(LineLimit, EveryLengthAroundInihsBufferReadsTheSame) {
  // Just below, at and past inih's buffer the same line gives the same vhost.
  for (size_t len : {kInihLine - 1, kInihLine, kInihLine + 1, kInihLine + 2, size_t{1000}}) {
    std::vector<std::string> aliases;
    Parsed p = parse_dropin(vhost("a.test", alias_line(len, aliases) + "\n"));
    ASSERT_TRUE(p.errors.empty()) << len << dump(p.errors);
    EXPECT_EQ(p.cfg.vhosts[0].aliases, aliases) << len;
  }
}

TEST(LineLimit, LongLinesOfAnyKeyAreSplitAsInihSplitsThem) {
  std::string pad(300, ' ');
  Parsed p = parse_dropin(vhost("a.test",
                                "NiceValue =" + pad + "4" + pad + "; an inline comment\n"  // 5
                                "DirectoryIndex:" + pad + "a.html b.html\n"                  // 6
                                "; " + std::string(500, 'c') + "\n"                          // 7: a long comment
                                "MaxClientsVHost = 0" + pad + "\n"));                        // 8: errors at their line
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{"a.conf:8: MaxClientsVHost: `0` is out of range (allowed: 1..16384)"}));
  EXPECT_EQ(p.cfg.vhosts[0].identity.nice, 4);
  EXPECT_EQ(p.cfg.vhosts[0].directory_index, (std::vector<std::string>{"a.html", "b.html"}));
  // A long key given twice, a long line with no separator, and a continuation after a long key.
  p = parse_dropin(vhost("a.test", "NiceValue = 1" + pad + "\nNiceValue = 2" + pad + "\n" + std::string(300, 'x') +
                                       "\n  c.test\n"));
  std::string tail =
      "; itk does not accept multi-line values (remove the leading whitespace; ServerAlias and DirectoryIndex may be "
      "repeated instead)";
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "a.conf:6: NiceValue: given twice in this section (first at line 5)",
                                "a.conf:7: syntax error: expected `Key = value` or `[section]`",
                                "a.conf:8: continuation line: inih would append it to the value of `NiceValue` on "
                                "line 6" + tail,
                            }));
  // A long section header is a section like any other.
  p = parse_dropin("[vhost]" + pad + "; " + std::string(300, 'h') + "\n" + vhost("b.test").substr(8));
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts.size(), 1u);
}

TEST(LineLimit, PastTheBoundIsRefusedAtItsLine) {
  std::vector<std::string> aliases;
  std::string line = alias_line(kMaxLineLength, aliases);
  Parsed p = parse_dropin(vhost("a.test", line + "\nDefault = yes\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].aliases.size(), aliases.size());
  aliases.clear();
  line = alias_line(kMaxLineLength + 1, aliases);
  p = parse_dropin(vhost("a.test", line + "\nNiceValue = 99\n" + "; " + std::string(70000, 'y') + "\nDefault = yes\n"));
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:5: line is 65537 bytes long; itk reads at most 65536 bytes per line " + std::string(kLongLineHint),
                "a.conf:6: NiceValue: `99` is out of range (allowed: -20..19)",
                "a.conf:7: line is 70002 bytes long; itk reads at most 65536 bytes per line " + std::string(kLongLineHint),
            }));
  EXPECT_TRUE(p.cfg.vhosts[0].aliases.empty());
  EXPECT_TRUE(p.cfg.vhosts[0].is_default);
}

TEST(Syntax, ContinuationLinesAreRefused) {
  Parsed p = parse_dropin(vhost("a.test",
                                "ServerAlias = b.test\n"  // 5
                                "  c.test\n"              // 6: inih would append it to ServerAlias
                                "\n"                      // 7
                                "\tNiceValue = 3\n"       // 8: blank lines do not end a value in inih
                                "   ; an indented comment is fine\n"
                                " [vhost]\n"));  // 10: so is an indented header, after a key
  std::string tail =
      "; itk does not accept multi-line values (remove the leading whitespace; ServerAlias and DirectoryIndex may be "
      "repeated instead)";
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:6: continuation line: inih would append it to the value of `ServerAlias` on line 5" + tail,
                "a.conf:8: continuation line: inih would append it to the value of `ServerAlias` on line 5" + tail,
                "a.conf:10: continuation line: inih would append it to the value of `ServerAlias` on line 5" + tail,
            }));
  EXPECT_EQ(p.cfg.vhosts.size(), 1u);
  EXPECT_EQ(p.cfg.vhosts[0].aliases, std::vector<std::string>{"b.test"});
  EXPECT_FALSE(p.cfg.vhosts[0].identity.nice);
  // Right after a header nothing can be continued, so inih reads an indented key as a key.
  p = parse_dropin("  [vhost]\n  ServerName = a.test\nDocumentRoot = /srv/a\nAssignUserID = #2001 #2001\n");
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
}

TEST(Syntax, EverySyntaxErrorIsReported) {
  Parsed p = parse_dropin(vhost("a.test",
                                "[vhost\n"        // 5
                                "just words\n"    // 6
                                "= value\n"       // 7
                                "Key ;= value\n"  // 8: the comment starts before '='
                                "[a ; b]\n"));    // 9
  std::string e = ": syntax error: expected `Key = value` or `[section]`";
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{"a.conf:5" + e, "a.conf:6" + e, "a.conf:7" + e, "a.conf:8" + e, "a.conf:9" + e}));
}

TEST(Syntax, ColonSeparatorAndEmptyValue) {
  Parsed p =
      parse_dropin("[vhost]\nServerName: a.test\nDocumentRoot = /srv/a\nAssignUserID = #2001 #2001\nNiceValue =\n");
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{"a.conf:5: NiceValue: empty value"}));
  EXPECT_EQ(p.cfg.vhosts[0].server_name, "a.test");
}

TEST(Syntax, NulByteRefusesTheFile) {
  std::string text = vhost("a.test");
  text.insert(text.find("DocumentRoot"), std::string("x\0y\n", 4));
  Parsed p = parse_dropin(text);
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{"a.conf:3: the file contains a NUL byte; is it a text file? (not read)"}));
  EXPECT_TRUE(p.cfg.vhosts.empty());
}

TEST(Syntax, ByteOrderMarkIsSkipped) {
  Parsed p = parse_dropin("\xEF\xBB\xBF" + vhost("a.test"));
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts.size(), 1u);
}

TEST(Syntax, RandomInputIsReportedNeverFatal) {
  // Fragments of valid and broken lines, glued at random with a fixed seed: whatever comes out, parsing returns
  // and every error names a line of the text.
  const char* const pieces[] = {"[vhost]",
                                "[server]",
                                "[",
                                "]",
                                "ServerName",
                                "ServerAlias",
                                "AssignUserID",
                                "DocumentRoot",
                                "Default",
                                "NiceValue",
                                "MaxClients",
                                "User",
                                " = ",
                                "=",
                                ":",
                                " ; ",
                                ";",
                                "#",
                                "#2001 #2001",
                                "*.",
                                "a.test",
                                "/srv/a",
                                "-5",
                                "99999999999999999999",
                                " ",
                                "\t",
                                "\r",
                                "\xEF\xBB\xBF",
                                "\xff",
                                "..",
                                "yes"};
  std::mt19937 rng(20240607);
  for (int round = 0; round < 3000; round++) {
    std::string text;
    int lines = static_cast<int>(rng() % 12);
    for (int l = 0; l < lines; l++) {
      int n = static_cast<int>(rng() % 8);
      for (int i = 0; i < n; i++) text += pieces[rng() % std::size(pieces)];
      if (rng() % 50 == 0) text += std::string(rng() % 400, 'x');
      text += "\n";
    }
    Parsed p = parse_dropin(text);
    int total = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    for (const auto& e : p.errors) {
      ASSERT_GE(e.origin.line, 1) << e.str();
      ASSERT_LE(e.origin.line, total) << e.str();
      ASSERT_FALSE(e.message.empty());
    }
  }
}

// ---- validate_config ----

TEST(Validate, DefaultVHostAndStartServers) {
  Parsed p = parse_dropin(vhost("a.test") + vhost("b.test", "Default = yes\n", "#2002 #2002"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  { std::vector<ConfigError> warnings; validate_config(p.cfg, false, p.errors, warnings); }
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.default_vhost, 1u);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_EQ(p.cfg.server.start_servers, static_cast<unsigned>(std::clamp(cpus, 1L, 64L)));

  p = parse_dropin(vhost("a.test") + vhost("b.test", "Default = no\n", "#2002 #2002"));
  p.cfg.server.start_servers = 7;
  { std::vector<ConfigError> warnings; validate_config(p.cfg, false, p.errors, warnings); }
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.default_vhost, 0u);
  EXPECT_EQ(p.cfg.server.start_servers, 7u);
}

// Every vhost gets a share below MaxClients unless it sets its own; the server may set the share.
TEST(Validate, MaxClientsVHostShare) {
  Parsed p = parse_dropin(vhost("a.test") + vhost("b.test", "MaxClientsVHost = 300\n", "#2002 #2002"));
  p.cfg.server.max_clients = 9;
  { std::vector<ConfigError> warnings; validate_config(p.cfg, false, p.errors, warnings); }
  EXPECT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].max_clients_vhost, 4u);
  EXPECT_EQ(p.cfg.vhosts[1].max_clients_vhost, 300u);
  // A vhost's own MaxClientsVHost is its default FastCGIMaxProcesses; the server's share is not.
  EXPECT_EQ(p.cfg.vhosts[0].fastcgi.max_processes, kDefaultFastCgiProcesses);
  EXPECT_EQ(p.cfg.vhosts[1].fastcgi.max_processes, 300u);

  Parsed q = parse_main("[server]\nMaxClients = 1\n");
  ASSERT_TRUE(q.errors.empty()) << dump(q.errors);
  Parsed one = parse_dropin(vhost("a.test"));
  one.cfg.server = q.cfg.server;
  { std::vector<ConfigError> warnings; validate_config(one.cfg, false, one.errors, warnings); }
  EXPECT_EQ(one.cfg.vhosts[0].max_clients_vhost, 1u);

  Parsed r = parse_main("[server]\nMaxClientsVHost = 7\nMaxConnectionTime = 0\n");
  ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
  EXPECT_EQ(r.cfg.server.max_clients_vhost, 7u);
  EXPECT_EQ(r.cfg.server.max_connection_time, 0u);
  Parsed two = parse_dropin(vhost("a.test"));
  two.cfg.server = r.cfg.server;
  { std::vector<ConfigError> warnings; validate_config(two.cfg, false, two.errors, warnings); }
  EXPECT_EQ(two.cfg.vhosts[0].max_clients_vhost, 7u);
  EXPECT_EQ(parse_main("[server]\nMaxClientsVHost = 0\n").errors.size(), 1u);
  EXPECT_EQ(parse_main("[server]\nMaxConnectionTime = 604801\n").errors.size(), 1u);
}

TEST(Validate, ProxyProtocolKeys) {
  Parsed p = parse_main("[server]\nProxyProtocol = http https\nProxyProtocolFrom = 127.0.0.1 10.0.0.0/8 ::1\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.server.proxy_protocol, (std::vector<std::string>{"http", "https"}));
  EXPECT_EQ(p.cfg.server.proxy_protocol_from.size(), 3u);
  EXPECT_EQ(strs(parse_main("[server]\nProxyProtocol = ht:tp\n").errors),
            (std::vector<std::string>{"itk.conf:2: ProxyProtocol: `ht:tp` is not a listener name (such as `http` or `https`)"}));
  EXPECT_EQ(strs(parse_main("[server]\nProxyProtocolFrom = 10.0.0.0/40\n").errors),
            (std::vector<std::string>{"itk.conf:2: ProxyProtocolFrom: `10.0.0.0/40` has a prefix length over 32"}));
  // Each needs the other.
  for (const char* text : {"[server]\nProxyProtocol = http\n", "[server]\nProxyProtocolFrom = 10.0.0.1\n"}) {
    Parsed q = parse_main(text);
    ASSERT_TRUE(q.errors.empty()) << dump(q.errors);
    Parsed d = parse_dropin(vhost("a.test"));
    d.cfg.server = q.cfg.server;
    { std::vector<ConfigError> warnings; validate_config(d.cfg, false, d.errors, warnings); }
    ASSERT_EQ(d.errors.size(), 1u) << text;
    EXPECT_EQ(d.errors[0].origin.line, 2) << text;
  }
}

TEST(Validate, NoVHost) {
  Config cfg;
  cfg.config_dir = "/nonexistent/itk.d";
  std::vector<ConfigError> errors;
  { std::vector<ConfigError> warnings; validate_config(cfg, false, errors, warnings); }
  EXPECT_EQ(
      strs(errors),
      (std::vector<std::string>{"/nonexistent/itk.d: no vhost configured (add a drop-in to /nonexistent/itk.d)"}));
}

// ---- load_config over real files ----

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/itk-config-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    dir_ = tmpl;
    opts_.config_file = dir_ + "/itk.conf";
    opts_.config_dir = dir_ + "/itk.d";
    opts_.config_file_explicit = true;
    opts_.check_filesystem = false;
    fs::create_directory(opts_.config_dir);
    write("itk.conf", "[server]\nUser = #990\n");
  }
  // Runs even when an assertion failed, so no test leaves its directory behind.
  void TearDown() override {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  void write(const std::string& rel, const std::string& text) {
    std::ofstream f(dir_ + "/" + rel, std::ios::binary | std::ios::trunc);
    f << text;
    ASSERT_TRUE(f.good()) << rel;
  }
  std::string dropin(const std::string& name) const { return opts_.config_dir + "/" + name; }

  std::string dir_;
  LoadOptions opts_;
};

TEST_F(LoadTest, ValidConfig) {
  write("itk.conf", "[server]\nUser = #990\nMaxClients = 64\n");
  write("itk.d/a.conf", vhost("a.test") + vhost("b.test", "Default = on\n", "#2002 #2002"));
  LoadResult r = load_config(opts_);
  ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->config_file, opts_.config_file);
  EXPECT_EQ(r.config->config_dir, opts_.config_dir);
  EXPECT_EQ(r.config->server.max_clients, 64u);
  EXPECT_GE(r.config->server.start_servers, 1u);
  EXPECT_LE(r.config->server.start_servers, 64u);
  ASSERT_EQ(r.config->vhosts.size(), 2u);
  EXPECT_EQ(r.config->default_vhost, 1u);
  EXPECT_EQ(r.config->vhosts[1].origin.str(), dropin("a.conf") + ":5");
}

// What the master assigns per generation lives beside the configuration, which stays as loaded.
TEST_F(LoadTest, RuntimeHoldsPerGenerationStateBesideTheConfig) {
  write("itk.conf", "[server]\nUser = #990\n");
  write("itk.d/a.conf", vhost("a.test") + vhost("b.test", "FastCGI = .php /bin/true\nFastCGI = .php5 /bin/true\n",
                                                 "#2002 #2002"));
  LoadResult r = load_config(opts_);
  ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
  std::unique_ptr<Runtime> rt = make_runtime(std::move(r.config), 7);
  ASSERT_EQ(rt->vhost_state.size(), 2u);
  const VHost& b = rt->config->vhosts[1];
  EXPECT_EQ(rt->index_of(b), 1u);
  EXPECT_EQ(rt->state(b).fastcgi_sockets.size(), 2u);
  EXPECT_TRUE(rt->state(rt->config->vhosts[0]).fastcgi_sockets.empty());
  rt->state(b).slot = 5;
  rt->state(b).fastcgi_sockets[1] = "/run/itk/fastcgi/1/php5.sock";
  EXPECT_EQ(rt->state(rt->config->vhosts[0]).slot, 0u);
  EXPECT_EQ(rt->fastcgi_socket(b, b.fastcgi.apps[1]), "/run/itk/fastcgi/1/php5.sock");
  EXPECT_EQ(rt->fastcgi_socket(b, b.fastcgi.apps[0]), "");
  // A copy is not a vhost of this generation: asking for its state is a broken invariant.
  VHost copy = b;
  EXPECT_DEATH((void)rt->state(copy), "not one of generation 7");
  EXPECT_DEATH((void)rt->fastcgi_socket(b, copy.fastcgi.apps[0]), "not one of vhost b.test");
}

TEST_F(LoadTest, LexicalOrderAndIgnoredNames) {
  write("itk.d/b.conf", vhost("b.test", "", "#2002 #2002"));
  write("itk.d/a.conf", vhost("a.test", "", "#2001 #2001"));
  write("itk.d/10-z.conf", vhost("z.test", "", "#2003 #2003"));
  write("itk.d/A.conf", vhost("upper.test", "", "#2004 #2004"));
  write("itk.d/a.conf.dpkg-old", "not ini at all\n");
  write("itk.d/README", "not ini at all\n");
  write("itk.d/.hidden.conf", "not ini at all\n");
  write("itk.d/.conf", "not ini at all\n");
  write("itk.d/a.conf~", "not ini at all\n");
  write("itk.d/a.CONF", "not ini at all\n");
  LoadResult r = load_config(opts_);
  ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
  std::vector<std::string> order;
  for (const VHost& v : r.config->vhosts) order.push_back(v.server_name + "@" + v.origin.str());
  EXPECT_EQ(order,
            (std::vector<std::string>{"z.test@" + dropin("10-z.conf") + ":1", "upper.test@" + dropin("A.conf") + ":1",
                                      "a.test@" + dropin("a.conf") + ":1", "b.test@" + dropin("b.conf") + ":1"}));
  EXPECT_EQ(r.config->default_vhost, 0u);  // the first loaded, as Apache
}

TEST_F(LoadTest, ErrorsFromEveryFileInLoadOrder) {
  write("itk.conf", "[server]\nUser = #990\nMaxClients = 0\nLimitUIDRange = 2000 3000\n");
  write("itk.d/b.conf",
        "[vhost]\nServerName = b.test\nServerAlias = *.shared.test\nDocumentRoot = /srv/b\nAssignUserID = #2500 #2500\n"
        "Default = yes\n");
  write("itk.d/a.conf",
        "[vhost]\nServerName = a.test\nServerAlias = *.shared.test\nDocumentRoot = /srv/a\nAssignUserID = #1500 #2001\n"
        "Default = yes\nNiceValue = 50\n");
  LoadResult r = load_config(opts_);
  EXPECT_FALSE(r.config);
  EXPECT_EQ(
      strs(r.errors),
      (std::vector<std::string>{
          opts_.config_file + ":3: MaxClients: `0` is out of range (allowed: 1..16384)",
          dropin("a.conf") +
              ":5: AssignUserID: uid 1500 of `#1500` is outside LimitUIDRange 2000 3000 (widen "
              "the range in " +
              opts_.config_file + ", or give the site a uid inside it)",
          dropin("a.conf") + ":7: NiceValue: `50` is out of range (allowed: -20..19)",
          dropin("b.conf") + ":3: ServerAlias: `*.shared.test` is already a name of a vhost (also at " +
              dropin("a.conf") + ":3)",
          dropin("b.conf") + ":6: Default: only one vhost can be the default (also at " + dropin("a.conf") + ":6)",
      }));
}

TEST_F(LoadTest, AcceptorUidAcrossFiles) {
  write("itk.d/a.conf", vhost("a.test", "", "#990 #2001"));
  write("itk.conf", "[server]\nLimitUIDRange = 900 3000\nUser = #990\n");
  LoadResult r = load_config(opts_);
  EXPECT_EQ(
      strs(r.errors),
      (std::vector<std::string>{dropin("a.conf") + ":4: AssignUserID: uid 990 is the acceptor's (User = #990): a site "
                                                   "must not own the processes that read every site's requests; give "
                                                   "it a user of its own"}));
}

TEST_F(LoadTest, MissingDefaultConfigFileMeansDefaults) {
  fs::remove(opts_.config_file);
  opts_.config_file_explicit = false;
  write("itk.d/a.conf", vhost("a.test"));
  LoadResult r = load_config(opts_);
  // The default acceptor user `itk` comes from itk's sysusers.d file, which this machine may lack.
  if (getpwnam("itk") != nullptr) {
    ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
    EXPECT_EQ(r.config->server.max_clients, 256u);
    EXPECT_EQ(r.config->server.acceptor.user_name, "itk");
  } else {
    EXPECT_EQ(strs(r.errors),
              (std::vector<std::string>{opts_.config_file +
                                        ": User: the acceptor user `itk` does not exist: install itk's sysusers.d file "
                                        "and run systemd-sysusers, or set User in the [server] section of " +
                                        opts_.config_file}));
  }
}

TEST_F(LoadTest, MissingUserNamesItsLine) {
  write("itk.conf", "[server]\nMaxClients = 5\nUser = itk-test-no-such-user\n");
  write("itk.d/a.conf", vhost("a.test"));
  LoadResult r = load_config(opts_);
  EXPECT_EQ(strs(r.errors),
            (std::vector<std::string>{opts_.config_file + ":3: User: user `itk-test-no-such-user` does not exist "
                                                          "(create it, use #uid, or remove User to run as `itk`)"}));
  // A User that is given but unusable is one error, not also a complaint about the default `itk`.
  write("itk.conf", "[server]\nUser = a b\n");
  r = load_config(opts_);
  EXPECT_EQ(strs(r.errors),
            (std::vector<std::string>{opts_.config_file + ":2: User: expected one user name or #uid, got `a b`"}));
  write("itk.conf", "[server]\nUser =\n");
  r = load_config(opts_);
  EXPECT_EQ(strs(r.errors), (std::vector<std::string>{opts_.config_file + ":2: User: empty value"}));
}

TEST_F(LoadTest, MissingExplicitConfigFile) {
  fs::remove(opts_.config_file);
  write("itk.d/a.conf", vhost("a.test"));
  LoadResult r = load_config(opts_);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].str(), opts_.config_file + ": cannot open: No such file or directory");
}

TEST_F(LoadTest, MissingOrEmptyConfigDir) {
  LoadResult r = load_config(opts_);
  EXPECT_EQ(strs(r.errors), (std::vector<std::string>{opts_.config_dir + ": no vhost configured (add a drop-in to " +
                                                      opts_.config_dir + ")"}));
  fs::remove(opts_.config_dir);
  r = load_config(opts_);
  EXPECT_EQ(strs(r.errors), (std::vector<std::string>{opts_.config_dir + ": no vhost configured (add a drop-in to " +
                                                      opts_.config_dir + ")"}));
}

TEST_F(LoadTest, UnreadableFiles) {
  fs::create_directory(dropin("dir.conf"));
  write("itk.d/b.conf", vhost("b.test"));
  write("itk.d/c.conf", std::string("[vhost]\nServerName = c.test\0\n", 29));
  LoadResult r = load_config(opts_);
  EXPECT_EQ(strs(r.errors), (std::vector<std::string>{
                                dropin("c.conf") + ":2: the file contains a NUL byte; is it a text file? (not read)",
                                dropin("dir.conf") + ": cannot read: Is a directory",
                            }));
}

TEST_F(LoadTest, UnreadableFile) {
  write("itk.d/a.conf", vhost("a.test"));
  ASSERT_EQ(chmod(dropin("a.conf").c_str(), 0), 0);
  std::vector<std::string> expected{dropin("a.conf") + ": cannot open: Permission denied",
                                    opts_.config_dir + ": no vhost configured (add a drop-in to " + opts_.config_dir + ")"};
  if (geteuid() != 0) {
    LoadResult r = load_config(opts_);
    EXPECT_EQ(strs(r.errors), expected);
    return;
  }
  // Root reads a mode 000 file, so the load runs in a child that has become nobody (65534).
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(chmod((dir_ + "/itk.d").c_str(), 0755), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
      _exit(3);
    LoadResult r = load_config(opts_);
    _exit(strs(r.errors) == expected ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: errors differ from the expected ones, 3: could not become nobody";
}

TEST_F(LoadTest, DocumentRootOnDisk) {
  chmod(dir_.c_str(), 0755);  // the vhosts' uids must be able to walk to their roots
  fs::create_directory(dir_ + "/www");
  write("notadir", "x");
  write("itk.d/a.conf",
        "[vhost]\nServerName = a.test\nDocumentRoot = " + dir_ + "/www/\nAssignUserID = #2001 #2001\n" +
            "\n[vhost]\nServerName = b.test\nDocumentRoot = " + dir_ + "/missing\nAssignUserID = #2002 #2002\n" +
            "[vhost]\nServerName = c.test\nDocumentRoot = " + dir_ + "/notadir\nAssignUserID = #2003 #2003\n");
  opts_.check_filesystem = true;
  LoadResult r = load_config(opts_);
  // Tenants own their directories: what they do to them never makes the configuration invalid.
  EXPECT_TRUE(r.errors.empty()) << dump(r.errors);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(strs(r.warnings),
            (std::vector<std::string>{
                dropin("a.conf") + ":6: DocumentRoot: `" + dir_ +
                    "/missing` (vhost b.test): No such file or directory; the vhost answers 404 until it is there "
                    "(create the directory, or correct DocumentRoot)",
                dropin("a.conf") + ":10: DocumentRoot: `" + dir_ +
                    "/notadir` (vhost c.test): Not a directory; the vhost answers 404 until it is there (create the "
                    "directory, or correct DocumentRoot)",
            }));
  EXPECT_EQ(r.config->vhosts[0].document_root_problem, "");
  EXPECT_NE(r.config->vhosts[1].document_root_problem, "");
  opts_.check_filesystem = false;
  r = load_config(opts_);
  EXPECT_TRUE(r.errors.empty()) << dump(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << dump(r.warnings);
}

// A directory root can read but the vhost's uid cannot enter: checked as that uid, not as root.
TEST_F(LoadTest, DocumentRootCheckedAsTheVhostUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to check a directory as another uid";
  fs::create_directory(dir_ + "/closed");
  fs::create_directory(dir_ + "/closed/www");
  chmod((dir_ + "/closed").c_str(), 0700);
  chmod(dir_.c_str(), 0755);
  fs::create_directory(dir_ + "/open");
  chmod((dir_ + "/open").c_str(), 0755);
  write("itk.d/a.conf", "[vhost]\nServerName = a.test\nDocumentRoot = " + dir_ + "/closed/www\nAssignUserID = #2001 #2001\n" +
                            "[vhost]\nServerName = b.test\nDocumentRoot = " + dir_ + "/open\nAssignUserID = #2002 #2002\n");
  opts_.check_filesystem = true;
  LoadResult r = load_config(opts_);
  EXPECT_TRUE(r.errors.empty()) << dump(r.errors);
  EXPECT_EQ(strs(r.warnings),
            (std::vector<std::string>{
                dropin("a.conf") + ":1: DocumentRoot: `" + dir_ +
                    "/closed/www` (vhost a.test): uid 2001 cannot enter it: Permission denied; the vhost answers 403 "
                    "until it can (give the vhost's user search permission on the directory and its parents)",
            }));
}

// ---- compression ----

TEST(Compress, KeysInServerAndVHost) {
  Parsed q = parse_main("[server]\nCompress = off\nCompressTypes = text/html\nCompressTypes = Application/JSON\n"
                        "CompressMinSize = 1024\n");
  ASSERT_TRUE(q.errors.empty()) << dump(q.errors);
  EXPECT_FALSE(q.cfg.server.compress.enabled);
  // The first CompressTypes line replaces the built-in list, later ones add to it.
  EXPECT_EQ(q.cfg.server.compress.types, (std::vector<std::string>{"text/html", "application/json"}));
  EXPECT_EQ(q.cfg.server.compress.min_size, 1024u);

  Parsed p = parse_dropin(vhost("a.test") + vhost("b.test", "Compress = yes\nCompressTypes = text/*\n", "#2002 #2002"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  p.cfg.server = q.cfg.server;
  { std::vector<ConfigError> warnings; validate_config(p.cfg, false, p.errors, warnings); }
  const CompressSettings& a = p.cfg.vhosts[0].compress;
  const CompressSettings& b = p.cfg.vhosts[1].compress;
  EXPECT_FALSE(a.enabled);
  EXPECT_EQ(a.types, q.cfg.server.compress.types);
  EXPECT_EQ(a.min_size, 1024u);
  EXPECT_TRUE(b.enabled);
  EXPECT_EQ(b.types, (std::vector<std::string>{"text/*"}));
  EXPECT_EQ(b.min_size, 1024u);
}

TEST(Compress, DefaultsAreOn) {
  Parsed p = parse_dropin(vhost("a.test"));
  { std::vector<ConfigError> warnings; validate_config(p.cfg, false, p.errors, warnings); }
  const CompressSettings& c = p.cfg.vhosts[0].compress;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.min_size, 256u);
  EXPECT_NE(std::find(c.types.begin(), c.types.end(), "text/*"), c.types.end());
  EXPECT_NE(std::find(c.types.begin(), c.types.end(), "image/svg+xml"), c.types.end());
}

TEST(Compress, BadValuesNameTheLine) {
  EXPECT_EQ(vhost_error("Compress = maybe"), "a.conf:5: Compress: `maybe` is not a boolean (use yes or no)");
  EXPECT_EQ(vhost_error("CompressTypes = text/html text"),
            "a.conf:5: CompressTypes: `text` is not a media type (write `type/subtype` or `type/*`, without parameters)");
  EXPECT_EQ(vhost_error("CompressTypes = */*"),
            "a.conf:5: CompressTypes: `*/*` is not a media type (write `type/subtype` or `type/*`, without parameters)");
  EXPECT_EQ(vhost_error("CompressTypes = text/html;charset=utf-8"),
            "a.conf:5: CompressTypes: `text/html;charset=utf-8` is not a media type (write `type/subtype` or `type/*`, "
            "without parameters)");
  EXPECT_EQ(vhost_error("CompressMinSize = 2000000"),
            "a.conf:5: CompressMinSize: `2000000` is out of range (allowed: 0..1048576)");
  EXPECT_EQ(server_error("CompressMinSize", "-1"), "itk.conf:2: CompressMinSize: `-1` is out of range (allowed: 0..1048576)");
  EXPECT_EQ(vhost_error("Compress = on\nCompress = off"), "a.conf:6: Compress: given twice in this section (first at line 5)");
}

// ---- the examples shipped in docs/examples ----

// The source tree, found from this file's path as the compiler saw it (relative to the build directory, where
// meson runs tests).
fs::path examples_dir() {
  fs::path p = fs::path(__FILE__).parent_path() / ".." / ".." / "docs" / "examples";
  std::error_code ec;
  return fs::exists(p / "itk.conf", ec) ? p : fs::path();
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

TEST(Examples, ServerExampleShowsTheDefaults) {
  fs::path dir = examples_dir();
  if (dir.empty()) GTEST_SKIP() << "docs/examples not found from " << __FILE__;
  std::string text = slurp(dir / "itk.conf");
  Parsed p = parse_main(text);
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  // Uncomment every ";Key = value" line: each must be valid and, StartServers aside, the default.
  std::string uncommented;
  size_t keys = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.size() > 1 && line[0] == ';' && std::isalpha(static_cast<unsigned char>(line[1]))) {
      line.erase(0, 1);
      keys++;
    }
    uncommented += line + "\n";
  }
  EXPECT_EQ(keys, 24u);
  p = parse_main(uncommented);
  std::vector<std::string> unexpected;
  for (const auto& e : p.errors)
    if (!(e.key == "User" && getpwnam("itk") == nullptr)) unexpected.push_back(e.str());
  EXPECT_TRUE(unexpected.empty()) << dump(p.errors);
  ServerConfig defaults;
  const ServerConfig& s = p.cfg.server;
  EXPECT_EQ(s.max_clients, defaults.max_clients);
  EXPECT_EQ(s.max_clients_vhost, defaults.max_clients / 2);  // the default share, written out
  EXPECT_EQ(s.max_connection_time, defaults.max_connection_time);
  EXPECT_EQ(s.queue_timeout, defaults.queue_timeout);
  EXPECT_EQ(s.logs.format.source, kCombinedLogFormat);
  EXPECT_EQ(s.limit_head_buffers, defaults.limit_head_buffers);
  EXPECT_EQ(s.limit_request_body, defaults.limit_request_body);
  EXPECT_EQ(s.timeout, defaults.timeout);
  EXPECT_EQ(s.keep_alive_timeout, defaults.keep_alive_timeout);
  EXPECT_EQ(s.max_keep_alive_requests, defaults.max_keep_alive_requests);
  EXPECT_EQ(s.request_read_timeout, defaults.request_read_timeout);
  EXPECT_EQ(s.limit_request_line, defaults.limit_request_line);
  EXPECT_EQ(s.limit_request_field_size, defaults.limit_request_field_size);
  EXPECT_EQ(s.limit_request_fields, defaults.limit_request_fields);
  EXPECT_EQ(s.limit_request_body, defaults.limit_request_body);
  EXPECT_EQ(s.graceful_shutdown_timeout, defaults.graceful_shutdown_timeout);
  EXPECT_EQ(s.limit_uid_range.min, defaults.limit_uid_range.min);
  EXPECT_EQ(s.limit_uid_range.max, defaults.limit_uid_range.max);
  EXPECT_EQ(s.limit_gid_range.min, defaults.limit_gid_range.min);
  EXPECT_EQ(s.limit_gid_range.max, defaults.limit_gid_range.max);
  EXPECT_EQ(s.user, defaults.user);
  EXPECT_EQ(s.compress.enabled, defaults.compress.enabled);
  EXPECT_EQ(s.compress.types, defaults.compress.types);
  EXPECT_EQ(s.compress.min_size, defaults.compress.min_size);
}

TEST(Examples, VHostExampleIsComplete) {
  fs::path dir = examples_dir();
  if (dir.empty()) GTEST_SKIP() << "docs/examples not found from " << __FILE__;
  Parsed p = parse_dropin(slurp(dir / "itk.d" / "example.org.conf"));
  // The example names the site's own user and group, which this machine does not have.
  std::vector<std::string> unexpected;
  for (const auto& e : p.errors)
    if (e.message.find("`example` does not exist") == std::string::npos) unexpected.push_back(e.str());
  EXPECT_TRUE(unexpected.empty()) << dump(p.errors);
  ASSERT_EQ(p.cfg.vhosts.size(), 1u);
  const VHost& v = p.cfg.vhosts[0];
  EXPECT_EQ(v.server_name, "example.org");
  EXPECT_EQ(v.aliases, (std::vector<std::string>{"www.example.org", "*.example.org"}));
  EXPECT_EQ(v.document_root, "/srv/www/example.org");
  EXPECT_EQ(v.identity.nice, 5);
  EXPECT_EQ(v.max_clients_vhost, 20u);
  EXPECT_EQ(v.directory_index, (std::vector<std::string>{"index.html", "index.htm"}));
  EXPECT_FALSE(v.is_default);
}

// ---- CGI ----

TEST(VHostCGI, ExtensionsHandlersAndTimeout) {
  Parsed p = parse_dropin(vhost("a.test",
                                "CGI = .cgi .PL\n"
                                "CGI = .sh\n"
                                "Handler = .php /bin/sh\n"
                                "Handler = .py /bin/sh\n"
                                "CGITimeout = 5\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  const VHost& v = p.cfg.vhosts[0];
  EXPECT_EQ(v.cgi_extensions, (std::vector<std::string>{".cgi", ".pl", ".sh"}));
  ASSERT_EQ(v.handlers.size(), 2u);
  EXPECT_EQ(v.handlers[0].extension, ".php");
  EXPECT_EQ(v.handlers[0].program, "/bin/sh");
  EXPECT_EQ(v.cgi_timeout, 5u);
}

// ---- access rules ----

TEST(VHostAccess, DefaultsDenyDotFilesAndNoPrefix) {
  Parsed p = parse_dropin(vhost("a.test"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_TRUE(p.cfg.vhosts[0].deny_dot_files);
  EXPECT_TRUE(p.cfg.vhosts[0].deny_prefixes.empty());
}

TEST(VHostAccess, DenyPrefixesAddUpAndAreNormalised) {
  Parsed p = parse_dropin(vhost("a.test",
                                "Deny = /data /conf/\n"
                                "deny = //inc//lib/./x\n"
                                "Deny = /\n"
                                "DenyDotFiles = no\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].deny_prefixes, (std::vector<std::string>{"/data", "/conf", "/inc/lib/x", "/"}));
  EXPECT_FALSE(p.cfg.vhosts[0].deny_dot_files);
}

TEST(VHostAccess, BadValuesNameTheirLine) {
  Parsed p = parse_dropin(vhost("a.test",
                                "Deny = data\n"              // 5
                                "Deny = /ok /a/../b\n"       // 6: the good word is kept
                                "DenyDotFiles = maybe\n"     // 7
                                "Deny =\n"                   // 8
                                "DenyDotFiles = yes\n"));    // 9
  EXPECT_EQ(strs(p.errors),
            (std::vector<std::string>{
                "a.conf:5: Deny: `data` is not an absolute path",
                "a.conf:6: Deny: `/a/../b` contains `..`: write the directory's path without it",
                "a.conf:7: DenyDotFiles: `maybe` is not a boolean (use yes or no)",
                "a.conf:8: Deny: empty value",
                "a.conf:9: DenyDotFiles: given twice in this section (first at line 7)",
            }));
  EXPECT_EQ(p.cfg.vhosts[0].deny_prefixes, (std::vector<std::string>{"/ok"}));
  // Both are [vhost] keys only.
  p = parse_main("[server]\nDeny = /data\nDenyDotFiles = no\n");
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{"itk.conf:2: Deny: belongs in a [vhost] section of a drop-in",
                                                      "itk.conf:3: DenyDotFiles: belongs in a [vhost] section of a "
                                                      "drop-in"}));
}

TEST(VHostCgroupLimits, ParsedWithUnits) {
  Parsed p = parse_dropin(vhost("a.test", "MaxProcessesVHost = 64\nMemoryMaxVHost = 512M\nCPUWeightVHost = 200\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  EXPECT_EQ(p.cfg.vhosts[0].max_processes_vhost, 64u);
  EXPECT_EQ(p.cfg.vhosts[0].memory_max_vhost, 512ull << 20);
  EXPECT_EQ(p.cfg.vhosts[0].cpu_weight_vhost, 200u);
  EXPECT_EQ(parse_dropin(vhost("a.test", "MemoryMaxVHost = 2G\n")).cfg.vhosts[0].memory_max_vhost, 2ull << 30);
  EXPECT_EQ(parse_dropin(vhost("a.test", "MemoryMaxVHost = 1048576\n")).cfg.vhosts[0].memory_max_vhost, 1ull << 20);
  EXPECT_EQ(vhost_error("MemoryMaxVHost = lots"),
            "a.conf:5: MemoryMaxVHost: `lots` is not a size (bytes, or a number with K, M, G or T)");
  EXPECT_EQ(vhost_error("MemoryMaxVHost = 4K"), "a.conf:5: MemoryMaxVHost: below 1M: too small for a vhost's processes");
  EXPECT_EQ(vhost_error("CPUWeightVHost = 0"), "a.conf:5: CPUWeightVHost: `0` is out of range (allowed: 1..10000)");
  EXPECT_EQ(vhost_error("MaxProcessesVHost = 0"),
            "a.conf:5: MaxProcessesVHost: `0` is out of range (allowed: 1..4194304)");
}

TEST(VHostCGI, Errors) {
  EXPECT_EQ(vhost_error("CGI = cgi"), "a.conf:5: CGI: `cgi` is not a file extension (write it with its dot, e.g. .cgi)");
  EXPECT_EQ(vhost_error("CGI = .a/b"), "a.conf:5: CGI: `.a/b` is not a file extension (write it with its dot, e.g. .cgi)");
  EXPECT_EQ(vhost_error("Handler = .php"),
            "a.conf:5: Handler: expected `.ext /path/to/program` (one extension per Handler line)");
  EXPECT_EQ(vhost_error("Handler = .php bin/php-cgi"), "a.conf:5: Handler: `bin/php-cgi` must be an absolute path");
  EXPECT_EQ(vhost_error("Handler = .php /nonexistent/php-cgi"),
            "a.conf:5: Handler: /nonexistent/php-cgi: No such file or directory (install it or fix the path)");
  EXPECT_EQ(vhost_error("Handler = .php /etc/passwd"), "a.conf:5: Handler: /etc/passwd is not an executable file");
  EXPECT_EQ(vhost_error("CGITimeout = 0"), "a.conf:5: CGITimeout: `0` is out of range (allowed: 1..86400)");
  Parsed p = parse_dropin(vhost("a.test", "CGI = .php\nHandler = .php /bin/sh\n"));
  ASSERT_EQ(p.errors.size(), 1u) << dump(p.errors);
  EXPECT_EQ(p.errors[0].str(), "a.conf:6: Handler: .php is already listed in CGI");
}

TEST(VHostFastCGI, ParsedAndValidated) {
  Parsed p = parse_dropin(vhost("a.test",
                                "FastCGI = .PHP /bin/sh\n"
                                "FastCGI = .py /bin/true\n"
                                "FastCGIMaxProcesses = 3\n"
                                "FastCGIIdleTimeout = 0\n"
                                "FastCGIMaxRequests = 100\n"));
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  { std::vector<ConfigError> warnings; validate_config(p.cfg, false, p.errors, warnings); }
  const FastCgiSettings& f = p.cfg.vhosts[0].fastcgi;
  ASSERT_EQ(f.apps.size(), 2u);
  EXPECT_EQ(f.apps[0].extension, ".php");
  EXPECT_EQ(f.apps[0].program, "/bin/sh");
  EXPECT_EQ(f.apps[1].extension, ".py");
  EXPECT_EQ(f.max_processes, 3u);
  EXPECT_EQ(f.idle_timeout, 0u);
  EXPECT_EQ(f.max_requests, 100u);
}

TEST(VHostFastCGI, Errors) {
  EXPECT_EQ(vhost_error("FastCGI = .php"),
            "a.conf:5: FastCGI: expected `.ext /path/to/fastcgi-app` (one extension per FastCGI line)");
  EXPECT_EQ(vhost_error("FastCGI = php /bin/sh"),
            "a.conf:5: FastCGI: `php` is not a file extension (write it with its dot, e.g. .cgi)");
  EXPECT_EQ(vhost_error("FastCGI = .php /nonexistent/php-cgi"),
            "a.conf:5: FastCGI: /nonexistent/php-cgi: No such file or directory (install it or fix the path)");
  EXPECT_EQ(vhost_error("FastCGIMaxProcesses = 0"), "a.conf:5: FastCGIMaxProcesses: `0` is out of range (allowed: 1..4096)");
  EXPECT_EQ(vhost_error("FastCGIIdleTimeout = soon"), "a.conf:5: FastCGIIdleTimeout: `soon` is not a decimal number (allowed: 0..86400)");
  Parsed p = parse_dropin(vhost("a.test", "Handler = .php /bin/sh\nFastCGI = .php /bin/sh\nFastCGI = .py /bin/sh\n"
                                          "FastCGI = .py /bin/true\nCGI = .py\n"));
  EXPECT_EQ(strs(p.errors), (std::vector<std::string>{
                                "a.conf:6: FastCGI: .php already has a Handler (/bin/sh)",
                                "a.conf:8: FastCGI: .py already has a FastCGI app (/bin/sh)",
                                "a.conf:9: CGI: .py already has a FastCGI app (/bin/sh)",
                            }));
}

TEST(VHostFastCGI, ServerDefaults) {
  Parsed p = parse_main("[server]\nFastCGI = .php /bin/sh\nFastCGIIdleTimeout = 7\nFastCGIMaxRequests = 9\n");
  ASSERT_TRUE(p.errors.empty()) << dump(p.errors);
  Parsed d = parse_dropin(vhost("a.test", "MaxClientsVHost = 5\n") + vhost("b.test", "Handler = .php /bin/true\n") +
                          vhost("c.test", "FastCGI = .py /bin/true\nFastCGIIdleTimeout = 1\n"));
  ASSERT_TRUE(d.errors.empty()) << dump(d.errors);
  d.cfg.server = p.cfg.server;
  { std::vector<ConfigError> warnings; validate_config(d.cfg, false, d.errors, warnings); }
  const auto& a = d.cfg.vhosts[0].fastcgi;
  ASSERT_EQ(a.apps.size(), 1u);
  EXPECT_EQ(a.apps[0].extension, ".php");
  EXPECT_EQ(a.max_processes, 5u);  // MaxClientsVHost
  EXPECT_EQ(a.idle_timeout, 7u);
  EXPECT_EQ(a.max_requests, 9u);
  EXPECT_TRUE(d.cfg.vhosts[1].fastcgi.apps.empty());  // its own Handler runs .php
  EXPECT_EQ(d.cfg.vhosts[1].fastcgi.max_processes, kDefaultFastCgiProcesses);
  const auto& c = d.cfg.vhosts[2].fastcgi;
  ASSERT_EQ(c.apps.size(), 1u);  // its own list replaces the server's
  EXPECT_EQ(c.apps[0].extension, ".py");
  EXPECT_EQ(c.idle_timeout, 1u);
}

// ---- TLS certificates and keys ----

TEST(TlsKeys, InServerAndVHost) {
  Parsed s = parse_main("[server]\nTLSCertificateFile = /etc/itk/tls/default.pem\n"
                        "tlscertificatekeyfile = /etc/itk/tls/default.key\n");
  ASSERT_TRUE(s.errors.empty()) << dump(s.errors);
  EXPECT_EQ(s.cfg.server.tls.certificate_file, "/etc/itk/tls/default.pem");
  EXPECT_EQ(s.cfg.server.tls.key_file, "/etc/itk/tls/default.key");
  EXPECT_EQ(s.cfg.server.tls.certificate_at.str(), "itk.conf:2");
  EXPECT_EQ(s.cfg.server.tls.key_at.str(), "itk.conf:3");
  Parsed v = parse_dropin(vhost("a.test", "TLSCertificateFile = /etc/itk/tls/a.pem\n"
                                          "TLSCertificateKeyFile = /etc/itk/tls/a.key\n"));
  ASSERT_TRUE(v.errors.empty()) << dump(v.errors);
  ASSERT_EQ(v.cfg.vhosts.size(), 1u);
  EXPECT_EQ(v.cfg.vhosts[0].tls.certificate_file, "/etc/itk/tls/a.pem");
  EXPECT_EQ(v.cfg.vhosts[0].tls.key_file, "/etc/itk/tls/a.key");
  EXPECT_EQ(v.cfg.vhosts[0].tls.key_at.str(), "a.conf:6");
  EXPECT_TRUE(parse_dropin(vhost("b.test")).cfg.vhosts[0].tls.empty());
}

TEST(TlsKeys, ValueErrors) {
  EXPECT_EQ(vhost_error("TLSCertificateFile = a.pem"), "a.conf:5: TLSCertificateFile: `a.pem` is not an absolute path");
  EXPECT_EQ(server_error("TLSCertificateKeyFile", "tls/a.key"),
            "itk.conf:2: TLSCertificateKeyFile: `tls/a.key` is not an absolute path");
  Parsed p = parse_dropin(vhost("a.test", "TLSCertificateFile = /a.pem\nTLSCertificateFile = /b.pem\n"));
  ASSERT_EQ(p.errors.size(), 1u) << dump(p.errors);
  EXPECT_EQ(p.errors[0].str(), "a.conf:6: TLSCertificateFile: given twice in this section (first at line 5)");
  // TLS settings this version does not have are refused, never ignored.
  EXPECT_EQ(vhost_error("TLSCipherSuite = HIGH"), "a.conf:5: TLSCipherSuite: not supported by this version of itk");
}

// A self-signed P-256 certificate and its key, written as PEM files; returns {cert, key}.
std::pair<std::string, std::string> write_pair(const std::string& dir, const std::string& name) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, key, EVP_sha256());
  std::string cert = dir + "/" + name + ".pem", keyfile = dir + "/" + name + ".key";
  FILE* f = fopen(cert.c_str(), "w");
  PEM_write_X509(f, x);
  fclose(f);
  f = fopen(keyfile.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(f);
  chmod(keyfile.c_str(), 0600);
  X509_free(x);
  EVP_PKEY_free(key);
  return {cert, keyfile};
}

TEST_F(LoadTest, TlsPairsAreCheckedAtLoad) {
  auto [a_cert, a_key] = write_pair(dir_, "a.test");
  auto [b_cert, b_key] = write_pair(dir_, "b.test");
  opts_.check_filesystem = true;
  auto site = [&](const std::string& name, const std::string& cert, const std::string& key) {
    std::string s = "[vhost]\nServerName = " + name + "\nDocumentRoot = " + dir_ + "\nAssignUserID = #2001 #2001\n";
    if (!cert.empty()) s += "TLSCertificateFile = " + cert + "\n";
    if (!key.empty()) s += "TLSCertificateKeyFile = " + key + "\n";
    return s;
  };
  write("itk.d/a.conf", site("a.test", a_cert, a_key) + site("b.test", b_cert, a_key));
  LoadResult r = load_config(opts_);
  EXPECT_EQ(strs(r.errors), (std::vector<std::string>{
                                dropin("a.conf") + ":12: TLSCertificateKeyFile: `" + a_key +
                                    "` (vhost b.test): does not match the certificate `" + b_cert +
                                    "` (give the key that certificate was issued for)",
                            }));
  write("itk.d/a.conf", site("a.test", a_cert, "") + site("b.test", "", b_key));
  r = load_config(opts_);
  EXPECT_EQ(strs(r.errors), (std::vector<std::string>{
                                dropin("a.conf") + ":5: TLSCertificateFile: has no TLSCertificateKeyFile beside it: "
                                                   "give the certificate's private key in the same section",
                                dropin("a.conf") + ":10: TLSCertificateKeyFile: has no TLSCertificateFile beside it: "
                                                   "give the key's certificate in the same section",
                            }));
  write("itk.conf", "[server]\nUser = #990\nTLSCertificateFile = " + b_cert + "\nTLSCertificateKeyFile = " + b_key + "\n");
  write("itk.d/a.conf", site("a.test", a_cert, a_key));
  r = load_config(opts_);
  ASSERT_TRUE(r.errors.empty()) << dump(r.errors);
  EXPECT_EQ(r.config->server.tls.key_file, b_key);
  EXPECT_EQ(r.config->vhosts[0].tls.certificate_file, a_cert);
}

}  // namespace
}  // namespace itk

// itkctl's output: the JSON string escaper, the check report, the vhosts table, and the control socket's
// answer (encoded by the master, decoded and rendered by itkctl).
#include <gtest/gtest.h>

#include "ctl/check_report.h"
#include "ctl/control_protocol.h"
#include "ctl/json.h"
#include "ctl/status_report.h"
#include "ctl/vhosts_report.h"

namespace itk {
namespace {

TEST(JsonString, PlainTextIsQuoted) {
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("a.test /srv/www"), "\"a.test /srv/www\"");
}

TEST(JsonString, QuotesBackslashesAndControlsAreEscaped) {
  EXPECT_EQ(json_string("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(json_string("C:\\x"), "\"C:\\\\x\"");
  EXPECT_EQ(json_string("a\nb\tc\rd\be\ff"), "\"a\\nb\\tc\\rd\\be\\ff\"");
  EXPECT_EQ(json_string(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(json_string(std::string("a\0b", 3)), "\"a\\u0000b\"");
  EXPECT_EQ(json_string("/"), "\"/\"");  // a solidus may stay as it is
}

TEST(JsonString, ValidUtf8StaysInvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(json_string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(json_string("\xE9t\xE9"), "\"" + fffd + "t" + fffd + "\"");             // Latin-1
  EXPECT_EQ(json_string("\xC0\xAF"), "\"" + fffd + fffd + "\"");                     // overlong '/'
  EXPECT_EQ(json_string("\xED\xA0\x80"), "\"" + fffd + fffd + fffd + "\"");          // a surrogate
  EXPECT_EQ(json_string("\xF4\x90\x80\x80"), "\"" + fffd + fffd + fffd + fffd + "\"");  // past U+10FFFF
  EXPECT_EQ(json_string("ab\xE2\x82"), "\"ab" + fffd + fffd + "\"");                 // cut short
}

ConfigError entry(const std::string& file, int line, const std::string& key, const std::string& message) {
  ConfigError e;
  e.origin.file = file;
  e.origin.line = line;
  e.key = key;
  e.message = message;
  return e;
}

TEST(CheckJson, ErrorsAndWarningsWithTheirPlaces) {
  LoadResult r;
  r.errors.push_back(entry("/etc/itk.d/a.conf", 3, "AssignUserID", "uid 0 (root) is never allowed"));
  r.errors.push_back(entry("/etc/itk.d/b \"x\".conf", 0, "", "cannot read: Permission denied"));
  r.warnings.push_back(entry("/etc/itk.d/c.conf", 4, "DocumentRoot", "cannot enter\n/srv/c"));
  EXPECT_EQ(check_json(r),
            "{\"ok\": false, \"vhosts\": null, \"errors\": ["
            "{\"file\": \"/etc/itk.d/a.conf\", \"line\": 3, \"key\": \"AssignUserID\", \"message\": \"uid 0 (root) is "
            "never allowed\"}, "
            "{\"file\": \"/etc/itk.d/b \\\"x\\\".conf\", \"line\": 0, \"key\": null, \"message\": \"cannot read: "
            "Permission denied\"}], "
            "\"warnings\": [{\"file\": \"/etc/itk.d/c.conf\", \"line\": 4, \"key\": \"DocumentRoot\", \"message\": "
            "\"cannot enter\\n/srv/c\"}]}\n");
}

TEST(CheckJson, ALoadedConfigurationCountsItsVhosts) {
  LoadResult r;
  r.config = std::make_unique<Config>();
  r.config->vhosts.resize(2);
  EXPECT_EQ(check_json(r), "{\"ok\": true, \"vhosts\": 2, \"errors\": [], \"warnings\": []}\n");
}

IdNames fake_names() {
  IdNames n;
  n.user = [](uid_t uid) { return uid == 1001 ? std::string("alice") : std::string(); };
  n.group = [](gid_t gid) { return gid == 1001 ? std::string("alice") : gid == 33 ? std::string("www-data") : std::string(); };
  return n;
}

TEST(VHostsTable, EveryVhostWithItsNamesRootIdentityHandlersAndPlace) {
  Config cfg;
  cfg.config_file = "/etc/itk.conf";
  cfg.config_dir = "/etc/itk.d";
  VHost a;
  a.server_name = "a.test";
  a.aliases = {"www.a.test", "*.a.test"};
  a.document_root = "/srv/www/a";
  a.identity.uid = 1001;
  a.identity.gid = 1001;
  a.identity.groups = {1001, 33};
  a.identity.nice = 5;
  a.cgi_extensions = {".cgi"};
  a.handlers = {{".pl", "/usr/bin/perl"}};
  a.fastcgi.apps = {{".php", "/usr/bin/php-cgi"}};
  a.max_clients_vhost = 20;
  a.origin = {"/etc/itk.d/10-a.conf", 1};
  VHost b;
  b.server_name = "b.test";
  b.document_root = "/srv/www/b";
  b.identity.uid = 2002;
  b.identity.gid = 2003;
  b.identity.groups = {2003};
  b.document_root_problem = "No such file or directory";
  b.origin = {"/etc/itk.d/20-b.conf", 7};
  cfg.vhosts = {a, b};
  cfg.default_vhost = 1;
  EXPECT_EQ(format_vhosts(cfg, fake_names()),
            "Configuration: /etc/itk.conf and /etc/itk.d, 2 vhost(s)\n"
            "a.test  /etc/itk.d/10-a.conf:1\n"
            "    aliases   www.a.test *.a.test\n"
            "    root      /srv/www/a\n"
            "    user      alice:alice (1001/1001), groups 1001 33, nice 5\n"
            "    handlers  CGI .cgi; Handler .pl /usr/bin/perl; FastCGI .php /usr/bin/php-cgi\n"
            "    limits    MaxClientsVHost 20\n"
            "b.test (default)  /etc/itk.d/20-b.conf:7\n"
            "    root      /srv/www/b  (unusable: No such file or directory)\n"
            "    user      2002:2003 (2002/2003)\n");
}

ServerStatus sample_status() {
  ServerStatus s;
  s.pid = 812;
  s.generation = 3;
  s.reloads = 2;
  s.cgroups = "off (no delegated cgroup2)";
  s.config_file = "/etc/itk conf";
  s.config_dir = "/etc/itk.d";
  s.reload_error = "/etc/itk.d/a.conf:3: Timeout: 100% wrong=yes";
  s.acceptors_busy = 1;
  s.acceptors_idle = 2;
  s.workers = 3;
  s.idle = 4;
  s.fastcgi = 2;
  s.served = 100;
  s.refused = 7;
  s.at_limit = 1;
  s.vhosts.push_back({"a.test", 3, 4, 2, 90, 7, 3, true});
  s.vhosts.push_back({"longer-name.test", 0, 0, 0, 10, 0, 0, false});
  return s;
}

TEST(ControlProtocol, AnswerRoundTrips) {
  const ServerStatus s = sample_status();
  const std::string text = encode_status(s);
  EXPECT_NE(text.find("config=/etc/itk%20conf "), std::string::npos) << text;
  EXPECT_NE(text.find("reload_error=/etc/itk.d/a.conf:3:%20Timeout:%20100%25%20wrong%3Dyes\n"), std::string::npos) << text;
  ServerStatus d;
  std::string error;
  ASSERT_TRUE(decode_status(text, d, error)) << error;
  EXPECT_EQ(d.pid, 812);
  EXPECT_EQ(d.generation, 3u);
  EXPECT_EQ(d.reloads, 2u);
  EXPECT_EQ(d.cgroups, s.cgroups);
  EXPECT_EQ(d.config_file, s.config_file);
  EXPECT_EQ(d.reload_error, s.reload_error);
  EXPECT_EQ(d.unit, "");
  EXPECT_EQ(d.workers, 3u);
  EXPECT_EQ(d.idle, 4u);
  EXPECT_EQ(d.at_limit, 1u);
  ASSERT_EQ(d.vhosts.size(), 2u);
  EXPECT_EQ(d.vhosts[0].name, "a.test");
  EXPECT_EQ(d.vhosts[0].served, 90u);
  EXPECT_EQ(d.vhosts[0].refused, 7u);
  EXPECT_TRUE(d.vhosts[0].at_limit);
  EXPECT_EQ(d.vhosts[1].max, 0u);
}

TEST(ControlProtocol, CutShortOrForeignAnswersAreRefused) {
  const std::string text = encode_status(sample_status());
  ServerStatus d;
  std::string error;
  EXPECT_FALSE(decode_status(text.substr(0, text.size() - 4), d, error));
  EXPECT_EQ(error, "the answer was cut short");
  EXPECT_FALSE(decode_status("", d, error));
  EXPECT_FALSE(decode_status("HTTP/1.1 200 OK\r\n", d, error));
  EXPECT_FALSE(decode_status("itk-control 1\nerror only%20root\n", d, error));
  EXPECT_EQ(error, "the master says: only root");
  // Fields and records it does not know are skipped.
  EXPECT_TRUE(decode_status("itk-control 1\nserver pid=5 future=x\nnews a=b\nend\n", d, error)) << error;
  EXPECT_EQ(d.pid, 5);
}

TEST(StatusReport, TableAndJson) {
  const ServerStatus s = sample_status();
  EXPECT_EQ(format_status_table(s),
            "itkd 812, generation 3: 2 vhosts, workers 3 busy/4 idle, fastcgi 2, served 100, refused 7; cgroups: off "
            "(no delegated cgroup2)\n"
            "VHOST              BUSY   IDLE    PHP     SERVED    503  LIMIT\n"
            "a.test                3      4      2         90      7  3/3 at limit\n"
            "longer-name.test      0      0      0         10      0  0/-\n"
            "last reload refused: /etc/itk.d/a.conf:3: Timeout: 100% wrong=yes\n");
  EXPECT_EQ(status_json(s),
            "{\"pid\": 812, \"generation\": 3, \"reloads\": 2, \"reload_error\": \"/etc/itk.d/a.conf:3: Timeout: 100% "
            "wrong=yes\", \"unit\": null, \"cgroups\": \"off (no delegated cgroup2)\", \"acceptors\": {\"busy\": 1, "
            "\"idle\": 2}, \"workers\": 3, \"idle\": 4, \"fastcgi\": 2, \"served\": 100, \"refused\": 7, \"at_limit\": 1, "
            "\"vhosts\": [{\"name\": \"a.test\", \"workers\": 3, \"idle\": 4, \"fastcgi\": 2, \"served\": 90, "
            "\"refused\": 7, \"max_clients\": 3, \"at_limit\": true}, {\"name\": \"longer-name.test\", \"workers\": 0, "
            "\"idle\": 0, \"fastcgi\": 0, \"served\": 10, \"refused\": 0, \"max_clients\": 0, \"at_limit\": false}]}\n");
}

}  // namespace
}  // namespace itk

// Unit tests of the logs: LogFormat parsing (every directive, every refusal with its file:line), access log
// lines (escaping, the exact Combined format), the error log line's shape, and the log keys' checks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/log_format.h"
#include "http/access_log.h"
#include "sys/log.h"

namespace itk {
namespace {

using Kind = LogItem::Kind;

class LogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
  }
};

std::vector<ConfigError> parse(const std::string& main, const std::string& dropin) {
  Config cfg;
  cfg.config_file = "itk.conf";
  cfg.config_dir = "itk.d";
  std::vector<ConfigError> errors, warnings;
  parse_config_text(main, "itk.conf", false, cfg, errors);
  parse_config_text(dropin, "a.conf", true, cfg, errors);
  if (errors.empty()) validate_config(cfg, false, errors, warnings);
  return errors;
}

std::string only_error(const std::string& main, const std::string& dropin) {
  std::vector<ConfigError> errors = parse(main, dropin);
  if (errors.size() != 1) {
    std::string all;
    for (const auto& e : errors) all += "\n  " + e.str();
    return "expected one error, got " + std::to_string(errors.size()) + ":" + all;
  }
  return errors[0].str();
}

const char* const kVHost = "[vhost]\nServerName = a.test\nDocumentRoot = /srv/a\nAssignUserID = #2001 #2001\n";

TEST_F(LogsTest, EveryDirectiveParses) {
  const struct {
    const char* text;
    Kind kind;
    const char* arg;
  } cases[] = {
      {"%h", Kind::client_ip, ""},      {"%a", Kind::client_ip, ""},       {"%l", Kind::ident, ""},
      {"%u", Kind::user, ""},           {"%t", Kind::time, ""},            {"%r", Kind::request_line, ""},
      {"%s", Kind::status, ""},         {"%>s", Kind::status, ""},         {"%<s", Kind::status, ""},
      {"%b", Kind::body_bytes_clf, ""}, {"%B", Kind::body_bytes, ""},      {"%D", Kind::duration_us, ""},
      {"%T", Kind::duration_s, ""},     {"%v", Kind::server_name, ""},     {"%V", Kind::host, ""},
      {"%p", Kind::local_port, ""},     {"%P", Kind::pid, ""},             {"%I", Kind::bytes_in, ""},
      {"%O", Kind::bytes_out, ""},      {"%{User-Agent}i", Kind::request_header, "user-agent"},
      {"%{X-Cache}o", Kind::response_header, "x-cache"}, {"%{%Y}t", Kind::time, "%Y"},
  };
  for (const auto& c : cases) {
    LogFormat f;
    ASSERT_EQ(parse_log_format(c.text, f), "") << c.text;
    ASSERT_EQ(f.items.size(), 1u) << c.text;
    EXPECT_EQ(f.items[0].kind, c.kind) << c.text;
    EXPECT_EQ(f.items[0].text, c.arg) << c.text;
  }
  LogFormat f;
  ASSERT_EQ(parse_log_format("100%% [%v]", f), "");
  ASSERT_EQ(f.items.size(), 3u);
  EXPECT_EQ(f.items[0].text, "100% [");
  EXPECT_EQ(f.items[2].text, "]");
  ASSERT_EQ(parse_log_format("combined", f), "");
  EXPECT_EQ(f.source, kCombinedLogFormat);
}

TEST_F(LogsTest, BadFormatsNameFileAndLine) {
  const struct {
    const char* value;
    const char* message;
  } cases[] = {
      {"%h %Z", "`%Z` is not a supported directive"},
      {"%h %", "ends with a lone `%`"},
      {"%{Referer", "no closing `}`"},
      {"%{a b}i", "is not a header name"},
      {"%{x}e", "does not support this directive with an argument"},
      {"%{begin:%Y}t", "only a strftime format"},
      {"%>b", "`<` and `>` only go with %s"},
  };
  for (const auto& c : cases) {
    std::string e = only_error(std::string("[server]\nLogFormat = ") + c.value + "\n", kVHost);
    EXPECT_EQ(e.rfind("itk.conf:2: LogFormat: ", 0), 0u) << e;
    EXPECT_NE(e.find(c.message), std::string::npos) << e;
  }
  std::string e = only_error("", std::string(kVHost) + "LogFormat = %h %X\n");
  EXPECT_EQ(e.rfind("a.conf:5: LogFormat: `%X`", 0), 0u) << e;
}

TEST_F(LogsTest, LogPathsChecked) {
  EXPECT_EQ(only_error("[server]\nAccessLog = logs/access.log\n", kVHost),
            "itk.conf:2: AccessLog: `logs/access.log` is not an absolute path");
  EXPECT_NE(only_error("[server]\nErrorLog = /var/log/%h.log\n", kVHost).find("itk.conf:2: ErrorLog: "), std::string::npos);
  EXPECT_NE(only_error("", std::string(kVHost) + "AccessLog = /var/log/../x.log\n").find("a.conf:5: AccessLog: "),
            std::string::npos);
  // A tenant could replace a file in its DocumentRoot, or another tenant's.
  std::string e = only_error("", std::string(kVHost) + "ErrorLog = /srv/a/logs/error.log\n");
  EXPECT_EQ(e.rfind("a.conf:5: ErrorLog: `/srv/a/logs/error.log` lies in the DocumentRoot of a.test", 0), 0u) << e;
  e = only_error("[server]\nAccessLog = /srv/a/%v.log\n", kVHost);
  EXPECT_EQ(e.rfind("itk.conf:2: AccessLog: for a.test: `/srv/a/a.test.log` lies in the DocumentRoot of a.test", 0), 0u)
      << e;
  EXPECT_TRUE(parse("[server]\nAccessLog = /srv/%v/access.log\n", kVHost).empty());
  EXPECT_TRUE(parse("[server]\nAccessLog = /srv/a/access.log\n", kVHost).size() == 1);
}

TEST_F(LogsTest, VHostPathsResolved) {
  Config cfg;
  cfg.config_file = "itk.conf";
  cfg.config_dir = "itk.d";
  std::vector<ConfigError> errors, warnings;
  parse_config_text("[server]\nAccessLog = /var/log/itk/%v/access.log\nErrorLog = /var/log/itk/error.log\n"
                    "LogFormat = %v %>s\n",
                    "itk.conf", false, cfg, errors);
  parse_config_text(std::string(kVHost) + "\n[vhost]\nServerName = b.test\nDocumentRoot = /srv/b\n"
                    "AssignUserID = #2002 #2002\nAccessLog = off\nErrorLog = /var/log/b/error.log\nLogFormat = common\n",
                    "a.conf", true, cfg, errors);
  validate_config(cfg, false, errors, warnings);
  ASSERT_TRUE(errors.empty()) << errors[0].str();
  EXPECT_EQ(cfg.vhosts[0].logs.access_log, "/var/log/itk/a.test/access.log");
  EXPECT_EQ(cfg.vhosts[0].logs.error_log, "/var/log/itk/error.log");
  EXPECT_EQ(cfg.vhosts[0].logs.format.source, "%v %>s");
  EXPECT_EQ(cfg.vhosts[1].logs.access_log, "");
  EXPECT_EQ(cfg.vhosts[1].logs.error_log, "/var/log/b/error.log");
  EXPECT_EQ(cfg.vhosts[1].logs.format.source, kCommonLogFormat);
}

AccessRecord fixed_record(const std::vector<std::pair<std::string, std::string>>& headers) {
  AccessRecord r;
  r.client_ip = "192.0.2.7";
  r.local_port = "8080";
  r.start.tv_sec = 1796594400;  // 2026-12-06 22:00:00 UTC
  r.start.tv_nsec = 123456000;
  r.duration_us = 2500123;
  r.request_line = "GET /a\"b\\c HTTP/1.1";
  r.status = 200;
  r.body_bytes = 1234;
  r.bytes_in = 80;
  r.bytes_out = 1400;
  r.server_name = "a.test";
  r.host = "www.a.test";
  r.request_headers = &headers;
  r.response_head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Odd: \x01tab\t\r\n\r\n";
  r.pid = 4242;
  return r;
}

TEST_F(LogsTest, CombinedLineExact) {
  std::vector<std::pair<std::string, std::string>> headers{{"host", "www.a.test"},
                                                           {"user-agent", "Agent \"quoted\" back\\slash"}};
  LogFormat f;
  ASSERT_EQ(parse_log_format(kCombinedLogFormat, f), "");
  EXPECT_EQ(format_access_line(f, fixed_record(headers)),
            "192.0.2.7 - - [06/Dec/2026:22:00:00 +0000] \"GET /a\\\"b\\\\c HTTP/1.1\" 200 1234 \"-\" "
            "\"Agent \\\"quoted\\\" back\\\\slash\"\n");
}

TEST_F(LogsTest, EveryDirectiveFormats) {
  std::vector<std::pair<std::string, std::string>> headers{{"referer", "http://r.test/\n"}};
  LogFormat f;
  ASSERT_EQ(parse_log_format("%a|%p|%P|%B|%D|%T|%v|%V|%I|%O|%{referer}i|%{content-type}o|%{x-odd}o|%{none}o|%{%Y}t|%%",
                             f),
            "");
  EXPECT_EQ(format_access_line(f, fixed_record(headers)),
            "192.0.2.7|8080|4242|1234|2500123|2|a.test|www.a.test|80|1400|http://r.test/\\n|text/html|\\x01tab\\t|-|"
            "2026|%\n");
  AccessRecord empty = fixed_record(headers);
  empty.body_bytes = 0;
  empty.status = 0;
  empty.request_line = "";
  ASSERT_EQ(parse_log_format("%b %B %>s \"%r\"", f), "");
  EXPECT_EQ(format_access_line(f, empty), "- 0 - \"-\"\n");
}

TEST_F(LogsTest, ErrorLineShape) {
  timespec t{1796594400, 123456789};
  EXPECT_EQ(error_log_line(t, Level::err, 77, "192.0.2.7:5678", "open \"/x\": No such file\n"),
            "[Sun Dec 06 22:00:00.123456 2026] [core:error] [pid 77] [client 192.0.2.7:5678] "
            "open \\\"/x\\\": No such file\\n\n");
  EXPECT_EQ(error_log_line(t, Level::warning, 77, "", "m"), "[Sun Dec 06 22:00:00.123456 2026] [core:warn] [pid 77] m\n");
}

}  // namespace
}  // namespace itk

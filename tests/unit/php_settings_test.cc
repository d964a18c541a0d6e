// Unit tests of a vhost's PHP settings: each key parsed, every refused name or value with its file:line,
// and the ini text php-cgi is given (plain lines for every setting, a [HOST=] section for the admin's).
#include "config/php_settings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace itk {
namespace {

// A drop-in "a.conf" holding one vhost whose extra lines start at line 5; its errors as "file:line: Key: message".
Config load_vhost(const std::string& extra, std::vector<std::string>& errors) {
  Config cfg;
  cfg.config_file = "itk.conf";
  cfg.config_dir = "itk.d";
  std::vector<ConfigError> found;
  parse_config_text("[vhost]\nServerName = a.test\nDocumentRoot = /srv/a\nAssignUserID = #2001 #2001\n" + extra,
                    "a.conf", true, cfg, found);
  for (const ConfigError& e : found) errors.push_back(e.str());
  return cfg;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += "\n  " + l;
  return s.empty() ? " (no errors)" : s;
}

TEST(PhpSettings, EveryKeyParsed) {
  std::vector<std::string> errors;
  Config cfg = load_vhost(
      "PHPAdminValue = memory_limit 64M\n"
      "PHPAdminValue = sendmail_path /usr/sbin/sendmail -t -i -f web@a.test\n"
      "phpadminflag = display_errors off\n"
      "PHPValue = error_reporting E_ALL & ~E_DEPRECATED\n"
      "PHPFlag = short_open_tag yes\n"
      "PHPAdminValue = disable_functions\n"
      "PHPUserIni = no\n",
      errors);
  ASSERT_TRUE(errors.empty()) << joined(errors);
  const VHost& v = cfg.vhosts.at(0);
  ASSERT_EQ(v.php_settings.size(), 6u);
  EXPECT_EQ(v.php_settings[0].name, "memory_limit");
  EXPECT_EQ(v.php_settings[0].value, "64M");
  EXPECT_TRUE(v.php_settings[0].admin);
  EXPECT_EQ(v.php_settings[1].value, "/usr/sbin/sendmail -t -i -f web@a.test");
  EXPECT_EQ(v.php_settings[2].value, "Off");
  EXPECT_TRUE(v.php_settings[2].admin && v.php_settings[2].flag);
  EXPECT_FALSE(v.php_settings[3].admin);
  EXPECT_EQ(v.php_settings[4].value, "On");
  EXPECT_EQ(v.php_settings[5].value, "");
  EXPECT_FALSE(v.php_user_ini);

  EXPECT_EQ(php_settings_ini(v),
            "; written by itkd for vhost a.test from its PHPAdminValue, PHPAdminFlag, PHPValue, PHPFlag and PHPUserIni "
            "lines (docs/configuration.md)\n"
            "memory_limit = 64M\n"
            "sendmail_path = \"/usr/sbin/sendmail -t -i -f web@a.test\"\n"
            "display_errors = Off\n"
            "error_reporting = E_ALL & ~E_DEPRECATED\n"
            "short_open_tag = On\n"
            "disable_functions = \"\"\n"
            "user_ini.filename =\n"
            "[HOST=a.test]\n"
            "memory_limit = 64M\n"
            "sendmail_path = \"/usr/sbin/sendmail -t -i -f web@a.test\"\n"
            "display_errors = Off\n"
            "disable_functions = \"\"\n");
}

TEST(PhpSettings, NothingToWrite) {
  std::vector<std::string> errors;
  Config cfg = load_vhost("PHPUserIni = yes\n", errors);
  ASSERT_TRUE(errors.empty()) << joined(errors);
  EXPECT_EQ(php_settings_ini(cfg.vhosts.at(0)), "");
}

TEST(PhpSettings, OnlyOverridableDefaultsHaveNoHostSection) {
  std::vector<std::string> errors;
  Config cfg = load_vhost("PHPValue = memory_limit 256M\nPHPValue = date.timezone Europe/Berlin\n", errors);
  ASSERT_TRUE(errors.empty()) << joined(errors);
  std::string ini = php_settings_ini(cfg.vhosts.at(0));
  EXPECT_NE(ini.find("memory_limit = 256M\n"), std::string::npos) << ini;
  // Quoted: ini keywords and lower-case text are text, never constants.
  EXPECT_NE(ini.find("date.timezone = \"Europe/Berlin\"\n"), std::string::npos) << ini;
  EXPECT_EQ(ini.find("[HOST="), std::string::npos) << ini;
}

TEST(PhpSettings, KeywordsStayText) {
  std::vector<std::string> errors;
  Config cfg = load_vhost("PHPValue = session.save_handler NONE\nPHPValue = precision 14\n", errors);
  ASSERT_TRUE(errors.empty()) << joined(errors);
  std::string ini = php_settings_ini(cfg.vhosts.at(0));
  EXPECT_NE(ini.find("session.save_handler = \"NONE\"\n"), std::string::npos) << ini;
  EXPECT_NE(ini.find("precision = 14\n"), std::string::npos) << ini;
}

TEST(PhpSettings, BadInputNamesItsLine) {
  std::vector<std::string> errors;
  (void)load_vhost(
      "PHPAdminValue = memory_limit=1G 64M\n"                    // 5: '=' in the name
      "PHPAdminValue = open_basedir \"/srv/a\"\n"                // 6: a quote
      "PHPAdminValue = error_log /srv/a/log\\\n"                 // 7: a backslash
      "PHPValue = include_path ${HTTP_X}\n"                      // 8: environment expansion
      "PHPAdminFlag = display_errors maybe\n"                    // 9: not a boolean
      "PHPAdminFlag = display_errors\n"                          // 10: no value
      "PHPAdminValue = memory_limit 64M\n"                       // 11: fine
      "PHPValue = memory_limit 128M\n"                           // 12: set twice
      "PHPValue = [HOST=b.test] x\n"                             // 13: a section header as a name
      "PHPUserIni = sometimes\n"                                 // 14
      "PHPUserIni = no\n",                                       // 15: given twice
      errors);
  ASSERT_EQ(errors.size(), 10u) << joined(errors);
  EXPECT_EQ(errors[0].rfind("a.conf:5: PHPAdminValue: `memory_limit=1G` is not a PHP directive name", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind("a.conf:6: PHPAdminValue: the value contains `\"`", 0), 0u) << errors[1];
  EXPECT_EQ(errors[2].rfind("a.conf:7: PHPAdminValue: the value contains `\\`", 0), 0u) << errors[2];
  EXPECT_EQ(errors[3].rfind("a.conf:8: PHPValue: the value contains `$`", 0), 0u) << errors[3];
  EXPECT_EQ(errors[4].rfind("a.conf:9: PHPAdminFlag: ", 0), 0u) << errors[4];
  EXPECT_EQ(errors[5], "a.conf:10: PHPAdminFlag: expected `name on` or `name off`");
  EXPECT_EQ(errors[6], "a.conf:12: PHPValue: memory_limit is already set at line 11");
  EXPECT_EQ(errors[7].rfind("a.conf:13: PHPValue: `[HOST=b.test]` is not a PHP directive name", 0), 0u) << errors[7];
  EXPECT_EQ(errors[8].rfind("a.conf:14: PHPUserIni: ", 0), 0u) << errors[8];
  EXPECT_EQ(errors[9].rfind("a.conf:15: PHPUserIni: given twice", 0), 0u) << errors[9];
}

TEST(PhpSettings, ControlCharacterRefused) {
  EXPECT_EQ(check_php_value(std::string("a\x01" "b")), "the value contains a control character");
  EXPECT_EQ(check_php_value("/usr/sbin/sendmail -t -i -f a@b.test"), "");
  EXPECT_NE(check_php_name("1abc"), "");
  EXPECT_EQ(check_php_name("opcache.jit_buffer_size"), "");
}

}  // namespace
}  // namespace itk

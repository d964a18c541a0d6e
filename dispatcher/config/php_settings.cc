// The vhost's PHP settings as ini text: what each line may hold, and the two places it is written.
#include "config/php_settings.h"

#include <cctype>

#include "sys/log.h"

namespace itk {
namespace {

bool is_upper_word_char(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

// ini keywords PHP turns into "" or "1" when unquoted.
bool is_ini_keyword(std::string_view v) {
  std::string l;
  for (char c : v) l.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (const char* k : {"none", "null", "no", "off", "false", "yes", "on", "true"})
    if (l == k) return true;
  return false;
}

// Constant expressions (`E_ALL & ~E_DEPRECATED`) only mean something unquoted; everything else is quoted,
// so PHP takes it as the text given, as php-fpm's php_admin_value does.
std::string ini_value(const PhpSetting& s) {
  if (s.flag) return s.value;
  bool constant = !s.value.empty() && !is_ini_keyword(s.value);
  for (char c : s.value)
    if (!is_upper_word_char(c) && std::string_view(" &|~^!()").find(c) == std::string_view::npos) constant = false;
  return constant ? s.value : "\"" + s.value + "\"";
}

std::string ini_line(const PhpSetting& s) { return s.name + " = " + ini_value(s) + "\n"; }

}  // namespace

std::string check_php_name(std::string_view name) {
  bool ok = !name.empty() && std::isalpha(static_cast<unsigned char>(name[0]));
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') ok = false;
  if (ok) return "";
  return strprintf("`%.*s` is not a PHP directive name (letters, digits, `_` and `.`, as in `session.save_path`)",
                   static_cast<int>(name.size()), name.data());
}

std::string check_php_value(std::string_view value) {
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 32 || c == 127) return "the value contains a control character";
    if (c == '"' || c == '\\' || c == '$')
      return strprintf("the value contains `%c`, which PHP's ini parser would not read as part of it (a quote ends "
                       "it, `\\` escapes, `${...}` reads the environment); quotes are not needed",
                       c);
  }
  return "";
}

std::string php_settings_ini(const VHost& vh) {
  if (vh.php_settings.empty() && vh.php_user_ini) return "";
  std::string t = "; written by itkd for vhost " + vh.server_name +
                  " from its PHPAdminValue, PHPAdminFlag, PHPValue, PHPFlag and PHPUserIni lines (docs/configuration.md)\n";
  for (const PhpSetting& s : vh.php_settings) t += ini_line(s);
  if (!vh.php_user_ini) t += "user_ini.filename =\n";
  bool any_admin = false;
  for (const PhpSetting& s : vh.php_settings) any_admin = any_admin || s.admin;
  if (!any_admin) return t;
  t += "[HOST=" + vh.server_name + "]\n";
  for (const PhpSetting& s : vh.php_settings)
    if (s.admin) t += ini_line(s);
  return t;
}

}  // namespace itk

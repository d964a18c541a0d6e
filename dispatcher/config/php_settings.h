// A vhost's PHP settings (PHPAdminValue, PHPAdminFlag, PHPValue, PHPFlag, PHPUserIni): checked at load and
// written as the ini file php-cgi reads last (docs/configuration.md, "PHP settings" says what each holds).
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"

namespace itk {

// A directive name as PHP spells them: a letter, then letters, digits, '_' and '.'. Returns "" or why not.
std::string check_php_name(std::string_view name);
// A value PHP's ini parser reads back as exactly that one value: no control bytes, no `"` or `\` (they
// end or escape the quoted string it is written in) and no `$` (`${NAME}` expands an environment
// variable, which for a CGI Handler holds the client's headers). Returns "" or why not.
std::string check_php_value(std::string_view value);

// The ini text for `vh`, empty when it has nothing to say. Every setting as a plain line (the value PHP
// starts with, including those read only at start such as disable_functions), then the admin ones again
// in a [HOST=<ServerName>] section: php-cgi applies that section to each request whose SERVER_NAME it
// names with PHP_INI_SYSTEM at the activation stage, which locks the entry for the request, so neither
// .user.ini nor ini_set() can change it.
std::string php_settings_ini(const VHost& vh);

}  // namespace itk

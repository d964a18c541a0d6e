// `itkctl vhosts`: the vhosts of a loaded configuration as a table, as `apachectl -S` lists Apache's:
// names, aliases, DocumentRoot, identity, handlers, the default, and where each section starts.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "config/config.h"

namespace itk {

// Names of ids, for the table; an empty string when the id has no name. The default asks NSS.
struct IdNames {
  std::function<std::string(uid_t)> user;
  std::function<std::string(gid_t)> group;
};
IdNames nss_id_names();

// One block per vhost in load order:
//   a.test (default)  /etc/itk.d/a.conf:1
//     aliases   www.a.test *.a.test
//     root      /srv/www/a
//     user      alice:alice (1001/1001), groups 1001 33, nice 5
//     handlers  CGI .cgi; Handler .pl /usr/bin/perl; FastCGI .php /usr/bin/php-cgi
//     limits    MaxClientsVHost 20
// preceded by "Configuration: FILE and DIR, N vhost(s)". Lines without content (no alias, no handler)
// are left out.
std::string format_vhosts(const Config& cfg, const IdNames& names);

}  // namespace itk

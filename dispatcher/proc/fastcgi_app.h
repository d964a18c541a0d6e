// FastCGI app launcher role: a child of the root master that joins its vhost's fastcgi cgroup, keeps
// only the pool's socket (as fd 0), becomes the vhost's identity for good and execs the app.
#pragma once

#include <string>

#include "sys/identity.h"

namespace itk {

// What one app process of a pool is started with; copied out of the pool in the forked child.
struct FastCgiLaunch {
  std::string vhost;    // for the journal
  std::string program;  // the app, exec'd with no arguments
  Identity identity;
  std::string cgroup;  // empty: cgroups are off
  int listener = -1;   // the pool's listening socket, the app's fd 0
  unsigned max_requests = 10000;
  std::string temp_dir, php_ini_dir;  // the vhost's (VHostDirs), for the app's environment
};

// Never returns: execs the app, or exits 1 (setup failed) or 127 (the app cannot be run).
[[noreturn]] void fastcgi_app_main(const FastCgiLaunch& p);

}  // namespace itk

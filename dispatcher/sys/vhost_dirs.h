// Per-vhost directories in the master: each vhost's private temporary directory (TMPDIR, PHP's uploads,
// sessions and temporary files) and an admin-owned PHP ini directory that points PHP at it.
//
//   $STATE_DIRECTORY/tmp/                 root 0711 (StateDirectory=itk: /var/lib/itk)
//   $STATE_DIRECTORY/tmp/<ServerName>/    the vhost's uid and gid, 0700
//   $RUNTIME_DIRECTORY/php/               root 0711 (RuntimeDirectory=itk: /run/itk)
//   $RUNTIME_DIRECTORY/php/<ServerName>/itk.ini   directory root 0700 + ACL user:<uid>:r-x, file root 0644
//   $RUNTIME_DIRECTORY/php/<ServerName>/admin/vhost.ini   root 0755 / 0644: PHPAdminValue, PHPValue...
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>

#include "config/runtime.h"

namespace itk {

class VHostDirs {
 public:
  // At start and at each reload, before the FastCGI pools: makes the directories of every vhost of
  // `rt` and writes their paths into its state (VHostState::temp_dir, VHostState::php_ini_dir). A temporary directory
  // whose vhost is gone, or now has another uid or gid, is removed with everything in it by a child
  // process, so that a large tree never holds up the master and no tenant ever sees another's files.
  void sync(Runtime& rt);
  // True when `pid` was such a child (then handled here).
  bool on_exit(pid_t pid, int status);

 private:
  bool init();
  void clean_gone(int base_fd);

  bool tried_ = false;
  std::string tmp_base_;  // empty when it could not be made: then no vhost has a temporary directory
  std::string ini_base_;
  bool acl_warned_ = false;
  uint64_t gone_ = 0;
  std::set<pid_t> cleaners_;
};

constexpr const char* kAdminIniDir = "admin";

// PHP_INI_SCAN_DIR for a vhost whose ini directory is `dir`: its itk.ini before the admin's conf.d (an
// empty element is PHP's built-in scan directory), its PHP settings after it, so they win over conf.d.
inline std::string php_ini_scan_dir(const std::string& dir) { return dir + "::" + dir + "/" + kAdminIniDir; }

// The directory for a temporary directory's old contents, removed by a child: ".gone-<name>-<n>".
inline bool is_gone_name(const std::string& name) { return name.rfind(".gone-", 0) == 0; }

}  // namespace itk

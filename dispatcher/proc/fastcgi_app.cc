// FastCGI app launcher role: from root to the vhost's identity with nothing but its socket. May: join
// its vhost's cgroup, cut its bounding set, switch to AssignUserID/NiceValue (become_tenant), exec.
#include "proc/fastcgi_app.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sys/cgroup.h"
#include "sys/log.h"
#include "sys/privileges.h"
#include "sys/vhost_dirs.h"

namespace itk {

[[noreturn]] void fastcgi_app_main(const FastCgiLaunch& p) {
  log_set_role("fastcgi " + p.vhost);
  // Counted and confined with its vhost before it runs a line of the app.
  if (!p.cgroup.empty() && !cgroup_join(p.cgroup)) {
    log(Level::err, "cannot move the FastCGI app into %s: %s", p.cgroup.c_str(), strerror(errno));
    _exit(1);
  }
  (void)setsid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s : {SIGPIPE, SIGHUP, SIGUSR1, SIGTERM, SIGCHLD, SIGINT}) signal(s, SIG_DFL);
  // Only its own socket (as fd 0, the FastCGI convention) survives into the tenant's identity; fd 2
  // stays the journal until the exec, for the errors below.
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0 || dup2(p.listener, 0) < 0 || dup2(null, 1) < 0) _exit(1);
  close_range(3, ~0U, 0);
  limit_bounding_set();
  become_tenant(p.identity);
  // Not the DocumentRoot: php-cgi reads php.ini (and php-cgi-fcgi.ini) from its working directory
  // before the admin's, so a file the tenant put there would replace disable_functions, open_basedir
  // and the rest. php-cgi changes into each script's directory itself when it runs it.
  if (chdir("/") != 0) _exit(1);
  if (access(p.program.c_str(), X_OK) != 0) {
    log(Level::err, "%s is not executable by uid %u: %s", p.program.c_str(), static_cast<unsigned>(p.identity.uid),
        strerror(errno));
    _exit(127);
  }
  // Nothing of the app reaches itk's journal except through a request's FCGI_STDERR, which the worker
  // logs under the vhost's name.
  if (dup2(1, 2) < 0) _exit(1);
  std::string max_requests = strprintf("PHP_FCGI_MAX_REQUESTS=%u", p.max_requests);
  // The vhost's own temporary directory, and the admin-owned ini directory that points PHP's sessions,
  // uploads and temporary files at it (read after php.ini, before the admin's conf.d) and holds the
  // vhost's PHP settings (read after conf.d).
  std::string tmpdir = "TMPDIR=" + p.temp_dir, scan = "PHP_INI_SCAN_DIR=" + php_ini_scan_dir(p.php_ini_dir);
  std::vector<const char*> envp = {"PATH=/usr/local/bin:/usr/bin:/bin", max_requests.c_str()};
  if (!p.temp_dir.empty()) envp.push_back(tmpdir.c_str());
  if (!p.php_ini_dir.empty()) envp.push_back(scan.c_str());
  envp.push_back(nullptr);
  const char* argv[] = {p.program.c_str(), nullptr};
  execve(p.program.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(envp.data()));
  _exit(127);
}

}  // namespace itk

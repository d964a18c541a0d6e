// Per-vhost temporary and PHP ini directories: made by the master as root in directories only root may
// write, handed to the vhost's uid, removed by a child when the vhost goes.
#include "sys/vhost_dirs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "config/php_settings.h"
#include "sys/dir_ptr.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/paths.h"
#include "sys/proctitle.h"
#include "sys/tenant_dirs.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr const char* kIniName = "itk.ini";
constexpr const char* kAdminIniName = "vhost.ini";

// `path` as a directory owned by root with `mode`, made if missing (its parent too, 0755).
bool make_root_dir(const std::string& path, mode_t mode) {
  size_t slash = path.rfind('/');
  if (slash > 0 && mkdir(path.substr(0, slash).c_str(), 0755) != 0 && errno != EEXIST) return false;
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return false;
  unique_fd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  return fd && fchown(fd.get(), 0, 0) == 0 && fchmod(fd.get(), mode) == 0;
}

std::vector<std::string> entries(int dir_fd) {
  std::vector<std::string> names;
  DirPtr d = open_dir(unique_fd(fcntl(dir_fd, F_DUPFD_CLOEXEC, 3)));
  if (!d) return names;
  // The copy shares its offset with `dir_fd`, which an earlier listing left at the end.
  rewinddir(d.get());
  while (dirent* e = readdir(d.get()))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  return names;
}

// Replaces dir/name in one rename, so PHP never reads half a file.
SysResult write_ini(int dir_fd, const char* name, const std::string& text) {
  std::string tmp = std::string(name) + ".new";
  unique_fd f(openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!f || fchmod(f.get(), 0644) != 0) return SysResult{errno};
  if (SysResult w = write_all_fd(f.get(), text); !w) return w;
  if (renameat(dir_fd, tmp.c_str(), dir_fd, name) != 0) return SysResult{errno};
  return {};
}

// <dir>/admin/vhost.ini: the vhost's PHPAdminValue and PHPValue lines, read after the admin's conf.d so that
// they win over it as a php-fpm pool's do. Empty when the vhost has none (the file is then removed).
SysResult write_settings_ini(int dir_fd, const VHost& vh) {
  if (mkdirat(dir_fd, kAdminIniDir, 0755) != 0 && errno != EEXIST) return SysResult{errno};
  unique_fd sub(openat(dir_fd, kAdminIniDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub || fchown(sub.get(), 0, 0) != 0 || fchmod(sub.get(), 0755) != 0) return SysResult{errno};
  std::string text = php_settings_ini(vh);
  if (!text.empty()) return write_ini(sub.get(), kAdminIniName, text);
  if (unlinkat(sub.get(), kAdminIniName, 0) != 0 && errno != ENOENT) return SysResult{errno};
  return {};
}

// PHP's settings that name the vhost's temporary directory. They are read after php.ini and before the
// admin's conf.d files (PHP_INI_SCAN_DIR="<this directory>:"), so conf.d can still choose otherwise.
std::string ini_text(const VHost& vh, const std::string& temp_dir) {
  return "; written by itkd for vhost " + vh.server_name + ": its own temporary directory (docs/configuration.md)\n" +
         "sys_temp_dir = \"" + temp_dir + "\"\n" + "upload_tmp_dir = \"" + temp_dir + "\"\n" +
         "session.save_path = \"" + temp_dir + "\"\n" +
         // Debian's php.ini leaves session clean-up to a cron job that knows only /var/lib/php/sessions.
         "session.gc_probability = 1\n";
}

}  // namespace

bool VHostDirs::init() {
  std::string tmp = systemd_directory("STATE_DIRECTORY", "/var/lib/itk") + "/tmp";
  std::string ini = runtime_directory() + "/php";
  // 0711: tenants walk through to their own directory, none can list or write here.
  if (!make_root_dir(tmp, 0711)) {
    log(Level::err, "cannot make %s root's with mode 0711: %s (set StateDirectory=itk in itk.service); vhosts get "
                    "no temporary directory of their own", tmp.c_str(), strerror(errno));
    return false;
  }
  tmp_base_ = tmp;
  if (!make_root_dir(ini, 0711))
    log(Level::err, "cannot make %s root's with mode 0711: %s (set RuntimeDirectory=itk in itk.service); PHP is not "
                    "told about the vhosts' temporary directories", ini.c_str(), strerror(errno));
  else
    ini_base_ = ini;
  return true;
}

void VHostDirs::sync(Runtime& rt) {
  if (!tried_) {
    tried_ = true;
    (void)init();
  }
  if (tmp_base_.empty()) return;
  unique_fd base(open(tmp_base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  unique_fd ini_base;
  if (!ini_base_.empty()) ini_base.reset(open(ini_base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!base) {
    log(Level::err, "cannot open %s: %s; vhosts get no temporary directory of their own", tmp_base_.c_str(),
        strerror(errno));
    return;
  }
  // Old contents are moved aside in one rename (only root writes here) and removed later by a child.
  auto move_aside = [&](const std::string& name) {
    std::string gone = strprintf(".gone-%s-%llu", name.c_str(), static_cast<unsigned long long>(++gone_));
    if (renameat(base.get(), name.c_str(), base.get(), gone.c_str()) != 0 && errno != ENOENT) {
      log(Level::err, "cannot move %s/%s aside: %s", tmp_base_.c_str(), name.c_str(), strerror(errno));
      return false;
    }
    return true;
  };

  std::set<std::string> wanted;
  for (const VHost& vh : rt.config->vhosts) {
    const std::string& name = vh.server_name;
    const Identity& id = vh.identity;
    VHostState& state = rt.state(vh);
    wanted.insert(name);
    state.temp_dir.clear();
    state.php_ini_dir.clear();
    unique_fd fd(openat(base.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    bool keep = fd && fstat(fd.get(), &st) == 0 && st.st_uid == id.uid && st.st_gid == id.gid;
    if (fd && !keep)
      log(Level::notice, "vhost %s: its user or group changed; the files of its temporary directory are removed",
          name.c_str());
    if (!keep && (fd || errno != ENOENT) && !move_aside(name)) continue;
    if (keep) {
      // The tenant may have opened it up; each load closes it again.
      if ((st.st_mode & 07777) != 0700) (void)fchmod(fd.get(), 0700);
    } else if (mkdirat(base.get(), name.c_str(), 0700) != 0 ||
               fchownat(base.get(), name.c_str(), id.uid, id.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      log(Level::err, "vhost %s: cannot make its temporary directory %s/%s: %s", name.c_str(), tmp_base_.c_str(),
          name.c_str(), strerror(errno));
      continue;
    }
    state.temp_dir = tmp_base_ + "/" + name;

    if (!ini_base) continue;
    if (mkdirat(ini_base.get(), name.c_str(), 0700) != 0 && errno != EEXIST) continue;
    unique_fd ifd(openat(ini_base.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!ifd || fchown(ifd.get(), 0, 0) != 0) continue;
    // Readable by the vhost's uid alone. A file system without ACLs gets 0755: the file holds only the
    // path of a directory no other tenant can enter, and the tenant must never be able to add an ini file.
    if (SysResult acl = set_user_acl(ifd.get(), id.uid, 5); !acl) {
      if (!acl_warned_)
        log(Level::warning, "%s: no POSIX ACLs here (%s); the vhosts' PHP ini directories are readable by all users",
            ini_base_.c_str(), strerror(acl.err));
      acl_warned_ = true;
      (void)fchmod(ifd.get(), 0755);
    }
    SysResult w = write_ini(ifd.get(), kIniName, ini_text(vh, state.temp_dir));
    if (!w) {
      log(Level::err, "vhost %s: cannot write %s/%s/%s: %s", name.c_str(), ini_base_.c_str(), name.c_str(), kIniName,
          strerror(w.err));
      continue;
    }
    if (SysResult a = write_settings_ini(ifd.get(), vh); !a) {
      log(Level::err, "vhost %s: cannot write its PHP settings to %s/%s/%s/%s: %s", name.c_str(), ini_base_.c_str(),
          name.c_str(), kAdminIniDir, kAdminIniName, strerror(a.err));
      continue;
    }
    state.php_ini_dir = ini_base_ + "/" + name;
  }

  for (const std::string& name : entries(base.get()))
    if (!is_gone_name(name) && !wanted.count(name) && move_aside(name))
      log(Level::notice, "vhost %s is no longer configured; its temporary directory is removed", name.c_str());
  if (ini_base)
    for (const std::string& name : entries(ini_base.get()))
      if (!wanted.count(name))
        if (RemoveResult r = remove_tree(ini_base.get(), name.c_str(), 2); !r)
          log(Level::warning, "%s", r.text(ini_base_).c_str());
  clean_gone(base.get());
}

// One child at a time removes everything moved aside; the master never walks a tenant's tree itself.
void VHostDirs::clean_gone(int base_fd) {
  if (!cleaners_.empty()) return;  // the next one starts when this one ends
  bool any = false;
  for (const std::string& name : entries(base_fd)) any = any || is_gone_name(name);
  if (!any) return;
  pid_t pid = fork();
  if (pid < 0) {
    log(Level::err, "fork of the temporary directory cleaner failed: %s", strerror(errno));
    return;
  }
  if (pid == 0) {
    log_set_role("cleaner");
    proctitle_set({"cleaner"});
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (dup2(base_fd, 3) < 0) _exit(1);
    close_range(4, ~0U, 0);
    bool all = true;
    for (const std::string& name : entries(3)) {
      if (!is_gone_name(name)) continue;
      if (RemoveResult r = remove_tree(3, name.c_str()); !r) {
        log(Level::warning, "%s", r.text(tmp_base_).c_str());
        all = false;
      }
    }
    _exit(all ? 0 : 1);
  }
  cleaners_.insert(pid);
}

bool VHostDirs::on_exit(pid_t pid, int status) {
  if (!cleaners_.erase(pid)) return false;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // What it could not remove (logged by it) is tried again at the next load, not in a loop.
    log(Level::warning, "the temporary directory cleaner %d ended with status 0x%x", pid, status);
    return true;
  }
  // Directories moved aside while it ran.
  unique_fd base(tmp_base_.empty() ? -1 : open(tmp_base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (base) clean_gone(base.get());
  return true;
}

}  // namespace itk

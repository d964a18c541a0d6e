// Log files and directories, made and opened by the master as root, one generation at a time: a reload or
// SIGUSR1 opens them again, so a file that logrotate renamed is made anew.
#include "sys/vhost_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "sys/log.h"

namespace itk {
namespace {

constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;     // the directory a log file is made in
constexpr mode_t kParentMode = 0755;  // directories above it that itk has to make

// A directory no other user can change under the master: root's, and sticky when others may write.
bool is_safe_dir(const struct stat& st) {
  return S_ISDIR(st.st_mode) && st.st_uid == 0 && (!(st.st_mode & S_IWOTH) || (st.st_mode & S_ISVTX));
}

}  // namespace

int open_log_file(const std::string& path, gid_t group, std::string& error) {
  auto fail = [&](const std::string& what, int err) {
    error = strprintf("%s: %s", what.c_str(), strerror(err));
    return -err;
  };
  size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == path.size() - 1) return fail("`" + path + "` is not a file path", EINVAL);
  unique_fd dir(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return fail("cannot open /", errno);
  std::string sofar;
  size_t pos = 1;
  while (pos <= slash) {
    size_t next = path.find('/', pos);
    std::string name = path.substr(pos, next - pos);
    pos = next + 1;
    if (name.empty()) continue;
    sofar += "/" + name;
    const bool last = next == slash;
    unique_fd sub(openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub && errno == ENOENT) {
      if (mkdirat(dir.get(), name.c_str(), 0700) < 0 && errno != EEXIST) return fail("cannot make " + sofar, errno);
      sub.reset(openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      // Owner, group and mode set on the descriptor of what was just made, never by path.
      if (sub && (fchown(sub.get(), 0, last ? group : 0) < 0 || fchmod(sub.get(), last ? kDirMode : kParentMode) < 0))
        return fail("cannot set the owner and mode of " + sofar, errno);
    }
    if (!sub) return fail("cannot open the directory " + sofar, errno);
    struct stat st {};
    if (fstat(sub.get(), &st) < 0) return fail("cannot stat " + sofar, errno);
    if (!is_safe_dir(st))
      return fail(sofar + " belongs to uid " + std::to_string(st.st_uid) +
                      " or is writable by others: a log must only sit in directories that root alone can change",
                  EPERM);
    dir = std::move(sub);
  }
  std::string file = path.substr(slash + 1);
  // O_NONBLOCK: a FIFO put there would otherwise hold the master in open().
  unique_fd fd(openat(dir.get(), file.c_str(),
                      O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, kFileMode));
  if (!fd) return fail("cannot open " + path, errno);
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) return fail("cannot stat " + path, errno);
  if (!S_ISREG(st.st_mode)) return fail(path + " is not a regular file", EINVAL);
  if (fchown(fd.get(), 0, group) < 0 || fchmod(fd.get(), kFileMode) < 0)
    return fail("cannot set the owner and mode of " + path, errno);
  int fl = fcntl(fd.get(), F_GETFL);
  if (fl >= 0) (void)fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  return fd.release();
}

LogFds LogFds::renumbered(const std::vector<bool>& keep, int first, std::vector<std::pair<int, int>>& moves) const {
  LogFds out = *this;
  int next = first;
  for (size_t i = 0; i < fds.size(); i++) {
    if (fds[i] < 0 || i >= keep.size() || !keep[i]) {
      out.fds[i] = -1;
      continue;
    }
    moves.emplace_back(fds[i], next);
    out.fds[i] = next++;
  }
  return out;
}

LogFds LogFds::renumbered(int first, std::vector<std::pair<int, int>>& moves) const {
  return renumbered(std::vector<bool>(fds.size(), true), first, moves);
}

std::string LogFiles::open(const Config& cfg) {
  struct Want {
    std::string path;
    gid_t group;
  };
  std::vector<Want> wanted;
  std::map<std::string, int> index;
  auto add = [&](const std::string& path, gid_t group) -> int {
    if (path.empty()) return -1;
    auto [it, fresh] = index.emplace(path, static_cast<int>(wanted.size()));
    if (fresh) wanted.push_back({path, group});
    // A file several groups write to is readable by none of them.
    else if (wanted[it->second].group != group) wanted[it->second].group = 0;
    return it->second;
  };
  LogFds fds;
  const LogSettings& s = cfg.server.logs;
  if (s.access_log.find("%v") == std::string::npos) fds.server.access = add(expand_log_path(s.access_log, "x"), 0);
  if (s.error_log.find("%v") == std::string::npos) fds.server.error = add(expand_log_path(s.error_log, "x"), 0);
  for (const VHost& v : cfg.vhosts)
    fds.vhosts.push_back({add(v.logs.access_log, v.identity.gid), add(v.logs.error_log, v.identity.gid)});
  std::vector<unique_fd> owned;
  for (const Want& w : wanted) {
    std::string error;
    int fd = open_log_file(w.path, w.group, error);
    if (fd < 0) return error;
    owned.emplace_back(fd);
    fds.fds.push_back(fd);
  }
  owned_ = std::move(owned);
  fds_ = std::move(fds);
  return "";
}

}  // namespace itk

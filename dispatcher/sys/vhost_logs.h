// The log files of one generation: made and opened by the root master, inherited as descriptors by the
// acceptors and the spawner, and by each worker for its own vhost only. No other process opens them.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "sys/unique_fd.h"

namespace itk {

// Which descriptor each vhost's lines go to, in one process.
struct LogFds {
  struct Files {
    int access = -1;  // index into fds; -1: none
    int error = -1;
  };
  std::vector<int> fds;        // this process's descriptor of each distinct file; -1: not held here
  std::vector<Files> vhosts;   // by position in Config::vhosts
  Files server;                // [server]'s files whose path has no %v: lines of no vhost

  int access_fd(size_t vhost) const { return fd_of(vhost < vhosts.size() ? vhosts[vhost].access : -1); }
  int error_fd(size_t vhost) const { return fd_of(vhost < vhosts.size() ? vhosts[vhost].error : -1); }
  int server_access_fd() const { return fd_of(server.access); }
  int fd_of(int file) const { return file >= 0 && static_cast<size_t>(file) < fds.size() ? fds[file] : -1; }

  // The files `keep` says (by index), numbered from `first` in index order; the rest are not held.
  // `moves` gets (descriptor now, descriptor after) for each kept file.
  LogFds renumbered(const std::vector<bool>& keep, int first, std::vector<std::pair<int, int>>& moves) const;
  // Every file, numbered from `first`.
  LogFds renumbered(int first, std::vector<std::pair<int, int>>& moves) const;
};

// The master's side: owns the descriptors of one generation.
class LogFiles {
 public:
  // Makes missing directories and files and opens every configured log (O_WRONLY|O_APPEND|O_CLOEXEC).
  // Files are root:<the vhost's primary group> 0640 (root:root when vhosts of several groups share one),
  // directories itk makes 0750 with the same owners. "" or what went wrong (nothing is kept then).
  std::string open(const Config& cfg);
  const LogFds& fds() const { return fds_; }

 private:
  std::vector<unique_fd> owned_;
  LogFds fds_;
};

// Opens `path` for appending as root, creating what is missing: every directory on the way must be root's and,
// when others may write to it, sticky, so no other user can swap a component for a link. Returns the
// descriptor or -errno; `error` says which step failed.
int open_log_file(const std::string& path, gid_t group, std::string& error);

}  // namespace itk

// FastCGI pools in the master: a listening Unix socket per vhost and app, app processes started on
// demand under the vhost's identity and cgroup, stopped when idle. The master never reads a byte of them.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "config/runtime.h"
#include "proc/scoreboard.h"
#include "sys/cgroup.h"
#include "sys/unique_fd.h"

namespace itk {

struct FastCgiPool;

class FastCgiPools {
 public:
  FastCgiPools();
  ~FastCgiPools();
  FastCgiPools(const FastCgiPools&) = delete;
  FastCgiPools& operator=(const FastCgiPools&) = delete;

  // Where workers count the FastCGI requests they hand over (per vhost slot): the only measure of a
  // pool's activity. Set once, before the first sync.
  void set_scoreboard(const Scoreboard* sb) { sb_ = sb; }

  // At start and at each reload: keeps the pools whose vhost, app, identity and settings did not
  // change (their warm processes go on serving), makes the new ones and stops the rest. Writes each
  // app's socket path into the vhost's state in `rt`, for the workers.
  void sync(Runtime& rt, const CgroupTree& cgroups);

  // The listening sockets that wait for a pending connection, appended to `fds`.
  void add_poll_fds(std::vector<pollfd>& fds);
  // Handles the revents of the entries add_poll_fds appended, starting at fds[first].
  void on_poll(const std::vector<pollfd>& fds, size_t first);
  // Timed work (delayed start checks, idle pools). Returns the ms until it wants to run again.
  int64_t tick(int64_t now);
  // True when `pid` was an app process (then handled here).
  bool on_exit(pid_t pid, int status);
  // Stop: every app process gets SIGTERM (php-cgi finishes its request first); no new ones start.
  void stop_all();
  // SIGKILL whatever still runs (GracefulShutdownTimeout reached).
  void kill_all();
  // Removes the socket directories (at the master's exit).
  void remove_sockets();
  size_t processes() const;
  // The app processes of the vhost in scoreboard slot `slot` (its pools' of every generation).
  size_t processes_of(uint32_t slot) const;
  bool any_configured() const;

 private:
  void spawn(FastCgiPool& p, int64_t now);
  void stop_pool(FastCgiPool& p, const char* why);
  void replace_listener(FastCgiPool& p, const char* why);
  void refuse_waiting(FastCgiPool& p);
  void pool_emptied(FastCgiPool& p);
  // Where the sockets go: $RUNTIME_DIRECTORY/fastcgi (systemd's RuntimeDirectory=itk), else
  // /run/itk/fastcgi. Leftovers of an earlier run are removed. False with `error` when the
  // directory cannot be made; then vhosts with FastCGI answer 503. Done at the first sync that
  // has a FastCGI app, so that a server without any never touches /run.
  bool init(std::string& error);

  bool tried_init_ = false;
  std::string base_;  // .../fastcgi; empty when init failed
  std::string init_error_;
  std::vector<std::unique_ptr<FastCgiPool>> pools_;  // current and retired (retired ones until their processes end)
  std::unordered_map<std::string, uint32_t> dir_ids_;  // ServerName -> directory number, stable across reloads
  uint32_t next_dir_id_ = 1;
  std::vector<FastCgiPool*> polled_;  // which pool each add_poll_fds entry belongs to
  int64_t next_sample_ = 0;
  bool stopping_ = false;
  const Scoreboard* sb_ = nullptr;
};

}  // namespace itk

// Per-vhost cgroups in itk.service's delegated cgroup2 subtree: the kernel counts each vhost's
// connections (one leaf per worker) and a leaf's cgroup.kill ends everything a request started.
//
//   <service>/master/              the master (root)
//   <service>/serving/             owned by the acceptor user, so acceptors can place workers
//   <service>/serving/acceptors/   acceptors
//   <service>/serving/v-<name>/    one per vhost; limits from MaxProcessesVHost & co.
//   <service>/serving/v-<name>/c<acceptor>-<n>/   one per live connection (its worker and CGIs)
//   <service>/serving/v-<name>/fastcgi/            the vhost's FastCGI app processes (root-owned)
//   <service>/serving/v-<name>/spare/              its idle workers, waiting for their next connection
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace itk {

struct CgroupTree {
  bool enabled = false;
  std::string reason;    // when not enabled: why, for STATUS and the journal
  std::string root;      // the service's own cgroup directory
  std::string serving;   // root + "/serving"
  bool pids = false, memory = false, cpu = false;  // controllers enabled for the vhost cgroups
};

// Master, at start, before any fork: finds a delegated cgroup2 directory, moves itself into
// master/, creates serving/ and serving/acceptors/ owned by `acceptor`. Changes nothing and
// explains why when there is no delegated cgroup2 (started by hand, no Delegate=yes).
CgroupTree cgroup_setup(const Identity& acceptor);

// Directory of a vhost's cgroup ("v-" + ServerName).
std::string cgroup_vhost_dir(const CgroupTree& t, const VHost& vh);

// Master: creates missing vhost cgroups (owned by the acceptor user) and applies the vhost's
// controller limits. Returns the names of v-* directories that no vhost of `cfg` uses any more.
std::vector<std::string> cgroup_sync_vhosts(const CgroupTree& t, const Config& cfg, const Identity& acceptor);

// Writes "0" to dir/cgroup.procs: moves the calling process into `dir`. False with errno.
[[nodiscard]] bool cgroup_join(const std::string& dir);

// Number of live child cgroups of `dir` (cgroup.stat nr_descendants), or -1.
[[nodiscard]] int cgroup_descendants(const std::string& dir);

// Directory of a vhost's FastCGI cgroup.
std::string cgroup_fastcgi_dir(const CgroupTree& t, const VHost& vh);

// Directory of a vhost's cgroup for idle workers.
std::string cgroup_spare_dir(const CgroupTree& t, const VHost& vh);

// Writes `pid` to dir/cgroup.procs. False with errno.
[[nodiscard]] bool cgroup_move(const std::string& dir, pid_t pid);

// Live connections of a vhost (its connection leaves): the descendants of its cgroup, less its
// FastCGI and spare cgroups where they exist. -1 when the vhost cgroup cannot be read.
[[nodiscard]] int cgroup_vhost_connections(const CgroupTree& t, const VHost& vh);

// Kills everything in `dir` and below (cgroup.kill), then removes the directories, deepest first.
// Returns false if something could not be removed yet (processes still dying): call again later.
[[nodiscard]] bool cgroup_kill_and_remove(const std::string& dir);

// Master: removes connection leaves left empty by workers whose acceptor was gone when they ended. Leaves
// of the acceptors in `live` (named c<acceptor pid>-<n>) are theirs to remove: an empty one may belong to a
// connection admitted a moment ago, waiting for its worker.
void cgroup_sweep_leaves(const CgroupTree& t, const std::vector<pid_t>& live);

// Worker, after a script ran: SIGKILLs every other process in the caller's own cgroup, i.e. what
// the script left running, even if it left its process group (setsid). The caller is the tenant,
// and so are they. Does nothing when the caller's cgroup is not a connection leaf.
void cgroup_kill_others();

}  // namespace itk

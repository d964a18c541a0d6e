// What a process of one generation inherits from the master by fork besides the Runtime: the
// scoreboard, the listeners, the cgroup tree, the TLS contexts and the log files.
#pragma once

#include <vector>

#include "config/runtime.h"
#include "proc/scoreboard.h"
#include "sys/cgroup.h"
#include "sys/listen_fds.h"
#include "sys/vhost_logs.h"
#include "tls/tls.h"

namespace itk {

// What a serving process inherits besides the Runtime.
struct ProcessContext {
  const Runtime* rt = nullptr;
  Scoreboard* sb = nullptr;
  const std::vector<Listener>* listeners = nullptr;
  const CgroupTree* cgroups = nullptr;  // enabled: per-vhost cgroups count and confine workers
  TlsInheritance tls;                    // acceptors with https listeners: contexts and key channel
  LogFds logs;                           // the generation's log files, as numbered in this process
};

}  // namespace itk

// Everything the serving processes need for one config generation, built once by the master.
// Acceptors and workers get it by fork (copy-on-write) and only ever read it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cgroup.h"
#include "config.h"
#include "http_request.h"
#include "listen_fds.h"
#include "mime.h"
#include "tls.h"
#include "scoreboard.h"
#include "vhost_table.h"

namespace itk {

struct Runtime {
  std::unique_ptr<Config> config;
  VHostTable vhosts;
  MimeTypes mime;
  HeadLimits limits;
  uint64_t generation = 0;
};

// Builds the lookup table, MIME map and limits for a loaded config.
std::unique_ptr<Runtime> make_runtime(std::unique_ptr<Config> cfg, uint64_t generation);

// What a serving process inherits besides the Runtime.
struct ProcessContext {
  const Runtime* rt = nullptr;
  Scoreboard* sb = nullptr;
  const std::vector<Listener>* listeners = nullptr;
  const CgroupTree* cgroups = nullptr;  // enabled: per-vhost cgroups count and confine workers
  TlsInheritance tls;                    // acceptors with https listeners: contexts and key channel
};

}  // namespace itk

// Everything the serving processes need for one config generation, built once by the master.
// Every process of the generation gets it by fork (copy-on-write) and only ever reads it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/mime.h"
#include "config/vhost_table.h"
#include "http/http_request.h"

namespace itk {

// What the master assigns a vhost for one generation, kept beside its immutable configuration.
struct VHostState {
  uint32_t slot = 0;                          // scoreboard slot (stable across reloads by ServerName)
  std::string temp_dir;                       // its private TMPDIR (VHostDirs), or empty
  std::string php_ini_dir;                    // PHP ini directory naming temp_dir, or empty
  std::vector<std::string> fastcgi_sockets;   // per vh.fastcgi.apps entry: its pool's socket, or empty
};

struct Runtime {
  std::unique_ptr<const Config> config;
  std::vector<VHostState> vhost_state;  // by position in config->vhosts; filled in by the master
  VHostTable vhosts;
  MimeTypes mime;
  HeadLimits limits;
  uint64_t generation = 0;

  // The state of `vh`, which must be one of config->vhosts: anything else is a broken invariant (abort).
  const VHostState& state(const VHost& vh) const { return vhost_state[index_of(vh)]; }
  VHostState& state(const VHost& vh) { return vhost_state[index_of(vh)]; }
  size_t index_of(const VHost& vh) const;
  // The socket of `app`, one of vh.fastcgi.apps (else abort), in this generation; empty when it has none.
  const std::string& fastcgi_socket(const VHost& vh, const FastCgiApp& app) const;
};

// Builds the lookup table, MIME map and limits for a loaded config, and one empty VHostState per vhost.
std::unique_ptr<Runtime> make_runtime(std::unique_ptr<Config> cfg, uint64_t generation);

}  // namespace itk

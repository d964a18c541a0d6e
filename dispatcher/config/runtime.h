// Everything the serving processes need for one config generation, built once by the master.
// Every process of the generation gets it by fork (copy-on-write) and only ever reads it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "config/mime.h"
#include "config/vhost_table.h"
#include "http/http_request.h"

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

}  // namespace itk

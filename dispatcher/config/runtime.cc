// Builds the per-generation Runtime from a validated Config.
#include "config/runtime.h"

namespace itk {

std::unique_ptr<Runtime> make_runtime(std::unique_ptr<Config> cfg, uint64_t generation) {
  auto rt = std::make_unique<Runtime>();
  rt->config = std::move(cfg);
  rt->vhosts = VHostTable(*rt->config);
  rt->mime.load_file("/etc/mime.types");
  const ServerConfig& sc = rt->config->server;
  rt->limits.request_line = sc.limit_request_line;
  rt->limits.field_size = sc.limit_request_field_size;
  rt->limits.fields = sc.limit_request_fields;
  rt->limits.body = sc.limit_request_body;
  rt->generation = generation;
  return rt;
}

}  // namespace itk

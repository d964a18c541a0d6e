// Builds the per-generation Runtime from a validated Config.
#include "config/runtime.h"

#include <cstdint>
#include <cstdlib>

#include "sys/log.h"

namespace itk {

std::unique_ptr<Runtime> make_runtime(std::unique_ptr<Config> cfg, uint64_t generation) {
  auto rt = std::make_unique<Runtime>();
  rt->config = std::move(cfg);
  rt->vhost_state.resize(rt->config->vhosts.size());
  for (size_t i = 0; i < rt->vhost_state.size(); i++)
    rt->vhost_state[i].fastcgi_sockets.resize(rt->config->vhosts[i].fastcgi.apps.size());
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

size_t Runtime::index_of(const VHost& vh) const {
  const std::vector<VHost>& all = config->vhosts;
  // By address, in constant time: a copy of a vhost, or one of another generation, has no state here.
  auto at = reinterpret_cast<uintptr_t>(&vh), first = reinterpret_cast<uintptr_t>(all.data());
  if (at < first || at >= first + all.size() * sizeof(VHost) || (at - first) % sizeof(VHost) != 0) {
    log(Level::err, "vhost %s is not one of generation %llu's; aborting", vh.server_name.c_str(),
        static_cast<unsigned long long>(generation));
    abort();
  }
  return (at - first) / sizeof(VHost);
}

const std::string& Runtime::fastcgi_socket(const VHost& vh, const FastCgiApp& app) const {
  const std::vector<std::string>& sockets = state(vh).fastcgi_sockets;
  for (size_t i = 0; i < sockets.size(); i++)
    if (&vh.fastcgi.apps[i] == &app) return sockets[i];
  log(Level::err, "a FastCGI app that is not one of vhost %s's; aborting", vh.server_name.c_str());
  abort();
}

}  // namespace itk

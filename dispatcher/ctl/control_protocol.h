// The master's control socket ($RUNTIME_DIRECTORY/control.sock, root only): what itkctl asks and what the
// master answers. One request per connection, one line: "status\n". The answer is text, one record a line,
// fields `key=value` separated by spaces, values percent-encoded (so names, paths and messages never
// split a line or a field), ending with "end":
//
//   itk-control 1
//   server pid=812 generation=3 reloads=2 workers=5 idle=7 served=48210 refused=3 fastcgi=2 at_limit=0 ...
//   vhost name=example.org workers=3 idle=4 fastcgi=2 served=40000 refused=3 max=20 at_limit=0
//   end
//
// Unknown keys are skipped by the reader, so either side may add fields.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace itk {

constexpr std::string_view kControlStatusRequest = "status\n";
constexpr size_t kControlMaxRequest = 64;
// Where the master listens: $RUNTIME_DIRECTORY/control.sock (RuntimeDirectory=itk: /run/itk).
constexpr const char* kControlSocketName = "control.sock";

struct VHostStatus {
  std::string name;
  uint64_t workers = 0;  // connections being served now, one worker each
  uint64_t idle = 0;     // spare workers waiting for the vhost's next connection
  uint64_t fastcgi = 0;  // FastCGI app processes running now
  uint64_t served = 0;   // requests answered since start
  uint64_t refused = 0;  // 503s of admission (MaxClientsVHost, MaxClients) since start
  uint64_t max = 0;      // MaxClientsVHost
  bool at_limit = false; // its live connections are at MaxClientsVHost now
};

struct ServerStatus {
  pid_t pid = 0;
  uint64_t generation = 0;
  uint64_t reloads = 0;      // reloads asked for (SIGHUP) since start, refused ones included
  std::string reload_error;  // why the last reload was refused; empty when it was not
  std::string unit;          // the systemd unit when systemd started the master, else empty
  std::string cgroups;       // "on" or "off (why)"
  std::string config_file, config_dir;
  uint64_t acceptors_busy = 0, acceptors_idle = 0;
  uint64_t workers = 0, idle = 0, fastcgi = 0, served = 0, refused = 0, at_limit = 0;
  std::vector<VHostStatus> vhosts;
};

std::string encode_status(const ServerStatus& s);
// False with `error` when `text` is not a whole answer (no "end": cut short).
bool decode_status(std::string_view text, ServerStatus& out, std::string& error);

}  // namespace itk

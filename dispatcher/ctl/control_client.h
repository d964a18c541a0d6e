// itkctl's side of the master's control socket: one request, the whole answer, bounded in time.
#pragma once

#include <string>
#include <string_view>

namespace itk {

// $RUNTIME_DIRECTORY/control.sock, else /run/itk/control.sock: where itkd under itk.service listens.
std::string control_socket_path();

// Connects to `path`, sends `request` and reads until the master closes, for at most `timeout_ms` in
// all. 0 with `answer`, else -errno (-ETIMEDOUT when the master took too long, -EMSGSIZE past 64 MiB).
int control_request(const std::string& path, std::string_view request, int timeout_ms, std::string& answer);

}  // namespace itk

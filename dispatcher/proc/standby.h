// Standby: the master before its first configuration loads. Clients are answered at once instead of
// waiting in the socket's queue, the errors are said once, and a load is tried again on SIGHUP and by
// itself with a growing interval.
#pragma once

#include <memory>
#include <vector>

#include "config/config.h"
#include "sys/listen_fds.h"

namespace itk {

// Plain HTTP listeners answer every connection with a fixed 503 (Retry-After) without reading any of
// it as a request; https listeners close it (there is no certificate to answer with). Returns the
// configuration once it loads, or nullptr when SIGTERM or SIGINT came first. `first` holds the errors
// of the load that failed.
std::unique_ptr<Config> standby_until_loaded(const LoadOptions& opts, const std::vector<Listener>& listeners,
                                             const LoadResult& first);

// The answer of a standby http listener: 503, Retry-After, Connection: close, a short text body.
std::string standby_response();

// Whether two failed loads found the same errors, so the second need not be said again.
bool same_errors(const std::vector<ConfigError>& a, const std::vector<ConfigError>& b);

}  // namespace itk

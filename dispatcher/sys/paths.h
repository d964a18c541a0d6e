// The directories systemd gives the service (RuntimeDirectory=, StateDirectory=) and their fallbacks
// when itkd runs without them.
#pragma once

#include <string>

namespace itk {

// The first directory of a systemd `*_DIRECTORY` variable (a colon-separated list), else `fallback`.
std::string systemd_directory(const char* variable, const char* fallback);

// $RUNTIME_DIRECTORY (RuntimeDirectory=itk: /run/itk), else /run/itk.
inline std::string runtime_directory() { return systemd_directory("RUNTIME_DIRECTORY", "/run/itk"); }

}  // namespace itk

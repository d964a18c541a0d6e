// systemd's per-service directories.
#include "sys/paths.h"

#include <cstdlib>

namespace itk {

std::string systemd_directory(const char* variable, const char* fallback) {
  const char* v = getenv(variable);
  if (!v || v[0] != '/') return fallback;
  std::string s = v;
  return s.substr(0, s.find(':'));
}

}  // namespace itk

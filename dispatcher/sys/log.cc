// Logging to stderr; under systemd each "<N>" prefix becomes the journal priority.
#include "sys/log.h"

#include <unistd.h>

#include <cstdio>
#include <vector>

namespace itk {
namespace {
// One role tag per process, set once right after fork; not shared between processes.
std::string& role_tag() {
  static std::string tag = "itkd";
  return tag;
}
}  // namespace

void log_set_role(const std::string& role) { role_tag() = role; }

std::string strprintf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out;
  if (n > 0) {
    out.resize(static_cast<size_t>(n) + 1);
    vsnprintf(out.data(), out.size(), fmt, ap2);
    out.resize(static_cast<size_t>(n));
  }
  va_end(ap2);
  return out;
}

void log(Level level, const char* fmt, ...) {
  int saved = errno;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char line[2300];
  int n = snprintf(line, sizeof line, "<%d>%s[%d]: %s\n", static_cast<int>(level), role_tag().c_str(),
                   static_cast<int>(getpid()), msg);
  if (n > 0) {
    size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
    // One write() per line keeps lines from different processes whole on the shared stderr.
    (void)!write(STDERR_FILENO, line, len);
  }
  errno = saved;
}

}  // namespace itk

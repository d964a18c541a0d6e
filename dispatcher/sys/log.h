// Logging to stderr with sd-daemon priority prefixes, which journald turns into priorities.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <string>

namespace itk {

enum class Level { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// printf-style; a trailing newline is added. Keeps errno unchanged so callers can log then return -errno.
void log(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Tag for every line this process logs ("master", "acceptor", "worker example.org"...).
void log_set_role(const std::string& role);

// printf into a std::string.
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace itk

// Logging to stderr with sd-daemon priority prefixes, which journald turns into priorities; lines about a
// vhost also go to its ErrorLog and carry ITK_VHOST= (and ITK_STATUS=) in the journal.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstdarg>
#include <ctime>
#include <string>
#include <string_view>

namespace itk {

enum class Level { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// printf-style; a trailing newline is added. Keeps errno unchanged so callers can log then return -errno.
void log(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// As log(), about a request that ends with `status`: the journal entry carries ITK_STATUS=.
void log_status(Level level, int status, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

// As log(), about `vhost` outside a request in hand (the acceptor's refusals): ITK_VHOST=, and ITK_STATUS=
// when `status` is not 0.
void log_vhost(Level level, const std::string& vhost, int status, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Tag for every line this process logs ("master", "acceptor", "worker example.org"...).
void log_set_role(const std::string& role);

// The request a worker has in hand. While one is set, every line at info or above also goes to the
// vhost's ErrorLog (when `error_fd` >= 0) in Apache's shape, and the journal entry carries ITK_VHOST=.
struct LogRequest {
  int error_fd = -1;
  std::string vhost;   // ServerName
  std::string client;  // "address:port"
};
void log_begin_request(const LogRequest& r);
void log_end_request();
// Whether a line went to the ErrorLog since log_begin_request.
bool log_request_wrote();

// Apache's escaping of a logged value (ap_escape_logitem): `"` and `\` get a backslash, \b \n \r \t \v
// are written so, and any other control byte or byte above 0x7e as \xhh.
void append_log_escaped(std::string& out, std::string_view value);

// One ErrorLog line in Apache's shape, newline included:
// "[Sun Dec 06 21:00:00.123456 2026] [core:error] [pid N] [client 1.2.3.4:5678] message".
// `client` empty: no [client] part. Local time.
std::string error_log_line(const timespec& when, Level level, pid_t pid, std::string_view client,
                           std::string_view message);

// printf into a std::string.
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace itk

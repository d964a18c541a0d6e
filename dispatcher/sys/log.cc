// Logging to stderr; under systemd each "<N>" prefix becomes the journal priority. Lines about a vhost go
// to the journal in its native protocol (to carry ITK_VHOST=) when stderr is the journal, and to the
// vhost's ErrorLog while a worker serves one of its requests.
#include "sys/log.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sys/unique_fd.h"

namespace itk {
namespace {
// One role tag per process, set once right after fork; not shared between processes.
std::string& role_tag() {
  static std::string tag = "itkd";
  return tag;
}

// The request in hand, in a worker only; set and cleared around each request, never shared.
struct RequestState {
  bool active = false;
  LogRequest request;
  bool wrote = false;
};
RequestState& request_state() {
  static RequestState state;
  return state;
}

// Whether stderr is the journal's stream (systemd's JOURNAL_STREAM names its device and inode): only
// then does a line with fields go to the journal natively, so a stderr redirected elsewhere keeps every line.
bool stderr_is_journal() {
  static int known = -1;
  if (known < 0) {
    known = 0;
    const char* e = getenv("JOURNAL_STREAM");
    unsigned long long dev = 0, ino = 0;
    struct stat st {};
    if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
      known = st.st_dev == dev && st.st_ino == ino;
  }
  return known == 1;
}

const char* level_name(Level level) {
  switch (level) {
    case Level::err: return "error";
    case Level::warning: return "warn";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
  }
  return "error";
}

void write_stderr(Level level, const char* msg) {
  char line[2300];
  int n = snprintf(line, sizeof line, "<%d>%s[%d]: %s\n", static_cast<int>(level), role_tag().c_str(),
                   static_cast<int>(getpid()), msg);
  if (n > 0) {
    size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
    // One write() per line keeps lines from different processes whole on the shared stderr.
    (void)!write(STDERR_FILENO, line, len);
  }
}

// One entry in the journal's native protocol, on a socket of its own that is closed at once: a socket
// kept open (as sd_journal_send keeps one) could have its number taken over by a worker's dup2 of a
// client connection, and entries would then go to the client.
bool journal_send(const std::vector<std::string>& fields) {
  std::string datagram;
  for (const std::string& f : fields) {
    size_t eq = f.find('=');
    if (f.find('\n') == std::string::npos) {
      datagram += f;
      datagram += '\n';
      continue;
    }
    // A value with a newline: the name, a newline, its length as 64-bit little-endian, the value.
    datagram.append(f, 0, eq);
    datagram += '\n';
    uint64_t len = f.size() - eq - 1;
    for (int i = 0; i < 8; i++) datagram += static_cast<char>((len >> (8 * i)) & 0xff);
    datagram.append(f, eq + 1, std::string::npos);
    datagram += '\n';
  }
  unique_fd s(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  static const char kJournalSocket[] = "/run/systemd/journal/socket";
  memcpy(addr.sun_path, kJournalSocket, sizeof kJournalSocket);
  return sendto(s.get(), datagram.data(), datagram.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                sizeof addr) == static_cast<ssize_t>(datagram.size());
}

// Every line ends here. `vhost` empty and `status` 0: a line about no vhost, as before.
void emit(Level level, const std::string& vhost, int status, const char* msg) {
  bool native = false;
  if ((!vhost.empty() || status) && stderr_is_journal()) {
    std::vector<std::string> fields{"MESSAGE=" + role_tag() + "[" + std::to_string(getpid()) + "]: " + msg,
                                    "PRIORITY=" + std::to_string(static_cast<int>(level)), "SYSLOG_IDENTIFIER=itkd"};
    if (!vhost.empty()) fields.push_back("ITK_VHOST=" + vhost);
    if (status) fields.push_back("ITK_STATUS=" + std::to_string(status));
    native = journal_send(fields);
  }
  if (!native) write_stderr(level, msg);
  RequestState& r = request_state();
  if (r.active && r.request.error_fd >= 0 && level != Level::debug) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    std::string line = error_log_line(now, level, getpid(), r.request.client, msg);
    // One write() of a whole line on an O_APPEND descriptor: lines of many workers never interleave.
    if (write(r.request.error_fd, line.data(), line.size()) > 0) r.wrote = true;
  }
}

void vemit(Level level, const std::string& vhost, int status, const char* fmt, va_list ap) {
  int saved = errno;
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  emit(level, vhost, status, msg);
  errno = saved;
}

const std::string& current_vhost() {
  static const std::string none;
  const RequestState& r = request_state();
  return r.active ? r.request.vhost : none;
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
  va_list ap;
  va_start(ap, fmt);
  vemit(level, current_vhost(), 0, fmt, ap);
  va_end(ap);
}

void log_status(Level level, int status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(level, current_vhost(), status, fmt, ap);
  va_end(ap);
}

void log_vhost(Level level, const std::string& vhost, int status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemit(level, vhost, status, fmt, ap);
  va_end(ap);
}

void log_begin_request(const LogRequest& r) {
  RequestState& s = request_state();
  s.active = true;
  s.request = r;
  s.wrote = false;
}

void log_end_request() { request_state().active = false; }

bool log_request_wrote() { return request_state().wrote; }

void append_log_escaped(std::string& out, std::string_view value) {
  for (char ch : value) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\b': out += "\\b"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\v': out += "\\v"; continue;
      default: break;
    }
    if (c < 32 || c > 126) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
}

std::string error_log_line(const timespec& when, Level level, pid_t pid, std::string_view client,
                           std::string_view message) {
  tm t{};
  localtime_r(&when.tv_sec, &t);
  char date[64];
  strftime(date, sizeof date, "%a %b %d %H:%M:%S", &t);
  std::string out = strprintf("[%s.%06ld %d] [core:%s] [pid %d] ", date, when.tv_nsec / 1000, t.tm_year + 1900,
                              level_name(level), static_cast<int>(pid));
  if (!client.empty()) {
    out += "[client ";
    out += client;
    out += "] ";
  }
  append_log_escaped(out, message);
  out += '\n';
  return out;
}

}  // namespace itk

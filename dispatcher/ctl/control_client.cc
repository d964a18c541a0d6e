// A blocking client of the control socket, every wait bounded by one deadline.
#include "ctl/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ctl/control_protocol.h"
#include "sys/io.h"
#include "sys/paths.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr size_t kMaxAnswer = 64u << 20;

// Waits for `events` on `fd` until `deadline`: 0 when ready, -ETIMEDOUT, or -errno.
int wait_for(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return -errno;
  }
}

}  // namespace

std::string control_socket_path() { return runtime_directory() + "/" + kControlSocketName; }

int control_request(const std::string& path, std::string_view request, int timeout_ms, std::string& answer) {
  const int64_t deadline = now_ms() + timeout_ms;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -ENAMETOOLONG;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  unique_fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return -errno;
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return -errno;
    if (int r = wait_for(fd.get(), POLLOUT, deadline); r < 0) return r;
  }
  for (size_t off = 0; off < request.size();) {
    ssize_t n = send(fd.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      if (int r = wait_for(fd.get(), POLLOUT, deadline); r < 0) return r;
    } else if (n < 0 && errno != EINTR) {
      return -errno;
    }
  }
  answer.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n == 0) return 0;
    if (n > 0) {
      answer.append(buf, static_cast<size_t>(n));
      if (answer.size() > kMaxAnswer) return -EMSGSIZE;
    } else if (errno == EAGAIN) {
      if (int r = wait_for(fd.get(), POLLIN, deadline); r < 0) return r;
    } else if (errno != EINTR) {
      return -errno;
    }
  }
}

}  // namespace itk

// The master's control socket: accept, check the peer is root, read one request line, answer, close.
#include "proc/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ctl/control_protocol.h"
#include "sys/io.h"
#include "sys/log.h"

namespace itk {
namespace {

constexpr size_t kMaxClients = 8;
constexpr int64_t kClientMs = 2000;

}  // namespace

bool ControlServer::open(const std::string& path, std::string& error) {
  close();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    error = "control socket path too long: " + path;
    return false;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    error = strprintf("cannot create %s: %s", dir.c_str(), strerror(errno));
    return false;
  }
  unique_fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    error = strprintf("socket: %s", strerror(errno));
    return false;
  }
  (void)unlink(path.c_str());
  // Root's with mode 0600 from the moment it exists: the umask covers the window before the chmod.
  const mode_t old = umask(0177);
  const int bound = bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (bound < 0 || chown(path.c_str(), 0, 0) < 0 || chmod(path.c_str(), 0600) < 0 || listen(fd.get(), 8) < 0) {
    error = strprintf("cannot listen on %s: %s", path.c_str(), strerror(errno));
    if (bound == 0) (void)unlink(path.c_str());
    return false;
  }
  listener_ = std::move(fd);
  path_ = path;
  return true;
}

void ControlServer::close() {
  clients_.clear();
  if (listener_) {
    listener_.reset();
    (void)unlink(path_.c_str());
  }
}

void ControlServer::add_poll_fds(std::vector<pollfd>& fds) {
  polled_listener_ = listener_ && clients_.size() < kMaxClients;
  if (polled_listener_) fds.push_back({listener_.get(), POLLIN, 0});
  for (const Client& c : clients_) fds.push_back({c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
  polled_clients_ = clients_.size();
}

void ControlServer::on_poll(const std::vector<pollfd>& fds, size_t first, const Answer& answer) {
  size_t i = first;
  const bool accept_now = polled_listener_ && i < fds.size() && fds[i++].revents;
  for (size_t k = 0; k < polled_clients_ && i < fds.size(); k++, i++) {
    if (!fds[i].revents) continue;
    Client& c = clients_[k];
    if (c.out.empty()) read_request(c, answer);
    else write_answer(c);
  }
  std::erase_if(clients_, [](const Client& c) { return c.done; });
  if (accept_now) accept_clients(answer);
}

void ControlServer::accept_clients(const Answer& answer) {
  while (clients_.size() < kMaxClients) {
    unique_fd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;  // EAGAIN, or a client that left already
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
      // The socket's mode admits root only; a client got past it anyway (a changed mode): said, never answered.
      log(Level::warning, "control socket: refused a client of uid %d (pid %d): only root may ask",
          static_cast<int>(cred.uid), static_cast<int>(cred.pid));
      constexpr std::string_view refusal = "itk-control 1\nerror only%20root%20may%20ask\n";
      (void)send(fd.get(), refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    Client& c = clients_.emplace_back();
    c.fd = std::move(fd);
    c.deadline = now_ms() + kClientMs;
    read_request(c, answer);  // a client usually sends its line with the connection
    if (c.done) clients_.pop_back();
  }
}

void ControlServer::read_request(Client& c, const Answer& answer) {
  char buf[kControlMaxRequest];
  for (;;) {
    ssize_t n = recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      c.done = true;  // gone before its request was complete
      return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    size_t nl = c.in.find('\n');
    if (nl != std::string::npos) {
      c.out = answer(std::string_view(c.in).substr(0, nl + 1));
      return write_answer(c);
    }
    if (c.in.size() >= kControlMaxRequest) {
      c.done = true;
      return;
    }
  }
}

void ControlServer::write_answer(Client& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break;
    c.sent += static_cast<size_t>(n);
  }
  c.done = true;
}

int64_t ControlServer::expire(int64_t now, int64_t cap) {
  std::erase_if(clients_, [now](const Client& c) { return c.deadline <= now; });
  int64_t next = cap;
  for (const Client& c : clients_) next = std::min(next, c.deadline - now);
  return next;
}

}  // namespace itk

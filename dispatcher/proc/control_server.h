// The master's control socket: $RUNTIME_DIRECTORY/control.sock (RuntimeDirectory=itk: /run/itk), a Unix
// stream socket owned by root with mode 0600, for itkctl. Only a peer whose SO_PEERCRED uid is 0 is
// answered. One request per connection (ctl/control_protocol.h); everything is non-blocking and bounded
// (a few clients at once, a short request, two seconds per client), answered from the master's poll
// loop, so no client, however slow or hostile, ever holds the master up.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "sys/unique_fd.h"

namespace itk {

class ControlServer {
 public:
  // The answer to one request line (newline included).
  using Answer = std::function<std::string(std::string_view request)>;

  ControlServer() = default;
  ~ControlServer() { close(); }
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and listens at `path` (a leftover of an earlier run is replaced); its directory is made
  // (0755) when missing. False with `error`.
  bool open(const std::string& path, std::string& error);
  // Closes the socket and every client, and removes the socket file.
  void close();
  // The listener (while there is room for another client) and every client, appended to `fds`.
  void add_poll_fds(std::vector<pollfd>& fds);
  // Handles the revents of the entries add_poll_fds appended, starting at fds[first].
  void on_poll(const std::vector<pollfd>& fds, size_t first, const Answer& answer);
  // Ends the clients past their deadline; returns the ms until the next deadline (at most `cap`).
  int64_t expire(int64_t now, int64_t cap);

 private:
  struct Client {
    unique_fd fd;
    std::string in;
    std::string out;
    size_t sent = 0;
    int64_t deadline = 0;
    bool done = false;
  };
  void accept_clients(const Answer& answer);
  void read_request(Client& c, const Answer& answer);
  void write_answer(Client& c);

  unique_fd listener_;
  std::string path_;
  std::vector<Client> clients_;
  bool polled_listener_ = false;
  size_t polled_clients_ = 0;
};

}  // namespace itk

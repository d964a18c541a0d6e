// FastCGI client in the worker: connect to the vhost's pool (waiting a bounded time for room in
// its queue), send BEGIN_REQUEST, PARAMS and STDIN, relay STDOUT to the client and STDERR to the log.
#include "script/fastcgi.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "http/body_decoder.h"
#include "script/fastcgi_protocol.h"
#include "script/script_finish.h"
#include "script/script_io.h"
#include "sys/io.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr uint16_t kRequestId = 1;
// Request body bytes framed ahead of what the app has taken; beyond this the client is not read.
constexpr size_t kMaxOutstanding = 256 * 1024;

// A blocking connect bounded by SO_SNDTIMEO: when the pool's queue is full the kernel makes it
// wait for room, which is what a burst should do, but not for long. Returns the fd or -errno.
[[nodiscard]] int connect_pool(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return -ENAMETOOLONG;
  memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  unique_fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return -errno;
  timeval tv{kFastCgiQueueWaitMs / 1000, (kFastCgiQueueWaitMs % 1000) * 1000};
  if (setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return -errno;
  while (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINTR) return -errno;
  }
  if (fcntl(fd.get(), F_SETFL, O_NONBLOCK) != 0) return -errno;
  return fd.release();
}

std::vector<std::pair<std::string, std::string>> to_pairs(const std::vector<std::string>& env) {
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(env.size());
  for (const std::string& e : env) {
    size_t eq = e.find('=');
    if (eq != std::string::npos) pairs.emplace_back(e.substr(0, eq), e.substr(eq + 1));
  }
  return pairs;
}

void append_body(std::string& out, std::string_view data) {
  while (!data.empty()) {
    size_t n = std::min(data.size(), fcgi::kMaxContent);
    fcgi::append_stdin(out, kRequestId, data.substr(0, n));
    data.remove_prefix(n);
  }
}

// What the journal says about an app whose output failed or was cut short. `closed`: the app closed the
// connection before it ended the request.
std::string failure_text(RelayEnd end, const ScriptResponse& resp, bool closed, unsigned app_status,
                         unsigned cgi_timeout) {
  if (end == RelayEnd::timed_out)
    return resp.head_sent()
               ? strprintf("FastCGI app still answering at CGITimeout (%u s); response cut short", cgi_timeout)
               : strprintf("no response from the FastCGI app within CGITimeout (%u s)", cgi_timeout);
  if (resp.head_sent())
    return end == RelayEnd::output_done ? "" : "the FastCGI app closed the connection in the middle of its response";
  if (closed) return "the FastCGI app closed the connection without a response (it crashed or was stopped)";
  if (end == RelayEnd::output_done)
    return strprintf("the FastCGI app ended the request (status %u) without a complete header block", app_status);
  return {};  // a malformed header block or a protocol error, logged where it was found
}

}  // namespace

CgiOutcome run_fastcgi(const Runtime& rt, const VHost& vh, const RequestHead& head, const ScriptMatch& m,
                       ClientConn& conn, std::string& buffered, bool keep_alive, std::atomic<uint64_t>& activity) {
  const ServerConfig& sc = rt.config->server;
  const bool is_head = head.method == "HEAD";
  const FastCgiApp& app = *m.fastcgi;
  const std::string& socket_path = rt.fastcgi_socket(vh, app);
  CgiOutcome result;
  const std::string script_filename = m.document_root + m.script_name;
  if (socket_path.empty()) {
    log(Level::err, "%s: the FastCGI pool for %s has no socket (see the master's log): 503", m.script_name.c_str(),
        app.extension.c_str());
    result.response = answer_error(conn, 503, false, is_head, "Retry-After: 10\r\n");
    return result;
  }

  // --- request body: chunked ones are spooled first, so that CONTENT_LENGTH is known ---
  BodyDecoder body(head.content_length, head.chunked, sc.limit_request_body);
  RequestHead env_head;
  unique_fd spool;
  if (!prepare_body(conn, head, body, buffered, sc.timeout, rt.state(vh).temp_dir, env_head, spool, result.response)) return result;
  std::vector<std::string> env = script_environment(vh, rt.state(vh), env_head, conn, m, script_filename);

  int fd = connect_pool(socket_path);
  if (fd < 0) {
    int err = -fd;
    if (err == EAGAIN || err == ETIMEDOUT) {
      log(Level::warning, "%s: the FastCGI pool is at FastCGIMaxProcesses (%u) and its queue stayed full for %d ms: 503",
          m.script_name.c_str(), vh.fastcgi.max_processes, kFastCgiQueueWaitMs);
      result.response = answer_error(conn, 503, false, is_head, "Retry-After: 5\r\n");
    } else {
      log(Level::err, "%s: cannot connect to the FastCGI pool at %s: %s: 503", m.script_name.c_str(), socket_path.c_str(),
          strerror(err));
      result.response = answer_error(conn, 503, false, is_head, "Retry-After: 2\r\n");
    }
    return result;
  }
  unique_fd sock(fd);
  activity.fetch_add(1, std::memory_order_relaxed);
  int64_t last_beat = now_ms();

  std::string out;
  fcgi::append_begin_request(out, kRequestId);
  if (!fcgi::append_params(out, kRequestId, to_pairs(env))) {
    log(Level::info, "%s: a request header or the URL is over 64 KiB, more than one FastCGI record holds: 431",
        m.script_name.c_str());
    result.response = answer_error(conn, 431, false, is_head);
    return result;
  }
  Relay relay;
  relay.body_done = body.state() == BodyDecoder::State::complete || head.chunked || !head.has_body();
  bool stdin_done = false;

  // --- relay ---
  const int64_t deadline = now_ms() + static_cast<int64_t>(vh.cgi_timeout) * 1000;
  int64_t body_progress = now_ms();
  fcgi::RecordReader reader;
  ScriptResponse resp(conn, head, m.script_name, keep_alive, m.default_status, &vh.compress);
  StderrLog errlog(m.script_name);
  std::string decoded;
  bool ended = false, app_closed = false, stopped = false;
  fcgi::EndRequest end;
  auto stop = [&](RelayEnd why) {
    relay.end = why;
    stopped = true;
  };

  while (!ended && !stopped) {
    if (now_ms() - last_beat >= 1000) {
      activity.fetch_add(1, std::memory_order_relaxed);
      last_beat = now_ms();
    }
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      stop(RelayEnd::timed_out);
      break;
    }
    // Frame what body bytes are at hand.
    if (!stdin_done && out.size() < kMaxOutstanding) {
      if (spool) {
        char tmp[65536];
        ssize_t n = read(spool.get(), tmp, sizeof tmp);
        if (n > 0) {
          append_body(out, std::string_view(tmp, static_cast<size_t>(n)));
        } else if (n < 0) {
          log(Level::err, "%s: reading the spooled request body failed: %s", m.script_name.c_str(), strerror(errno));
          stop(RelayEnd::local_error);
          break;
        } else {
          fcgi::append_stdin(out, kRequestId, {});
          stdin_done = true;
        }
      } else {
        if (!buffered.empty() && !relay.body_done) {
          if (!decode_body(body, buffered, decoded, relay)) {
            stopped = true;
            break;
          }
          append_body(out, decoded);
          decoded.clear();
        }
        if (relay.body_done) {
          fcgi::append_stdin(out, kRequestId, {});
          stdin_done = true;
        }
      }
    }
    const bool want_body = !stdin_done && !spool && buffered.empty() && out.size() < kMaxOutstanding;
    if (want_body && now_ms() - body_progress > static_cast<int64_t>(sc.timeout) * 1000) {
      stop(RelayEnd::body_stalled);
      break;
    }
    // What the script printed so far leaves before we wait for more.
    if (!resp.flush()) {
      stop(RelayEnd::client_gone);
      break;
    }
    pollfd fds[2] = {{sock.get(), static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0},
                     {conn.fd, static_cast<short>((want_body ? POLLIN : 0) | POLLRDHUP), 0}};
    if (want_body) left = std::min<int64_t>(left, static_cast<int64_t>(sc.timeout) * 1000);
    // Bytes decrypted already are not signalled by poll.
    if (want_body && conn_buffered(conn) > 0) fds[1].revents = POLLIN;
    else if (poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000))) < 0 && errno != EINTR) {
      log(Level::err, "%s: poll failed: %s", m.script_name.c_str(), strerror(errno));
      stop(RelayEnd::local_error);
      break;
    }

    if (!want_body && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      stop(RelayEnd::client_gone);
      break;
    }
    if (want_body && (fds[1].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) {
      if (!read_body_bytes(conn, buffered, body_progress)) {
        stop(RelayEnd::client_gone);
        break;
      }
    }
    if (fds[0].revents & POLLOUT) {
      ssize_t w = send(sock.get(), out.data(), out.size(), MSG_NOSIGNAL);
      if (w > 0) {
        out.erase(0, static_cast<size_t>(w));
      } else if (w < 0 && errno != EAGAIN) {
        // The app stopped reading (it answered without the body): the rest of the body is dropped.
        out.clear();
        stdin_done = true;
        if (!relay.body_done) keep_alive = false;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char tmp[65536];
      ssize_t r = read(sock.get(), tmp, sizeof tmp);
      if (r > 0) reader.feed(std::string_view(tmp, static_cast<size_t>(r)));
      else if (r == 0 || errno != EAGAIN) app_closed = true;
      fcgi::Record rec;
      int got = 0;
      while (!ended && !stopped && (got = reader.next(rec)) == 1) {
        if (rec.id != kRequestId) continue;
        if (rec.type == fcgi::stdout_stream && !rec.content.empty()) {
          ScriptResponse::Fed fed = resp.feed(rec.content.data(), rec.content.size(), relay.body_done);
          if (fed == ScriptResponse::Fed::bad_head) stop(RelayEnd::output_cut);
          if (fed == ScriptResponse::Fed::client_gone) stop(RelayEnd::client_gone);
        } else if (rec.type == fcgi::stderr_stream) {
          errlog.add(rec.content.data(), rec.content.size());
        } else if (rec.type == fcgi::end_request) {
          ended = true;
          (void)fcgi::parse_end_request(rec.content, end);
        }
      }
      if (got < 0) {
        log(Level::err, "%s: FastCGI protocol error from the app: %s", m.script_name.c_str(), reader.error().c_str());
        if (!stopped) stop(RelayEnd::output_cut);
      }
      if (!stopped && app_closed && !ended) stop(RelayEnd::output_cut);
    }
  }
  // Closing the connection is how the app learns that a request it still runs was given up.
  sock.reset();
  errlog.flush();

  relay.failure = failure_text(relay.end, resp, app_closed && !ended, end.app_status, vh.cgi_timeout);
  return finish_script(conn, head, m.script_name, resp, relay, keep_alive, "FastCGI request given up", sc.timeout);
}

}  // namespace itk

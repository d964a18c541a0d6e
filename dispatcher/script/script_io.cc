// CGI and FastCGI in the worker, the parts they share: environment, chunked body spool, stderr log,
// and relaying the script's header block and body to the client.
#include "script/script_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/address_range.h"
#include "config/config.h"
#include "http/body_decoder.h"
#include "http/http_response.h"
#include "script/cgi_env.h"
#include "script/cgi_response.h"
#include "sys/io.h"
#include "sys/log.h"

namespace itk {
namespace {

constexpr size_t kMaxCgiHead = 65536;
// Held output beyond this is sent at once: memory stays bounded whatever the script prints.
constexpr size_t kMaxHeldOutput = 65536;

}  // namespace

std::vector<std::string> script_environment(const VHost& vh, const VHostState& state, const RequestHead& head,
                                            const ClientConn& conn, const ScriptMatch& m,
                                            const std::string& script_filename) {
  CgiRequest req;
  req.vhost = &vh;
  req.temp_dir = state.temp_dir;
  req.php_ini_dir = state.php_ini_dir;
  req.document_root = m.document_root;
  req.head = &head;
  req.script_name = m.script_name;
  req.script_filename = script_filename;
  req.path_info = m.path_info;
  req.request_uri = m.request_uri;
  req.redirect_env = &m.redirect_env;
  std::string_view target = head.target;
  size_t q = target.find('?');
  req.query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
  req.https = conn.tls != nullptr || conn.addrs.tls_at_balancer;
  // The client and server as a load balancer's PROXY header stated them, else as the socket has them.
  sockaddr_storage client = conn.addrs.client, server = conn.addrs.server;
  socklen_t len = sizeof client;
  if (client.ss_family == AF_UNSPEC) (void)getpeername(conn.fd, reinterpret_cast<sockaddr*>(&client), &len);
  len = sizeof server;
  if (server.ss_family == AF_UNSPEC) (void)getsockname(conn.fd, reinterpret_cast<sockaddr*>(&server), &len);
  req.remote_addr = address_text(client);
  req.remote_port = port_text(client);
  req.server_addr = address_text(server);
  req.server_port = port_text(server);
  return cgi_environment(req);
}

void StderrLog::add(const char* data, size_t n) {
  pending_.append(data, n);
  size_t eol;
  while ((eol = pending_.find('\n')) != std::string::npos) {
    emit(pending_.substr(0, eol));
    pending_.erase(0, eol + 1);
  }
  if (pending_.size() > 4096) {
    emit(pending_);
    pending_.clear();
  }
}

void StderrLog::flush() {
  if (!pending_.empty()) emit(pending_);
  pending_.clear();
}

void StderrLog::emit(const std::string& line) {
  log(Level::warning, "%s: %.*s", script_.c_str(), static_cast<int>(std::min<size_t>(line.size(), 4096)), line.c_str());
}

namespace {

// An unlinked file in the vhost's own temporary directory: on disk, owned by the tenant (its quota),
// gone when closed. A memory file only when the directory cannot hold one (then it counts against the
// vhost's memory cgroup).
// The file, or -errno.
[[nodiscard]] int open_spool_file(const std::string& dir) {
  unique_fd fd(open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd) return fd.release();
  // A file system without O_TMPFILE: a named file, unlinked at once.
  std::string path = dir + "/itk-body.XXXXXX";
  unique_fd named(mkostemp(path.data(), O_CLOEXEC));
  if (!named) return -errno;
  (void)unlink(path.c_str());
  return named.release();
}

unique_fd open_spool(const std::string& dir) {
  if (!dir.empty()) {
    int fd = open_spool_file(dir);
    if (fd >= 0) return unique_fd(fd);
    log(Level::warning, "cannot make a file for a request body in %s: %s; keeping it in memory", dir.c_str(),
        strerror(-fd));
  }
  return unique_fd(memfd_create("itk-request-body", MFD_CLOEXEC));
}

}  // namespace

int spool_chunked(ClientConn& conn, BodyDecoder& body, std::string& buffered, unsigned timeout_s,
                  const std::string& spool_dir, unique_fd& out, uint64_t& size, const char*& why) {
  out = open_spool(spool_dir);
  if (!out) {
    why = "no file for the request body could be made";
    return 500;
  }
  std::string decoded;
  const int64_t start = now_ms();
  int64_t deadline = start + static_cast<int64_t>(timeout_s) * 1000;
  uint64_t received = buffered.size();
  for (;;) {
    size_t used = 0;
    BodyDecoder::State st = body.feed(buffered, decoded, used);
    buffered.erase(0, used);
    if (!decoded.empty()) {
      if (!write_all_fd(out.get(), decoded)) {
        why = "writing the request body to its file failed (the vhost's disk quota, or a full disk?)";
        return 500;
      }
      decoded.clear();
    }
    if (st == BodyDecoder::State::complete) break;
    if (st == BodyDecoder::State::error) {
      why = body.error_reason();
      return body.error_status();
    }
    // A whole body, not just each read, has a bound: Timeout, plus a second for every kBodyMinRate bytes
    // received (Apache's RequestReadTimeout body=...,MinRate=500), so a client trickling a large body
    // cannot hold its worker and file for hours.
    const int64_t overall = start + static_cast<int64_t>(timeout_s) * 1000 +
                            static_cast<int64_t>(received * 1000 / kBodyMinRate);
    if (now_ms() >= overall) {
      why = "request body arriving slower than 500 bytes per second";
      return 408;
    }
    if (conn_buffered(conn) == 0) {
      pollfd p{conn.fd, POLLIN, 0};
      int64_t left = std::min(deadline, overall) - now_ms();
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
        why = now_ms() >= overall ? "request body arriving slower than 500 bytes per second"
                                  : "request body not received within Timeout";
        return 408;
      }
    }
    char tmp[65536];
    ssize_t n = conn_read(conn, tmp, sizeof tmp);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      why = "client closed the connection during the request body";
      return -1;
    }
    if (n > 0) {
      buffered.append(tmp, static_cast<size_t>(n));
      received += static_cast<uint64_t>(n);
      deadline = now_ms() + static_cast<int64_t>(timeout_s) * 1000;
    }
  }
  size = body.decoded();
  if (lseek(out.get(), 0, SEEK_SET) != 0) {
    why = "lseek on the request body failed";
    return 500;
  }
  return 0;
}

bool prepare_body(ClientConn& conn, const RequestHead& head, BodyDecoder& body, std::string& buffered,
                  unsigned timeout_s, const std::string& spool_dir, RequestHead& env_head, unique_fd& spool,
                  ResponseOutcome& answered) {
  if (head.expect_continue && head.has_body() && buffered.empty())
    (void)conn_write_all(conn, "HTTP/1.1 100 Continue\r\n\r\n");
  env_head = head;
  if (!head.chunked) return true;
  uint64_t size = 0;
  const char* why = "";
  int status = spool_chunked(conn, body, buffered, timeout_s, spool_dir, spool, size, why);
  if (status != 0) {
    log(Level::info, "request body refused: %s", why);
    if (status > 0) answered = answer_error(conn, status, false, head.method == "HEAD");
    else answered = {false, 400, false};
    return false;
  }
  env_head.chunked = false;
  env_head.content_length = size;
  std::erase_if(env_head.headers, [](const auto& h) { return h.first == "transfer-encoding"; });
  return true;
}

bool read_body_bytes(ClientConn& conn, std::string& buffered, int64_t& progress) {
  char tmp[65536];
  ssize_t r = conn_read(conn, tmp, sizeof tmp);
  if (r == 0 || (r < 0 && errno != EAGAIN)) return false;
  if (r > 0) {
    buffered.append(tmp, static_cast<size_t>(r));
    progress = now_ms();
  }
  return true;
}

bool ScriptResponse::head_complete() const { return find_cgi_head_end(head_buf_) != std::string::npos; }

ScriptResponse::Fed ScriptResponse::feed(const char* data, size_t n, bool body_done) {
  if (head_sent_) return write_body(data, n) ? Fed::ok : Fed::client_gone;
  head_buf_.append(data, n);
  if (find_cgi_head_end(head_buf_) != std::string::npos) {
    if (start(body_done)) return Fed::ok;
    return head_sent_ ? Fed::client_gone : Fed::bad_head;
  }
  if (head_buf_.size() > kMaxCgiHead) {
    log(Level::err, "%s: no end of the header block within 64 KiB", script_.c_str());
    return Fed::bad_head;
  }
  return Fed::ok;
}

void ScriptResponse::answered_elsewhere(int status) {
  head_sent_ = true;
  discard_body_ = true;
  status_ = status;
}

bool ScriptResponse::write_body(const char* data, size_t n) {
  if (discard_body_ || n == 0) return true;
  if (declared_) {
    if (sent_ >= *declared_) {
      keep_alive_ = false;  // the script wrote more than it declared: the extra is dropped
      return true;
    }
    n = static_cast<size_t>(std::min<uint64_t>(n, *declared_ - sent_));
  }
  if (chunked_out_) {
    out_ += strprintf("%zx\r\n", n);
    out_.append(data, n);
    out_ += "\r\n";
  } else {
    out_.append(data, n);
  }
  sent_ += n;
  return out_.size() < kMaxHeldOutput || flush();
}

bool ScriptResponse::flush() {
  if (out_.empty()) return true;
  bool ok = conn_write_all(conn_, out_);
  out_.clear();
  return ok;
}

bool ScriptResponse::start(bool body_done) {
  size_t end = find_cgi_head_end(head_buf_);
  CgiHead ch;
  std::string err = parse_cgi_head(std::string_view(head_buf_).substr(0, end), ch);
  if (!err.empty()) {
    log(Level::err, "%s: malformed response header block: %s", script_.c_str(), err.c_str());
    return false;
  }
  if (ch.local_redirect) {
    local_redirect_ = *ch.location;
    discard_body_ = true;
    head_sent_ = true;  // nothing goes to the client from this script
    return true;
  }
  const bool is_head = head_.method == "HEAD";
  status_ = ch.status_given || ch.location || !default_status_ ? ch.status : default_status_;
  declared_ = ch.content_length;
  const bool no_body = is_head || status_ == 204 || status_ == 304 || status_ < 200;
  if (!declared_ && !no_body) {
    if (head_.version_minor >= 1) chunked_out_ = true;
    else keep_alive_ = false;  // HTTP/1.0 without a length: the end of the body is the close
  }
  // The connection can carry another request only once this one's body has been read to its end;
  // if the script answers before that, say now that the connection will close.
  if (!body_done) keep_alive_ = false;
  std::string out = strprintf("HTTP/1.1 %d %s\r\nDate: %s\r\nServer: itk\r\n", status_,
                              ch.reason.empty() ? status_text(status_) : ch.reason.c_str(), http_date(time(nullptr)).c_str());
  for (const auto& [n, v] : ch.headers) out += n + ": " + v + "\r\n";
  if (declared_ && status_ != 304 && status_ != 204)
    out += strprintf("Content-Length: %llu\r\n", static_cast<unsigned long long>(*declared_));
  if (chunked_out_) out += "Transfer-Encoding: chunked\r\n";
  out += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  apply_policy_headers(conn_, out);
  head_sent_ = true;
  discard_body_ = no_body;
  out_ += out;
  std::string rest = head_buf_.substr(end);
  head_buf_.clear();
  return write_body(rest.data(), rest.size());
}

bool ScriptResponse::finish(bool cut_off) {
  if (chunked_out_ && !cut_off) out_ += "0\r\n\r\n";
  return flush();
}

}  // namespace itk

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
#include "http/http_chars.h"
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
// How long a head may wait for enough body to tell whether compressing pays.
constexpr int64_t kCodingDecisionMs = 200;

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
  const sockaddr_storage client = conn_client(conn), server = conn_server(conn);
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
  sent_ += n;
  if (undecided_) {
    held_body_.append(data, n);
    // Enough to be worth a coding, or as much as is ever held: compressed (the rest is still to come).
    if (held_body_.size() < std::min<uint64_t>(compress_->min_size, kMaxHeldOutput)) return true;
    if (!emit_head(offered_)) return false;
  } else if (!emit_body(std::string_view(data, n))) {
    return false;
  }
  return out_.size() < kMaxHeldOutput || flush();
}

bool ScriptResponse::emit_body(std::string_view data) {
  std::string encoded;
  if (encoder_) {
    if (!encoder_->write(data, encoded)) return false;
    data = encoded;
  }
  if (chunked_out_) append_chunk(out_, data);
  else out_.append(data);
  return true;
}

bool ScriptResponse::flush() {
  // A script that pauses early gets its head sent, compressed, once the decision has waited long enough.
  if (undecided_) {
    if (now_ms() < decide_by_ms_) return true;
    if (!emit_head(offered_)) return false;
  }
  if (encoder_ && encoder_->pending()) {
    std::string encoded;
    if (!encoder_->write({}, encoded, Encoder::Op::flush)) return false;
    append_chunk(out_, encoded);
  }
  if (out_.empty()) return true;
  bool ok = conn_write_all(conn_, out_);
  out_.clear();
  return ok;
}

// On the fly only: HTTP/1.1 (the coded length is unknown, so the body is chunked), a coding the script did
// not choose itself, a compressible type, a whole representation (a 206's bytes are of the identity one),
// and no declared length below CompressMinSize.
bool ScriptResponse::compress_candidate() const {
  if (!vary_ || head_.version_major != 1 || head_.version_minor < 1 || status_ == 206) return false;
  if (declared_ && *declared_ < compress_->min_size) return false;
  for (const auto& [n, v] : parsed_.headers)
    if (iequals(n, "Content-Encoding")) return false;
  return true;
}

bool ScriptResponse::start(bool body_done) {
  size_t end = find_cgi_head_end(head_buf_);
  std::string err = parse_cgi_head(std::string_view(head_buf_).substr(0, end), parsed_);
  if (!err.empty()) {
    log(Level::err, "%s: malformed response header block: %s", script_.c_str(), err.c_str());
    return false;
  }
  if (parsed_.local_redirect) {
    local_redirect_ = *parsed_.location;
    discard_body_ = true;
    head_sent_ = true;  // nothing goes to the client from this script
    return true;
  }
  status_ = parsed_.status_given || parsed_.location || !default_status_ ? parsed_.status : default_status_;
  declared_ = parsed_.content_length;
  no_body_ = head_.method == "HEAD" || status_ == 204 || status_ == 304 || status_ < 200;
  // The connection can carry another request only once this one's body has been read to its end;
  // if the script answers before that, say now that the connection will close.
  if (!body_done) keep_alive_ = false;
  if (compress_ && compress_->enabled) {
    for (const auto& [n, v] : parsed_.headers)
      if (iequals(n, "Content-Type")) vary_ = compressible_type(v, compress_->types);
  }
  if (compress_candidate()) offered_ = negotiate_codings(head_.header("accept-encoding")).on_the_fly();
  head_sent_ = true;
  std::string rest = head_buf_.substr(end);
  head_buf_.clear();
  if (offered_ != Coding::identity && !no_body_) {
    undecided_ = true;
    decide_by_ms_ = now_ms() + kCodingDecisionMs;
  } else if (!emit_head(offered_)) {
    return false;
  }
  discard_body_ = no_body_;
  return write_body(rest.data(), rest.size());
}

bool ScriptResponse::emit_head(Coding c) {
  undecided_ = false;
  if (c != Coding::identity && !no_body_) {
    encoder_.emplace(c, declared_.value_or(0));
    if (!encoder_->ok()) {
      log(Level::warning, "%s: no memory for a %s encoder; sent uncompressed", script_.c_str(),
          std::string(coding_name(c)).c_str());
      encoder_.reset();
      c = Coding::identity;
    }
  }
  const bool coded = c != Coding::identity;
  if ((!declared_ || coded) && !no_body_) {
    if (head_.version_minor >= 1) chunked_out_ = true;
    else keep_alive_ = false;  // HTTP/1.0 without a length: the end of the body is the close
  }
  std::string out = strprintf("HTTP/1.1 %d %s\r\nDate: %s\r\nServer: itk\r\n", status_,
                              parsed_.reason.empty() ? status_text(status_) : parsed_.reason.c_str(),
                              http_date(time(nullptr)).c_str());
  for (const auto& [n, v] : parsed_.headers) {
    if (coded && iequals(n, "ETag")) {
      std::string tag = encoded_etag(v, c);
      if (!tag.empty()) out += "ETag: " + tag + "\r\n";
      continue;
    }
    out += n + ": " + v + "\r\n";
  }
  if (vary_) out += "Vary: Accept-Encoding\r\n";
  if (coded) out += "Content-Encoding: " + std::string(coding_name(c)) + "\r\n";
  if (declared_ && !coded && status_ != 304 && status_ != 204)
    out += strprintf("Content-Length: %llu\r\n", static_cast<unsigned long long>(*declared_));
  if (chunked_out_) out += "Transfer-Encoding: chunked\r\n";
  out += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  apply_policy_headers(conn_, out);
  out_ += out;
  parsed_ = CgiHead{};
  std::string held = std::move(held_body_);
  held_body_.clear();
  return emit_body(held);
}

bool ScriptResponse::finish(bool cut_off) {
  // The whole output is known now: below CompressMinSize it goes out as it came (a response cut short is
  // not worth coding either).
  if (undecided_ && !emit_head(!cut_off && held_body_.size() >= compress_->min_size ? offered_ : Coding::identity))
    return false;
  if (encoder_ && !cut_off) {
    std::string encoded;
    if (!encoder_->write({}, encoded, Encoder::Op::finish)) return false;
    append_chunk(out_, encoded);
  }
  if (chunked_out_ && !cut_off) out_ += kLastChunk;
  return flush();
}

}  // namespace itk

// The worker's log lines of one request: the ErrorLog context around it, the access log line after it.
#include "proc/request_log.h"

#include <unistd.h>

#include "config/address_range.h"
#include "http/access_log.h"
#include "sys/log.h"

namespace itk {
namespace {

int64_t monotonic_us() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000 + t.tv_nsec / 1000;
}

// The status line's code of a response head as written; 0 when there is none.
int status_of(const std::string& head) {
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return 0;
  int code = 0;
  for (size_t i = 9; i < 12; i++) {
    if (head[i] < '0' || head[i] > '9') return 0;
    code = code * 10 + (head[i] - '0');
  }
  return code;
}

// The request's own fields of its line: request line, headers, bytes received.
void describe_request(AccessRecord& r, const RequestHead& head, const std::string& request_line) {
  r.request_line = request_line;
  r.host = head.host;
  r.request_headers = &head.headers;
  // The head as received, give or take the client's optional whitespace, and the body it declared.
  r.bytes_in = request_line.size() + 4 + head.content_length.value_or(0);
  for (const auto& [name, value] : head.headers) r.bytes_in += name.size() + value.size() + 4;
}

void write_line(int fd, const LogFormat& format, const AccessRecord& r) {
  std::string line = format_access_line(format, r);
  // One write() of a whole line on an O_APPEND descriptor: lines of many processes never interleave.
  (void)!write(fd, line.data(), line.size());
}

}  // namespace

void log_refusal(const LogFds& logs, const Runtime& rt, const VHost* vh, int sock, const ConnAddrs& addrs,
                 const RequestHead* head, int status, std::string_view response) {
  const int fd = vh ? logs.access_fd(rt.index_of(*vh)) : logs.server_access_fd();
  if (fd < 0) return;
  ClientConn probe(sock);
  probe.addrs = addrs;
  sockaddr_storage client{}, server{};
  client = conn_client(probe);
  server = conn_server(probe);
  const std::string client_ip = address_text(client), local_port = port_text(server);
  AccessRecord r;
  r.client_ip = client_ip;
  r.local_port = local_port;
  clock_gettime(CLOCK_REALTIME, &r.start);
  std::string request_line;
  if (head) {
    request_line = request_line_of(head->method, head->target, head->version_major, head->version_minor);
    describe_request(r, *head, request_line);
  }
  r.status = status;
  size_t head_end = response.find("\r\n\r\n");
  r.response_head = response.substr(0, head_end == std::string_view::npos ? response.size() : head_end + 4);
  r.bytes_out = response.size();
  r.body_bytes = response.size() - r.response_head.size();
  r.server_name = vh ? std::string_view(vh->server_name) : std::string_view("-");
  r.pid = getpid();
  write_line(fd, vh ? vh->logs.format : rt.config->server.logs.format, r);
}

RequestLog::RequestLog(const LogFds& logs, const Runtime& rt, const VHost& vh, const RequestHead& head,
                       ClientConn& io)
    : logs_(logs), rt_(rt), vh_(vh), head_(head), io_(io) {
  clock_gettime(CLOCK_REALTIME, &start_);
  start_us_ = monotonic_us();
  io.response_head.clear();
  bytes_out_ = io.bytes_out;
  sockaddr_storage client{}, server{};
  client = conn_client(io);
  server = conn_server(io);
  client_ip_ = address_text(client);
  local_port_ = port_text(server);
  const std::string port = port_text(client);
  log_begin_request({logs.error_fd(rt.index_of(vh)), vh.server_name, client_ip_ + (port.empty() ? "" : ":" + port)});
}

RequestLog::~RequestLog() { log_end_request(); }

void RequestLog::finish(const ResponseOutcome& out) {
  if (finished_) return;
  finished_ = true;
  int status = status_of(io_.response_head);
  if (status == 0) status = out.status;
  if ((status == 403 || status == 404 || status == 500 || status == 502 || status == 504) && !log_request_wrote()) {
    std::string_view path = head_.target;
    path = path.substr(0, path.find('?'));
    if (status == 404)
      log_status(Level::info, status, "File does not exist: %s%.*s", vh_.document_root.c_str(),
                 static_cast<int>(path.size()), path.data());
    else
      log_status(Level::err, status, "%s %.*s: %d", head_.method.c_str(), static_cast<int>(path.size()), path.data(),
                 status);
  }
  const int fd = logs_.access_fd(rt_.index_of(vh_));
  if (fd < 0) return;
  const uint64_t sent = io_.bytes_out - bytes_out_;
  const uint64_t head_size = std::min<uint64_t>(io_.response_head.size(), sent);
  const std::string request_line = request_line_of(head_.method, head_.target, head_.version_major, head_.version_minor);
  AccessRecord r;
  r.client_ip = client_ip_;
  r.local_port = local_port_;
  r.start = start_;
  r.duration_us = monotonic_us() - start_us_;
  describe_request(r, head_, request_line);
  r.status = status;
  r.body_bytes = head_.method == "HEAD" ? 0 : sent - head_size;
  r.bytes_out = sent;
  r.server_name = vh_.server_name;
  r.response_head = io_.response_head;
  r.pid = io_.worker ? io_.worker : getpid();
  write_line(fd, vh_.logs.format, r);
}

}  // namespace itk

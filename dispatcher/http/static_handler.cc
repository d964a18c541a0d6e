// Static responses: method rules, path decoding, openat2 beneath the root, validators, ranges, sendfile.
#include "http/static_handler.h"

#include <cerrno>
#include <cstring>

#include "http/client_conn.h"
#include "http/http_response.h"
#include "http/response_policy.h"
#include "http/static_file.h"
#include "sys/log.h"

namespace itk {
namespace {

constexpr std::string_view kAllow = "Allow: GET, HEAD, OPTIONS\r\n";

ResponseOutcome simple(ClientConn& conn, int status, bool keep_alive, bool head_only, std::string_view extra = {}) {
  // A request itk could not make sense of ends the connection, as nginx and Apache do: whatever
  // the client sends next is not trusted to be framed the way it thinks.
  if (status == 400) keep_alive = false;
  return answer_error(conn, status, keep_alive, head_only, extra);
}

}  // namespace

std::string directory_location(std::string_view raw_path) {
  // "//host/dir" (and "/\\host/dir", which browsers read the same way) in a Location is a URL of
  // another host: one leading '/' only, and no raw backslash anywhere.
  size_t lead = raw_path.find_first_not_of('/');
  std::string_view rest = lead == std::string_view::npos ? std::string_view() : raw_path.substr(lead);
  std::string out = "/";
  for (char c : rest) {
    if (c == '\\') out += "%5C";
    else out += c;
  }
  if (out.back() != '/') out += '/';
  return out;
}

ResponseOutcome serve_static(const Runtime& rt, const VHost& vh, const DocRoot& root, const RequestHead& head, ClientConn& conn,
                             bool keep_alive, AccessCheck& access, int as_error, std::string_view extra) {
  const bool is_head = head.method == "HEAD";
  if (head.method == "OPTIONS") {
    std::string out = "HTTP/1.1 200 OK\r\nDate: " + http_date(time(nullptr)) + "\r\nServer: itk\r\n" +
                      std::string(kAllow) + "Content-Length: 0\r\n" +
                      (keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n") + "\r\n";
    apply_policy_headers(conn, out);
    return {conn_write_all(conn, out), 200, keep_alive};
  }
  if (head.method != "GET" && !is_head) return simple(conn, 405, keep_alive, false, kAllow);
  if (head.target.empty() || head.target[0] != '/') return simple(conn, 400, keep_alive, is_head);

  std::optional<std::string> path = decode_request_path(head.target);
  if (!path) return simple(conn, 400, keep_alive, is_head);
  if (!root.ok()) {
    // The DocumentRoot itself could not be opened by the tenant (logged by the worker): as for a file in it.
    int e = root.error;
    int status = e == ENOENT || e == ENOTDIR ? 404 : e == EACCES || e == EPERM || e == EXDEV ? 403 : 500;
    return simple(conn, status, keep_alive, is_head);
  }

  OpenResult file = open_beneath(root, *path, vh.directory_index);
  switch (file.outcome) {
    case OpenOutcome::bad_request:
      return simple(conn, 400, keep_alive, is_head);
    case OpenOutcome::not_found:
      return simple(conn, 404, keep_alive, is_head);
    case OpenOutcome::forbidden:
      return simple(conn, 403, keep_alive, is_head);
    case OpenOutcome::directory_redirect: {
      std::string_view target = head.target;
      std::string_view query = target_query(target);
      std::string_view raw_path = target.substr(0, target.size() - query.size());
      std::string location = "Location: " + directory_location(raw_path) + std::string(query) + "\r\n";
      return simple(conn, 301, keep_alive, is_head, location);
    }
    case OpenOutcome::file:
      break;
  }
  // A symlink or the DirectoryIndex may have led somewhere the path asked for does not show.
  AccessVerdict verdict = access.check_resolved(root, vh, file.fd.get(), *path);
  if (!verdict.allowed) {
    log(Level::info, "%s: 403, it resolves to a refused file: %s", path->c_str(), verdict.reason.c_str());
    return simple(conn, 403, keep_alive, is_head);
  }

  const uint64_t size = static_cast<uint64_t>(file.st.st_size);
  const time_t mtime = file.st.st_mtime;
  const std::string etag = make_etag(file.st);
  Preconditions pre{head.header("if-none-match"), head.header("if-modified-since"), head.header("if-range")};

  // An error document stands for an error: nothing a cache could validate or a client could ask part of.
  std::string common = "Date: " + http_date(time(nullptr)) + "\r\nServer: itk\r\n";
  if (!as_error) common += "Last-Modified: " + http_date(mtime) + "\r\nETag: " + etag + "\r\n";
  common += extra;
  const char* connection = keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";

  if (!as_error && not_modified(pre, etag, mtime)) {
    std::string out = "HTTP/1.1 304 Not Modified\r\n" + common + connection + "\r\n";
    apply_policy_headers(conn, out);
    return {conn_write_all(conn, out), 304, keep_alive};
  }

  int status = as_error ? as_error : 200;
  ByteRange range{0, size ? size - 1 : 0};
  uint64_t length = size;
  const std::string* range_header = as_error ? nullptr : head.header("range");
  if (range_header && if_range_allows(pre, etag, mtime)) {
    switch (parse_range(*range_header, size, range)) {
      case RangeResult::satisfiable:
        status = 206;
        length = range.last - range.first + 1;
        break;
      case RangeResult::unsatisfiable: {
        std::string extra = strprintf("Content-Range: bytes */%llu\r\n", static_cast<unsigned long long>(size));
        return simple(conn, 416, keep_alive, is_head, extra);
      }
      case RangeResult::none:
        break;
    }
  }

  std::string out = strprintf("HTTP/1.1 %d %s\r\n", status, status_text(status));
  out += common;
  out += "Content-Type: " + rt.mime.lookup(file.path) + "\r\n";
  out += strprintf("Content-Length: %llu\r\n", static_cast<unsigned long long>(length));
  if (status == 206)
    out += strprintf("Content-Range: bytes %llu-%llu/%llu\r\n", static_cast<unsigned long long>(range.first),
                     static_cast<unsigned long long>(range.last), static_cast<unsigned long long>(size));
  if (!as_error) out += "Accept-Ranges: bytes\r\n";
  out += connection;
  out += "\r\n";
  apply_policy_headers(conn, out);
  const bool body = !is_head && length > 0;
  if (!conn_write_all(conn, out, body)) return {false, status, false};
  if (body && !conn_send_file(conn, file.fd.get(), status == 206 ? range.first : 0, length)) return {false, status, false};
  return {true, status, keep_alive};
}

}  // namespace itk

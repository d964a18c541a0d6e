// Static responses: method rules, path decoding, openat2 beneath the root, validators, ranges, sendfile.
#include "http/static_handler.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "http/client_conn.h"
#include "http/compression.h"
#include "http/encoder.h"
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

// How the body of a compressible file goes out.
struct Encoding {
  Coding coding = Coding::identity;
  OpenResult precompressed;  // a `.br` or `.gz` beside the file; no fd: compressed as it is read
};

// Precompressed variants first, in the client's order (sending one costs what sending the file does), then
// on the fly, which needs chunked framing (HTTP/1.1) and a body worth the coding's own bytes.
Encoding choose_encoding(const VHost& vh, const DocRoot& root, AccessCheck& access, const RequestHead& head,
                         const OpenResult& file) {
  Encoding e;
  AcceptedCodings accepted = negotiate_codings(head.header("accept-encoding"));
  for (Coding c : {accepted.first, accepted.second}) {
    if (c == Coding::identity) break;
    OpenResult variant = open_precompressed(root, file.path, coding_suffix(c), file.st);
    if (variant.outcome != OpenOutcome::file) continue;
    // A variant that is a symlink into a refused place is not served in the original's name.
    if (!access.check_opened(root, vh, variant, variant.path).allowed) continue;
    e.coding = c;
    e.precompressed = std::move(variant);
    return e;
  }
  const bool http11 = head.version_major == 1 && head.version_minor >= 1;
  if (http11 && static_cast<uint64_t>(file.st.st_size) >= vh.compress.min_size) e.coding = accepted.on_the_fly();
  return e;
}

// The file compressed as it is read, one chunk per piece: memory stays at one piece and the encoder's state
// whatever the file's size. A file that shrinks meanwhile just ends sooner (no length was promised).
bool send_encoded(ClientConn& conn, int fd, uint64_t size, Encoder& enc) {
  char piece[65536];
  std::string encoded, wire;
  uint64_t off = 0;
  for (bool done = false; !done;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof piece, size - off));
    ssize_t n = want ? pread(fd, piece, want, static_cast<off_t>(off)) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    off += static_cast<uint64_t>(n);
    done = n == 0 || off == size;
    encoded.clear();
    if (!enc.write(std::string_view(piece, static_cast<size_t>(n)), encoded,
                   done ? Encoder::Op::finish : Encoder::Op::more))
      return false;
    wire.clear();
    append_chunk(wire, encoded);
    if (done) wire += kLastChunk;
    if (!wire.empty() && !conn_write_all(conn, wire)) return false;
  }
  return true;
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
  AccessVerdict verdict = access.check_opened(root, vh, file, *path);
  if (!verdict.allowed) {
    log(Level::info, "%s: 403, it resolves to a refused file: %s", path->c_str(), verdict.reason.c_str());
    return simple(conn, 403, keep_alive, is_head);
  }

  const uint64_t size = static_cast<uint64_t>(file.st.st_size);
  const time_t mtime = file.st.st_mtime;
  const std::string& type = rt.mime.lookup(file.path);
  // An error document is never compressed: it is short, and its request may not be what the client asked.
  const bool compressible = !as_error && vh.compress.enabled && compressible_type(type, vh.compress.types);
  const std::string* range_header = as_error ? nullptr : head.header("range");
  // A range is of the identity body: the coded one has other bytes at every offset.
  Encoding enc = compressible && !range_header ? choose_encoding(vh, root, access, head, file) : Encoding{};
  std::optional<Encoder> encoder;
  if (enc.coding != Coding::identity && !enc.precompressed.fd) {
    encoder.emplace(enc.coding, size);
    if (!encoder->ok()) {
      log(Level::warning, "%s: no memory for a %s encoder; sent uncompressed", path->c_str(),
          std::string(coding_name(enc.coding)).c_str());
      encoder.reset();
      enc.coding = Coding::identity;
    }
  }
  const std::string etag = encoded_etag(make_etag(file.st), enc.coding);
  Preconditions pre{head.header("if-none-match"), head.header("if-modified-since"), head.header("if-range")};

  // An error document stands for an error: nothing a cache could validate or a client could ask part of.
  std::string common = "Date: " + http_date(time(nullptr)) + "\r\nServer: itk\r\n";
  if (!as_error) common += "Last-Modified: " + http_date(mtime) + "\r\nETag: " + etag + "\r\n";
  // Every answer for a compressible file depends on Accept-Encoding, the identity ones too: a shared cache
  // must not hand a client the coding it did not ask for.
  if (compressible) common += "Vary: Accept-Encoding\r\n";
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
  out += "Content-Type: " + type + "\r\n";
  if (enc.coding != Coding::identity) out += "Content-Encoding: " + std::string(coding_name(enc.coding)) + "\r\n";
  if (enc.precompressed.fd) length = static_cast<uint64_t>(enc.precompressed.st.st_size);
  if (encoder)
    out += "Transfer-Encoding: chunked\r\n";
  else
    out += strprintf("Content-Length: %llu\r\n", static_cast<unsigned long long>(length));
  if (status == 206)
    out += strprintf("Content-Range: bytes %llu-%llu/%llu\r\n", static_cast<unsigned long long>(range.first),
                     static_cast<unsigned long long>(range.last), static_cast<unsigned long long>(size));
  // Ranges are offered on the identity body only, as nginx does once it compresses.
  if (!as_error && enc.coding == Coding::identity) out += "Accept-Ranges: bytes\r\n";
  out += connection;
  out += "\r\n";
  apply_policy_headers(conn, out);
  const bool body = !is_head && (length > 0 || encoder);
  if (body && !encoder) {
    const int from = enc.precompressed.fd ? enc.precompressed.fd.get() : file.fd.get();
    const uint64_t offset = !enc.precompressed.fd && status == 206 ? range.first : 0;
    if (!conn_send_head_and_file(conn, out, from, offset, length)) return {false, status, false};
    return {true, status, keep_alive};
  }
  if (!conn_write_all(conn, out, body)) return {false, status, false};
  if (!body) return {true, status, keep_alive};
  if (!send_encoded(conn, file.fd.get(), size, *encoder)) return {false, status, false};
  return {true, status, keep_alive};
}

}  // namespace itk

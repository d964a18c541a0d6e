// Request-head parsing: llhttp does the grammar; this file adds itk's limits and the checks
// llhttp leaves to the caller (bare LF, obs-fold, Host rules, versions).
#include "http/http_request.h"

#include <llhttp.h>

#include "http/http_chars.h"

#include <algorithm>
#include <cstring>

namespace itk {

struct HeadParser::Impl {
  llhttp_t parser;
  llhttp_settings_t settings;
  HeadParser* self = nullptr;
  size_t consumed = 0;        // bytes of the caller's buffer already fed to llhttp
  bool in_field = false;      // inside a header name: its pieces go to the same header
  size_t url_len = 0;
  size_t field_len = 0;       // name + value of the current header
  size_t host_count = 0;
  char prev = 0;              // last byte fed, for the bare-LF check
  char prev2 = 0;
  bool done = false;
};

namespace {

HeadParser::Impl* impl_of(llhttp_t* p) { return static_cast<HeadParser::Impl*>(p->data); }

int fail(HeadParser::Impl* im, int status, const char* why);

// A well-formed "HTTP/x.y" whose major version is not 1 (HTTP/2.0 sent as text, HTTP/3.0...). `data`
// holds the whole request line.
bool unsupported_version(std::string_view data) {
  size_t eol = data.find_first_of("\r\n");
  std::string_view line = data.substr(0, eol);
  size_t v = line.rfind(" HTTP/");
  if (v == std::string_view::npos || line.size() != v + 9) return false;
  char major = line[v + 6], dot = line[v + 7], minor = line[v + 8];
  return major >= '0' && major <= '9' && dot == '.' && minor >= '0' && minor <= '9' && major != '1';
}

}  // namespace

// Friend-free access: the callbacks reach the owning parser through Impl::self.
struct HeadParserAccess {
  static RequestHead& head(HeadParser* p) { return p->head_; }
  static const HeadLimits& limits(HeadParser* p) { return p->limits_; }
  static void set_error(HeadParser* p, int status, const char* why) {
    if (p->error_status_ == 0) {
      p->error_status_ = status;
      p->error_reason_ = why;
    }
  }
};

namespace {

int fail(HeadParser::Impl* im, int status, const char* why) {
  HeadParserAccess::set_error(im->self, status, why);
  return HPE_USER;
}

int on_method(llhttp_t* p, const char* at, size_t len) {
  auto* im = impl_of(p);
  auto& h = HeadParserAccess::head(im->self);
  h.method.append(at, len);
  if (h.method.size() > 32) return fail(im, 501, "method token too long");
  return 0;
}

// Limits are checked when llhttp completes a piece (the target, a header name, a value), never on the
// partial pieces a read boundary hands the callbacks: else a bad byte llhttp refuses later in the same
// piece would be answered 400 when the request arrives whole and 414/431 when trickled. Until then the
// piece is bounded by the head's total limit, which parse() enforces by feeding llhttp no more.
int on_url(llhttp_t* p, const char* at, size_t len) {
  auto* im = impl_of(p);
  im->url_len += len;
  HeadParserAccess::head(im->self).target.append(at, len);
  return 0;
}

int on_url_complete(llhttp_t* p) {
  auto* im = impl_of(p);
  // LimitRequestLine bounds the whole line as Apache counts it: method SP target SP version.
  if (im->url_len + HeadParserAccess::head(im->self).method.size() + 10 > HeadParserAccess::limits(im->self).request_line)
    return fail(im, 414, "request line over LimitRequestLine");
  return 0;
}

int on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* im = impl_of(p);
  auto& h = HeadParserAccess::head(im->self);
  if (!im->in_field) {
    h.headers.emplace_back();
    im->in_field = true;
    im->field_len = 0;
  }
  im->field_len += len;
  auto& name = h.headers.back().first;
  for (size_t i = 0; i < len; i++) {
    // llhttp lets "Name : value" through; RFC 9112 §5.1 requires a 400 (it has been used to smuggle).
    if (!is_tchar(at[i])) return fail(im, 400, "invalid character in header name");
    name.push_back(ascii_lower(at[i]));
  }
  return 0;
}

int on_header_field_complete(llhttp_t* p) {
  auto* im = impl_of(p);
  auto& h = HeadParserAccess::head(im->self);
  const auto& lim = HeadParserAccess::limits(im->self);
  im->in_field = false;
  // llhttp lets ": value" through; scripts would get HTTP_=value, and a front end may read it otherwise.
  if (h.headers.empty() || h.headers.back().first.empty()) return fail(im, 400, "empty header name");
  if (h.headers.size() > lim.fields) return fail(im, 431, "more header fields than LimitRequestFields");
  if (im->field_len > lim.field_size) return fail(im, 431, "header field over LimitRequestFieldSize");
  return 0;
}

int on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* im = impl_of(p);
  auto& h = HeadParserAccess::head(im->self);
  if (h.headers.empty()) return fail(im, 400, "empty header name");
  im->field_len += len;
  h.headers.back().second.append(at, len);
  return 0;
}

int on_header_value_complete(llhttp_t* p) {
  auto* im = impl_of(p);
  if (im->field_len > HeadParserAccess::limits(im->self).field_size)
    return fail(im, 431, "header field over LimitRequestFieldSize");
  return 0;
}

// "http://host[:port]/path" -> host and "/path". RFC 9112 §3.2.2: the authority wins over the Host
// header, which takes its value (as Apache's strict mode does), so that a script's HTTP_HOST names the
// vhost the request was routed to and never a name the client slipped into Host.
bool split_absolute_form(RequestHead& h) {
  std::string_view t = h.target;
  size_t scheme_end;
  if (t.size() >= 7 && iequals(t.substr(0, 7), "http://")) scheme_end = 7;
  else if (t.size() >= 8 && iequals(t.substr(0, 8), "https://")) scheme_end = 8;
  else return true;
  std::string_view rest = t.substr(scheme_end);
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!path.empty() && path[0] == '?') path.insert(0, "/");
  h.host = std::string(authority);
  h.target = std::move(path);
  bool replaced = false;
  for (auto& [name, value] : h.headers)
    if (name == "host") {
      value = h.host;
      replaced = true;
    }
  if (!replaced) h.headers.emplace_back("host", h.host);
  return true;
}

int on_headers_complete(llhttp_t* p) {
  auto* im = impl_of(p);
  auto& h = HeadParserAccess::head(im->self);
  h.version_major = p->http_major;
  h.version_minor = p->http_minor;
  for (auto& [name, value] : h.headers) {
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  }
  if (h.version_major == 0) return fail(im, 400, "request line without HTTP version (HTTP/0.9)");
  if (h.version_major != 1) return fail(im, 505, "HTTP version not supported");
  // RFC 9112 §6.3: a request whose Transfer-Encoding does not end in chunked has no knowable length.
  if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED))
    return fail(im, 400, "Transfer-Encoding without final chunked");
  // llhttp sets no flag for an empty Transfer-Encoding, which a front end may still count as one.
  for (const auto& [name, value] : h.headers)
    if (name == "transfer-encoding" && (value.empty() || !(p->flags & F_CHUNKED)))
      return fail(im, 400, "empty Transfer-Encoding");
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  if (p->flags & F_CONTENT_LENGTH) h.content_length = p->content_length;
  if (h.content_length && HeadParserAccess::limits(im->self).body != 0 &&
      *h.content_length > HeadParserAccess::limits(im->self).body)
    return fail(im, 413, "Content-Length over LimitRequestBody");

  size_t hosts = 0;
  std::string host_header;
  for (const auto& [name, value] : h.headers) {
    if (name == "host") {
      hosts++;
      host_header = value;
    } else if (name == "expect") {
      if (iequals(value, "100-continue")) h.expect_continue = true;
      else return fail(im, 417, "unsupported Expect");
    }
  }
  if (hosts > 1) return fail(im, 400, "more than one Host header");
  if (h.version_minor >= 1 && hosts == 0) return fail(im, 400, "HTTP/1.1 request without Host");
  h.host = host_header;
  if (!split_absolute_form(h)) return fail(im, 400, "bad absolute-form request target");
  im->done = true;
  // Stop at the end of the head: the body (if any) belongs to the worker, not to this parser.
  return HPE_PAUSED;
}

}  // namespace

namespace {
// A store the optimiser cannot drop, unlike a memset before free.
void scrub(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); i++) p[i] = 0;
}
}  // namespace

void HeadParser::wipe() {
  scrub(head_.method);
  scrub(head_.target);
  scrub(head_.host);
  for (auto& [name, value] : head_.headers) {
    scrub(name);
    scrub(value);
  }
  head_ = RequestHead{};
}

const std::string* RequestHead::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return &v;
  return nullptr;
}

HeadParser::HeadParser(const HeadLimits& limits) : limits_(limits) {}

// llhttp refuses a version as soon as it sees it; whether that is 505 (a well-formed version other than
// 1.x) or 400 depends on what follows it on the line, so the answer waits for the line's end: else it
// would depend on where the client's bytes were split.
HeadState HeadParser::judge_version(std::string_view data) {
  if (data.find_first_of("\r\n") == std::string_view::npos && data.size() <= limits_.total) {
    version_pending_ = true;
    return HeadState::incomplete;
  }
  version_pending_ = false;
  if (data.size() > limits_.total && data.find_first_of("\r\n") == std::string_view::npos) {
    error_status_ = 431;
    error_reason_ = "request head over 64 KiB";
  } else {
    error_status_ = unsupported_version(data) ? 505 : 400;
    error_reason_ = error_status_ == 505 ? "HTTP version not supported" : "Invalid HTTP version";
  }
  return HeadState::error;
}
HeadParser::~HeadParser() = default;

HeadState HeadParser::parse(std::string_view data) {
  if (error_status_) return HeadState::error;
  if (head_length_) return HeadState::complete;
  if (version_pending_) return judge_version(data);
  if (!impl_) {
    impl_ = std::make_unique<Impl>();
    impl_->self = this;
    llhttp_settings_init(&impl_->settings);
    impl_->settings.on_method = on_method;
    impl_->settings.on_url = on_url;
    impl_->settings.on_url_complete = on_url_complete;
    impl_->settings.on_header_field = on_header_field;
    impl_->settings.on_header_field_complete = on_header_field_complete;
    impl_->settings.on_header_value = on_header_value;
    impl_->settings.on_header_value_complete = on_header_value_complete;
    impl_->settings.on_headers_complete = on_headers_complete;
    llhttp_init(&impl_->parser, HTTP_REQUEST, &impl_->settings);
    impl_->parser.data = impl_.get();
  }
  Impl* im = impl_.get();
  if (data.size() <= im->consumed) return HeadState::incomplete;
  if (im->consumed == 0) {
    // Hold the bytes back until the method token is complete, so that an unknown but well-formed
    // method is told apart from garbage (501 vs 400) however the bytes are split into reads.
    size_t i = 0;
    while (i < data.size() && (data[i] == '\r' || data[i] == '\n')) i++;  // RFC 9112 §2.2 leading CRLFs
    size_t start = i;
    for (; i < data.size() && data[i] != ' '; i++) {
      if (!is_tchar(data[i])) {
        error_status_ = 400;
        error_reason_ = "malformed request line";
        return HeadState::error;
      }
      if (i - start > 32) {
        error_status_ = 501;
        error_reason_ = "method token too long";
        return HeadState::error;
      }
    }
    if (i == data.size()) return HeadState::incomplete;
    if (i == start) {
      error_status_ = 400;
      error_reason_ = "malformed request line";
      return HeadState::error;
    }
  }
  // llhttp never sees more than the head's limit and one byte: a problem further on is not looked for,
  // whether the bytes come whole or trickled (the head is too long either way: 431).
  const size_t visible = std::min(data.size(), limits_.total + 1);
  if (visible <= im->consumed) return HeadState::incomplete;
  std::string_view fresh = data.substr(im->consumed, visible - im->consumed);

  llhttp_errno_t err = llhttp_execute(&im->parser, fresh.data(), fresh.size());
  // Only the bytes llhttp took are scanned: up to the end of the head, or up to where it failed, so that
  // the answer to a bad request never depends on how its bytes were split into reads.
  size_t fed = fresh.size();
  if (err != HPE_OK) {
    const char* pos = llhttp_get_error_pos(&im->parser);
    if (pos >= fresh.data() && pos <= fresh.data() + fresh.size()) fed = static_cast<size_t>(pos - fresh.data());
  }
  // Bare CR, bare LF and obs-fold are refused whatever llhttp thinks of them: each has been a
  // request-smuggling vector between front ends and back ends (llhttp 8 ends a head at "\r\n\rX",
  // the pattern of CVE-2023-30589). A CR is checked when the byte after it comes, in this read or the next.
  for (size_t i = 0; i < fed; i++) {
    char c = fresh[i];
    if (im->prev == '\r' && c != '\n') {
      error_status_ = 400;
      error_reason_ = "bare CR in request head";
      return HeadState::error;
    }
    if (c == '\n' && im->prev != '\r') {
      error_status_ = 400;
      error_reason_ = "bare LF in request head";
      return HeadState::error;
    }
    if ((c == ' ' || c == '\t') && im->prev == '\n' && im->prev2 == '\r') {
      error_status_ = 400;
      error_reason_ = "obs-fold (header line continuation)";
      return HeadState::error;
    }
    im->prev2 = im->prev;
    im->prev = c;
  }
  if (err == HPE_PAUSED && im->done) {
    head_length_ = im->consumed + fed;
    // What llhttp took as the end of the head must be an empty line, CRLF CRLF, and nothing else.
    if (head_length_ < 4 || data.substr(head_length_ - 4, 4) != "\r\n\r\n") {
      head_length_ = 0;
      error_status_ = 400;
      error_reason_ = "request head not ended by CRLF CRLF";
      return HeadState::error;
    }
    if (head_length_ > limits_.total) {
      error_status_ = 431;
      error_reason_ = "request head over 64 KiB";
      return HeadState::error;
    }
    return HeadState::complete;
  }
  if (err != HPE_OK) {
    if (error_status_ == 0) {
      switch (err) {
        case HPE_INVALID_METHOD: error_status_ = 501; break;
        case HPE_INVALID_VERSION: return judge_version(data);
        default: error_status_ = 400; break;
      }
      error_reason_ = llhttp_get_error_reason(&im->parser) ? llhttp_get_error_reason(&im->parser) : llhttp_errno_name(err);
    }
    return HeadState::error;
  }
  im->consumed = visible;
  if (im->consumed > limits_.total) {
    error_status_ = 431;
    error_reason_ = "request head over 64 KiB";
    return HeadState::error;
  }
  return HeadState::incomplete;
}

}  // namespace itk

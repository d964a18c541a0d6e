// Content-coding decisions for static files and script output; no I/O and no codec state here.
#include "http/compression.h"

#include "http/http_chars.h"

namespace itk {
namespace {

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 §12.4.2 qvalue in thousandths: "0", "0.5", "1.000"; -1 when malformed.
int parse_qvalue(std::string_view v) {
  if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return -1;
  int q = (v[0] - '0') * 1000;
  if (v.size() == 1) return q;
  if (v[1] != '.') return -1;
  int scale = 100;
  for (char c : v.substr(2)) {
    if (c < '0' || c > '9') return -1;
    q += (c - '0') * scale;
    scale /= 10;
  }
  return q <= 1000 ? q : -1;
}

}  // namespace

std::string_view coding_name(Coding c) {
  switch (c) {
    case Coding::gzip: return "gzip";
    case Coding::br: return "br";
    case Coding::identity: break;
  }
  return {};
}

std::string_view coding_suffix(Coding c) {
  switch (c) {
    case Coding::gzip: return ".gz";
    case Coding::br: return ".br";
    case Coding::identity: break;
  }
  return {};
}

AcceptedCodings negotiate_codings(const std::string* accept_encoding) {
  AcceptedCodings out;
  if (!accept_encoding) return out;
  // -1: not named. A coding named twice keeps its last q-value.
  int q_gzip = -1, q_br = -1, q_any = -1;
  std::string_view list = *accept_encoding;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view element = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    size_t semi = element.find(';');
    std::string_view name = trim_ows(element.substr(0, semi));
    int q = 1000;
    std::string_view params = semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1);
    while (!params.empty()) {
      size_t next = params.find(';');
      std::string_view param = trim_ows(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') q = parse_qvalue(param.substr(2));
    }
    if (q < 0) continue;  // a malformed q-value: the element says nothing we can trust
    if (iequals(name, "gzip") || iequals(name, "x-gzip")) q_gzip = q;
    else if (iequals(name, "br")) q_br = q;
    else if (name == "*") q_any = q;
  }
  if (q_gzip < 0) q_gzip = q_any;
  if (q_br < 0) q_br = q_any;
  if (q_br > 0 && q_br >= q_gzip) {
    out.first = Coding::br;
    if (q_gzip > 0) out.second = Coding::gzip;
  } else if (q_gzip > 0) {
    out.first = Coding::gzip;
    if (q_br > 0) out.second = Coding::br;
  }
  return out;
}

bool compressible_type(std::string_view content_type, const std::vector<std::string>& types) {
  std::string_view media = trim_ows(content_type.substr(0, content_type.find(';')));
  size_t slash = media.find('/');
  if (slash == std::string_view::npos || iequals(media, "text/event-stream")) return false;
  for (const std::string& t : types) {
    if (t.size() > 2 && t.compare(t.size() - 2, 2, "/*") == 0) {
      if (iequals(media.substr(0, slash + 1), std::string_view(t).substr(0, t.size() - 1))) return true;
    } else if (iequals(media, t)) {
      return true;
    }
  }
  return false;
}

bool precompressed_usable(const struct stat& original, const struct stat& variant) {
  if (!S_ISREG(variant.st_mode)) return false;
  if (variant.st_mtim.tv_sec != original.st_mtim.tv_sec) return variant.st_mtim.tv_sec > original.st_mtim.tv_sec;
  return variant.st_mtim.tv_nsec >= original.st_mtim.tv_nsec;
}

std::string encoded_etag(std::string_view etag, Coding c) {
  if (c == Coding::identity) return std::string(etag);
  if (etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  if (etag.size() < 2 || etag.front() != '"' || etag.back() != '"') return {};
  std::string out = "W/";
  out += etag.substr(0, etag.size() - 1);
  out += '-';
  out += coding_name(c);
  out += '"';
  return out;
}

}  // namespace itk

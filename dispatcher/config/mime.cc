// Media types by file extension: a built-in table of common web types, overridable by a mime.types(5)
// file. Built once per config load, so a request only does one hash lookup.
#include "config/mime.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {

namespace {

// Textual types whose bytes we serve as UTF-8, as nginx's `charset utf-8` does for its charset_types:
// without a charset parameter browsers guess (windows-1252 for text/plain), which garbles UTF-8 pages.
bool wants_charset(std::string_view type) {
  static constexpr std::string_view kTypes[] = {
      "text/html",     "text/css",     "text/plain", "text/javascript", "application/javascript",
      "text/markdown", "text/csv",     "text/xml",   "text/calendar",   "text/vtt",
  };
  for (std::string_view t : kTypes) {
    if (type == t) return true;
  }
  return false;
}

// A type given without parameters gets "; charset=utf-8" when it is textual; one that already
// carries parameters (e.g. "text/plain;charset=iso-8859-1" in a mime.types file) is kept as written.
std::string with_charset(std::string type) {
  if (type.find(';') == std::string::npos && wants_charset(type)) type += "; charset=utf-8";
  return type;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

}  // namespace

MimeTypes::MimeTypes() {
  static constexpr struct {
    const char* ext;
    const char* type;
  } kBuiltin[] = {
      {"html", "text/html"},
      {"htm", "text/html"},
      {"css", "text/css"},
      {"js", "text/javascript"},  // RFC 9239
      {"mjs", "text/javascript"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"webmanifest", "application/manifest+json"},
      {"txt", "text/plain"},
      {"md", "text/markdown"},
      {"csv", "text/csv"},
      {"xml", "application/xml"},  // RFC 7303; the XML declaration carries the encoding
      {"xhtml", "application/xhtml+xml"},
      {"rss", "application/rss+xml"},
      {"atom", "application/atom+xml"},
      {"ics", "text/calendar"},
      {"vtt", "text/vtt"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"bmp", "image/bmp"},
      {"tif", "image/tiff"},
      {"tiff", "image/tiff"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"pdf", "application/pdf"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tar", "application/x-tar"},
      {"xz", "application/x-xz"},
      {"bz2", "application/x-bzip2"},
      {"zst", "application/zstd"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      {"ogv", "video/ogg"},
      {"mp3", "audio/mpeg"},
      {"ogg", "audio/ogg"},
      {"oga", "audio/ogg"},
      {"opus", "audio/ogg"},
      {"wav", "audio/wav"},
      {"flac", "audio/flac"},
      {"wasm", "application/wasm"},
  };
  for (const auto& e : kBuiltin) by_ext_[e.ext] = with_charset(e.type);
}

void MimeTypes::load_file(const std::string& path) {
  unique_fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno != ENOENT) {
      log(Level::warning, "cannot open media types file %s: %m; using the built-in table only", path.c_str());
    }
    return;
  }
  // The file is read whole (Debian's is ~60 KiB); the cap keeps a wrong path (a device, a huge file)
  // from eating the master's memory.
  constexpr size_t kMaxSize = 4 << 20;
  std::string text;
  char buf[16384];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      log(Level::warning, "cannot read media types file %s: %m; using the built-in table only", path.c_str());
      return;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxSize) {
      log(Level::warning, "media types file %s is larger than %zu bytes; ignoring it (is the path right?)",
          path.c_str(), kMaxSize);
      return;
    }
  }

  std::string_view rest(text);
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    // mime.types(5): "type ext ext ...", '#' starts a comment.
    line = line.substr(0, line.find('#'));
    std::string type;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_space(line[i])) ++i;
      size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      if (start == i) break;
      std::string_view tok = line.substr(start, i - start);
      if (type.empty()) {
        size_t semi = tok.find(';');
        std::string_view media = tok.substr(0, semi);
        std::string_view params = semi == std::string_view::npos ? std::string_view() : tok.substr(semi);
        // A line whose first word is no "type/subtype" is not ours to guess about.
        size_t slash = media.find('/');
        if (slash == 0 || slash == std::string_view::npos || slash + 1 == media.size()) break;
        type = with_charset(lower(media) + std::string(params));
        continue;
      }
      if (tok.front() == '.') tok.remove_prefix(1);
      if (!tok.empty()) by_ext_[lower(tok)] = type;
    }
  }
}

const std::string& MimeTypes::lookup(std::string_view filename) const {
  size_t slash = filename.rfind('/');
  std::string_view base = slash == std::string_view::npos ? filename : filename.substr(slash + 1);
  size_t dot = base.rfind('.');
  // No dot, a dotfile (".htaccess": the dot starts the name) or a trailing dot: no extension.
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == base.size()) return default_;
  auto it = by_ext_.find(lower(base.substr(dot + 1)));
  return it == by_ext_.end() ? default_ : it->second;
}

}  // namespace itk

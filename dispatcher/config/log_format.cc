// LogFormat parsing: every directive is checked at load, so a worker never meets an unknown one.
#include "config/log_format.h"

#include <algorithm>
#include <cctype>

#include "sys/log.h"

namespace itk {
namespace {

using Kind = LogItem::Kind;

// The directives without an argument.
bool plain_kind(char c, Kind& out) {
  switch (c) {
    case 'h': case 'a': out = Kind::client_ip; return true;
    case 'l': out = Kind::ident; return true;
    case 'u': out = Kind::user; return true;
    case 't': out = Kind::time; return true;
    case 'r': out = Kind::request_line; return true;
    case 's': out = Kind::status; return true;
    case 'b': out = Kind::body_bytes_clf; return true;
    case 'B': out = Kind::body_bytes; return true;
    case 'D': out = Kind::duration_us; return true;
    case 'T': out = Kind::duration_s; return true;
    case 'v': out = Kind::server_name; return true;
    case 'V': out = Kind::host; return true;
    case 'p': out = Kind::local_port; return true;
    case 'P': out = Kind::pid; return true;
    case 'I': out = Kind::bytes_in; return true;
    case 'O': out = Kind::bytes_out; return true;
    default: return false;
  }
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string parse_log_format(std::string_view text, LogFormat& out) {
  if (text == "combined") text = kCombinedLogFormat;
  else if (text == "common") text = kCommonLogFormat;
  LogFormat f;
  f.source = std::string(text);
  auto literal = [&f](std::string_view s) {
    if (f.items.empty() || f.items.back().kind != Kind::literal) f.items.push_back({Kind::literal, {}});
    f.items.back().text.append(s);
  };
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    if (static_cast<unsigned char>(c) < 32 || c == 127) return "contains a control character";
    if (c != '%') {
      literal(text.substr(i, 1));
      i++;
      continue;
    }
    size_t start = i++;
    if (i >= text.size()) return "ends with a lone `%`";
    if (text[i] == '%') {
      literal("%");
      i++;
      continue;
    }
    std::string arg;
    bool has_arg = false;
    if (text[i] == '{') {
      size_t close = text.find('}', i);
      if (close == std::string_view::npos) return strprintf("`%.*s`: no closing `}`", static_cast<int>(text.size() - start), text.data() + start);
      arg = std::string(text.substr(i + 1, close - i - 1));
      has_arg = true;
      i = close + 1;
    }
    // `%>s` and `%<s`: itk answers each request once, so the first and the final status are the same.
    if (i < text.size() && (text[i] == '>' || text[i] == '<') && !has_arg) i++;
    if (i >= text.size()) return strprintf("`%.*s` lacks its directive letter", static_cast<int>(text.size() - start), text.data() + start);
    char d = text[i++];
    std::string shown(text.substr(start, i - start));
    if (has_arg) {
      if (d == 'i' || d == 'o') {
        if (arg.empty() || !std::all_of(arg.begin(), arg.end(), is_token_char))
          return strprintf("`%s`: `%s` is not a header name", shown.c_str(), arg.c_str());
        f.items.push_back({d == 'i' ? Kind::request_header : Kind::response_header, lower(arg)});
        continue;
      }
      if (d == 't') {
        if (arg.rfind("begin:", 0) == 0 || arg.rfind("end:", 0) == 0 || arg == "sec" || arg == "msec" || arg == "usec")
          return strprintf("`%s`: only a strftime format is supported in %%{...}t", shown.c_str());
        f.items.push_back({Kind::time, arg});
        continue;
      }
      return strprintf("`%s`: itk does not support this directive with an argument (supported: %%{Name}i, "
                       "%%{Name}o, %%{format}t)", shown.c_str());
    }
    Kind k;
    if (!plain_kind(d, k))
      return strprintf("`%s` is not a supported directive (supported: %%h %%a %%l %%u %%t %%r %%s %%>s %%b %%B %%D "
                       "%%T %%v %%V %%p %%P %%I %%O %%{Name}i %%{Name}o %%%%)", shown.c_str());
    if ((text[start + 1] == '>' || text[start + 1] == '<') && k != Kind::status)
      return strprintf("`%s`: `<` and `>` only go with %%s", shown.c_str());
    f.items.push_back({k, {}});
  }
  out = std::move(f);
  return "";
}

}  // namespace itk

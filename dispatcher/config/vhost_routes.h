// A vhost's routing rules taken over from Apache (Redirect, RedirectHTTPS, FallbackResource, NoExec,
// ErrorDocument, Header): their values checked at load, and the matching the worker does per request.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace itk {
struct DocRoot;  // http/doc_root.h
}

namespace itk {

// ---- values, checked at load: each returns "" or what is wrong, phrased to follow "KEY: " ----

// A local path as a request would name it: one word starting with '/', no query, no `..`. `out` is its
// decoded, normalised form ("//" and "/./" collapsed), as decode_request_path gives a request's path.
std::string parse_local_path(std::string_view value, std::string& out);
// `disabled` leaves `out` empty.
std::string parse_fallback_resource(std::string_view value, std::string& out);
// Prefixes without their trailing '/' ("/" stays); several may share a line.
std::string parse_no_exec(std::string_view value, std::vector<std::string>& out);
// `[status] /path URL`; status permanent, temp, seeother, gone or 301, 302, 303, 307, 308, 410 (no URL).
std::string parse_redirect(std::string_view value, RedirectRule& out);
// `code /path`, code 400..599, a local path (maybe with a query).
std::string parse_error_document(std::string_view value, ErrorDocument& out);
// `Name "value"` or `Name value`; Apache's `always set` / `set` in front is accepted and dropped.
std::string parse_header_line(std::string_view value, HeaderLine& out);

// ---- matching, on decoded paths (decode_request_path) ----

// Whether `path` is `prefix` or below it, on segment boundaries ("/a" holds "/a/b", not "/ab").
// A prefix ending in '/' holds only what is below it.
bool path_under(std::string_view path, std::string_view prefix);
// The first rule whose path holds `path`, or nullptr.
const RedirectRule* match_redirect(const std::vector<RedirectRule>& rules, std::string_view path);
// mod_alias's target: the rule's URL, the rest of `path` after the rule's path (percent-encoded) appended,
// then `query` (with its '?') unless the URL has a query of its own.
std::string redirect_location(const RedirectRule& rule, std::string_view path, std::string_view query);
// Let's Encrypt's HTTP-01 challenges must stay reachable over plain HTTP.
bool is_acme_challenge(std::string_view path);
// https://<host><target>, for a plain request to `host` (normalised: no port, which is plain HTTP's) and its
// origin-form `target`; without a host, `fallback_host` (the vhost's ServerName).
std::string https_location(std::string_view host, std::string_view fallback_host, std::string_view target);
// Percent-encodes what a path segment may not hold raw; '/' is kept.
std::string encode_path(std::string_view decoded);

// Sets `lines` on a complete response head (status line, fields, empty line): a field of the same name
// already there is removed first.
void apply_headers(std::string& head, const std::vector<HeaderLine>& lines);

// Whether the script at `script_path` (decoded, beneath `root`) must not run or be sent: it lies under a
// NoExec prefix, by the path the client named or by where that path really leads (symbolic links followed
// beneath the root), compared with each prefix both as written and as it resolves. When where it leads
// cannot be found out, it is blocked.
bool no_exec_blocks(const DocRoot& root, const std::string& script_path, const std::vector<std::string>& prefixes);

}  // namespace itk

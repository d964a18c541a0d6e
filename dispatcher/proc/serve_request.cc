// The route of one request through a vhost's rules, in Apache's order: mod_alias redirects before the
// file system is asked, then the script or file the path names, mod_dir's FallbackResource for a path that
// does not exist, and ErrorDocument for the error pages itk itself writes.
#include "proc/serve_request.h"

#include <cerrno>
#include <optional>

#include "config/vhost_routes.h"
#include "config/vhost_table.h"
#include "http/access_rules.h"
#include "http/response_policy.h"
#include "http/static_file.h"
#include "script/cgi.h"
#include "script/fastcgi.h"
#include "sys/log.h"
#include "sys/unique_fd.h"

namespace itk {
namespace {

constexpr int kMaxLocalRedirects = 10;

struct Request {
  const Runtime& rt;
  Scoreboard& sb;
  const VHost& vh;
  const DocRoot& root;
  ClientConn& io;
  std::string& buffered;
  bool in_leaf;
  AccessCheck& access;
};

// A path the vhost's access rules refuse (dotfiles, Deny, .htaccess): 403, nothing opened or run.
ResponseOutcome refuse(Request& r, const RequestHead& head, const std::string& path, const AccessVerdict& v,
                       bool keep_alive) {
  log(Level::info, "%s %s: 403, refused by %s", head.method.c_str(), path.c_str(), v.reason.c_str());
  // The body was not read: the connection cannot carry another request.
  return answer_error(r.io, 403, keep_alive && !head.has_body(), head.method == "HEAD");
}

// What the access rules say of `path` as asked, and of the script `m` it names where that really is (a
// symlink, a DirectoryIndex entry). The DocumentRoot failing to open is answered by the static path.
AccessVerdict access_of(Request& r, const std::string& path, const ScriptMatch* m) {
  if (!r.root.ok()) return {};
  AccessVerdict v = r.access.check_request(r.root, r.vh, path);
  if (v.allowed && m && m->kind == ScriptMatch::script)
    v = r.access.check_resolved_path(r.root, r.vh, m->script_name, path);
  return v;
}

ScriptMatch find_script(const Request& r, const std::string& path) {
  const VHost& vh = r.vh;
  if (vh.cgi_extensions.empty() && vh.handlers.empty() && vh.fastcgi.apps.empty()) return {};
  return match_script(r.root, path, vh);
}

CgiOutcome run_script(Request& r, const RequestHead& head, const ScriptMatch& m, bool keep_alive) {
  if (m.fastcgi)
    return run_fastcgi(r.rt, r.vh, head, m, r.io, r.buffered, keep_alive,
                       r.sb.fastcgi_activity[r.rt.state(r.vh).slot % kMaxVHostSlots]);
  return run_cgi(r.rt, r.vh, head, m, r.io, r.buffered, keep_alive, r.in_leaf);
}

// RFC 3875 §6.2.2 and Apache's ErrorDocument: the server serves another path itself, as a GET without
// the original body.
void make_internal_get(RequestHead& h, const std::string& target) {
  if (h.method != "HEAD") h.method = "GET";
  h.target = target;
  h.content_length.reset();
  h.chunked = false;
  h.expect_continue = false;
  std::erase_if(h.headers, [](const auto& f) {
    return f.first == "content-length" || f.first == "transfer-encoding" || f.first == "content-type";
  });
}

// FallbackResource applies only where nothing exists: an existing directory, or a file with extra path
// after it, keeps its own answer (as with Apache's mod_dir).
bool is_missing(const DocRoot& root, const std::string& path) {
  if (!root.ok()) return false;
  int fd = open_path_beneath(root, path);
  if (fd >= 0) {
    unique_fd owner(fd);
    return false;
  }
  return fd == -ENOENT;
}

// RedirectHTTPS, then the first Redirect that matches; nothing when neither applies.
std::optional<ResponseOutcome> redirected(Request& r, const RequestHead& head, const std::string& path,
                                          bool keep_alive) {
  const bool is_head = head.method == "HEAD";
  keep_alive = keep_alive && !head.has_body();
  // Behind a balancer that ended TLS itself the request did come over https.
  const bool plain = !r.io.tls && !r.io.addrs.tls_at_balancer;
  if (r.vh.redirect_https && plain && !is_acme_challenge(path)) {
    std::string to = https_location(VHostTable::normalize_host(head.host), r.vh.server_name, head.target);
    return answer_error(r.io, 301, keep_alive, is_head, "Location: " + to + "\r\n");
  }
  const RedirectRule* rule = match_redirect(r.vh.redirects, path);
  if (!rule) return std::nullopt;
  std::string extra;
  if (rule->status != 410) extra = "Location: " + redirect_location(*rule, path, target_query(head.target)) + "\r\n";
  return answer_error(r.io, rule->status, keep_alive, is_head, extra);
}

// Everything before the ErrorDocument: a script's local redirect (Location: /path without Status) is
// followed as a GET of that path.
ResponseOutcome route(Request& r, const RequestHead& head, bool keep_alive) {
  RequestHead current = head;
  for (int hop = 0; hop < kMaxLocalRedirects; hop++) {
    std::optional<std::string> path = decode_request_path(current.target);
    if (!path) break;  // the static answer is 400
    if (hop == 0)
      if (std::optional<ResponseOutcome> out = redirected(r, current, *path, keep_alive)) return *out;
    // Apache's order too: mod_alias answers before access control, which comes before any file is opened.
    if (AccessVerdict v = access_of(r, *path, nullptr); !v.allowed) return refuse(r, current, *path, v, keep_alive);
    ScriptMatch m = find_script(r, *path);
    if (m.kind == ScriptMatch::none && !r.vh.fallback_resource.empty() && is_missing(r.root, *path)) {
      // The fallback script answers for the original request (its REQUEST_URI and query, as WordPress
      // reads them); a fallback that is no script (a single-page app's index.html) is served as a file.
      m = find_script(r, r.vh.fallback_resource);
      if (AccessVerdict v = access_of(r, r.vh.fallback_resource, nullptr); !v.allowed)
        return refuse(r, current, r.vh.fallback_resource, v, keep_alive);
      if (m.kind != ScriptMatch::script) {
        current.target = encode_path(r.vh.fallback_resource);
        break;
      }
      path = r.vh.fallback_resource;
    }
    if (m.kind != ScriptMatch::script) break;
    if (AccessVerdict v = access_of(r, *path, &m); !v.allowed) return refuse(r, current, m.script_name, v, keep_alive);
    if (no_exec_blocks(r.root, m.script_name, r.vh.no_exec)) {
      log(Level::info, "%s lies under NoExec: neither run nor sent (403)", m.script_name.c_str());
      return answer_error(r.io, 403, keep_alive && !current.has_body(), current.method == "HEAD");
    }
    CgiOutcome o = run_script(r, current, m, keep_alive);
    if (o.local_redirect.empty()) return o.response;
    keep_alive = keep_alive && o.response.keep_alive;
    make_internal_get(current, o.local_redirect);
    if (hop == kMaxLocalRedirects - 1) {
      log(Level::err, "more than %d local redirects from scripts, starting at %s", kMaxLocalRedirects,
          head.target.c_str());
      return answer_error(r.io, 500, false, head.method == "HEAD");
    }
  }
  return serve_static(r.rt, r.vh, r.root, current, r.io, keep_alive && !current.has_body(), r.access);
}

// The ErrorDocument of the error held in `policy`, with that error's status; the built-in page when the
// document is missing or fails itself (then nothing of it was written).
ResponseOutcome serve_error_document(Request& r, const RequestHead& head, ResponsePolicy& policy) {
  const int status = policy.status;
  const bool keep_alive = policy.keep_alive;
  const std::string extra = policy.extra;
  const bool is_head = head.method == "HEAD";
  const ErrorDocument* doc = policy.document_for(status);
  policy.status = 0;
  policy.hold_every_error = true;
  if (doc) {
    RequestHead internal = head;
    make_internal_get(internal, doc->target);
    std::optional<std::string> path = decode_request_path(doc->target);
    ScriptMatch m = path ? find_script(r, *path) : ScriptMatch{};
    // The document is a request of its own to the access rules: one they refuse is not served.
    const bool refused = !path || !access_of(r, *path, &m).allowed;
    if (!refused && m.kind == ScriptMatch::script && !no_exec_blocks(r.root, m.script_name, r.vh.no_exec)) {
      std::string_view original = head.target;
      std::string_view query = target_query(original);
      m.request_uri = head.target;
      m.redirect_env = {{"REDIRECT_STATUS", std::to_string(status)},
                        {"REDIRECT_URL", std::string(original.substr(0, original.find('?')))},
                        {"REDIRECT_REQUEST_METHOD", head.method}};
      if (!query.empty()) m.redirect_env.emplace_back("REDIRECT_QUERY_STRING", std::string(query.substr(1)));
      m.default_status = status;
      CgiOutcome o = run_script(r, internal, m, keep_alive);
      if (policy.status == 0 && o.local_redirect.empty()) return o.response;
    } else if (!refused && m.kind == ScriptMatch::none) {
      ResponseOutcome out = serve_static(r.rt, r.vh, r.root, internal, r.io, keep_alive, r.access, status, extra);
      if (policy.status == 0) return out;
    }
    log(Level::warning, "ErrorDocument %d %s could not be served; the built-in page is sent", status,
        doc->target.c_str());
  }
  policy.hold_every_error = false;
  policy.documents = nullptr;
  policy.status = 0;
  return answer_error(r.io, status, keep_alive, is_head, extra);
}

}  // namespace

ResponseOutcome serve_request(const Runtime& rt, Scoreboard& sb, const VHost& vh, const DocRoot& root, const RequestHead& head,
                              ClientConn& io, std::string& buffered, bool keep_alive, bool in_leaf,
                              AccessCheck& access) {
  Request r{rt, sb, vh, root, io, buffered, in_leaf, access};
  ResponsePolicy policy;
  policy.headers = &vh.headers;
  policy.documents = &vh.error_documents;
  PolicyScope scope(io, policy);
  ResponseOutcome out = route(r, head, keep_alive);
  if (policy.status == 0) return out;
  return serve_error_document(r, head, policy);
}

}  // namespace itk

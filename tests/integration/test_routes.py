# Apache rules a site brings along, through itkd: FallbackResource (WordPress pretty permalinks and its
# REST API reaching index.php), Redirect, RedirectHTTPS with the ACME exception, ErrorDocument (static and
# script), Header, and NoExec against a hostile client's encodings and a tenant's symbolic links.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import test_tls as tls  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
# Uids of its own: whatever they leave running is killed by uid at the end, which must not reach the
# workers of tests running beside this one.
UID_WP, UID_ERR, UID_MOVE, UID_HTTPS = 2021, 2022, 2023, 2024
SH = "#!/bin/sh\n"
TEXT_HEAD = "printf 'Content-Type: text/plain\\n\\n'\n"
SOURCE = "SOURCE-MARKER-7f3a"   # in every planted script's text: its source must never reach a client
RAN = "EXECUTED-7f3a"           # what a planted script prints when it runs
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

FRONT_PHP = """<?php
header('Content-Type: text/plain');
header('X-Frame-Options: DENY');
header('X-Script-Header: php');
foreach (['REQUEST_URI', 'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'REQUEST_METHOD'] as $k)
    echo $k, '=', $_SERVER[$k] ?? '', "\\n";
echo 'body=', file_get_contents('php://input'), "\\n";
"""
FRONT_CGI = SH + TEXT_HEAD + 'echo "front=$REQUEST_URI"\n'
ERROR_CGI = SH + TEXT_HEAD + """\
for v in REDIRECT_STATUS REDIRECT_URL REDIRECT_QUERY_STRING REDIRECT_REQUEST_METHOD REQUEST_URI QUERY_STRING \
REQUEST_METHOD SCRIPT_NAME; do eval "echo $v=\\$$v"; done
"""


def planted_php(mark):
    return f"<?php\n// {SOURCE}\ntouch('{mark}');\necho '{RAN}';\n"


def planted_cgi(mark):
    return SH + f"# {SOURCE}\ntouch '{mark}'\n" + TEXT_HEAD + f"echo {RAN}\n"


def setup():
    if not os.access(PHP_CGI, os.X_OK):
        raise h.Skip("php-cgi not installed (package php-cgi)")
    tree = h.Tree(prefix="itk-routes-")
    tree.certs = {"default.test": tls.make_cert(tree, "default.test")}
    os.chmod(tree.path("tls"), 0o700)
    tree.write_server_conf(StartServers=2, User=h.ACCEPTOR_USER, FallbackResource="/front.cgi",
                           TLSCertificateFile=tree.certs["default.test"][0],
                           TLSCertificateKeyFile=tree.certs["default.test"][1])
    # Where a planted script would leave its trace if it ever ran: writable by the wp.test tenant.
    tree.marks = tree.path("marks")
    os.mkdir(tree.marks)
    os.chown(tree.marks, UID_WP, UID_WP)

    wp = tree.wp = h.make_tenant(tree, "wp", UID_WP, files={"static.txt": "plain static file\n"})
    tree.write(os.path.join(wp, "index.php"), FRONT_PHP, UID_WP)
    up = os.path.join(wp, "wp-content", "uploads")
    tree.write(os.path.join(up, "pic.png"), PNG, UID_WP)
    os.chown(os.path.join(wp, "wp-content"), UID_WP, UID_WP)
    tree.write(os.path.join(up, "evil.php"), planted_php(os.path.join(tree.marks, "php")), UID_WP)
    tree.write(os.path.join(up, "2026", "evil.php"), planted_php(os.path.join(tree.marks, "php2")), UID_WP)
    tree.write(os.path.join(up, "evil.cgi"), planted_cgi(os.path.join(tree.marks, "cgi")), UID_WP, mode=0o755)
    tree.write(os.path.join(up, "index.php"), planted_php(os.path.join(tree.marks, "index")), UID_WP)
    os.makedirs(os.path.join(wp, "emptydir"))
    os.chown(os.path.join(wp, "emptydir"), UID_WP, UID_WP)
    # The tenant's own links into the uploads directory: where a path leads is what counts.
    tree.symlink("wp-content/uploads", os.path.join(wp, "media"), UID_WP)
    tree.symlink("wp-content/uploads/evil.php", os.path.join(wp, "innocent.php"), UID_WP)
    tree.write_vhost("10-wp.conf", "wp.test", wp, UID_WP, **{
        "FastCGI": f".php {PHP_CGI}", "CGI": ".cgi", "FallbackResource": "/index.php",
        "DirectoryIndex": "index.php index.html", "NoExec": "/wp-content/uploads/",
        "Header": 'X-Frame-Options "SAMEORIGIN"'})

    err = tree.err = h.make_tenant(tree, "err", UID_ERR, files={"errors/404.html": "custom not found page\n"})
    tree.write(os.path.join(err, "front.cgi"), FRONT_CGI, UID_ERR, mode=0o755)
    tree.write(os.path.join(err, "noexec.cgi"), FRONT_CGI, UID_ERR, mode=0o644)
    tree.write(os.path.join(err, "bad.cgi"), SH + "echo no header block\n", UID_ERR, mode=0o755)
    tree.write(os.path.join(err, "loop.cgi"), SH + "printf 'Location: /loop.cgi\\n\\n'\n", UID_ERR, mode=0o755)
    tree.write(os.path.join(err, "errors", "403.cgi"), ERROR_CGI, UID_ERR, mode=0o755)
    tree.write(os.path.join(err, "errors", "405.cgi"), SH + "printf 'Status: 200 OK\\nContent-Type: text/plain\\n\\n"
               "405 handled\\n'\n", UID_ERR, mode=0o755)
    tree.write(os.path.join(err, "errors", "fail.cgi"), SH + "echo broken\n", UID_ERR, mode=0o755)
    tree.write_dropin("20-err.conf", "\n".join([
        "[vhost]", "ServerName = err.test", f"DocumentRoot = {err}", f"AssignUserID = #{UID_ERR} #{UID_ERR}",
        "CGI = .cgi", "FallbackResource = disabled",
        "ErrorDocument = 404 /errors/404.html", "ErrorDocument = 403 /errors/403.cgi?from=doc",
        "ErrorDocument = 405 /errors/405.cgi", "ErrorDocument = 502 /errors/missing.html",
        "ErrorDocument = 500 /errors/fail.cgi", 'Header = X-Err "yes"']) + "\n")

    move = tree.move = h.make_tenant(tree, "move", UID_MOVE)
    tree.write_dropin("30-move.conf", "\n".join([
        "[vhost]", "ServerName = move.test", f"DocumentRoot = {move}", f"AssignUserID = #{UID_MOVE} #{UID_MOVE}",
        "CGI = .cgi",
        "Redirect = 301 /.well-known/carddav /remote.php/dav/",
        "Redirect = /old https://example.org/new",
        "Redirect = seeother /form /thanks?fixed=1",
        "Redirect = 307 /t7 /n7", "Redirect = 308 /t8 /n8",
        "Redirect = permanent /perm /p", "Redirect = temp /tmp /t", "Redirect = gone /gone"]) + "\n")

    https = tree.https = h.make_tenant(tree, "https", UID_HTTPS,
                                       files={".well-known/acme-challenge/tok1": "acme token content\n"})
    tree.write(os.path.join(https, "front.cgi"), FRONT_CGI, UID_HTTPS, mode=0o755)
    tree.write_vhost("40-https.conf", "https.test", https, UID_HTTPS, CGI=".cgi", RedirectHTTPS="yes")
    for uid in (UID_WP, UID_ERR, UID_MOVE, UID_HTTPS):
        h.cleanup_uid_at_exit(uid)
    d = tls.TlsDaemon(tree, name="itkd-routes")
    d.tree = tree
    return d.start()


def get(d, path, host, **kw):
    return h.fetch(d.http_port, path, host, **kw)


def values(resp):
    return h.key_values(resp.body)


# ---------------------------------------------------------------------------------------------------
# FallbackResource

def pretty_permalinks_reach_index_php(d):
    for path, query in (("/2026/12/06/hello/", "x=1&y=%20z"), ("/wp-json/wp/v2/posts", "per_page=2"),
                        ("/category/news", "")):
        target = path + ("?" + query if query else "")
        resp = get(d, target, "wp.test")
        h.expect_status(resp, 200, f"GET {target} on wp.test")
        v = values(resp)
        h.expect_eq(v.get("REQUEST_URI"), target, f"REQUEST_URI seen by index.php for {target}")
        h.expect_eq(v.get("QUERY_STRING"), query, f"QUERY_STRING seen by index.php for {target}")
        h.expect_eq(v.get("SCRIPT_NAME"), "/index.php", f"SCRIPT_NAME for {target}")
        h.expect_eq(v.get("SCRIPT_FILENAME"), os.path.join(d.tree.wp, "index.php"), f"SCRIPT_FILENAME for {target}")
    resp = get(d, "/wp-json/wp/v2/posts", "wp.test", method="POST", body=b'{"title":"t"}',
               headers={"Content-Type": "application/json", "Content-Length": "13"})
    h.expect_status(resp, 200, "POST /wp-json/wp/v2/posts")
    h.expect_eq(values(resp).get("REQUEST_METHOD"), "POST", "REQUEST_METHOD of a POST to the REST API")
    h.expect_eq(values(resp).get("body"), '{"title":"t"}', "the POST body reaching index.php")


def existing_files_and_directories_keep_their_answer(d):
    resp = get(d, "/static.txt", "wp.test")
    h.expect_status(resp, 200, "GET /static.txt on wp.test")
    h.expect_eq(resp.body, b"plain static file\n", "the static file's body")
    resp = get(d, "/", "wp.test")
    h.expect_eq(values(resp).get("SCRIPT_NAME"), "/index.php", "GET / runs index.php as DirectoryIndex")
    h.expect_eq(values(resp).get("REQUEST_URI"), "/", "REQUEST_URI of GET /")
    # An existing directory without an index is not missing: no fallback, as with Apache's mod_dir.
    h.expect_status(get(d, "/emptydir/", "wp.test"), 403, "GET /emptydir/ (a directory without index)")
    h.expect_status(get(d, "/static.txt/extra", "wp.test"), 404, "GET /static.txt/extra (path after a file)")


def missing_fallback_script_is_404(d):
    resp = get(d, "/nothing/here", "move.test")
    h.expect_status(resp, 404, "GET /nothing/here on move.test, whose FallbackResource /front.cgi is missing")


def fallback_from_server_and_disabled(d):
    resp = tls.https_get(d, "https.test", path="/some/page?q=1")[0]
    h.expect_status(resp, 200, "GET /some/page over TLS on https.test (the [server] FallbackResource)")
    h.expect_eq(values(resp).get("front"), "/some/page?q=1", "REQUEST_URI seen by the [server]'s fallback")
    resp = get(d, "/nothing", "err.test")
    h.expect_status(resp, 404, "GET /nothing on err.test (FallbackResource = disabled)")
    h.check(b"front=" not in resp.body, f"err.test's fallback is disabled, yet front.cgi ran\n{resp.describe()}")


# ---------------------------------------------------------------------------------------------------
# Redirect and RedirectHTTPS

def redirects_with_each_status(d):
    cases = [
        ("/.well-known/carddav", 301, "/remote.php/dav/"),
        ("/.well-known/carddav/sub?x=1", 301, "/remote.php/dav//sub?x=1"),
        ("/old", 302, "https://example.org/new"),
        ("/old/a%20b/c?q=1&r=2", 302, "https://example.org/new/a%20b/c?q=1&r=2"),
        ("/%6fld//x/./y", 302, "https://example.org/new/x/y"),
        ("/form?x=1", 303, "/thanks?fixed=1"),
        ("/t7/deep?k=v", 307, "/n7/deep?k=v"),
        ("/t8", 308, "/n8"),
        ("/perm/", 301, "/p/"),
        ("/tmp/a", 302, "/t/a"),
    ]
    for target, status, location in cases:
        resp = get(d, target, "move.test")
        h.expect_status(resp, status, f"GET {target} on move.test")
        h.expect_header(resp, "Location", location, f"GET {target} on move.test")
    resp = get(d, "/gone/x", "move.test")
    h.expect_status(resp, 410, "GET /gone/x (Redirect gone)")
    h.expect_eq(resp.header("Location"), None, "Location of a 410")
    for target in ("/older", "/formal", "/t77"):
        h.expect_status(get(d, target, "move.test"), 404, f"GET {target}: not on a segment boundary of a rule")


def redirect_https_on_plain_http_only(d):
    resp = get(d, "/a/b?c=d", "https.test:8080")
    h.expect_status(resp, 301, "plain GET /a/b?c=d on https.test")
    h.expect_header(resp, "Location", "https://https.test/a/b?c=d", "plain GET /a/b?c=d on https.test")
    resp = get(d, "/.well-known/acme-challenge/tok1", "https.test")
    h.expect_status(resp, 200, "plain GET of an ACME challenge on https.test")
    h.expect_eq(resp.body, b"acme token content\n", "the ACME challenge file")
    resp = get(d, "/.well-known/acme-challenge/nope", "https.test")
    h.expect_status(resp, 200, "plain GET of a missing ACME challenge: not redirected, the fallback answers")
    h.expect_eq(values(resp).get("front"), "/.well-known/acme-challenge/nope", "what answered the missing challenge")
    resp = tls.https_get(d, "https.test", path="/.well-known/acme-challenge/tok1")[0]
    h.expect_status(resp, 200, "the ACME file over TLS")
    resp = tls.https_get(d, "https.test", path="/a/b?c=d")[0]
    h.expect_status(resp, 200, "GET /a/b over TLS on https.test: not redirected again")


# ---------------------------------------------------------------------------------------------------
# ErrorDocument

def error_document_static_keeps_the_status(d):
    resp = get(d, "/nothing", "err.test")
    h.expect_status(resp, 404, "GET /nothing on err.test")
    h.expect_eq(resp.body, b"custom not found page\n", "the ErrorDocument 404 body")
    h.expect_header(resp, "X-Err", "yes", "the Header line on the ErrorDocument")
    resp = get(d, "/nothing", "err.test", method="HEAD")
    h.expect_status(resp, 404, "HEAD /nothing on err.test")
    h.expect_eq(resp.header("Content-Length"), str(len(b"custom not found page\n")), "Content-Length of HEAD")
    # On a kept-alive connection the next request is served after the document.
    with h.Conn(d.http_port) as c:
        c.request("GET", "/nothing", "err.test")
        first = c.read_response()
        c.request("GET", "/errors/404.html", "err.test", [("Connection", "close")])
        second = c.read_response()
    h.expect_status(first, 404, "first request on a kept-alive connection")
    h.expect_status(second, 200, "second request after an ErrorDocument on the same connection")


def error_document_script_is_told_the_original(d):
    resp = get(d, "/noexec.cgi?q=1", "err.test")
    h.expect_status(resp, 403, "GET /noexec.cgi (not executable) on err.test: the script keeps 403")
    v = values(resp)
    for key, want in (("REDIRECT_STATUS", "403"), ("REDIRECT_URL", "/noexec.cgi"), ("REDIRECT_QUERY_STRING", "q=1"),
                      ("REDIRECT_REQUEST_METHOD", "GET"), ("REQUEST_URI", "/noexec.cgi?q=1"),
                      ("QUERY_STRING", "from=doc"), ("SCRIPT_NAME", "/errors/403.cgi")):
        h.expect_eq(v.get(key), want, f"{key} seen by the ErrorDocument script")
    h.expect_header(resp, "X-Err", "yes", "the Header line on a script's ErrorDocument")
    resp = get(d, "/errors/404.html", "err.test", method="POST", body=b"x", headers={"Content-Length": "1"})
    h.expect_status(resp, 200, "POST to a static file (405) whose ErrorDocument script sets Status: 200")
    h.expect_eq(resp.body, b"405 handled\n", "the 405 document's body")


def failing_error_document_gives_the_builtin_page(d):
    resp = get(d, "/bad.cgi", "err.test")
    h.expect_status(resp, 502, "GET /bad.cgi (no header block) whose ErrorDocument is missing")
    h.expect_body_contains(resp, "502 Bad Gateway", "the built-in 502 page")
    h.expect_header(resp, "X-Err", "yes", "the Header line on a built-in page")
    resp = get(d, "/loop.cgi", "err.test")
    h.expect_status(resp, 500, "GET /loop.cgi (endless local redirects) whose ErrorDocument script fails")
    h.expect_body_contains(resp, "500 Internal Server Error", "the built-in 500 page")


# ---------------------------------------------------------------------------------------------------
# Header

def header_on_static_and_script_responses(d):
    resp = get(d, "/static.txt", "wp.test")
    h.expect_eq(resp.header_all("X-Frame-Options"), ["SAMEORIGIN"], "X-Frame-Options on a static file")
    resp = get(d, "/2026/x/", "wp.test")
    h.expect_eq(resp.header_all("X-Frame-Options"), ["SAMEORIGIN"], "X-Frame-Options replacing the script's DENY")
    h.expect_header(resp, "X-Script-Header", "php", "a header of the script's own")
    resp = get(d, "/wp-content/uploads/evil.php", "wp.test")
    h.expect_eq(resp.header_all("X-Frame-Options"), ["SAMEORIGIN"], "X-Frame-Options on an error page")


# ---------------------------------------------------------------------------------------------------
# NoExec

def expect_not_run_nor_sent(d, resp, what, statuses):
    h.expect_status(resp, statuses, what)
    h.check(SOURCE.encode() not in resp.body, f"{what}: the script's source was sent\n{resp.describe()}")
    h.check(RAN.encode() not in resp.body, f"{what}: the script ran\n{resp.describe()}")


def planted_scripts_neither_run_nor_sent(d):
    for target in ("/wp-content/uploads/evil.php", "/wp-content/uploads/2026/evil.php",
                   "/wp-content/uploads/evil.cgi", "/wp-content/uploads/evil.php/extra/path",
                   "/wp-content/uploads/", "/wp-content/uploads/index.php?x=1",
                   "/wp-content/%75ploads/evil.php", "/wp-content/uploads/%65vil.php", "/%77p-content/uploads/evil.cgi",
                   "//wp-content//uploads//evil.php", "/wp-content/./uploads/./evil.php", "/./wp-content/uploads/evil.cgi",
                   "/media/evil.php", "/media/2026/evil.php", "/innocent.php", "/media/evil.cgi/x"):
        for method in ("GET", "POST", "HEAD"):
            body = b"a=1" if method == "POST" else b""
            headers = {"Content-Length": "3", "Content-Type": "application/x-www-form-urlencoded"} if body else {}
            resp = get(d, target, "wp.test", method=method, body=body, headers=headers)
            expect_not_run_nor_sent(d, resp, f"{method} {target} on wp.test", 403)
    # Paths the file system does not know (case, trailing dots) or refuses (..) never reach the planted file:
    # they are missing (so index.php answers) or refused.
    for target in ("/WP-CONTENT/uploads/evil.php", "/wp-content/Uploads/evil.php", "/wp-content/uploads/EVIL.php",
                   "/wp-content/uploads./evil.php", "/wp-content/uploads/evil.php.", "/wp-content/uploads/evil.php%20",
                   "/wp-content/x/../uploads/evil.php", "/wp-content/x/%2e%2e/uploads/evil.php",
                   "/wp-content%2fuploads/evil.php", "/wp-content/uploads/evil.php%00.png"):
        resp = get(d, target, "wp.test")
        expect_not_run_nor_sent(d, resp, f"GET {target} on wp.test", (200, 400, 403, 404))
        if resp.status == 200:
            h.expect_eq(values(resp).get("SCRIPT_NAME"), "/index.php", f"GET {target}: what answered")
    left = sorted(os.listdir(d.tree.marks))
    h.check(not left, f"a planted script ran: it left {left} in {d.tree.marks}")


def images_under_no_exec_are_served(d):
    for target in ("/wp-content/uploads/pic.png", "/media/pic.png", "/wp-content/%75ploads/pic.png"):
        resp = get(d, target, "wp.test")
        h.expect_status(resp, 200, f"GET {target} on wp.test")
        h.expect_eq(resp.body, PNG, f"the image's bytes for {target}")
        h.expect_eq(resp.header("Content-Type"), "image/png", f"Content-Type for {target}")
    resp = get(d, "/wp-content/uploads/missing.php", "wp.test")
    h.expect_status(resp, 200, "GET of a missing .php under NoExec: index.php (outside NoExec) answers")
    h.expect_eq(values(resp).get("SCRIPT_NAME"), "/index.php", "what answered a missing file under NoExec")


SCENARIOS = [
    pretty_permalinks_reach_index_php,
    existing_files_and_directories_keep_their_answer,
    missing_fallback_script_is_404,
    fallback_from_server_and_disabled,
    redirects_with_each_status,
    redirect_https_on_plain_http_only,
    error_document_static_keeps_the_status,
    error_document_script_is_told_the_original,
    failing_error_document_gives_the_builtin_page,
    header_on_static_and_script_responses,
    planted_scripts_neither_run_nor_sent,
    images_under_no_exec_are_served,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

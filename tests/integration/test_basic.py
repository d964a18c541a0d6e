# Static serving through itkd: vhost selection by Host, response headers, conditional and range
# requests, directories, methods, readiness notifications and the process tree.

import email.utils
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

RANGE_BODY = b"0123456789" * 10  # 100 bytes, so any slice is easy to verify


def setup():
    tree = h.two_tenant_tree(
        a_files={
            "plain.txt": "plain text\n",
            "blob.itkunknown": b"\x00\x01binary",
            "range.txt": RANGE_BODY,
            "dir/index.html": "<p>dir index</p>\n",
            "noindex/file.txt": "not an index\n",
            "back\\slash/index.html": "backslash\n",
        },
        # Aliases on a.test and the default on b.test, so that neither can pass by falling back.
        a_keys={"ServerAlias": "www.a.test *.wild.test"},
        b_keys={"Default": "yes"})
    d = h.Daemon(tree)
    d.tree_root_a = tree.root_a
    return d.start()


def ready_and_status(d):
    st = d.wait_status(lambda s: s["vhosts"] == 2 and s["busy"] + s["idle"] == 2, timeout=5)
    h.check(st is not None, f"expected a STATUS with 'vhosts: 2' and 2 acceptors (busy + idle, StartServers "
                            f"= 2) after READY=1, got {d.notify.statuses()}")


def process_tree(d):
    h.expect_eq(h.comm_of(d.pid), "itkd", f"comm of the master (pid {d.pid})")
    acceptors = h.wait_until(lambda: len(d.acceptors()) == 2 and d.acceptors(), 5)
    h.check(acceptors, f"expected 2 itk-acceptor children of the master (StartServers = 2), "
                       f"got {d.acceptors()}; group: {[(p, h.comm_of(p)) for p in h.group_members(d.pid)]}")


def get_index_with_standard_headers(d):
    resp = h.fetch(d.port, "/", "a.test")
    h.expect_status(resp, 200, "GET / on a.test")
    h.expect_body_contains(resp, "vhost a", "GET / on a.test")
    server = resp.header("Server") or ""
    h.check(server == "itk" or server.startswith("itk/"), f"expected 'Server: itk', got {server!r}")
    h.check(resp.header("Date") and email.utils.parsedate_to_datetime(resp.header("Date")),
            f"expected a Date header in IMF-fixdate form\n{resp.describe()}")
    h.expect_header(resp, "Content-Length", str(len(resp.body)), "GET / on a.test")
    h.expect_header(resp, "Content-Type", "text/html; charset=utf-8", "GET /index.html")
    h.expect_header(resp, "Accept-Ranges", "bytes", "GET / on a.test")
    mtime = os.stat(os.path.join(d.tree_root_a, "index.html")).st_mtime
    h.expect_header(resp, "Last-Modified", email.utils.formatdate(mtime, usegmt=True), "GET / on a.test")
    etag = resp.header("ETag") or ""
    h.check(re.fullmatch(r'"[^"]+"', etag), f"expected a strong quoted ETag, got {etag!r}")


def vhost_selected_by_host(d):
    for host, want in (("a.test", "vhost a"), ("b.test", "vhost b"), (f"B.TEST:{d.port}", "vhost b"),
                       (f"a.test:{d.port}", "vhost a")):
        resp = h.fetch(d.port, "/", host)
        h.expect_status(resp, 200, f"GET / with Host: {host}")
        h.expect_body_contains(resp, want, f"GET / with Host: {host}")


def server_alias_and_wildcard(d):
    for host in ("www.a.test", "x.wild.test", "WWW.Wild.Test"):
        resp = h.fetch(d.port, "/", host)
        h.expect_status(resp, 200, f"GET / with Host: {host}")
        h.expect_body_contains(resp, "vhost a", f"Host {host} (alias of a.test)")


def unknown_host_goes_to_default_vhost(d):
    resp = h.fetch(d.port, "/", "nowhere.test")
    h.expect_status(resp, 200, "GET / with an unknown Host")
    h.expect_body_contains(resp, "vhost b", "unknown Host must reach the 'Default = yes' vhost (b.test), "
                                            "not the first loaded one")


def head_matches_get(d):
    get = h.fetch(d.port, "/plain.txt", "a.test")
    head = h.fetch(d.port, "/plain.txt", "a.test", method="HEAD")
    h.expect_status(head, 200, "HEAD /plain.txt")
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified"):
        h.expect_eq(head.header(name), get.header(name), f"HEAD vs GET header {name}")
    # A HEAD answer carrying a body would show up as garbage in front of the next response.
    with h.Conn(d.port) as c:
        c.send(h.build_request("HEAD", "/plain.txt", "a.test") + h.build_request("GET", "/plain.txt", "a.test"))
        first = c.read_response(method="HEAD")
        second = c.read_response()
        h.expect_status(first, 200, "pipelined HEAD")
        h.expect_status(second, 200, "GET pipelined after HEAD")
        h.expect_eq(second.body, b"plain text\n", "body of the GET after a HEAD")


def content_type_by_extension(d):
    for path, want in (("/index.html", "text/html; charset=utf-8"),
                       ("/plain.txt", "text/plain; charset=utf-8"),
                       ("/blob.itkunknown", "application/octet-stream")):
        resp = h.fetch(d.port, path, "a.test")
        h.expect_status(resp, 200, f"GET {path}")
        h.expect_header(resp, "Content-Type", want, f"GET {path}")


def conditional_requests(d):
    full = h.fetch(d.port, "/plain.txt", "a.test")
    h.expect_status(full, 200, "GET /plain.txt")
    etag, lm = full.header("ETag"), full.header("Last-Modified")
    h.check(etag and lm, f"expected ETag and Last-Modified\n{full.describe()}")
    resp = h.fetch(d.port, "/plain.txt", "a.test", headers={"If-None-Match": etag})
    h.expect_status(resp, 304, f"If-None-Match: {etag}")
    h.expect_eq(resp.body, b"", "body of a 304")
    resp = h.fetch(d.port, "/plain.txt", "a.test", headers={"If-Modified-Since": lm})
    h.expect_status(resp, 304, f"If-Modified-Since: {lm}")
    resp = h.fetch(d.port, "/plain.txt", "a.test", headers={"If-None-Match": '"no-such-etag"'})
    h.expect_status(resp, 200, "If-None-Match with a different ETag")
    resp = h.fetch(d.port, "/plain.txt", "a.test", headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
    h.expect_status(resp, 200, "If-Modified-Since long before the file's mtime")


def byte_ranges(d):
    size = len(RANGE_BODY)
    for spec, first, last in (("bytes=10-19", 10, 19), ("bytes=90-", 90, 99), ("bytes=-5", 95, 99),
                              ("bytes=95-500", 95, 99)):
        resp = h.fetch(d.port, "/range.txt", "a.test", headers={"Range": spec})
        h.expect_status(resp, 206, f"Range: {spec}")
        h.expect_header(resp, "Content-Range", f"bytes {first}-{last}/{size}", f"Range: {spec}")
        h.expect_eq(resp.body, RANGE_BODY[first:last + 1], f"body for Range: {spec}")
    resp = h.fetch(d.port, "/range.txt", "a.test", headers={"Range": "bytes=200-300"})
    h.expect_status(resp, 416, "Range: bytes=200-300 on a 100-byte file")
    h.expect_header(resp, "Content-Range", f"bytes */{size}", "unsatisfiable range")
    resp = h.fetch(d.port, "/range.txt", "a.test", headers={"Range": "bytes=0-1,5-6"})
    h.expect_status(resp, 200, "several ranges are answered with the whole file")
    h.expect_eq(resp.body, RANGE_BODY, "body for several ranges")


def directory_redirect_and_index(d):
    for target, want in (("/dir", "/dir/"), ("/dir?x=1&y=2", "/dir/?x=1&y=2")):
        resp = h.fetch(d.port, target, "a.test")
        h.expect_status(resp, 301, f"GET {target}")
        loc = urllib.parse.urlsplit(resp.header("Location") or "")
        got = loc.path + (f"?{loc.query}" if loc.query else "")
        h.expect_eq(got, want, f"Location of the redirect for {target}")
    # The Location is never a URL of another host: "//dir/" is one (protocol-relative), and browsers read
    # "/\\dir/" the same way.
    for target, want in (("//dir", "/dir/"), ("///dir", "/dir/"), ("/back\\slash", "/back%5Cslash/")):
        resp = h.fetch(d.port, target, "a.test")
        h.expect_status(resp, 301, f"GET {target}")
        h.expect_eq(resp.header("Location"), want, f"Location of the redirect for {target}")
    resp = h.fetch(d.port, "/dir/", "a.test")
    h.expect_status(resp, 200, "GET /dir/")
    h.expect_body_contains(resp, "dir index", "GET /dir/ serves dir/index.html")
    resp = h.fetch(d.port, "/noindex/", "a.test")
    h.expect_status(resp, 403, "GET /noindex/ (a directory without index.html)")


def missing_file_is_404(d):
    resp = h.fetch(d.port, "/no-such-file.html", "a.test")
    h.expect_status(resp, 404, "GET /no-such-file.html")


def methods(d):
    resp = h.fetch(d.port, "/", "a.test", method="OPTIONS")
    h.expect_status(resp, 200, "OPTIONS /")
    h.expect_header(resp, "Allow", "GET, HEAD, OPTIONS", "OPTIONS /")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        resp = h.fetch(d.port, "/index.html", "a.test", method=method, headers={"Content-Length": "0"})
        h.expect_status(resp, 405, f"{method} /index.html")
        h.expect_header(resp, "Allow", "GET, HEAD, OPTIONS", f"{method} /index.html")
    resp = h.fetch(d.port, "/", "a.test", method="FOOBAR")
    h.expect_status(resp, 501, "an unknown method token FOOBAR")


def status_counts_served_requests(d):
    h.fetch(d.port, "/", "a.test")
    st = d.wait_status(lambda s: s["served"] > 0, timeout=5)
    h.check(st is not None, f"expected a STATUS with 'served: N' above 0 after requests were served, "
                            f"got {d.notify.statuses()[-5:]}")


SCENARIOS = [
    ready_and_status,
    process_tree,
    get_index_with_standard_headers,
    vhost_selected_by_host,
    server_alias_and_wildcard,
    unknown_host_goes_to_default_vhost,
    head_matches_get,
    content_type_by_extension,
    conditional_requests,
    byte_ranges,
    directory_redirect_and_index,
    missing_file_is_404,
    methods,
    status_counts_served_requests,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

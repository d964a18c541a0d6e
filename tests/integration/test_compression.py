# Content codings through itkd: gzip and br for static text files and script output, precompressed files
# beside the original, and what must stay identity (ranges, images, HTTP/1.0 on the fly, a script's own
# coding), over plain HTTP and TLS. Bodies are decoded with zlib and libbrotli and compared.

import ctypes
import ctypes.util
import gzip
import os
import re
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import test_tls as tls  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"


def _text(lines, seed):
    """Source-like text that compresses as JavaScript does, not to nothing."""
    x, out = seed, []
    for i in range(lines):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(f"function f{x % 997}_{i}(a, b) {{ return a * {x % 31} + b; }} // {x % 10007}\n")
    return "".join(out).encode()


APP_JS = _text(1500, 1)          # ~100 KiB
STYLE_CSS = b"".join(b".c%d { color: #%06x; margin: %dpx; }\n" % (i, i * 4099 % 0xFFFFFF, i % 40) for i in range(800))
PAGE_HTML = b"<!doctype html>\n<title>page</title>\n" + b"<p>paragraph of text, again and again</p>\n" * 300
TINY_JS = b"var tiny = 1;\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
LIB_JS = _text(200, 2)
LIB_JS_PRE = b"/* the precompressed variant */\n" + LIB_JS
OLD_JS = _text(200, 3)
BR_JS = _text(200, 4)
BR_JS_PRE = b"/* the precompressed brotli variant */\n" + BR_JS
CGI_LINES = 400  # ~ 20 KiB of output

SCRIPTS = {
    "text.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain; charset=utf-8\\n\\n'\n"
                f"i=0; while [ $i -lt {CGI_LINES} ]; do echo \"line $i of the script's text output\"; i=$((i+1)); done\n",
    "sized.cgi": "#!/bin/sh\nprintf 'Content-Type: application/json\\nContent-Length: 2000\\nETag: \"v1\"\\n\\n'\n"
                 "head -c 2000 /dev/zero | tr '\\0' 'x'\n",
    "tiny.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok\\n'\n",
    "image.cgi": "#!/bin/sh\nprintf 'Content-Type: image/png\\n\\n'\nhead -c 4000 /dev/zero\n",
    # A script that compresses its own output: its bytes must go out untouched.
    "own.cgi": "#!/usr/bin/python3\nimport gzip, sys\n"
               "body = gzip.compress(b'compressed by the script itself\\n' * 50)\n"
               "sys.stdout.buffer.write(b'Content-Type: text/plain\\nContent-Encoding: gzip\\n\\n' + body)\n",
    # Prints a little, pauses, then the rest: the head must not wait for the end.
    "slow.cgi": "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho first line\nsleep 2\n"
                "i=0; while [ $i -lt 100 ]; do echo \"later line $i\"; i=$((i+1)); done\n",
}
PHP_SCRIPT = "<?php header('Content-Type: text/html; charset=utf-8'); for ($i = 0; $i < 500; $i++) " \
             "echo \"<p>row $i from php</p>\\n\";\n"
PHP_BODY = b"".join(b"<p>row %d from php</p>\n" % i for i in range(500))
CGI_TEXT = b"".join(b"line %d of the script's text output\n" % i for i in range(CGI_LINES))


# ---------------------------------------------------------------------------------------------------
# Codecs

def _lib(name):
    path = ctypes.util.find_library(name)
    if not path:
        raise h.Skip(f"lib{name} not found (install libbrotli1)")
    return ctypes.CDLL(path)


def brotli_decode(data, limit=16 << 20):
    dec = _lib("brotlidec")
    out = ctypes.create_string_buffer(limit)
    size = ctypes.c_size_t(limit)
    ok = dec.BrotliDecoderDecompress(ctypes.c_size_t(len(data)), data, ctypes.byref(size), out)
    h.check(ok == 1, f"brotli: the body does not decode ({len(data)} bytes: {data[:40]!r})")
    return out.raw[:size.value]


def brotli_encode(data):
    enc = _lib("brotlienc")
    limit = len(data) + 1024
    out = ctypes.create_string_buffer(limit)
    size = ctypes.c_size_t(limit)
    # quality 11, window 22, generic mode: what `brotli -k` makes for a brotli_static file.
    h.check(enc.BrotliEncoderCompress(11, 22, 0, ctypes.c_size_t(len(data)), data, ctypes.byref(size), out) == 1,
            "brotli: encoding the precompressed file failed")
    return out.raw[:size.value]


def decoded(resp):
    coding = (resp.header("Content-Encoding") or "").lower()
    if coding == "gzip":
        try:
            return zlib.decompress(resp.body, 16 + 15)
        except zlib.error as e:
            raise h.Fail(f"gzip: the body does not decode: {e}\n{resp.describe()}") from None
    if coding == "br":
        return brotli_decode(resp.body)
    h.check(coding == "", f"unexpected Content-Encoding {coding!r}\n{resp.describe()}")
    return resp.body


def expect_coded(resp, coding, original, what):
    h.expect_status(resp, 200, what)
    h.expect_header(resp, "Content-Encoding", coding, what)
    h.expect_header(resp, "Vary", "Accept-Encoding", what)
    h.check(resp.header("Accept-Ranges") is None, f"{what}: a coded body offers no ranges\n{resp.describe()}")
    etag = resp.header("ETag") or ""
    h.check(re.fullmatch(r'W/"[^"]+-' + coding + '"', etag), f"{what}: expected a weak ETag ending -{coding}, "
                                                            f"got {etag!r}")
    body = decoded(resp)
    h.check(body == original, f"{what}: decoded body differs from the original ({len(body)} vs {len(original)} "
                              f"bytes)")
    h.check(len(resp.body) < len(original), f"{what}: {len(resp.body)} coded bytes for {len(original)}")


def expect_identity(resp, original, what, vary=True, status=200):
    h.expect_status(resp, status, what)
    h.check(resp.header("Content-Encoding") is None, f"{what}: expected no Content-Encoding\n{resp.describe()}")
    h.expect_header(resp, "Vary", "Accept-Encoding" if vary else None, what)
    if original is not None:
        h.check(resp.body == original, f"{what}: body differs from the file ({len(resp.body)} vs {len(original)})")


def ae(value):
    return [("Accept-Encoding", value)]


# ---------------------------------------------------------------------------------------------------
# Fixture: a.test with files and scripts (compression on by default), b.test with Compress = off;
# an https listener too.

def setup():
    tree = h.Tree(prefix="itk-gzip-")
    cert, key = tls.make_cert(tree, "a.test", "ec")
    os.chmod(tree.path("tls"), 0o700)
    tree.write_server_conf(StartServers=2, User=h.ACCEPTOR_USER, TLSCertificateFile=cert, TLSCertificateKeyFile=key)
    files = {"js/app.js": APP_JS, "style.css": STYLE_CSS, "page.html": PAGE_HTML, "tiny.js": TINY_JS,
             "logo.png": PNG, "lib.js": LIB_JS, "old.js": OLD_JS, "brjs/x.js": BR_JS}
    root_a = h.make_tenant(tree, "a", h.UID_A, files=files)
    root_b = h.make_tenant(tree, "b", h.UID_B, files={"js/app.js": APP_JS})
    tree.root_a, tree.root_b = root_a, root_b
    # A precompressed variant with other (valid) content, newer than its original: it must be what is sent.
    tree.write(os.path.join(root_a, "lib.js.gz"), gzip.compress(LIB_JS_PRE), h.UID_A)
    tree.write(os.path.join(root_a, "brjs/x.js.br"), brotli_encode(BR_JS_PRE), h.UID_A)
    tree.write(os.path.join(root_a, "old.js.gz"), gzip.compress(b"stale\n"), h.UID_A)
    now = time.time()
    os.utime(os.path.join(root_a, "lib.js"), (now - 100, now - 100))
    os.utime(os.path.join(root_a, "brjs/x.js"), (now - 100, now - 100))
    os.utime(os.path.join(root_a, "old.js.gz"), (now - 100, now - 100))  # older than old.js: ignored
    for name, text in SCRIPTS.items():
        tree.write(os.path.join(root_a, name), text, h.UID_A, mode=0o755)
    tree.write(os.path.join(root_a, "page.php"), PHP_SCRIPT, h.UID_A)
    a_keys = {"CGI": ".cgi"}
    if os.access(PHP_CGI, os.X_OK):
        a_keys["FastCGI"] = f".php {PHP_CGI}"
    tree.write_vhost("10-a.conf", "a.test", root_a, h.UID_A, **a_keys)
    tree.write_vhost("20-b.conf", "b.test", root_b, h.UID_B, Compress="off")
    return tls.TlsDaemon(tree, name="itkd-gzip").start()


def get(d, path, accept=None, host="a.test", version="HTTP/1.1"):
    return h.fetch(d.http_port, path, host, headers=ae(accept) if accept is not None else [], version=version)


# ---------------------------------------------------------------------------------------------------
# Static files

def static_text_files_in_gzip_and_br(d):
    for path, original in (("/js/app.js", APP_JS), ("/style.css", STYLE_CSS), ("/page.html", PAGE_HTML)):
        # On the fly, gzip whenever it is taken (brotli's CPU pays only when compressed ahead of time).
        for accept, coding in (("gzip", "gzip"), ("br", "br"), ("gzip, deflate, br", "gzip"), ("br;q=0.5, gzip", "gzip"),
                               ("br, gzip;q=0", "br")):
            resp = get(d, path, accept)
            what = f"GET {path} with Accept-Encoding: {accept}"
            expect_coded(resp, coding, original, what)
            h.check(resp.header("Content-Length") is None, f"{what}: no Content-Length on the fly\n{resp.describe()}")
            h.expect_header(resp, "Transfer-Encoding", "chunked", what)


def identity_without_accept_encoding_still_varies(d):
    for accept in (None, "", "gzip;q=0", "identity", "deflate", "gzip;q=0, br;q=0"):
        resp = get(d, "/js/app.js", accept)
        what = f"GET /js/app.js with Accept-Encoding: {accept!r}"
        expect_identity(resp, APP_JS, what)
        h.expect_header(resp, "Content-Length", str(len(APP_JS)), what)
        h.expect_header(resp, "Accept-Ranges", "bytes", what)
        h.check(re.fullmatch(r'"[^"]+"', resp.header("ETag") or ""), f"{what}: expected the strong ETag")


def precompressed_file_is_sent(d):
    resp = get(d, "/lib.js", "gzip")
    expect_coded(resp, "gzip", LIB_JS_PRE, "GET /lib.js (lib.js.gz beside it)")
    h.expect_header(resp, "Content-Length", str(os.path.getsize(os.path.join(d.tree.root_a, "lib.js.gz"))),
                    "GET /lib.js: the precompressed file's length")
    # br is preferred but there is no lib.js.br: the .gz file beats compressing on the fly.
    expect_coded(get(d, "/lib.js", "br, gzip"), "gzip", LIB_JS_PRE, "GET /lib.js with br, gzip")
    expect_coded(get(d, "/brjs/x.js", "gzip, br"), "br", BR_JS_PRE, "GET /brjs/x.js (x.js.br beside it)")
    # Only gzip accepted: x.js.br is not for this client, the file is compressed on the fly.
    expect_coded(get(d, "/brjs/x.js", "gzip"), "gzip", BR_JS, "GET /brjs/x.js with gzip only")
    # A precompressed file has a length, so an HTTP/1.0 client gets it too.
    resp = get(d, "/lib.js", "gzip", version="HTTP/1.0")
    expect_coded(resp, "gzip", LIB_JS_PRE, "GET /lib.js over HTTP/1.0")


def stale_precompressed_file_is_ignored(d):
    resp = get(d, "/old.js", "gzip")
    expect_coded(resp, "gzip", OLD_JS, "GET /old.js (old.js.gz is older than old.js)")
    h.expect_header(resp, "Transfer-Encoding", "chunked", "GET /old.js: compressed on the fly")


def range_request_gets_identity(d):
    for accept in ("gzip", "br"):
        resp = h.fetch(d.http_port, "/js/app.js", "a.test", headers=ae(accept) + [("Range", "bytes=100-199")])
        expect_identity(resp, APP_JS[100:200], f"Range with Accept-Encoding: {accept}", status=206)
        h.expect_header(resp, "Accept-Ranges", "bytes", "Range request")
        h.expect_header(resp, "Content-Range", f"bytes 100-199/{len(APP_JS)}", "Range request")
    # A precompressed variant is never sliced either.
    resp = h.fetch(d.http_port, "/lib.js", "a.test", headers=ae("gzip") + [("Range", "bytes=0-9")])
    expect_identity(resp, LIB_JS[:10], "Range on lib.js (lib.js.gz beside it)", status=206)


def head_is_answered_like_get(d):
    with h.Conn(d.http_port) as c:
        for path in ("/js/app.js", "/lib.js"):
            c.request("GET", path, "a.test", ae("gzip"))
            got = c.read_response()
            c.request("HEAD", path, "a.test", ae("gzip"))
            head = c.read_response(method="HEAD")
            for name in ("Content-Encoding", "ETag", "Vary", "Content-Type", "Content-Length", "Transfer-Encoding"):
                h.expect_eq(head.header(name), got.header(name), f"HEAD {path}: {name} as for GET")
        # The connection is still in step: the HEAD carried no body.
        c.request("GET", "/page.html", "a.test", ae("br"))
        expect_coded(c.read_response(), "br", PAGE_HTML, "GET after HEAD on the same connection")


def conditional_request_on_the_coded_variant(d):
    first = get(d, "/js/app.js", "gzip")
    etag = first.header("ETag")
    resp = h.fetch(d.http_port, "/js/app.js", "a.test", headers=ae("gzip") + [("If-None-Match", etag)])
    h.expect_status(resp, 304, f"If-None-Match: {etag}")
    h.expect_header(resp, "ETag", etag, "304 of the gzip variant")
    h.expect_header(resp, "Vary", "Accept-Encoding", "304 of the gzip variant")
    # The identity validator does not match the coded variant's (nor the other way round).
    plain = get(d, "/js/app.js").header("ETag")
    resp = h.fetch(d.http_port, "/js/app.js", "a.test", headers=ae("gzip") + [("If-None-Match", plain)])
    expect_coded(resp, "gzip", APP_JS, "gzip request with the identity ETag")


def images_and_small_files_are_not_compressed(d):
    resp = get(d, "/logo.png", "gzip, br")
    expect_identity(resp, PNG, "GET /logo.png", vary=False)
    resp = get(d, "/tiny.js", "gzip, br")
    expect_identity(resp, TINY_JS, "GET /tiny.js (below CompressMinSize)")


def http10_is_not_compressed_on_the_fly(d):
    resp = get(d, "/js/app.js", "gzip, br", version="HTTP/1.0")
    expect_identity(resp, APP_JS, "GET /js/app.js over HTTP/1.0")
    h.expect_header(resp, "Content-Length", str(len(APP_JS)), "HTTP/1.0")
    resp = get(d, "/text.cgi", "gzip", version="HTTP/1.0")
    expect_identity(resp, CGI_TEXT, "CGI over HTTP/1.0")


def compress_off_leaves_everything_alone(d):
    resp = get(d, "/js/app.js", "gzip, br", host="b.test")
    expect_identity(resp, APP_JS, "b.test (Compress = off)", vary=False)


# ---------------------------------------------------------------------------------------------------
# Script output

def cgi_text_output_is_compressed(d):
    for accept, coding in (("gzip", "gzip"), ("br, gzip", "gzip"), ("br", "br")):
        resp = get(d, "/text.cgi", accept)
        what = f"CGI text output with Accept-Encoding: {accept}"
        h.expect_status(resp, 200, what)
        h.expect_header(resp, "Content-Encoding", coding, what)
        h.expect_header(resp, "Vary", "Accept-Encoding", what)
        h.expect_header(resp, "Transfer-Encoding", "chunked", what)
        h.check(decoded(resp) == CGI_TEXT, f"{what}: decoded output differs")
        h.check(len(resp.body) < len(CGI_TEXT) / 3, f"{what}: {len(resp.body)} coded bytes")
    # A declared length is replaced by chunked framing; the script's validator becomes the variant's.
    resp = get(d, "/sized.cgi", "gzip")
    h.expect_header(resp, "Content-Encoding", "gzip", "CGI with Content-Length")
    h.check(resp.header("Content-Length") is None, f"CGI with Content-Length: no length once coded\n{resp.describe()}")
    h.expect_header(resp, "ETag", 'W/"v1-gzip"', "CGI with ETag")
    h.check(decoded(resp) == b"x" * 2000, "CGI with Content-Length: decoded output differs")


def script_coding_and_types_are_left_alone(d):
    resp = get(d, "/own.cgi", "gzip, br")
    h.expect_header(resp, "Content-Encoding", "gzip", "a script's own Content-Encoding")
    h.check(len(resp.header_all("Content-Encoding")) == 1, f"one Content-Encoding only\n{resp.describe()}")
    h.check(zlib.decompress(resp.body, 31) == b"compressed by the script itself\n" * 50,
            "a script's own gzip body must go out untouched")
    resp = get(d, "/image.cgi", "gzip, br")
    expect_identity(resp, b"\0" * 4000, "CGI image/png output", vary=False)
    resp = get(d, "/tiny.cgi", "gzip, br")
    expect_identity(resp, b"ok\n", "CGI output below CompressMinSize")


def paused_script_is_not_held_up(d):
    with h.Conn(d.http_port, timeout=10) as c:
        start = time.monotonic()
        c.request("GET", "/slow.cgi", "a.test", ae("gzip"))
        head = c.read_head(timeout=10)
        waited = time.monotonic() - start
        h.check(waited < 1.6, f"the head of a script that pauses after its first line came after {waited:.1f} s "
                              "(it sleeps 2 s): compression must not hold the response until the end")
        h.expect_header(head, "Content-Encoding", "gzip", "slow.cgi")
        body = c._read_chunked(time.monotonic() + 10)
        want = b"first line\n" + b"".join(b"later line %d\n" % i for i in range(100))
        h.check(zlib.decompress(body, 31) == want, "slow.cgi: decoded output differs")


def fastcgi_output_is_compressed(d):
    if not os.access(PHP_CGI, os.X_OK):
        raise h.Skip(f"{PHP_CGI} not installed")
    for accept, coding in (("gzip", "gzip"), ("br", "br")):
        resp = get(d, "/page.php", accept)
        what = f"PHP through FastCGI with Accept-Encoding: {accept}"
        h.expect_header(resp, "Content-Encoding", coding, what)
        h.check(decoded(resp) == PHP_BODY, f"{what}: decoded output differs\n{resp.describe()}")


def keep_alive_after_chunked_compressed_responses(d):
    with h.Conn(d.http_port) as c:
        port = c.client_port
        for path, accept, original in (("/js/app.js", "gzip", APP_JS), ("/text.cgi", "br", CGI_TEXT),
                                       ("/style.css", "br", STYLE_CSS), ("/text.cgi", "gzip", CGI_TEXT),
                                       ("/page.html", None, PAGE_HTML)):
            c.request("GET", path, "a.test", ae(accept) if accept else [])
            resp = c.read_response()
            h.check(resp is not None, f"GET {path} on a kept-alive connection: closed instead")
            h.check("close" not in resp.connection_tokens(), f"GET {path}: connection closed\n{resp.describe()}")
            h.check(decoded(resp) == original, f"GET {path} ({accept}) on a kept-alive connection: body differs")
        h.expect_eq(c.client_port, port, "the same connection throughout")


def over_tls_too(d):
    with tls.TlsConn(d.port, "a.test") as c:
        for path, accept, original in (("/js/app.js", "gzip", APP_JS), ("/js/app.js", "br", APP_JS),
                                       ("/lib.js", "gzip", LIB_JS_PRE), ("/text.cgi", "gzip", CGI_TEXT)):
            c.request("GET", path, "a.test", ae(accept))
            resp = c.read_response()
            h.expect_header(resp, "Content-Encoding", accept, f"HTTPS GET {path}")
            h.check(decoded(resp) == original, f"HTTPS GET {path} ({accept}): decoded body differs")


SCENARIOS = [
    static_text_files_in_gzip_and_br,
    identity_without_accept_encoding_still_varies,
    precompressed_file_is_sent,
    stale_precompressed_file_is_ignored,
    range_request_gets_identity,
    head_is_answered_like_get,
    conditional_request_on_the_coded_variant,
    images_and_small_files_are_not_compressed,
    http10_is_not_compressed_on_the_fly,
    compress_off_leaves_everything_alone,
    cgi_text_output_is_compressed,
    script_coding_and_types_are_left_alone,
    paused_script_is_not_held_up,
    fastcgi_output_is_compressed,
    keep_alive_after_chunked_compressed_responses,
    over_tls_too,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

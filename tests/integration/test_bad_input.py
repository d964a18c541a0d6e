# Hostile and malformed requests: each is answered with the specified status and the connection
# closed, and itkd keeps serving everyone else afterwards.

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

READ_TIMEOUT = 2  # RequestReadTimeout in this test's config
# One acceptor, so that "the acceptor serves others meanwhile" cannot be passed by a second one.
LIMITS = {"StartServers": 1, "RequestReadTimeout": READ_TIMEOUT, "LimitRequestLine": 2048,
          "LimitRequestFieldSize": 4096, "LimitRequestFields": 30, "LimitRequestBody": 1000}


def setup():
    tree = h.two_tenant_tree(server=LIMITS)
    return h.Daemon(tree).start()


def head(*lines):
    """A request head from lines joined with CRLF, ending with the empty line."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def still_serving(d, after):
    resp = h.fetch(d.port, "/", "a.test")
    h.expect_status(resp, 200, f"a normal GET / after {after}")


def answered_and_closed(name, status, *requests):
    """A scenario sending each raw request on its own connection; each must get `status`, then a close."""
    def scenario(d):
        for raw in requests:
            h.expect_answer_then_close(d.port, raw, status, f"{raw[:70]!r}")
        still_serving(d, name.replace("_", " "))
    scenario.__name__ = name
    return scenario


def field_lines(count, size):
    return [f"X-Field-{i}: " + "v" * size for i in range(count)]


malformed_request_line = answered_and_closed(
    "malformed_request_line_is_400", 400,
    head("GET /a b HTTP/1.1", "Host: a.test"),
    head("GET / HTTP/1.1 trailing", "Host: a.test"),
    head("GET /", "Host: a.test"))

bare_lf = answered_and_closed(
    "bare_lf_line_endings_are_400", 400,
    b"GET / HTTP/1.1\nHost: a.test\n\n",
    b"GET / HTTP/1.1\r\nHost: a.test\nX-Mixed: 1\r\n\r\n")

# A CR that no LF follows, in each place of a head. llhttp 8 ends a head at CR LF CR and any byte, so
# "\r\n\rSome-Header" was taken for the end of the head and what followed for a second request (h1spec
# "Invalid line ending"; the pattern of CVE-2023-30589): a desync behind any front end that reads it
# as a header.
bare_cr = answered_and_closed(
    "bare_cr_anywhere_in_the_head_is_400", 400,
    b"GET /a\rb HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"GET / HTTP/1.1\rHost: a.test\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\rc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\nx:\rXTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\n\rSome-Header: x\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\r\n")

empty_name_or_coding = answered_and_closed(
    "empty_header_name_or_transfer_encoding_is_400", 400,
    head("GET / HTTP/1.1", "Host: a.test", ": x"),
    head("GET / HTTP/1.1", "Host: a.test", "Transfer-Encoding:"),
    head("POST / HTTP/1.1", "Host: a.test", "Transfer-Encoding:", "Content-Length: 5") + b"hello")


def bare_cr_on_a_kept_alive_connection_is_400(d):
    # The second head is parsed by the worker, not the acceptor: the same rules apply there.
    with h.Conn(d.port) as c:
        c.request("GET", "/", "a.test")
        h.expect_status(c.read_response(), 200, "first request on the connection")
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\rSome-Header: x\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        resp = c.read_response()
        h.expect_status(resp, 400, "a bare CR as the end of the second head")
        closed, extra = c.wait_closed()
        h.check(closed and not extra, f"expected the connection closed with nothing after the 400, got {extra[:200]!r}")


def drain_after_an_error_is_bounded(d):
    # After an error response the acceptor reads and drops what the client still sends, so the client
    # reads the response instead of a reset, but not without bound: 1 MiB, then it closes.
    with h.Conn(d.port, timeout=10) as c:
        c.send(head("GET / HTTP/1.1", "Host: a.test", "X-A: b\rc"))
        resp = c.read_response()
        h.expect_status(resp, 400, "the bad head")
        junk = b"j" * (1 << 20)
        sent = 0
        start = time.monotonic()
        while sent < 64 << 20 and time.monotonic() - start < 8:
            if not c.send(junk):
                break
            sent += len(junk)
        h.check(c.send_error is not None and sent < 32 << 20,
                f"expected the connection closed soon after 1 MiB was drained, {sent >> 20} MiB went in "
                f"({c.send_error or 'no error'})")


obs_fold = answered_and_closed(
    "obs_fold_continuation_is_400", 400,
    head("GET / HTTP/1.1", "Host: a.test", "X-Folded: one", " two"),
    head("GET / HTTP/1.1", "Host: a.test", "X-Folded: one", "\ttwo"))

space_before_colon = answered_and_closed(
    "space_before_colon_is_400", 400,
    head("GET / HTTP/1.1", "Host: a.test", "X-Spaced : value"),
    head("GET / HTTP/1.1", "Host : a.test"))

invalid_header_name = answered_and_closed(
    "invalid_characters_in_header_name_are_400", 400,
    head("GET / HTTP/1.1", "Host: a.test", "X(Bad): value"),
    head("GET / HTTP/1.1", "Host: a.test", "X\x01Bad: value"),
    head("GET / HTTP/1.1", "Host: a.test", "X@Bad: value"))

length_and_chunked = answered_and_closed(
    "content_length_with_transfer_encoding_is_400", 400,
    head("POST / HTTP/1.1", "Host: a.test", "Content-Length: 5", "Transfer-Encoding: chunked"),
    head("POST / HTTP/1.1", "Host: a.test", "Transfer-Encoding: chunked", "Content-Length: 5"))

duplicate_length = answered_and_closed(
    "duplicate_content_length_is_400", 400,
    head("POST / HTTP/1.1", "Host: a.test", "Content-Length: 5", "Content-Length: 6"),
    head("POST / HTTP/1.1", "Host: a.test", "Content-Length: 5", "Content-Length: 5"))

missing_host = answered_and_closed(
    "http11_without_host_is_400", 400,
    head("GET / HTTP/1.1"),
    head("GET / HTTP/1.1", "Accept: */*"))

two_hosts = answered_and_closed(
    "two_host_headers_are_400", 400,
    head("GET / HTTP/1.1", "Host: a.test", "Host: b.test"),
    head("GET / HTTP/1.1", "Host: a.test", "Host: a.test"))

long_request_line = answered_and_closed(
    "request_line_over_limit_is_414", 414,
    head("GET /" + "a" * 3000 + " HTTP/1.1", "Host: a.test"))

long_field = answered_and_closed(
    "header_field_over_limit_is_431", 431,
    head("GET / HTTP/1.1", "Host: a.test", "X-Long: " + "b" * 5000))

many_fields = answered_and_closed(
    "too_many_header_fields_are_431", 431,
    head("GET / HTTP/1.1", "Host: a.test", *field_lines(40, 8)))

# 20 fields of 3.5 KiB: each field and the count are within this config's limits, the total is not.
huge_head = answered_and_closed(
    "head_over_64_kib_is_431", 431,
    head("GET / HTTP/1.1", "Host: a.test", *field_lines(20, 3500)))

body_over_limit = answered_and_closed(
    "content_length_over_limit_is_413", 413,
    head("POST / HTTP/1.1", "Host: a.test", "Content-Length: 5000"),
    head("GET / HTTP/1.1", "Host: a.test", "Content-Length: 1001"))

http2_version = answered_and_closed(
    "http2_and_http3_versions_are_505", 505,
    head("GET / HTTP/2.0", "Host: a.test"),
    head("GET / HTTP/3.0", "Host: a.test"))

bad_paths = answered_and_closed(
    "dot_dot_nul_and_encoded_slash_paths_are_400", 400,
    *[head(f"GET {path} HTTP/1.1", "Host: a.test")
      for path in ("/../x", "/%2e%2e/x", "/a/%2E%2e/b", "/%00", "/a%2fb", "/a/../../etc/passwd")])


def head_inside_limits_is_served(d):
    # The limits must not refuse what they allow: a 1500-byte target, 25 fields, one of 3500 bytes.
    raw = head("GET /index.html?" + "q" * 1500 + " HTTP/1.1", "Host: a.test", "Connection: close",
               "X-Big: " + "c" * 3500, *field_lines(22, 10))
    resp, _, _ = h.send_raw(d.port, raw)
    h.expect_status(resp, 200, "a head just inside every limit")


def request_read_timeout_answers_408(d):
    with h.Conn(d.port, timeout=READ_TIMEOUT + 10) as slow:
        slow.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n")  # the head never ends
        # The acceptor holding the slow head must keep serving others meanwhile.
        resp = h.fetch(d.port, "/", "b.test")
        h.expect_status(resp, 200, "a normal request while a head is incomplete")
        start = time.monotonic()
        got = slow.read_response(timeout=READ_TIMEOUT + 10)
        h.expect_status(got, 408, f"incomplete head after RequestReadTimeout = {READ_TIMEOUT}")
        closed, extra = slow.wait_closed(5)
        h.check(closed, f"expected the connection closed after the 408, still open "
                        f"{time.monotonic() - start:.1f}s after it")
        h.check(not extra, f"expected nothing after the 408, got {extra[:200]!r}")


def silent_connection_is_closed(d):
    with h.Conn(d.port, timeout=READ_TIMEOUT + 10) as silent:
        closed, data = silent.wait_closed(READ_TIMEOUT + 10)
        h.check(closed, f"expected a connection that sends nothing to be closed after RequestReadTimeout "
                        f"= {READ_TIMEOUT}s, still open after {READ_TIMEOUT + 10}s")
        h.check(not data or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.0 408"),
                f"expected nothing or a 408 before the close, got {data[:200]!r}")


def itkd_survived_everything(d):
    h.check(d.running(), f"expected itkd still running, it exited with status {d.proc.poll()}")
    h.check(d.acceptors(), "expected itk-acceptor processes, found none")
    for host, want in (("a.test", "vhost a"), ("b.test", "vhost b")):
        resp = h.fetch(d.port, "/", host)
        h.expect_status(resp, 200, f"GET / on {host} after all the bad input")
        h.expect_body_contains(resp, want, f"GET / on {host}")


SCENARIOS = [
    malformed_request_line,
    bare_lf,
    bare_cr,
    bare_cr_on_a_kept_alive_connection_is_400,
    empty_name_or_coding,
    drain_after_an_error_is_bounded,
    obs_fold,
    space_before_colon,
    invalid_header_name,
    length_and_chunked,
    duplicate_length,
    missing_host,
    two_hosts,
    long_request_line,
    long_field,
    many_fields,
    huge_head,
    body_over_limit,
    http2_version,
    bad_paths,
    head_inside_limits_is_served,
    request_read_timeout_answers_408,
    silent_connection_is_closed,
    itkd_survived_everything,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

# Persistent connections: keep-alive rules of HTTP/1.0 and 1.1, MaxKeepAliveRequests, KeepAliveTimeout,
# pipelining, and the mpm-itk rule that a request for another uid closes the connection.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

KEEP_ALIVE_TIMEOUT = 2
MAX_REQUESTS = 3


def setup():
    tree = h.Tree()
    tree.write_server_conf(KeepAliveTimeout=KEEP_ALIVE_TIMEOUT, MaxKeepAliveRequests=MAX_REQUESTS)
    files = {"one.txt": "one\n", "two.txt": "two\n"}
    root_a = h.make_tenant(tree, "a", h.UID_A, files=files)
    root_a2 = h.make_tenant(tree, "a2", h.UID_A, files=files)
    root_b = h.make_tenant(tree, "b", h.UID_B, files=files)
    tree.write_vhost("10-a.conf", "a.test", root_a, h.UID_A)
    tree.write_vhost("15-a2.conf", "a2.test", root_a2, h.UID_A)
    tree.write_vhost("20-b.conf", "b.test", root_b, h.UID_B)
    return h.Daemon(tree).start()


def get(c, path, host, headers=(), version="HTTP/1.1"):
    c.request("GET", path, host, headers, version)
    return c.read_response()


def expect_closed(c, what, timeout=h.IO_TIMEOUT):
    closed, extra = c.wait_closed(timeout)
    h.check(closed, f"{what}: expected the connection closed, still open after {timeout}s")
    h.check(not extra, f"{what}: expected no further bytes before the close, got {extra[:200]!r}")


def keep_alive_by_default(d):
    with h.Conn(d.port) as c:
        first = get(c, "/one.txt", "a.test")
        h.expect_status(first, 200, "first request on an HTTP/1.1 connection")
        h.check("close" not in first.connection_tokens(),
                f"expected no 'Connection: close' on the first HTTP/1.1 response\n{first.describe()}")
        worker = d.worker_for(c)
        h.check(worker, f"expected an itk-worker holding the connection, workers: {d.workers()}")
        second = get(c, "/two.txt", "a.test")
        h.expect_status(second, 200, "second request on the same connection")
        h.expect_eq(second.body, b"two\n", "body of the second response")
        h.expect_eq(d.worker_for(c), worker, "worker pid serving the connection after the second request")


def connection_close_honoured(d):
    with h.Conn(d.port) as c:
        resp = get(c, "/one.txt", "a.test", {"Connection": "close"})
        h.expect_status(resp, 200, "GET with Connection: close")
        expect_closed(c, "after a response to Connection: close")


def http10_closes_by_default(d):
    with h.Conn(d.port) as c:
        resp = get(c, "/one.txt", "a.test", version="HTTP/1.0")
        h.expect_status(resp, 200, "HTTP/1.0 GET")
        expect_closed(c, "after an HTTP/1.0 response without keep-alive")


def http10_keep_alive_on_request(d):
    with h.Conn(d.port) as c:
        resp = get(c, "/one.txt", "a.test", {"Connection": "keep-alive"}, version="HTTP/1.0")
        h.expect_status(resp, 200, "HTTP/1.0 GET with Connection: keep-alive")
        h.check("keep-alive" in resp.connection_tokens(),
                f"expected 'Connection: keep-alive' in the response\n{resp.describe()}")
        resp = get(c, "/two.txt", "a.test", {"Connection": "keep-alive"}, version="HTTP/1.0")
        h.expect_status(resp, 200, "second HTTP/1.0 keep-alive request on the same connection")
        h.expect_eq(resp.body, b"two\n", "body of the second HTTP/1.0 response")


def max_keep_alive_requests(d):
    with h.Conn(d.port) as c:
        for n in range(1, MAX_REQUESTS + 1):
            resp = get(c, "/one.txt", "a.test")
            h.expect_status(resp, 200, f"request {n} of {MAX_REQUESTS} on one connection")
            says_close = "close" in resp.connection_tokens()
            if n < MAX_REQUESTS:
                h.check(not says_close, f"response {n}: expected no 'Connection: close' before request "
                                        f"{MAX_REQUESTS}\n{resp.describe()}")
            else:
                h.check(says_close, f"response {n}: expected 'Connection: close' (MaxKeepAliveRequests = "
                                    f"{MAX_REQUESTS})\n{resp.describe()}")
        expect_closed(c, f"after {MAX_REQUESTS} requests")


def let_go(worker, inode):
    """The worker no longer holds the connection's socket: it exited, or waits as a spare for the next one."""
    return not h.pid_alive(worker) or not h.pids_holding_socket(inode, [worker])


def keep_alive_timeout_closes_idle(d):
    with h.Conn(d.port, timeout=KEEP_ALIVE_TIMEOUT + 10) as c:
        resp = get(c, "/one.txt", "a.test")
        h.expect_status(resp, 200, "GET before idling")
        worker = d.worker_for(c)
        inode = h.server_socket_inode(d.port, c.client_port)
        expect_closed(c, f"idle past KeepAliveTimeout = {KEEP_ALIVE_TIMEOUT}s", KEEP_ALIVE_TIMEOUT + 10)
        if worker and inode:
            gone = h.wait_until(lambda: let_go(worker, inode), 5)
            h.check(gone, f"expected worker {worker} to let go of its connection after it timed out")


def other_uid_closes_connection(d):
    with h.Conn(d.port) as c:
        resp = get(c, "/one.txt", "a.test")
        h.expect_status(resp, 200, "GET on a.test (uid 2001)")
        c.request("GET", "/one.txt", "b.test")
        expect_closed(c, "a request for b.test (uid 2002) on a connection of uid 2001")
    with h.Conn(d.port) as c:
        c.send(h.build_request("GET", "/one.txt", "a.test") + h.build_request("GET", "/two.txt", "b.test"))
        resp = c.read_response()
        h.expect_status(resp, 200, "pipelined GET on a.test followed by one for b.test")
        expect_closed(c, "the pipelined request for b.test (another uid)")


def same_uid_keeps_connection(d):
    with h.Conn(d.port) as c:
        first = get(c, "/", "a.test")
        h.expect_status(first, 200, "GET / on a.test")
        h.expect_body_contains(first, "vhost a", "GET / on a.test")
        worker = d.worker_for(c)
        h.check(worker, f"expected an itk-worker holding the connection, workers: {d.workers()}")
        second = get(c, "/", "a2.test")
        h.expect_status(second, 200, "GET / on a2.test (same uid 2001) on the same connection")
        h.expect_body_contains(second, "vhost a2", "GET / on a2.test")
        h.expect_eq(d.worker_for(c), worker, "worker pid after switching to a vhost of the same uid")


def pipelining_in_order(d):
    with h.Conn(d.port) as c:
        c.send(h.build_request("GET", "/one.txt", "a.test") + h.build_request("GET", "/two.txt", "a.test"))
        first = c.read_response()
        second = c.read_response()
        h.expect_status(first, 200, "first pipelined response")
        h.expect_status(second, 200, "second pipelined response")
        h.expect_eq((first.body, second.body), (b"one\n", b"two\n"), "pipelined bodies, in request order")


def get_with_body_answered_then_closed(d):
    with h.Conn(d.port) as c:
        c.send(h.build_request("GET", "/one.txt", "a.test", {"Content-Length": "5"}, body=b"hello"))
        resp = c.read_response()
        h.expect_status(resp, 200, "GET carrying a 5-byte body")
        h.expect_eq(resp.body, b"one\n", "body of the answer to a GET with a body")
        expect_closed(c, "after answering a GET that carried a body")


def worker_lets_go_when_client_closes(d):
    c = h.Conn(d.port)
    try:
        resp = get(c, "/one.txt", "b.test")
        h.expect_status(resp, 200, "GET on b.test")
        worker = d.worker_for(c)
        h.check(worker, f"expected an itk-worker holding the connection, workers: {d.workers()}")
        inode = h.server_socket_inode(d.port, c.client_port)
        h.check(inode, "expected the server side of the connection in /proc/net/tcp")
    finally:
        c.close()
    gone = h.wait_until(lambda: let_go(worker, inode), 5)
    h.check(gone, f"expected worker {worker} to let go of the connection once the client closed (exit or spare)")


def closed_at_once_when_the_client_sent_everything(d):
    # Connection: close, no body, nothing after it: the client has nothing more to send, so the worker closes
    # the socket as it ends the response (nginx's lingering_close on), instead of draining it for 2 s.
    with h.Conn(d.port) as c:
        request = h.build_request("GET", "/one.txt", "a.test", {"Connection": "close"})
        c.send(request[:-2])  # the head without its last CRLF: the connection waits in an acceptor
        inode = h.wait_until(lambda: h.server_socket_inode(d.port, c.client_port), 3)
        h.check(inode, "expected the server side of the connection in /proc/net/tcp")
        c.send(request[-2:])
        h.expect_status(c.read_response(), 200, "GET with Connection: close")
        expect_closed(c, "after a response to Connection: close")
        # The client still holds its end open: only a lingering worker would hold the server's.
        released = h.wait_until(lambda: not h.pids_holding_socket(inode, h.group_members(d.pid)), 0.5)
        h.check(released, f"expected no itkd process to hold the connection once its response was sent, held by "
                          f"{h.pids_holding_socket(inode, h.group_members(d.pid))}")


SCENARIOS = [
    keep_alive_by_default,
    connection_close_honoured,
    http10_closes_by_default,
    http10_keep_alive_on_request,
    max_keep_alive_requests,
    keep_alive_timeout_closes_idle,
    other_uid_closes_connection,
    same_uid_keeps_connection,
    pipelining_in_order,
    get_with_body_answered_then_closed,
    worker_lets_go_when_client_closes,
    closed_at_once_when_the_client_sent_everything,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

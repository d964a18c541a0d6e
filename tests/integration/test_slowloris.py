# Slowloris: hundreds of connections that never finish their request line must neither pin the
# acceptors nor get workers; normal clients are served meanwhile and the slow ones are timed out.

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SLOW_COUNT = 300
NORMAL_COUNT = 20
READ_TIMEOUT = 4  # RequestReadTimeout in this test's config

slow = []  # the slow client sockets, shared by the scenarios below


def setup():
    tree = h.two_tenant_tree(server={"RequestReadTimeout": READ_TIMEOUT})
    return h.Daemon(tree).start()


def slow_connections_opened(d):
    failures = []
    for i in range(SLOW_COUNT):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(h.IO_TIMEOUT)
        try:
            s.connect(("127.0.0.1", d.port))
            s.sendall(b"GET /slow HT")
        except OSError as e:
            s.close()
            failures.append(f"connection {i}: {e}")
            continue
        slow.append(s)
    h.check(not failures, f"expected {SLOW_COUNT} slow connections to connect and send half a request line; "
                          f"{len(failures)} failed, first: {failures[:3]}")


def normal_requests_answered_meanwhile(d):
    for i in range(NORMAL_COUNT):
        host, want = (("a.test", "vhost a"), ("b.test", "vhost b"))[i % 2]
        try:
            resp = h.fetch(d.port, "/", host, timeout=5)
        except h.Fail as e:
            raise h.Fail(f"normal request {i + 1} of {NORMAL_COUNT} to {host} while {len(slow)} slow "
                         f"connections are open: expected an answer within 5s: {e}") from None
        h.expect_status(resp, 200, f"normal request {i + 1} to {host} with {len(slow)} slow connections open")
        h.expect_body_contains(resp, want, f"normal request {i + 1} to {host}")


def server_side_inodes(port):
    """Socket inodes of the server side of every connection to `port`."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def workers_holding_connections(d):
    inodes = server_side_inodes(d.port)
    return [w for w in d.workers() if any(h.pids_holding_socket(i, [w]) for i in inodes)]


def no_worker_for_incomplete_heads(d):
    # Workers hold only connections with a parsed head; the normal requests above closed theirs (their
    # workers may wait on as spares, holding no connection).
    settled = h.wait_until(lambda: not workers_holding_connections(d), 5)
    h.check(settled, f"expected no itk-worker holding any of the {len(slow)} incomplete heads' connections, "
                     f"found {workers_holding_connections(d)}")


def slow_connections_timed_out(d):
    pending = {s: b"" for s in slow}
    closed = {}
    deadline = time.monotonic() + READ_TIMEOUT + 15
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending), [], [], 0.5)
        for s in readable:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                pending[s] += data
                continue
            closed[s] = pending.pop(s)
            s.close()
    still_open = len(pending)
    for s in list(pending):
        s.close()
    slow.clear()
    unexpected = [data[:80] for data in closed.values()
                  if data and not (data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.0 408"))]
    h.check(still_open == 0, f"expected every slow connection closed (408 or plain close) within "
                             f"RequestReadTimeout = {READ_TIMEOUT}s + 15s; {still_open} still open")
    h.check(not unexpected, f"expected 408 or nothing on the slow connections, {len(unexpected)} got other "
                            f"bytes, first: {unexpected[:3]}")


def still_serving_afterwards(d):
    h.check(d.running(), f"expected itkd still running, it exited with status {d.proc.poll()}")
    for host in ("a.test", "b.test"):
        resp = h.fetch(d.port, "/", host)
        h.expect_status(resp, 200, f"GET / on {host} after the slowloris connections")


BIG_HEAD_COUNT = 20
HEAD_BUDGET = 1 << 20  # LimitHeadBuffers of the daemon below: a handful of 60 KiB heads


def big_unfinished_heads_are_shed_oldest_first(shared):
    # Each connection sends 60 KiB of head (inside every per-request limit) and never ends it. The acceptor
    # may hold LimitHeadBuffers bytes of such heads in all; past it, the oldest are answered 503 and
    # closed, and everyone else is served.
    tree = h.two_tenant_tree(server={"RequestReadTimeout": 30, "StartServers": 1, "LimitHeadBuffers": HEAD_BUDGET})
    d = h.Daemon(tree, name="itkd-budget").start()
    conns = []
    try:
        part = ("GET / HTTP/1.1\r\nHost: a.test\r\n" +
                "".join(f"X-Pad-{i}: {'p' * 4000}\r\n" for i in range(15))).encode()
        for _ in range(BIG_HEAD_COUNT):
            c = h.Conn(d.port, timeout=10)
            c.send(part)
            conns.append(c)
            time.sleep(0.05)
        resp = h.fetch(d.port, "/", "b.test")
        h.expect_status(resp, 200, f"a normal request while {BIG_HEAD_COUNT} connections hold 60 KiB heads")
        shed, open_ = [], []
        for i, c in enumerate(conns):
            readable, _, _ = select.select([c.sock], [], [], 0.2)
            if readable:
                r = c.read_response(timeout=2)
                shed.append((i, r.status if r else None))
            else:
                open_.append(i)
        print(f"# shed: {shed}; still waiting: {open_}", flush=True)
        h.check(shed and all(status == 503 for _, status in shed),
                f"expected the oldest heads answered 503 once {BIG_HEAD_COUNT} x 60 KiB passed LimitHeadBuffers "
                f"= {HEAD_BUDGET}, got {shed}")
        h.check(open_ and min(open_) > max(i for i, _ in shed),
                f"expected the oldest shed first and the newest still waiting, shed {shed}, waiting {open_}")
        h.check(len(open_) * 120 * 1024 <= 2 * HEAD_BUDGET,
                f"{len(open_)} heads of 60 KiB still held: more than LimitHeadBuffers = {HEAD_BUDGET} allows")
    finally:
        for c in conns:
            c.close()
        d.stop()


SCENARIOS = [
    slow_connections_opened,
    normal_requests_answered_meanwhile,
    no_worker_for_incomplete_heads,
    slow_connections_timed_out,
    still_serving_afterwards,
    big_unfinished_heads_are_shed_oldest_first,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

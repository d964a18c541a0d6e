# Worker reuse on plain HTTP: a worker whose connection ended waits as a spare of its vhost and serves
# the vhost's next connection without a fork; spares never cross identities, are not counted as clients,
# and end when idle too long, at a reload and at a stop. A CGI that prints its parent (the worker) is the probe.

import hashlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SPARE_IDLE = 10         # seconds a spare may wait without a connection before its acceptor retires it
RETIRE_WAIT = 14        # how long the retirement of one spare is waited for: the idle time, the tick, slack
RETIRE_EVERY = 1        # seconds between two retirements of one vhost's spares
GRACE = 30              # GracefulShutdownTimeout of the stop scenario; the stop must not come near it
VHOST_LIMIT = 2         # MaxClientsVHost of a.test in the accounting scenario
BODY_SIZE = 100 << 10

SH = "#!/bin/sh\n"
PROBE = SH + "printf 'Content-Type: text/plain\\n\\n'\necho \"worker=$PPID\"\necho \"uid=$(id -u)\"\n"
BODY = ("#!/usr/bin/python3\nimport hashlib, os, sys\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.write('Content-Type: text/plain\\n\\n')\n"
        "print(f'worker={os.getppid()}')\n"
        "print(f'length={len(data)}')\n"
        "print(f'sha256={hashlib.sha256(data).hexdigest()}')\n")


def make_tree(server=None, a_keys=None):
    """a.test (uid 2001) and b.test (uid 2002), each with the probe; one acceptor, so it owns every spare."""
    settings = {"StartServers": 1, "KeepAliveTimeout": 30}
    settings.update(server or {})
    tree = h.two_tenant_tree(server=settings, a_keys=dict({"CGI": ".cgi"}, **(a_keys or {})),
                             b_keys={"CGI": ".cgi"})
    for root, uid in ((tree.root_a, h.UID_A), (tree.root_b, h.UID_B)):
        tree.write(os.path.join(root, "pid.cgi"), PROBE, uid, mode=0o755)
        tree.write(os.path.join(root, "body.cgi"), BODY, uid, mode=0o755)
    return tree


def setup():
    return h.Daemon(make_tree()).start()


# ---------------------------------------------------------------------------------------------------
# Helpers

def served_by(resp, what):
    """(worker pid, uid) that the probe reported."""
    h.expect_status(resp, 200, what)
    kv = h.key_values(resp.body)
    h.check(kv.get("worker", "").isdigit() and kv.get("uid", "").isdigit(),
            f"{what}: expected the probe's 'worker=PID' and 'uid=UID' lines\n{resp.describe()}")
    return int(kv["worker"]), int(kv["uid"])


def probe(d, host="a.test", **kw):
    """One request to the probe on a new connection (Connection: close unless close=False)."""
    what = f"GET /pid.cgi on {host}" + (f" ({kw['version']})" if "version" in kw else "")
    resp = h.fetch(d.port, "/pid.cgi", host, **kw)
    return served_by(resp, what)


def has_connection(pid):
    # A worker holds its connection as fd 3 and closes it before it says it is idle.
    return os.path.lexists(f"/proc/{pid}/fd/3")


def sleeping_in(pid):
    """The kernel function `pid` sleeps in (its wchan), or None while it runs or when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("latin-1")
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
    except OSError:
        return None
    return wchan or "?" if stat[stat.rfind(")") + 2] == "S" else None


def wait_spare(pid, what):
    """Waits until worker `pid` is done with its connection and its acceptor knows it as a spare.

    The worker closes the connection once the client closed its end, says it is idle and sleeps; the
    acceptor takes it as a spare when it reads that message. A connection that comes earlier is forked
    for, so the test waits for both: the worker asleep without its connection, then the acceptor back
    asleep in epoll_wait, which it cannot be with the worker's message unread."""
    def idle():
        if not h.pid_alive(pid):
            return "gone"
        return "idle" if not has_connection(pid) and sleeping_in(pid) else None
    state = h.wait_until(idle, h.IO_TIMEOUT, interval=0.02)
    h.check(state == "idle", f"{what}: expected worker {pid} to wait as a spare after its connection ended; "
                             f"it {'exited' if state == 'gone' else 'still holds its connection'} "
                             f"(workers now: {live_workers()})")
    spawner = h.ppid_of(pid)
    h.check(h.comm_of(spawner) == "itk-spawner",
            f"{what}: expected the parent of worker {pid} to be the itk-spawner, got {spawner} "
            f"({h.comm_of(spawner) if spawner else None})")
    # The daemons of these scenarios have one acceptor: the one that hands the worker its connections.
    acceptor = [p for p, (pp, _, comm) in h.process_table().items()
                if pp == h.ppid_of(spawner) and comm == "itk-acceptor"][0]
    asleep = h.wait_until(lambda: "epoll" in (sleeping_in(acceptor) or ""), h.IO_TIMEOUT, interval=0.01)
    h.check(asleep, f"{what}: expected the acceptor {acceptor} back in epoll_wait within {h.IO_TIMEOUT}s, "
                    f"it sleeps in {sleeping_in(acceptor)!r}")


def live_workers():
    return sorted(pid for pid, (_, _, comm) in h.process_table().items()
                  if comm == "itk-worker" and h.pid_alive(pid))


def the_acceptor(d):
    acceptors = h.wait_until(d.acceptors, 5)
    h.check(len(acceptors) == 1, f"expected exactly one itk-acceptor (StartServers = 1), found {acceptors}")
    return acceptors[0]


def expect_worker_of(d, pid, uid, what):
    the_acceptor(d)
    parent = h.ppid_of(pid)
    h.check(h.comm_of(parent) == "itk-spawner" and h.ppid_of(parent) == d.pid,
            f"{what}: expected worker {pid} to be a child of the current itk-spawner, "
            f"its parent is {parent} ({h.comm_of(parent) if parent else None})")
    h.check_worker_credentials(pid, uid)


def spare_of(d, host, uid):
    """A spare of `host`: the worker that served one request, once it waits for the next."""
    pid, got_uid = probe(d, host)
    h.expect_eq(got_uid, uid, f"uid of the script on {host}")
    wait_spare(pid, f"after a request to {host}")
    return pid


def expect_gone(pids, timeout, what):
    left = h.wait_until(lambda: not [p for p in pids if h.pid_alive(p)], timeout)
    if not left:
        raise h.Fail(f"{what}: expected workers {sorted(pids)} to exit within {timeout:.1f}s, still alive: "
                     f"{[p for p in pids if h.pid_alive(p)]}")


def hold(d, host, conns, what):
    """A keep-alive connection that has completed one probe request, so that it holds its worker."""
    c = h.Conn(d.port)
    conns.append(c)
    c.request("GET", "/pid.cgi", host)
    pid, _ = served_by(c.read_response(), what)
    return pid


def close_all(conns):
    for c in conns:
        c.close()
    conns.clear()


# ---------------------------------------------------------------------------------------------------
# Scenarios

def sequential_close_requests_share_a_worker(d):
    first, uid = probe(d)
    h.expect_eq(uid, h.UID_A, "uid of the first script on a.test")
    wait_spare(first, "after the first Connection: close request")
    # The spare keeps everything a worker of a.test is: a child of the acceptor, uid 2001, no capability.
    expect_worker_of(d, first, h.UID_A, "the spare of a.test")
    h.expect_eq(h.comm_of(first), "itk-worker", f"comm of the spare {first}")
    second, uid = probe(d)
    h.expect_eq(uid, h.UID_A, "uid of the second script on a.test")
    h.expect_eq(second, first, "worker of the second Connection: close request (a new TCP connection)")
    wait_spare(second, "after the second request")
    expect_worker_of(d, second, h.UID_A, "the worker after its second connection")


def http10_and_closed_keepalive_are_reused(d):
    spare = spare_of(d, "a.test", h.UID_A)
    pid, uid = probe(d, version="HTTP/1.0", close=False)
    h.expect_eq((pid, uid), (spare, h.UID_A), "worker and uid of an HTTP/1.0 request without keep-alive")
    wait_spare(pid, "after the HTTP/1.0 request")

    with h.Conn(d.port) as c:
        c.request("GET", "/pid.cgi", "a.test")
        resp = c.read_response()
        pid, uid = served_by(resp, "keep-alive GET /pid.cgi on a.test")
        h.check("close" not in resp.connection_tokens(),
                f"expected the keep-alive connection kept open\n{resp.describe()}")
        h.expect_eq((pid, uid), (spare, h.UID_A), "worker and uid of the keep-alive request")
    # The client closed after the keep-alive response: the worker is a spare again.
    wait_spare(pid, "after the client closed its keep-alive connection")
    pid, uid = probe(d)
    h.expect_eq((pid, uid), (spare, h.UID_A), "worker of the request after the keep-alive connection closed")
    wait_spare(pid, "after that request")


def each_vhost_keeps_its_own_worker(d):
    spare_a = spare_of(d, "a.test", h.UID_A)
    spare_b = spare_of(d, "b.test", h.UID_B)
    h.check(spare_a != spare_b, f"expected b.test (uid {h.UID_B}) served by a worker of its own, "
                                f"got a.test's worker {spare_a}")
    expect_worker_of(d, spare_b, h.UID_B, "the spare of b.test")
    seen = []
    for host, uid, spare in (("a.test", h.UID_A, spare_a), ("b.test", h.UID_B, spare_b)) * 2:
        pid, got_uid = probe(d, host)
        seen.append((host, pid, got_uid))
        h.check((pid, got_uid) == (spare, uid),
                f"alternating a.test and b.test: expected {host} served by its spare {spare} as uid {uid}; "
                f"requests so far (host, worker, uid): {seen}")
        wait_spare(pid, f"after a request to {host}")
    check_worker_uid(spare_a, h.UID_A)
    check_worker_uid(spare_b, h.UID_B)


def check_worker_uid(pid, uid):
    st = h.proc_status(pid)
    h.check(st is not None, f"worker {pid}: expected it alive")
    h.expect_eq(h.ids(st["Uid"])[:3], [uid] * 3, f"real/effective/saved uid of worker {pid}")


def concurrent_connections_then_reuse_of_that_set(d):
    conns = []
    try:
        held = [hold(d, "a.test", conns, f"keep-alive connection {i + 1} of 4 to a.test") for i in range(4)]
        h.check(len(set(held)) == 4, f"expected 4 connections held at once served by 4 different workers, "
                                     f"got {held}")
        for pid, c in zip(held, conns):
            holder = d.worker_for(c)
            h.check(holder == pid, f"expected worker {pid} (the script's parent) to hold its connection, "
                                   f"found {holder}")
            check_worker_uid(pid, h.UID_A)
    finally:
        close_all(conns)
    for pid in held:
        wait_spare(pid, "after the 4 held connections closed")
    before = d.workers()
    got = []
    for i in range(4):
        pid, uid = probe(d)
        got.append(pid)
        h.expect_eq(uid, h.UID_A, f"uid of sequential request {i + 1}")
        h.check(pid in held, f"sequential request {i + 1}: expected a worker of the 4 spares {held}, "
                             f"got {pid} (all so far: {got})")
        wait_spare(pid, f"after sequential request {i + 1}")
    h.expect_eq(d.workers(), before, "itk-worker processes after 4 more requests (none forked, none gone)")


def spares_are_not_clients(_):
    # QueueTimeout 0: the connection over the limit is refused at once instead of waiting for a slot.
    d = h.Daemon(make_tree(server={"QueueTimeout": 0}, a_keys={"MaxClientsVHost": VHOST_LIMIT}),
                 name="itkd-limit").start()
    first = []
    for i in range(5):
        pid, _ = probe(d)
        first.append(pid)
        wait_spare(pid, f"after Connection: close request {i + 1} of 5")
    h.check(len(set(first)) == 1, f"expected 5 sequential requests served by one worker, got {first}")

    conns = []
    try:
        held = [hold(d, "a.test", conns, f"held connection {i + 1} of {VHOST_LIMIT} to a.test with a spare "
                                         f"waiting (MaxClientsVHost = {VHOST_LIMIT})")
                for i in range(VHOST_LIMIT)]
        h.check(first[0] in held, f"expected the spare {first[0]} to serve one of the held connections, got {held}")
        expect_refused(d, f"a third connection to a.test with {VHOST_LIMIT} held")
    finally:
        close_all(conns)
    for pid in held:
        wait_spare(pid, "after the held connections closed")

    # As many spares as MaxClientsVHost now: none of them is a client.
    target = 5 + VHOST_LIMIT
    st = d.wait_status(lambda s: s["workers"] == 0 and s["served"] >= target, timeout=5)
    h.check(st is not None, f"expected a STATUS with 'workers: 0' and 'served: {target}' or more while "
                            f"{VHOST_LIMIT} spares wait ({sorted(set(held))}), got {d.notify.statuses()[-4:]}")
    try:
        again = [hold(d, "a.test", conns, f"held connection {i + 1} of {VHOST_LIMIT} with {VHOST_LIMIT} spares "
                                          f"waiting (MaxClientsVHost = {VHOST_LIMIT})")
                 for i in range(VHOST_LIMIT)]
        h.expect_eq(sorted(again), sorted(held), "workers of the held connections (the spares, no fork)")
        expect_refused(d, f"a third connection to a.test with {VHOST_LIMIT} held and no spare left")
    finally:
        close_all(conns)


def expect_refused(d, what):
    resp = h.fetch(d.port, "/pid.cgi", "a.test")
    h.expect_status(resp, 503, what)
    retry = resp.header("Retry-After")
    h.check(retry is not None and retry.strip().isdigit(),
            f"{what}: expected Retry-After with seconds, got {retry!r}\n{resp.describe()}")


def idle_spare_is_retired(d):
    # Three spares of a.test: three connections held at once, then closed.
    conns = []
    try:
        held = [hold(d, "a.test", conns, f"keep-alive connection {i + 1} of 3 to a.test") for i in range(3)]
    finally:
        close_all(conns)
    for pid in held:
        wait_spare(pid, "after the 3 held connections closed")
    idle_from = time.monotonic()
    spares = d.workers()
    h.check(set(held) <= set(spares), f"expected the spares {held} among the workers, found {spares}")
    # Never before the idle time: a spare retired at once would fork for every connection again.
    time.sleep(SPARE_IDLE - 3)
    h.check(all(h.pid_alive(p) for p in held), f"expected the spares {held} still waiting {SPARE_IDLE - 3}s after "
                                               f"their last connection (retired after {SPARE_IDLE}s)")
    # Then one a second per vhost (as Apache's idle maintenance): when the first of a.test's has gone, the
    # others are still there.
    first_gone = h.wait_until(lambda: any(not h.pid_alive(p) for p in held),
                              max(1.0, RETIRE_WAIT - (time.monotonic() - idle_from)), interval=0.05)
    h.check(first_gone, f"expected one of the spares {held} retired within {RETIRE_WAIT}s")
    alive = [p for p in held if h.pid_alive(p)]
    h.check(len(alive) == 2, f"expected a.test's spares {held} retired one a second, but {3 - len(alive)} went "
                             f"at once")
    # The last goes after SPARE_IDLE + (n - 1) * RETIRE_EVERY at most.
    wait = RETIRE_WAIT + (len(spares) - 1) * RETIRE_EVERY
    expect_gone(spares, max(1.0, wait - (time.monotonic() - idle_from)),
                f"{len(spares)} spares idle for {SPARE_IDLE}s (waited {wait}s after the last request)")
    pid, uid = probe(d)
    h.expect_eq(uid, h.UID_A, "uid of the script after the spares were retired")
    h.check(pid not in spares, f"expected a new worker after the retirement, got the retired {pid}")
    wait_spare(pid, "after the request that followed the retirement")


def reload_retires_spares(_):
    d = h.Daemon(make_tree(), name="itkd-reload").start()
    old_acceptor = the_acceptor(d)
    spares = [spare_of(d, "a.test", h.UID_A), spare_of(d, "b.test", h.UID_B)]
    d.reload()
    expect_gone(spares, 5, "spares after SIGHUP")
    pid, uid = probe(d)
    h.expect_eq(uid, h.UID_A, "uid of the script after the reload")
    h.check(pid not in spares, f"expected a new worker after the reload, got the old spare {pid}")
    acceptor = the_acceptor(d)
    h.check(acceptor != old_acceptor, f"expected a new acceptor after the reload, still {old_acceptor}")
    expect_worker_of(d, pid, h.UID_A, "the worker after the reload")
    # Reuse goes on with the new generation.
    wait_spare(pid, "after the first request since the reload")
    again, _ = probe(d)
    h.expect_eq(again, pid, "worker of the second request since the reload")


def stop_with_spares_exits_promptly(_):
    d = h.Daemon(make_tree(server={"GracefulShutdownTimeout": GRACE}), name="itkd-stop").start()
    spares = [spare_of(d, "a.test", h.UID_A), spare_of(d, "b.test", h.UID_B)]
    group = d.pid
    mark = d.notify.mark()
    start = time.monotonic()
    d.signal(signal.SIGTERM)
    code = d.wait_exit(10)
    took = time.monotonic() - start
    h.check(code is not None, f"expected itkd to exit within 10s of SIGTERM with spares waiting "
                              f"(GracefulShutdownTimeout = {GRACE}), still running")
    h.expect_eq(code, 0, "exit status after SIGTERM")
    h.check(took < 5, f"expected the stop well under GracefulShutdownTimeout = {GRACE}s, took {took:.1f}s")
    h.check(d.notify.wait_for(lambda m: m.get("STOPPING") == "1", 0, mark)[0] is not None,
            f"expected STOPPING=1 after SIGTERM, got {d.notify.summary(mark)}")
    expect_gone(spares, 3, "spares after the stop")
    left = h.wait_until(lambda: not [p for p in h.group_members(group) if h.comm_of(p) == "itk-worker"], 3)
    h.check(left, f"expected no itk-worker left after the stop, found "
                  f"{[p for p in h.group_members(group) if h.comm_of(p) == 'itk-worker']}")


def cpu_seconds(pids):
    """User plus system CPU time of `pids`, in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def acceptor_sleeps_while_a_connection_waits_for_a_fork(_):
    # A connection waiting for a worker the spawner has not delivered costs its acceptor nothing: it wakes
    # when the wait is due for a fork, not again and again until the worker comes (it spun before).
    d = h.Daemon(make_tree(), name="itkd-wait").start()
    spawner = d.children_named("itk-spawner")
    h.check(len(spawner) == 1, f"expected one itk-spawner child of itkd, found {spawner}")
    c = None
    os.kill(spawner[0], signal.SIGSTOP)
    try:
        c = h.Conn(d.port, timeout=15)
        c.request("GET", "/pid.cgi", "b.test", [("Connection", "close")])
        time.sleep(0.2)
        acceptors = d.acceptors()
        before = cpu_seconds(acceptors)
        time.sleep(1.0)
        used = cpu_seconds(acceptors) - before
        h.check(used < 0.3, f"expected the acceptor asleep while a connection waits for a worker from a stopped "
                            f"spawner, it used {used:.2f}s of CPU in 1s")
    finally:
        os.kill(spawner[0], signal.SIGCONT)
    try:
        _, uid = served_by(c.read_response(), "GET /pid.cgi on b.test once the spawner continued")
        h.expect_eq(uid, h.UID_B, "uid of the script on b.test")
    finally:
        c.close()
        d.stop()


def body_and_pipelining_on_a_reused_worker(d):
    spare = spare_of(d, "a.test", h.UID_A)
    body = os.urandom(BODY_SIZE)
    resp = h.fetch(d.port, "/body.cgi", "a.test", method="POST", body=body,
                   headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
    h.expect_status(resp, 200, f"POST of {BODY_SIZE} bytes to /body.cgi")
    kv = h.key_values(resp.body)
    h.expect_eq(kv.get("worker"), str(spare), "worker of the POST (the spare)")
    h.expect_eq(kv.get("length"), str(BODY_SIZE), "body length the script read")
    h.expect_eq(kv.get("sha256"), hashlib.sha256(body).hexdigest(), "sha256 of the body the script read")
    wait_spare(spare, "after the POST")
    pid, _ = probe(d)
    h.expect_eq(pid, spare, "worker of a GET after the POST (nothing of the body left behind)")
    wait_spare(spare, "after the GET that followed the POST")

    pipelined = (h.build_request("GET", "/pid.cgi", "a.test", {"Connection": "close"})
                 + h.build_request("GET", "/pid.cgi?second", "a.test"))
    resp, closed, extra = h.send_raw(d.port, pipelined)
    pid, _ = served_by(resp, "first of two pipelined requests (Connection: close)")
    h.expect_eq(pid, spare, "worker of the pipelined requests (the spare)")
    h.check("close" in resp.connection_tokens(), f"expected Connection: close on the answer\n{resp.describe()}")
    h.check(closed, "expected the connection closed after the Connection: close response, still open")
    h.check(not extra, f"expected nothing after the first response (the second request is not served), "
                       f"got {extra[:200]!r}")
    wait_spare(spare, "after the pipelined requests")


def late_closer_does_not_hold_the_worker(d):
    spare = spare_of(d, "a.test", h.UID_A)
    with h.Conn(d.port) as c:
        c.request("GET", "/pid.cgi", "a.test", [("Connection", "close")])
        pid, _ = served_by(c.read_response(), "Connection: close request whose client keeps the socket open")
        h.expect_eq(pid, spare, "worker of the request")
        # The client has its whole response but has not closed. The worker drains the connection in the
        # background (up to 2 s) and is a spare again at once, well before that.
        start = time.monotonic()
        again = h.wait_until(lambda: not has_connection(pid) and sleeping_in(pid), 1.0, interval=0.02)
        h.check(again, f"expected worker {pid} back as a spare within 1 s while its last client keeps the "
                       f"connection open (lingering must not hold the worker)")
        wait_spare(pid, "while the previous client still holds its connection")
        h.check(time.monotonic() - start < 1.5, "the worker took the full lingering time to become a spare")
        nxt, _ = probe(d)
        h.expect_eq(nxt, spare, "worker of the next connection while the previous client still holds its own")
        closed, extra = c.wait_closed(2)
        h.check(closed and not extra, f"expected the first connection ended by the server, nothing more on it "
                                      f"(closed={closed}, extra={extra[:80]!r})")
    wait_spare(spare, "after both connections")


SCENARIOS = [
    sequential_close_requests_share_a_worker,
    late_closer_does_not_hold_the_worker,
    http10_and_closed_keepalive_are_reused,
    each_vhost_keeps_its_own_worker,
    concurrent_connections_then_reuse_of_that_set,
    spares_are_not_clients,
    idle_spare_is_retired,
    reload_retires_spares,
    stop_with_spares_exits_promptly,
    acceptor_sleeps_while_a_connection_waits_for_a_fork,
    body_and_pipelining_on_a_reused_worker,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

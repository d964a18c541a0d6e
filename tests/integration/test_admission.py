# Admission control: MaxClientsVHost and MaxClients count live workers (one per kept-alive connection);
# over a limit the answer is 503 with Retry-After at once, other vhosts are unaffected, and a slot is
# freed when its connection closes or its worker is killed.

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

VHOST_LIMIT = 2
GLOBAL_LIMIT = 4


def setup():
    tree = h.two_tenant_tree(server={"MaxClients": GLOBAL_LIMIT, "KeepAliveTimeout": 60},
                             a_keys={"MaxClientsVHost": VHOST_LIMIT})
    return h.Daemon(tree).start()


def hold(d, host, conns):
    """Opens a keep-alive connection and completes one request on it, so that it holds a worker."""
    c = h.Conn(d.port)
    conns.append(c)
    c.request("GET", "/", host)
    h.expect_status(c.read_response(), 200, f"keep-alive GET / on {host} (connection {len(conns)} held)")
    return c


def wait_workers(d, uid, count):
    got = h.wait_until(lambda: len(d.busy_workers(uid)) == count, 5)
    whose = "in all" if uid is None else f"of uid {uid}"
    h.check(got, f"expected {count} workers holding a connection {whose}, found {d.busy_workers(uid)}")


def release(d, conns):
    since = d.notify.mark()
    held = bool(conns)
    for c in conns:
        c.close()
    conns.clear()
    h.wait_until(lambda: not d.busy_workers(), 5)
    # A worker that let go of its connection is uncounted once its acceptor has taken it as a spare:
    # wait until STATUS says so, so that the next scenario starts with every slot free.
    if held:
        d.wait_status(lambda st: st["workers"] == 0, 5, since)


def expect_refused(d, host, what):
    resp = h.fetch(d.port, "/", host, timeout=5)
    h.expect_status(resp, 503, what)
    retry = resp.header("Retry-After")
    h.check(retry is not None and retry.strip().isdigit(),
            f"{what}: expected a Retry-After header with seconds, got {retry!r}\n{resp.describe()}")


def expect_served_again(d, host, what):
    """Polls with new connections; 503s are fine until the slot is free."""
    last = []

    def served():
        try:
            resp = h.fetch(d.port, "/", host)
        except h.Fail:
            resp = None
        last[:] = [resp]
        return resp is not None and resp.status == 200
    ok = h.wait_until(served, 5, interval=0.2)
    h.check(ok, f"{what}: expected {host} served again within 5s, last answer: "
                f"{last[0].describe() if last and last[0] else 'none'}")


def vhost_limit_refuses_at_once(d):
    conns = []
    try:
        hold(d, "a.test", conns)
        hold(d, "a.test", conns)
        wait_workers(d, h.UID_A, VHOST_LIMIT)
        expect_refused(d, "a.test", f"a third connection to a.test (MaxClientsVHost = {VHOST_LIMIT})")
        h.expect_eq(len(d.busy_workers(h.UID_A)), VHOST_LIMIT, "workers of a.test holding a connection after the 503")
        resp = h.fetch(d.port, "/", "b.test")
        h.expect_status(resp, 200, "b.test while a.test is at its MaxClientsVHost")
    finally:
        release(d, conns)


def slot_freed_when_connection_closes(d):
    conns = []
    try:
        hold(d, "a.test", conns)
        hold(d, "a.test", conns)
        wait_workers(d, h.UID_A, VHOST_LIMIT)
        expect_refused(d, "a.test", "a.test at its limit")
        conns.pop().close()
        expect_served_again(d, "a.test", "after closing one of the two held connections")
    finally:
        release(d, conns)


def slot_freed_when_worker_killed(d):
    conns = []
    try:
        hold(d, "a.test", conns)
        victim_conn = hold(d, "a.test", conns)
        wait_workers(d, h.UID_A, VHOST_LIMIT)
        master, acceptors = d.pid, d.acceptors()
        victim = d.worker_for(victim_conn)
        h.check(victim, f"expected an itk-worker holding the second connection, workers: {d.workers()}")
        os.kill(victim, signal.SIGKILL)
        expect_served_again(d, "a.test", f"after SIGKILL of worker {victim}")
        h.check(d.running() and d.pid == master, "expected the master still running, not restarted")
        h.expect_eq(d.acceptors(), acceptors, "acceptor pids after a worker was killed (nothing restarted)")
    finally:
        release(d, conns)


def global_limit_refuses_every_vhost(d):
    conns = []
    try:
        hold(d, "a.test", conns)
        hold(d, "a.test", conns)
        hold(d, "b.test", conns)
        last_b = hold(d, "b.test", conns)
        wait_workers(d, None, GLOBAL_LIMIT)
        expect_refused(d, "b.test", f"b.test with {GLOBAL_LIMIT} workers alive (MaxClients = {GLOBAL_LIMIT})")
        expect_refused(d, "a.test", f"a.test with {GLOBAL_LIMIT} workers alive (MaxClients = {GLOBAL_LIMIT})")
        conns.remove(last_b)
        last_b.close()
        expect_served_again(d, "b.test", "after closing one connection under MaxClients")
    finally:
        release(d, conns)


def status_counts_refusals(d):
    st = d.wait_status(lambda s: s["refused"] > 0, timeout=5)
    h.check(st is not None, f"expected a STATUS with 'refused: N' above 0 after 503s, "
                            f"got {d.notify.statuses()[-5:]}")


def status_says_cgroup_accounting_is_off(d):
    # Under systemd-socket-activate itkd has no delegated cgroup: it must say so, and count in shared memory
    # (the scenarios above are that fallback at work).
    statuses = d.notify.statuses()
    h.check(any("cgroups: off (" in s for s in statuses),
            f"expected STATUS to say 'cgroups: off (<why>)', got {statuses[-3:]}")


SCENARIOS = [
    status_says_cgroup_accounting_is_off,
    vhost_limit_refuses_at_once,
    slot_freed_when_connection_closes,
    slot_freed_when_worker_killed,
    global_limit_refuses_every_vhost,
    status_counts_refusals,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

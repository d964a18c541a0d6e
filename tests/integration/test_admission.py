# Admission control: MaxClientsVHost and MaxClients count live workers (one per kept-alive connection).
# Over a limit a connection waits for a slot for QueueTimeout, first come first served, then gets 503 with
# Retry-After; with QueueTimeout 0 it gets the 503 at once. Other vhosts are unaffected, and a slot is freed
# when its connection closes or its worker is killed.

import os
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

VHOST_LIMIT = 2
GLOBAL_LIMIT = 4
QUEUE_TIMEOUT = 2   # the wait that test_admission sees run out
LONG_QUEUE = 15     # a wait that never runs out in the scenarios that free a slot, even on a busy machine


def setup():
    # QueueTimeout 0: refused at once, as mpm-itk does.
    tree = h.two_tenant_tree(server={"MaxClients": GLOBAL_LIMIT, "KeepAliveTimeout": 60, "QueueTimeout": 0},
                             a_keys={"MaxClientsVHost": VHOST_LIMIT})
    return h.Daemon(tree).start()


def queue_daemon(queue_timeout):
    # One acceptor, so that every connection meets the same queue.
    tree = h.two_tenant_tree(server={"MaxClients": GLOBAL_LIMIT, "KeepAliveTimeout": 60, "StartServers": 1,
                                     "QueueTimeout": queue_timeout},
                             a_keys={"MaxClientsVHost": VHOST_LIMIT})
    return h.Daemon(tree, name="itkd-queue").start()


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


def send_pending(d, host, conns):
    """A keep-alive request whose answer is not read yet; served, it keeps its slot."""
    c = h.Conn(d.port, timeout=LONG_QUEUE + 10)
    conns.append(c)
    c.request("GET", "/", host)
    return c


def silent_for(c, seconds):
    readable, _, _ = select.select([c.sock], [], [], seconds)
    return not readable


def queue_daemon_at_limit(queue_timeout):
    """A queue daemon with a.test at its MaxClientsVHost: the connections holding its slots."""
    d = queue_daemon(queue_timeout)
    conns = []
    try:
        for _ in range(VHOST_LIMIT):
            hold(d, "a.test", conns)
        wait_workers(d, h.UID_A, VHOST_LIMIT)
    except BaseException:
        for c in conns:
            c.close()
        d.stop()
        raise
    return d, conns


def finish(d, conns):
    for c in conns:
        c.close()
    d.stop()


def over_the_limit_waits_for_a_slot(_):
    d, conns = queue_daemon_at_limit(LONG_QUEUE)
    try:
        first = send_pending(d, "a.test", conns)
        second = send_pending(d, "a.test", conns)
        h.check(silent_for(first, 0.5) and silent_for(second, 0),
                f"expected two connections over MaxClientsVHost = {VHOST_LIMIT} to wait for a slot "
                f"(QueueTimeout = {LONG_QUEUE}), but one was answered")
        # Waiting connections hold no slot: the other vhost is served at once, and a.test never has more
        # workers than its share.
        h.expect_status(h.fetch(d.port, "/", "b.test"), 200, "b.test while two a.test connections wait")
        h.expect_eq(len(d.busy_workers(h.UID_A)), VHOST_LIMIT, "workers of a.test holding a connection while two wait")
        # First come, first served: the first slot freed goes to the first that waited.
        conns.pop(0).close()
        h.expect_status(first.read_response(timeout=10), 200, "the first waiting connection once a slot was freed")
        h.check(silent_for(second, 0.3), "the second waiting connection was answered before a second slot was freed")
        conns.pop(0).close()
        h.expect_status(second.read_response(timeout=10), 200, "the second waiting connection once another slot "
                                                                "was freed")
        h.expect_eq(len(d.busy_workers(h.UID_A)), VHOST_LIMIT, "workers of a.test after the waiting ones were served")
    finally:
        finish(d, conns)


def waiting_past_queue_timeout_is_refused(_):
    d, conns = queue_daemon_at_limit(QUEUE_TIMEOUT)
    try:
        start = time.monotonic()
        c = send_pending(d, "a.test", conns)
        resp = c.read_response(timeout=QUEUE_TIMEOUT + 5)
        took = time.monotonic() - start
        h.expect_status(resp, 503, f"a connection that waited QueueTimeout = {QUEUE_TIMEOUT} s for a slot of a.test")
        h.check(resp.header("Retry-After") is not None, f"503 without Retry-After\n{resp.describe()}")
        h.check(QUEUE_TIMEOUT - 0.3 <= took <= QUEUE_TIMEOUT + 3,
                f"expected the 503 after about QueueTimeout = {QUEUE_TIMEOUT} s, came after {took:.2f} s")
        h.check("MaxClientsVHost for QueueTimeout" in d.log_text(),
                f"expected the journal to say why: 'vhost at MaxClientsVHost for QueueTimeout'\n{d.log_tail()}")
    finally:
        finish(d, conns)


def queue_holds_at_most_max_clients(_):
    # Waiting connections each hold a descriptor in the acceptor: at most MaxClients of them wait, the next
    # is refused at once.
    d, conns = queue_daemon_at_limit(LONG_QUEUE)
    try:
        waiting = [send_pending(d, "a.test", conns) for _ in range(GLOBAL_LIMIT)]
        h.check(silent_for(waiting[-1], 0.5), f"expected {GLOBAL_LIMIT} connections over a.test's limit to wait")
        start = time.monotonic()
        resp = h.fetch(d.port, "/", "a.test", timeout=LONG_QUEUE + 5)
        took = time.monotonic() - start
        h.expect_status(resp, 503, f"a connection to a.test with MaxClients = {GLOBAL_LIMIT} connections waiting")
        h.check(took < LONG_QUEUE / 2, f"expected the 503 at once with the queue full, came after {took:.2f} s")
        h.check(all(silent_for(c, 0) for c in waiting), "a waiting connection was answered")
        h.check("MaxClients connections wait for a slot already" in d.log_text(),
                f"expected the journal to say why the 503 came at once\n{d.log_tail()}")
    finally:
        finish(d, conns)


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


# ---------------------------------------------------------------------------------------------------
# A hostile tenant against the slots: its CGI stops its own worker (same uid) for ever, or holds its
# connection as long as it likes. Each with an itkd of its own.

UID_STOP = 2011  # a uid of its own, so that whatever its CGIs leave running is killed by uid
STOP_MAX_CLIENTS = 8
STOP_CGI = "#!/bin/sh\nkill -STOP $PPID\nexec sleep 30\n"


def stop_tree(**server):
    tree = h.Tree()
    # QueueTimeout 0: a.test's connections over its share are refused at once, which shows the share.
    tree.write_server_conf(QueueTimeout=0, **server)
    root_a = h.make_tenant(tree, "a", UID_STOP)
    root_b = h.make_tenant(tree, "b", h.UID_B)
    tree.write(os.path.join(root_a, "stop.cgi"), STOP_CGI, UID_STOP, mode=0o755)
    tree.write(os.path.join(root_a, "slow.cgi"), "#!/bin/sh\nexec sleep 30\n", UID_STOP, mode=0o755)
    tree.write_vhost("10-a.conf", "a.test", root_a, UID_STOP, CGI=".cgi", CGITimeout=60)
    tree.write_vhost("20-b.conf", "b.test", root_b, h.UID_B)
    h.cleanup_uid_at_exit(UID_STOP)
    return tree


def self_stopping_tenant_cannot_fill_max_clients(shared):
    d = h.Daemon(stop_tree(MaxClients=STOP_MAX_CLIENTS), name="itkd-stop").start()
    conns = []
    try:
        for _ in range(10):
            c = h.Conn(d.port, timeout=15)
            c.request("GET", "/stop.cgi", "a.test", [("Connection", "close")])
            conns.append(c)
        # Whatever a.test's scripts do to its own workers, b.test keeps its share of MaxClients.
        for i in range(3):
            resp = h.fetch(d.port, "/", "b.test")
            h.expect_status(resp, 200, f"b.test (request {i + 1}) while a.test's CGIs stop their own workers "
                                       f"(MaxClients = {STOP_MAX_CLIENTS}, no MaxClientsVHost set)")
        # The stopped workers are killed and their slots come back: every connection to a.test ends (a 503
        # from admission, or closed without an answer when its worker was killed), and a.test serves again.
        answers = []
        for c in conns:
            closed, data = c.wait_closed(10)
            h.check(closed, "a connection to a.test whose worker was stopped still open after 10s")
            answers.append(data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed")
        print(f"# a.test answers: {answers}", flush=True)
        h.check("503" in answers, f"expected a.test's share (MaxClients / 2) to refuse some of 10 requests, got {answers}")
        resp = h.fetch(d.port, "/", "a.test")
        h.expect_status(resp, 200, "a.test once its stopped workers were killed")
        h.check("was stopped by a signal" in d.log_text(), "expected the journal to say why the workers were killed")
        st = d.wait_status(lambda s: s["workers"] == 0, 5)
        h.check(st is not None, f"expected 'workers: 0' once the stopped workers were killed, got "
                                f"{d.notify.statuses()[-3:]}")
    finally:
        finish(d, conns)
        h.kill_uid(UID_STOP)


def connection_past_max_connection_time_is_ended(shared):
    d = h.Daemon(stop_tree(MaxConnectionTime=2), name="itkd-lifetime").start()
    try:
        with h.Conn(d.port, timeout=15) as c:
            start = time.monotonic()
            c.request("GET", "/slow.cgi", "a.test", [("Connection", "close")])
            closed, data = c.wait_closed(10)
            took = time.monotonic() - start
        h.check(closed and took < 6, f"MaxConnectionTime = 2: expected the connection ended within 6s, "
                                     f"{'took ' + format(took, '.1f') + 's' if closed else 'still open after 10s'}")
        h.check("MaxConnectionTime" in d.log_text(), "expected the journal to say the worker was killed for its age")
        h.expect_status(h.fetch(d.port, "/", "a.test"), 200, "a.test after its old connection was ended")
    finally:
        d.stop()
        h.kill_uid(UID_STOP)


SCENARIOS = [
    status_says_cgroup_accounting_is_off,
    vhost_limit_refuses_at_once,
    slot_freed_when_connection_closes,
    slot_freed_when_worker_killed,
    global_limit_refuses_every_vhost,
    status_counts_refusals,
    over_the_limit_waits_for_a_slot,
    waiting_past_queue_timeout_is_refused,
    queue_holds_at_most_max_clients,
    self_stopping_tenant_cannot_fill_max_clients,
    connection_past_max_connection_time_is_ended,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

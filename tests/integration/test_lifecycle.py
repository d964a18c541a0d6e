# Start, check, crash and stop: --check output, refusal without (or with the wrong) listening fds,
# respawn of a killed acceptor, workers outliving their acceptor, and graceful SIGTERM.

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BIG_SIZE = 32 << 20
GRACE = 20  # GracefulShutdownTimeout in the SIGTERM scenario


def started(server=None, a_files=None):
    return h.Daemon(h.two_tenant_tree(server=server, a_files=a_files)).start()


def check_accepts_a_good_tree(_):
    tree = h.two_tenant_tree()
    code, out, err = h.run_itkd_direct(["--config", tree.conf, "--config-dir", tree.conf_dir, "--check"])
    h.expect_eq(code, 0, f"exit status of --check on a valid tree (stderr: {err.strip()[-300:]!r})")
    h.check("ok" in (out + err).lower(), f"expected --check to say the configuration is OK, "
                                         f"got stdout {out!r} stderr {err!r}")


def check_reports_every_error_with_file_and_line(_):
    tree = h.two_tenant_tree()
    tree.write_server_conf(text="[server]\nStartServers = 2\nTimeout = soon\nUser = nobody\n")
    tree.write_dropin("30-bad.conf", "[vhost]\nServerName = bad.test\n"
                                     f"DocumentRoot = {tree.root_b}\nBogusKey = 1\n"
                                     f"AssignUserID = #{h.UID_B} #{h.UID_B}\n")
    tree.write_dropin("40-root.conf", "[vhost]\nServerName = root.test\n"
                                      f"DocumentRoot = {tree.root_b}\nAssignUserID = #0 #0\n")
    code, out, err = h.run_itkd_direct(["--config", tree.conf, "--config-dir", tree.conf_dir, "--check"])
    h.expect_eq(code, 1, f"exit status of --check on a tree with errors (stderr: {err.strip()[-500:]!r})")
    for pattern, what in ((r"itk\.conf:3: Timeout: \S", "the bad Timeout on itk.conf line 3"),
                          (r"30-bad\.conf:4: BogusKey: \S", "the unknown key on 30-bad.conf line 4"),
                          (r"40-root\.conf:4: AssignUserID: \S", "the root identity on 40-root.conf line 4")):
        h.check(re.search(pattern, err), f"expected stderr to report {what} as 'FILE:LINE: KEY: message' "
                                         f"(/{pattern}/), got:\n{err.strip()}")


def check_errors_carry_their_priority_into_the_journal(_):
    """ExecReload=itkd --check: when stderr is the journal stream, errors are logged at error priority."""
    tree = h.two_tenant_tree()
    tree.write_dropin("30-bad.conf", "[vhost]\nServerName = bad.test\n"
                                     f"DocumentRoot = {tree.root_b}\nMaxClientsVHost = many\n"
                                     f"AssignUserID = #{h.UID_B} #{h.UID_B}\n")
    args = [h.ITKD, "--config", tree.conf, "--config-dir", tree.conf_dir, "--check"]
    for journal in (True, False):
        with open(tree.path(f"check-stderr-{journal}"), "w+b") as f:
            st = os.fstat(f.fileno())
            env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
            if journal:
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            code = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f,
                                  env=env, timeout=10).returncode
            f.seek(0)
            lines = f.read().decode("utf-8", "replace").splitlines()
        h.expect_eq(code, 1, "exit status of --check on a broken tree")
        error = [l for l in lines if "30-bad.conf:4" in l]
        h.check(error, f"expected the error on 30-bad.conf:4, got {lines}")
        if journal:
            h.check(all(l.startswith("<3>") for l in error + [lines[-1]]),
                    f"expected errors prefixed <3> (journal priority err) under JOURNAL_STREAM, got {lines}")
        else:
            h.check(not any(l.startswith("<") for l in lines),
                    f"expected plain lines on a stderr that is not the journal, got {lines}")


def broken_configuration_at_start_answers_503_and_waits_for_a_fix(_):
    """Standby: clients are answered at once, the errors are said once, SIGHUP with a fix starts serving."""
    tree = h.two_tenant_tree()
    bad = "[vhost]\nServerName = bad.test\nDocumentRoot = /nonexistent/x\nMaxClientsVHost = many\n" \
          f"AssignUserID = #{h.UID_B} #{h.UID_B}\n"
    tree.write_dropin("30-bad.conf", bad)
    d = h.Daemon(tree, name="itkd-standby").start()
    try:
        h.check(h.wait_until(lambda: any("configuration error: " in m for m in d.notify.statuses()), 5),
                f"expected STATUS to say 'configuration error: ...', got {d.notify.summary()}")
        for _ in range(3):
            resp = h.fetch(d.port, "/", "a.test", timeout=5)
            h.expect_status(resp, 503, "a request while the configuration does not load")
            h.check(resp.header("retry-after"), f"expected Retry-After on the standby answer\n{resp.describe()}")
        time.sleep(4.5)  # two retries by the timer (2 s, then 4 s later)
        said = d.log_text().count("30-bad.conf:4: MaxClientsVHost")
        h.expect_eq(said, 1, "log lines naming the error after two retries with the same errors")
        h.check(d.running(), "itkd exited in standby")
        d.signal(signal.SIGUSR1)  # logrotate's reopen: nothing to reopen yet, and no exit
        time.sleep(0.3)
        h.check(d.running(), "itkd exited on SIGUSR1 in standby")
        os.unlink(os.path.join(tree.conf_dir, "30-bad.conf"))
        d.reload()
        h.expect_status(h.fetch(d.port, "/", "a.test"), 200, "a request once the fixed configuration loaded")
        h.check(d.acceptors(), "expected acceptors once out of standby")
    finally:
        code = d.stop()
    h.expect_eq(code, 0, "exit status of itkd stopped after leaving standby")


def standby_stops_on_sigterm(_):
    tree = h.two_tenant_tree()
    tree.write_dropin("30-bad.conf", "[vhost]\nServerName = bad.test\n")
    d = h.Daemon(tree, name="itkd-standby-stop").start()
    d.signal(signal.SIGTERM)
    h.expect_eq(d.wait_exit(5), 0, "exit status of itkd in standby after SIGTERM")


def refuses_to_start_without_listeners(_):
    tree = h.two_tenant_tree()
    code, out, err = h.run_itkd_direct(["--config", tree.conf, "--config-dir", tree.conf_dir])
    h.check(code != 0, f"expected a non-zero exit without listening fds, got {code}; stderr {err!r}")
    h.check("itk.socket" in err or "systemd-socket-activate" in err,
            f"expected stderr to say to start itkd via itk.socket or systemd-socket-activate, got {err!r}")


def refuses_an_https_listener(_):
    d = h.Daemon(h.two_tenant_tree(), fdname="https", name="itkd-https")
    d.start(wait_ready=False)
    code = d.wait_exit(10)
    d.close_trigger()
    h.check(code is not None, "expected itkd to refuse a listening fd named 'https' and exit, "
                              "it was still running after 10s")
    h.check(code != 0, f"expected a non-zero exit with an 'https' listener, got {code}")
    log = d.log_text()
    h.check(re.search(r"https|tls", log, re.IGNORECASE),
            f"expected the refusal to mention https/TLS, got {log.strip()[-400:]!r}")
    h.check(d.notify.wait_for(lambda m: m.get("READY") == "1", 0)[0] is None,
            "expected no READY=1 from an itkd that refused to start")


def killed_acceptor_is_replaced(_):
    d = started()
    before = h.wait_until(d.acceptors, 5)
    h.check(before, "expected itk-acceptor children of the master, found none")
    victim = before[0]
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = d.acceptors()
        return now if len(now) == len(before) and victim not in now else None
    now = h.wait_until(replaced, 5)
    h.check(now, f"expected the killed acceptor {victim} replaced by a new itk-acceptor child "
                 f"({len(before)} in all) within 5s; before {before}, now {d.acceptors()}")
    h.check(d.running(), f"expected the master to keep running, exit status {d.proc.poll()}")
    for i in range(6):
        host = ("a.test", "b.test")[i % 2]
        resp = h.fetch(d.port, "/", host)
        h.expect_status(resp, 200, f"GET / on {host} after an acceptor was killed")


def worker_outlives_its_spawner_and_acceptors(_):
    d = started()
    with h.Conn(d.port) as c:
        c.request("GET", "/", "a.test")
        h.expect_status(c.read_response(), 200, "keep-alive GET / on a.test")
        worker = d.worker_for(c)
        h.check(worker, f"expected an itk-worker holding the connection, workers: {d.workers()}")
        spawner = h.ppid_of(worker)
        h.check(h.comm_of(spawner) == "itk-spawner",
                f"expected worker {worker}'s parent to be the itk-spawner, got {spawner} ({h.comm_of(spawner)})")
        # The process that forked it and the acceptors that handed it the connection all die.
        for pid in [spawner] + d.acceptors():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # the master may already have replaced it once the spawner died

        adopted = h.wait_until(lambda: h.ppid_of(worker) == d.pid, 5)
        h.check(adopted, f"expected worker {worker} reparented to the master {d.pid} after its spawner "
                         f"{spawner} died, its parent is {h.ppid_of(worker)}")
        c.request("GET", "/", "a.test")
        resp = c.read_response()
        h.expect_status(resp, 200, "next request on the connection whose spawner and acceptors died")
    # The master started a new spawner and acceptors, which serve.
    h.check(h.wait_until(lambda: len(d.acceptors()) >= 2, 10), f"expected new acceptors, have {d.acceptors()}")
    h.expect_status(h.fetch(d.port, "/", "a.test"), 200, "GET / after the spawner was replaced")


def sigterm_lets_a_download_finish(_):
    big = os.urandom(BIG_SIZE)
    d = started(server={"GracefulShutdownTimeout": GRACE}, a_files={"big.bin": big})
    with h.Conn(d.port, timeout=GRACE + 10, rcvbuf=16384) as c:
        c.request("GET", "/big.bin", "a.test", {"Connection": "close"})
        resp = c.read_head()
        h.expect_status(resp, 200, "GET /big.bin")
        h.expect_header(resp, "Content-Length", str(BIG_SIZE), "GET /big.bin")
        received = bytearray(c.read_exact(1 << 20))
        mark = d.notify.mark()
        d.signal(signal.SIGTERM)
        i, _ = d.notify.wait_for(lambda m: m.get("STOPPING") == "1", 5, mark)
        h.check(i is not None, f"expected STOPPING=1 after SIGTERM, got {d.notify.summary(mark)}")
        # Keep reading slowly: the daemon has to wait for this client, not the other way round.
        while len(received) < BIG_SIZE:
            received += c.read_exact(min(1 << 20, BIG_SIZE - len(received)), timeout=GRACE)
            time.sleep(0.03)
            if len(received) == BIG_SIZE // 2:
                # Under systemd the exit of the main process kills the whole cgroup, download included.
                h.check(d.running(), f"expected the master to wait for the download in flight, it exited "
                                     f"with status {d.proc.poll()} with {len(received)} of {BIG_SIZE} bytes sent")
        h.check(hashlib.sha256(received).digest() == hashlib.sha256(big).digest(),
                "expected the 32 MiB download in flight at SIGTERM to complete intact; its content differs")
    code = d.wait_exit(GRACE + 5)
    h.check(code is not None, f"expected itkd to exit within GracefulShutdownTimeout = {GRACE}s after SIGTERM")
    h.expect_eq(code, 0, "exit status after SIGTERM")
    gone = h.wait_until(lambda: not h.group_members(d.pid), 5)
    h.check(gone, f"expected no acceptor or worker left after exit, found "
                  f"{[(p, h.comm_of(p)) for p in h.group_members(d.pid)]}")


def status_follows_busy_workers_within_a_second(_):
    n = 4
    d = started(a_files={"big.bin": os.urandom(8 << 20)})
    h.check(d.wait_status(lambda st: st["workers"] == 0, 3), "expected STATUS with workers: 0 at start")
    conns = []
    try:
        for _ in range(n):
            c = h.Conn(d.port, timeout=10, rcvbuf=4096)  # a window so small the worker stays busy writing
            c.request("GET", "/big.bin", "a.test", {"Connection": "close"})
            h.expect_status(c.read_head(), 200, "GET /big.bin")
            conns.append(c)
        mark = d.notify.mark()
        busy = d.wait_status(lambda st: st["workers"] == n, 1.5, mark)
        h.check(busy, f"expected STATUS to say workers: {n} within 1.5 s of {n} downloads being served, got "
                      f"{d.notify.statuses(mark)[-3:]} (and before: {d.notify.statuses()[-2:]})")
    finally:
        for c in conns:
            c.close()
    mark = d.notify.mark()
    idle = d.wait_status(lambda st: st["workers"] == 0, 1.5, mark)
    h.check(idle, f"expected STATUS back at workers: 0 within 1.5 s of the downloads' end, got "
                  f"{d.notify.statuses(mark)[-3:]}")


def sigterm_when_idle_exits_cleanly(_):
    d = started()
    mark = d.notify.mark()
    d.signal(signal.SIGTERM)
    code = d.wait_exit(h.STOP_TIMEOUT)
    h.check(code is not None, f"expected itkd to exit within {h.STOP_TIMEOUT}s of SIGTERM when idle")
    h.expect_eq(code, 0, "exit status after SIGTERM")
    d.notify.drain()
    h.check(any(m.get("STOPPING") == "1" for m in d.notify.messages[mark:]),
            f"expected STOPPING=1 on the notify socket, got {d.notify.summary(mark)}")
    gone = h.wait_until(lambda: not h.group_members(d.pid), 5)
    h.check(gone, f"expected no acceptor or worker left after exit, found "
                  f"{[(p, h.comm_of(p)) for p in h.group_members(d.pid)]}")


def sigterm_exits_when_systemd_does_not_read(_):
    # A notify socket whose queue is full (systemd busy or hung; here nobody reads it): the master's
    # STOPPING=1 must not hold it in sendmsg for ever. It waits a few seconds, says so, and stops.
    d = started()
    d.notify.drain()
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(d.notify.path)
    filler.setblocking(False)
    sent = 0
    try:
        while sent < 1_000_000:
            filler.send(b"X=" + b"x" * 4000)
            sent += 1
    except BlockingIOError:
        pass
    finally:
        filler.close()
    h.check(sent < 1_000_000, "could not fill the notify socket's queue")
    d.signal(signal.SIGTERM)
    code = d.wait_exit(h.STOP_TIMEOUT)
    h.check(code is not None, f"itkd did not exit within {h.STOP_TIMEOUT}s of SIGTERM while its notify socket "
                              f"was full ({sent} messages queued):\n{d.log_tail()}")
    h.expect_eq(code, 0, "exit status after SIGTERM with a full notify socket")
    h.check("its queue stayed full" in d.log_text(), f"expected the journal to say the notify socket was full:\n"
                                                     f"{d.log_tail()}")


SCENARIOS = [
    check_accepts_a_good_tree,
    check_reports_every_error_with_file_and_line,
    check_errors_carry_their_priority_into_the_journal,
    broken_configuration_at_start_answers_503_and_waits_for_a_fix,
    standby_stops_on_sigterm,
    refuses_to_start_without_listeners,
    refuses_an_https_listener,
    killed_acceptor_is_replaced,
    worker_outlives_its_spawner_and_acceptors,
    sigterm_lets_a_download_finish,
    status_follows_busy_workers_within_a_second,
    sigterm_when_idle_exits_cleanly,
    sigterm_exits_when_systemd_does_not_read,
]

if __name__ == "__main__":
    h.main(SCENARIOS)

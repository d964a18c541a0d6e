# itkctl: the vhosts table and the configuration check without a daemon, the running master's status over
# its root-only control socket, reload and reopen-logs, and the process titles ps shows.

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ITKCTL = os.environ.get("ITKCTL") or os.path.join(os.path.dirname(h.ITKD or "."), "itkctl")
BIG = 8 << 20  # a download that fills a small receive window and holds its worker


def itkctl(*args, env=None, timeout=15):
    """Runs itkctl: (status, stdout, stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_") and k != "NOTIFY_SOCKET"}
    base.update(env or {})
    try:
        p = subprocess.run([ITKCTL] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=base, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise h.Fail(f"itkctl {' '.join(args)}: still running after {timeout}s") from None
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def tree_args(tree):
    return ["--config", tree.conf, "--config-dir", tree.conf_dir]


def socket_of(d):
    return os.path.join(d.runtime, "control.sock")


def status_json(d):
    code, out, err = itkctl("status", "--json", "--socket", socket_of(d))
    h.expect_eq(code, 0, f"exit status of itkctl status --json (stderr {err.strip()!r})")
    try:
        return json.loads(out)
    except ValueError as e:
        raise h.Fail(f"itkctl status --json printed no JSON ({e}): {out[:400]!r}") from None


def vhost_of(status, name):
    for v in status["vhosts"]:
        if v["name"] == name:
            return v
    raise h.Fail(f"itkctl status: no vhost {name!r} in {status['vhosts']!r}")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode("utf-8", "replace")
    except OSError:
        return None


def slow_download(d, host, path="/big.bin"):
    """A connection whose response fills its small receive window: its worker stays busy until it closes."""
    c = h.Conn(d.port, timeout=10, rcvbuf=4096)
    c.request("GET", path, host, {"Connection": "close"})
    resp = c.read_head()
    h.expect_status(resp, 200, f"GET {path} on {host}")
    return c


def version_is_printed(_):
    code, out, _ = itkctl("--version")
    h.expect_eq(code, 0, "exit status of itkctl --version")
    h.check(out.startswith("itkctl ") and out.strip() != "itkctl", f"expected 'itkctl VERSION', got {out!r}")
    code, _, err = itkctl("frobnicate")
    h.expect_eq(code, 2, f"exit status of an unknown command (stderr {err!r})")


def vhosts_lists_a_two_tenant_tree(_):
    tree = h.two_tenant_tree(a_keys={"ServerAlias": "www.a.test *.a.test", "CGI": ".cgi",
                                     "Handler": ".pl /usr/bin/perl", "MaxClientsVHost": 7},
                             b_keys={"Default": "yes"})
    code, out, err = itkctl("vhosts", *tree_args(tree))
    h.expect_eq(code, 0, f"exit status of itkctl vhosts (stderr {err.strip()!r})")
    a_conf, b_conf = os.path.join(tree.conf_dir, "10-a.conf"), os.path.join(tree.conf_dir, "20-b.conf")
    expected = [
        f"Configuration: {tree.conf} and {tree.conf_dir}, 2 vhost(s)",
        f"a.test  {a_conf}:1",
        "    aliases   www.a.test *.a.test",
        f"    root      {tree.root_a}",
        f"    user      {h.UID_A}:{h.UID_A} ({h.UID_A}/{h.UID_A})",
        "    handlers  CGI .cgi; Handler .pl /usr/bin/perl",
        "    limits    MaxClientsVHost 7",
        f"b.test (default)  {b_conf}:1",
        f"    root      {tree.root_b}",
        f"    user      {h.UID_B}:{h.UID_B} ({h.UID_B}/{h.UID_B})",
    ]
    lines = out.splitlines()
    # b.test's MaxClientsVHost is the server's default share: its line is there, whatever the number.
    lines = [line for line in lines if not (line.startswith("    limits") and lines.index(line) > 7)]
    h.expect_eq(lines, expected, "itkctl vhosts")


def check_json_on_a_good_and_a_broken_tree(_):
    tree = h.two_tenant_tree()
    code, out, err = itkctl("check", "--json", *tree_args(tree))
    h.expect_eq(code, 0, f"exit status of itkctl check --json on a good tree (stderr {err!r})")
    h.expect_eq(json.loads(out), {"ok": True, "vhosts": 2, "errors": [], "warnings": []}, "check --json, good tree")
    code, out, _ = itkctl("check", *tree_args(tree))
    h.expect_eq(code, 0, "exit status of itkctl check on a good tree")
    h.check("configuration OK" in out, f"expected 'configuration OK', got {out!r}")

    tree.write_server_conf(Timeout='"ten"')
    tree.write_dropin("30-c.conf", '[vhost]\nServerName = c.test\nDocumentRoot = /srv/"c"\nAssignUserID = #0 #0\n')
    code, out, err = itkctl("check", "--json", *tree_args(tree))
    h.expect_eq(code, 1, f"exit status of itkctl check --json on a broken tree (stderr {err!r})")
    try:
        report = json.loads(out)
    except ValueError as e:
        raise h.Fail(f"itkctl check --json printed no JSON ({e}): {out!r}") from None
    h.expect_eq((report["ok"], report["vhosts"]), (False, None), "ok and vhosts of a broken tree")
    where = {(e["file"], e["line"], e["key"]) for e in report["errors"]}
    h.check((tree.conf, 4, "Timeout") in where, f"expected an error at {tree.conf}:4 Timeout, got {report['errors']}")
    c_conf = os.path.join(tree.conf_dir, "30-c.conf")
    h.check(any(f == c_conf and k == "AssignUserID" for f, _, k in where),
            f"expected an AssignUserID error in {c_conf}, got {report['errors']}")
    h.check(all(isinstance(e["message"], str) and e["message"] for e in report["errors"]),
            f"every error needs a message: {report['errors']}")


def status_counts_requests_per_vhost(_):
    # QueueTimeout 0: the request over b.test's limit is refused at once instead of waiting for the slot.
    tree = h.two_tenant_tree(server={"QueueTimeout": 0}, b_keys={"MaxClientsVHost": 1},
                             b_files={"big.bin": os.urandom(BIG)})
    d = h.Daemon(tree).start()
    for _ in range(3):
        h.expect_status(h.fetch(d.port, "/", "a.test"), 200, "GET / on a.test")
    h.expect_status(h.fetch(d.port, "/missing", "a.test"), 404, "GET /missing on a.test")
    h.expect_status(h.fetch(d.port, "/", "b.test"), 200, "GET / on b.test")
    # The worker gives its slot back right after its response: wait for that before b.test's one slot is taken.
    h.check(h.wait_until(lambda: vhost_of(status_json(d), "b.test")["workers"] == 0, 5), "b.test still busy")
    with slow_download(d, "b.test") as held:
        refused = h.fetch(d.port, "/", "b.test")
        h.expect_status(refused, 503, "GET / on b.test while its one connection is held")
        s = status_json(d)
        a, b = vhost_of(s, "a.test"), vhost_of(s, "b.test")
        h.expect_eq((a["served"], a["refused"], a["workers"]), (4, 0, 0), "a.test served/refused/busy")
        # A response counts once it is written: the download in progress is not served yet.
        h.expect_eq((b["served"], b["refused"], b["workers"], b["at_limit"], b["max_clients"]), (1, 1, 1, True, 1),
                    "b.test served/refused/busy/at limit/MaxClientsVHost while held")
        h.check(a["idle"] >= 1, f"expected a spare worker kept for a.test after its requests, got {a}")
        h.expect_eq((s["workers"], s["served"], s["refused"], s["at_limit"]), (1, 5, 1, 1), "server totals")
        h.expect_eq((s["pid"], s["unit"], s["reload_error"]), (d.pid, None, None), "pid, unit, reload error")
        code, out, err = itkctl("status", env={"RUNTIME_DIRECTORY": d.runtime})
        h.expect_eq(code, 0, f"exit status of itkctl status with $RUNTIME_DIRECTORY (stderr {err!r})")
        rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
        row = rows.get("b.test", [])
        h.expect_eq(row[1:2] + row[3:], ["1", "0", "1", "1", "1/1", "at", "limit"], f"b.test row (but spares) in\n{out}")
        held.close()
    done = h.wait_until(lambda: (lambda b: b if b["workers"] == 0 and b["served"] == 2 else None)(
        vhost_of(status_json(d), "b.test")), 5)
    h.check(done, "expected b.test idle with 2 responses once its download was closed, got "
                  f"{vhost_of(status_json(d), 'b.test')}")


def control_socket_is_root_only(_):
    d = h.Daemon(h.two_tenant_tree()).start()
    path = socket_of(d)
    st = os.stat(path)
    h.check(stat.S_ISSOCK(st.st_mode), f"{path}: expected a socket")
    h.expect_eq((st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)), (0, 0, "0o600"), f"owner and mode of {path}")

    def as_tenant():
        """What a client of uid UID_A gets: 'refused:<errno>', or what the master sent before closing."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                os.setgroups([])
                os.setgid(h.UID_A)
                os.setuid(h.UID_A)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5)
                try:
                    s.connect(path)
                    got = b""  # nothing is sent: a root client that sends nothing is answered nothing
                    while True:
                        more = s.recv(65536)
                        if not more:
                            break
                        got += more
                    os.write(w, b"answer:" + got)
                except OSError as e:
                    os.write(w, f"refused:{e.errno}".encode())
            finally:
                os._exit(0)
        os.close(w)
        out = b""
        while True:
            more = os.read(r, 65536)
            if not more:
                break
            out += more
        os.close(r)
        os.waitpid(pid, 0)
        return out.decode("utf-8", "replace")

    got = as_tenant()
    h.expect_eq(got, "refused:13", "a tenant's connect to the control socket (EACCES)")
    # Past the file mode (an administrator's chmod), the master itself refuses by the peer's uid.
    os.chmod(path, 0o666)
    try:
        got = as_tenant()
    finally:
        os.chmod(path, 0o600)
    h.expect_eq(got, "answer:itk-control 1\nerror only%20root%20may%20ask\n", "what the master tells a tenant")
    seen = h.wait_until(lambda: f"refused a client of uid {h.UID_A}" in d.log_text(), 3)
    h.check(seen, f"expected the master to log the refused client; log tail: {d.log_tail(5)}")
    code, _, err = itkctl("status", "--socket", path, env={})
    h.expect_eq(code, 0, f"itkctl status as root after the refusals (stderr {err!r})")


def slow_clients_never_hold_up_the_master(_):
    d = h.Daemon(h.two_tenant_tree()).start()
    path = socket_of(d)
    silent = []
    for _ in range(12):  # more than the master serves at once, each sending nothing
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        silent.append(s)
    start = time.monotonic()
    d.reload()
    h.check(time.monotonic() - start < 5, "expected a reload while control clients stall to take under 5 s")
    h.expect_status(h.fetch(d.port, "/", "a.test"), 200, "GET / while control clients stall")
    time.sleep(2.5)  # every silent client's time is up
    code, _, err = itkctl("status", "--socket", path)
    h.expect_eq(code, 0, f"itkctl status after stalled clients timed out (stderr {err!r})")
    for s in silent:
        s.close()


def reload_checks_first_then_signals(_):
    tree = h.two_tenant_tree()
    d = h.Daemon(tree).start()
    before = status_json(d)
    root_c = h.make_tenant(tree, "c", h.UID_B)
    tree.write_vhost("30-c.conf", "c.test", root_c, h.UID_B)
    code, out, err = itkctl("reload", "--socket", socket_of(d))
    h.expect_eq(code, 0, f"exit status of itkctl reload (stdout {out!r} stderr {err!r})")
    h.check("reloaded" in out, f"expected itkctl reload to say it reloaded, got {out!r}")
    after = status_json(d)
    h.expect_eq(sorted(v["name"] for v in after["vhosts"]), ["a.test", "b.test", "c.test"], "vhosts after reload")
    h.check(after["generation"] > before["generation"], f"expected a new generation, {before['generation']} -> "
                                                        f"{after['generation']}")
    h.expect_status(h.fetch(d.port, "/", "c.test"), 200, "GET / on the new vhost")

    tree.write_dropin("40-bad.conf", "[vhost]\nServerName = bad.test\n")
    code, out, err = itkctl("reload", "--socket", socket_of(d))
    h.expect_eq(code, 1, f"exit status of itkctl reload on a broken tree (stdout {out!r} stderr {err!r})")
    h.check("40-bad.conf:" in err and "not reloading" in err, f"expected the errors and 'not reloading', got {err!r}")
    h.expect_eq(status_json(d)["reloads"], after["reloads"], "reloads after a refused itkctl reload (never signalled)")


def reopen_logs_is_taken_by_the_master(_):
    d = h.Daemon(h.two_tenant_tree()).start()
    code, _, err = itkctl("reopen-logs", "--socket", socket_of(d))
    h.expect_eq(code, 0, f"exit status of itkctl reopen-logs (stderr {err!r})")
    h.check(h.wait_until(lambda: "log files reopened" in d.log_text(), 3),
            f"expected the master to reopen its log files on SIGUSR1: {d.log_tail(5)}")
    h.check(d.running(), "expected the master to keep running after SIGUSR1")
    h.expect_status(h.fetch(d.port, "/", "a.test"), 200, "GET / after reopen-logs")


def process_titles_say_role_vhost_client_and_request(_):
    d = h.Daemon(h.two_tenant_tree(a_files={"big.bin": os.urandom(BIG)})).start()
    h.expect_eq(cmdline(d.pid), "itkd: master", "title of the master")
    h.expect_eq(h.comm_of(d.pid), "itkd", "comm of the master")
    for pid in d.acceptors():
        h.expect_eq(cmdline(pid), "itkd: acceptor", f"title of acceptor {pid}")
    for pid in d.children_named("itk-spawner"):
        h.expect_eq(cmdline(pid), "itkd: spawner", f"title of spawner {pid}")
    with h.Conn(d.port, timeout=10, rcvbuf=4096) as c:
        c.request("GET", "/big.bin?token=s3cret", "a.test", {"Connection": "close"})
        h.expect_status(c.read_head(), 200, "GET /big.bin?token=s3cret")
        pid = d.worker_for(c)
        h.check(pid, "expected to find the worker holding the download")
        title = cmdline(pid)
        h.check(title is not None and title.startswith("itkd: worker a.test 127.0.0.1 GET /big.bin since "),
                f"title of the busy worker: {title!r}")
        h.check(len(title.split()[-1]) == 8 and title.split()[-1].count(":") == 2,
                f"expected the request's time as HH:MM:SS at the end: {title!r}")
        h.check("s3cret" not in title and "?" not in title, f"the query string must never be in a title: {title!r}")
        h.expect_eq(h.comm_of(pid), "itk-worker", "comm of the worker")
    idle = h.wait_until(lambda: cmdline(pid) == "itkd: worker a.test idle", 5)
    h.check(idle, f"expected the worker's title to say idle once its connection ended, got {cmdline(pid)!r}")


SCENARIOS = [
    version_is_printed,
    vhosts_lists_a_two_tenant_tree,
    check_json_on_a_good_and_a_broken_tree,
    status_counts_requests_per_vhost,
    control_socket_is_root_only,
    slow_clients_never_hold_up_the_master,
    reload_checks_first_then_signals,
    reopen_logs_is_taken_by_the_master,
    process_titles_say_role_vhost_client_and_request,
]

if __name__ == "__main__":
    if not os.access(ITKCTL, os.X_OK):
        print(f"1..{len(SCENARIOS)}")
        for k, fn in enumerate(SCENARIOS, 1):
            print(f"ok {k} - {h.scenario_name(fn)} # SKIP ITKCTL does not name an executable itkctl")
        sys.exit(0)
    h.main(SCENARIOS)

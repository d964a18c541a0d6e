# Per-vhost access and error logs: one line per request in its vhost's file, in Apache's combined format;
# the acceptor's refusals there too; files a tenant can read but never write, truncate, rename or delete;
# rotation by rename + SIGUSR1 (or a reload) without a lost line.

import json
import os
import re
import signal
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

STDERR_MARKER = "itk-stderr-marker-5731"
AGENT = 'Mozilla/5.0 "quoted" back\\slash'
REFERER = 'http://ref.test/"r"'

# Combined Log Format with Apache's escaping: every quoted field may hold \" and \\.
QUOTED = r'"((?:[^"\\]|\\.)*)"'
COMBINED = re.compile(r'^(\S+) (\S+) (\S+) \[([^\]]+)\] ' + QUOTED + r' (\d{3}) (\d+|-) ' + QUOTED + ' ' + QUOTED + '$')

PY = "#!/usr/bin/python3\n"
HEAD = "import sys\nsys.stdout.write('Content-Type: text/plain\\n\\n')\nsys.stdout.flush()\n"

# Everything a tenant's code might try against the logs, as the tenant's uid; prints what succeeded.
ATTACK = PY + HEAD + """\
import json, os
own_dir, other_dir = os.environ['QUERY_STRING'].split('&')
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = 'ok'
    except OSError as e:
        results[name] = e.strerror
for d, who in ((own_dir, 'own'), (other_dir, 'other')):
    for f in ('access.log', 'error.log'):
        p = os.path.join(d, f)
        for flags, fl in (('wronly', os.O_WRONLY), ('append', os.O_WRONLY | os.O_APPEND),
                          ('trunc', os.O_WRONLY | os.O_TRUNC), ('rdwr', os.O_RDWR),
                          ('creat', os.O_WRONLY | os.O_CREAT)):
            attempt(f'{who} {f} open {flags}', lambda: os.close(os.open(p, fl)))
        attempt(f'{who} {f} truncate', lambda: os.truncate(p, 0))
        attempt(f'{who} {f} unlink', lambda: os.unlink(p))
        attempt(f'{who} {f} rename', lambda: os.rename(p, p + '.x'))
        attempt(f'{who} {f} chmod', lambda: os.chmod(p, 0o666))
        attempt(f'{who} {f} link', lambda: os.link(p, os.path.join(os.environ['TMPDIR'], 'l-' + who + f)))
    attempt(f'{who} dir rename', lambda: os.rename(d, d + '.x'))
    attempt(f'{who} dir rmdir', lambda: os.rmdir(d))
    attempt(f'{who} dir create', lambda: os.close(os.open(os.path.join(d, 'new.log'), os.O_WRONLY | os.O_CREAT, 0o644)))
worker = os.getppid()
attempt('worker fd list', lambda: os.listdir(f'/proc/{worker}/fd'))
for n in range(0, 16):
    attempt(f'worker fd {n}', lambda: os.close(os.open(f'/proc/{worker}/fd/{n}', os.O_WRONLY | os.O_APPEND)))
own_fds = sorted(os.listdir('/proc/self/fd'))
readable = False
try:
    open(os.path.join(own_dir, 'access.log'), 'rb').read()
    readable = True
except OSError:
    pass
print(json.dumps({'succeeded': [k for k, v in results.items() if v == 'ok'], 'attempted': len(results),
                  'read_own': readable,
                  'own_fds': own_fds, 'worker': worker}))
"""


def setup():
    tree = h.Tree()
    logs = tree.path("logs")
    tree.write_server_conf(StartServers=2, User=h.ACCEPTOR_USER, AccessLog=f"{logs}/%v/access.log",
                           ErrorLog=f"{logs}/%v/error.log")
    root_a = h.make_tenant(tree, "a", h.UID_A)
    root_b = h.make_tenant(tree, "b", h.UID_B)
    for rel, text in {"hello.cgi": PY + HEAD + "print('hello')\n",
                      "stderr.cgi": PY + HEAD + f"sys.stderr.write('{STDERR_MARKER}\\n')\nprint('logged')\n",
                      "attack.cgi": ATTACK}.items():
        tree.write(os.path.join(root_a, rel), text, h.UID_A, mode=0o755)
    tree.write(os.path.join(root_a, "private", "x.html"), "private\n", h.UID_A)
    tree.write_vhost("10-a.conf", "a.test", root_a, h.UID_A, CGI=".cgi", Deny="/private")
    tree.write_vhost("20-b.conf", "b.test", root_b, h.UID_B)
    d = h.Daemon(tree).start()
    d.logs = logs
    return d


def log_path(d, host, name="access.log"):
    return os.path.join(d.logs, host, name)


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []


def wait_for_line(path, predicate, what, timeout=3.0):
    found = h.wait_until(lambda: [l for l in read_lines(path) if predicate(l)], timeout)
    h.check(found, f"{what}: no matching line in {path} within {timeout}s; last lines:\n" +
            "\n".join(read_lines(path)[-8:]))
    return found


def parse_combined(line):
    m = COMBINED.match(line)
    h.check(m, f"not a Combined Log Format line: {line!r}")
    unescape = lambda s: re.sub(r'\\(.)', r'\1', s)  # noqa: E731
    return {"host": m[1], "ident": m[2], "user": m[3], "time": m[4], "request": unescape(m[5]),
            "status": int(m[6]), "bytes": m[7], "referer": unescape(m[8]), "agent": unescape(m[9]),
            "raw_request": m[5]}


def request_lands_in_its_vhosts_log(d):
    for host in ("a.test", "b.test"):
        marker = f"/index.html?who={host}&n={time.monotonic_ns()}"
        resp = h.fetch(d.port, marker, host, headers=[("User-Agent", AGENT), ("Referer", REFERER)])
        h.expect_status(resp, 200, f"GET {marker} on {host}")
        line = wait_for_line(log_path(d, host), lambda l, m=marker: m in l, f"{host}'s line")[0]
        f = parse_combined(line)
        h.expect_eq(f["request"], f"GET {marker} HTTP/1.1", "request line")
        h.expect_eq((f["host"], f["ident"], f["user"]), ("127.0.0.1", "-", "-"), "%h %l %u")
        h.expect_eq(f["status"], 200, "status")
        h.expect_eq(f["bytes"], str(len(resp.body)), "%b: the body's bytes")
        h.expect_eq(f["referer"], REFERER, "Referer")
        h.expect_eq(f["agent"], AGENT, "User-Agent")
        h.check('\\"quoted\\"' in line and "back\\\\slash" in line,
                f"quotes and backslashes in the User-Agent are escaped as Apache does: {line!r}")
        h.check(re.match(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$", f["time"]), f"%t: {f['time']!r}")
        other = "b.test" if host == "a.test" else "a.test"
        h.check(not any(marker in l for l in read_lines(log_path(d, other))),
                f"{host}'s request must not be in {other}'s log")


def quotes_in_request_line_escaped(d):
    target = '/missing"quote\\x.html'
    resp = h.fetch(d.port, target.replace("\\", "%5C"), "a.test")
    h.expect_status(resp, (400, 404), f"GET {target!r}")
    line = wait_for_line(log_path(d, "a.test"), lambda l: 'missing\\"quote' in l, "escaped request line")[0]
    f = parse_combined(line)
    h.check(f["request"].startswith('GET /missing"quote'), f"request line unescaped back: {f['request']!r}")


def acceptor_refusals_logged_for_the_vhost(d):
    big = "x" * 9000
    for status, raw in (
            (431, f"GET /refused-431 HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n"),
            (400, "POST /refused-400 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n")):
        h.expect_answer_then_close(d.port, raw.encode(), status, f"acceptor refuses with {status}")
        line = wait_for_line(log_path(d, "a.test"), lambda l, s=status: f"/refused-{s} " in l,
                             f"the {status}'s line")[0]
        f = parse_combined(line)
        h.expect_eq(f["status"], status, f"the {status}'s logged status")


def error_log_has_reasons(d):
    resp = h.fetch(d.port, "/private/x.html", "a.test")
    h.expect_status(resp, 403, "GET /private/x.html (Deny)")
    err = log_path(d, "a.test", "error.log")
    line = wait_for_line(err, lambda l: "/private" in l, "the 403's reason")[0]
    h.check(re.match(r"^\[\w{3} \w{3} \d\d \d\d:\d\d:\d\d\.\d{6} \d{4}\] \[core:\w+\] \[pid \d+\] "
                     r"\[client 127\.0\.0\.1:\d+\] ", line), f"Apache's error log shape: {line!r}")
    resp = h.fetch(d.port, "/nothing-here.html", "a.test")
    h.expect_status(resp, 404, "GET /nothing-here.html")
    wait_for_line(err, lambda l: "File does not exist" in l and "/nothing-here.html" in l, "the 404's reason")


def script_stderr_in_error_log(d):
    resp = h.fetch(d.port, "/stderr.cgi", "a.test")
    h.expect_status(resp, 200, "GET /stderr.cgi")
    wait_for_line(log_path(d, "a.test", "error.log"), lambda l: STDERR_MARKER in l, "the script's stderr")
    h.check(not any(STDERR_MARKER in l for l in read_lines(log_path(d, "b.test", "error.log"))),
            "a.test's stderr must not reach b.test's error log")


def owners_and_modes(d):
    for host, uid in (("a.test", h.UID_A), ("b.test", h.UID_B)):
        st = os.stat(os.path.join(d.logs, host))
        h.expect_eq((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, uid, 0o750), f"{host}'s log directory")
        for name in ("access.log", "error.log"):
            st = os.stat(log_path(d, host, name))
            h.expect_eq((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, uid, 0o640), f"{host}'s {name}")


def tenant_cannot_touch_logs(d):
    query = f"{os.path.join(d.logs, 'a.test')}&{os.path.join(d.logs, 'b.test')}"
    resp = h.fetch(d.port, f"/attack.cgi?{query}", "a.test")
    h.expect_status(resp, 200, "GET /attack.cgi")
    out = json.loads(resp.body)
    h.expect_eq(out["attempted"], 2 * (2 * 10 + 3) + 1 + 16, "attempts made by the script")
    h.expect_eq(out["succeeded"], [], "what a tenant's script managed against the logs")
    h.check(out["read_own"], "the tenant can read its own access log")
    h.expect_eq(out["own_fds"], ["0", "1", "2", "3"], "a script's descriptors (stdio, and listing its own fds)")
    for host in ("a.test", "b.test"):
        h.check(os.path.exists(log_path(d, host)), f"{host}'s access log is still there")


def request_numbers(paths, tag):
    seen = {}
    for p in paths:
        for line in read_lines(p):
            m = re.search(rf"[?&]{tag}=(\d+) ", line)
            if m:
                seen[int(m[1])] = seen.get(int(m[1]), 0) + 1
    return seen


def rotation_loses_no_line(d, tag, rotate):
    """Requests run in a loop across a rename and `rotate`; each answered one has exactly one line."""
    path = log_path(d, "a.test")
    rotated = f"{path}.{tag}"
    answered = []
    stop = threading.Event()
    errors = []

    def client():
        n = 0
        # Several connections with keep-alive, so old workers still hold requests when the rotation comes.
        conns = [h.Conn(d.port) for _ in range(3)]
        try:
            while not stop.is_set():
                c = conns[n % len(conns)]
                c.request("GET", f"/index.html?{tag}={n}", "a.test")
                resp = c.read_response()
                if resp is None or resp.status != 200:
                    conns[n % len(conns)] = h.Conn(d.port)
                    if resp is None:
                        n += 1
                        continue
                answered.append(n)
                n += 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(repr(e))
        finally:
            for c in conns:
                c.close()

    t = threading.Thread(target=client)
    t.start()
    try:
        time.sleep(0.5)
        os.rename(path, rotated)
        rotate()
        h.check(h.wait_until(lambda: os.path.exists(path), 5.0), f"{path} made anew after the rotation")
        time.sleep(0.7)
    finally:
        stop.set()
        t.join(10)
    h.check(not errors, f"the client loop failed: {errors}")
    h.check(len(answered) > 20, f"expected a loop of requests, got {len(answered)}")
    # Old workers finish what they hold first; their lines land in the renamed file.
    seen = h.wait_until(lambda: (lambda s: s if all(s.get(n) == 1 for n in answered) else None)(
        request_numbers([rotated, path], tag)), 5.0) or request_numbers([rotated, path], tag)
    missing = [n for n in answered if n not in seen]
    doubled = [n for n, k in seen.items() if k != 1]
    h.check(not missing and not doubled,
            f"{len(answered)} answered: missing lines {missing[:10]}, lines not exactly once {doubled[:10]}")
    h.check(request_numbers([path], tag), "some requests after the rotation are in the new file")
    h.check(request_numbers([rotated], tag), "the requests before the rotation are in the renamed file")
    st = os.stat(path)
    h.expect_eq((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, h.UID_A, 0o640), "the new file")


def rotation_by_sigusr1(d):
    rotation_loses_no_line(d, "usr1", lambda: d.signal(signal.SIGUSR1))


def rotation_by_reload(d):
    rotation_loses_no_line(d, "hup", d.reload)


SCENARIOS = [
    request_lands_in_its_vhosts_log,
    quotes_in_request_line_escaped,
    acceptor_refusals_logged_for_the_vhost,
    error_log_has_reasons,
    script_stderr_in_error_log,
    owners_and_modes,
    tenant_cannot_touch_logs,
    rotation_by_sigusr1,
    rotation_by_reload,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

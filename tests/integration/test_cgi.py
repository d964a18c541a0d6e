# CGI and handlers (RFC 3875) through itkd: who a script runs as and with what, its environment,
# request bodies in, response headers and streamed output out, and every failure a script can cause.

import atexit
import hashlib
import json
import os
import re
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
LIMIT_BODY = 1 << 20
SERVER_CGI_TIMEOUT = 2     # [server] CGITimeout: what b.test inherits
BODY_TIMEOUT = 3           # [server] Timeout: the longest wait for more of a request body
A_CGI_TIMEOUT = 60         # a.test's own CGITimeout, long enough for the streaming case
NICE_A = 5
STREAM_BYTES = 200 << 20   # the large output: far more than any buffer of the worker
RSS_LIMIT = 64 << 20       # what the worker may reach while streaming it
A_SECRET = "A-private-of-2001\n"
# Put into itkd's own environment: none of it may reach a script.
DAEMON_ONLY_ENV = {"ITK_TEST_LEAK": "1", "INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
# Unique arguments, so a leftover process of one case is found by its command line and nothing else.
SLEEP_BG_TIMEOUT = "1234.51"
SLEEP_FG_TIMEOUT = "1234.52"
SLEEP_AFTER_HEAD = "1234.53"
SLEEP_DISCONNECT = "1234.54"
SLEEP_SILENT = "1234.55"
YES_DISCONNECT = "itk-cgi-test-yes-1234"

# Every meta-variable itk sets; anything else in a script's environment leaked from somewhere.
CGI_VARS = {
    "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_PROTOCOL", "SERVER_NAME", "SERVER_ADDR", "SERVER_PORT",
    "REMOTE_ADDR", "REMOTE_PORT", "REQUEST_METHOD", "REQUEST_URI", "REQUEST_SCHEME", "SCRIPT_NAME",
    "SCRIPT_FILENAME", "DOCUMENT_ROOT", "QUERY_STRING", "PATH_INFO", "PATH_TRANSLATED", "REDIRECT_STATUS",
    "PATH", "CONTENT_LENGTH", "CONTENT_TYPE", "TMPDIR", "PHP_INI_SCAN_DIR",
}

SH = "#!/bin/sh\n"
PY = "#!/usr/bin/python3\n"
TEXT_HEAD = "printf 'Content-Type: text/plain\\n\\n'\n"

SCRIPTS_A = {
    "hello.cgi": SH + TEXT_HEAD + "echo hello from cgi\n",
    # The environment exactly as exec'd: /proc/self/environ, which neither a shell (PWD) nor python's
    # locale coercion (LC_CTYPE) has touched.
    "env.cgi": PY + "import json, os, sys\n"
                    "raw = open('/proc/self/environ', 'rb').read().split(b'\\0')\n"
                    "env = dict(i.decode('latin-1').partition('=')[::2] for i in raw if i)\n"
                    "sys.stdout.write('Content-Type: application/json\\n\\n')\n"
                    "sys.stdout.write(json.dumps({'env': env, 'cwd': os.getcwd()}))\n",
    "sub/cwd.cgi": SH + TEXT_HEAD + "pwd\n",
    "id.cgi": SH + TEXT_HEAD + """\
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "groups=$(id -G)"
echo "nice=$(nice)"
echo "pid=$$"
echo "pgrp=$(cut -d' ' -f5 /proc/$$/stat)"
grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs):' /proc/$$/status | tr -s '\\t ' ' ' | sed 's/: /=/'
# ls opens the directory it lists: one more fd than inherited, and it points at /proc/PID/fd.
ls -l /proc/self/fd | awk 'NF >= 11 { print "fd", $9, $11 }'
""",
    "readsecret.cgi": SH + TEXT_HEAD + "cat secret.txt; echo \"rc=$?\"\n",
    "body.cgi": PY + "import hashlib, os, sys\n"
                     "data = sys.stdin.buffer.read()\n"
                     "e = os.environ\n"
                     "sys.stdout.write('Content-Type: text/plain\\n\\n')\n"
                     "print(e.get('REQUEST_METHOD'), e.get('CONTENT_LENGTH', '-'), e.get('CONTENT_TYPE', '-'),"
                     " e.get('HTTP_TRANSFER_ENCODING', '-'), len(data), hashlib.sha256(data).hexdigest())\n",
    "status.cgi": SH + "printf 'Status: 404 Not Here\\nContent-Type: text/plain\\nX-Custom: yes\\n\\nnope\\n'\n",
    "crlf.cgi": SH + "printf 'Status: 201 Created\\r\\nContent-Type: text/plain\\r\\nX-Crlf: 1\\r\\n\\r\\nmade\\n'\n",
    "hop.cgi": SH + "printf 'Content-Type: text/plain\\nConnection: close\\nTransfer-Encoding: gzip\\n"
                    "Date: Mon, 01 Jan 2001 00:00:00 GMT\\nServer: script-server\\nX-Kept: 1\\n\\nhop\\n'\n",
    "length.cgi": SH + "printf 'Content-Type: text/plain\\nContent-Length: 6\\n\\nsized\\n'\n",
    "redir-local.cgi": SH + "printf 'Location: /target.txt\\n\\n'\n",
    "redir-script.cgi": SH + "printf 'Location: /hello.cgi\\n\\n'\n",
    "redir-url.cgi": SH + "printf 'Location: http://elsewhere.test/x\\n\\n'\n",
    "nohead.cgi": SH + "echo 'just some text without a header block'\n",
    "status101.cgi": SH + "printf 'Status: 101 Switching Protocols\\nContent-Length: 0\\n\\n'\n",
    "blankfirst.cgi": SH + "printf '\\nStatus: 302\\nLocation: http://elsewhere.test/\\n\\nbody\\n'\n",
    "badhead.cgi": SH + "printf 'Content-Type text/plain\\n\\nbody\\n'\n",
    "crash.cgi": SH + "ulimit -c 0\nkill -SEGV $$\n",
    "stderr.cgi": SH + "echo 'itk-stderr-line-one' >&2\n" + TEXT_HEAD + "echo fine\n",
    "stream.cgi": SH + "printf 'Content-Type: application/octet-stream\\n\\n'\n"
                       f"exec head -c {STREAM_BYTES} /dev/zero\n",
    "disconnect-sleep.cgi": SH + TEXT_HEAD + f"echo started\nexec sleep {SLEEP_DISCONNECT}\n",
    "disconnect-silent.cgi": SH + f"exec sleep {SLEEP_SILENT}\n",
    "echo.cgi": SH + TEXT_HEAD + "exec cat\n",
    "disconnect-yes.cgi": SH + TEXT_HEAD + f"exec yes {YES_DISCONNECT}\n",
    "slow.cgi": SH + f"sleep {SERVER_CGI_TIMEOUT + 1}\n" + TEXT_HEAD + "echo slow but in time\n",
    "second.pl": SH + TEXT_HEAD + "echo second CGI line\n",
    "app/index.cgi": SH + TEXT_HEAD + "echo \"index script $SCRIPT_NAME\"\n",
}
SCRIPTS_B = {
    "id.cgi": SCRIPTS_A["id.cgi"],
    "timeout-before.cgi": SH + f"sleep {SLEEP_BG_TIMEOUT} &\nsleep {SLEEP_FG_TIMEOUT}\n",
    "timeout-after.cgi": SH + TEXT_HEAD + f"echo partial\nsleep {SLEEP_AFTER_HEAD}\necho never\n",
}
PHP_SCRIPT = ("<?php\nheader('Content-Type: text/plain');\n"
              "echo 'uid=', posix_getuid(), ' gid=', posix_getgid(), \"\\n\";\n")


def setup():
    tree = h.Tree()
    tree.write_server_conf(CGITimeout=SERVER_CGI_TIMEOUT, LimitRequestBody=LIMIT_BODY, Timeout=BODY_TIMEOUT)
    root_a = h.make_tenant(tree, "a", h.UID_A, files={"target.txt": "redirect target\n"})
    root_b = h.make_tenant(tree, "b", h.UID_B)
    tree.write(os.path.join(root_a, "secret.txt"), A_SECRET, h.UID_A, mode=0o600)
    for rel, text in SCRIPTS_A.items():
        tree.write(os.path.join(root_a, rel), text, h.UID_A, mode=0o755)
    for rel, text in SCRIPTS_B.items():
        tree.write(os.path.join(root_b, rel), text, h.UID_B, mode=0o755)
    tree.write(os.path.join(root_b, "steal.cgi"),
               SH + TEXT_HEAD + f"cat '{root_a}/secret.txt'; echo \"rc=$?\"\n", h.UID_B, mode=0o755)
    tree.write(os.path.join(root_a, "noexec.cgi"), SH + TEXT_HEAD + "echo ran\n", h.UID_A, mode=0o644)
    # Through a handler the script is an argument: it need not be executable.
    tree.write(os.path.join(root_a, "handled.shx"), TEXT_HEAD + "echo \"handled $0\"\n", h.UID_A, mode=0o644)
    a = ["[vhost]", "ServerName = a.test", f"DocumentRoot = {root_a}", f"AssignUserID = #{h.UID_A} #{h.UID_A}",
         f"NiceValue = {NICE_A}", "CGI = .cgi", "CGI = .pl", "Handler = .shx /bin/sh",
         f"CGITimeout = {A_CGI_TIMEOUT}", "DirectoryIndex = index.cgi index.html"]
    if os.access(PHP_CGI, os.X_OK):
        a.append(f"Handler = .php {PHP_CGI}")
        tree.write(os.path.join(root_a, "uid.php"), PHP_SCRIPT, h.UID_A, mode=0o644)
        # A tenant's ini files beside a script: php-cgi reads them from its working directory.
        for name in ("php.ini", "php-cgi-fcgi.ini"):
            tree.write(os.path.join(root_a, "phpini", name), "memory_limit = 7M\n", h.UID_A)
        tree.write(os.path.join(root_a, "phpini", "ini.php"),
                   "<?php\necho 'memory_limit=', ini_get('memory_limit'), \"\\nloaded=\", php_ini_loaded_file(),"
                   " \"\\ncwd=\", getcwd(), \"\\n\";\n", h.UID_A)
    tree.write_dropin("10-a.conf", "\n".join(a) + "\n")
    tree.write_dropin("20-b.conf", "\n".join([
        "[vhost]", "ServerName = b.test", f"DocumentRoot = {root_b}", f"AssignUserID = #{h.UID_B} #{h.UID_B}",
        "CGI = .cgi"]) + "\n")
    d = EnvDaemon(tree)
    d.root_a, d.root_b = root_a, root_b
    d.start()
    environ = read_environ(d.pid)
    for k, v in DAEMON_ONLY_ENV.items():
        h.check(environ.get(k) == v, f"setup: expected {k}={v} in itkd's own environment (so that its absence "
                                     f"in a script's proves something), got {environ.get(k)!r}")
    for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"):
        h.check(k in environ, f"setup: expected {k} in itkd's environment (systemd-socket-activate sets it)")
    return d


class EnvDaemon(h.Daemon):
    """itkd with variables of its own in its environment, as systemd would give it (INVOCATION_ID).

    `asan_extra` is appended to ASAN_OPTIONS for this daemon only (ignored by a build without ASan)."""

    asan_extra = None

    def command(self):
        cmd = super().command()
        if self.asan_extra:
            for i in range(len(cmd) - 1):
                if cmd[i] == "-E" and cmd[i + 1] == "ASAN_OPTIONS":
                    del cmd[i:i + 2]
                    break
        extra = []
        for k, v in DAEMON_ONLY_ENV.items():
            extra += ["-E", f"{k}={v}"]
        if self.asan_extra:
            base = os.environ.get("ASAN_OPTIONS", "")
            extra += ["-E", f"ASAN_OPTIONS={base}:{self.asan_extra}" if base else f"ASAN_OPTIONS={self.asan_extra}"]
        return cmd[:1] + extra + cmd[1:]


def read_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = f.read().split(b"\0")
    return dict(i.decode("latin-1").partition("=")[::2] for i in items if i)


# ---------------------------------------------------------------------------------------------------
# Helpers

def processes_with_args(*argv):
    """Pids whose command line is exactly argv (a script's leftover children)."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() == want and h.pid_alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def expect_gone(argv, timeout, what):
    left = h.wait_until(lambda: not processes_with_args(*argv), timeout)
    if not left:
        pids = processes_with_args(*argv)
        for pid in pids:  # do not leave them to the next test run
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        raise h.Fail(f"{what}: expected no `{' '.join(argv)}` left within {timeout}s, still running: {pids}")


def kill_leftovers():
    """A failed case may leave a script's sleep behind (scripts run in process groups of their own)."""
    for argv in (["sleep", a] for a in (SLEEP_BG_TIMEOUT, SLEEP_FG_TIMEOUT, SLEEP_AFTER_HEAD, SLEEP_DISCONNECT,
                                        SLEEP_SILENT)):
        for pid in processes_with_args(*argv):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for pid in processes_with_args("yes", YES_DISCONNECT):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


atexit.register(kill_leftovers)


def log_lines_matching(d, pattern, since=0):
    rx = re.compile(pattern)
    return [line for line in d.log_text()[since:].splitlines() if rx.search(line)]


def expect_log(d, pattern, what, since=0, timeout=3.0):
    if not h.wait_until(lambda: log_lines_matching(d, pattern, since), timeout):
        tail = "\n".join(d.log_text()[since:].splitlines()[-15:])
        raise h.Fail(f"{what}: expected a log line matching /{pattern}/ within {timeout}s; log since:\n{tail}")


def recv_some(c, deadline):
    """One read from the connection into c.buf; False at EOF. Raises Fail at the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise h.Fail(f"no more data within the time limit (have {len(c.buf)} bytes: {bytes(c.buf[:200])!r})")
    c.sock.settimeout(left)
    try:
        data = c.sock.recv(262144)
    except TimeoutError:
        raise h.Fail(f"no more data within the time limit (have {len(c.buf)} bytes: "
                     f"{bytes(c.buf[:200])!r})") from None
    c.buf += data
    return bool(data)


def read_line(c, deadline):
    while b"\r\n" not in c.buf:
        h.check(recv_some(c, deadline), f"connection closed in the middle of a line: {bytes(c.buf[:200])!r}")
    i = c.buf.find(b"\r\n")
    line = bytes(c.buf[:i])
    del c.buf[:i + 2]
    return line


def diag(text):
    print(f"# {text}", flush=True)


def get(d, path, host="a.test", **kw):
    resp = h.fetch(d.port, path, host, **kw)
    h.check(resp is not None, f"{kw.get('method', 'GET')} {path} on {host}: connection closed without a response")
    return resp


# ---------------------------------------------------------------------------------------------------
# Who the script runs as

def check_identity(d, host, uid, nice):
    resp = get(d, "/id.cgi", host)
    h.expect_status(resp, 200, f"GET /id.cgi on {host}")
    kv = h.key_values(resp.body)
    problems = []

    def want(key, expected):
        if kv.get(key) != expected:
            problems.append(f"{key}: expected {expected!r}, got {kv.get(key)!r}")
    want("uid", str(uid))
    want("gid", str(uid))
    want("groups", str(uid))
    want("nice", str(nice))
    want("Uid", " ".join([str(uid)] * 4))
    want("Gid", " ".join([str(uid)] * 4))
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        want(cap, "0000000000000000")
    want("NoNewPrivs", "1")
    want("pgrp", kv.get("pid", "?"))  # a process group of its own
    fds = re.findall(r"^fd (\d+) (\S+)$", resp.body.decode(), re.M)
    listing = [(int(fd), target) for fd, target in fds]
    own_dir = [fd for fd, target in listing if re.fullmatch(r"/proc/\d+/fd", target)]
    inherited = sorted(fd for fd, target in listing if fd not in own_dir)
    if len(own_dir) != 1 or inherited != [0, 1, 2]:
        problems.append(f"open fds (ls -l /proc/self/fd): expected 0, 1, 2 and the one ls opens on "
                        f"/proc/PID/fd, got {listing}")
    if problems:
        raise h.Fail(f"GET /id.cgi on {host}:\n" + "\n".join(problems) + f"\n{resp.describe(1000)}")


def script_identity_vhost_a(d):
    check_identity(d, "a.test", h.UID_A, NICE_A)


def script_identity_vhost_b(d):
    # b.test sets no NiceValue: the script keeps the nice value itkd was started with.
    check_identity(d, "b.test", h.UID_B, h.nice_of(d.pid))


def other_tenants_file_unreadable(d):
    own = get(d, "/readsecret.cgi", "a.test")
    h.expect_status(own, 200, "GET /readsecret.cgi on a.test")
    h.expect_eq(own.body, (A_SECRET + "rc=0\n").encode(), "A's script reading A's 0600 file")
    resp = get(d, "/steal.cgi", "b.test")
    h.expect_status(resp, 200, "GET /steal.cgi on b.test (cat of A's 0600 file)")
    h.check(A_SECRET.strip().encode() not in resp.body, f"B's script read A's 0600 file\n{resp.describe()}")
    rc = h.key_values(resp.body).get("rc")
    h.check(rc not in (None, "0"), f"expected cat of A's 0600 file to fail in B's script, rc={rc!r}\n"
                                   f"{resp.describe()}")


def environment_exactly_rfc3875(d):
    path = "/env.cgi/extra/p%41th"
    query = "x=1&y=%20two"
    headers = [("X-Custom", "hello"), ("Proxy", "http://evil.test:8080"), ("X_Under", "bad"),
               ("Accept", "text/plain"), ("Accept", "application/json")]
    with h.Conn(d.port) as c:
        c.request("GET", f"{path}?{query}", "a.test", headers + [("Connection", "close")])
        resp = c.read_response()
        client_port = c.client_port
    h.expect_status(resp, 200, f"GET {path}")
    try:
        seen = json.loads(resp.body)
    except ValueError:
        raise h.Fail(f"env.cgi: expected JSON\n{resp.describe(600)}") from None
    env, cwd = seen["env"], seen["cwd"]
    root = d.root_a
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "itk", "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "a.test", "SERVER_ADDR": "127.0.0.1", "SERVER_PORT": str(d.port),
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(client_port), "REQUEST_METHOD": "GET",
        "REQUEST_URI": f"{path}?{query}", "REQUEST_SCHEME": "http", "SCRIPT_NAME": "/env.cgi",
        "SCRIPT_FILENAME": f"{root}/env.cgi", "DOCUMENT_ROOT": root, "QUERY_STRING": query,
        "PATH_INFO": "/extra/pAth", "PATH_TRANSLATED": f"{root}/extra/pAth", "REDIRECT_STATUS": "200",
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HTTP_HOST": "a.test", "HTTP_X_CUSTOM": "hello",
        "HTTP_ACCEPT": "text/plain, application/json",
        "TMPDIR": d.temp_dir("a.test"), "PHP_INI_SCAN_DIR": "{0}::{0}/admin".format(os.path.join(d.runtime, "php", "a.test")),
    }
    problems = [f"{k}: expected {v!r}, got {env.get(k)!r}" for k, v in expected.items() if env.get(k) != v]
    for k in ("HTTP_PROXY", "HTTP_X_UNDER", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTPS", "LISTEN_FDS", "LISTEN_PID",
              "LISTEN_FDNAMES", "NOTIFY_SOCKET", *DAEMON_ONLY_ENV):
        if k in env:
            problems.append(f"{k}: expected absent, got {env[k]!r}")
    unknown = sorted(k for k in env if k not in CGI_VARS and not k.startswith("HTTP_"))
    if unknown:
        problems.append(f"variables that are neither RFC 3875 meta-variables nor HTTP_*: "
                        f"{ {k: env[k] for k in unknown} }")
    if cwd != root:
        problems.append(f"working directory: expected the script's directory {root}, got {cwd!r}")
    if problems:
        raise h.Fail("environment of env.cgi:\n" + "\n".join(problems) + f"\nwhole environment: {env}")


def absolute_form_target_names_the_host(d):
    # RFC 9112 §3.2.2: the authority of an absolute-form target wins, and the Host header takes it.
    raw = b"GET http://a.test/env.cgi HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    resp, _, _ = h.send_raw(d.port, raw)
    h.expect_status(resp, 200, "GET http://a.test/env.cgi with Host: evil.example")
    env = json.loads(resp.body)["env"]
    h.expect_eq((env.get("HTTP_HOST"), env.get("SERVER_NAME")), ("a.test", "a.test"),
                "HTTP_HOST and SERVER_NAME seen by the CGI")


def working_directory_is_scripts_dir(d):
    resp = get(d, "/sub/cwd.cgi")
    h.expect_status(resp, 200, "GET /sub/cwd.cgi")
    h.expect_eq(resp.body, f"{d.root_a}/sub\n".encode(), "pwd of /sub/cwd.cgi")


def stderr_goes_to_log_tagged(d):
    mark = len(d.log_text())
    resp = get(d, "/stderr.cgi")
    h.expect_status(resp, 200, "GET /stderr.cgi")
    h.expect_eq(resp.body, b"fine\n", "body of /stderr.cgi")
    expect_log(d, r"worker a\.test\[\d+\]: /stderr\.cgi: itk-stderr-line-one$", "stderr of /stderr.cgi", mark)


# ---------------------------------------------------------------------------------------------------
# Which requests run what

def handler_runs_non_executable_script(d):
    resp = get(d, "/handled.shx")
    h.expect_status(resp, 200, "GET /handled.shx (Handler = .shx /bin/sh, file 0644)")
    h.expect_eq(resp.body, f"handled {d.root_a}/handled.shx\n".encode(), "body of /handled.shx")
    resp = get(d, "/second.pl")
    h.expect_status(resp, 200, "GET /second.pl (from the second CGI line)")
    h.expect_eq(resp.body, b"second CGI line\n", "body of /second.pl")


def php_through_handler(d):
    if not os.access(PHP_CGI, os.X_OK):
        raise h.Skip(f"{PHP_CGI} not installed (Debian package php-cgi)")
    resp = get(d, "/uid.php")
    h.expect_status(resp, 200, "GET /uid.php (Handler = .php php-cgi)")
    h.expect_eq(resp.body, f"uid={h.UID_A} gid={h.UID_A}\n".encode(), "posix_getuid()/getgid() in PHP on a.test")


def php_handler_ignores_tenant_php_ini(d):
    if not os.access(PHP_CGI, os.X_OK):
        raise h.Skip(f"{PHP_CGI} not installed (Debian package php-cgi)")
    resp = get(d, "/phpini/ini.php")
    h.expect_status(resp, 200, "GET /phpini/ini.php (Handler = .php php-cgi, a php.ini beside it)")
    kv = h.key_values(resp.body)
    h.check(kv.get("memory_limit") != "7M" and not kv.get("loaded", "").startswith(d.root_a),
            f"php-cgi run as a Handler read the tenant's php.ini beside the script: {kv}")
    # php-cgi itself changes into the script's directory before running it.
    h.expect_eq(kv.get("cwd"), os.path.join(d.root_a, "phpini"), "getcwd() in the PHP script")


def directory_index_script(d):
    resp = get(d, "/app/")
    h.expect_status(resp, 200, "GET /app/ (DirectoryIndex index.cgi)")
    h.expect_eq(resp.body, b"index script /app/index.cgi\n", "body of /app/")
    resp = get(d, "/")
    h.expect_status(resp, 200, "GET / (no index.cgi there: index.html)")
    h.expect_body_contains(resp, "vhost a", "GET / on a.test")


def missing_and_not_executable(d):
    h.expect_status(get(d, "/missing.cgi"), 404, "GET /missing.cgi")
    h.expect_status(get(d, "/missing.cgi/more"), 404, "GET /missing.cgi/more")
    resp = get(d, "/noexec.cgi")
    h.expect_status(resp, 403, "GET /noexec.cgi (mode 0644)")
    h.check(b"ran" not in resp.body, f"/noexec.cgi ran anyway\n{resp.describe()}")


def any_method_runs_script(d):
    resp = get(d, "/body.cgi", method="DELETE")
    h.expect_status(resp, 200, "DELETE /body.cgi")
    h.expect_eq(resp.body.split()[:2], [b"DELETE", b"-"], "REQUEST_METHOD and CONTENT_LENGTH seen by the script")


# ---------------------------------------------------------------------------------------------------
# Request bodies

def body_summary(method, data, content_type="application/octet-stream", te="-"):
    return f"{method} {len(data)} {content_type} {te} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()


def content_length_body(d):
    data = os.urandom(40000)
    with h.Conn(d.port) as c:
        head = h.build_request("POST", "/body.cgi", "a.test",
                               {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"})
        # Part with the head, the rest later: the script must get all of it, in order.
        c.send(head + data[:1000])
        time.sleep(0.2)
        c.send(data[1000:])
        resp = c.read_response()
        h.expect_status(resp, 200, "POST /body.cgi with a 40000-byte Content-Length body")
        h.expect_eq(resp.body, body_summary("POST", data), "what the script read from stdin")
        # Keep-alive continues after the body: the next request on the connection is served.
        data2 = b"second body"
        c.request("PUT", "/body.cgi", "a.test", {"Content-Length": str(len(data2)), "Content-Type": "text/x"},
                  body=data2)
        resp = c.read_response()
        h.expect_status(resp, 200, "second request (PUT) on the same connection")
        h.expect_eq(resp.body, body_summary("PUT", data2, "text/x"), "what the second script read")


def body_then_pipelined_request(d):
    data = b"a=1&b=2"
    with h.Conn(d.port) as c:
        c.send(h.build_request("POST", "/body.cgi", "a.test", {"Content-Length": str(len(data)),
                               "Content-Type": "application/x-www-form-urlencoded"}, body=data)
               + h.build_request("GET", "/hello.cgi", "a.test"))
        first = c.read_response()
        h.expect_status(first, 200, "POST with a body, pipelined with a GET")
        h.expect_eq(first.body, body_summary("POST", data, "application/x-www-form-urlencoded"),
                    "what the script read (the pipelined GET must not be part of it)")
        second = c.read_response()
        h.expect_status(second, 200, "the pipelined GET /hello.cgi after the body")
        h.expect_eq(second.body, b"hello from cgi\n", "body of the pipelined GET")


def chunked_body(d):
    parts = [b"first chunk;", os.urandom(3000), b"", b"last"]
    data = b"".join(parts)
    wire = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\nX-Trailer: t\r\n\r\n"
    with h.Conn(d.port) as c:
        c.send(h.build_request("POST", "/body.cgi", "a.test",
                               {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}))
        for i in range(0, len(wire), 700):
            c.send(wire[i:i + 700])
            time.sleep(0.02)
        resp = c.read_response()
        h.expect_status(resp, 200, "POST /body.cgi with a chunked body")
        h.expect_eq(resp.body, body_summary("POST", data), "what the script read (CONTENT_LENGTH = decoded size, "
                                                           "no HTTP_TRANSFER_ENCODING)")
        c.request("GET", "/hello.cgi", "a.test")
        resp = c.read_response()
        h.expect_status(resp, 200, "GET after the chunked POST on the same connection")


def chunked_body_is_spooled_to_the_vhosts_disk(d):
    # While a chunked body arrives it is held in an unlinked file in the vhost's own temporary directory,
    # never in memory: three clients each sending 24 MiB pinned 72 MiB of shared memory before.
    chunk = b"y" * 65536
    with h.Conn(d.port, timeout=15) as c:
        c.send(h.build_request("POST", "/body.cgi", "a.test", {"Transfer-Encoding": "chunked"}))
        for _ in range(8):
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        worker = d.worker_for(c)
        h.check(worker, "expected a worker holding the connection")

        def spool():
            files = []
            for fd in os.listdir(f"/proc/{worker}/fd"):
                try:
                    files.append(os.readlink(f"/proc/{worker}/fd/{fd}"))
                except OSError:
                    pass
            return [f for f in files if f.startswith(d.temp_dir("a.test") + "/")], files
        h.check(h.wait_until(lambda: spool()[0], 5),
                f"expected the worker to hold a file in {d.temp_dir('a.test')} for the body, it holds {spool()[1]}")
        h.check(not [f for f in spool()[1] if "memfd" in f], f"the body is held in memory: {spool()[1]}")
        h.check(all(f.endswith("(deleted)") for f in spool()[0]), f"the body's file has a name: {spool()[0]}")
        c.send(b"0\r\n\r\n")
        resp = c.read_response()
        h.expect_status(resp, 200, "POST /body.cgi with a 512 KiB chunked body")
        h.expect_eq(resp.body, body_summary("POST", chunk * 8, content_type="-"), "what the script read")


def chunked_body_has_an_overall_deadline(d):
    # Two bytes a second keep each wait for data short of Timeout (3 s), but the body as a whole must come
    # at 500 bytes a second after the first Timeout: it is cut off then, not after hours.
    with h.Conn(d.port, timeout=15) as c:
        c.send(h.build_request("POST", "/body.cgi", "a.test", {"Transfer-Encoding": "chunked"}))
        c.send(b"1000\r\n")
        start = time.monotonic()
        answered = None
        while time.monotonic() - start < 10:
            if not c.send(b"z"):
                break
            readable, _, _ = select.select([c.sock], [], [], 0.5)
            if readable:
                answered = c.read_response()
                break
        took = time.monotonic() - start
        h.check(answered is not None, "a chunked body trickled at 2 bytes a second was not cut off within 10s")
        h.expect_status(answered, 408, "a chunked body arriving at 2 bytes a second")
        h.check(BODY_TIMEOUT - 0.5 <= took <= BODY_TIMEOUT + 3, f"expected the 408 after about {BODY_TIMEOUT}s, "
                                                              f"came after {took:.1f}s")


def body_and_output_streamed_together(d):
    # `cat` answers while the body is still coming: neither side may wait for the other to finish.
    data = os.urandom(LIMIT_BODY - 4096)
    with h.Conn(d.port, timeout=20) as c:
        c.send(h.build_request("POST", "/echo.cgi", "a.test", {"Content-Length": str(len(data))}))
        c.sock.setblocking(False)
        sent, deadline = 0, time.monotonic() + 20
        while sent < len(data) and time.monotonic() < deadline:
            _, writable, _ = select.select([], [c.sock], [], 0.05)
            if writable:
                try:
                    sent += c.sock.send(data[sent:sent + 65536])
                except BlockingIOError:
                    pass
            try:
                more = c.sock.recv(262144)
                if more:
                    c.buf += more
            except BlockingIOError:
                pass
        h.check(sent == len(data), f"echo.cgi: only {sent} of {len(data)} body bytes could be sent within 20s "
                                   f"({len(c.buf)} response bytes came meanwhile)")
        c.sock.setblocking(True)
        resp = c.read_response(timeout=20)
        h.expect_status(resp, 200, f"POST /echo.cgi with a {len(data)}-byte body")
        h.check(resp.body == data, f"echo.cgi: expected the body back ({len(data)} bytes), got {len(resp.body)} "
                                   f"bytes, {'equal' if resp.body == data else 'different'}")


def unread_body_never_taken_for_a_request(d):
    # The script answers without reading its input; the body must not be parsed as the next request.
    data = b"GET /target.txt HTTP/1.1\r\nHost: a.test\r\n\r\n" * 2000
    with h.Conn(d.port) as c:
        c.send(h.build_request("POST", "/hello.cgi", "a.test", {"Content-Length": str(len(data))}))
        time.sleep(0.3)  # the script may be done before the body comes
        c.send(data + h.build_request("GET", "/length.cgi", "a.test"))
        first = c.read_response()
        h.expect_status(first, 200, "POST /hello.cgi, a script that never reads its body")
        h.expect_eq(first.body, b"hello from cgi\n", "body of the answer")
        second = c.read_response()
        if second is not None:
            h.expect_status(second, 200, "the request after the unread body")
            h.expect_eq(second.body, b"sized\n", "the request after the unread body (/length.cgi)")
            closed, extra = c.wait_closed(1)
            h.check(not extra, f"expected nothing after /length.cgi's answer, got {extra[:200]!r}")


def expect_100_continue(d):
    data = b"body sent after 100 Continue"
    with h.Conn(d.port) as c:
        c.send(h.build_request("POST", "/body.cgi", "a.test", {"Content-Length": str(len(data)),
                               "Content-Type": "text/plain", "Expect": "100-continue"}))
        deadline = time.monotonic() + h.IO_TIMEOUT
        while b"\r\n\r\n" not in c.buf:
            h.check(recv_some(c, deadline), f"Expect: 100-continue: connection closed, got {bytes(c.buf)!r}")
        interim = bytes(c.buf[:c.buf.find(b"\r\n\r\n") + 4])
        h.check(interim.startswith(b"HTTP/1.1 100 "), f"expected 'HTTP/1.1 100 Continue' before the body, "
                                                      f"got {interim!r}")
        c.send(data)
        resp = c.read_response()
        h.expect_status(resp, 200, "POST with Expect: 100-continue, body after the interim response")
        h.expect_eq(resp.body, body_summary("POST", data, "text/plain"), "what the script read")


def stalled_body_is_408(d):
    # a.test's CGITimeout is long; the client promises 100 bytes, sends 10 and then nothing.
    with h.Conn(d.port) as c:
        start = time.monotonic()
        c.send(h.build_request("POST", "/body.cgi", "a.test", {"Content-Length": "100"}) + b"0123456789")
        resp = c.read_response()
        waited = time.monotonic() - start
        h.expect_status(resp, 408, f"POST whose body stops after 10 of 100 bytes (Timeout = {BODY_TIMEOUT})")
        h.check(waited < A_CGI_TIMEOUT / 2, f"expected the answer after about Timeout ({BODY_TIMEOUT}s), "
                                             f"came after {waited:.1f}s")
        closed, _ = c.wait_closed(5)
        h.check(closed, "expected the connection closed after the 408")


def content_length_over_limit(d):
    resp = h.expect_answer_then_close(
        d.port, h.build_request("POST", "/body.cgi", "a.test", {"Content-Length": str(LIMIT_BODY + 1)}),
        413, f"POST with Content-Length {LIMIT_BODY + 1} (LimitRequestBody = {LIMIT_BODY}), no body sent")
    h.check(not resp.body.startswith(b"POST "), f"the script ran\n{resp.describe()}")


def chunked_over_limit(d):
    chunk = b"x" * 8192
    with h.Conn(d.port) as c:
        c.send(h.build_request("POST", "/body.cgi", "a.test", {"Transfer-Encoding": "chunked"}))
        for _ in range(LIMIT_BODY // len(chunk) + 2):
            if not c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk)):
                break
        c.send(b"0\r\n\r\n")
        resp = c.read_response()
        h.expect_status(resp, 413, f"chunked body of more than LimitRequestBody = {LIMIT_BODY} decoded bytes")
        closed, _ = c.wait_closed()
        h.check(closed, "expected the connection closed after the 413")


# ---------------------------------------------------------------------------------------------------
# Responses

def status_and_headers_passed(d):
    resp = get(d, "/status.cgi")
    h.expect_status(resp, 404, "Status: 404 Not Here from the script")
    h.expect_eq(resp.reason, "Not Here", "reason phrase")
    h.expect_header(resp, "X-Custom", "yes", "GET /status.cgi")
    h.expect_header(resp, "Content-Type", "text/plain", "GET /status.cgi")
    h.expect_eq(resp.body, b"nope\n", "body of /status.cgi")
    resp = get(d, "/crlf.cgi")
    h.expect_status(resp, 201, "a header block with CRLF line ends")
    h.expect_header(resp, "X-Crlf", "1", "GET /crlf.cgi")
    h.expect_eq(resp.body, b"made\n", "body of /crlf.cgi")


def hop_by_hop_from_script_dropped(d):
    with h.Conn(d.port) as c:
        c.request("GET", "/hop.cgi", "a.test")
        resp = c.read_response()
        h.expect_status(resp, 200, "GET /hop.cgi")
        h.expect_header(resp, "X-Kept", "1", "GET /hop.cgi")
        h.expect_eq(resp.body, b"hop\n", "body of /hop.cgi (framed by itk, not by the script's Transfer-Encoding)")
        h.expect_eq(resp.header_all("Server"), ["itk"], "Server headers")
        dates = resp.header_all("Date")
        h.check(len(dates) == 1 and "2001" not in dates[0], f"expected itk's own Date once, got {dates}")
        h.check("gzip" not in (resp.header("Transfer-Encoding") or ""), f"the script's Transfer-Encoding was "
                                                                         f"passed on\n{resp.describe()}")
        h.check("close" not in resp.connection_tokens(), f"the script's Connection: close was passed on\n"
                                                          f"{resp.describe()}")
        c.request("GET", "/hello.cgi", "a.test")
        h.expect_status(c.read_response(), 200, "next request on the connection after /hop.cgi")


def redirects(d):
    resp = get(d, "/redir-local.cgi")
    h.expect_status(resp, 200, "Location: /target.txt without Status (internal redirect)")
    h.expect_eq(resp.body, b"redirect target\n", "body of the internal redirect")
    h.check(resp.header("Location") is None, f"an internal redirect must not reach the client\n{resp.describe()}")
    resp = get(d, "/redir-script.cgi")
    h.expect_status(resp, 200, "Location: /hello.cgi without Status (internal redirect to a script)")
    h.expect_eq(resp.body, b"hello from cgi\n", "body of the internal redirect to a script")
    resp = get(d, "/redir-url.cgi")
    h.expect_status(resp, 302, "Location: http://elsewhere.test/x without Status")
    h.expect_header(resp, "Location", "http://elsewhere.test/x", "GET /redir-url.cgi")


def framing_by_length_or_chunks(d):
    resp = get(d, "/length.cgi")
    h.expect_status(resp, 200, "GET /length.cgi")
    h.expect_header(resp, "Content-Length", "6", "script with Content-Length")
    h.check(resp.header("Transfer-Encoding") is None, f"expected no chunking with a length\n{resp.describe()}")
    h.expect_eq(resp.body, b"sized\n", "body of /length.cgi")
    resp = get(d, "/hello.cgi")
    h.expect_header(resp, "Transfer-Encoding", "chunked", "HTTP/1.1, script without Content-Length")
    h.expect_eq(resp.body, b"hello from cgi\n", "body of /hello.cgi, dechunked")
    with h.Conn(d.port) as c:
        c.request("GET", "/hello.cgi", "a.test", {"Connection": "keep-alive"}, version="HTTP/1.0")
        resp = c.read_response()
        h.expect_status(resp, 200, "HTTP/1.0 GET /hello.cgi")
        h.check(resp.header("Transfer-Encoding") is None and resp.header("Content-Length") is None,
                f"HTTP/1.0 without a length from the script: expected a close-delimited body\n{resp.describe()}")
        h.check("close" in resp.connection_tokens(), f"expected Connection: close\n{resp.describe()}")
        h.expect_eq(resp.body, b"hello from cgi\n", "close-delimited body")


def keep_alive_across_scripts(d):
    with h.Conn(d.port) as c:
        c.request("GET", "/hello.cgi", "a.test")
        first = c.read_response()
        h.expect_status(first, 200, "first CGI request")
        worker = d.worker_for(c)
        c.request("HEAD", "/hello.cgi", "a.test")
        head = c.read_response("HEAD")
        h.expect_status(head, 200, "HEAD /hello.cgi on the same connection")
        c.request("GET", "/length.cgi", "a.test")
        second = c.read_response()
        h.expect_status(second, 200, "CGI request after a HEAD on the same connection")
        h.expect_eq(second.body, b"sized\n", "body after the HEAD (nothing of the HEAD's body before it)")
        c.request("GET", "/target.txt", "a.test")
        static = c.read_response()
        h.expect_status(static, 200, "static file after CGI responses on the same connection")
        h.expect_eq(static.body, b"redirect target\n", "static body")
        h.check(worker is not None and d.worker_for(c) == worker,
                f"expected one worker for the whole connection, got {worker} then {d.worker_for(c)}")


def vm_kib(pid, key):
    st = h.proc_status(pid) or {}
    value = st.get(key, "")
    return int(value.split()[0]) * 1024 if value else None


def streaming_keeps_worker_memory_bounded(shared):
    # A daemon of its own: under AddressSanitizer every freed buffer waits in a quarantine of 256 MiB by
    # default, which would look exactly like a worker holding the whole output. A small quarantine keeps
    # ASan's checks and leaves only the worker's own use to measure.
    d = EnvDaemon(shared.tree, name="itkd-stream")
    d.asan_extra = "quarantine_size_mb=4"
    d.start()
    with h.Conn(d.port, timeout=60) as c:
        c.request("GET", "/stream.cgi", "a.test")
        resp = c.read_head()
        h.expect_status(resp, 200, "GET /stream.cgi")
        h.expect_header(resp, "Transfer-Encoding", "chunked", "GET /stream.cgi")
        worker = d.worker_for(c)
        h.check(worker, f"expected an itk-worker holding the connection, workers: {d.workers()}")
        rss_start = vm_kib(worker, "VmRSS")
        peak_rss = rss_start or 0
        got, next_sample = 0, 0
        deadline = time.monotonic() + 60
        while True:  # chunked framing, decoded as it comes and thrown away
            line = read_line(c, deadline)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                read_line(c, deadline)
                break
            while size:
                if not c.buf and not recv_some(c, deadline):
                    raise h.Fail(f"stream: connection closed after {got} of {STREAM_BYTES} bytes")
                take = min(size, len(c.buf))
                h.check(c.buf[:take].count(0) == take, f"stream: non-zero bytes after {got} bytes")
                del c.buf[:take]
                size -= take
                got += take
            read_line(c, deadline)
            if got >= next_sample:
                next_sample += 8 << 20
                rss = vm_kib(worker, "VmRSS")
                if rss:
                    peak_rss = max(peak_rss, rss)
        hwm = vm_kib(worker, "VmHWM")
        h.expect_eq(got, STREAM_BYTES, "bytes of /stream.cgi received")
        h.check(hwm is not None, f"worker {worker} gone after the response (keep-alive expected)")
        h.check(hwm < RSS_LIMIT and peak_rss < RSS_LIMIT,
                f"worker {worker} memory while streaming {STREAM_BYTES >> 20} MiB: expected under "
                f"{RSS_LIMIT >> 20} MiB, got VmHWM {hwm >> 20} MiB, VmRSS at start {(rss_start or 0) >> 20} MiB, "
                f"highest sampled VmRSS {peak_rss >> 20} MiB")
        diag(f"worker VmRSS at start {(rss_start or 0) >> 10} KiB, VmHWM after {STREAM_BYTES >> 20} MiB "
             f"{hwm >> 10} KiB")


# ---------------------------------------------------------------------------------------------------
# Failures

def no_header_block_is_502(d):
    mark = len(d.log_text())
    h.expect_status(get(d, "/nohead.cgi"), 502, "script printing no header block")
    expect_log(d, r"worker a\.test\[\d+\]: /nohead\.cgi: .*header", "why /nohead.cgi failed", mark)


def malformed_header_is_502(d):
    mark = len(d.log_text())
    h.expect_status(get(d, "/badhead.cgi"), 502, "script printing a header line without ':'")
    expect_log(d, r"worker a\.test\[\d+\]: /badhead\.cgi: malformed.*Content-Type text/plain",
               "why /badhead.cgi failed", mark)


def interim_status_or_blank_first_line_is_502(d):
    # A 1xx as the final status would leave the client reading what follows on the connection as the
    # continuation of an upgrade; a blank first line would send the script's Status and Location as body.
    for path, why in (("/status101.cgi", r"Status 101 is not a final response"),
                      ("/blankfirst.cgi", r"starts with a blank line")):
        mark = len(d.log_text())
        with h.Conn(d.port) as c:
            c.request("GET", path, "a.test")
            resp = c.read_response()
            h.expect_status(resp, 502, f"GET {path}")
            h.check("close" in resp.connection_tokens(), f"GET {path}: expected Connection: close with the 502\n"
                                                         f"{resp.describe()}")
            closed, extra = c.wait_closed()
            h.check(closed and not extra, f"GET {path}: expected the connection closed after the 502, got {extra!r}")
        expect_log(d, rf"worker a\.test\[\d+\]: {path}: malformed.*{why}", f"why {path} failed", mark)


def crash_before_header_is_502(d):
    mark = len(d.log_text())
    h.expect_status(get(d, "/crash.cgi"), 502, "script killed by SIGSEGV before its header")
    expect_log(d, rf"worker a\.test\[\d+\]: /crash\.cgi: .*signal {int(signal.SIGSEGV)}\b",
               "why /crash.cgi failed", mark)


def vhost_cgi_timeout_overrides_server(d):
    resp = get(d, "/slow.cgi", timeout=SERVER_CGI_TIMEOUT + 10)
    h.expect_status(resp, 200, f"a.test script silent for {SERVER_CGI_TIMEOUT + 1}s ([server] CGITimeout = "
                               f"{SERVER_CGI_TIMEOUT}, a.test's own CGITimeout = {A_CGI_TIMEOUT})")
    h.expect_eq(resp.body, b"slow but in time\n", "body of /slow.cgi")


def timeout_before_header_is_504_and_kills_group(d):
    mark = len(d.log_text())
    start = time.monotonic()
    resp = get(d, "/timeout-before.cgi", "b.test", timeout=SERVER_CGI_TIMEOUT + 8)
    took = time.monotonic() - start
    h.expect_status(resp, 504, f"script silent past CGITimeout = {SERVER_CGI_TIMEOUT}s ([server], inherited)")
    h.check(SERVER_CGI_TIMEOUT - 0.5 <= took <= SERVER_CGI_TIMEOUT + 5,
            f"expected the 504 after about {SERVER_CGI_TIMEOUT}s, came after {took:.1f}s")
    expect_gone(["sleep", SLEEP_FG_TIMEOUT], 3, "the timed-out script")
    expect_gone(["sleep", SLEEP_BG_TIMEOUT], 3, "the background child of the timed-out script")
    expect_log(d, r"worker b\.test\[\d+\]: /timeout-before\.cgi: .*CGITimeout", "the timeout", mark)


def timeout_after_header_cuts_response(d):
    with h.Conn(d.port, timeout=SERVER_CGI_TIMEOUT + 8) as c:
        c.request("GET", "/timeout-after.cgi", "b.test")
        resp = c.read_head()
        h.expect_status(resp, 200, "script that sent its header, then sleeps past CGITimeout")
        closed, rest = c.wait_closed(SERVER_CGI_TIMEOUT + 8)
        h.check(closed, f"expected the connection closed once CGITimeout passed, still open (got {rest!r})")
        h.check(b"partial" in rest, f"expected the output before the timeout, got {rest!r}")
        h.check(not rest.endswith(b"0\r\n\r\n") and b"never" not in rest,
                f"expected the response cut short (no last chunk), got {rest!r}")
    expect_gone(["sleep", SLEEP_AFTER_HEAD], 3, "the script that timed out after its header")


def client_disconnect_kills_script(d):
    c = h.Conn(d.port)
    try:
        c.request("GET", "/disconnect-sleep.cgi", "a.test")
        resp = c.read_head()
        h.expect_status(resp, 200, "GET /disconnect-sleep.cgi")
        running = h.wait_until(lambda: processes_with_args("sleep", SLEEP_DISCONNECT), 3)
        h.check(running, f"expected `sleep {SLEEP_DISCONNECT}` running while the client is connected")
    finally:
        c.close()
    expect_gone(["sleep", SLEEP_DISCONNECT], 5, "a sleeping script after its client closed the connection")

    c = h.Conn(d.port)
    try:
        c.request("GET", "/disconnect-silent.cgi", "a.test")
        running = h.wait_until(lambda: processes_with_args("sleep", SLEEP_SILENT), 3)
        h.check(running, f"expected `sleep {SLEEP_SILENT}` running while the client is connected")
    finally:
        c.close()
    expect_gone(["sleep", SLEEP_SILENT], 5, "a script silent before its header after its client closed")

    c = h.Conn(d.port)
    try:
        c.request("GET", "/disconnect-yes.cgi", "a.test")
        resp = c.read_head()
        h.expect_status(resp, 200, "GET /disconnect-yes.cgi")
        c.read_exact(100000)
    finally:
        c.close()
    expect_gone(["yes", YES_DISCONNECT], 5, "a script writing endlessly after its client closed the connection")


SCENARIOS = [
    stalled_body_is_408,
    script_identity_vhost_a,
    script_identity_vhost_b,
    other_tenants_file_unreadable,
    environment_exactly_rfc3875,
    absolute_form_target_names_the_host,
    working_directory_is_scripts_dir,
    stderr_goes_to_log_tagged,
    handler_runs_non_executable_script,
    php_through_handler,
    php_handler_ignores_tenant_php_ini,
    directory_index_script,
    missing_and_not_executable,
    any_method_runs_script,
    content_length_body,
    body_then_pipelined_request,
    chunked_body,
    chunked_body_is_spooled_to_the_vhosts_disk,
    chunked_body_has_an_overall_deadline,
    body_and_output_streamed_together,
    unread_body_never_taken_for_a_request,
    expect_100_continue,
    content_length_over_limit,
    chunked_over_limit,
    status_and_headers_passed,
    hop_by_hop_from_script_dropped,
    redirects,
    framing_by_length_or_chunks,
    keep_alive_across_scripts,
    streaming_keeps_worker_memory_bounded,
    no_header_block_is_502,
    malformed_header_is_502,
    interim_status_or_blank_first_line_is_502,
    crash_before_header_is_502,
    vhost_cgi_timeout_overrides_server,
    timeout_before_header_is_504_and_kills_group,
    timeout_after_header_cuts_response,
    client_disconnect_kills_script,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

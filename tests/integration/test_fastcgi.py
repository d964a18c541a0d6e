# FastCGI pools through itkd: PHP served by warm php-cgi processes that the master starts per vhost under
# the vhost's uid, the pool socket only that uid can reach, a clean app environment, bodies and headers
# over FastCGI, and the pool's life: idle stop, replacement after a kill, full pool, broken app, reload.

import atexit
import functools
import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
APP_COMM = "php-cgi"
APP_PATH = "/usr/local/bin:/usr/bin:/bin"
# FastCGIMaxRequests of every pool here: an unusual number, so it is seen to come from the config, and a
# mark by which a php-cgi of these tests is known in /proc/PID/environ even after its itkd is gone.
MAX_REQUESTS = "4321"
UID_BUSY = 2003   # busy.test: one app process, for the full-pool case
UID_LATE = 2004   # late.test: CGITimeout = 2, for the timeout case
UID_OTHER = 2005  # a uid that is no tenant of any pool
UID_EVIL = 2006   # hostile tenants whose daemons are killed by uid at the end
UID_POKE = 2007
TENANT_UIDS = (h.UID_A, h.UID_B, UID_BUSY, UID_LATE, UID_EVIL, UID_POKE)
NICE_A = 5
LATE_CGI_TIMEOUT = 2
POOL_FULL_WAIT = 3  # the spec's longest wait for a busy pool before 503
IDLE_TIMEOUT = 2
B_SECRET = "B-private-of-2002"
# In itkd's own environment, as systemd would put there; none of it may reach an app process.
DAEMON_ONLY_ENV = {"ITK_TEST_MARKER": "fastcgi-1", "INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
FORBIDDEN_IN_APP = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID",
                    "RUNTIME_DIRECTORY", "STATE_DIRECTORY", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", *DAEMON_ONLY_ENV)

SCRIPTS = {
    # A tenant's program started from PHP inherits the pool's listening socket as its fd 0 and shuts it
    # down: the pool must get a new socket, and the master must not spin on the dead one.
    "shut.php": """<?php
header('Content-Type: text/plain');
exec("python3 -c 'import socket; socket.socket(fileno=0).shutdown(socket.SHUT_RDWR)' 2>&1", $out, $rc);
echo "rc=", $rc, "\n";
""",
    "id.php": """<?php
header('Content-Type: text/plain');
echo 'pid=', getmypid(), "\\nuid=", posix_getuid(), "\\ngid=", posix_getgid(),
     "\\neuid=", posix_geteuid(), "\\negid=", posix_getegid(), "\\n";
""",
    # The app process's environment as exec'd (getenv() would mix in the request's parameters).
    "environ.php": """<?php
header('Content-Type: application/octet-stream');
echo file_get_contents('/proc/self/environ');
""",
    # $_SERVER: the request's FastCGI parameters (getenv() without a name gives only the process's own).
    "params.php": """<?php
header('Content-Type: application/json');
echo json_encode($_SERVER);
""",
    "body.php": """<?php
$d = file_get_contents('php://input');
$cl = getenv('CONTENT_LENGTH');
header('Content-Type: application/octet-stream');
header('X-Body-Length: ' . strlen($d));
header('X-Content-Length: ' . ($cl === false ? '-' : $cl));
echo $d;
""",
    "status.php": """<?php
header('X-Test: 1');
http_response_code(404);
echo "not here\\n";
""",
    "big.php": """<?php
header('Content-Type: application/octet-stream');
for ($i = 0; $i < 16; $i++) echo str_repeat(chr(65 + $i), 65536);
""",
    "connect.php": """<?php
header('Content-Type: text/plain');
$s = @stream_socket_client('unix://' . $_GET['p'], $errno, $errstr, 2);
if ($s === false) { echo "failed: $errno $errstr\\n"; } else { echo "connected\\n"; fclose($s); }
""",
    # false, not an exception: file_get_contents warns and returns false.
    "peek.php": """<?php
header('Content-Type: text/plain');
$s = @file_get_contents($_GET['f']);
echo $s === false ? "refused\\n" : "read: $s\\n";
""",
    "ini.php": """<?php
header('Content-Type: text/plain');
echo 'memory_limit=', ini_get('memory_limit'), "\nloaded=", php_ini_loaded_file(), "\n";
""",
    "sleep.php": """<?php
usleep((int)($_GET['ms'] ?? 0) * 1000);
header('Content-Type: text/plain');
echo 'slept pid=', getmypid(), "\\n";
""",
}


# ---------------------------------------------------------------------------------------------------
# itkd with a runtime directory of its own and variables in its environment that must not reach apps

class PoolDaemon(h.Daemon):
    def command(self):
        cmd = super().command()
        extra = []
        for k, v in DAEMON_ONLY_ENV.items():
            extra += ["-E", f"{k}={v}"]
        if "ASAN_OPTIONS" not in os.environ:
            # So that its absence in an app proves something; ASan's own default, harmless without ASan.
            extra += ["-E", "ASAN_OPTIONS=detect_leaks=1"]
        return cmd[:1] + extra + cmd[1:]


def read_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return parse_environ(f.read())


def parse_environ(raw):
    return dict(i.decode("latin-1").partition("=")[::2] for i in raw.split(b"\0") if i)


def check_daemon_environment(d):
    environ = read_environ(d.pid)
    for k, v in DAEMON_ONLY_ENV.items():
        h.check(environ.get(k) == v, f"setup: expected {k}={v} in itkd's own environment (so that its absence "
                                     f"in an app proves something), got {environ.get(k)!r}")
    for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "ASAN_OPTIONS"):
        h.check(k in environ, f"setup: expected {k} in itkd's environment")
    h.check(environ.get("RUNTIME_DIRECTORY") == d.runtime,
            f"setup: expected RUNTIME_DIRECTORY={d.runtime} in itkd's environment, got "
            f"{environ.get('RUNTIME_DIRECTORY')!r}")


def put_scripts(tree, root, uid):
    for name, text in SCRIPTS.items():
        tree.write(os.path.join(root, name), text, uid, mode=0o644)


def vhost(tree, filename, name, uid, *lines):
    root = h.make_tenant(tree, name.split(".")[0], uid, files={"static.txt": f"static of {name}\n"})
    put_scripts(tree, root, uid)
    text = "\n".join(["[vhost]", f"ServerName = {name}", f"DocumentRoot = {root}",
                      f"AssignUserID = #{uid} #{uid}", *lines]) + "\n"
    tree.write_dropin(filename, text)
    return root


def server_conf(tree, *lines):
    tree.write_server_conf("\n".join(["[server]", "StartServers = 2", f"User = {h.ACCEPTOR_USER}",
                                      f"FastCGIMaxRequests = {MAX_REQUESTS}", *lines]) + "\n")


def setup():
    if not os.access(PHP_CGI, os.X_OK):
        return None
    tree = h.Tree(prefix="itk-fcgi-")
    # b.test has no FastCGI line of its own: it gets the [server] one; a.test replaces it with its own.
    server_conf(tree, f"FastCGI = .php {PHP_CGI}", "FastCGIMaxProcesses = 1")
    root_a = vhost(tree, "10-a.conf", "a.test", h.UID_A, f"FastCGI = .php {PHP_CGI}", f"NiceValue = {NICE_A}")
    root_b = vhost(tree, "20-b.conf", "b.test", h.UID_B)
    tree.write(os.path.join(root_b, "secret.txt"), B_SECRET, h.UID_B, mode=0o600)
    vhost(tree, "30-busy.conf", "busy.test", UID_BUSY, "CGITimeout = 30")
    vhost(tree, "40-late.conf", "late.test", UID_LATE, f"CGITimeout = {LATE_CGI_TIMEOUT}")
    d = PoolDaemon(tree)
    d.root_a, d.root_b = root_a, root_b
    d.start()
    check_daemon_environment(d)
    return d


def requires_php(fn):
    @functools.wraps(fn)
    def wrapper(d):
        if d is None:
            raise h.Skip(f"{PHP_CGI} not installed (Debian package php-cgi)")
        return fn(d)
    return wrapper


# ---------------------------------------------------------------------------------------------------
# Helpers

def diag(text):
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


def get(d, path, host="a.test", **kw):
    resp = h.fetch(d.port, path, host, **kw)
    h.check(resp is not None, f"{kw.get('method', 'GET')} {path} on {host}: connection closed without a response")
    return resp


def php_identity(d, host, what, conn=None):
    """GET /id.php: {'pid': int, 'uid': ..., 'gid': ...} as the script saw them."""
    if conn is None:
        resp = get(d, "/id.php", host)
    else:
        conn.request("GET", "/id.php", host)
        resp = conn.read_response()
    h.expect_status(resp, 200, f"{what}: GET /id.php on {host}")
    kv = h.key_values(resp.body)
    try:
        return {k: int(kv[k]) for k in ("pid", "uid", "gid", "euid", "egid")}
    except (KeyError, ValueError):
        raise h.Fail(f"{what}: expected pid=, uid=, gid= lines from /id.php\n{resp.describe(400)}") from None


def app_children(d, comm=APP_COMM, uid=None, zombies=False):
    """Children of the itkd master named `comm` (optionally only those of `uid`; zombies too on request)."""
    found = []
    for pid, (ppid, _, c) in h.process_table().items():
        if ppid != d.pid or c != comm:
            continue
        if not zombies and not h.pid_alive(pid):
            continue
        if uid is not None:
            st = h.proc_status(pid)
            if st is None or h.ids(st.get("Uid", ""))[:1] != [uid]:
                continue
        found.append(pid)
    return sorted(found)


def describe_children(d):
    rows = []
    for pid, (ppid, _, comm) in sorted(h.process_table().items()):
        if ppid == d.pid:
            st = h.proc_status(pid) or {}
            rows.append(f"{pid} {comm} uid {st.get('Uid', '?').split()[:1]} state {st.get('State', '?')}")
    return "children of the master: " + ("; ".join(rows) if rows else "none")


def expect_app_process(d, pid, uid, what):
    """`pid` is a php-cgi child of the itkd master running as `uid`."""
    comm, ppid = h.comm_of(pid), h.ppid_of(pid)
    h.check(comm == APP_COMM and ppid == d.pid,
            f"{what}: expected PHP's pid {pid} to be a process named {APP_COMM!r} whose parent is the itkd "
            f"master {d.pid}, got comm {comm!r}, parent {ppid}\n{describe_children(d)}")
    st = h.proc_status(pid)
    h.check(st is not None and h.ids(st["Uid"])[:1] == [uid], f"{what}: app process {pid} is not running as {uid}")


def pool_sockets(d):
    """{socket path: (uid, gid, mode)} of every socket in $RUNTIME_DIRECTORY/fastcgi/*/ (pool_socket_permissions
    checks the names; the other cases only need to find them)."""
    base = os.path.join(d.runtime, "fastcgi")
    found = {}
    try:
        entries = os.listdir(base)
    except OSError:
        return found
    for entry in entries:
        try:
            names = os.listdir(os.path.join(base, entry))
        except OSError:
            continue
        for name in names:
            path = os.path.join(base, entry, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                found[path] = (st.st_uid, st.st_gid, st.st_mode)
    return found


def pool_socket_of(d, uid):
    owned = [p for p, (u, _, _) in pool_sockets(d).items() if u == uid]
    h.check(len(owned) == 1, f"expected one pool socket owned by uid {uid} in {d.runtime}/fastcgi/*/, "
                             f"got {owned}; all: {pool_sockets(d)}")
    return owned[0]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().decode("latin-1").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def try_connect_as(uid, path, timeout=5):
    """connect() to the Unix socket `path` from a forked child that dropped to uid/gid `uid` with no
    supplementary groups: 'connected' or 'errno N text'."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            msg = "child failed before connect"
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(3)
                try:
                    s.connect(path)
                    msg = "connected"
                except OSError as e:
                    msg = f"errno {e.errno} {e.strerror}"
                s.close()
            except BaseException as e:  # any failure is reported to the parent, never raised past _exit
                msg = f"child: {type(e).__name__}: {e}"
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        deadline = time.monotonic() + timeout
        data = b""
        while time.monotonic() < deadline:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")
    finally:
        os.close(r)
        if not h.wait_until(lambda: os.waitpid(pid, os.WNOHANG)[0] != 0, timeout):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def kill_leftover_apps():
    """php-cgi processes of these tests still running (an itkd that did not stop its pools). Known by the
    environment every pool here gets, so that a php-cgi of another test (a Handler) is never touched."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if h.comm_of(pid) != APP_COMM:
            continue
        try:
            env = read_environ(pid)
            uid = h.ids((h.proc_status(pid) or {}).get("Uid", "-1"))[0]
        except (OSError, IndexError, ValueError):
            continue
        if env.get("PHP_FCGI_MAX_REQUESTS") == MAX_REQUESTS and uid in TENANT_UIDS:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


atexit.register(kill_leftover_apps)


# ---------------------------------------------------------------------------------------------------
# The warm process and who it runs as

def php_runs_in_warm_process_as_vhost_user(d):
    first = php_identity(d, "a.test", "first request")
    second = php_identity(d, "a.test", "second request, new connection")
    with h.Conn(d.port) as c:
        third = php_identity(d, "a.test", "third request, keep-alive", c)
        fourth = php_identity(d, "a.test", "fourth request, same connection", c)
    for seen in (first, second, third, fourth):
        h.expect_eq({k: seen[k] for k in ("uid", "gid", "euid", "egid")},
                    {"uid": h.UID_A, "gid": h.UID_A, "euid": h.UID_A, "egid": h.UID_A},
                    "posix_getuid/getgid/geteuid/getegid in PHP on a.test")
    pids = [s["pid"] for s in (first, second, third, fourth)]
    h.check(len(set(pids)) == 1, f"FastCGIMaxProcesses = 1: expected every request served by the same php-cgi "
                                 f"process, got pids {pids} (a process per request is no pool)")
    expect_app_process(d, pids[0], h.UID_A, "a.test's PHP")
    b = php_identity(d, "b.test", "b.test (FastCGI from [server])")
    h.expect_eq((b["uid"], b["gid"]), (h.UID_B, h.UID_B), "uid and gid of PHP on b.test")
    h.check(b["pid"] != pids[0], f"b.test's PHP ran in a.test's process {pids[0]}")
    expect_app_process(d, b["pid"], h.UID_B, "b.test's PHP")


def app_process_credentials_and_fds(d):
    pid = php_identity(d, "a.test", "identity")["pid"]
    expect_app_process(d, pid, h.UID_A, "a.test's PHP")
    st = h.proc_status(pid)
    problems = []
    if h.ids(st["Uid"]) != [h.UID_A] * 4:
        problems.append(f"Uid: expected {[h.UID_A] * 4}, got {h.ids(st['Uid'])}")
    if h.ids(st["Gid"]) != [h.UID_A] * 4:
        problems.append(f"Gid: expected {[h.UID_A] * 4}, got {h.ids(st['Gid'])}")
    if h.ids(st.get("Groups", "")) != [h.UID_A]:
        problems.append(f"supplementary groups: expected [{h.UID_A}], got {h.ids(st.get('Groups', ''))}")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        if int(st.get(cap, "-1"), 16) != 0:
            problems.append(f"{cap}: expected 0000000000000000, got {st.get(cap)}")
    if st.get("NoNewPrivs") != "1":
        problems.append(f"NoNewPrivs: expected 1, got {st.get('NoNewPrivs')}")
    if h.nice_of(pid) != NICE_A:
        problems.append(f"nice: expected a.test's NiceValue {NICE_A}, got {h.nice_of(pid)}")

    # fd 0 is the pool's listening socket, 1 and 2 /dev/null; nothing else of itkd's is inherited.
    listening = {}
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON: a listening socket
                listening[fields[6]] = fields[7]
    sock = pool_socket_of(d, h.UID_A)

    def fds():
        out = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
        return out

    inherited_kinds = ("socket:", "pipe:", "/dev/pts", "/dev/tty", d.tree.dir)

    def unexpected(table):
        return {fd: t for fd, t in table.items() if fd > 2 and t.startswith(inherited_kinds)}
    # php-cgi may still be closing the connection of the request that just ended.
    h.wait_until(lambda: not unexpected(fds()), 3)
    table = fds()
    fd0 = table.get(0, "")
    inode = fd0[len("socket:["):-1] if fd0.startswith("socket:[") else None
    if inode is None or listening.get(inode) != sock:
        problems.append(f"fd 0: expected the listening socket {sock}, got {fd0!r} "
                        f"(listening unix sockets: {listening.get(inode, 'not among them')})")
    for fd in (1, 2):
        if table.get(fd) != "/dev/null":
            problems.append(f"fd {fd}: expected /dev/null, got {table.get(fd)!r}")
    if unexpected(table):
        problems.append(f"descriptors the app should not hold: {unexpected(table)}")
    if problems:
        raise h.Fail(f"app process {pid} of a.test:\n" + "\n".join(problems) + f"\nall fds: {table}")


def parse_acl(raw):
    """system.posix_acl_access: [(tag, perm, id)] (tags: 1 user_obj, 2 user, 4 group_obj, 8 group, 0x10 mask,
    0x20 other)."""
    version = struct.unpack_from("<I", raw)[0]
    h.check(version == 2, f"posix_acl_access: expected version 2, got {version}")
    return [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]


def pool_socket_permissions(d):
    php_identity(d, "a.test", "a request so a.test's pool exists")
    php_identity(d, "b.test", "a request so b.test's pool exists")
    problems = []
    for uid in (h.UID_A, h.UID_B):
        sock = pool_socket_of(d, uid)
        pool_dir = os.path.dirname(sock)
        # The layout of docs/architecture.md: a directory per vhost, a socket per app named by its extension.
        if os.path.dirname(pool_dir) != os.path.join(d.runtime, "fastcgi") or os.path.basename(sock) != "php.sock":
            problems.append(f"{sock}: expected $RUNTIME_DIRECTORY/fastcgi/<n>/php.sock for `FastCGI = .php ...`")
        st = os.lstat(sock)
        if not stat.S_ISSOCK(st.st_mode) or (st.st_uid, st.st_gid) != (uid, uid) or stat.S_IMODE(st.st_mode) != 0o600:
            problems.append(f"{sock}: expected a socket owned by {uid}:{uid}, mode 0600; got uid {st.st_uid}, "
                            f"gid {st.st_gid}, mode {oct(st.st_mode)}")
        dst = os.lstat(pool_dir)
        mode = stat.S_IMODE(dst.st_mode)
        if not stat.S_ISDIR(dst.st_mode) or dst.st_uid != 0 or mode & 0o007 or mode & 0o700 != 0o700:
            problems.append(f"{pool_dir}: expected a directory owned by root, rwx for root and nothing for "
                            f"others; got uid {dst.st_uid}, mode {oct(dst.st_mode)}")
        try:
            acl = parse_acl(os.getxattr(pool_dir, "system.posix_acl_access"))
        except OSError as e:
            problems.append(f"{pool_dir}: expected a POSIX ACL, reading it failed: {e}")
            continue
        named = [(tag, perm, ident) for tag, perm, ident in acl if tag in (2, 8)]
        if named != [(2, 1, uid)]:
            problems.append(f"{pool_dir}: expected one named ACL entry, user:{uid}:--x; got "
                            f"{[('user' if t == 2 else 'group', p, i) for t, p, i in named]}")
        if any(tag == 0x20 and perm for tag, perm, _ in acl):
            problems.append(f"{pool_dir}: ACL gives others access: {acl}")
    if problems:
        raise h.Fail("pool sockets:\n" + "\n".join(problems))


def killed_app_replaced_on_demand(d):
    before = php_identity(d, "a.test", "before the kill")
    victim = before["pid"]
    expect_app_process(d, victim, h.UID_A, "a.test's PHP")
    os.kill(victim, signal.SIGKILL)
    gone = h.wait_until(lambda: victim not in app_children(d, uid=None, zombies=True), 5)
    h.check(gone, f"expected the killed php-cgi {victim} reaped by the master within 5s\n{describe_children(d)}")
    after = php_identity(d, "a.test", "after the kill")
    h.check(after["pid"] != victim, f"expected a new php-cgi after SIGKILL to {victim}, got the same pid")
    h.expect_eq((after["uid"], after["gid"]), (h.UID_A, h.UID_A), "uid and gid of the replacement")
    expect_app_process(d, after["pid"], h.UID_A, "the replacement")


# ---------------------------------------------------------------------------------------------------
# Isolation between tenants' pools

def tenant_php_cannot_connect_to_other_pool(d):
    php_identity(d, "b.test", "a request so b.test's pool exists")
    sock_b = pool_socket_of(d, h.UID_B)
    q = "/connect.php?p=" + urllib.parse.quote(sock_b, safe="")
    own = get(d, q, "b.test")
    h.expect_status(own, 200, "b.test's PHP connecting to its own pool socket")
    h.expect_eq(own.body, b"connected\n", "b.test's PHP connecting to its own pool socket (proves the check "
                                          "below can fail)")
    resp = get(d, q, "a.test")
    h.expect_status(resp, 200, f"a.test's PHP connecting to b.test's pool socket {sock_b}")
    h.check(resp.body.startswith(b"failed:"), f"a.test's PHP (uid {h.UID_A}) connected to b.test's pool socket "
                                              f"{sock_b}\n{resp.describe()}")
    h.check(b"Permission denied" in resp.body, f"expected the connection refused with EACCES\n{resp.describe()}")


def other_uid_cannot_connect_to_pool_socket(d):
    php_identity(d, "b.test", "a request so b.test's pool exists")
    sock_b = pool_socket_of(d, h.UID_B)
    results = {uid: try_connect_as(uid, sock_b) for uid in (h.UID_B, h.UID_A, UID_OTHER)}
    h.expect_eq(results[h.UID_B], "connected", f"connect() to {sock_b} as its tenant, uid {h.UID_B}")
    for uid in (h.UID_A, UID_OTHER):
        h.check(results[uid].startswith("errno 13 "),
                f"connect() to b.test's pool socket {sock_b} as uid {uid}: expected EACCES (errno 13), "
                f"got {results[uid]!r}")
    # The tenant reaches its own pool: a.test's socket from uid 2001.
    sock_a = pool_socket_of(d, h.UID_A)
    h.expect_eq(try_connect_as(h.UID_A, sock_a), "connected", f"connect() to {sock_a} as uid {h.UID_A}")
    # The app still answers after those bare connections.
    php_identity(d, "b.test", "after connections that sent nothing")


def tenant_php_cannot_read_other_tenants_file(d):
    path = os.path.join(d.root_b, "secret.txt")
    q = "/peek.php?f=" + urllib.parse.quote(path, safe="")
    own = get(d, q, "b.test")
    h.expect_status(own, 200, "b.test's PHP reading its own 0600 file")
    h.expect_eq(own.body, f"read: {B_SECRET}\n".encode(), "b.test's PHP reading its own 0600 file")
    resp = get(d, q, "a.test")
    h.expect_status(resp, 200, "a.test's PHP reading b.test's 0600 file")
    h.expect_eq(resp.body, b"refused\n", f"a.test's PHP (uid {h.UID_A}) reading {path} (0600, uid {h.UID_B})")


# ---------------------------------------------------------------------------------------------------
# What the app is given

def app_environment_is_clean(d):
    resp = get(d, "/environ.php")
    h.expect_status(resp, 200, "GET /environ.php")
    env = parse_environ(resp.body)
    problems = [f"{k}: expected absent, got {env[k]!r}" for k in FORBIDDEN_IN_APP if k in env]
    if env.get("PATH") != APP_PATH:
        problems.append(f"PATH: expected {APP_PATH!r}, got {env.get('PATH')!r}")
    if env.get("PHP_FCGI_MAX_REQUESTS") != MAX_REQUESTS:
        problems.append(f"PHP_FCGI_MAX_REQUESTS: expected FastCGIMaxRequests = {MAX_REQUESTS}, "
                        f"got {env.get('PHP_FCGI_MAX_REQUESTS')!r}")
    if env.get("TMPDIR") != d.temp_dir("a.test"):
        problems.append(f"TMPDIR: expected a.test's temporary directory {d.temp_dir('a.test')!r}, "
                        f"got {env.get('TMPDIR')!r}")
    ini_dir = os.path.join(d.runtime, "php", "a.test")
    scan = f"{ini_dir}::{ini_dir}/admin"
    if env.get("PHP_INI_SCAN_DIR") != scan:
        problems.append(f"PHP_INI_SCAN_DIR: expected {scan!r} (a.test's ini directory, PHP's own, a.test's settings), "
                        f"got {env.get('PHP_INI_SCAN_DIR')!r}")
    allowed = {"PATH", "PHP_FCGI_MAX_REQUESTS", "TMPDIR", "PHP_INI_SCAN_DIR"}
    extra = sorted(set(env) - allowed - set(FORBIDDEN_IN_APP))
    if extra:
        problems.append(f"variables besides {sorted(allowed)}: { {k: env[k] for k in extra} }")
    if problems:
        raise h.Fail("environment of the app process (/proc/self/environ):\n" + "\n".join(problems)
                     + f"\nwhole environment: {env}")


def request_params_are_cgi_meta_variables(d):
    with h.Conn(d.port) as c:
        c.request("GET", "/params.php?x=1&y=%20two", "a.test", [("X-Custom", "hello"), ("Connection", "close")])
        resp = c.read_response()
        client_port = c.client_port
    h.expect_status(resp, 200, "GET /params.php")
    try:
        env = json.loads(resp.body)
    except ValueError:
        raise h.Fail(f"params.php: expected JSON\n{resp.describe(600)}") from None
    root = d.root_a
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "a.test",
        "SERVER_PORT": str(d.port), "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(client_port),
        "REQUEST_METHOD": "GET", "REQUEST_URI": "/params.php?x=1&y=%20two", "SCRIPT_NAME": "/params.php",
        "SCRIPT_FILENAME": f"{root}/params.php", "DOCUMENT_ROOT": root, "QUERY_STRING": "x=1&y=%20two",
        "HTTP_HOST": "a.test", "HTTP_X_CUSTOM": "hello",
    }
    problems = [f"{k}: expected {v!r}, got {env.get(k)!r}" for k, v in expected.items() if env.get(k) != v]
    problems += [f"{k}: expected absent, got {env[k]!r}" for k in FORBIDDEN_IN_APP if k in env]
    if problems:
        raise h.Fail("FastCGI parameters seen by PHP (getenv()):\n" + "\n".join(problems) + f"\nall: {env}")


def absolute_form_target_names_the_host(d):
    # RFC 9112 §3.2.2: the authority of an absolute-form target wins, and the Host header takes it; a
    # script must never see a Host the client made up (host-header poisoning of password-reset links).
    raw = b"GET http://a.test/params.php HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    resp, _, _ = h.send_raw(d.port, raw)
    h.expect_status(resp, 200, "GET http://a.test/params.php with Host: evil.example")
    env = json.loads(resp.body)
    h.expect_eq(env.get("HTTP_HOST"), "a.test", "HTTP_HOST seen by PHP")
    h.expect_eq(env.get("SERVER_NAME"), "a.test", "SERVER_NAME seen by PHP")


# ---------------------------------------------------------------------------------------------------
# Bodies, headers and status over FastCGI

BODY = bytes(range(256)) * 800  # 200 KiB: several FastCGI records each way


def expect_echo(resp, what, content_length):
    h.expect_status(resp, 200, what)
    h.expect_header(resp, "X-Body-Length", str(len(BODY)), f"{what}: bytes PHP read from php://input")
    h.expect_header(resp, "X-Content-Length", str(content_length), f"{what}: CONTENT_LENGTH seen by PHP")
    h.check(resp.body == BODY, f"{what}: expected the {len(BODY)} bytes back, got {len(resp.body)} bytes, "
                               f"{'equal' if resp.body == BODY else 'different'}")


def post_body_content_length(d):
    with h.Conn(d.port, timeout=15) as c:
        c.send(h.build_request("POST", "/body.php", "a.test", {"Content-Length": str(len(BODY)),
                               "Content-Type": "application/octet-stream"}) + BODY[:1000])
        time.sleep(0.2)
        c.send(BODY[1000:])
        expect_echo(c.read_response(), f"POST /body.php with a {len(BODY)}-byte Content-Length body", len(BODY))
        # Keep-alive goes on after a FastCGI response.
        c.request("GET", "/static.txt", "a.test")
        resp = c.read_response()
        h.expect_status(resp, 200, "static file on the same connection after the POST")
        h.expect_eq(resp.body, b"static of a.test\n", "static body")


def post_body_chunked(d):
    parts = [BODY[i:i + 7000] for i in range(0, len(BODY), 7000)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with h.Conn(d.port, timeout=15) as c:
        c.send(h.build_request("POST", "/body.php", "a.test", {"Transfer-Encoding": "chunked",
                               "Content-Type": "application/octet-stream"}))
        for i in range(0, len(wire), 50000):
            c.send(wire[i:i + 50000])
            time.sleep(0.02)
        expect_echo(c.read_response(), f"POST /body.php with a chunked {len(BODY)}-byte body", len(BODY))
        c.request("GET", "/id.php", "a.test")
        h.expect_status(c.read_response(), 200, "GET /id.php on the same connection after the chunked POST")


def status_and_header_from_php(d):
    resp = get(d, "/status.php")
    h.expect_status(resp, 404, "http_response_code(404) in PHP")
    h.expect_header(resp, "X-Test", "1", "header('X-Test: 1') in PHP")
    h.expect_eq(resp.body, b"not here\n", "body of /status.php")
    h.check(resp.header("Status") is None, f"PHP's Status header was passed on to the client\n{resp.describe()}")


def large_response(d):
    resp = get(d, "/big.php", timeout=15)
    h.expect_status(resp, 200, "GET /big.php")
    want = b"".join(bytes([65 + i]) * 65536 for i in range(16))
    h.check(resp.body == want, f"GET /big.php: expected 1 MiB in 16 runs of A..P, got {len(resp.body)} bytes, "
                               f"{'equal' if resp.body == want else 'different'}")


# ---------------------------------------------------------------------------------------------------
# Full pool and timeouts

def pool_full_waits_then_503(d):
    # busy.test: FastCGIMaxProcesses = 1, its one process busy for 6 s, then a burst of more requests than
    # that process can queue. Those refused get 503 + Retry-After after waiting about POOL_FULL_WAIT
    # seconds (not at once, not after the slow one); any that were queued are served by the same process
    # once it is free. Nothing waits for CGITimeout.
    burst = 4
    conns = []
    try:
        slow = h.Conn(d.port, timeout=20)
        conns.append(slow)
        slow.request("GET", "/sleep.php?ms=6000", "busy.test")
        h.check(h.wait_until(lambda: app_children(d, uid=UID_BUSY), 5),
                f"expected a php-cgi for busy.test while its request runs\n{describe_children(d)}")
        time.sleep(0.5)
        master_before = cpu_ticks(d.pid)
        start = time.monotonic()
        waiting = []
        for _ in range(burst):
            c = h.Conn(d.port, timeout=20)
            conns.append(c)
            c.request("GET", "/sleep.php", "busy.test", [("Connection", "close")])
            waiting.append(c)
        # Other vhosts are not held up by busy.test's full pool.
        t = time.monotonic()
        php_identity(d, "a.test", "a.test while busy.test's pool is full")
        h.check(time.monotonic() - t < 2, f"a.test's PHP took {time.monotonic() - t:.1f}s while busy.test was full")
        # When each answer starts to arrive (a later read must not make an early answer look late).
        arrived = {}
        deadline = time.monotonic() + 15
        while len(arrived) < len(waiting) and time.monotonic() < deadline:
            readable, _, _ = select.select([c.sock for c in waiting if c not in arrived], [], [], 0.1)
            for c in waiting:
                if c.sock in readable:
                    arrived[c] = time.monotonic() - start
        master_ticks = cpu_ticks(d.pid) - master_before
        first = slow.read_response(timeout=15)
        h.expect_status(first, 200, "the slow request on busy.test")
        slow_pid = h.key_values(first.body).get("slept pid")
        results = []
        for i, c in enumerate(waiting):
            h.check(c in arrived, f"burst request {i + 1} to busy.test: no answer within 15s")
            resp = c.read_response(timeout=15)
            h.expect_status(resp, (200, 503), f"burst request {i + 1} to busy.test while its only process is busy")
            results.append((resp, arrived[c]))
        diag("burst answers: " + ", ".join(f"{r.status} after {t:.1f}s" for r, t in results))
        refused = [(r, t) for r, t in results if r.status == 503]
        h.check(refused, f"expected a 503 for at least one of {burst} requests to a pool of one busy process")
        for r, t in refused:
            h.check(r.header("Retry-After") is not None, f"503 without Retry-After\n{r.describe()}")
            h.check(POOL_FULL_WAIT - 0.5 <= t <= POOL_FULL_WAIT + 2.5,
                    f"expected a 503 after waiting about {POOL_FULL_WAIT}s for the pool, came after {t:.1f}s")
        for r, t in results:
            if r.status == 200:
                h.expect_eq(h.key_values(r.body).get("slept pid"), slow_pid,
                            "pid of a queued request (FastCGIMaxProcesses = 1)")
        hz = os.sysconf("SC_CLK_TCK")
        span = max(t for _, t in results)
        h.check(master_ticks < 0.3 * span * hz, f"the master used {master_ticks / hz:.2f}s of CPU in the {span:.1f}s "
                                                f"requests waited for the full pool (spinning?)")
        h.check(len(app_children(d, uid=UID_BUSY)) <= 1,
                f"FastCGIMaxProcesses = 1: expected one php-cgi for busy.test\n{describe_children(d)}")
    finally:
        for c in conns:
            c.close()

    # A wait shorter than the bound is a wait, not a refusal.
    slow = h.Conn(d.port, timeout=20)
    try:
        slow.request("GET", "/sleep.php?ms=1500", "busy.test")
        time.sleep(0.3)
        start = time.monotonic()
        resp = get(d, "/sleep.php", "busy.test", timeout=15)
        waited = time.monotonic() - start
        h.expect_status(resp, 200, "request to busy.test queued behind a 1.5s one")
        h.check(0.8 <= waited < POOL_FULL_WAIT,
                f"expected the request queued behind the 1.5s one answered after about 1.2s, took {waited:.1f}s")
        first = slow.read_response(timeout=15)
        h.expect_status(first, 200, "the 1.5s request on busy.test")
        h.expect_eq(h.key_values(first.body).get("slept pid"), h.key_values(resp.body).get("slept pid"),
                    "pid of both requests (FastCGIMaxProcesses = 1)")
    finally:
        slow.close()


def cgi_timeout_is_504(d):
    start = time.monotonic()
    resp = get(d, "/sleep.php?ms=8000", "late.test", timeout=15)
    took = time.monotonic() - start
    h.expect_status(resp, 504, f"PHP silent past late.test's CGITimeout = {LATE_CGI_TIMEOUT}s")
    h.check(LATE_CGI_TIMEOUT - 0.5 <= took <= LATE_CGI_TIMEOUT + 3,
            f"expected the 504 after about {LATE_CGI_TIMEOUT}s, came after {took:.1f}s")
    # The shared daemon serves everything else meanwhile.
    php_identity(d, "a.test", "a.test after late.test's timeout")


# ---------------------------------------------------------------------------------------------------
# Pool life: idle stop, broken app, reload, stop. Each with an itkd of its own.

def own_daemon(name, *server_lines, vhosts):
    """vhosts: [(filename, server name, uid, [extra lines])]; returns the started daemon."""
    tree = h.Tree(prefix=f"itk-fcgi-{name}-")
    server_conf(tree, *server_lines)
    d = PoolDaemon(tree, name=f"itkd-{name}")
    d.roots = {}
    for filename, server_name, uid, lines in vhosts:
        d.roots[server_name] = vhost(tree, filename, server_name, uid, *lines)
    d.start()
    return d


def slow_start_starts_one_process(shared):
    # php-cgi takes over 100 ms to start on a busy machine; until it waits for connections it counts as
    # the capacity for the request that made the master start it. An app that takes 400 ms stands in
    # for that machine here: one request must start one process, not one every few milliseconds.
    tree = h.Tree(prefix="itk-fcgi-slow-")
    server_conf(tree)
    slow = tree.write(tree.path("slow-php-cgi"), f"#!/bin/sh\nsleep 0.4\nexec {PHP_CGI}\n", 0, mode=0o755)
    d = PoolDaemon(tree, name="itkd-slow")
    d.roots = {"a.test": vhost(tree, "10-a.conf", "a.test", h.UID_A, f"FastCGI = .php {slow}")}
    d.start()
    try:
        def apps():
            return [pid for pid, (ppid, _, comm) in h.process_table().items()
                    if ppid == d.pid and comm in ("slow-php-cgi", "sleep", "php-cgi", "sh") and h.pid_alive(pid)]
        first = php_identity(d, "a.test", "the first request of an idle pool whose app takes 400 ms to start")
        started = apps()
        h.check(started == [first["pid"]], f"expected one app process for one request, got {started}\n"
                                           f"{describe_children(d)}")
        h.check(d.log_text().count("started FastCGI app") == 1,
                f"expected one 'started FastCGI app' in the log, got {d.log_text().count('started FastCGI app')}")
    finally:
        d.stop()


def shut_down_socket_is_replaced(shared):
    d = own_daemon("shut", vhosts=[("10-a.conf", "a.test", h.UID_A, [f"FastCGI = .php {PHP_CGI}"])])
    first = php_identity(d, "a.test", "before the socket is shut down")["pid"]
    resp = get(d, "/shut.php", "a.test")
    h.expect_status(resp, 200, "the PHP that shuts the pool's listening socket down")
    h.expect_eq(h.key_values(resp.body).get("rc"), "0", "exit status of the shutdown() in the tenant's program")
    before = cpu_ticks(d.pid)
    time.sleep(2)
    spent = cpu_ticks(d.pid) - before
    h.check(spent < 50, f"expected the master idle after the socket was shut down, it used {spent} ticks in 2 s")
    after = php_identity(d, "a.test", "after the socket was replaced")
    h.check(after["pid"] != first, "expected a new php-cgi on the new socket, got the old pid")
    h.expect_eq(after["uid"], h.UID_A, "uid of the PHP on the new socket")
    h.check("it was shut down by a process holding it" in d.log_text(),
            "expected the journal to say the socket was replaced")


def large_head_reaches_php(shared):
    # About 64 KiB of PARAMS: they span several FastCGI records, and php-cgi takes them only in whole pairs.
    d = shared
    headers = [(f"X-Big-{i}", chr(ord("a") + i) * 8000) for i in range(7)]
    resp = get(d, "/id.php?" + "q" * 8000, "a.test", headers=headers)
    h.expect_status(resp, 200, "GET /id.php with an 8000-byte query and seven 8000-byte headers")
    h.check(b"pid=" in resp.body, f"expected the PHP's output\n{resp.describe(200)}")


def idle_pool_stops(shared):
    d = own_daemon("idle", f"FastCGIIdleTimeout = {IDLE_TIMEOUT}",
                   vhosts=[("10-a.conf", "a.test", h.UID_A, [f"FastCGI = .php {PHP_CGI}"])])
    first = php_identity(d, "a.test", "first request")["pid"]
    time.sleep(IDLE_TIMEOUT / 2)
    second = php_identity(d, "a.test", "request within the idle timeout")["pid"]
    h.expect_eq(second, first, f"pid of a request {IDLE_TIMEOUT / 2}s later (FastCGIIdleTimeout = {IDLE_TIMEOUT})")
    last = time.monotonic()
    h.check(app_children(d), f"expected a php-cgi right after the request\n{describe_children(d)}")
    since = d.notify.mark()
    # The STATUS line counts the app processes (published at most once a second).
    running = d.notify.wait_for(lambda m: ", fastcgi: 1;" in m.get("STATUS", ""), 3, 0)[1]
    h.check(running, f"expected STATUS with 'fastcgi: 1' while the pool runs; got {d.notify.summary()}")
    bound = IDLE_TIMEOUT + 3
    stopped = h.wait_until(lambda: not app_children(d, zombies=True), bound + 1)
    after = time.monotonic() - last
    h.check(stopped and after <= bound,
            f"FastCGIIdleTimeout = {IDLE_TIMEOUT}: expected no php-cgi under the master within {bound}s of the "
            f"last request, {'took ' + format(after, '.1f') + 's' if stopped else 'still there'}\n"
            f"{describe_children(d)}")
    idle = d.notify.wait_for(lambda m: ", fastcgi: 0;" in m.get("STATUS", ""), 3, since)[1]
    h.check(idle, f"expected STATUS with 'fastcgi: 0' once the pool stopped; got {d.notify.summary(since)}")
    again = php_identity(d, "a.test", "request after the pool stopped")
    h.check(again["pid"] != first, "expected a new php-cgi after the idle stop, got the old pid")
    expect_app_process(d, again["pid"], h.UID_A, "the restarted pool")


def broken_app_is_502_static_still_served(shared):
    d = own_daemon("broken", vhosts=[
        ("10-a.conf", "a.test", h.UID_A, [f"FastCGI = .php {PHP_CGI}"]),
        ("20-broken.conf", "broken.test", h.UID_B, ["FastCGI = .php /bin/false", "CGITimeout = 30"]),
    ])
    bound = 10
    for attempt in (1, 2):
        c = h.Conn(d.port, timeout=bound + 5)
        try:
            start = time.monotonic()
            c.request("GET", "/id.php", "broken.test", [("Connection", "close")])
            # While that request waits for an app that never answers, static files are served at once.
            for host in ("broken.test", "a.test"):
                t = time.monotonic()
                resp = get(d, "/static.txt", host)
                h.expect_status(resp, 200, f"static file on {host} while broken.test's app fails")
                h.expect_eq(resp.body, f"static of {host}\n".encode(), f"static body on {host}")
                h.check(time.monotonic() - t < 2, f"static file on {host} took {time.monotonic() - t:.1f}s")
            try:
                resp = c.read_response(timeout=bound + 5)
            except h.Fail as e:
                raise h.Fail(f"request {attempt} for PHP on broken.test (FastCGI = .php /bin/false): expected 502 or "
                             f"503 within {bound}s, got none within {bound + 5}s (CGITimeout = 30): {e}") from None
            took = time.monotonic() - start
        finally:
            c.close()
        h.expect_status(resp, (502, 503), f"request {attempt} for PHP on broken.test (FastCGI = .php /bin/false)")
        h.check(took <= bound, f"request {attempt}: expected the {resp.status} within {bound}s, came after "
                               f"{took:.1f}s")
    php_identity(d, "a.test", "a.test's working pool next to the broken one")
    h.check(d.running(), "itkd exited")
    # /bin/false exits at once: the master reaps what it started.
    zombies = h.wait_until(lambda: not [p for p in app_children(d, comm="false", zombies=True)
                                        if not h.pid_alive(p)], 3)
    h.check(zombies, f"expected no unreaped `false` under the master\n{describe_children(d)}")


def reload_removing_fastcgi_stops_pool(shared):
    line = f"FastCGI = .php {PHP_CGI}"
    d = own_daemon("reload", vhosts=[("10-a.conf", "a.test", h.UID_A, [line]),
                                     ("20-b.conf", "b.test", h.UID_B, [line])])
    a = php_identity(d, "a.test", "before the reload")["pid"]
    php_identity(d, "b.test", "before the reload")
    h.check(app_children(d, uid=h.UID_A), f"expected a php-cgi of a.test\n{describe_children(d)}")
    path = os.path.join(d.tree.conf_dir, "10-a.conf")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(line + "\n", ""))
    d.reload()
    gone = h.wait_until(lambda: not app_children(d, uid=h.UID_A, zombies=True), 5)
    h.check(gone, f"expected a.test's php-cgi ({a}) gone within 5s of a reload that removed its FastCGI line\n"
                  f"{describe_children(d)}")
    # b.test keeps its pool; a.test's .php files no longer start one.
    php_identity(d, "b.test", "b.test after the reload")
    resp = get(d, "/id.php", "a.test")
    h.check(resp.status != 500, f"GET /id.php on a.test after the reload\n{resp.describe()}")
    time.sleep(0.5)
    h.check(not app_children(d, uid=h.UID_A), f"a request to a.test started a php-cgi after its FastCGI line was "
                                                f"removed\n{describe_children(d)}")


def stop_ends_pools(shared):
    d = own_daemon("stop", vhosts=[("10-a.conf", "a.test", h.UID_A, [f"FastCGI = .php {PHP_CGI}"])])
    pid = php_identity(d, "a.test", "before the stop")["pid"]
    expect_app_process(d, pid, h.UID_A, "a.test's PHP")
    # SIGTERM to the master alone: Daemon.stop() would also kill the whole process group and hide a pool
    # that itkd left behind.
    d.close_trigger()
    d.signal(signal.SIGTERM)
    code = d.wait_exit(h.STOP_TIMEOUT)
    h.expect_eq(code, 0, "itkd's exit status on SIGTERM")
    gone = h.wait_until(lambda: not h.pid_alive(pid), 5)
    h.check(gone, f"expected the php-cgi {pid} gone within 5s of itkd's exit, still running with parent "
                  f"{h.ppid_of(pid)}")


# ---------------------------------------------------------------------------------------------------
# Hostile tenants: what a tenant's own PHP and programs try against the pool machinery

# A tenant's FastCGI "app" that leaves a daemon behind holding the pool's listening socket (its fd 0, one
# open file description with the master's), then aborts, so the pool counts as failing and the master
# refuses the requests waiting on it. The daemon sets the socket's receive timeout to a year, as a tenant
# would to make a master's accept() sleep, and records every change of the option it did not make itself:
# the master must neither block on that socket nor touch its options. (It takes no connection itself: a
# daemon that does only answers its own vhost's requests, and the queue must stay full for the master's
# refusals to run every time.)
HOSTILE_APP = r"""#!/usr/bin/python3
import os, socket, struct, time
here = os.path.dirname(os.path.abspath(__file__))
year = struct.pack("ll", 365 * 86400, 0)
try:
    marker = os.open(os.path.join(here, "daemon.pid"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
except FileExistsError:
    marker = None
if marker is not None and os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(marker, str(os.getpid()).encode())
        os.close(marker)
        s = socket.socket(fileno=os.dup(0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, year)
        def guard():
            while True:
                got = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
                if got != year:
                    with open(os.path.join(here, "touched"), "a") as f:
                        f.write(repr(struct.unpack("ll", got)) + "\n")
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, year)
                time.sleep(0.0005)
        guard()
    os._exit(0)
os.abort()
"""


def failing_app_with_tenant_daemon_never_blocks_master(shared):
    tree = h.Tree(prefix="itk-fcgi-hostile-")
    server_conf(tree)
    evil_root = tree.docroot("evil", UID_EVIL)
    tree.write(os.path.join(evil_root, "x.php"), "<?php echo 1;\n", UID_EVIL)
    app = tree.write(os.path.join(evil_root, "app.py"), HOSTILE_APP, UID_EVIL, mode=0o755)
    h.cleanup_uid_at_exit(UID_EVIL)
    d = PoolDaemon(tree, name="itkd-hostile")
    d.roots = {"a.test": vhost(tree, "10-a.conf", "a.test", h.UID_A, f"FastCGI = .php {PHP_CGI}")}
    tree.write_dropin("20-evil.conf", "\n".join([
        "[vhost]", "ServerName = evil.test", f"DocumentRoot = {evil_root}", f"AssignUserID = #{UID_EVIL} #{UID_EVIL}",
        f"FastCGI = .php {app}", "CGITimeout = 3"]) + "\n")
    d.start()
    try:
        # Requests to evil.test start the app again and again; after three quick failures the pool counts
        # as failing and its waiting requests are refused. Several at once keep the queue busy.
        pending = []
        answers = []

        def collect(c, timeout):
            try:
                resp = c.read_response(timeout=timeout)
                answers.append(resp.status if resp else None)
            except h.Fail:
                answers.append("none")
            c.close()
        start = time.monotonic()
        while time.monotonic() - start < 8:
            c = h.Conn(d.port, timeout=10)
            c.request("GET", "/x.php", "evil.test", [("Connection", "close")])
            pending.append((c, time.monotonic()))
            time.sleep(0.3)
            for c, sent in [p for p in pending if time.monotonic() - p[1] > 0.5]:
                readable, _, _ = select.select([c.sock], [], [], 0)
                if readable or time.monotonic() - sent > 6:
                    collect(c, 0.5)
                    pending.remove((c, sent))
        h.check(os.path.exists(os.path.join(evil_root, "daemon.pid")),
                f"setup: the hostile app never left its daemon behind; {d.log_tail(10)}")
        # The master still does its work: a reload, another tenant's PHP, new pools.
        t = time.monotonic()
        d.reload()
        h.check(time.monotonic() - t < 5, f"SIGHUP took {time.monotonic() - t:.1f}s while evil.test's daemon held "
                                          f"the pool socket")
        t = time.monotonic()
        php_identity(d, "a.test", "a.test's PHP while evil.test's daemon holds its pool socket")
        h.check(time.monotonic() - t < 3, f"a.test's PHP took {time.monotonic() - t:.1f}s")
        for c, _ in pending:
            collect(c, 6)
        diag(f"evil.test answers: {answers}")
        h.check(answers and all(a in (502, 503, 504) for a in answers),
                f"expected every request to evil.test answered 502, 503 or 504 within CGITimeout, got {answers}")
        h.check(502 in answers, f"expected the requests that waited for the failing app refused with 502, got {answers}")
        touched = os.path.join(evil_root, "touched")
        h.check(not os.path.exists(touched),
                "the master changed SO_RCVTIMEO on a socket the tenant holds (values the daemon found: "
                f"{open(touched).read().split() if os.path.exists(touched) else ''})")
    finally:
        d.stop()
        h.kill_uid(UID_EVIL)


def tenant_php_ini_is_ignored(shared):
    # php-cgi reads php.ini and php-cgi-fcgi.ini from its working directory before the admin's.
    d = own_daemon("ini", vhosts=[("10-a.conf", "a.test", h.UID_A, [f"FastCGI = .php {PHP_CGI}"])])
    root = d.roots["a.test"]
    for name in ("php.ini", "php-cgi-fcgi.ini"):
        d.tree.write(os.path.join(root, name), "memory_limit = 7M\n", h.UID_A)
    resp = get(d, "/ini.php", "a.test")
    h.expect_status(resp, 200, "GET /ini.php")
    kv = h.key_values(resp.body)
    h.check(kv.get("memory_limit") != "7M" and not kv.get("loaded", "").startswith(root),
            f"the tenant's php.ini in its DocumentRoot was read by the pool's php-cgi: {kv}")


# The daemon a tenant's PHP can leave behind, feeding its own pool's socket with requests so that the
# pool's php-cgi keeps using CPU. Only requests that itk's workers hand over may keep a pool, and what its
# requests started, alive.
POKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nspawn", "tenant", "poke-fastcgi.py")


def tenant_connections_do_not_keep_pool_alive(shared):
    h.cleanup_uid_at_exit(UID_POKE)
    d = own_daemon("poke", f"FastCGIIdleTimeout = {IDLE_TIMEOUT}",
                   vhosts=[("10-p.conf", "poke.test", UID_POKE, [f"FastCGI = .php {PHP_CGI}"])])
    root = d.roots["poke.test"]
    try:
        d.tree.write(os.path.join(root, "poke.py"), open(POKE).read(), UID_POKE)
        d.tree.write(os.path.join(root, "burn.php"), "<?php for ($i = 0; $i < 300000; $i++) {}\n", UID_POKE)
        d.tree.write(os.path.join(root, "spawn.php"),
                     "<?php exec('cd ' . __DIR__ . ' && python3 poke.py burn.php 2>poke.err');\necho 'pid=', getmypid(), \"\\n\";\n",
                     UID_POKE)
        resp = get(d, "/spawn.php", "poke.test")
        h.expect_status(resp, 200, "GET /spawn.php")
        pidfile = os.path.join(root, "poke.pid")
        h.check(h.wait_until(lambda: os.path.exists(pidfile), 5), "setup: the tenant's daemon did not start: " + (open(os.path.join(root, "poke.err")).read() if os.path.exists(os.path.join(root, "poke.err")) else "no poke.err"))
        last = time.monotonic()
        app = int(h.key_values(resp.body)["pid"])
        bound = IDLE_TIMEOUT + 3
        # The process that served the request must go; the tenant's daemon may make the master start
        # another one later, which gets its own FastCGIIdleTimeout.
        stopped = h.wait_until(lambda: not h.pid_alive(app), bound + 2)
        took = time.monotonic() - last
        h.check(stopped and took <= bound,
                f"FastCGIIdleTimeout = {IDLE_TIMEOUT}: a daemon of the tenant sending requests to its own pool "
                f"socket kept the pool running ({'stopped after ' + format(took, '.1f') + 's' if stopped else 'still running'})"
                f"\n{describe_children(d)}")
    finally:
        d.stop()
        h.kill_uid(UID_POKE)


SCENARIOS = [requires_php(f) for f in [
    php_runs_in_warm_process_as_vhost_user,
    app_process_credentials_and_fds,
    pool_socket_permissions,
    killed_app_replaced_on_demand,
    tenant_php_cannot_connect_to_other_pool,
    other_uid_cannot_connect_to_pool_socket,
    tenant_php_cannot_read_other_tenants_file,
    app_environment_is_clean,
    request_params_are_cgi_meta_variables,
    absolute_form_target_names_the_host,
    post_body_content_length,
    post_body_chunked,
    status_and_header_from_php,
    large_response,
    large_head_reaches_php,
    pool_full_waits_then_503,
    cgi_timeout_is_504,
    idle_pool_stops,
    slow_start_starts_one_process,
    shut_down_socket_is_replaced,
    broken_app_is_502_static_still_served,
    reload_removing_fastcgi_stops_pool,
    stop_ends_pools,
    failing_app_with_tenant_daemon_never_blocks_master,
    tenant_php_ini_is_ignored,
    tenant_connections_do_not_keep_pool_alive,
]]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

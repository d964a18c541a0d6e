# Shared plumbing of the itkd black-box tests: temp trees with tenant docroots, itkd started under
# systemd-socket-activate with a notify socket of our own, a raw HTTP/1.1 client, /proc inspection, TAP.

import atexit
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ITKD = os.environ.get("ITKD", "")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"

# Tenants are numeric ids without passwd entries: nothing of the host's users or /etc changes.
UID_A = 2001
UID_B = 2002
ACCEPTOR_USER = "nobody"
NOBODY_UID = 65534

# What an acceptor may keep: CAP_SETGID (6), CAP_SETUID (7), CAP_SYS_NICE (23).
ACCEPTOR_CAPS = (1 << 6) | (1 << 7) | (1 << 23)

# Every wait and socket operation is bounded, so a hung daemon fails a scenario instead of hanging CI.
IO_TIMEOUT = 5.0
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0

# Variables systemd-socket-activate must hand on: it passes only these and the LISTEN_* ones.
_PASSED_ENV = ("NOTIFY_SOCKET", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "SYSTEMD_LOG_LEVEL")

STATUS_RE = re.compile(
    r"vhosts: (?P<vhosts>\d+), acceptors: (?P<busy>\d+) busy/(?P<idle>\d+) idle, "
    r"workers: (?P<workers>\d+), served: (?P<served>\d+), refused: (?P<refused>\d+)")


class Fail(AssertionError):
    """An expectation did not hold; the message says what was expected and what came."""


class Skip(Exception):
    """The scenario cannot run here; the message is the reason."""


# ---------------------------------------------------------------------------------------------------
# Assertions

def check(cond, message):
    if not cond:
        raise Fail(message)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise Fail(f"{what}: expected {expected!r}, got {actual!r}")


def expect_status(resp, status, what):
    """`status` is one code or a tuple of acceptable codes."""
    wanted = status if isinstance(status, tuple) else (status,)
    want_text = " or ".join(str(s) for s in wanted)
    if resp is None:
        raise Fail(f"{what}: expected status {want_text}, got no response (connection closed without a byte)")
    if resp.status not in wanted:
        raise Fail(f"{what}: expected status {want_text}, got {resp.status}\n{resp.describe()}")


def expect_header(resp, name, expected, what):
    got = resp.header(name)
    if got != expected:
        raise Fail(f"{what}: expected header {name}: {expected!r}, got {got!r}\n{resp.describe()}")


def expect_body_contains(resp, needle, what):
    if isinstance(needle, str):
        needle = needle.encode()
    if needle not in resp.body:
        raise Fail(f"{what}: expected the body to contain {needle!r}\n{resp.describe()}")


def key_values(body):
    """`name=value` lines of a response body (what the test scripts print) as a dict."""
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def wait_until(predicate, timeout, interval=0.1):
    """Polls `predicate` until it returns a true value or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------
# HTTP client: raw bytes on a TCP socket, so malformed input can be sent exactly as written.

class Response:
    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as received
        self.raw_head = raw_head
        self.body = b""

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def connection_tokens(self):
        value = ",".join(self.header_all("Connection"))
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    def describe(self, body_bytes=160):
        text = self.raw_head.decode("latin-1").rstrip("\r\n").replace("\r\n", "\n")
        body = self.body[:body_bytes]
        more = f" (+{len(self.body) - body_bytes} bytes)" if len(self.body) > body_bytes else ""
        return f"response head:\n{text}\nbody: {body!r}{more}"


def build_request(method, path, host, headers=(), version="HTTP/1.1", body=b""):
    """`host` None leaves the Host header out; `headers` is a list of (name, value) or a dict."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Conn:
    """One client connection; every read is bounded by a deadline."""

    def __init__(self, port, timeout=IO_TIMEOUT, rcvbuf=None):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the advertised window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(("127.0.0.1", port))
        except OSError as e:
            self.sock.close()
            raise Fail(f"connect to 127.0.0.1:{port} failed: {e}") from None
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.send_error = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def client_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        """Sends everything; a peer that already closed is recorded, not raised: its answer may be waiting."""
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError) as e:
            self.send_error = e
            return False
        except socket.timeout:
            raise Fail(f"sending {len(data)} bytes did not finish within {self.timeout}s") from None

    def request(self, method, path, host, headers=(), version="HTTP/1.1", body=b""):
        return self.send(build_request(method, path, host, headers, version, body))

    def _recv_more(self, deadline):
        """Reads once more into buf. False at EOF (or reset); raises socket.timeout at the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def read_head(self, timeout=None):
        """Reads a response head (skipping 1xx). None if the peer closed before sending a byte."""
        deadline = self._deadline(timeout)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            while end < 0:
                try:
                    more = self._recv_more(deadline)
                except socket.timeout:
                    span = round(self.timeout if timeout is None else timeout, 1)
                    raise Fail(f"no complete response head within {span}s; "
                               f"got {bytes(self.buf[:300])!r}") from None
                if not more:
                    if not self.buf:
                        return None
                    how = "reset" if self.reset else "closed"
                    raise Fail(f"connection {how} in the middle of a response head: {bytes(self.buf[:300])!r}")
                end = self.buf.find(b"\r\n\r\n")
            raw = bytes(self.buf[:end + 4])
            del self.buf[:end + 4]
            resp = parse_head(raw)
            if 100 <= resp.status < 200:
                continue
            return resp

    def read_exact(self, n, timeout=None):
        deadline = self._deadline(timeout)
        while len(self.buf) < n:
            try:
                more = self._recv_more(deadline)
            except socket.timeout:
                raise Fail(f"body: expected {n} bytes, got {len(self.buf)} within the time limit") from None
            if not more:
                raise Fail(f"body: expected {n} bytes, connection closed after {len(self.buf)}")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until_eof(self, timeout=None):
        deadline = self._deadline(timeout)
        try:
            while self._recv_more(deadline):
                pass
        except socket.timeout:
            raise Fail(f"body without length: connection still open after the time limit "
                       f"({len(self.buf)} bytes read)") from None
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def _read_chunked(self, deadline):
        body = bytearray()
        while True:
            line = self._read_line(deadline)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._read_line(deadline) != b"":
                    pass
                return bytes(body)
            body += self.read_exact(size, deadline - time.monotonic())
            self._read_line(deadline)

    def _read_line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            try:
                if not self._recv_more(deadline):
                    raise Fail("connection closed inside a chunked body")
            except socket.timeout:
                raise Fail("chunked body not complete within the time limit") from None

    def read_response(self, method="GET", timeout=None):
        """A whole response, or None if the peer closed without sending anything."""
        deadline = self._deadline(timeout)
        resp = self.read_head(deadline - time.monotonic())
        if resp is None:
            return None
        if method == "HEAD" or resp.status in (204, 304):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            resp.body = self._read_chunked(deadline)
        elif cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise Fail(f"Content-Length is not a number: {cl!r}\n{resp.describe()}") from None
            resp.body = self.read_exact(n, deadline - time.monotonic())
        else:
            resp.body = self.read_until_eof(deadline - time.monotonic())
        return resp

    def wait_closed(self, timeout=IO_TIMEOUT):
        """Waits for EOF or reset. Returns (closed, bytes that came meanwhile, buffered ones included)."""
        deadline = time.monotonic() + timeout
        try:
            while self._recv_more(deadline):
                pass
        except socket.timeout:
            return False, bytes(self.buf)
        return True, bytes(self.buf)


def parse_head(raw):
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    m = re.match(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise Fail(f"malformed status line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Fail(f"malformed response header line {line!r}")
        headers.append((name, value.strip()))
    return Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, raw)


def fetch(port, path, host, method="GET", headers=(), version="HTTP/1.1", body=b"", timeout=IO_TIMEOUT,
          close=True):
    """One request on a new connection (with Connection: close unless close=False); returns the response."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers)
    if close:
        headers.append(("Connection", "close"))
    with Conn(port, timeout) as c:
        c.send(build_request(method, path, host, headers, version, body))
        return c.read_response(method=method, timeout=timeout)


def send_raw(port, data, timeout=IO_TIMEOUT):
    """Sends `data` on a new connection; returns (first response or None, closed afterwards, extra bytes)."""
    with Conn(port, timeout) as c:
        c.send(data)
        resp = c.read_response(timeout=timeout)
        closed, extra = c.wait_closed(timeout)
        return resp, closed, extra


def expect_answer_then_close(port, data, status, what, timeout=IO_TIMEOUT):
    resp, closed, extra = send_raw(port, data, timeout)
    expect_status(resp, status, what)
    if not closed:
        raise Fail(f"{what}: expected the connection to be closed after the {resp.status}, "
                   f"it was still open after {timeout}s\n{resp.describe()}")
    if extra:
        raise Fail(f"{what}: expected nothing after the {resp.status} response, got {extra[:200]!r}")
    return resp


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------
# Temp trees: configuration and docroots under /tmp, removed at exit even when a test fails.

_cleanup_dirs = []
_daemons = []


class Tree:
    def __init__(self, prefix="itk-test-"):
        self.dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        _cleanup_dirs.append(self.dir)
        os.chmod(self.dir, 0o755)  # tenants must traverse it to reach their docroots
        self.conf = os.path.join(self.dir, "itk.conf")
        self.conf_dir = os.path.join(self.dir, "itk.d")
        os.mkdir(self.conf_dir, 0o755)
        self.www = os.path.join(self.dir, "www")
        os.mkdir(self.www, 0o755)
        self._starts = 0

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def docroot(self, name, uid, gid=None):
        root = os.path.join(self.www, name)
        os.makedirs(root, exist_ok=True)
        os.chown(root, uid, uid if gid is None else gid)
        os.chmod(root, 0o755)
        return root

    def write(self, path, content, uid=0, gid=None, mode=0o644):
        """Writes a file (str or bytes), creating parent directories owned like the file."""
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
            os.chown(parent, uid, uid if gid is None else gid)
        data = content.encode() if isinstance(content, str) else content
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, uid, uid if gid is None else gid)
        os.chmod(path, mode)
        return path

    def symlink(self, target, path, uid):
        os.symlink(target, path)
        os.lchown(path, uid, uid)
        return path

    def write_server_conf(self, text=None, **keys):
        """[server] with the acceptor user `nobody` and two acceptors unless given; `text` is taken verbatim."""
        if text is None:
            settings = {"StartServers": 2, "User": ACCEPTOR_USER}
            settings.update(keys)
            text = "[server]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(self.conf, "w") as f:
            f.write(text)
        return self.conf

    def write_vhost(self, filename, server_name, root, uid, gid=None, aliases=(), **keys):
        lines = ["[vhost]", f"ServerName = {server_name}"]
        if aliases:
            lines.append("ServerAlias = " + " ".join(aliases))
        lines.append(f"DocumentRoot = {root}")
        lines.append(f"AssignUserID = #{uid} #{uid if gid is None else gid}")
        lines += [f"{k} = {v}" for k, v in keys.items()]
        return self.write_dropin(filename, "\n".join(lines) + "\n")

    def write_dropin(self, filename, text):
        path = os.path.join(self.conf_dir, filename)
        with open(path, "w") as f:
            f.write(text)
        return path

    def remove_dropin(self, filename):
        os.unlink(os.path.join(self.conf_dir, filename))

    def next_log(self, name):
        self._starts += 1
        return os.path.join(self.dir, f"{name}-{self._starts}.log")


def make_tenant(tree, name, uid, index_text=None, files=None):
    """A docroot owned by `uid` with index.html (and `files`: {relpath: content}); returns its path."""
    root = tree.docroot(name, uid)
    tree.write(os.path.join(root, "index.html"), index_text or f"<h1>vhost {name}</h1>\n", uid)
    for rel, content in (files or {}).items():
        tree.write(os.path.join(root, rel), content, uid)
    return root


def two_tenant_tree(server=None, a_keys=None, b_keys=None, a_files=None, b_files=None):
    """The usual fixture: a.test as uid 2001 (10-a.conf), b.test as uid 2002 (20-b.conf)."""
    tree = Tree()
    tree.write_server_conf(**(server or {}))
    root_a = make_tenant(tree, "a", UID_A, files=a_files)
    root_b = make_tenant(tree, "b", UID_B, files=b_files)
    tree.write_vhost("10-a.conf", "a.test", root_a, UID_A, **(a_keys or {}))
    tree.write_vhost("20-b.conf", "b.test", root_b, UID_B, **(b_keys or {}))
    tree.root_a, tree.root_b = root_a, root_b
    return tree


# ---------------------------------------------------------------------------------------------------
# sd_notify receiver: a datagram socket in the temp dir; read without threads, whenever a test waits.

class Notify:
    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []  # dicts KEY -> VALUE, in arrival order

    def close(self):
        self.sock.close()

    def drain(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            msg = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                key, sep, value = line.partition("=")
                if sep:
                    msg[key] = value
            self.messages.append(msg)

    def mark(self):
        """Index after every message received so far; pass it as `since` to wait for newer ones."""
        self.drain()
        return len(self.messages)

    def wait_for(self, predicate, timeout, since=0, proc=None):
        """First message at index >= since that satisfies predicate: (index, message), or (None, None)."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            self.drain()
            for i in range(checked, len(self.messages)):
                if predicate(self.messages[i]):
                    return i, self.messages[i]
            checked = len(self.messages)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (proc is not None and proc.poll() is not None and not self._pending()):
                return None, None
            select.select([self.sock], [], [], min(remaining, 0.2))

    def _pending(self):
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def statuses(self, since=0):
        self.drain()
        return [m["STATUS"] for m in self.messages[since:] if "STATUS" in m]

    def summary(self, since=0, limit=12):
        self.drain()
        shown = [";".join(f"{k}={v}" for k, v in m.items() if k != "MONOTONIC_USEC")
                 for m in self.messages[since:]]
        return shown[-limit:]


# ---------------------------------------------------------------------------------------------------
# /proc inspection

def process_table():
    """{pid: (ppid, pgrp, comm)} for every process readable now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("latin-1")
        except OSError:
            continue
        lp, rp = stat.find("("), stat.rfind(")")
        fields = stat[rp + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]), stat[lp + 1:rp])
    return table


def comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def ppid_of(pid):
    entry = process_table().get(pid)
    return entry[0] if entry else None


def nice_of(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode("latin-1")
    return int(stat[stat.rfind(")") + 2:].split()[16])


def proc_status(pid):
    """/proc/PID/status as a dict, plus 'owner_uid' of the file (root for a non-dumpable process)."""
    path = f"/proc/{pid}/status"
    try:
        owner = os.stat(path).st_uid
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    status = {"owner_uid": owner}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return status


def ids(field):
    return [int(x) for x in field.split()]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it no longer runs.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("latin-1")
        return stat[stat.rfind(")") + 2] != "Z"
    except OSError:
        return False


def pids_of_uid(uid):
    """Live processes whose real uid is `uid`."""
    found = []
    for pid in process_table():
        st = proc_status(pid)
        if st is not None and ids(st.get("Uid", "-1"))[:1] == [uid] and pid_alive(pid):
            found.append(pid)
    return found


def kill_uid(uid):
    """SIGKILL to every process of `uid`: what a hostile test tenant left running (only for the test's own
    uids, which nothing else on the machine uses)."""
    for _ in range(5):
        pids = pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


_hostile_uids = set()


def cleanup_uid_at_exit(uid):
    """Kills whatever `uid` left running when the script ends (daemons a test's hostile tenant started)."""
    _hostile_uids.add(uid)


def group_members(pgid):
    return [pid for pid, (_, pgrp, _) in process_table().items() if pgrp == pgid and pid_alive(pid)]


def server_socket_inode(server_port, client_port):
    """Inode of the server side of the loopback connection client_port -> server_port."""
    try:
        with open("/proc/net/tcp") as f:
            lines = f.readlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == server_port and remote_port == client_port and fields[9] != "0":
            return fields[9]
    return None


def pids_holding_socket(inode, pids):
    target = f"socket:[{inode}]"
    holders = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    holders.append(pid)
                    break
            except OSError:
                continue
    return holders


# ---------------------------------------------------------------------------------------------------
# itkd under systemd-socket-activate

class Daemon:
    def __init__(self, tree, fdname="http", name="itkd"):
        self.tree = tree
        self.fdname = fdname
        self.name = name
        self.proc = None
        self.port = None
        self.log_path = None
        self.notify = Notify(tree.path(f"notify-{name}.sock"))
        self.exit_code = None
        self._trigger = None
        # What systemd's RuntimeDirectory= and StateDirectory= would give it, in the tree: itkd makes its
        # per-vhost directories there (FastCGI sockets, PHP ini files, temporary directories), never
        # in the host's /run or /var/lib. Tenants walk through them to their own.
        self.runtime = tree.path(f"run-{name}")
        self.state = tree.path(f"state-{name}")
        for d in (self.runtime, self.state):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        _daemons.append(self)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self):
        cmd = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{self.port}", f"--fdname={self.fdname}"]
        for var in _PASSED_ENV:
            if var in os.environ or var == "NOTIFY_SOCKET":
                cmd += ["-E", var]
        cmd += ["-E", f"RUNTIME_DIRECTORY={self.runtime}", "-E", f"STATE_DIRECTORY={self.state}"]
        return cmd + [ITKD, "--config", self.tree.conf, "--config-dir", self.tree.conf_dir]

    def temp_dir(self, server_name):
        """The vhost's private temporary directory (TMPDIR of its scripts)."""
        return os.path.join(self.state, "tmp", server_name)

    def start(self, wait_ready=True):
        """Starts itkd; with wait_ready, fails unless READY=1 arrives within READY_TIMEOUT."""
        for _ in range(3):
            self.port = free_port()
            self.log_path = self.tree.next_log(self.name)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
            env["NOTIFY_SOCKET"] = self.notify.path
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
            self.exit_code = None
            # systemd-socket-activate execs its daemon only on the first connection attempt, as systemd
            # would; this connection triggers it and is then left to itkd.
            trigger = self._trigger_connection()
            if trigger is None and self.proc.poll() is not None and "in use" in self.log_text():
                continue  # the free port was taken in between: try another one
            break
        self._trigger = trigger
        if not wait_ready:
            return self
        try:
            self.wait_ready()
        finally:
            self.close_trigger()
        return self

    def close_trigger(self):
        """Closes the connection that made systemd-socket-activate exec itkd (start(wait_ready=False))."""
        if self._trigger is not None:
            self._trigger.close()
            self._trigger = None

    def _trigger_connection(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.proc.poll() is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", self.port))
                return s
            except OSError:
                s.close()
                time.sleep(0.05)
        return None

    def wait_ready(self, since=0):
        i, _ = self.notify.wait_for(lambda m: m.get("READY") == "1", READY_TIMEOUT, since, self.proc)
        if i is None:
            code = self.proc.poll()
            state = f"itkd exited with status {code}" if code is not None else "itkd still running"
            raise Fail(f"expected READY=1 on the notify socket within {READY_TIMEOUT}s; {state}; "
                       f"notifications: {self.notify.summary()}")
        return i

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if not self.running():
            raise Fail(f"cannot send {signal.Signals(sig).name}: itkd is not running "
                       f"(exit status {self.proc.poll() if self.proc else None})")
        os.kill(self.proc.pid, sig)

    def reload(self):
        """SIGHUP, then RELOADING=1 and READY=1 after it; returns the notify index of that READY=1."""
        mark = self.notify.mark()
        self.signal(signal.SIGHUP)
        i, _ = self.notify.wait_for(lambda m: m.get("RELOADING") == "1", READY_TIMEOUT, mark, self.proc)
        if i is None:
            raise Fail(f"SIGHUP: expected RELOADING=1 within {READY_TIMEOUT}s, got {self.notify.summary(mark)}")
        j, _ = self.notify.wait_for(lambda m: m.get("READY") == "1", READY_TIMEOUT, i, self.proc)
        if j is None:
            raise Fail(f"SIGHUP: expected READY=1 after RELOADING=1 within {READY_TIMEOUT}s, "
                       f"got {self.notify.summary(mark)}")
        return j

    def wait_exit(self, timeout):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL to the whole process group. Returns the exit status (None if killed)."""
        if self.proc is None:
            return None
        self.close_trigger()
        code = self.proc.poll()
        if code is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            code = self.wait_exit(timeout)
        self.kill_group()
        if code is None:
            self.proc.wait(5)
        self.exit_code = code
        return code

    def kill_group(self):
        """SIGKILL to itkd's process group (acceptors and workers never leave it)."""
        if self.proc is None:
            return
        # Once itkd is reaped and its group empty, the number may belong to another test's daemon.
        if self.proc.poll() is not None and not group_members(self.proc.pid):
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def log_tail(self, lines=25):
        return self.log_text().splitlines()[-lines:]

    # --- process tree ---

    def children_named(self, comm):
        table = process_table()
        return sorted(pid for pid, (ppid, _, c) in table.items()
                      if ppid == self.pid and c == comm and pid_alive(pid))

    def acceptors(self):
        return self.children_named("itk-acceptor")

    def workers(self, uid=None):
        """Live itk-worker processes in itkd's process group (optionally only those running as `uid`)."""
        table = process_table()
        found = []
        for pid, (_, pgrp, comm) in table.items():
            if pgrp != self.pid or comm != "itk-worker" or not pid_alive(pid):
                continue
            if uid is not None:
                st = proc_status(pid)
                if st is None or ids(st.get("Uid", ""))[:1] != [uid]:
                    continue
            found.append(pid)
        return sorted(found)

    def busy_workers(self, uid=None):
        """Workers holding a connection (always their fd 3); spares waiting for their next one hold none."""
        busy = []
        for pid in self.workers(uid):
            try:
                if os.readlink(f"/proc/{pid}/fd/3").startswith("socket:"):
                    busy.append(pid)
            except OSError:
                continue
        return busy

    def worker_for(self, conn, timeout=3.0):
        """Pid of the itk-worker holding the server side of `conn`, or None."""
        client_port = conn.client_port

        def find():
            inode = server_socket_inode(self.port, client_port)
            if inode is None:
                return None
            holders = [p for p in pids_holding_socket(inode, group_members(self.pid))
                       if comm_of(p) == "itk-worker"]
            return holders[0] if len(holders) == 1 else None
        return wait_until(find, timeout)

    # --- STATUS= ---

    def wait_status(self, predicate, timeout=5.0, since=0):
        """First STATUS (at index >= since) whose parsed fields satisfy predicate: the dict, or None."""
        def match(m):
            parsed = parse_status(m.get("STATUS", ""))
            return parsed is not None and predicate(parsed)
        _, msg = self.notify.wait_for(match, timeout, since)
        return parse_status(msg["STATUS"]) if msg else None


def parse_status(text):
    m = STATUS_RE.search(text or "")
    return {k: int(v) for k, v in m.groupdict().items()} if m else None


def run_itkd_direct(args, timeout=10):
    """Runs itkd without socket activation (--check, the no-listener case): (status, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_") and k != "NOTIFY_SOCKET"}
    try:
        p = subprocess.run([ITKD] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        raise Fail(f"itkd {' '.join(args)}: expected it to exit, still running after {timeout}s "
                   f"(output so far: {e.stderr!r})") from None
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------
# Credentials of a worker, as the spec states them.

def check_worker_credentials(pid, uid, nice=None):
    """Raises Fail unless `pid` runs as uid/gid `uid` with no capability, no_new_privs, non-dumpable."""
    st = proc_status(pid)
    check(st is not None, f"worker {pid}: expected it alive, /proc/{pid}/status is gone")
    problems = []
    if comm_of(pid) != "itk-worker":
        problems.append(f"comm: expected 'itk-worker', got {comm_of(pid)!r}")
    if ids(st["Uid"])[:3] != [uid] * 3:
        problems.append(f"real/effective/saved uid: expected {[uid] * 3}, got {ids(st['Uid'])[:3]}")
    if ids(st["Gid"])[:3] != [uid] * 3:
        problems.append(f"real/effective/saved gid: expected {[uid] * 3}, got {ids(st['Gid'])[:3]}")
    if ids(st.get("Groups", "")) != [uid]:
        problems.append(f"supplementary groups: expected [{uid}], got {ids(st.get('Groups', ''))}")
    for cap in ("CapEff", "CapPrm"):
        if int(st.get(cap, "-1"), 16) != 0:
            problems.append(f"{cap}: expected 0000000000000000, got {st.get(cap)}")
    if st.get("NoNewPrivs") != "1":
        problems.append(f"NoNewPrivs: expected 1, got {st.get('NoNewPrivs')}")
    if st["owner_uid"] != 0:
        problems.append(f"/proc/{pid}/status owner: expected root (non-dumpable), got uid {st['owner_uid']}")
    if nice is not None:
        got = nice_of(pid)
        if got != nice:
            problems.append(f"nice: expected {nice}, got {got}")
    if problems:
        raise Fail(f"worker {pid} credentials:\n" + "\n".join(problems))


# ---------------------------------------------------------------------------------------------------
# TAP runner

def skip_reason():
    if os.geteuid() != 0:
        return "needs root (itkd switches uids)"
    if not ITKD or not os.access(ITKD, os.X_OK):
        return "ITKD does not name an executable itkd (set ITKD=path/to/itkd)"
    if not os.access(SOCKET_ACTIVATE, os.X_OK):
        return "systemd-socket-activate not found (package systemd)"
    return None


def _cleanup():
    for d in _daemons:
        try:
            if d.running():
                os.kill(d.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        d.kill_group()
        try:
            d.notify.close()
        except OSError:
            pass
    for uid in sorted(_hostile_uids):
        kill_uid(uid)
    for path in _cleanup_dirs:
        shutil.rmtree(path, ignore_errors=True)
    _cleanup_dirs.clear()


atexit.register(_cleanup)


def _on_term(signum, frame):
    # Turn meson's timeout signal into an ordinary exit so atexit removes daemons and temp trees.
    sys.exit(128 + signum)


def _diag(text):
    for line in str(text).splitlines() or [""]:
        print(f"# {line}", flush=True)


def _failure_location(tb):
    for frame in reversed(traceback.extract_tb(tb)):
        if os.path.basename(frame.filename) != "harness.py":
            return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    return None


def scenario_name(fn):
    return fn.__name__.replace("_", " ")


def run(scenarios, fixture=None):
    """Prints TAP for `scenarios` (functions taking the fixture's value, or None without a fixture).

    `fixture` builds the shared state (usually a started Daemon); if it fails, every scenario fails with
    the reason. Returns the process exit status."""
    signal.signal(signal.SIGTERM, _on_term)
    print(f"1..{len(scenarios)}", flush=True)
    reason = skip_reason()
    if reason:
        for k, fn in enumerate(scenarios, 1):
            print(f"ok {k} - {scenario_name(fn)} # SKIP {reason}", flush=True)
        return 0

    shared, setup_error = None, None
    if fixture is not None:
        try:
            shared = fixture()
        except Exception as e:  # any setup failure is reported on every scenario
            setup_error = f"setup failed: {e if isinstance(e, Fail) else f'{type(e).__name__}: {e}'}"

    failed = 0
    # ITK_TEST_ONLY=name,name (scenario names with '_' or ' '): run just those while working on them.
    only = {n.strip().replace("_", " ") for n in os.environ.get("ITK_TEST_ONLY", "").split(",") if n.strip()}
    try:
        for k, fn in enumerate(scenarios, 1):
            name = scenario_name(fn)
            if only and name not in only:
                print(f"ok {k} - {name} # SKIP not selected by ITK_TEST_ONLY", flush=True)
                continue
            first_daemon = len(_daemons)
            if setup_error:
                print(f"not ok {k} - {name}", flush=True)
                _diag(setup_error)
                _print_logs(_daemons[:1])
                failed += 1
                continue
            try:
                fn(shared)
            except Skip as s:
                print(f"ok {k} - {name} # SKIP {s}", flush=True)
                continue
            except Exception as e:  # one failing scenario must not stop the others
                failed += 1
                print(f"not ok {k} - {name}", flush=True)
                _diag(str(e) if isinstance(e, Fail) else f"unexpected {type(e).__name__}: {e}")
                where = _failure_location(e.__traceback__)
                if where:
                    _diag(f"at {where}")
                if not isinstance(e, Fail):
                    _diag("".join(traceback.format_exception(e)[-4:]))
                involved = _daemons[first_daemon:]
                if isinstance(shared, Daemon):
                    involved = [shared] + involved
                _print_logs(involved)
                continue
            finally:
                for d in _daemons[first_daemon:]:
                    if d is not shared and d.running():
                        d.stop()
            print(f"ok {k} - {name}", flush=True)
    finally:
        if isinstance(shared, Daemon):
            code = shared.stop()
            if code != 0:
                _diag(f"note: itkd exited with status {code} on SIGTERM at the end (expected 0)")
        _cleanup()
    return 1 if failed else 0


def _print_logs(daemons):
    for d in daemons:
        if d.proc is not None and not d.running():
            _diag(f"[{d.name}] exited with status {d.proc.poll()}")
        tail = d.log_tail()
        _diag(f"[{d.name}] log tail ({len(tail)} lines of {d.log_path}):")
        for line in tail:
            _diag("  " + line)


def main(scenarios, fixture=None):
    sys.exit(run(scenarios, fixture))

#!/usr/bin/env python3
# tools/bench driver: itkd and a private Apache mpm-itk side by side on 127.0.0.1, with Apache prefork
# and nginx (no isolation) as reference rows; prints a markdown table and writes every raw figure as JSON.
#
# Run it through tools/bench, which installs the packages and builds itkd first. Everything started
# here is stopped by pid (normal end, failure, Ctrl-C, SIGTERM) and the temporary tree is removed.
import argparse
import ctypes
import datetime
import fnmatch
import json
import gzip
import math
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROG = "tools/bench"

# The order gives the ports (--port-base + index). The two mod_php servers are the same Apache builds with
# PHP in the server process instead of php-cgi per request: the classic shared-hosting baseline.
SERVERS = ["itk", "apache-itk", "apache-prefork", "nginx", "apache-itk-modphp", "apache-prefork-modphp"]
LABELS = {
    "itk": "itk",
    "apache-itk": "Apache mpm-itk",
    "apache-prefork": "Apache prefork, no isolation",
    "nginx": "nginx, no isolation",
    "apache-itk-modphp": "Apache mpm-itk + mod_php",
    "apache-prefork-modphp": "Apache prefork + mod_php, no isolation",
}
# Static files, CGI, TLS: the two mod_php servers would only repeat mpm-itk's and prefork's rows there.
STATIC_SERVERS = ["itk", "apache-itk", "apache-prefork", "nginx"]
ISOLATED = {"itk": True, "apache-itk": True, "apache-prefork": False, "nginx": False,
            "apache-itk-modphp": True, "apache-prefork-modphp": False}

# In the PHP CGI cases the Apache rows without mod_php run php-cgi per request: said in their labels.
PHP_CGI_LABELS = {"apache-itk": "Apache mpm-itk + php-cgi", "apache-prefork": "Apache prefork + php-cgi, no isolation"}

# Every case: what is requested, how, and which servers take part. nginx serves no CGI here, so it is
# a reference row for static files only.
CASES = [
    {"name": "1k-keepalive", "title": "1 KiB keep-alive", "kind": "static", "path": "/1k.html",
     "servers": STATIC_SERVERS},
    {"name": "1k-close", "title": "1 KiB `Connection: close`", "kind": "static", "path": "/1k.html",
     "close": True, "servers": STATIC_SERVERS},
    {"name": "100k-keepalive", "title": "100 KiB keep-alive", "kind": "static", "path": "/100k.html",
     "servers": STATIC_SERVERS},
    # The cost of an access log: 1k-keepalive again with every server writing the Combined format to a file
    # per vhost (itk AccessLog, Apache CustomLog, nginx access_log); set against 1k-keepalive's figures.
    {"name": "1k-keepalive-log", "title": "1 KiB keep-alive, access log on", "kind": "static",
     "path": "/1k.html", "access_log": True, "servers": STATIC_SERVERS},
    {"name": "cgi", "title": "shell CGI (`id -u`), keep-alive", "kind": "cgi", "path": "/id.cgi",
     "servers": ["itk", "apache-itk", "apache-prefork"]},
    # PHP: one script everywhere. php-cgi per request on both sides (itk's Handler, Apache's mod_actions) is
    # compared like for like and with mod_php; itk's FastCGI pool is compared with mod_php, the server it
    # is meant to replace. "baselines": what the itk row's ratio is taken against, the first one headlining.
    {"name": "php", "title": "PHP CGI keep-alive", "kind": "php", "path": "/hello.php",
     "servers": ["itk", "apache-itk", "apache-itk-modphp", "apache-prefork"],
     "baselines": ["apache-itk", "apache-itk-modphp"], "labels": PHP_CGI_LABELS},
    {"name": "php-close", "title": "PHP CGI `Connection: close`", "kind": "php",
     "path": "/hello.php", "close": True,
     "servers": ["itk", "apache-itk", "apache-itk-modphp", "apache-prefork"],
     "baselines": ["apache-itk", "apache-itk-modphp"], "labels": PHP_CGI_LABELS},
    {"name": "php-fcgi", "title": "PHP FastCGI keep-alive", "kind": "php", "path": "/hello.php", "fastcgi": True,
     "servers": ["itk", "apache-itk-modphp", "apache-prefork-modphp"], "baselines": ["apache-itk-modphp"]},
    {"name": "php-fcgi-close", "title": "PHP FastCGI `Connection: close`", "kind": "php", "path": "/hello.php",
     "fastcgi": True, "close": True,
     "servers": ["itk", "apache-itk-modphp", "apache-prefork-modphp"], "baselines": ["apache-itk-modphp"]},
    {"name": "mix", "title": "mix: every vhost at once, 10 requests per connection", "kind": "mix",
     "path": "/1k.html", "max_keepalive": 10, "servers": STATIC_SERVERS},
    {"name": "slowloris", "title": "1 KiB keep-alive under slowloris", "kind": "slowloris",
     "path": "/1k.html", "servers": STATIC_SERVERS},
    {"name": "tls-handshake", "title": "HTTPS 1 KiB, full handshake per request", "kind": "static",
     "path": "/1k.html", "tls": True, "close": True, "servers": STATIC_SERVERS},
    {"name": "tls-keepalive", "title": "HTTPS 1 KiB keep-alive", "kind": "static", "path": "/1k.html",
     "tls": True, "servers": STATIC_SERVERS},
    # Compression of a 100 KiB JavaScript file, keep-alive: on the fly (itk gzip 6 against nginx `gzip on`
    # at the same level; itk brotli 5 alone, nginx has no brotli in Debian), and precompressed (a .gz
    # beside the file: itk's precompressed files against nginx `gzip_static on`).
    {"name": "js-gzip", "title": "100 KiB JS, gzip on the fly", "kind": "static", "path": "/100k.js",
     "accept_encoding": "gzip", "coding": "gzip", "servers": ["itk", "nginx"], "baselines": ["nginx"]},
    {"name": "js-br", "title": "100 KiB JS, brotli on the fly", "kind": "static", "path": "/100k.js",
     "accept_encoding": "br", "coding": "br", "servers": ["itk"], "baselines": []},
    {"name": "js-gzip-static", "title": "100 KiB JS, precompressed .gz", "kind": "static",
     "path": "/static/100k.js", "accept_encoding": "gzip, br", "coding": "gzip", "servers": ["itk", "nginx"],
     "baselines": ["nginx"]},
]

# The concurrency sweep (--sweep): wrk -c at each point, and the servers each case's itk row is compared
# with there (the peers its targets name); other cases compare with their baselines.
DEFAULT_SWEEP = [1, 2, 4, 8, 16, 32, 64, 128, 256]
SWEEP_PEERS = {
    "1k-close": ["apache-prefork", "apache-itk"],
    "1k-keepalive": ["nginx", "apache-itk"],
    "100k-keepalive": ["nginx", "apache-itk"],
    "tls-handshake": ["nginx", "apache-prefork"],
    "tls-keepalive": ["nginx", "apache-prefork"],
}
SHORT = {"itk": "itk", "apache-itk": "mpm-itk", "apache-prefork": "prefork", "nginx": "nginx",
         "apache-itk-modphp": "mpm-itk + mod_php", "apache-prefork-modphp": "prefork + mod_php"}
# Plot colours and point markers, one per server (told apart without colour too).
STYLE = {"itk": ("#d62728", "circle"), "apache-itk": ("#1f77b4", "square"), "apache-prefork": ("#2ca02c", "triangle"),
         "nginx": ("#9467bd", "diamond"), "apache-itk-modphp": ("#ff7f0e", "square"),
         "apache-prefork-modphp": ("#8c564b", "triangle")}

APACHE_MODULES = "/usr/lib/apache2/modules"
PHP_CGI = "/usr/bin/php-cgi"


class Interrupted(Exception):
    pass


class BenchError(Exception):
    pass


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: everything started is recorded here and stopped by pid.

def proc_starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    return int(fields[19]), fields[0], int(fields[1])  # starttime, state, ppid


def process_table():
    """pid -> (ppid, starttime, state) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_starttime(int(name))
        if st:
            table[int(name)] = (st[2], st[0], st[1])
    return table


def descendants(root, table=None):
    """The process `root` and every process below it, as (pid, starttime) pairs."""
    table = table or process_table()
    if root not in table:
        return []
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append((pid, table[pid][1]))
        todo.extend(children.get(pid, []))
    return out


def alive(pid, starttime=None):
    st = proc_starttime(pid)
    if not st or st[1] == "Z":
        return False
    return starttime is None or st[0] == starttime


def reap_strays():
    """Waits for exited processes that were re-parented to this subreaper (a daemon's children)."""
    me = os.getpid()
    for pid, (ppid, _, state) in process_table().items():
        if ppid == me and state == "Z" and pid not in Registry.popen_pids():
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_tree(root, sig_first=signal.SIGTERM, grace=6.0, snapshot=None):
    """Sends sig_first to root, waits up to `grace` s, then SIGKILLs root and each process of the
    tree as it was before the signal (checked by start time, so a reused pid is never hit)."""
    tree = snapshot if snapshot is not None else descendants(root)
    if not tree:
        return
    try:
        os.kill(root, sig_first)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap_strays()
        if not any(alive(p, s) for p, s in tree):
            return
        time.sleep(0.05)
    for pid, start in tree:
        if alive(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.1)
    reap_strays()


class Registry:
    popens = []   # subprocess.Popen of everything started directly

    @classmethod
    def popen(cls, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        cls.popens.append(p)
        return p

    @classmethod
    def popen_pids(cls):
        return {p.pid for p in cls.popens}

    @classmethod
    def stop(cls, p, sig=signal.SIGTERM, grace=5.0):
        if p.poll() is None:
            kill_tree(p.pid, sig, grace)
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p in cls.popens:
            cls.popens.remove(p)


def set_child_subreaper():
    # Apache daemonizes: as a subreaper this process stays its parent, so it can be waited for.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
            log(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}; "
                "a daemonized server will be stopped by pid all the same")
    except OSError as e:
        log(f"cannot load libc for prctl: {e}")


def cpu_busy(seconds):
    """Share of all CPUs busy during `seconds` (from /proc/stat). Taken while the servers idle, it is
    the other work on the machine, which the load average cannot tell from the bench's own runs."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), v[3] + v[4]  # user..steal; idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def rss_of(root):
    """Summed VmRSS and Pss (KiB) and the number of processes in a server's process tree."""
    rss = pss = n = 0
    for pid, _ in descendants(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except (OSError, ValueError):
            pass
    return {"rss_kib": rss, "pss_kib": pss, "processes": n}


# ---------------------------------------------------------------------------------------------
# HTTP probe: checks what a server answers before it is measured (never a number from a broken case).

def http_get(port, host, path, tls=False, timeout=5.0, extra=""):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(raw, server_hostname=host)
        else:
            sock = raw
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        raw.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0] if lines else "")
    if not m:
        raise BenchError(f"no HTTP status line in the answer to GET {path} (Host {host}): {data[:80]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return int(m.group(1)), headers, body


# ---------------------------------------------------------------------------------------------
# The test tree: document roots, files, certificate.

class Tree:
    def __init__(self, args):
        self.dir = tempfile.mkdtemp(prefix="itk-bench.")
        os.chmod(self.dir, 0o755)  # the tenants' uids and the acceptors' nobody traverse it
        self.vhosts = []
        for i in range(1, args.vhosts + 1):
            uid = args.uid_base + i
            self.vhosts.append({"name": f"v{i}.test", "uid": uid, "gid": uid,
                                "root": os.path.join(self.dir, "www", f"v{i}")})
        self.files = {"/1k.html": 1024, "/100k.html": 102400, "/100k.js": 102400, "/static/100k.js": 102400}

    def build(self):
        www = os.path.join(self.dir, "www")
        os.mkdir(www, 0o755)
        for vh in self.vhosts:
            root = vh["root"]
            os.mkdir(root, 0o755)
            for path, size in self.files.items():
                if path.endswith(".js"):
                    body = js_text(size)
                else:
                    line = f"<!-- {vh['name']} {path} -->\n".encode()
                    body = (line * (size // len(line) + 1))[:size - 1] + b"\n"
                os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
                self._write(root + path, body, 0o644, vh)
            # What `gzip -9k` leaves beside a file for gzip_static; written after the file, so not older.
            self._write(root + "/static/100k.js.gz", gzip.compress(js_text(self.files["/static/100k.js"]), 9),
                        0o644, vh)
            self._write(root + "/index.html", f"<p>{vh['name']}\n".encode(), 0o644, vh)
            # The CGI runs a second program, as a real script would; `id -u` also shows the uid it ran as.
            # Head and body leave in one write: written apart, Apache stalls ~40 ms per keep-alive request
            # under wrk (see docs/performance.md), which would measure TCP timers instead of the servers.
            self._write(root + "/id.cgi", b'#!/bin/sh\nu=$(id -u)\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$u"\n',
                        0o755, vh)
            # Every PHP case runs this one line: the uid proves the isolation, the pid tells a warm
            # interpreter (the same pid again) from one started per request.
            self._write(root + "/hello.php", b'<?php echo "hello ", posix_getuid(), " ", getmypid(), "\\n";\n',
                        0o644, vh)
            for dirpath, dirnames, filenames in os.walk(root):
                for n in dirnames + filenames + ["."]:
                    os.chown(os.path.join(dirpath, n), vh["uid"], vh["gid"])
        tls = os.path.join(self.dir, "tls")
        os.mkdir(tls, 0o700)
        self.cert, self.key = os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem")
        san = ",".join(f"DNS:{vh['name']}" for vh in self.vhosts) + ",IP:127.0.0.1"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=v1.test", "-addext",
             f"subjectAltName={san}"], what="creating the test certificate with openssl")

    @staticmethod
    def _write(path, data, mode, vh):
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def js_text(size):
    """JavaScript to compress: jQuery from Debian's libjs-jquery when installed, else generated source."""
    try:
        with open("/usr/share/javascript/jquery/jquery.js", "rb") as f:
            text = f.read()
    except OSError:
        text = b"".join(b"function f%d(a, b) { return a * %d + b; } // %d\n" % (i, i % 31, i * 7919 % 10007)
                        for i in range(size // 40 + 1))
    text = (text * (size // len(text) + 1))[:size]
    return text


def run(argv, what, check=True, timeout=60, **kw):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, **kw)
    except FileNotFoundError:
        raise BenchError(f"{what}: {argv[0]} not found (tools/bench installs it; was --no-install given?)")
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: `{' '.join(argv)}` did not finish within {timeout} s")
    if check and p.returncode != 0:
        raise BenchError(f"{what}: `{' '.join(argv)}` exited {p.returncode}:\n{p.stdout.strip()}")
    return p


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_listening(port, what, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before listening on 127.0.0.1:{port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} is not listening on 127.0.0.1:{port} after {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------
# Servers. Each is started fresh for every case (so its idle size is measured from a clean start and
# a case's settings, such as MaxKeepAliveRequests=10 for the mix, apply) and stopped at its end.

class Server:
    key = ""

    def __init__(self, args, tree, port):
        self.args, self.tree, self.port = args, tree, port
        self.pid = None
        self.dir = os.path.join(tree.dir, self.key)
        self.log_file = os.path.join(self.dir, "server.log")

    def unsupported(self, case):
        """None when this server can run `case`; else the reason, shown in the table."""
        return None

    def prepare_dir(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.mkdir(self.dir, 0o755)

    def start(self, case):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def log_tail(self, n=15):
        try:
            with open(self.log_file, errors="replace") as f:
                return "".join(f.readlines()[-n:]).strip()
        except OSError:
            return "(no log)"


class Itk(Server):
    key = "itk"

    def __init__(self, args, tree, port):
        super().__init__(args, tree, port)
        self.proc = None
        self.notify = None
        self.status = ""
        self.check_output = {}

    def write_config(self, case, conf_dir):
        os.makedirs(os.path.join(conf_dir, "itk.d"), exist_ok=True)
        conf = os.path.join(conf_dir, "itk.conf")
        with open(conf, "w") as f:
            # nobody as the acceptor user: nothing to create on the host. A short graceful stop keeps
            # the bench's own stop quick; every other key keeps itk's default.
            f.write("[server]\nUser = #65534\n"
                    f"StartServers = {self.args.processes}\n"
                    f"MaxKeepAliveRequests = {case.get('max_keepalive', 100)}\n"
                    "GracefulShutdownTimeout = 2\n")
            if case.get("access_log"):
                f.write(f"AccessLog = {conf_dir}/logs/%v/access.log\n")
        for vh in self.tree.vhosts:
            with open(os.path.join(conf_dir, "itk.d", f"{vh['name']}.conf"), "w") as f:
                f.write(f"[vhost]\nServerName = {vh['name']}\nDocumentRoot = {vh['root']}\n"
                        f"AssignUserID = #{vh['uid']} #{vh['gid']}\n")
                if case["kind"] == "cgi":
                    f.write("CGI = .cgi\n")
                if case["kind"] == "php" and case.get("fastcgi"):
                    # A short idle timeout so that the bench can watch the pool go back to zero processes.
                    f.write(f"FastCGI = .php {PHP_CGI}\nFastCGIMaxProcesses = {self.args.fastcgi_processes}\n"
                            f"FastCGIIdleTimeout = {self.args.fastcgi_idle_timeout}\n")
                    if self.args.fastcgi_max_requests is not None:
                        f.write(f"FastCGIMaxRequests = {self.args.fastcgi_max_requests}\n")
                elif case["kind"] == "php":
                    f.write(f"Handler = .php {PHP_CGI}\n")
                if case.get("tls"):
                    f.write(f"TLSCertificateFile = {self.tree.cert}\nTLSCertificateKeyFile = {self.tree.key}\n")
        return conf, os.path.join(conf_dir, "itk.d")

    def unsupported(self, case):
        # Asked of the itkd under test itself: a key it does not know means the feature is not there.
        feature = {"cgi": "CGI", "php": "PHP through Handler"}.get(case["kind"])
        if case.get("fastcgi"):
            feature = "PHP through FastCGI"
        if case.get("tls"):
            feature = "TLS"
        if not feature:
            return None
        probe_dir = os.path.join(self.tree.dir, "itk-check", case["name"])
        conf, dropins = self.write_config(case, probe_dir)
        p = run([self.args.itkd, "--config", conf, "--config-dir", dropins, "--check"],
                what="itkd --check", check=False)
        self.check_output[case["name"]] = p.stdout.strip()
        if p.returncode == 0:
            return None
        lowered = p.stdout.lower()
        for line in p.stdout.splitlines():
            if "unknown key" in line.lower() or "not supported" in line.lower():
                log(f"  itk, {case['name']}: `itkd --check` says: {line.strip()}")
                return f"not supported by this itkd ({feature})"
        if "unknown key" in lowered or "not supported" in lowered:
            log(f"  itk, {case['name']}: `itkd --check` says: {p.stdout.strip()}")
            return f"not supported by this itkd ({feature})"
        raise BenchError(f"itkd --check refused the bench's configuration for case {case['name']}:\n{p.stdout}")

    def start(self, case):
        self.prepare_dir()
        conf, dropins = self.write_config(case, self.dir)
        run([self.args.itkd, "--config", conf, "--config-dir", dropins, "--check"], what="itkd --check")
        # A datagram socket of our own as NOTIFY_SOCKET: READY=1 says the acceptors run, STATUS is kept.
        notify_path = os.path.join(self.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        self.notify.setblocking(False)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        # The FastCGI pools' sockets go under RUNTIME_DIRECTORY (/run/itk by default, a system itkd's):
        # the bench's own directory keeps them apart. systemd-socket-activate passes on only what -E names.
        runtime_dir = os.path.join(self.dir, "run")
        os.mkdir(runtime_dir, 0o755)
        fdname = "https" if case.get("tls") else "http"
        with open(self.log_file, "w") as logf:
            self.proc = Registry.popen(
                ["systemd-socket-activate", "-l", f"127.0.0.1:{self.port}", f"--fdname={fdname}", "-E", "NOTIFY_SOCKET",
                 "-E", f"RUNTIME_DIRECTORY={runtime_dir}", self.args.itkd, "--config", conf, "--config-dir", dropins],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.proc.pid  # systemd-socket-activate execs itkd: this becomes the master's pid
        # socket-activate starts itkd on the first connection: this one.
        wait_listening(self.port, "systemd-socket-activate for itkd", proc=self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"itkd exited with status {self.proc.returncode}; its log:\n{self.log_tail()}")
            if "READY=1" in self.drain_notify():
                return
            time.sleep(0.05)
        raise BenchError(f"itkd sent no READY=1 within 10 s; its log:\n{self.log_tail()}")

    def drain_notify(self):
        got = ""
        while self.notify is not None:
            try:
                msg = self.notify.recv(4096).decode(errors="replace")
            except BlockingIOError:
                break
            got += msg + "\n"
            for line in msg.splitlines():
                if line.startswith("STATUS="):
                    self.status = line[len("STATUS="):]
        return got

    def stop(self):
        if self.proc is not None:
            self.drain_notify()
            Registry.stop(self.proc, signal.SIGTERM, grace=6.0)
            self.proc = None
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        self.pid = None


def mod_php_path():
    """Debian's libapache2-mod-php8.x module, or None when it is not installed."""
    try:
        names = sorted(n for n in os.listdir(APACHE_MODULES) if re.fullmatch(r"libphp[\d.]*\.so", n))
    except OSError:
        return None
    return os.path.join(APACHE_MODULES, names[-1]) if names else None


class Apache(Server):
    def __init__(self, args, tree, port, itk, mod_php=False):
        self.key = ("apache-itk" if itk else "apache-prefork") + ("-modphp" if mod_php else "")
        super().__init__(args, tree, port)
        self.itk = itk
        self.mod_php = mod_php
        self.pidfile = os.path.join(self.dir, "apache2.pid")

    def unsupported(self, case):
        if self.mod_php and not mod_php_path():
            return f"mod_php not installed (no {APACHE_MODULES}/libphp*.so: package libapache2-mod-php)"
        return None

    def config(self, case):
        d, port = self.dir, self.port
        mods = ["mpm_prefork:mod_mpm_prefork"]
        if self.itk:
            mods.append("mpm_itk:mpm_itk")
        mods += ["authz_core:mod_authz_core", "mime:mod_mime", "dir:mod_dir", "alias:mod_alias",
                 "actions:mod_actions", "cgi:mod_cgi", "reqtimeout:mod_reqtimeout"]
        if case.get("tls"):
            mods += ["socache_shmcb:mod_socache_shmcb", "ssl:mod_ssl"]
        lines = [f"LoadModule {m.split(':')[0]}_module {APACHE_MODULES}/{m.split(':')[1]}.so" for m in mods]
        if self.mod_php:
            lines.append(f"LoadModule php_module {mod_php_path()}")
        php_cgi = os.path.realpath("/usr/lib/cgi-bin/php")
        lines += [
            f'ServerRoot "{d}"', f'PidFile "{d}/apache2.pid"', f'DefaultRuntimeDir "{d}"',
            f'ErrorLog "{self.log_file}"', "LogLevel warn", "ServerName localhost",
            f"Listen 127.0.0.1:{port}",
            # The acceptors of itkd run as nobody; here it is the user of every non-AssignUserID process.
            "User #65534", "Group #65534",
            # Same number of server processes as itkd's acceptors; growth limits as Debian ships them.
            f"StartServers {self.args.processes}", f"MinSpareServers {self.args.processes}",
            f"MaxSpareServers {max(self.args.processes + 1, 10)}", "MaxRequestWorkers 150",
            "MaxConnectionsPerChild 0",
            "Timeout 60", "KeepAlive On", f"MaxKeepAliveRequests {case.get('max_keepalive', 100)}",
            "KeepAliveTimeout 5",
            # Debian's reqtimeout.conf, the stock slowloris bound.
            "RequestReadTimeout header=20-40,MinRate=500 body=20,MinRate=500",
            "HostnameLookups Off", "TypesConfig /etc/mime.types", "DirectoryIndex index.html",
            "<Directory />", "  AllowOverride None", "  Require all denied", "</Directory>",
            f'<Directory "{self.tree.dir}/www">', "  AllowOverride None", "  Options ExecCGI",
            "  Require all granted", "</Directory>",
            "AddHandler cgi-script .cgi",
        ]
        if not self.mod_php:
            # php-cgi through mod_actions, the CGI way Debian's php-cgi package documents for Apache.
            lines += ["ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/",
                      '<Directory "/usr/lib/cgi-bin">', "  Options +ExecCGI", "  Require all granted", "</Directory>",
                      f"Action application/x-httpd-php /cgi-bin/{os.path.basename(php_cgi)}"]
        # With mod_php loaded the same handler name is PHP inside the server process (Debian's php8.2.conf).
        lines += ['<FilesMatch "\\.php$">', "  SetHandler application/x-httpd-php", "</FilesMatch>"]
        if case.get("tls"):
            lines += [f'SSLSessionCache "shmcb:{d}/ssl_scache(512000)"', "SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1",
                      "SSLRandomSeed startup builtin"]
        if case.get("access_log"):
            lines.append('LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined')
        for vh in self.tree.vhosts:
            lines += [f"<VirtualHost 127.0.0.1:{port}>", f"  ServerName {vh['name']}",
                      f'  DocumentRoot "{vh["root"]}"']
            if case.get("access_log"):
                lines.append(f'  CustomLog "{d}/access-{vh["name"]}.log" combined')
            if self.itk:
                lines.append(f"  AssignUserID #{vh['uid']} #{vh['gid']}")
            if case.get("tls"):
                lines += ["  SSLEngine on", f'  SSLCertificateFile "{self.tree.cert}"',
                          f'  SSLCertificateKeyFile "{self.tree.key}"']
            lines.append("</VirtualHost>")
        return "\n".join(lines) + "\n"

    def start(self, case):
        self.prepare_dir()
        conf = os.path.join(self.dir, "apache2.conf")
        with open(conf, "w") as f:
            f.write(self.config(case))
        run(["apache2", "-f", conf, "-t"], what=f"checking the {LABELS[self.key]} configuration")
        run(["apache2", "-f", conf, "-k", "start"], what=f"starting {LABELS[self.key]}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(self.pidfile) as f:
                    self.pid = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        if self.pid is None:
            raise BenchError(f"{LABELS[self.key]} wrote no pid file {self.pidfile} within 10 s; its log:\n"
                             f"{self.log_tail()}")
        wait_listening(self.port, LABELS[self.key])

    def stop(self):
        if self.pid is not None:
            kill_tree(self.pid, signal.SIGTERM, grace=8.0)
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            self.pid = None


class Nginx(Server):
    key = "nginx"

    def __init__(self, args, tree, port):
        super().__init__(args, tree, port)
        self.proc = None

    def config(self, case):
        tls = " ssl" if case.get("tls") else ""
        servers = ""
        for vh in self.tree.vhosts:
            servers += (f"  server {{\n    listen 127.0.0.1:{self.port}{tls};\n    server_name {vh['name']};\n"
                        f"    root {vh['root']};\n")
            if case.get("tls"):
                servers += f"    ssl_certificate {self.tree.cert};\n    ssl_certificate_key {self.tree.key};\n"
            servers += "  }\n"
        return (f"user nobody nogroup;\nworker_processes {self.args.processes};\ndaemon off;\n"
                f"pid {self.dir}/nginx.pid;\nerror_log {self.log_file} warn;\n"
                "events { worker_connections 1024; }\n"
                "http {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
                f"  {self.access_log(case)}\n  sendfile on;\n  tcp_nopush on;\n  keepalive_timeout 5;\n"
                f"  keepalive_requests {case.get('max_keepalive', 100)};\n"
                "  ssl_session_cache shared:SSL:1m;\n"
                # nginx's own default since 1.23.4; Debian 12's 1.22 leaves TLS 1.3 out, and a TLS 1.2
                # resumption (no key exchange) is not the handshake itk and Apache make.
                "  ssl_protocols TLSv1.2 TLSv1.3;\n"
                f"{self.compression(case)}"
                f"{servers}}}\n")

    def access_log(self, case):
        return f"access_log {self.dir}/access.log combined;" if case.get("access_log") else "access_log off;"

    @staticmethod
    def compression(case):
        # itk's level and types for JavaScript; nginx's own default level is 1.
        if not case.get("accept_encoding"):
            return ""
        return ("  gzip on;\n  gzip_comp_level 6;\n  gzip_types text/javascript application/javascript;\n"
                "  gzip_min_length 256;\n  gzip_vary on;\n  gzip_static on;\n")

    def start(self, case):
        self.prepare_dir()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.config(case))
        base = ["nginx", "-p", self.dir + "/", "-e", self.log_file, "-c", conf]
        run(base + ["-t", "-q"], what="checking the nginx configuration")
        self.proc = Registry.popen(base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        wait_listening(self.port, "nginx", proc=self.proc)

    def stop(self):
        if self.proc is not None:
            Registry.stop(self.proc, signal.SIGTERM, grace=6.0)
            self.proc = None
        self.pid = None


# ---------------------------------------------------------------------------------------------
# Load generation.

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {"rps": None, "requests": 0, "p50_ms": None, "p99_ms": None, "non2xx": 0,
         "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    return r


def wrk_argv(args, url, host, close, duration, threads, conns, script=None, accept_encoding=None):
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-H", f"Host: {host}"]
    if close:
        argv += ["-H", "Connection: close"]
    if accept_encoding:
        argv += ["-H", f"Accept-Encoding: {accept_encoding}"]
    if script:
        argv += ["-s", script]
    return argv + [url]


def run_wrks(argvs, duration):
    """Runs the wrk command lines at once; returns their outputs."""
    procs = [Registry.popen(a, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for a in argvs]
    outs = []
    try:
        for p in procs:
            try:
                out, _ = p.communicate(timeout=duration + 30)
            except subprocess.TimeoutExpired:
                raise BenchError(f"wrk did not finish {duration + 30:.0f} s after a {duration} s run")
            if p.returncode != 0:
                raise BenchError(f"wrk exited {p.returncode}: {out.strip()}")
            outs.append(out)
    finally:
        for p in procs:
            Registry.stop(p, signal.SIGTERM, grace=2.0)
    return outs


def combine(results):
    """One figure for wrks run at once: summed rates and errors; p50 weighted by requests, the worst p99."""
    total = sum(r["requests"] for r in results) or 1
    p50s = [(r["p50_ms"], r["requests"]) for r in results if r["p50_ms"] is not None]
    return {
        "rps": sum(r["rps"] or 0 for r in results),
        "requests": sum(r["requests"] for r in results),
        "p50_ms": sum(p * n for p, n in p50s) / total if p50s else None,
        "p99_ms": max((r["p99_ms"] for r in results if r["p99_ms"] is not None), default=None),
        "non2xx": sum(r["non2xx"] for r in results),
        "socket_errors": {k: sum(r["socket_errors"][k] for r in results)
                          for k in ("connect", "read", "write", "timeout")},
        "per_wrk": results,
    }


def measure(args, server, case, duration):
    scheme = "https" if case.get("tls") else "http"
    url_base = f"{scheme}://127.0.0.1:{server.port}"
    if case["kind"] == "mix":
        nv = len(server.tree.vhosts)
        conns = max(1, args.connections // nv)
        argvs = [wrk_argv(args, url_base + "/", vh["name"], False, duration, 1, conns,
                          os.path.join(HERE, "mix.lua")) for vh in server.tree.vhosts]
    else:
        argvs = [wrk_argv(args, url_base + case["path"], server.tree.vhosts[0]["name"], case.get("close"),
                          duration, args.threads, args.connections, accept_encoding=case.get("accept_encoding"))]
    outs = run_wrks(argvs, duration)
    res = combine([parse_wrk(o) for o in outs])
    res["raw"] = outs
    if res["rps"] is None or not res["requests"]:
        # wrk prints zero latencies when nothing was answered: no latency is the truth.
        res.update(rps=0.0, p50_ms=None, p99_ms=None)
    return res


def start_slowloris(args, server):
    vh = server.tree.vhosts[1 if len(server.tree.vhosts) > 1 else 0]
    p = Registry.popen([sys.executable, os.path.join(HERE, "slowloris.py"), "--port", str(server.port),
                        "--host-header", vh["name"], "--connections", str(args.slowloris),
                        "--interval", str(args.slowloris_interval)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait for "open N": every slow connection is established before the measurement starts.
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline and not line:
        if sel.select(timeout=0.2):
            line = p.stdout.readline()
        if p.poll() is not None:
            break
    sel.close()
    if not line.startswith("open"):
        Registry.stop(p, signal.SIGTERM)
        raise BenchError(f"the slowloris client did not get {args.slowloris} connections open within 30 s "
                         f"({line.strip() or p.stderr.read().strip() or 'no output'})")
    time.sleep(args.slowloris_settle)  # the server has accepted them and is waiting for the rest
    return p


def stop_slowloris(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        Registry.stop(p, signal.SIGKILL)
        return {}
    if p in Registry.popens:
        Registry.popens.remove(p)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def tls_version(port, host, timeout=5.0):
    """The protocol version a server negotiates with a client that offers TLS 1.2 and 1.3."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname=host) as sock:
            return sock.version()
    finally:
        raw.close()


# ---------------------------------------------------------------------------------------------
# Probes: what each case must answer before it is measured.

def probe(server, case):
    tree, tls = server.tree, bool(case.get("tls"))
    vhosts = tree.vhosts if case["kind"] == "mix" else tree.vhosts[:1]
    if tls:
        # A TLS 1.2 resumption makes no key exchange, a TLS 1.3 one does: the servers are compared at one version.
        version = tls_version(server.port, vhosts[0]["name"])
        if version != "TLSv1.3":
            return f"negotiates {version}, not TLSv1.3, with a client that offers both: the TLS cases compare TLS 1.3"
    for vh in vhosts:
        if case["kind"] in ("static", "mix", "slowloris"):
            paths = ["/1k.html", "/100k.html"] if case["kind"] == "mix" else [case["path"]]
            for path in paths:
                status, _, body = http_get(server.port, vh["name"], path, tls)
                want = tree.files[path]
                if status != 200 or len(body) != want:
                    return f"GET {path} for {vh['name']} answered {status} with {len(body)} bytes, not 200 with {want}"
                if case.get("accept_encoding"):
                    status, headers, body = http_get(server.port, vh["name"], path, tls,
                                                     extra=f"Accept-Encoding: {case['accept_encoding']}\r\n")
                    coding = headers.get("content-encoding", "")
                    if status != 200 or coding != case["coding"] or len(body) >= want:
                        return (f"GET {path} with Accept-Encoding: {case['accept_encoding']} answered {status}, "
                                f"Content-Encoding {coding!r}, {len(body)} bytes: not {case['coding']}")
        elif case["kind"] in ("cgi", "php"):
            # A warm FastCGI pool must answer again from a process it already has: with one request more
            # than FastCGIMaxProcesses, a pid repeats unless every request started its own php-cgi.
            tries = server.args.fastcgi_processes + 1 if case.get("fastcgi") and server.key == "itk" else 1
            pids = set()
            for _ in range(tries):
                status, headers, body = http_get(server.port, vh["name"], case["path"], tls)
                text = body.decode(errors="replace").strip()
                if body.startswith(b"#!") or body.startswith(b"<?php"):
                    return f"the script is sent as a file, not run (GET {case['path']} answered {status} with its source)"
                m = re.fullmatch(r"(?:hello )?(\d+)(?: (\d+))?", text)
                if status != 200 or not m:
                    return f"GET {case['path']} answered {status}: {text[:120]!r}"
                if ISOLATED[server.key] and int(m.group(1)) != vh["uid"]:
                    return f"the script ran as uid {m.group(1)}, not the vhost's {vh['uid']}"
                pids.add(m.group(2))
            if tries > 1 and len(pids) == tries:
                return (f"{tries} requests ran in {tries} different PHP processes (FastCGIMaxProcesses "
                        f"{server.args.fastcgi_processes}): a new process per request, not a warm pool")
    return None


# ---------------------------------------------------------------------------------------------
# Running a case.

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def php_processes(root):
    """The PHP interpreters in a server's process tree (php-cgi, php-cgi8.2, ...)."""
    n = 0
    for pid, _ in descendants(root):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip().startswith("php"):
                    n += 1
        except OSError:
            pass
    return n


def watch_fastcgi_idle(args, srv, last_request):
    """Counts itkd's PHP processes from the end of its run until FastCGIIdleTimeout (plus the pool's own
    timer granularity) has passed; keeps watching up to 10 s longer while some are left."""
    idle = args.fastcgi_idle_timeout
    at_end = php_processes(srv.pid)
    samples, gone_after, at_deadline = [], None, None
    deadline, give_up = last_request + idle + 2.0, last_request + idle + 12.0
    while True:
        now = time.monotonic()
        n = php_processes(srv.pid)
        samples.append((round(now - last_request, 2), n))
        if n == 0 and gone_after is None:
            gone_after = now - last_request
        elif n:
            gone_after = None
        if now >= deadline and at_deadline is None:
            at_deadline = n
        if (now >= deadline and n == 0) or now >= give_up:
            break
        time.sleep(0.1)
    srv.drain_notify()
    return {"idle_timeout_s": idle, "php_processes_at_end_of_run": at_end,
            "php_processes_after_idle_timeout": at_deadline, "measured_at_s": idle + 2.0,
            "all_gone_after_s": round(gone_after, 2) if gone_after is not None else None,
            "memory_after_idle_timeout": rss_of(srv.pid), "samples": samples}


def run_case(args, case, servers):
    log(f"case {case['name']}: {case['title']}")
    res = {"name": case["name"], "title": case["title"], "servers": {}}
    labels = dict(LABELS, **case.get("labels", {}))
    active = []
    for key in case["servers"]:
        if key not in args.only:
            continue
        srv = servers[key]
        entry = {"label": labels[key], "supported": True, "reason": None, "rounds": []}
        res["servers"][key] = entry
        reason = srv.unsupported(case)
        if reason:
            entry.update(supported=False, reason=reason, detail=getattr(srv, "check_output", {}).get(case["name"]))
            log(f"  {labels[key]}: {reason}")
            continue
        active.append(key)
    # PHP pools (itk's FastCGI, Apache's children with mod_php) start on demand: never measure a cold one.
    warmup = max(args.warmup, 1) if case["kind"] == "php" else args.warmup
    try:
        for key in list(active):
            srv, entry = servers[key], res["servers"][key]
            try:
                srv.start(case)
                why = probe(srv, case)
            except (BenchError, OSError) as e:
                why = f"{e}"
            if why:
                # A feature itkd lacks shows up here when its key is accepted but not acted on.
                feature = case["kind"] in ("cgi", "php") or case.get("tls")
                entry.update(supported=False, reason=f"not supported by this itkd ({why})" if key == "itk" and feature
                             else f"error: {why}")
                log(f"  {labels[key]}: {entry['reason']}")
                srv.stop()
                active.remove(key)
        time.sleep(args.settle)
        for key in active:
            res["servers"][key]["idle"] = rss_of(servers[key].pid)
        for rnd in range(args.rounds):
            for key in active:
                srv = servers[key]
                # Other work on the machine shows here: the figures of a busy machine are not comparable.
                busy = cpu_busy(0.3)
                load = os.getloadavg()
                slow = start_slowloris(args, srv) if case["kind"] == "slowloris" else None
                try:
                    if warmup > 0:
                        measure(args, srv, case, warmup)
                    r = measure(args, srv, case, args.duration)
                finally:
                    slow_stats = stop_slowloris(slow) if slow is not None else None
                last_request = time.monotonic()
                if slow_stats is not None:
                    r["slowloris"] = slow_stats
                r["round"] = rnd + 1
                r["loadavg_before"] = load
                r["cpu_busy_before"] = busy
                if isinstance(srv, Itk):
                    srv.drain_notify()  # a full notify socket would block the master's sd_notify
                res["servers"][key]["rounds"].append(r)
                errs = sum(r["socket_errors"].values())
                log(f"  round {rnd + 1} {labels[key]:<30} {r['rps']:>10,.0f} req/s  p99 {fmt_ms(r['p99_ms'])}"
                    f"  non-2xx {r['non2xx']}  socket errors {errs}")
                if isinstance(srv, Itk) and case.get("fastcgi") and rnd == args.rounds - 1:
                    # The pool at the end of the load, then after its idle timeout: it must give back
                    # every process. Watched right away, while the other servers wait their turn.
                    res["servers"][key]["end"] = rss_of(srv.pid)
                    fc = watch_fastcgi_idle(args, srv, last_request)
                    res["servers"][key]["fastcgi_idle"] = fc
                    log(f"  {labels[key]}: {fc['php_processes_at_end_of_run']} PHP processes at the end of the run, "
                        f"{fc['php_processes_after_idle_timeout']} {fc['measured_at_s']:g} s after it "
                        f"(FastCGIIdleTimeout {fc['idle_timeout_s']})")
                reap_strays()
        for key in active:
            srv, entry = servers[key], res["servers"][key]
            entry.setdefault("end", rss_of(srv.pid))
            if isinstance(srv, Itk):
                srv.drain_notify()
                entry["status"] = srv.status
    finally:
        for key in active:
            servers[key].stop()
    for key, entry in res["servers"].items():
        rounds = entry["rounds"]
        if rounds:
            entry["median"] = {
                "rps": median([r["rps"] for r in rounds]),
                "p50_ms": median([r["p50_ms"] for r in rounds]),
                "p99_ms": median([r["p99_ms"] for r in rounds]),
                "non2xx": sum(r["non2xx"] for r in rounds),
                "socket_errors": sum(sum(r["socket_errors"].values()) for r in rounds),
            }
    # itk against each baseline, round by round (the two are measured one after the other in each round).
    itk = res["servers"].get("itk")
    res["baselines"] = case.get("baselines", ["apache-itk"])
    res["ratios"] = {}
    for base in res["baselines"]:
        b = res["servers"].get(base)
        if itk and b and itk["rounds"] and b["rounds"]:
            # None for a round where the baseline answered nothing (under slowloris): no finite ratio.
            per = [x["rps"] / y["rps"] if y["rps"] else None for x, y in zip(itk["rounds"], b["rounds"])]
            res["ratios"][base] = {"per_round": per, "median": median(per)}
    if "apache-itk" in res["ratios"]:
        res["ratio_itk_apache_itk"] = res["ratios"]["apache-itk"]
    return res


def run_sweep(args, servers):
    """Each selected case at each concurrency of --sweep: a full run_case per point (servers started fresh,
    probed, measured for --rounds rounds), with wrk -c N -t min(--threads, N) and the case's itk row
    compared with its sweep peers."""
    out = []
    for case in CASES:
        if case["name"] not in args.cases:
            continue
        keys = [k for k in case["servers"] if k in args.only]
        peers = [k for k in SWEEP_PEERS.get(case["name"], case.get("baselines", ["apache-itk"])) if k in keys and k != "itk"]
        swept = dict(case, baselines=peers)
        entry = {"name": case["name"], "title": case["title"], "peers": peers, "points": []}
        for conns in args.sweep:
            point = argparse.Namespace(**vars(args))
            point.connections, point.threads = conns, min(args.threads, conns)
            log(f"sweep {case['name']}: wrk -t{point.threads} -c{conns}")
            entry["points"].append({"connections": conns, "threads": point.threads,
                                    "result": run_case(point, swept, servers)})
        # The plotted figures at a glance; every other figure of each point is in its "result".
        entry["rps"] = {k: [p["result"]["servers"][k].get("median", {}).get("rps") for p in entry["points"]]
                        for k in keys}
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------
# Output.

def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.1f} ms" if v < 100 else f"{v:,.0f} ms"


def fmt_mem(m):
    if not m:
        return "–"
    return f"{m['rss_kib'] / 1024:.1f} ({m['pss_kib'] / 1024:.1f}), {m['processes']}"


def ratio_cell(case):
    """itk against the case's baselines: plain for mpm-itk alone, each named where there are others."""
    cells = []
    ratios = case.get("ratios", {})
    for base, rr in ratios.items():
        per = ", ".join(f"{x:.2f}" if x is not None else "∞" for x in rr["per_round"])
        label = case["servers"][base]["label"]
        if rr["median"] is None:
            cells.append(f"∞: {label} answered nothing ({per})")
        elif list(ratios) == ["apache-itk"]:
            cells.append(f"**{rr['median']:.2f}×** ({per})")
        else:
            cells.append(f"**{rr['median']:.2f}×** of {label} ({per})")
    return "; ".join(cells)


def markdown(results):
    out = ["| case | server | req/s (median) | itk / mpm-itk: median (per round) | p50 | p99 | non-2xx | socket errors "
           "| idle: RSS (PSS) MiB, procs | end: RSS (PSS) MiB, procs |",
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for case in results["cases"]:
        for key, e in case["servers"].items():
            if not e["supported"] or not e.get("median"):
                out.append(f"| {case['title']} | {e['label']} | {e['reason'] or 'no result'} | | | | | | | |")
                continue
            m = e["median"]
            if not m["rps"]:
                m = dict(m, rps=0)
            ratio = ""
            if key == "itk":
                ratio = ratio_cell(case)
            idle, end = e.get("idle", {}), e.get("end", {})
            out.append(f"| {case['title']} | {e['label']} | {m['rps']:,.0f} | {ratio} | {fmt_ms(m['p50_ms'])} "
                       f"| {fmt_ms(m['p99_ms'])} | {m['non2xx']} | {m['socket_errors']} "
                       f"| {fmt_mem(idle)} | {fmt_mem(end)} |")
    return "\n".join(out)


def targets(results):
    """The issue's bar, checked against the medians of this run."""
    cases = {c["name"]: c for c in results["cases"]}

    def m(case, key, field="rps"):
        e = cases.get(case, {}).get("servers", {}).get(key)
        return e["median"][field] if e and e.get("median") else None

    def baseline(c):
        # The targets are against mpm-itk; the compression cases compare with nginx and stay out of them.
        b = c.get("baselines", ["apache-itk"])
        return b[0] if b and b[0].startswith("apache-itk") else None

    rows = []

    def ratio_row(what, case, other, want):
        if case not in cases:
            return  # not selected with --cases
        a, b = m(case, "itk"), m(case, other)
        # Against a baseline the median of the per-round ratios (servers measured side by side in each
        # round); against the reference rows the ratio of the medians.
        c = cases.get(case, {})
        rr = c.get("ratios", {}).get(other) or (c.get("ratio_itk_apache_itk") if other == "apache-itk" else None)
        q = rr["median"] if rr else (a / b if a is not None and b else None)
        if a is None or b is None:
            rows.append(f"| {what} | not measured | |")
        elif q is None:
            rows.append(f"| {what} | {a:,.0f} req/s against 0 | {'met' if a else 'not met'} |")
        else:
            rows.append(f"| {what} | {q:.2f}× | {'met' if q >= want else 'not met'} |")

    ratio_row("1 KiB `Connection: close`: itk ≥ 3× mpm-itk", "1k-close", "apache-itk", 3.0)
    ratio_row("1 KiB `Connection: close`: itk vs prefork without isolation (aim ~1×)", "1k-close", "apache-prefork", 1.0)
    ratio_row("1 KiB keep-alive: itk ≥ mpm-itk", "1k-keepalive", "apache-itk", 1.0)
    ratio_row("1 KiB keep-alive: itk vs nginx (aim)", "1k-keepalive", "nginx", 1.0)
    ratio_row("100 KiB keep-alive: itk ≥ mpm-itk", "100k-keepalive", "apache-itk", 1.0)
    ratio_row("100 KiB keep-alive: itk vs nginx (aim)", "100k-keepalive", "nginx", 1.0)
    ratio_row("CGI: itk ≥ mpm-itk", "cgi", "apache-itk", 1.0)
    ratio_row("mix (10 requests per connection): itk ≥ mpm-itk", "mix", "apache-itk", 1.0)
    ratio_row("under slowloris: itk ≥ mpm-itk", "slowloris", "apache-itk", 1.0)
    ratio_row("PHP keep-alive: itk FastCGI ≥ 0.5× mpm-itk + mod_php", "php-fcgi", "apache-itk-modphp", 0.5)
    ratio_row("PHP `Connection: close`: itk FastCGI ≥ 5× mpm-itk + mod_php", "php-fcgi-close", "apache-itk-modphp", 5.0)
    for name in ("php-fcgi", "php-fcgi-close"):
        fc = cases.get(name, {}).get("servers", {}).get("itk", {}).get("fastcgi_idle")
        if fc:
            n = fc["php_processes_after_idle_timeout"]
            gone = (f", none left {fc['all_gone_after_s']:.1f} s after it"
                    if fc["all_gone_after_s"] is not None else "")
            rows.append(f"| PHP processes of an idle vhost = 0 ({name}, counted {fc['measured_at_s']:g} s after the run; "
                        f"FastCGIIdleTimeout {fc['idle_timeout_s']} s) | {n} ({fc['php_processes_at_end_of_run']} at "
                        f"the end of the run{gone}) | {'met' if n == 0 else 'not met'} |")
    # p99 and memory against each case's headline baseline: mpm-itk, with mod_php for PHP through FastCGI.
    worse = []
    compared = []
    for name, c in cases.items():
        a, b = m(name, "itk", "p99_ms"), m(name, baseline(c), "p99_ms")
        if a is not None and b is not None:
            compared.append(name)
            if a > b:
                worse.append(f"{name} ({fmt_ms(a)} vs {fmt_ms(b)})")
    if compared:
        rows.append(f"| p99 no worse than mpm-itk's in every case | {len(compared) - len(worse)} of {len(compared)} cases"
                    f"{': worse in ' + ', '.join(worse) if worse else ''} | {'met' if not worse else 'not met'} |")
    for when, what in (("idle", "idle RSS of itk ≤ ⅓ of mpm-itk's, at start"),
                       ("end", "RSS of itk ≤ ⅓ of mpm-itk's, at the end of a case")):
        pairs = [(c["servers"]["itk"].get(when), c["servers"][baseline(c)].get(when)) for c in results["cases"]
                 if "itk" in c["servers"] and baseline(c) in c["servers"]]
        pairs = [(a["rss_kib"], b["rss_kib"]) for a, b in pairs if a and b]
        if pairs:
            q = median([a / b for a, b in pairs])
            rows.append(f"| {what} | {q:.2f} of it (median over cases) | {'met' if q <= 1 / 3 else 'not met'} |")
    return "| target | this run | |\n|---|---|---|\n" + "\n".join(rows)


def sweep_markdown(entry):
    """One table per swept case: a row per concurrency, req/s per server, itk against each peer."""
    keys, peers = list(entry["rps"]), entry["peers"]
    first = entry["points"][0]["result"]["servers"] if entry["points"] else {}
    head = ["clients"] + [first[k]["label"] for k in keys] + [f"itk / {SHORT[p]}" for p in peers if "itk" in keys]
    out = [f"### {entry['title']} (`{entry['name']}`)", "", "| " + " | ".join(head) + " |",
           "|" + "---:|" * len(head)]
    notes = {}
    for pt in entry["points"]:
        res = pt["result"]
        cells = [str(pt["connections"])]
        for k in keys:
            e = res["servers"][k]
            m = e.get("median")
            if not e["supported"] or not m:
                notes.setdefault(e["label"], e["reason"] or "no result")
                cells.append("–")
                continue
            errors = [f"{n:,} {what}" for n, what in ((m["non2xx"], "non-2xx"), (m["socket_errors"], "socket errors")) if n]
            cells.append(f"{m['rps'] or 0:,.0f}" + (f" ({', '.join(errors)})" if errors else ""))
        if "itk" in keys:
            for p in peers:
                rr = res["ratios"].get(p)
                cells.append("–" if not rr else "∞" if rr["median"] is None else f"{rr['median']:.2f}×")
        out.append("| " + " | ".join(cells) + " |")
    for label, why in notes.items():
        out.append(f"\n{label}: {why}.")
    return "\n".join(out)


def nice_step(span, ticks=6):
    """A round tick step (1, 2, 2.5 or 5 × 10^k) that cuts 0..span into about `ticks` intervals."""
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag)


def svg_marker(shape, x, y, colour):
    if shape == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}"/>'
    if shape == "triangle":
        return f'<polygon points="{x:.1f},{y - 5:.1f} {x + 5:.1f},{y + 4:.1f} {x - 5:.1f},{y + 4:.1f}" fill="{colour}"/>'
    if shape == "diamond":
        return f'<polygon points="{x:.1f},{y - 5.5:.1f} {x + 5.5:.1f},{y:.1f} {x:.1f},{y + 5.5:.1f} {x - 5.5:.1f},{y:.1f}" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>'


def sweep_svg(entry, results):
    """The sweep of one case as a stand-alone SVG: req/s (linear, from 0) over concurrency (log2), one line
    per server, with the machine's facts and its fork+exit+wait cost in the caption."""
    labels = {}
    for p in entry["points"]:
        for k, e in p["result"]["servers"].items():
            labels.setdefault(k, e["label"])
    title = f"{entry['title'].replace('`', '')} ({entry['name']})"
    # The legend sits right of the plot, as wide as its longest label (about 7 px a character at 12 px);
    # the title (about 10 px a character at 17 px bold) may widen the picture further.
    left, right, top, height = 80, 620, 56, 500
    width = max(right + 70 + 7 * max((len(v) for v in labels.values()), default=36), left + 10 * len(title) + 20)
    bottom = height - 110
    conns = [p["connections"] for p in entry["points"]]
    lo, hi = math.log2(min(conns)), math.log2(max(conns))

    def x_of(c):
        pad = 24  # the first and last points off the frame
        return (left + right) / 2 if hi == lo else left + pad + (math.log2(c) - lo) / (hi - lo) * (right - left - 2 * pad)

    ymax = max((v for vs in entry["rps"].values() for v in vs if v), default=0) or 1
    step = nice_step(ymax)
    ytop = math.ceil(ymax / step) * step

    def y_of(v):
        return bottom - v / ytop * (bottom - top)

    def text(x, y, s, size=12, anchor="start", extra=""):
        return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
                f"{xml_escape(s)}</text>")

    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
          f"<title>{xml_escape(title)}: requests/s by concurrency</title>",
          f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
          text(left, 30, title, 17, extra=' font-weight="bold"')]
    # Horizontal grid and the y axis's labels; vertical grid at each measured concurrency.
    i = 0
    while i * step <= ytop + step / 1e6:
        v = i * step
        y = y_of(v)
        el.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#dddddd" stroke-width="1"/>')
        el.append(text(left - 8, y + 4, f"{v:,.0f}" if step >= 1 else f"{v:g}", anchor="end"))
        i += 1
    for c in conns:
        x = x_of(c)
        el.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eeeeee" stroke-width="1"/>')
        el.append(text(x, bottom + 18, str(c), anchor="middle"))
    el.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#888888"/>')
    el.append(text((left + right) / 2, bottom + 40, "concurrent connections (wrk -c, log2 scale)", 13, "middle"))
    el.append(text(20, (top + bottom) / 2, f"requests/s (median of {results['options']['rounds']} round(s))", 13,
                   "middle", f' transform="rotate(-90 20 {(top + bottom) / 2:.1f})"'))
    # One line per server; a point without a figure (server not run, not supported) breaks the line.
    # A ring marks a point whose run had non-2xx answers or socket errors (the table counts them).
    flawed = False
    for n, (key, values) in enumerate(entry["rps"].items()):
        colour, shape = STYLE.get(key, ("#333333", "circle"))
        segment, segments = [], []
        for p, v in zip(entry["points"], values):
            if v is None:
                segments.append(segment)
                segment = []
                continue
            x, y = x_of(p["connections"]), y_of(v)
            segment.append((x, y))
            m = p["result"]["servers"][key].get("median") or {}
            if m.get("non2xx") or m.get("socket_errors"):
                flawed = True
                el.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        segments.append(segment)
        for seg in segments:
            if len(seg) > 1:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
                el.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2.2" '
                          f'stroke-linejoin="round"/>')
            el.extend(svg_marker(shape, x, y, colour) for x, y in seg)
        ly = top + 12 + n * 24
        el.append(f'<line x1="{right + 16}" y1="{ly}" x2="{right + 44}" y2="{ly}" stroke="{colour}" stroke-width="2.2"/>')
        el.append(svg_marker(shape, right + 30, ly, colour))
        el.append(text(right + 52, ly + 4, labels.get(key, key)))
    if flawed:
        ly = top + 12 + len(entry["rps"]) * 24
        el.append(f'<circle cx="{right + 30}" cy="{ly}" r="9" fill="none" stroke="#555555" stroke-width="1.5"/>')
        el.append(text(right + 52, ly + 4, "with errors (non-2xx or socket)"))
    mi, fe = results["machine"], results["machine"].get("fork_exit_wait")
    fork = (f"fork+exit+wait {fmt_fork(fe)} (median of {fe['iterations']:,})" if fe else "fork+exit+wait not measured")
    opts = results["options"]
    el.append(text(left, height - 40, f"{mi['nproc']} CPUs, {mi['cpu']}, Linux {mi['kernel']}; {fork}", 11,
                   extra=' fill="#444444"'))
    el.append(text(left, height - 22, f"itk {mi['itk_commit']}, {results['started'][:10]}; wrk -c N -t min({opts['threads']}, N), "
                   f"{opts['duration']} s per run after {opts['warmup']} s warm-up, servers started fresh "
                   "for every point", 11, extra=' fill="#444444"'))
    el.append("</svg>")
    svg = "\n".join(el) + "\n"
    ElementTree.fromstring(svg)  # well-formed, or this is a bug here
    return svg


def machine_info(args):
    def first(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1])
    pkgs = {}
    for p in ("apache2", "libapache2-mpm-itk", "libapache2-mod-php8.2", "nginx", "wrk", "php8.2-cgi", "openssl"):
        v = first(["dpkg-query", "-W", "-f=${Version}", p])
        if v and "no packages found" not in v:
            pkgs[p] = v
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release, "memory_mib": mem // 1024,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "itk_commit": first(["git", "-C", REPO, "describe", "--always", "--dirty"]),
        "itkd": args.itkd, "packages": pkgs,
    }


def fork_exit_cost(workdir, iterations=2000):
    """fork + _exit + waitpid of a small C process, timed one by one (tools/bench.d/fork_exit.c, compiled
    here): the least a server that forks per connection pays per connection on this machine. Python's own
    fork would add its interpreter's size to the figure, so it is only the fallback without a C compiler."""
    src, exe = os.path.join(HERE, "fork_exit.c"), os.path.join(workdir, "fork_exit")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        run([cc, "-O2", "-o", exe, src], what="compiling tools/bench.d/fork_exit.c")
        out = run([exe, str(iterations)], what="measuring fork+exit+wait", timeout=300).stdout.split()
        med, p10, p90, n = float(out[0]), float(out[1]), float(out[2]), int(out[3])
        method = "C (tools/bench.d/fork_exit.c)"
    else:
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            times.append((time.perf_counter() - t0) * 1e6)
        times.sort()
        n = len(times)
        med, p10, p90 = times[n // 2], times[n // 10], times[n - 1 - n // 10]
        method = "Python os.fork (no C compiler found; includes the interpreter's larger image)"
    log(f"fork+exit+wait: median {med:,.0f} µs over {n} (p10 {p10:,.0f}, p90 {p90:,.0f}), {method}")
    return {"median_us": med, "p10_us": p10, "p90_us": p90, "iterations": n, "method": method}


def fmt_fork(fe):
    return f"{fe['median_us']:,.0f} µs" if fe else "not measured"


# ---------------------------------------------------------------------------------------------

def run_micro(args):
    exe = args.microbench
    if not exe or not os.access(exe, os.X_OK):
        raise BenchError(f"no microbenchmark program at {exe}: it is built only when libbenchmark-dev is installed "
                         "(meson reconfigures on the next compile)")
    out_json = os.path.join(tempfile.gettempdir(), f"itk-microbench.{os.getpid()}.json")
    try:
        # Google Benchmark's own report goes to stderr: stdout carries only the markdown table.
        p = Registry.popen([exe, f"--benchmark_out={out_json}", "--benchmark_out_format=json"],
                           stdin=subprocess.DEVNULL, stdout=sys.stderr)
        if p.wait() != 0:
            raise BenchError(f"{exe} exited with status {p.returncode}")
        Registry.popens.remove(p)
        with open(out_json) as f:
            data = json.load(f)
    finally:
        try:
            os.unlink(out_json)
        except FileNotFoundError:
            pass
    rows = ["| benchmark | time per operation | CPU per operation |", "|---|---:|---:|"]
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            rows.append(f"| {b['name']} | error: {b.get('error_message')} | |")
        else:
            rows.append(f"| {b['name']} | {b['real_time']:,.1f} {b['time_unit']} | {b['cpu_time']:,.1f} {b['time_unit']} |")
    print("\n".join(rows))
    return data


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog=PROG, description="itkd against Apache mpm-itk on 127.0.0.1 (see docs/performance.md)",
        epilog="tools/bench itself also takes --itkd PATH (measure that itkd instead of building build-bench/) "
               "and --no-install (install no package).")
    ap.add_argument("--quick", action="store_true", help="one round of 1 s per server and case (about 3 minutes)")
    ap.add_argument("--duration", type=int, help="seconds each measured wrk run lasts (default 5, quick 1)")
    ap.add_argument("--warmup", type=int, help="seconds of unmeasured load before each run, 0 for none (default 1)")
    ap.add_argument("--rounds", type=int, help="alternating rounds per case (default 3, quick 1)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--vhosts", type=int, default=4, help="vhosts, each with its own uid (default 4)")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                    help="itkd StartServers = Apache StartServers = nginx workers (default: online CPUs)")
    ap.add_argument("--cases", default=",".join(c["name"] for c in CASES),
                    help="comma-separated cases, shell patterns allowed, e.g. 'php*' (default all: "
                         + ",".join(c["name"] for c in CASES) + ")")
    ap.add_argument("--only", default=",".join(SERVERS), help="comma-separated servers (default all: " + ",".join(SERVERS) + ")")
    ap.add_argument("--slowloris", type=int, default=200, help="slow connections in the slowloris case (default 200)")
    ap.add_argument("--slowloris-interval", type=float, default=2.0, help="seconds between their bytes (default 2)")
    ap.add_argument("--fastcgi-processes", type=int, default=8,
                    help="itkd FastCGIMaxProcesses in the PHP FastCGI cases (default 8)")
    ap.add_argument("--fastcgi-idle-timeout", type=int, default=5,
                    help="itkd FastCGIIdleTimeout in the PHP FastCGI cases, waited for after the run (default 5)")
    ap.add_argument("--fastcgi-max-requests", type=int, default=None,
                    help="itkd FastCGIMaxRequests in the PHP FastCGI cases, 0 = never recycle (default: itkd's own)")
    ap.add_argument("--port-base", type=int, default=18400,
                    help=f"first of {len(SERVERS)} ports on 127.0.0.1 (default 18400)")
    ap.add_argument("--uid-base", type=int, default=3000, help="vhost N runs as uid/gid BASE+N (default 3000)")
    ap.add_argument("--json", default=None, help="where the raw figures go (default build-bench/bench-results-DATE.json)")
    ap.add_argument("--itkd", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--microbench", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sweep", nargs="?", const=",".join(map(str, DEFAULT_SWEEP)), metavar="LIST",
                    help="run each selected case at each of these concurrencies (wrk -c, with -t at most that) and "
                         "print a table per case instead of the usual one (LIST default "
                         + ",".join(map(str, DEFAULT_SWEEP)) + ")")
    ap.add_argument("--plot-dir", metavar="DIR", help="with --sweep: write an SVG plot per case to DIR/sweep-CASE.svg")
    ap.add_argument("--micro", action="store_true", help="run the in-process Google Benchmarks only")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = args.duration or 1
        args.rounds = args.rounds or 1
    args.duration = args.duration or 5
    args.warmup = 1 if args.warmup is None else args.warmup
    args.rounds = args.rounds or 3
    args.settle = 1.0
    args.slowloris_settle = 1.0 if args.quick else 2.0
    names = [c["name"] for c in CASES]
    patterns = [c for c in args.cases.split(",") if c]
    bad = [c for c in patterns if not fnmatch.filter(names, c)]
    if bad:
        ap.error(f"unknown case(s) {', '.join(bad)}; known: {', '.join(names)}")
    args.cases = [n for n in names if any(fnmatch.fnmatchcase(n, c) for c in patterns)]
    args.only = [s for s in args.only.split(",") if s]
    bad = [s for s in args.only if s not in SERVERS]
    if bad:
        ap.error(f"unknown server(s) {', '.join(bad)}; known: {', '.join(SERVERS)}")
    for name, lo, hi in (("duration", 1, 3600), ("warmup", 0, 600), ("rounds", 1, 100), ("connections", 1, 10000), ("threads", 1, 256),
                         ("vhosts", 1, 1000), ("processes", 1, 64), ("slowloris", 1, 900),
                         ("fastcgi_processes", 1, 4096), ("fastcgi_idle_timeout", 1, 3600),
                         ("fastcgi_max_requests", 0, 100000000)):
        v = getattr(args, name)
        if v is None:
            continue
        if not lo <= v <= hi:
            ap.error(f"--{name.replace('_', '-')} must be from {lo} to {hi}, not {v}")
    if args.sweep is not None:
        try:
            points = sorted({int(c) for c in args.sweep.split(",") if c.strip()})
        except ValueError:
            ap.error(f"--sweep takes comma-separated connection counts, e.g. 1,4,16, not {args.sweep!r}")
        if not points or points[0] < 1 or points[-1] > 10000:
            ap.error("--sweep: every connection count must be from 1 to 10000")
        args.sweep = points
    if args.plot_dir and args.sweep is None:
        ap.error("--plot-dir needs --sweep")
    if args.connections < args.threads:
        ap.error("--connections must be at least --threads (wrk gives each thread at least one connection)")
    if args.uid_base < 999 or args.uid_base + args.vhosts > 59999:
        ap.error("--uid-base: the vhosts' uids must lie in itkd's default LimitUIDRange 1000..59999")
    return args


def main(argv):
    args = parse_args(argv)
    if args.micro:
        run_micro(args)
        return 0
    set_child_subreaper()
    ports = {key: args.port_base + i for i, key in enumerate(SERVERS)}
    used = {k for c in CASES if c["name"] in args.cases for k in c["servers"] if k in args.only}
    busy = [f"{p} ({k})" for k, p in ports.items() if k in used and not port_free(p)]
    if busy:
        raise BenchError(f"port(s) {', '.join(busy)} on 127.0.0.1 in use: stop what listens there or pass --port-base")
    started = datetime.datetime.now(datetime.timezone.utc)
    results = {"started": started.isoformat(timespec="seconds"), "machine": machine_info(args),
               "options": {k: v for k, v in vars(args).items() if k not in ("micro", "microbench")}, "cases": []}
    tree = Tree(args)
    servers = {}
    try:
        tree.build()
        servers = {"itk": Itk(args, tree, ports["itk"]),
                   "apache-itk": Apache(args, tree, ports["apache-itk"], itk=True),
                   "apache-prefork": Apache(args, tree, ports["apache-prefork"], itk=False),
                   "apache-itk-modphp": Apache(args, tree, ports["apache-itk-modphp"], itk=True, mod_php=True),
                   "apache-prefork-modphp": Apache(args, tree, ports["apache-prefork-modphp"], itk=False,
                                                   mod_php=True),
                   "nginx": Nginx(args, tree, ports["nginx"])}
        results["machine"]["fork_exit_wait"] = fork_exit_cost(tree.dir)
        if args.sweep:
            results["sweep"] = {"connections": args.sweep, "cases": run_sweep(args, servers)}
        else:
            for case in CASES:
                if case["name"] in args.cases:
                    results["cases"].append(run_case(args, case, servers))
    finally:
        # Cleanup is bounded (a few seconds per server); a second Ctrl-C must not cut it short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for s in servers.values():
            s.stop()
        for p in list(Registry.popens):
            Registry.stop(p, signal.SIGTERM, grace=2.0)
        reap_strays()
        tree.remove()
    results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    json_path = args.json
    if not json_path:
        # build-bench/ is ignored by git, so a run from the checkout leaves nothing to commit by mistake.
        os.makedirs(os.path.join(REPO, "build-bench"), exist_ok=True)
        json_path = os.path.join(REPO, "build-bench", f"bench-results-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
    mi = results["machine"]
    swept = [pt["result"] for c in results.get("sweep", {}).get("cases", []) for pt in c["points"]]
    print(f"\n## itk vs Apache mpm-itk{' — concurrency sweep' if args.sweep else ''} — {mi['nproc']} × {mi['cpu']}, "
          f"Linux {mi['kernel']}, itk {mi['itk_commit']}\n")
    busy = [r["cpu_busy_before"] for c in results["cases"] + swept for e in c["servers"].values() for r in e["rounds"]]
    wrk = (f"wrk -c N -t min({args.threads}, N) for N in {','.join(map(str, args.sweep))}" if args.sweep
           else f"wrk -t{args.threads} -c{args.connections}")
    fe = mi["fork_exit_wait"]
    print(f"{wrk}, {args.duration:g} s per run after {args.warmup:g} s warm-up, "
          f"{args.rounds} round(s) alternating the servers, {args.vhosts} vhosts, {args.processes} server processes; "
          f"medians of the rounds. CPU busy with other work just before the runs: median "
          f"{100 * (median(busy) or 0):.0f} %, highest {100 * max(busy, default=0):.0f} %. fork+exit+wait of a small "
          f"process on this machine: median {fmt_fork(fe)} over {fe['iterations']:,} (p10 {fe['p10_us']:,.0f}, "
          f"p90 {fe['p90_us']:,.0f} µs).")
    if args.sweep:
        for entry in results["sweep"]["cases"]:
            print()
            print(sweep_markdown(entry))
            if args.plot_dir:
                os.makedirs(args.plot_dir, exist_ok=True)
                path = os.path.join(args.plot_dir, f"sweep-{entry['name']}.svg")
                with open(path, "w") as f:
                    f.write(sweep_svg(entry, results))
                print(f"\nPlot: {path}")
        print(f"\nRaw figures: {json_path}")
        return 0
    if any(c["name"].startswith("php") for c in results["cases"]):
        print(f"PHP: at least 1 s of warm-up before every run; itk's FastCGI pools with FastCGIMaxProcesses "
              f"{args.fastcgi_processes}, FastCGIIdleTimeout {args.fastcgi_idle_timeout} s, FastCGIMaxRequests "
              + ("left at itk's default" if args.fastcgi_max_requests is None else str(args.fastcgi_max_requests))
              + f"; Apache with mod_php runs one PHP interpreter per server process "
              f"(MaxRequestWorkers 150).")
    print()
    print(markdown(results))
    print()
    print(targets(results))
    print(f"\nRaw figures: {json_path}")
    return 0


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


if __name__ == "__main__":
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    code = 1
    try:
        code = main(sys.argv[1:])
    except Interrupted as e:
        log(f"interrupted by {e}: everything started was stopped")
        code = 130
    except BenchError as e:
        log(f"{e}")
        code = 1
    sys.exit(code)

# HTTPS black-box: certificates by SNI, 421, versions, ALPN, resumption across acceptors, renegotiation,
# slow handshakes, reload, and private key bytes found only in the key process (certificates made here).

import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

READ_TIMEOUT = 3      # RequestReadTimeout of the fixture: bounds handshake and head together
KEEPALIVE = 30        # long enough for the memory scans of a worker kept alive
SLOW_COUNT = 60
OPENSSL = shutil.which("openssl")


# ---------------------------------------------------------------------------------------------------
# Certificates and a daemon with an https and an http listener

def make_cert(tree, name, kind="rsa", days=30, prefix=None):
    """Self-signed certificate for `name` (CN and SAN) and its key (0600, root); returns (cert, key) paths."""
    base = tree.path("tls", prefix or name)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    cert, key = base + ".pem", base + ".key"
    algo = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    p = subprocess.run([OPENSSL, "req", "-x509", *algo, "-nodes", "-keyout", key, "-out", cert, "-subj",
                        f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}", "-days", str(days)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise h.Fail(f"openssl req for {name} failed: {p.stderr.decode(errors='replace')}")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


def der_of(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class TlsDaemon(h.Daemon):
    """itkd with an "https" listener (self.port) and an "http" one (self.http_port)."""

    def __init__(self, tree, name="itkd-tls"):
        super().__init__(tree, fdname="https", name=name)
        self.http_port = None

    def command(self):
        cmd = super().command()
        self.http_port = h.free_port()
        i = cmd.index(f"--fdname={self.fdname}")
        cmd[i] = "--fdname=https:http"
        cmd[i:i] = ["-l", f"127.0.0.1:{self.http_port}"]
        return cmd


def tls_tree(server=None):
    """a.test (uid 2001, RSA), b.test (uid 2002, EC P-256), a [server] default certificate (RSA)."""
    tree = h.Tree(prefix="itk-tls-")
    os.chmod(tree.dir, 0o755)
    tree.certs = {n: make_cert(tree, n, kind) for n, kind in
                  (("a.test", "rsa"), ("b.test", "ec"), ("default.test", "rsa"))}
    os.chmod(tree.path("tls"), 0o700)  # as /etc/itk/tls would be: root only
    settings = {"RequestReadTimeout": READ_TIMEOUT, "KeepAliveTimeout": KEEPALIVE,
                "TLSCertificateFile": tree.certs["default.test"][0],
                "TLSCertificateKeyFile": tree.certs["default.test"][1]}
    settings.update(server or {})
    tree.write_server_conf(**settings)
    tree.root_a = h.make_tenant(tree, "a", h.UID_A)
    tree.root_b = h.make_tenant(tree, "b", h.UID_B)
    # What a script is told about the connection: a CGI on a.test, PHP through FastCGI on b.test.
    tree.write(os.path.join(tree.root_a, "scheme.cgi"), SCHEME_CGI, h.UID_A, mode=0o755)
    tree.write(os.path.join(tree.root_b, "scheme.php"), SCHEME_PHP, h.UID_B)
    scripts = {"a.test": {"CGI": ".cgi"}, "b.test": {"FastCGI": f".php {PHP_CGI}"} if os.access(PHP_CGI, os.X_OK) else {}}
    for fname, name, root, uid in (("10-a.conf", "a.test", tree.root_a, h.UID_A),
                                   ("20-b.conf", "b.test", tree.root_b, h.UID_B)):
        cert, key = tree.certs[name]
        tree.write_vhost(fname, name, root, uid, TLSCertificateFile=cert, TLSCertificateKeyFile=key, **scripts[name])
    return tree


PHP_CGI = "/usr/bin/php-cgi"
SCHEME_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
echo "https=${HTTPS-unset}"
echo "scheme=$REQUEST_SCHEME"
echo "port=$SERVER_PORT"
"""
SCHEME_PHP = """<?php
echo 'https=', $_SERVER['HTTPS'] ?? 'unset', "\\nscheme=", $_SERVER['REQUEST_SCHEME'], "\\nport=", $_SERVER['SERVER_PORT'], "\\n";
"""


def setup():
    return TlsDaemon(tls_tree()).start()


# ---------------------------------------------------------------------------------------------------
# Clients

def client_context(cafile=None, minimum=None, maximum=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile=cafile)  # the self-signed certificate is its own CA
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TlsConn(h.Conn):
    """A harness connection whose socket is TLS (handshake done in the constructor)."""

    def __init__(self, port, sni, ctx=None, session=None, timeout=h.IO_TIMEOUT):
        super().__init__(port, timeout)
        try:
            self.sock = (ctx or client_context()).wrap_socket(self.sock, server_hostname=sni, session=session)
        except (ssl.SSLError, OSError) as e:
            self.close()
            raise h.Fail(f"TLS handshake with 127.0.0.1:{port} (SNI {sni!r}) failed: {e}") from None

    @property
    def client_port(self):
        return self.sock.getsockname()[1]

    def get(self, path, host, close=False):
        headers = [("Connection", "close")] if close else []
        self.request("GET", path, host, headers)
        return self.read_response()


def https_get(d, sni, host=None, path="/", ctx=None, session=None):
    """One request on a new TLS connection; returns (response, connection info dict)."""
    with TlsConn(d.port, sni, ctx, session) as c:
        resp = c.get(path, host or sni or "a.test", close=True)
        info = {"der": c.sock.getpeercert(binary_form=True), "reused": c.sock.session_reused,
                "version": c.sock.version(), "alpn": c.sock.selected_alpn_protocol(), "session": c.sock.session}
        return resp, info


def s_client(d, *args, stdin=b"", timeout=10):
    """`openssl s_client` against the https port; returns (exit status, output text)."""
    p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{d.port}", *args], input=stdin,
                       capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def subject_cn(text):
    m = re.search(r"^subject=.*?CN\s*=\s*([^\s,/]+)", text, re.MULTILINE)
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------------
# Memory: where private key bytes are

def key_needles(key_path):
    """Byte strings of the private half only, which any process holding the key has: the RSA primes and
    private exponent or the EC scalar (big- and little-endian, as OpenSSL's BIGNUMs lay them out); for RSA
    also the DER tail and a PEM line near the end (the CRT values; an EC key ends with its public point)."""
    text = subprocess.run([OPENSSL, "pkey", "-in", key_path, "-text", "-noout"], capture_output=True,
                          text=True, check=True).stdout
    needles = {}
    for name in ("prime1", "prime2", "privateExponent", "priv"):
        m = re.search(rf"^{name}:\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.MULTILINE)
        if not m:
            continue
        value = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")
        needles[f"{name} (big-endian)"] = value[:32]
        needles[f"{name} (little-endian)"] = value[::-1][:32]
    if "prime1 (big-endian)" in needles:
        der = subprocess.run([OPENSSL, "pkey", "-in", key_path, "-outform", "DER"], capture_output=True,
                             check=True).stdout
        needles["DER"] = der[-48:]
        with open(key_path) as f:
            needles["PEM line"] = f.read().splitlines()[-3].encode()
    return needles


def scan_memory(pid, needles):
    """Names of `needles` found in the writable memory of `pid` (read as root through /proc/PID/mem)."""
    found = set()
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    scanned = 0
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            # Key bytes copied at run time live in writable memory; sanitizer shadow maps are huge and empty.
            if "r" not in fields[1] or "w" not in fields[1] or hi - lo > (1 << 30):
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, OverflowError, ValueError):
                continue
            scanned += len(data)
            for name, needle in needles.items():
                if needle in data:
                    found.add(name)
    return found, scanned


def key_processes(d):
    return [pid for pid, (ppid, _, comm) in h.process_table().items()
            if ppid == d.pid and comm == "itk-keys" and h.pid_alive(pid)]


# ---------------------------------------------------------------------------------------------------
# Scenarios

def sni_selects_each_vhosts_certificate(d):
    for name, body in (("a.test", "vhost a"), ("b.test", "vhost b")):
        cert = d.tree.certs[name][0]
        # Verified against that certificate alone, host name included: only the vhost's own passes.
        resp, info = https_get(d, name, ctx=client_context(cafile=cert))
        h.expect_status(resp, 200, f"GET https://{name}/")
        h.expect_body_contains(resp, body, f"GET https://{name}/")
        h.expect_eq(info["der"], der_of(cert), f"certificate served for SNI {name}")
        code, out = s_client(d, "-servername", name)
        h.expect_eq(subject_cn(out), name, f"openssl s_client -servername {name}: subject CN")
    resp = h.fetch(d.http_port, "/", "b.test")
    h.expect_status(resp, 200, "plain HTTP on the http listener beside the https one")


def scripts_are_told_the_request_came_over_tls(d):
    cases = [("a.test", "/scheme.cgi", "CGI")]
    if os.access(PHP_CGI, os.X_OK):
        cases.append(("b.test", "/scheme.php", "PHP over FastCGI"))
    for host, path, what in cases:
        resp, _ = https_get(d, host, path=path)
        h.expect_status(resp, 200, f"GET https://{host}{path}")
        h.expect_eq(h.key_values(resp.body), {"https": "on", "scheme": "https", "port": str(d.port)},
                    f"HTTPS, REQUEST_SCHEME and SERVER_PORT seen by the {what} over TLS")
        resp = h.fetch(d.http_port, path, host)
        h.expect_status(resp, 200, f"GET http://{host}{path}")
        h.expect_eq(h.key_values(resp.body), {"https": "unset", "scheme": "http", "port": str(d.http_port)},
                    f"HTTPS, REQUEST_SCHEME and SERVER_PORT seen by the {what} over plain HTTP")


def https_is_served_as_the_vhosts_user(d):
    for name, uid in (("a.test", h.UID_A), ("b.test", h.UID_B)):
        with TlsConn(d.port, name) as c:
            resp = c.get("/", name)
            h.expect_status(resp, 200, f"keep-alive GET https://{name}/")
            pid = d.worker_for(c)
            h.check(pid is not None, f"expected one itk-worker holding the TLS connection to {name}")
            h.check_worker_credentials(pid, uid)
            resp = c.get("/", name)
            h.expect_status(resp, 200, f"second request on the kept-alive TLS connection to {name}")


def no_or_unknown_sni_gets_the_default_certificate(d):
    default = der_of(d.tree.certs["default.test"][0])
    resp, info = https_get(d, None, host="a.test")
    h.expect_status(resp, 200, "GET / with Host a.test and no SNI")
    h.expect_eq(info["der"], default, "certificate for a client without SNI")
    resp, info = https_get(d, "unknown.test", host="unknown.test")
    h.expect_status(resp, 200, "GET / with SNI and Host unknown.test (the default vhost)")
    h.expect_eq(info["der"], default, "certificate for an SNI name no vhost has")
    code, out = s_client(d, "-noservername")
    h.expect_eq(subject_cn(out), "default.test", "openssl s_client -noservername: subject CN")


def host_sni_mismatch_is_421(d):
    resp, _ = https_get(d, "a.test", host="b.test")
    h.expect_status(resp, 421, "SNI a.test, Host b.test (first request: the acceptor answers)")
    with TlsConn(d.port, "a.test") as c:
        h.expect_status(c.get("/", "a.test"), 200, "SNI a.test, Host a.test")
        resp = c.get("/", "b.test")
        h.expect_status(resp, 421, "SNI a.test, then Host b.test on the same connection (the worker answers)")
        closed, _ = c.wait_closed()
        h.check(closed, "expected the connection to close after the 421")
    resp, _ = https_get(d, "A.TEST", host="a.test:443")
    h.expect_status(resp, 200, "SNI and Host differing only in case and port name the same vhost")


def old_protocol_versions_are_refused(d):
    for flag in ("-tls1_1", "-tls1"):
        # The client's own security level would refuse these versions before the server could.
        code, out = s_client(d, flag, "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "a.test")
        h.check(code != 0 and re.search(r"alert protocol version", out),
                f"openssl s_client {flag}: expected the handshake to fail on the protocol version, got "
                f"status {code}:\n{out[-600:]}")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        resp, info = https_get(d, "a.test", ctx=client_context(minimum=version, maximum=version))
        h.expect_status(resp, 200, f"GET over {version.name}")
        h.expect_eq(info["version"], version.name.replace("_", "."), "negotiated version")


def every_signature_kind_goes_through_the_key_process(d):
    # The key process signs PSS blocks, PKCS#1 v1.5 DigestInfos and ECDSA digests: each is one handshake.
    for sni, version, sigalgs, want in (("a.test", "-tls1_2", "RSA+SHA256", "RSA"),
                                        ("a.test", "-tls1_2", "RSA-PSS+SHA256", "RSA-PSS"),
                                        ("a.test", "-tls1_3", "RSA-PSS+SHA384", "RSA-PSS"),
                                        ("b.test", "-tls1_2", "ECDSA+SHA256", "ECDSA"),
                                        ("b.test", "-tls1_3", "ECDSA+SHA256", "ECDSA")):
        code, out = s_client(d, version, "-servername", sni, "-sigalgs", sigalgs)
        m = re.search(r"Peer signature type: (\S+)", out)
        h.check(m and m.group(1) == want and "Cipher is (NONE)" not in out,
                f"{sni} {version} -sigalgs {sigalgs}: expected a handshake signed with {want}, got:\n{out[-600:]}")


def alpn_is_http11_only(d):
    resp, info = https_get(d, "a.test", ctx=client_context(alpn=["h2", "http/1.1"]))
    h.expect_status(resp, 200, "GET after offering ALPN h2 and http/1.1")
    h.expect_eq(info["alpn"], "http/1.1", "ALPN protocol selected")
    try:
        https_get(d, "a.test", ctx=client_context(alpn=["h2"]))
    except h.Fail as e:
        h.check("NO_APPLICATION_PROTOCOL" in str(e).upper() or "application protocol" in str(e).lower(),
                f"offering only h2: expected the no_application_protocol alert, got {e}")
    else:
        raise h.Fail("offering only ALPN h2: expected the handshake to be refused")
    resp, info = https_get(d, "a.test")
    h.expect_eq(info["alpn"], None, "ALPN without an offer")


def resume(d, name, version, times, what):
    ctx = client_context(minimum=version, maximum=version)
    # TLS 1.3 tickets come after the handshake: a whole request and response makes sure they did.
    with TlsConn(d.port, name, ctx) as c:
        h.expect_status(c.get("/", name), 200, f"{what}: first connection")
        session = c.sock.session
        h.check(not c.sock.session_reused, f"{what}: the first connection cannot be resumed")
    h.check(session is not None and session.has_ticket, f"{what}: expected a session ticket from itkd")
    acceptors = set()
    for i in range(times):
        with TlsConn(d.port, name, ctx, session=session) as c:
            h.expect_status(c.get("/", name), 200, f"{what}: resumed connection {i + 1}")
            h.check(c.sock.session_reused, f"{what}: connection {i + 1} of {times} was not resumed")
            pid = d.worker_for(c)
            if pid:
                acceptors.add(h.ppid_of(pid))
            session = c.sock.session
    return session, acceptors


def sessions_resume_across_acceptors(d):
    seen = set()
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        _, acceptors = resume(d, "b.test", version, 6, f"resumption over {version.name}")
        seen |= acceptors
    # Deterministic: the worker that issued a ticket and the spawner it came from are gone; the workers of
    # the spawner that replaces it get the same keys for the vhost from the key process.
    ctx = client_context(minimum=ssl.TLSVersion.TLSv1_3)
    with TlsConn(d.port, "a.test", ctx) as c:
        h.expect_status(c.get("/", "a.test"), 200, "connection whose worker and spawner are then killed")
        session = c.sock.session
        worker = d.worker_for(c)
        h.check(worker is not None, "expected the itk-worker of the first connection")
        spawner = h.ppid_of(worker)
    h.check(h.comm_of(spawner) == "itk-spawner", f"expected the worker's parent {spawner} to be the spawner")
    acceptors = set(d.acceptors())
    os.kill(worker, signal.SIGKILL)
    os.kill(spawner, signal.SIGKILL)
    h.check(h.wait_until(lambda: len(d.acceptors()) >= 2 and not set(d.acceptors()) & acceptors, 10),
            f"expected new acceptors after the spawner was killed, have {d.acceptors()} (before: {acceptors})")
    for i in range(4):
        resp, info = https_get(d, "a.test", ctx=ctx, session=session)
        h.expect_status(resp, 200, f"resumption {i + 1} after the issuing worker and its spawner were killed")
        h.check(info["reused"], f"resumption {i + 1} after the issuing worker {worker} was killed: not resumed")
        session = info["session"]


def tls13_resumption_issues_a_new_ticket(d):
    # A TLS 1.3 client uses each ticket once (RFC 8446 C.4): a resumption must bring the next ticket, or
    # every other connection of such a client is a full handshake.
    tmp = d.tree.path("sessions")
    os.makedirs(tmp, exist_ok=True)
    req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    first, second = os.path.join(tmp, "1.pem"), os.path.join(tmp, "2.pem")
    code, out = s_client(d, "-tls1_3", "-servername", "a.test", "-sess_out", first, "-ign_eof", stdin=req)
    h.check(code == 0 and os.path.exists(first), f"first TLS 1.3 connection: exit {code}\n{out[-800:]}")
    code, out = s_client(d, "-tls1_3", "-servername", "a.test", "-sess_in", first, "-sess_out", second, "-msg",
                         "-ign_eof", stdin=req)
    h.check(code == 0 and "Reused, TLSv1.3" in out, f"second connection with the first's ticket was not resumed:\n"
                                                    f"{out[-1500:]}")
    h.check("NewSessionTicket" in out, f"the resumed connection brought no NewSessionTicket:\n{out[-1500:]}")


def no_resumption_under_another_certificate(d):
    ctx = client_context(minimum=ssl.TLSVersion.TLSv1_3)
    with TlsConn(d.port, "a.test", ctx) as c:
        h.expect_status(c.get("/", "a.test"), 200, "connection to a.test")
        session = c.sock.session
    resp, info = https_get(d, "b.test", ctx=ctx, session=session)
    h.expect_status(resp, 200, "GET https://b.test/ offering a.test's session")
    h.check(not info["reused"], "a.test's session was resumed for b.test: a ticket must not cross certificates")
    h.expect_eq(info["der"], der_of(d.tree.certs["b.test"][0]), "certificate after the refused resumption")


def renegotiation_is_refused(d):
    code, out = s_client(d, "-tls1_2", "-servername", "a.test", stdin=b"R\n", timeout=10)
    h.check("RENEGOTIATING" in out, f"expected openssl s_client to attempt a renegotiation:\n{out[-600:]}")
    h.check(re.search(r"no renegotiation", out, re.IGNORECASE),
            f"expected the server to refuse the renegotiation (no_renegotiation alert), got:\n{out[-600:]}")


def private_keys_only_in_the_key_process(d):
    keys = {name: key_needles(paths[1]) for name, paths in d.tree.certs.items()}
    with TlsConn(d.port, "a.test") as ca, TlsConn(d.port, "b.test") as cb:
        h.expect_status(ca.get("/", "a.test"), 200, "keep-alive GET https://a.test/")
        h.expect_status(cb.get("/", "b.test"), 200, "keep-alive GET https://b.test/")
        workers = [d.worker_for(ca), d.worker_for(cb)]
        h.check(all(workers), f"expected a worker for each open TLS connection, got {workers}")
        keyproc = key_processes(d)
        h.check(len(keyproc) == 1, f"expected one itk-keys child of the master, found {keyproc}")
        # The control: the scan finds every key in the process that signs with them.
        found, _ = scan_memory(keyproc[0], {f"{k}: {n}": v for k, ns in keys.items() for n, v in ns.items()})
        for name in keys:
            h.check(any(f.startswith(name + ":") for f in found),
                    f"control failed: no byte of {name}'s private key found in the key process {keyproc[0]}; "
                    f"the scan cannot be trusted")
        targets = [("master", d.pid)] + [("acceptor", p) for p in d.acceptors()] + \
                  [("worker", p) for p in workers]
        for role, pid in targets:
            found, scanned = scan_memory(pid, {f"{k}: {n}": v for k, ns in keys.items() for n, v in ns.items()})
            h.check(scanned > 0, f"{role} {pid}: no memory could be read")
            h.check(not found, f"{role} {pid} holds private key material: {sorted(found)}")


def worker_keeps_only_its_connection(d):
    with TlsConn(d.port, "a.test") as c:
        h.expect_status(c.get("/", "a.test"), 200, "keep-alive GET https://a.test/")
        pid = d.worker_for(c)
        h.check(pid is not None, "expected an itk-worker for the TLS connection")
        problems = []
        for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if int(fd) <= 2:
                continue
            # 3: the client socket; 4: the channel to its acceptor; 5: its channel to the key process.
            if int(fd) in (3, 4, 5):
                if not target.startswith("socket:"):
                    problems.append(f"fd {fd} is {target}, expected a socket")
                continue
            # Descriptors the worker opened itself after the drop: its DocumentRoots (O_PATH directories).
            if not os.path.isdir(f"/proc/{pid}/fd/{fd}"):
                problems.append(f"fd {fd} -> {target}")
        h.check(not problems, f"worker {pid} inherited descriptors besides stdio and its connection: {problems}")
        h.check_worker_credentials(pid, h.UID_A)


def key_process_is_unprivileged(d):
    keyproc = key_processes(d)
    h.check(len(keyproc) == 1, f"expected one itk-keys child of the master, found {keyproc}")
    pid = keyproc[0]
    st = h.proc_status(pid)
    problems = []
    if h.ids(st["Uid"])[:3] != [h.NOBODY_UID] * 3:
        problems.append(f"uid: expected {h.NOBODY_UID} (User), got {h.ids(st['Uid'])[:3]}")
    for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        if int(st.get(cap, "-1"), 16) != 0:
            problems.append(f"{cap}: expected none, got {st.get(cap)}")
    if st.get("NoNewPrivs") != "1":
        problems.append(f"NoNewPrivs: expected 1, got {st.get('NoNewPrivs')}")
    if st.get("Seccomp") != "2":
        problems.append(f"Seccomp: expected 2 (filter), got {st.get('Seccomp')}")
    if st["owner_uid"] != 0:
        problems.append(f"/proc/{pid} owned by uid {st['owner_uid']}: expected root (non-dumpable)")
    # Besides stdio: the registration socket and one channel per acceptor, all unix sockets; no TCP socket
    # (neither a listener nor a client connection).
    tcp = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                tcp |= {line.split()[9] for line in f.readlines()[1:]}
        except OSError:
            pass
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) <= 2:
            continue
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if not target.startswith("socket:"):
            problems.append(f"fd {fd} -> {target}: expected only sockets besides stdio")
        elif target[len("socket:["):-1] in tcp:
            problems.append(f"fd {fd} is a TCP socket")
    h.check(not problems, f"key process {pid}:\n" + "\n".join(problems))


def spawners(d):
    return [pid for pid, (ppid, _, comm) in h.process_table().items()
            if ppid == d.pid and comm == "itk-spawner" and h.pid_alive(pid)]


def acceptors_and_key_process_hold_no_privilege(d):
    accs = d.acceptors()
    h.check(accs, "expected itk-acceptor children of the master")
    keys = d.children_named("itk-keys")
    h.check(len(keys) == 1, f"expected one itk-keys child of the master, found {keys}")
    problems = []
    for role, pid in [("acceptor", p) for p in accs] + [("key process", p) for p in keys]:
        st = h.proc_status(pid)
        for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            if int(st.get(cap, "-1"), 16) != 0:
                problems.append(f"{role} {pid}: {cap} is {st.get(cap)}, expected 0")
        if st.get("NoNewPrivs") != "1" or st.get("Seccomp") != "2":
            problems.append(f"{role} {pid}: NoNewPrivs {st.get('NoNewPrivs')}, Seccomp {st.get('Seccomp')}")
        if h.ids(st["Uid"])[:3] != [h.NOBODY_UID] * 3:
            problems.append(f"{role} {pid}: uid {h.ids(st['Uid'])[:3]}")
        # Set before the privileges went (docs/architecture.md): dispatch is not starved by busy workers.
        if role == "acceptor" and h.nice_of(pid) != -10:
            problems.append(f"acceptor {pid}: nice {h.nice_of(pid)}, expected -10")
    # ...and that priority stays with the acceptors: a tenant's worker never runs with it.
    for pid, (_, _, comm) in h.process_table().items():
        if comm == "itk-worker" and h.ppid_of(h.ppid_of(pid)) == d.pid and (h.nice_of(pid) or 0) < 0:
            problems.append(f"worker {pid}: nice {h.nice_of(pid)}, below 0")
    h.check(not problems, "\n".join(problems))


def tls_connections_reuse_their_vhosts_workers(d):
    seen = {"a.test": [], "b.test": []}
    for i in range(8):
        name = ("a.test", "b.test")[i % 2]
        with TlsConn(d.port, name) as c:
            h.expect_status(c.get("/", name), 200, f"GET https://{name}/ #{i + 1}")
            pid = d.worker_for(c)
            h.check(pid is not None, f"no worker found for TLS connection {i + 1} to {name}")
            h.check_worker_credentials(pid, h.UID_A if name == "a.test" else h.UID_B)
            seen[name].append(pid)
        time.sleep(0.3)  # the worker says it is idle once the client has closed
    a, b = seen["a.test"], seen["b.test"]
    h.check(not set(a) & set(b), f"a worker served TLS connections of both vhosts: a {a}, b {b}")
    h.check(len(set(a)) < len(a) and len(set(b)) < len(b),
            f"expected TLS connections to be served again by the vhost's idle workers: a {a}, b {b}")


def fresh_worker_holds_no_other_clients_bytes(_):
    d = TlsDaemon(tls_tree(), name="itkd-tls-clean").start()
    try:
        marker_plain = b"Bearer plain-" + os.urandom(12).hex().encode()
        marker_tls = b"tls-cookie-" + os.urandom(12).hex().encode()
        needles = {"plain": marker_plain, "tls": marker_tls}
        # Unfinished heads of b.test's clients: plain (held by an acceptor), TLS (held by b.test's worker).
        plain = socket.create_connection(("127.0.0.1", d.http_port), timeout=h.IO_TIMEOUT)
        plain.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\nAuthorization: " + marker_plain + b"\r\n")
        with TlsConn(d.port, "b.test") as tb:
            tb.sock.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\nCookie: " + marker_tls + b"\r\n")
            time.sleep(0.5)
            held = set()
            for pid in d.acceptors():
                held |= scan_memory(pid, needles)[0]
            b_worker = d.worker_for(tb)
            if b_worker:
                held |= scan_memory(b_worker, needles)[0]
            # The controls: each marker is found where its client's bytes are, so the scan works.
            h.check(held == {"plain", "tls"}, f"control failed: markers found only as {sorted(held)}")
            # Now the first connection to a.test: its worker is forked after those bytes arrived.
            with TlsConn(d.port, "a.test") as ta:
                h.expect_status(ta.get("/", "a.test"), 200, "GET https://a.test/")
                a_worker = d.worker_for(ta)
                h.check(a_worker is not None, "no worker found for a.test")
                targets = [("a.test worker", a_worker)] + [("spawner", p) for p in spawners(d)]
                h.check(len(targets) > 1, "expected an itk-spawner child of the master")
                for role, pid in targets:
                    found, scanned = scan_memory(pid, needles)
                    h.check(scanned > 0, f"{role} {pid}: no memory could be read")
                    h.check(not found, f"{role} {pid} holds another client's request bytes: {sorted(found)}")
        plain.close()
    finally:
        d.stop()


def tenant_cannot_reach_keys_or_worker_memory(d):
    with TlsConn(d.port, "a.test") as c:
        h.expect_status(c.get("/", "a.test"), 200, "keep-alive GET https://a.test/")
        worker = d.worker_for(c)
        keyproc = key_processes(d)[0]
        probe = ("import sys\nfor p in sys.argv[1:]:\n"
                 "    try:\n        open(p, 'rb').read(16); print('READ', p)\n"
                 "    except OSError as e:\n        print('DENIED', p, e.errno)\n")
        paths = [d.tree.certs["a.test"][1], d.tree.certs["b.test"][1], f"/proc/{worker}/mem",
                 f"/proc/{worker}/environ", f"/proc/{keyproc}/mem", f"/proc/{keyproc}/environ"]
        p = subprocess.run(["setpriv", f"--reuid={h.UID_A}", f"--regid={h.UID_A}", "--clear-groups",
                            sys.executable, "-c", probe, *paths], capture_output=True, text=True, timeout=20)
        h.check(p.returncode == 0, f"probe as uid {h.UID_A} failed to run: {p.stderr}")
        read = [line for line in p.stdout.splitlines() if line.startswith("READ")]
        h.check(not read, f"uid {h.UID_A} (the worker's tenant) could read: {read}")
        h.check(len(p.stdout.splitlines()) == len(paths), f"probe output incomplete: {p.stdout!r}")


def slow_handshakes_do_not_pin_acceptors(d):
    slow = []
    try:
        for i in range(SLOW_COUNT):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=h.IO_TIMEOUT)
            if i % 2:
                s.sendall(bytes.fromhex("160301020001") + b"\x00\x01\xfc\x03\x03")  # half a ClientHello
            slow.append(s)
        started = time.monotonic()
        for i in range(10):
            name = ("a.test", "b.test")[i % 2]
            resp, _ = https_get(d, name)
            h.expect_status(resp, 200, f"request {i + 1} with {len(slow)} stalled handshakes open")
        h.check(time.monotonic() - started < READ_TIMEOUT,
                f"10 requests took {time.monotonic() - started:.1f}s while slow handshakes were open")
        deadline = started + READ_TIMEOUT + 3
        for i, s in enumerate(slow):
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = s.recv(100)
            except socket.timeout:
                raise h.Fail(f"stalled handshake {i + 1} still open {READ_TIMEOUT + 3}s after it began "
                             f"(RequestReadTimeout = {READ_TIMEOUT})") from None
            except ConnectionResetError:
                data = b""
            h.check(data == b"", f"stalled handshake {i + 1}: expected the connection closed, got {data[:40]!r}")
    finally:
        for s in slow:
            s.close()


def reload_serves_a_renewed_certificate(_):
    tree = tls_tree()
    d = TlsDaemon(tree, name="itkd-tls-reload").start()
    old = der_of(tree.certs["a.test"][0])
    ctx = client_context(minimum=ssl.TLSVersion.TLSv1_3)
    with TlsConn(d.port, "b.test", ctx) as c:
        h.expect_status(c.get("/", "b.test"), 200, "b.test before the reload")
        b_session = c.sock.session
    with TlsConn(d.port, "a.test") as kept:
        h.expect_status(kept.get("/", "a.test"), 200, "connection opened before the reload")
        # Renewal as certbot does it: new key, new certificate, same paths.
        make_cert(tree, "a.test", prefix="a.test")
        new = der_of(tree.certs["a.test"][0])
        h.check(new != old, "the renewed certificate should differ from the old one")
        acceptors_before = set(d.acceptors())
        d.reload()
        resp, info = https_get(d, "a.test")
        h.expect_status(resp, 200, "GET https://a.test/ after the reload")
        h.expect_eq(info["der"] == new, True, "a new connection gets the renewed certificate")
        resp = kept.get("/", "a.test")
        h.expect_status(resp, 200, "the connection opened before the reload goes on")
        h.expect_eq(kept.sock.getpeercert(binary_form=True), old, "the old connection keeps its certificate")
    # Every acceptor is new, and b.test's certificate did not change: its session still resumes.
    h.wait_until(lambda: not (set(d.acceptors()) & acceptors_before), 10)
    resp, info = https_get(d, "b.test", ctx=ctx, session=b_session)
    h.expect_status(resp, 200, "b.test after the reload")
    h.check(info["reused"], "b.test's session from before the reload was not resumed by the new acceptors")
    keyprocs = h.wait_until(lambda: len(key_processes(d)) == 1, 10)
    h.check(keyprocs, f"expected the old key process to exit after the reload, found {key_processes(d)}")
    d.stop()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().decode("latin-1").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def unfinished_record_does_not_spin_the_worker(d):
    # A hostile client begins a TLS record after a request and never finishes it. OpenSSL reads what came
    # ahead of need; the worker must wait on the socket for the rest (its keep-alive deadline ends the
    # connection), not call SSL_read again and again on bytes that can never make a record.
    with TlsConn(d.port, "a.test") as c:
        h.expect_status(c.get("/", "a.test"), 200, "a first request on the connection")
        pid = d.worker_for(c)
        h.check(pid is not None, "no worker found for the connection")
        # The plain socket's send, under the TLS layer: a record header announcing 64 bytes, and 10 of them.
        socket.socket.send(c.sock, b"\x17\x03\x03\x00\x40" + b"\x00" * 10)
        time.sleep(0.3)
        before = cpu_seconds(pid)
        time.sleep(1.5)
        used = cpu_seconds(pid) - before
        h.check(used < 0.3, f"worker {pid} used {used:.2f} s of CPU in 1.5 s while it waited for the rest of a "
                            f"TLS record (a busy loop)")


def key_process_survives_a_stop_and_continue(d):
    # SIGSTOP/SIGCONT (an operator, a debugger attaching) resume its wait through restart_syscall, which
    # its seccomp filter must allow: it used to fail the wait and end, and every handshake with it.
    keys = key_processes(d)
    h.check(len(keys) == 1, f"expected one itk-keys child of the master, found {keys}")
    os.kill(keys[0], signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(keys[0], signal.SIGCONT)
    time.sleep(0.3)
    h.check(h.pid_alive(keys[0]) and key_processes(d) == keys,
            f"the key process {keys[0]} ended after SIGSTOP and SIGCONT:\n{d.log_tail()}")
    # A new client context: no session to resume, so the handshake needs a signature.
    resp, info = https_get(d, "a.test", ctx=client_context())
    h.expect_status(resp, 200, "a full handshake after the key process was stopped and continued")
    h.check(not info["reused"], "the handshake was expected to be a full one")


def tls_connection_over_the_limit_waits_for_a_slot(_):
    # Over MaxClientsVHost a TLS connection waits for a slot like a plain one: the acceptor has only peeked
    # at its ClientHello, and the vhost's worker does the handshake once the slot is free (it was closed,
    # without an answer, before the queue).
    tree = tls_tree(server={"StartServers": 1, "QueueTimeout": 15})
    with open(os.path.join(tree.conf_dir, "10-a.conf"), "a") as f:
        f.write("MaxClientsVHost = 1\n")
    d = TlsDaemon(tree, name="itkd-tls-queue").start()
    held = TlsConn(d.port, "a.test")
    waiting = None
    try:
        h.expect_status(held.get("/", "a.test"), 200, "the keep-alive connection holding a.test's one slot")
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        waiting = client_context().wrap_socket(raw, server_hostname="a.test", do_handshake_on_connect=False)
        waiting.setblocking(False)

        def handshake(timeout):
            """True once the handshake is done, False if it is still waiting after `timeout` seconds."""
            end = time.monotonic() + timeout
            while True:
                try:
                    waiting.do_handshake()
                    return True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as e:
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    want_write = isinstance(e, ssl.SSLWantWriteError)
                    select.select([] if want_write else [waiting], [waiting] if want_write else [], [], left)
        h.check(not handshake(1.0), "expected the TLS connection over MaxClientsVHost = 1 to wait for the slot, "
                                    "its handshake was answered")
        held.close()
        h.check(handshake(10.0), "expected the waiting TLS connection's handshake within 10s of the slot's release")
        waiting.setblocking(True)
        waiting.settimeout(10)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := waiting.recv(65536):
            answer += chunk
        h.check(answer.startswith(b"HTTP/1.1 200 "), f"expected 200 for the connection that waited, got {answer[:120]!r}")
    finally:
        held.close()
        if waiting is not None:
            waiting.close()
        d.stop()


def check_names_file_and_vhost_of_bad_keys(_):
    tree = tls_tree()
    # b.test's drop-in names a.test's key for b.test's certificate.
    tree.write_vhost("20-b.conf", "b.test", tree.root_b, h.UID_B, TLSCertificateFile=tree.certs["b.test"][0],
                     TLSCertificateKeyFile=tree.certs["a.test"][1])
    code, out, err = h.run_itkd_direct(["--check", "--config", tree.conf, "--config-dir", tree.conf_dir])
    h.check(code == 1, f"itkd --check with a key of another certificate: expected status 1, got {code}\n{err}")
    want = (f"20-b.conf:6: TLSCertificateKeyFile: `{tree.certs['a.test'][1]}` (vhost b.test): does not match "
            f"the certificate `{tree.certs['b.test'][0]}`")
    h.check(want in err, f"expected the error to name file:line, key file and vhost:\n  {want}\ngot:\n{err}")
    # A certificate file that is not one.
    with open(tree.certs["b.test"][0], "w") as f:
        f.write("not a certificate\n")
    code, out, err = h.run_itkd_direct(["--check", "--config", tree.conf, "--config-dir", tree.conf_dir])
    want = f"20-b.conf:5: TLSCertificateFile: `{tree.certs['b.test'][0]}` (vhost b.test): holds no PEM certificate"
    h.check(code == 1 and want in err, f"itkd --check with a broken certificate file: expected {want!r}, got:\n{err}")


def https_without_certificate_is_refused(_):
    tree = h.two_tenant_tree()
    d = TlsDaemon(tree, name="itkd-tls-nocert")
    d.start(wait_ready=False)
    code = d.wait_exit(10)
    d.close_trigger()
    h.check(code not in (None, 0), f"expected itkd to refuse an https listener without certificates, got {code}")
    h.check("no certificate is configured" in d.log_text(),
            f"expected the refusal to say that no certificate is configured:\n{d.log_text()[-600:]}")


if __name__ == "__main__":
    if OPENSSL is None:
        print("1..0 # SKIP the openssl command is not installed (package openssl)")
        sys.exit(0)
    h.main([
        sni_selects_each_vhosts_certificate,
        https_is_served_as_the_vhosts_user,
        scripts_are_told_the_request_came_over_tls,
        no_or_unknown_sni_gets_the_default_certificate,
        host_sni_mismatch_is_421,
        old_protocol_versions_are_refused,
        every_signature_kind_goes_through_the_key_process,
        alpn_is_http11_only,
        sessions_resume_across_acceptors,
        tls13_resumption_issues_a_new_ticket,
        no_resumption_under_another_certificate,
        renegotiation_is_refused,
        private_keys_only_in_the_key_process,
        worker_keeps_only_its_connection,
        acceptors_and_key_process_hold_no_privilege,
        tls_connections_reuse_their_vhosts_workers,
        fresh_worker_holds_no_other_clients_bytes,
        key_process_is_unprivileged,
        tenant_cannot_reach_keys_or_worker_memory,
        slow_handshakes_do_not_pin_acceptors,
        key_process_survives_a_stop_and_continue,
        unfinished_record_does_not_spin_the_worker,
        reload_serves_a_renewed_certificate,
        tls_connection_over_the_limit_waits_for_a_slot,
        check_names_file_and_vhost_of_bad_keys,
        https_without_certificate_is_refused,
    ], setup)

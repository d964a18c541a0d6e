# PROXY protocol on a listener (ProxyProtocol, ProxyProtocolFrom): behind a load balancer, scripts see the
# client's address the balancer states (v1 text, v2 binary with TLVs), health checks (v2 LOCAL) are
# served, a connection without the header or from a peer not allowed to send one is closed, and the
# address follows a connection to a spare worker and over TLS.

import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import test_reuse  # noqa: E402
import test_tls  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
CLIENT = ("203.0.113.7", 4444)
FRONT = ("192.0.2.1", 443)
ADDR_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\n\\n'
echo "remote=$REMOTE_ADDR:$REMOTE_PORT"
echo "server=$SERVER_ADDR:$SERVER_PORT"
echo "https=${HTTPS-unset}"
echo "worker=$PPID"
"""
ADDR_PHP = """<?php
echo 'remote=', $_SERVER['REMOTE_ADDR'], ':', $_SERVER['REMOTE_PORT'], "\\n";
"""


def setup():
    tree = h.Tree(prefix="itk-proxy-")
    # One acceptor: it owns every spare, so the next connection meets the spare the last one left.
    tree.write_server_conf(ProxyProtocol="http", ProxyProtocolFrom="127.0.0.1 ::1", KeepAliveTimeout=5, StartServers=1)
    root = h.make_tenant(tree, "a", h.UID_A)
    tree.write(os.path.join(root, "addr.cgi"), ADDR_CGI, h.UID_A, mode=0o755)
    tree.write(os.path.join(root, "addr.php"), ADDR_PHP, h.UID_A)
    keys = {"CGI": ".cgi"}
    if os.access(PHP_CGI, os.X_OK):
        keys["FastCGI"] = f".php {PHP_CGI}"
    tree.write_vhost("10-a.conf", "a.test", root, h.UID_A, **keys)
    return h.Daemon(tree).start()


def v1(client=CLIENT, front=FRONT):
    return f"PROXY TCP4 {client[0]} {front[0]} {client[1]} {front[1]}\r\n".encode()


def v2(command=1, client=CLIENT, front=FRONT, tlvs=b""):
    body = b""
    if command == 1:
        body = (socket.inet_aton(client[0]) + socket.inet_aton(front[0]) + struct.pack(">HH", client[1], front[1]))
    body += tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | command, 0x11 if command else 0x00]) + \
        struct.pack(">H", len(body)) + body


def request(path, close=True):
    return h.build_request("GET", path, "a.test", [("Connection", "close")] if close else [])


def answer(d, data, what, source=None):
    with h.Conn(d.port) if source is None else bound_conn(d, source) as c:
        c.send(data)
        resp = c.read_response()
    h.expect_status(resp, 200, what)
    return h.key_values(resp.body)


def bound_conn(d, source):
    c = h.Conn.__new__(h.Conn)
    c.timeout = h.IO_TIMEOUT
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.sock.bind((source, 0))
    c.sock.settimeout(h.IO_TIMEOUT)
    c.sock.connect(("127.0.0.1", d.port))
    c.buf, c.eof, c.reset, c.send_error = bytearray(), False, False, None
    return c


def client_address_from_v1_and_v2(d):
    for name, header in (("v1", v1()), ("v2", v2())):
        kv = answer(d, header + request("/addr.cgi"), f"GET /addr.cgi after a PROXY {name} header")
        h.expect_eq((kv.get("remote"), kv.get("server"), kv.get("https")),
                    (f"{CLIENT[0]}:{CLIENT[1]}", f"{FRONT[0]}:{FRONT[1]}", "unset"),
                    f"REMOTE_ADDR:PORT, SERVER_ADDR:PORT and HTTPS seen by a CGI (PROXY {name})")
    # The header may arrive in pieces, as may what follows it.
    with h.Conn(d.port) as c:
        for b in v2() + request("/addr.cgi"):
            c.send(bytes([b]))
        resp = c.read_response()
    h.expect_status(resp, 200, "a PROXY v2 header and a request sent a byte at a time")
    h.expect_eq(h.key_values(resp.body).get("remote"), f"{CLIENT[0]}:{CLIENT[1]}", "REMOTE_ADDR from a trickled header")


def php_sees_the_client_too(d):
    if not os.access(PHP_CGI, os.X_OK):
        raise h.Skip(f"{PHP_CGI} not installed (Debian package php-cgi)")
    kv = answer(d, v1() + request("/addr.php"), "GET /addr.php after a PROXY v1 header")
    h.expect_eq(kv.get("remote"), f"{CLIENT[0]}:{CLIENT[1]}", "REMOTE_ADDR:REMOTE_PORT seen by PHP over FastCGI")


def tls_at_the_balancer_is_https(d):
    ssl_tlv = b"\x20\x00\x05\x01\x00\x00\x00\x00"  # PP2_TYPE_SSL, PP2_CLIENT_SSL, verified
    kv = answer(d, v2(tlvs=b"\x04\x00\x02no" + ssl_tlv) + request("/addr.cgi"), "GET /addr.cgi, TLS at the balancer")
    h.expect_eq(kv.get("https"), "on", "HTTPS seen by a CGI when the balancer says the client used TLS")


def health_check_with_local_is_served(d):
    kv = answer(d, v2(command=0) + request("/addr.cgi"), "GET /addr.cgi after PROXY v2 LOCAL (a health check)")
    h.check(kv.get("remote", "").startswith("127.0.0.1:"), f"LOCAL: expected the balancer's own address, got {kv}")
    kv = answer(d, b"PROXY UNKNOWN\r\n" + request("/addr.cgi"), "GET /addr.cgi after PROXY UNKNOWN")
    h.check(kv.get("remote", "").startswith("127.0.0.1:"), f"UNKNOWN: expected the balancer's own address, got {kv}")


def connection_without_header_is_closed(d):
    for what, data in (("a request without a PROXY header", request("/addr.cgi")),
                       ("a malformed PROXY header", b"PROXY TCP4 1.2.3.4 nonsense\r\n" + request("/addr.cgi")),
                       ("a PROXY v1 line over 107 bytes", b"PROXY TCP4 " + b"1" * 120 + b"\r\n")):
        mark = len(d.log_text())
        with h.Conn(d.port) as c:
            c.send(data)
            closed, extra = c.wait_closed()
        h.check(closed and not extra, f"{what}: expected the connection closed without an answer, got {extra[:100]!r}")
        h.check(h.wait_until(lambda: "connection closed:" in d.log_text()[mark:], 3),
                f"{what}: expected the journal to say why the connection was closed")


def peer_not_in_proxy_protocol_from_is_refused(d):
    # 127.0.0.2 is loopback, but not a balancer: anyone who could send a header could name any client.
    mark = len(d.log_text())
    with bound_conn(d, "127.0.0.2") as c:
        c.send(v1() + request("/addr.cgi"))
        closed, extra = c.wait_closed()
    h.check(closed and not extra, f"a PROXY header from 127.0.0.2: expected the connection closed, got {extra[:100]!r}")
    h.check(h.wait_until(lambda: "from 127.0.0.2 refused: not in ProxyProtocolFrom" in d.log_text()[mark:], 3),
            "expected the journal to name the peer that is not in ProxyProtocolFrom")


def address_follows_the_connection_to_a_spare(d):
    # A spare worker serves the next connection of its vhost: that connection's own address, not the last.
    seen = []
    for port in (1111, 2222, 3333):
        kv = answer(d, v1(client=("198.51.100.9", port)) + request("/addr.cgi"), f"request from port {port}")
        seen.append((kv.get("remote"), kv.get("worker")))
        # The next connection is forked for unless the worker is back as a spare first.
        if kv.get("worker", "").isdigit():
            test_reuse.wait_spare(int(kv["worker"]), f"after the request from port {port}")
    h.expect_eq([r for r, _ in seen], [f"198.51.100.9:{p}" for p in (1111, 2222, 3333)],
                "REMOTE_ADDR:PORT of three connections in a row")
    h.check(len({w for _, w in seen}) < 3, f"expected a spare worker to serve more than one of them, got {seen}")


def proxy_header_before_tls(shared):
    tree = h.Tree(prefix="itk-proxy-tls-")
    cert, key = test_tls.make_cert(tree, "a.test")
    os.chmod(tree.path("tls"), 0o700)
    tree.write_server_conf(ProxyProtocol="https", ProxyProtocolFrom="127.0.0.1")
    root = h.make_tenant(tree, "a", h.UID_A)
    tree.write(os.path.join(root, "addr.cgi"), ADDR_CGI, h.UID_A, mode=0o755)
    tree.write_vhost("10-a.conf", "a.test", root, h.UID_A, CGI=".cgi", TLSCertificateFile=cert,
                     TLSCertificateKeyFile=key)
    d = test_tls.TlsDaemon(tree, name="itkd-proxy-tls").start()
    try:
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=h.IO_TIMEOUT)
        raw.sendall(v2())
        ctx = test_tls.client_context()
        with ctx.wrap_socket(raw, server_hostname="a.test") as s:
            s.sendall(request("/addr.cgi"))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        h.check(head.startswith(b"HTTP/1.1 200"), f"GET https://a.test/addr.cgi after a PROXY v2 header: {head[:80]!r}")
        kv = h.key_values(body)
        h.expect_eq((kv.get("remote"), kv.get("https")), (f"{CLIENT[0]}:{CLIENT[1]}", "on"),
                    "REMOTE_ADDR:PORT and HTTPS seen by a CGI over TLS behind a balancer")
        # The http listener next to it expects no header.
        resp = h.fetch(d.http_port, "/addr.cgi", "a.test")
        h.expect_status(resp, 200, "GET http://a.test/addr.cgi on the listener without ProxyProtocol")
        h.check(h.key_values(resp.body).get("remote", "").startswith("127.0.0.1:"), "address on the plain listener")
    except (ssl.SSLError, OSError) as e:
        raise h.Fail(f"TLS after a PROXY header failed: {e}") from None
    finally:
        d.stop()


SCENARIOS = [
    client_address_from_v1_and_v2,
    php_sees_the_client_too,
    tls_at_the_balancer_is_https,
    health_check_with_local_is_served,
    connection_without_header_is_closed,
    peer_not_in_proxy_protocol_from_is_refused,
    address_follows_the_connection_to_a_spare,
    proxy_header_before_tls,
]

if __name__ == "__main__":
    h.main(SCENARIOS, setup)

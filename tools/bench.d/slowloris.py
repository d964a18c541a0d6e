#!/usr/bin/env python3
# Slow-client load for tools/bench: holds N connections that send a request line one byte every few
# seconds and never finish the head; reopens each one the server closes. Loopback only.
#
# Prints "open N" once all N are connected, and on SIGTERM one line of JSON with what happened.
import argparse
import json
import select
import signal
import socket
import sys
import time


class Stop(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host-header", required=True)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between two bytes on a connection")
    ap.add_argument("--path", default="/1k.html")
    args = ap.parse_args()

    def on_term(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    # The request line, then header lines forever: the blank line that ends a head is never sent.
    head = f"GET {args.path} HTTP/1.1\r\nHost: {args.host_header}\r\n".encode()
    filler = b"X-Slow: 1\r\n"
    stats = {"target": args.connections, "opened": 0, "connect_failures": 0, "closed_by_server": 0,
             "statuses": {}, "bytes_sent": 0, "min_open_after_ready": None}
    conns = {}  # fd -> [socket, bytes sent so far, first bytes of the answer]
    ready = False

    def byte_at(n):
        return head[n:n + 1] if n < len(head) else filler[(n - len(head)) % len(filler):][:1]

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            s.connect(("127.0.0.1", args.port))
            s.sendall(byte_at(0))
        except OSError:
            s.close()
            stats["connect_failures"] += 1
            return False
        s.setblocking(False)
        conns[s.fileno()] = [s, 1, b""]
        stats["opened"] += 1
        stats["bytes_sent"] += 1
        return True

    def drop(fd):
        s, _, answer = conns.pop(fd)
        s.close()
        stats["closed_by_server"] += 1
        parts = answer.split(b" ", 2)
        status = parts[1].decode(errors="replace") if len(parts) > 1 and answer.startswith(b"HTTP/") else "none"
        stats["statuses"][status] = stats["statuses"].get(status, 0) + 1

    try:
        next_tick = time.monotonic() + args.interval
        while True:
            while len(conns) < args.connections:
                if not open_one():
                    time.sleep(0.05)
                    break
            if not ready and len(conns) >= args.connections:
                ready = True
                print(f"open {len(conns)}", flush=True)
            if ready:
                m = stats["min_open_after_ready"]
                stats["min_open_after_ready"] = len(conns) if m is None else min(m, len(conns))
            timeout = max(0.0, next_tick - time.monotonic())
            readable, _, _ = select.select(list(conns), [], [], timeout) if conns else ([], [], [])
            for fd in readable:
                s, _, answer = conns[fd]
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    conns[fd][2] = (answer + data)[:64]
                else:
                    drop(fd)
            if time.monotonic() >= next_tick:
                next_tick += args.interval
                for fd in list(conns):
                    s, n, _ = conns[fd]
                    try:
                        if s.send(byte_at(n)) == 1:
                            conns[fd][1] = n + 1
                            stats["bytes_sent"] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        drop(fd)
    except Stop:
        pass
    finally:
        stats["open_at_end"] = len(conns)
        for s, _, _ in conns.values():
            s.close()
        print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    sys.exit(main())

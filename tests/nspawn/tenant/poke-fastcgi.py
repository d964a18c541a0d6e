# A hostile tenant's daemon, started from its PHP: it leaves its session, keeps the FastCGI pool's
# listening socket it inherited as fd 0, and sends a FastCGI request for the script given as argument to
# that socket every 0.3 s, so the pool's php-cgi keeps working. Writes its pid to poke.pid beside the script.
# Used by tests/integration/test_fastcgi.py and tests/nspawn/scenarios/14-hostile-tenant.sh.
import os
import socket
import struct
import sys
import time

script = os.path.abspath(sys.argv[1])
if os.fork():
    os._exit(0)
os.setsid()
null = os.open("/dev/null", os.O_RDWR)
os.dup2(null, 1)
os.dup2(null, 2)
path = socket.socket(fileno=os.dup(0)).getsockname()
with open(os.path.join(os.path.dirname(script), "poke.pid"), "w") as f:
    f.write(str(os.getpid()))


def record(kind, body):
    return struct.pack(">BBHHBx", 1, kind, 1, len(body), 0) + body


params = b"".join(bytes([len(k), len(v)]) + k + v for k, v in [
    (b"SCRIPT_FILENAME", script.encode()), (b"REQUEST_METHOD", b"GET"), (b"REDIRECT_STATUS", b"200")])
while True:
    try:
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(2)
        c.connect(path)
        c.sendall(record(1, struct.pack(">HB5x", 1, 0)) + record(4, params) + record(4, b"") + record(5, b""))
        while c.recv(4096):
            pass
        c.close()
    except OSError:
        pass
    time.sleep(0.3)

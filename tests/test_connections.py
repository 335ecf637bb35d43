"""geventhttpclient's connection pool as our users get it (locustfiles.connections).

Each check runs a small gevent program in its own process (the tests are not
a gevent program), against a real server on loopback that counts the
connections it accepts. The same program without our fixes shows what they
fix: with more than 1,024 descriptors open, the stock idle-socket check
(``select``) takes every pooled socket for dead and opens a new connection
for each request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = r'''
import locust  # noqa: F401  (gevent patches the standard library first)
import json, os, resource, sys

import gevent
from gevent.server import StreamServer
from geventhttpclient import HTTPClient

if sys.argv[1] == "fixed":
    import locustfiles.common  # noqa: F401  (installs locustfiles.connections)

accepted = []
CLOSE = sys.argv[4] == "close"


def handle(sock, address):
    accepted.append(address)
    f = sock.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            break
        while f.readline() not in (b"\r\n", b""):
            pass
        if CLOSE:
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            break
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")


server = StreamServer((sys.argv[3], 0), handle)
server.start()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(int(sys.argv[2]))]  # push new sockets past 1023
host = sys.argv[3]
client = HTTPClient(host, server.server_port, concurrency=1)
statuses = []
for _ in range(5):
    response = client.get("/")
    response.read()
    statuses.append(response.status_code)
    gevent.sleep(0.01)
pooled = client._connection_pool._socket_queue.queue
print(json.dumps({"accepted": len(accepted), "statuses": statuses, "fd": pooled[0].fileno() if pooled else None}))
'''


def _run(mode: str, padding: int, host: str = "127.0.0.1", close: bool = False) -> dict:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode, str(padding), host, "close" if close else "keep"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_pooled_connection_is_reused_past_descriptor_1024(host: str) -> None:
    got = _run("fixed", 1100, host)
    assert got["fd"] >= 1024 and got["statuses"] == [200] * 5
    assert got["accepted"] == 1


def test_without_the_fix_every_request_opens_a_connection_past_descriptor_1024() -> None:
    got = _run("stock", 1100)
    assert got["fd"] >= 1024 and got["statuses"] == [200] * 5
    assert got["accepted"] == 5  # what locustfiles.connections exists for


def test_below_1024_both_reuse_one_connection() -> None:
    assert _run("stock", 0)["accepted"] == 1
    assert _run("fixed", 0)["accepted"] == 1


def test_a_connection_the_server_closed_is_not_reused() -> None:
    got = _run("fixed", 1100, close=True)
    assert got["statuses"] == [200] * 5
    assert got["accepted"] == 5  # the peeked FIN marks each pooled socket dead: a new connection, no error


def test_address_literals_resolve_as_getaddrinfo_does_and_names_still_resolve() -> None:
    program = r'''
import locust  # noqa: F401
import json, socket
import locustfiles.common  # noqa: F401
from geventhttpclient.connectionpool import ConnectionPool
out = {}
for host in ("127.0.0.1", "::1", "[::1]", "localhost"):
    got = ConnectionPool(host, 8089, host, 8089)._resolve()
    out[host] = sorted(str(i[4][:2]) for i in got)
out["want_v4"] = sorted(str(i[4][:2]) for i in socket.getaddrinfo("127.0.0.1", 8089, 0, socket.SOCK_STREAM, socket.SOL_TCP))
out["want_v6"] = sorted(str(i[4][:2]) for i in socket.getaddrinfo("::1", 8089, 0, socket.SOCK_STREAM, socket.SOL_TCP))
print(json.dumps(out))
'''
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    assert got["127.0.0.1"] == got["want_v4"] == ["('127.0.0.1', 8089)"]
    assert got["::1"] == got["[::1]"] == got["want_v6"] == ["('::1', 8089)"]
    assert got["localhost"]  # a name goes through gevent's resolver, as before

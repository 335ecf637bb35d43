"""Wire time (locustfiles.wire): the kernel's stamps, not the generator's waits.

A gevent program in its own process (the tests are not a gevent program)
sends requests with Locust's ``FastHttpSession`` through geventhttpclient's
pool, as our users do, to a real HTTP server on loopback in this process.
While one request's answer is on its way, another greenlet holds the event
loop for 300 ms without yielding (a generator too busy to read): Locust's
timing of that request includes the 300 ms, its wire time must not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS is Linux's")

PROGRAM = r'''
import locust  # noqa: F401  (gevent patches the standard library first)
import json, sys, time

import gevent
from gevent.monkey import get_original
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from locustfiles import wire

installed = wire.install() if sys.argv[2] == "wire" else False
env = Environment()
got = []


def on_request(response_time, exception=None, **_):
    got.append({"locust_ms": response_time, "wire": wire.take(response_time), "failed": exception is not None})


env.events.request.add_listener(on_request)
session = FastHttpSession(sys.argv[1], env.events.request, user=None)
blocking_sleep = get_original("time", "sleep")


def hog():
    blocking_sleep(0.3)  # the event loop is held: nobody reads an answer meanwhile


session.get("/warm")  # the connection is open and pooled: the next request's send does not yield
gevent.spawn(hog)  # runs as soon as the request below waits for its answer
session.get("/measured")
wire.reset()
session.get("/quick")
stale = wire.take(0.0)  # stamps of a request already taken, or too long for the time given: not used
print(json.dumps({"installed": installed, "got": got, "stale": stale}))
'''


class _Quick(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quick)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(url: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROGRAM, url, mode], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_wire_time_leaves_out_the_generators_own_wait(server_url):
    result = run(server_url, "wire")
    assert result["installed"] is True
    warm, measured, quick = result["got"]
    assert not any(r["failed"] for r in result["got"])
    assert measured["locust_ms"] >= 300  # Locust's timing holds the greenlet that kept the loop
    sent, received = measured["wire"]
    wire_ms = (received - sent) * 1000
    assert 0 < wire_ms < measured["locust_ms"] - 200  # the answer was in the kernel long before it was read
    for r in (warm, quick):  # every request through the pool gets stamps, the first on a new connection too
        s, e = r["wire"]
        assert 0 < (e - s) * 1000 <= r["locust_ms"] + 0.1
    assert result["stale"] is None


def test_without_the_stamps_the_recorder_keeps_locusts_timing(server_url):
    result = run(server_url, "plain")
    assert result["installed"] is False
    assert [r["wire"] for r in result["got"]] == [None, None, None]


SILENT = r'''
import locust  # noqa: F401  (gevent patches the standard library first)
import json, socket, sys, time

from gevent.monkey import get_original
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from locustfiles import wire

wire.install()
listener = get_original("socket", "socket")()
listener.bind(("127.0.0.1", 0))
listener.listen(8)  # connections complete in the kernel's queue; nobody ever reads or answers them
env = Environment()
failures = []
env.events.request.add_listener(lambda exception=None, **_: failures.append(f"{type(exception).__name__}: {exception}"))
session = FastHttpSession(f"http://127.0.0.1:{listener.getsockname()[1]}", env.events.request, user=None,
                          network_timeout=0.5, max_retries=0)
started = time.monotonic()
session.get("/never")
print(json.dumps({"s": time.monotonic() - started, "failures": failures}))
'''


def test_a_system_that_never_answers_times_out_on_the_wire_socket():
    """The first read after a send waits for the answer before reading (wire.WireSocket): that wait keeps the
    socket's timeout, so a silent system fails the request after `network_timeout`, as without the wire layer."""
    out = subprocess.run([sys.executable, "-c", SILENT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert len(result["failures"]) == 1 and "timed out" in result["failures"][0], result
    assert 0.4 <= result["s"] < 10

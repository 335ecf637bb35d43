"""Each user's cookie jar (locustfiles.cookies): no work while empty, and a cookie a system sets still goes back.

A gevent program in its own process (the tests are not a gevent program)
sends requests with Locust's ``FastHttpSession`` holding a `LeanCookieJar`,
as our users do, to a real HTTP server on loopback that sets a load
balancer's affinity cookie on one answer. The requests before it must carry
no ``Cookie`` header, every request after it must carry the cookie, and a
cookie the server expires must stop going back, exactly as with the standard
library's jar (run beside it in the same program).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = r'''
import locust  # noqa: F401  (gevent patches the standard library first)
import http.server, json, sys, threading
from http.cookiejar import CookieJar

from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from locustfiles.cookies import LeanCookieJar

SETS = {"/set": "lb=node2; Path=/", "/expire": "lb=gone; Path=/; Max-Age=0"}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Cookie")))
        self.send_response(200)
        if self.path in SETS:
            self.send_header("Set-Cookie", SETS[self.path])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


out = {}
for name, jar in (("lean", LeanCookieJar()), ("stdlib", CookieJar())):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = FastHttpSession(f"http://127.0.0.1:{server.server_port}", Environment().events.request, None)
    session.cookiejar = session.client.cookiejar = jar
    for path in ("/a", "/b", "/set", "/c", "/d", "/expire", "/e"):
        session.get(path)
    out[name] = {"seen": server.seen, "left": len(jar)}
    server.shutdown()
print(json.dumps(out))
'''


def test_lean_jar_sends_what_the_standard_jar_sends() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    lean = out["lean"]["seen"]
    assert lean == [["/a", None], ["/b", None], ["/set", None], ["/c", "lb=node2"], ["/d", "lb=node2"],
                    ["/expire", "lb=node2"], ["/e", None]]
    assert lean == out["stdlib"]["seen"]
    assert out["lean"]["left"] == out["stdlib"]["left"] == 0


def test_our_users_get_the_lean_jar() -> None:
    program = ("import locust\nfrom locust.env import Environment\nfrom locustfiles.common import PortalUser\n"
               "class U(PortalUser):\n    host = 'http://127.0.0.1:9'\n"
               "u = U(Environment())\nprint(type(u.client.cookiejar).__name__, u.client.cookiejar is u.client.client.cookiejar)")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LeanCookieJar", "True"]

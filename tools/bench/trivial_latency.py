"""Benchmark: the latency of a trivial request, seen by the harness and by the portal.

Starts the reference portal, then a short Locust run (``FastHttpUser``, 10
users, constant pacing) on ``GET /api/health``, and reads the same requests'
timing from both sides: Locust's own stats (the harness) and the portal's
``/api/stats`` (server-side). A third view, a raw keep-alive socket doing 500
sequential requests, counts any request held ~40 ms by Nagle's algorithm and
delayed ACKs. Prints the figures and writes ``reports/bench/trivial-latency.json``.

    python tools/bench/trivial_latency.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = """
import locust
from locust import FastHttpUser, constant_pacing, task

class Trivial(FastHttpUser):
    wait_time = constant_pacing(0.05)

    @task
    def health(self):
        self.client.get("/api/health")
"""


def start_portal(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.portal", "--port", "0", "--port-file", str(port_file),
                             "--db", str(tmp / "portal.sqlite")], stdout=subprocess.DEVNULL)
    while not port_file.exists():
        time.sleep(0.05)
    url = f"http://127.0.0.1:{int(port_file.read_text())}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise SystemExit("portal did not start")


def raw_socket_ms(url: str, n: int = 500) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    req = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        sock.sendall(req)
        data = b""
        while not data.rstrip().endswith(b"}"):
            data += sock.recv(65536)
        out.append((time.perf_counter() - t0) * 1000)
    sock.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench" / "trivial-latency.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        portal, url = start_portal(tmp)
        try:
            (tmp / "trivial.py").write_text(LOCUSTFILE)
            subprocess.run([sys.executable, "-m", "locust", "-f", str(tmp / "trivial.py"), "--headless",
                            "--host", url, "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s", "--csv",
                            str(tmp / "t"), "--only-summary", "--loglevel", "ERROR"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with (tmp / "t_stats.csv").open() as f:
                row = next(r for r in csv.DictReader(f) if r["Name"] == "/api/health")
            with urllib.request.urlopen(url + "/api/stats") as r:
                server = json.loads(r.read())["requests"]["GET /api/health"]
            raw = raw_socket_ms(url)
        finally:
            portal.terminate()
            portal.wait()
    figures = {
        "requests": int(row["Request Count"]),
        "harness_locust_p50_ms": float(row["50%"]), "harness_locust_p99_ms": float(row["99%"]),
        "harness_locust_mean_ms": round(float(row["Average Response Time"]), 3),
        "portal_server_p50_ms": server["p50_ms"], "portal_server_p99_ms": server["p99_ms"],
        "raw_socket_p50_ms": round(statistics.median(raw), 3),
        "raw_socket_max_ms": round(max(raw), 3),
        "raw_socket_over_35ms": sum(t > 35 for t in raw),
        "note": "Locust rounds to whole ms below 100 ms; the portal's buckets are 5 % wide",
    }
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: what our user machinery costs the load generator, against bare Locust.

Two Locust users send ``GET /api/health`` to one reference portal, as fast as
they can (no wait), in alternating rounds (A, B, A, B, ...), one Locust
process per round:

A. **harness**: a `locustfiles.common.PortalUser` (a signed-in citizen, the
   token in a header) calling ``self.call(...)``, with every listener of our
   locustfile active: the telemetry (ledger, time series, session counts,
   ``/api/stats`` polled every 2 s), the HDR latency recorder, the timeline
   and the gate watch, writing a run directory as in ``rehearse run``.
B. **bare**: ``locust.FastHttpUser`` with ``self.client.get("/api/health")``.

Each round is measured over its middle (after the users have started,
before they stop): requests counted by the portal itself, and CPU seconds of
the Locust process (psutil). The figure is **requests per CPU-second of the
generator** (= requests per second per core when the generator is
saturated), per round, then the median of each kind and their ratio A/B
(target >= 0.8). Rounds alternate so that whatever else runs on this shared
machine falls on both. ``--profile`` samples one harness round with py-spy.
Writes reports/bench/overhead.json.

    python3 tools/bench/overhead.py [--rounds 3] [--seconds 20] [--users 20] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (BENCH_DIR, ROOT, get_json, machine, profile, publish, start_portal, stop,  # noqa: E402
                      top_functions)

HARNESS = '''
import locust  # noqa: F401  (first: gevent patches the standard library)

from locust import events, task

import locustfiles.locustfile  # noqa: F401  (our init hooks: telemetry, HDR latency, timeline, gate watch)
from locustfiles.common import PortalUser


class HarnessUser(PortalUser):
    tag = "citizen"

    def on_start(self):
        n = self.ctx.next_identity("citizen")
        status, body = self.call("POST", "/api/auth/vneid/otp", name="/api/auth/vneid/otp",
                                 json={"id_number": f"079{n:09d}"})
        status, body = self.call("POST", "/api/auth/vneid/verify", name="/api/auth/vneid/verify",
                                 json={"otp_request_id": body["otp_request_id"], "otp": body["otp"]})
        self.signed_in(body["token"])

    @task
    def health(self):
        self.call("GET", "/api/health", name="/api/health")


@events.init.add_listener
def _context(environment, **_):
    HarnessUser.ctx = environment.rehearsal
'''

BARE = '''
from locust import FastHttpUser, task


class BareUser(FastHttpUser):
    @task
    def health(self):
        self.client.get("/api/health")
'''

PLAN = """name: overhead
time_scale: 1
stages:
  - name: overhead
    units: {codes: [25747]}
    duration: 1h
    citizens: {users: 1, spawn_rate: 1, think_time: [1s, 2s]}
    officers: {per_unit: 0}
"""


def health_count(url: str) -> int:
    return int(get_json(url + "/api/stats")["requests"].get("GET /api/health", {}).get("count", 0))


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def one_round(kind: str, files: dict[str, Path], url: str, work: Path, n: int, args: argparse.Namespace,
              profile_out: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "locust", "-f", str(files[kind]), "--headless", "--host", url,
           "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s", "--only-summary",
           "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    if kind == "harness":
        cmd += ["--plan", str(files["plan"]), "--run-dir", str(work / f"run-{n}")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(work / f"round-{n}.err").open("wb"))
    p = psutil.Process(proc.pid)
    settle = min(5.0, args.seconds / 4)
    time.sleep(settle)
    measured = args.seconds - 2 * settle
    t0, c0, r0 = time.time(), cpu_s(p), health_count(url)
    spy = profile(proc.pid, measured - 1, profile_out) if profile_out else None
    time.sleep(measured)
    t1, c1, r1 = time.time(), cpu_s(p), health_count(url)
    proc.wait(args.seconds + 60)
    if spy:
        spy.wait()
    requests, cpu, wall = r1 - r0, c1 - c0, t1 - t0
    return {"kind": kind, "round": n, "requests": requests, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "requests_per_s": round(requests / wall, 1), "generator_cpu_percent": round(100 * cpu / wall, 1),
            "requests_per_cpu_s": round(requests / cpu, 1) if cpu else None, "exit_code": proc.returncode}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="pairs of rounds (A then B)")
    ap.add_argument("--seconds", type=int, default=20, help="length of each round")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="py-spy the first harness round")
    ap.add_argument("--out", default=str(BENCH_DIR / "overhead.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    files = {"harness": work / "harness_user.py", "bare": work / "bare_user.py", "plan": work / "overhead.yaml"}
    files["harness"].write_text(HARNESS)
    files["bare"].write_text(BARE)
    files["plan"].write_text(PLAN)
    portal, url = start_portal(work)
    rounds = []
    profile_out = Path(args.out).with_suffix(".profile.txt") if args.profile else None
    try:
        for i in range(args.rounds):
            for kind in ("harness", "bare"):
                r = one_round(kind, files, url, work, len(rounds), args, profile_out if kind == "harness" and i == 0
                              else None)
                print(r, file=sys.stderr, flush=True)
                rounds.append(r)
    finally:
        stop(portal)
    med = {k: statistics.median(r["requests_per_cpu_s"] for r in rounds if r["kind"] == k) for k in ("harness", "bare")}
    pairs = [a["requests_per_cpu_s"] / b["requests_per_cpu_s"]
             for a, b in zip(rounds[0::2], rounds[1::2])]
    figures: dict[str, Any] = {
        "machine": machine(), "users": args.users, "round_s": args.seconds, "endpoint": "GET /api/health",
        "rounds": rounds,
        "harness_requests_per_cpu_s_median": round(med["harness"], 1),
        "bare_requests_per_cpu_s_median": round(med["bare"], 1),
        "ratio_harness_to_bare": round(med["harness"] / med["bare"], 3),
        "ratio_per_pair": [round(x, 3) for x in pairs],
        "target_ratio": 0.8,
        "note": "requests counted by the portal; CPU of the Locust process only (psutil); one round at a time",
    }
    if profile_out and profile_out.exists():
        figures["harness_profile"] = top_functions(profile_out, 20)
    figures["passed"] = figures["ratio_harness_to_bare"] >= 0.8
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

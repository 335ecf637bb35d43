#!/usr/bin/env python3
"""Benchmark: how many concurrent sessions this machine holds at real-time think times, past one process.

The open-file limit of one process (20,000 here, the hard limit: not even
root raises it) and the ~28,000 ephemeral ports one source address has per
destination are the walls one process meets. So both sides run as several
processes, the way real deployments do:

- the portal: the national system (citizens) with ``--processes P``
  (``SO_REUSEPORT``: the kernel spreads connections over P processes whose
  session and timing counts are one, `rehearsal.portal.peers`) and
  ``--listeners L`` ports;
- the harness: Locust's own distributed mode, a master and W local
  ``locust --worker`` processes, running `calibrate.SessionCitizen`
  (VNeID sign-in, then a look at their dossiers every ``--think`` s:
  real-time think times), each user on the next of the portal's listeners.

A session is concurrent while it has a request in the portal's 60 s window,
so ``--think`` decides the request rate that holding N sessions takes (N ÷
the mean think time), not whether they are held. The default, 40–55 s, keeps
every gap plus a slow answer inside the window at the lowest rate that does:
40,000 sessions are ~840 requests/s. ``--think 20,50`` (the earlier default)
asks ~1,140/s of 40,000, past what this 2-core machine's CPU serves at
~1.9 ms of CPU per request both sides together (docs/benchmarks.md gives
both runs).

First, in the same run, the **calibration**: a bare ``FastHttpUser``'s
requests per CPU-second of its Locust process against the same portal
(`calibrate.BareUser`), so a figure from another machine can be compared.
Then the users step up (``--steps``, each asked for at ``--rate`` users/s
and held ``--hold`` s from the moment Locust runs them: `calibrate.Steps`)
and the last ``--measure`` s of each hold are measured; the ramp is
reported apart (how long it took against the plan, its worst p95). The
hold's first ``--hold`` − ``--measure`` s let the ramp drain: each new user
signs in (two requests and a new connection), and ramping 30,000 to 40,000
at 250 users/s kept this machine's CPU saturated for ~35 s after Locust ran
them all (100 users/s and a 120 s hold by default):

- sessions the portal counts active (``/api/stats``, min over the window),
  and users Locust runs;
- harness p95 (Locust's own current-window percentile, max over the window)
  and failed requests; the portal's server-side p50/p95/p99 over the same
  window, from its merged HDR histograms (``/api/timings``);
- CPU and RSS of the portal's processes and of Locust's (per session);
- the kernel's ListenOverflows.

A step passes with harness p95 <= ``--p95-ms`` (300), no failed request and
the portal counting at least 99 % of the users. The run stops after the
first failing step. Figures go to reports/bench/capacity.json.

    python3 tools/bench/capacity.py [--steps 10000,20000,30000,40000,44000] [--think 40,55] [--processes 3] [--listeners 2] [--workers 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchlib import BENCH_DIR, ROOT, get_json, machine, publish, raise_open_files, stop  # noqa: E402

LOCUSTFILE = Path(__file__).resolve().parent / "calibrate.py"
ENV_BASE = {**os.environ, "PYTHONPATH": str(ROOT)}


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def tree(pid: int) -> list[psutil.Process]:
    p = psutil.Process(pid)
    return [p, *p.children(recursive=True)]


def listen_overflows() -> int | None:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for head, values in zip(lines[0::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            return int(dict(zip(head.split()[1:], values.split()[1:])).get("ListenOverflows", 0))
    return None


def start_portal(work: Path, processes: int, listeners: int, *extra: str) -> tuple[subprocess.Popen[bytes], str,
                                                                                  list[str]]:
    port_file = work / f"portal-{time.monotonic_ns()}.port"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.portal", "--system", "national", "--port", "0",
                             "--port-file", str(port_file), "--db", str(work / f"{port_file.stem}.sqlite"),
                             "--processes", str(processes), "--listeners", str(listeners), *extra],
                            cwd=ROOT, env=ENV_BASE, stdout=subprocess.DEVNULL,
                            stderr=(work / f"{port_file.stem}.log").open("wb"))
    deadline = time.time() + 120
    while not port_file.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"the portal did not start: see {work}")
        time.sleep(0.2)
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    return proc, url, get_json(url + "/api/health").get("urls", [url])  # one URL: not listed


def calibration(url: str, work: Path, seconds: int = 20, users: int = 10) -> dict[str, Any]:
    """A bare FastHttpUser's requests per CPU-second of its process against this portal (this machine's speed)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "BareUser", "--headless", "-H", url,
           "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary", "--loglevel", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV_BASE, stdout=subprocess.DEVNULL,
                            stderr=(work / "calibration.err").open("wb"))
    p = psutil.Process(proc.pid)
    time.sleep(4)
    c0, r0, t0 = cpu_s([p]), health_count(url), time.time()
    time.sleep(seconds - 8)
    c1, r1, t1 = cpu_s([p]), health_count(url), time.time()
    proc.wait(seconds + 60)
    return {"requests_per_cpu_s": round((r1 - r0) / (c1 - c0), 1) if c1 > c0 else None,
            "requests_per_s": round((r1 - r0) / (t1 - t0), 1), "generator_cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 1),
            "users": users, "what": "bare FastHttpUser, GET /api/health, no wait, one Locust process"}


def health_count(url: str) -> int:
    return int(get_json(url + "/api/stats", timeout=30)["requests"].get("GET /api/health", {}).get("count", 0))


def timing_cost(work: Path, rounds: int = 3, seconds: int = 12) -> dict[str, Any]:
    """Requests/s of a bare FastHttpUser against a portal with and without server-side timing, rounds alternated."""
    out: dict[str, list[float]] = {"with": [], "without": []}
    for n in range(rounds):
        for kind in ("with", "without"):
            proc, url, _ = start_portal(work, 1, 1, *(() if kind == "with" else ("--no-server-timing",)))
            try:
                cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "BareUser", "--headless", "-H", url,
                       "-u", "10", "-r", "10", "-t", f"{seconds}s", "--only-summary", "--loglevel", "WARNING",
                       "--csv", str(work / f"cost-{kind}-{n}")]
                subprocess.run(cmd, cwd=ROOT, env=ENV_BASE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=seconds + 60)
                rows = list(csv.DictReader((work / f"cost-{kind}-{n}_stats.csv").open()))
                agg = next(r for r in rows if r["Name"] == "Aggregated")
                out[kind].append(round(float(agg["Requests/s"]), 1))
            finally:
                stop(proc)
    mean = {k: round(sum(v) / len(v), 1) for k, v in out.items()}
    return {"requests_per_s": out, "mean": mean, "ratio": round(mean["with"] / mean["without"], 3)}


def server_percentiles(url: str, w0: float, w1: float) -> dict[str, Any]:
    """The portal's own p50/p95/p99 over the intervals whose middle is in [w0, w1], every route and process merged."""
    data = get_json(url + f"/api/timings?since={int(w0)}", timeout=30)
    total, n = HdrHistogram(1, 3_600_000_000, 3), 0
    for interval in data["intervals"]:
        if w0 <= (interval["t0"] + interval["t"]) / 2 <= w1:
            for route in interval["routes"].values():
                total.add(HdrHistogram.decode(route["hdr"]))
                n += route["count"]
    if not n:
        return {"requests": 0}
    return {"requests": n, **{f"p{q}_ms": round(total.get_value_at_percentile(q) / 1000, 2) for q in (50, 95, 99)}}


def step_reached(progress: Path, users: int, master: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    """The shape's line for the step of `users` (when it was asked for and reached), once written; None if Locust ended."""
    while master.poll() is None:
        if progress.exists():
            for line in progress.read_text().splitlines():
                row = json.loads(line)
                if row["users"] == users:
                    return row
        time.sleep(1.0)
    return None


def harness_window(history: Path, w0: float, w1: float) -> dict[str, Any]:
    rows = [r for r in csv.DictReader(history.open()) if r["Name"] == "Aggregated" and w0 <= float(r["Timestamp"]) <= w1]
    p95 = [float(r["95%"]) for r in rows if r["95%"] not in ("N/A", "")]
    if not rows:
        return {}
    return {"p95_ms_max": max(p95, default=None), "p95_ms_median": sorted(p95)[len(p95) // 2] if p95 else None,
            "users": int(rows[-1]["User Count"]), "users_max": max(int(r["User Count"]) for r in rows),
            "failures_total": int(rows[-1]["Total Failure Count"]),
            "requests_total": int(rows[-1]["Total Request Count"]),
            "requests_per_s": round(sum(float(r["Requests/s"]) for r in rows) / len(rows), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="10000,20000,30000,40000,44000")
    ap.add_argument("--rate", type=float, default=100, help="users started per second")
    ap.add_argument("--hold", type=int, default=120, help="seconds each step is held once Locust runs its users")
    ap.add_argument("--measure", type=int, default=60, help="the last this many seconds of each hold are measured")
    ap.add_argument("--processes", type=int, default=3, help="portal processes")
    ap.add_argument("--listeners", type=int, default=2, help="portal listening ports")
    ap.add_argument("--workers", type=int, default=3, help="local Locust workers")
    ap.add_argument("--think", default="40,55", help="seconds between a user's looks (uniform), MIN,MAX")
    ap.add_argument("--p95-ms", type=float, default=300.0)
    ap.add_argument("--skip-cost", action="store_true", help="do not measure the server-side timing's cost")
    ap.add_argument("--out", default=str(BENCH_DIR / "capacity.json"))
    args = ap.parse_args()
    # Stopped by a signal: leave through the `finally`s, so no portal or Locust process is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    steps = [int(s) for s in args.steps.split(",")]
    nofile = raise_open_files()
    per_process = max(steps) / min(args.processes, args.workers)
    if per_process > nofile - 1000:
        raise SystemExit(f"{max(steps)} users over {min(args.processes, args.workers)} processes is {per_process:.0f} "
                         f"sockets each: more than the open-file limit {nofile} allows")
    work = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    figures: dict[str, Any] = {"machine": machine(), "open_file_limit": nofile, "portal_processes": args.processes,
                               "portal_listeners": args.listeners, "locust_workers": args.workers,
                               "think_s": args.think, "p95_limit_ms": args.p95_ms, "rate_users_per_s": args.rate,
                               "hold_s": args.hold, "measure_s": args.measure, "steps": []}
    if not args.skip_cost:
        figures["server_timing_cost"] = timing_cost(work)
        print(f"server timing cost: {figures['server_timing_cost']}", file=sys.stderr, flush=True)
    portal, url, urls = start_portal(work, args.processes, args.listeners)
    figures["calibration"] = calibration(url, work)
    print(f"calibration: {figures['calibration']}", file=sys.stderr, flush=True)
    env = {**ENV_BASE, "CAPACITY_URLS": ",".join(urls), "CAPACITY_STEPS": args.steps, "CAPACITY_RATE": str(args.rate),
           "CAPACITY_HOLD": str(args.hold), "CAPACITY_THINK": args.think, "CAPACITY_PROGRESS": str(work / "progress.jsonl")}
    master_port = 5557 + os.getpid() % 2000
    prefix = work / "locust"
    master = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "SessionCitizen", "--master",
                               "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                               "--expect-workers", str(args.workers), "-H", urls[0], "--csv", str(prefix),
                               "--csv-full-history", "--loglevel", "WARNING", "--exit-code-on-error", "0"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(work / "master.err").open("wb"),
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    workers = [subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "SessionCitizen", "--worker",
                                 "--master-host", "127.0.0.1", "--master-port", str(master_port),
                                 "--loglevel", "WARNING"], cwd=ROOT,
                                env={**env, "CAPACITY_WORKER_INDEX": str(i)}, stdout=subprocess.DEVNULL,
                                stderr=(work / f"worker-{i}.err").open("wb")) for i in range(args.workers)]
    history = Path(f"{prefix}_stats_history.csv")
    try:
        while not history.exists() and master.poll() is None:
            time.sleep(0.5)
        portal_procs = tree(portal.pid)
        locust_procs = [psutil.Process(master.pid), *(psutil.Process(w.pid) for w in workers)]
        for target in steps:
            progress = step_reached(work / "progress.jsonl", target, master)
            if progress is None:
                break
            # The hold runs from when Locust ran the step's users (calibrate.Steps): its last `measure` s are measured.
            w1 = progress["reached"] + args.hold - 2
            w0 = w1 - args.measure
            time.sleep(max(0.0, w0 - time.time()))
            if master.poll() is not None:
                break
            cp0, cl0, ov0, t0 = cpu_s(portal_procs), cpu_s(locust_procs), listen_overflows(), time.time()
            sessions = []
            while time.time() < w1:
                sessions.append(get_json(url + "/api/stats", timeout=30)["sessions_active"])
                time.sleep(min(5.0, max(0.0, w1 - time.time())))
            cp1, cl1, ov1, t1 = cpu_s(portal_procs), cpu_s(locust_procs), listen_overflows(), time.time()
            rss_portal, rss_locust = rss_mb(portal_procs), rss_mb(locust_procs)
            time.sleep(3)  # the history's last rows of the window are written
            h = harness_window(history, w0, w1)
            ramp = harness_window(history, progress["asked"], progress["reached"])
            step = {"users": target, "ramp": {"asked_s": round(progress["reached"] - progress["asked"], 1),
                                              "planned_s": round(target / args.rate if target == steps[0] else
                                                                 (target - steps[steps.index(target) - 1]) / args.rate, 1),
                                              "p95_ms_max": ramp.get("p95_ms_max")},
                    "sessions_portal_min": min(sessions, default=None),
                    "sessions_portal_max": max(sessions, default=None), "harness": h,
                    "server": server_percentiles(url, w0, w1),
                    "cpu_percent": {"portal": round(100 * (cp1 - cp0) / (t1 - t0), 1),
                                    "locust": round(100 * (cl1 - cl0) / (t1 - t0), 1),
                                    "machine": psutil.cpu_percent(None)},
                    "rss_mb": {"portal": round(rss_portal, 1), "locust": round(rss_locust, 1)},
                    "rss_kb_per_session": {"portal": round(1000 * rss_portal / max(1, target), 1),
                                           "harness": round(1000 * rss_locust / max(1, target), 1)},
                    "listen_overflows": (ov1 - ov0) if ov0 is not None and ov1 is not None else None}
            reasons = []
            p95 = h.get("p95_ms_max")
            if p95 is None or p95 > args.p95_ms:
                reasons.append(f"harness p95 {p95} ms > {args.p95_ms:g}")
            if h.get("failures_total"):
                reasons.append(f"{h['failures_total']} failed requests")
            if h.get("users_max", 0) > target:  # a worker taken for missing: its users run twice (calibrate.py)
                reasons.append(f"Locust ran {h['users_max']} users for a step of {target}")
            if step["sessions_portal_min"] is None or step["sessions_portal_min"] < 0.99 * target:
                reasons.append(f"portal counts {step['sessions_portal_min']} sessions of {target} users")
            step["passed"], step["why_not"] = not reasons, reasons
            figures["steps"].append(step)
            print(f"step {target}: portal sessions {step['sessions_portal_min']}  harness {h}  server "
                  f"{step['server']}  cpu {step['cpu_percent']}  rss/session {step['rss_kb_per_session']} kB  "
                  f"{'PASS' if not reasons else reasons}", file=sys.stderr, flush=True)
            if reasons:
                break
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (master, *workers):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        stop(portal)
    passing = [s for s in figures["steps"] if s["passed"]]
    figures["capacity_sessions_portal"] = passing[-1]["sessions_portal_min"] if passing else None
    figures["work_dir"] = str(work)
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

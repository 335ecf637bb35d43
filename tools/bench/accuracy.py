#!/usr/bin/env python3
"""Benchmark: is the harness's latency the server's? A fixed 50 ms endpoint measured three ways.

One reference portal (served by tools/bench/portal_timed.py, which times every
request of the endpoint exactly, server-side) is given a latency fault of
exactly 50 ms (``PUT /api/admin/faults``: ``kind: latency``, ``delay_s:
[0.05, 0.05]``) on ``GET /api/procedures/<code>``. Not on ``GET /api/health``,
which the portal exempts from every fault so that it stays observable (see
rehearsal/portal/faults.py, ``EXEMPT_PREFIXES``). First the machine's calibration (`benchlib.calibrate`: a bare
``FastHttpUser``'s requests per CPU-second on ``GET /api/health``, exempt
from the fault). Then, in ``--pairs`` alternating rounds (A B A B):

1. **harness** (A): 10 `locustfiles.common.PortalUser` users (every listener
   of our locustfile active) call the endpoint back to back for
   ``--seconds``. Figures: Locust's own (CSV, whole milliseconds, and every
   request's exact ``response_time``) and our HDR recorder's
   (``rehearsal.results.latency.stage_latency`` of the run's
   ``latency.jsonl``, the function that fills summary.json's
   ``stages[].latency``: wire times, `locustfiles.wire`).
2. **wrk** (B): ``wrk -t1 -c10`` on the same URL for the same time (Debian
   package ``wrk``; the phase is skipped, and the figures say so, if absent).
   Target: the harness's p99 within 2 ms of wrk's (median over the pairs).
3. **bare** (C): a bare ``FastHttpUser`` (nothing of ours), Locust's exact
   timing: what Locust and geventhttpclient themselves add. Every client is
   also compared with the server's timing of its own round
   (``*_minus_its_server_*``), since the server's p99 moves between rounds.

Then **rehearsal**: ``rehearse run`` of a small generated scenario (20 units,
1,000 citizens, ×30, 40 s) against the same portal, with the same 50 ms fault
declared in the scenario on every ``GET /api/procedures/<code>``: the figures
of ``GET /api/procedures/[code]`` in its summary.json (``stages[0].latency``,
HDR) and Locust's CSV, against the portal's own per-route timings of the same
requests (``GET /api/timings``, HDR per interval, merged: timed from each
request's arrival, `rehearsal.portal.arrival`) and the exact ones (the WSGI
call only: a request's wait to be read is not in them). Targets: client p99
within 10 ms of the server's, and no client-only stall (both against the
portal's own timing).

With ``--baseline-tree DIR`` (another checkout, e.g. the last commit: ``git
archive HEAD | tar -x -C DIR``) each harness round and the rehearsal are also
run from there, interleaved (A B C A B C ...): before and after a change on
the same machine at the same time.

Every side counts requests over 85 ms (a Nagle / delayed-ACK stall adds ~40 ms
to the 50). A "client-only" one is over 85 ms in the harness's figure and not
in the server's exact timing: with wire times that is a request that waited
between the kernels, or in the server's socket before its timing began (the
portal was busy), not one the generator was slow to read. Each round says
how busy the machine was (it is shared). Writes reports/bench/accuracy.json.

    python3 tools/bench/accuracy.py [--seconds 20] [--users 10] [--pairs 2] [--no-rehearsal] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (BENCH_DIR, ROOT, Busy, calibrate, get_json, machine, publish, put_json,  # noqa: E402
                      start_portal, stop)

from rehearsal.results.latency import read_latency, stage_latency, tally  # noqa: E402

DELAY_S = 0.05
STALL_MS = 85.0
ROUTE = "GET /api/procedures/<code>"
NAME = "GET /api/procedures/[code]"

#: Locust's own timing of every request, exactly (its CSV rounds to whole ms), kept to a file at the end.
TIMES = '''

_locust_ms = []


@events.request.add_listener
def _exact(response_time, **_):
    _locust_ms.append(response_time)


@events.quitting.add_listener
def _keep(environment, **_):
    with open(os.environ["BENCH_TIMES"], "w") as f:
        json.dump(_locust_ms, f)
'''

HARNESS = '''
import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import os

from locust import events, task

import locustfiles.locustfile  # noqa: F401  (our init hooks: telemetry, HDR latency, timeline, gate watch)
from locustfiles.common import PortalUser

PATH = os.environ["BENCH_PATH"]


class HarnessUser(PortalUser):
    tag = "citizen"
    role = "citizen"

    def on_start(self):
        self.place(self.ctx.systems.home("citizen"))  # the one --host portal

    @task
    def procedure(self):
        self.portal.request("GET", PATH, "/api/procedures/[code]", signed=False)


@events.init.add_listener
def _context(environment, **_):
    HarnessUser.ctx = environment.rehearsal
''' + TIMES

BARE = '''
import json
import os

from locust import FastHttpUser, events, task

PATH = os.environ["BENCH_PATH"]


class BareUser(FastHttpUser):
    """A bare FastHttpUser: Locust and geventhttpclient, nothing of ours."""

    @task
    def procedure(self):
        self.client.get(PATH, name="/api/procedures/[code]")
''' + TIMES

PLAN = """name: accuracy
time_scale: 1
stages:
  - name: accuracy
    units: {codes: [25747]}
    duration: 1h
    citizens: {users: 1, spawn_rate: 1, think_time: [1s, 2s]}
    officers: {per_unit: 0}
"""

REHEARSAL = """# Generated by tools/bench/accuracy.py: a short rehearsal with every procedure page held exactly 50 ms.
name: accuracy-rehearsal
time_scale: 30
seed: 3
stages:
  - name: accuracy
    units: {sample: 20}
    duration: 20m
    grace: 0
    citizens: {users: 1000, spawn_rate: 100, think_time: [1m, 3m], follow_interval: 2m}
    officers: {per_unit: 2, think_time: [30s, 90s], poll_interval: 1m, sign_in_lead: 1m}
    faults:
      - {kind: latency, at: 0s, endpoints: ["GET /api/procedures/<code>"], delay: 50ms}
"""

WRK_LUA = """
done = function(summary, latency, requests)
  for _, p in pairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%s %d\\n", p, latency:percentile(p)))
  end
  io.write(string.format("max %d\\nmean %f\\nrequests %d\\nerrors %d\\n", latency.max, latency.mean,
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout))
end
"""


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile, as HDR and wrk report them."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))]


def server_figures(url: str) -> dict[str, Any]:
    us = get_json(url + "/__timings")["us"]
    ms = [u / 1000 for u in us]
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None),
            "mean_ms": round(statistics.fmean(ms), 3) if ms else None, "over_85ms": sum(m > STALL_MS for m in ms)}


def locust_csv(path: Path, name: str) -> dict[str, Any]:
    with path.open() as f:
        row = next((r for r in csv.DictReader(f) if r["Name"] == name), None)
    if row is None:
        return {}
    return {"count": int(row["Request Count"]), "failures": int(row["Failure Count"]), "p50_ms": float(row["50%"]),
            "p99_ms": float(row["99%"]), "max_ms": float(row["Max Response Time"]),
            "mean_ms": round(float(row["Average Response Time"]), 3),
            "note": "Locust rounds response times to whole ms (2 significant digits above 100 ms)"}


def hdr_over(latency_jsonl: Path, name: str, ms: float) -> int:
    return over(tally(r for r in read_latency(latency_jsonl).rows if r["name"] == name), ms)


def over(t: Any, ms: float) -> int:
    """Requests of a tally over `ms`."""
    return sum(i.count_added_in_this_iter_step for i in t.histogram.get_recorded_iterator()
               if i.value_iterated_to > ms * 1000)


def api_timings(url: str, since: float) -> dict[str, Any]:
    """The portal's own per-route timings (``GET /api/timings``) of the endpoint since `since`, merged."""
    answer = get_json(f"{url}/api/timings?since={int(since)}")
    rows = [{"hdr": r["hdr"], "count": r["count"], "failures": r["errors"]}
            for i in answer["intervals"] for name, r in i["routes"].items() if name == ROUTE]
    if not rows:
        return {"absent": f"no {ROUTE} in /api/timings"}
    t = tally(rows)
    f = t.figures()
    return {**{k: f[k] for k in ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")},
            "over_85ms": over(t, STALL_MS), "covers": answer.get("covers")}


def hdr_figures(latency: dict[str, Any] | None, name: str) -> dict[str, Any]:
    f = (latency or {}).get("requests", {}).get(name)
    return {k: f[k] for k in ("count", "failures", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")} if f else {}


def diff(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    return round(a[key] - b[key], 3) if a.get(key) is not None and b.get(key) is not None else None


def phase_harness(url: str, path: str, work: Path, args: argparse.Namespace, tag: str,
                  cwd: Path = ROOT) -> dict[str, Any]:
    (work / "harness_user.py").write_text(HARNESS)
    (work / "accuracy.yaml").write_text(PLAN)
    run_dir = work / f"{tag}-run"
    server_figures(url)  # clear
    busy = Busy()
    times = work / f"{tag}-times.json"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(work / "harness_user.py"), "--headless", "--host", url,
                    "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s", "--only-summary",
                    "--csv", str(work / tag), "--loglevel", "WARNING", "--exit-code-on-error", "0",
                    "--plan", str(work / "accuracy.yaml"), "--run-dir", str(run_dir)],
                   cwd=cwd, env={**os.environ, "BENCH_PATH": path, "BENCH_TIMES": str(times)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=(work / f"{tag}.err").open("wb"))
    load = busy.stop()
    server = server_figures(url)
    log = run_dir / "stages" / "accuracy" / "latency.jsonl"
    hdr = hdr_figures(stage_latency(log), NAME)
    hdr["over_85ms"] = hdr_over(log, NAME, STALL_MS)
    return {"server": server, "harness_hdr": hdr, "harness_locust_exact": exact_figures(times),
            "harness_locust": locust_csv(work / f"{tag}_stats.csv", "/api/procedures/[code]"), **load}


def exact_figures(times: Path) -> dict[str, Any]:
    """Figures of Locust's own timing of each request (the file a `TIMES` listener wrote)."""
    ms = json.loads(times.read_text()) if times.exists() else []
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms, default=None),
            "mean_ms": round(statistics.fmean(ms), 3) if ms else None, "over_85ms": sum(m > STALL_MS for m in ms)}


def phase_bare(url: str, path: str, work: Path, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    """A bare ``FastHttpUser`` (nothing of ours), timed by Locust: what Locust itself adds to wrk's figure."""
    (work / "bare_user.py").write_text(BARE)
    server_figures(url)
    busy = Busy()
    times = work / f"{tag}-times.json"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(work / "bare_user.py"), "--headless", "--host", url,
                    "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s", "--only-summary",
                    "--loglevel", "WARNING", "--exit-code-on-error", "0"],
                   cwd=ROOT, env={**os.environ, "BENCH_PATH": path, "BENCH_TIMES": str(times)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=(work / f"{tag}.err").open("wb"))
    load = busy.stop()
    return {"server": server_figures(url), "bare_locust_exact": exact_figures(times), **load}


def phase_wrk(url: str, path: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    if not shutil.which("wrk"):
        return {"skipped": "wrk is not installed (Debian: apt-get install -y wrk)"}
    (work / "report.lua").write_text(WRK_LUA)
    server_figures(url)
    busy = Busy()
    out = subprocess.run(["wrk", "-t1", f"-c{args.users}", f"-d{args.seconds}s", "-s", str(work / "report.lua"),
                          url + path], capture_output=True, text=True, check=True).stdout
    load = busy.stop()
    server = server_figures(url)
    got = dict(re.findall(r"^(p[\d.]+|max|mean|requests|errors) (\S+)$", out, re.MULTILINE))
    wrk = {"count": int(got["requests"]), "errors": int(got["errors"]), "p50_ms": int(got["p50"]) / 1000,
           "p90_ms": int(got["p90"]) / 1000, "p99_ms": int(got["p99"]) / 1000, "p99_9_ms": int(got["p99.9"]) / 1000,
           "max_ms": int(got["max"]) / 1000, "mean_ms": round(float(got["mean"]) / 1000, 3),
           "over_85ms": "none" if int(got["max"]) <= STALL_MS * 1000 else "see max / p99.9"}
    return {"server": server, "wrk": wrk, **load}


def phase_rehearsal(url: str, work: Path, tag: str, cwd: Path = ROOT) -> dict[str, Any]:
    plan = work / "accuracy-rehearsal.yaml"
    plan.write_text(REHEARSAL)
    reports = work / f"{tag}-reports"
    server_figures(url)
    since, busy = time.time(), Busy()
    subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--target", "local", "--target-url", url,
                    "--reports-dir", str(reports)], cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=(work / f"{tag}.err").open("wb"), check=False)
    load = busy.stop()
    server = server_figures(url)
    run_dir = next(reports.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    stage = summary["stages"][0]
    hdr = hdr_figures(stage.get("latency"), NAME)
    hdr["source"] = "summary.json stages[0].latency" if stage.get("latency") else "absent from summary.json"
    log = run_dir / "stages" / "accuracy" / "latency.jsonl"
    hdr["over_85ms"] = hdr_over(log, NAME, STALL_MS)
    return {"run_dir": str(run_dir), "verdict": summary["verdict"], "server": server,
            # From the interval holding the run's start (intervals start at multiples of 2 s at x30).
            "server_api_timings": api_timings(url, since - 2), "harness_hdr": hdr,
            "harness_locust": locust_csv(run_dir / "stages" / "accuracy" / "locust_stats.csv",
                                         "/api/procedures/[code]"), **load}


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(statistics.median(got), 3) if got else None


def judge(figures: dict[str, Any]) -> None:
    """The differences that the targets are about, per pair and their medians."""
    checks: dict[str, Any] = {}
    for side in ("harness", "baseline"):
        runs = [p for p in figures["pairs"] if side in p]
        if not runs:
            continue
        for q in ("p50_ms", "p99_ms"):
            per = [diff(p[side]["harness_hdr"], p[side]["server"], q) for p in runs]
            checks[f"{side}_hdr_minus_server_{q}"] = {"per_pair": per, "median": median(per)}
            per = [diff(p[side]["harness_hdr"], p["wrk"]["wrk"], q) for p in runs if "wrk" in p["wrk"]]
            checks[f"{side}_hdr_minus_wrk_{q}"] = {"per_pair": per, "median": median(per)}
        checks[f"{side}_client_only_over_85ms"] = [p[side]["harness_hdr"].get("over_85ms", 0)
                                                   - p[side]["server"]["over_85ms"] for p in runs]
    # Each client against the server's timing of the same requests (the server's own p99 moves between rounds):
    # wrk, a bare FastHttpUser timed by Locust, our users timed by Locust, and our users' wire time (what we record).
    sides = {"wrk": ("wrk", "wrk"), "bare_locust": ("bare", "bare_locust_exact"),
             "harness_locust": ("harness", "harness_locust_exact"), "harness_wire": ("harness", "harness_hdr")}
    for label, (phase, key) in sides.items():
        for q in ("p50_ms", "p99_ms"):
            per = [diff(p[phase][key], p[phase]["server"], q) for p in figures["pairs"]
                   if phase in p and key in p[phase]]
            checks[f"{label}_minus_its_server_{q}"] = {"per_pair": per, "median": median(per)}
    wrk_p99 = checks.get("harness_hdr_minus_wrk_p99_ms", {}).get("median")
    figures["harness_p99_minus_wrk_ms"] = wrk_p99
    figures["harness_within_2ms_of_wrk"] = None if wrk_p99 is None else abs(wrk_p99) <= 2.0
    for tag in ("rehearsal_run", "rehearsal_run_baseline"):
        r = figures.get(tag)
        if not r:
            continue
        api = r["server_api_timings"]
        for q in ("p50_ms", "p99_ms"):
            checks[f"{tag}_hdr_minus_server_{q}"] = diff(r["harness_hdr"], api, q)
            checks[f"{tag}_hdr_minus_exact_server_{q}"] = diff(r["harness_hdr"], r["server"], q)
        # Against the portal's own timing (/api/timings: from each request's arrival), what server_p95_ms judges.
        checks[f"{tag}_client_only_over_85ms"] = (r["harness_hdr"].get("over_85ms", 0)
                                                  - r["server_api_timings"].get("over_85ms", 0))
    if "rehearsal_run" in figures:
        gap = checks["rehearsal_run_hdr_minus_server_p99_ms"]
        figures["rehearsal_p99_minus_server_ms"] = gap
        figures["rehearsal_within_10ms"] = None if gap is None else gap <= 10.0
        figures["client_side_stalls_over_85ms"] = checks["rehearsal_run_client_only_over_85ms"]
    figures["differences_ms"] = checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--users", type=int, default=10, help="harness users, and wrk connections")
    ap.add_argument("--pairs", type=int, default=2, help="alternating harness / wrk rounds")
    ap.add_argument("--no-rehearsal", action="store_true", help="skip the rehearse run phase")
    ap.add_argument("--baseline-tree", default="", metavar="DIR",
                    help="also run the harness and the rehearsal from this checkout, interleaved")
    ap.add_argument("--out", default=str(BENCH_DIR / "accuracy.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    base = Path(args.baseline_tree) if args.baseline_tree else None
    portal, url = start_portal(work, script=Path(__file__).resolve().parent / "portal_timed.py")
    try:
        figures: dict[str, Any] = {"machine": machine(), "calibration": calibrate(url, work)}
        code = get_json(url + "/api/procedures?per_page=1")["items"][0]["code"]
        path = f"/api/procedures/{code}"
        put_json(url + "/api/admin/faults", {"faults": [
            {"kind": "latency", "delay_s": [DELAY_S, DELAY_S], "endpoints": [ROUTE]}]})
        figures.update(endpoint=f"GET {path}", fault_delay_ms=DELAY_S * 1000, users_or_connections=args.users,
                       seconds=args.seconds, pairs=[])
        for i in range(args.pairs):
            pair = {"harness": phase_harness(url, path, work, args, f"harness-{i}"),
                    "wrk": phase_wrk(url, path, work, args),
                    "bare": phase_bare(url, path, work, args, f"bare-{i}")}
            if base is not None:
                pair["baseline"] = phase_harness(url, path, work, args, f"baseline-{i}", cwd=base)
            print({k: (v.get("harness_hdr") or v.get("wrk") or v.get("bare_locust_exact"), v.get("machine_busy_percent"))
                   for k, v in pair.items()},
                  file=sys.stderr, flush=True)
            figures["pairs"].append(pair)
        if not args.no_rehearsal:
            put_json(url + "/api/admin/faults", {"faults": []})  # the scenario declares its own
            figures["rehearsal_run"] = phase_rehearsal(url, work, "rehearsal")
            if base is not None:
                figures["baseline_tree"] = str(base)
                figures["rehearsal_run_baseline"] = phase_rehearsal(url, work, "rehearsal-baseline", cwd=base)
    finally:
        stop(portal)
    judge(figures)
    figures["note"] = ("p50/p99 are nearest-rank on exact server timings, HDR (3 significant digits) in the "
                       "harness and in the portal's /api/timings, wrk's own; a stall is a request over 85 ms seen by "
                       "the client but not the server; machine_busy_percent is all cores of this shared machine")
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: what the reference portal serves per core on the mixed journey.

Runs ``rehearse run SCENARIO`` (default scenarios/demo.yaml: 168 units, 336
officers, 1,150 citizens, ×60, the whole citizen and officer journey) and
samples every second the CPU seconds of the portal, of Locust and of the
harness (psutil, per process). Over the busy part of the filing window (the
portal counting 1,000+ sessions) it reports requests per second, the portal's
CPU, and the portal's **requests per CPU-second** (= requests per second per
core: the reference portal is one process, so about this many requests a
second is where it, not the harness, becomes the limit). With ``--profile`` it
also samples the portal with py-spy for 30 s in that window and lists where
its CPU goes. Writes reports/bench/portal.json.

    python3 tools/bench/portal.py [--scenario scenarios/demo.yaml] [--profile]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import subprocess
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import BENCH_DIR, ROOT, CpuSampler, machine, profile, publish, role_of, top_functions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="scenarios/demo.yaml")
    ap.add_argument("--time-scale", type=float, default=None, help="override the scenario's")
    ap.add_argument("--profile", action="store_true", help="py-spy the portal for 30 s while it is busy")
    ap.add_argument("--out", default=str(BENCH_DIR / "portal.json"))
    args = ap.parse_args()
    reports = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    cmd = [sys.executable, "-m", "rehearsal.cli", "run", args.scenario, "--reports-dir", str(reports)]
    if args.time_scale:
        cmd += ["--time-scale", str(args.time_scale)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = CpuSampler([proc.pid]).start()
    profiler = None
    profile_out = Path(args.out).with_suffix(".profile.txt")
    try:
        while proc.poll() is None:
            time.sleep(1)
            if args.profile and profiler is None:
                run_dirs = list(reports.iterdir())
                series = run_dirs[0] / "stages" if run_dirs else None
                rows = []
                for f in series.glob("*/timeseries.jsonl") if series and series.exists() else []:
                    rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
                if rows and (rows[-1].get("sessions_portal") or 0) >= 1000:
                    portal = next((c for c in psutil.Process(proc.pid).children(recursive=True)
                                   if role_of(c) == "portal"), None)
                    if portal is not None:
                        profiler = profile(portal.pid, 30, profile_out) or False
    finally:
        sampler.stop()
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
        if profiler:
            profiler.wait()
    run_dir = next(reports.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    stage = summary["stages"][0]
    stage_dir = run_dir / "stages" / stage["name"]
    series = [json.loads(line) for line in (stage_dir / "timeseries.jsonl").read_text().splitlines() if line.strip()]
    busy = [r for r in series if (r.get("sessions_portal") or 0) >= 1000]
    if len(busy) < 2:
        raise SystemExit("the portal never counted 1,000 sessions: nothing to measure")
    t0, t1 = busy[0]["t"], busy[-1]["t"]
    requests = busy[-1]["requests"] - busy[0]["requests"]
    portal_cpu_s = sampler.seconds(t0, t1, "portal")
    cpu = sampler.window(t0, t1)
    figures = {
        "scenario": args.scenario, "time_scale": summary["time_scale"], "verdict": summary["verdict"],
        "run_dir": str(run_dir), "machine": machine(),
        "window_s": round(t1 - t0, 1), "sessions_portal_peak": stage["sessions"]["peak_portal"],
        "requests": requests, "requests_per_s": round(requests / (t1 - t0), 1),
        "portal_cpu_s": round(portal_cpu_s, 1),
        "portal_requests_per_cpu_s": round(requests / portal_cpu_s, 1) if portal_cpu_s else None,
        "cpu_percent": cpu,
        "cpu_note": "mean over the window, per role; 100 = one core of this machine; others = the rest of the machine",
        "latency_ms": {k: stage["requests_total"].get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
        "error_rate": stage["error_rate"],
        "dossiers": {k: stage["dossiers"][k] for k in ("submitted", "complete", "lost")},
    }
    if args.profile and profile_out.exists():
        figures["profile"] = top_functions(profile_out)
        figures["profile_file"] = str(profile_out)
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: the same scenario with one Locust process and with `--workers 2`, side by side.

Runs ``rehearse run SCENARIO`` twice, one after the other on this machine
(default: scenarios/demo.yaml), and prints, for each: the verdict, dossiers
in the ledger and in the portal's own database (they must be equal), peak
sessions, requests and requests per second over the stage, and the Locust
processes' CPU (psutil, summed over master and workers). Then the ratios.
Writes reports/bench/distributed.json.

    python3 tools/bench/distributed.py [--scenario scenarios/demo.yaml] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import CpuSampler, machine, publish  # noqa: E402


def run(scenario: str, workers: int) -> dict:
    reports = Path(tempfile.mkdtemp(prefix=f"bench-dist-{workers}-"))
    cmd = [sys.executable, "-m", "rehearsal.cli", "run", scenario, "--reports-dir", str(reports)]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = CpuSampler([proc.pid]).start()
    proc.wait()
    sampler.stop()
    wall = time.time() - t0
    first, last = sampler.rows[0], sampler.rows[-1]
    cpu_s = {role: round(last.get(role, 0.0) - first.get(role, 0.0), 1) for role in ("locust", "portal", "machine")}
    run_dir = next(reports.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    stage = summary["stages"][0]
    ledger = sum(1 for line in (run_dir / "ledger" / f"{stage['name']}.jsonl").open()
                 if '"kind":"submitted"' in line)
    with sqlite3.connect(run_dir / "portal.sqlite") as db:
        portal = db.execute("SELECT count(*) FROM dossiers").fetchone()[0]
    duration = (stage["duration_s"] + stage["grace_s"]) / summary["time_scale"]
    return {"workers": workers, "verdict": summary["verdict"], "wall_s": round(wall, 1),
            "dossiers_ledger": ledger, "dossiers_portal": portal, "accounted": ledger == portal,
            "sessions": stage["sessions"], "requests": stage["requests_total"]["count"],
            "requests_per_s": round(stage["requests_total"]["count"] / duration, 1),
            "p95_ms": stage["requests_total"]["p95_ms"], "locust_cpu_s": cpu_s["locust"],
            "requests_per_locust_cpu_s": round(stage["requests_total"]["count"] / cpu_s["locust"], 1)
            if cpu_s["locust"] else None,
            "portal_cpu_s": cpu_s["portal"],
            "rest_of_machine_cpu_s": round(cpu_s["machine"] - cpu_s["locust"] - cpu_s["portal"], 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="scenarios/demo.yaml")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "reports" / "bench" / "distributed.json"))
    args = p.parse_args()
    one, many = run(args.scenario, 0), run(args.scenario, args.workers)
    figures = {"scenario": args.scenario, "machine": machine(), "one_process": one, "distributed": many,
               "throughput_ratio": round(many["requests_per_s"] / one["requests_per_s"], 3),
               "locust_cpu_ratio": round(many["locust_cpu_s"] / one["locust_cpu_s"], 3) if one["locust_cpu_s"] else None}
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: what the demo costs on this machine.

Runs ``rehearse run scenarios/demo.yaml`` and samples, every second, the CPU
of the reference portal and of the Locust process (psutil, per process, so
the two are measured side by side in the same run). Prints and writes
(``reports/bench/demo.json``): the portal's requests per second while 1,000+
sessions are active, CPU of each process then, peak sessions counted by the
harness and by the portal, and the stage's verdict and latency.

    python tools/bench/demo.py [--scenario scenarios/demo.yaml]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "demo.yaml"))
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench" / "demo.json"))
    args = ap.parse_args()
    reports = ROOT / "reports" / "bench" / "runs"
    reports.mkdir(parents=True, exist_ok=True)
    before = set(reports.iterdir())
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", args.scenario, "--reports-dir",
                             str(reports)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    parent = psutil.Process(proc.pid)
    samples: list[dict[str, float]] = []
    tracked: dict[int, psutil.Process] = {}
    while proc.poll() is None:
        time.sleep(1.0)
        try:
            for child in parent.children(recursive=True):
                if child.pid not in tracked:
                    tracked[child.pid] = child
                    child.cpu_percent(None)  # start its counter
        except psutil.NoSuchProcess:
            break
        row: dict[str, float] = {"t": time.time()}
        for pid, p in list(tracked.items()):
            try:
                cmd = " ".join(p.cmdline())
                role = "portal" if "rehearsal.portal" in cmd else "locust" if "locust" in cmd else None
                if role:
                    row[role] = row.get(role, 0.0) + p.cpu_percent(None)
            except psutil.NoSuchProcess:
                tracked.pop(pid, None)
        samples.append(row)
    out = proc.communicate()[0]
    run_dir = next(iter(set(reports.iterdir()) - before))
    summary = json.loads((run_dir / "summary.json").read_text())
    stage = summary["stages"][0]
    series = [json.loads(l) for l in (run_dir / "stages" / stage["name"] / "timeseries.jsonl").read_text().splitlines()]
    busy = [r for r in series if (r.get("sessions_portal") or 0) >= 1000]
    t0, t1 = (busy[0]["t"], busy[-1]["t"]) if busy else (0, 0)
    rps = (busy[-1]["requests"] - busy[0]["requests"]) / (t1 - t0) if len(busy) > 1 else None
    during = [s for s in samples if t0 <= s["t"] <= t1]
    figures = {
        "scenario": summary["scenario"], "run_dir": str(run_dir), "verdict": summary["verdict"],
        "wall_s": round(samples[-1]["t"] - samples[0]["t"], 1) if samples else None,
        "seconds_with_1000_plus_portal_sessions": round(t1 - t0, 1),
        "requests_per_s_at_1000_plus": round(rps, 1) if rps else None,
        "portal_cpu_percent_median": round(statistics.median(s.get("portal", 0) for s in during), 1) if during else None,
        "locust_cpu_percent_median": round(statistics.median(s.get("locust", 0) for s in during), 1) if during else None,
        "cpu_percent_note": "per process; 100 = one full core of this 2-core machine",
        "peak_sessions": stage["sessions"], "dossiers": stage["dossiers"],
        "completion_rate": stage["completion_rate"], "latency_ms": stage["requests_total"],
    }
    figures["machine"] = machine()
    publish(figures, args.out)
    print(out.strip().splitlines()[-3] if out.strip() else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: the soak — 1,000+ sessions held for a long time; memory and latency must stay flat.

Runs ``rehearse run scenarios/soak.yaml`` (4 simulated hours, 1,336 users)
at ``--time-scale 16`` (15 wall minutes) and samples, every 10 s, the
resident memory (RSS) of the harness (the rehearse process and its Locust
child) and of the reference portal, with psutil. Afterwards it reads
Locust's per-second history for the p95 latency of each minute.

Figures (printed, and written to reports/bench/soak.json with the curve,
and reports/bench/soak.png): RSS after warm-up (minute 2) and at the end,
growth in MB and %, the largest RSS; p95 in the first and last 3 minutes.
Bounds stated in docs/benchmarks.md: growth after warm-up ≤ 50 MB per
process, p95 of the last 3 minutes ≤ 1.5 × the first 3.

    python3 tools/bench/soak.py [--time-scale 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def classify(proc: psutil.Process, root_pid: int) -> str | None:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return None
    if proc.pid == root_pid:
        return "harness"
    if "rehearsal.portal" in cmd:
        return "portal"
    if "locust" in cmd:
        return "locust"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--time-scale", type=float, default=16.0)
    p.add_argument("--every", type=float, default=10.0, help="seconds between memory samples")
    p.add_argument("--out", default=str(ROOT / "reports" / "bench" / "soak.json"))
    args = p.parse_args()
    reports = Path(tempfile.mkdtemp(prefix="soak-"))
    run = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", "scenarios/soak.yaml", "--time-scale",
                            str(args.time_scale), "--reports-dir", str(reports)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    root = psutil.Process(run.pid)
    t0 = time.time()
    samples: list[dict[str, float]] = []
    while run.poll() is None:
        row: dict[str, float] = {"t": round(time.time() - t0, 1)}
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            kind = classify(proc, run.pid)
            if kind:
                try:
                    row[kind] = row.get(kind, 0.0) + proc.memory_info().rss / 2**20
                except psutil.Error:
                    pass
        samples.append(row)
        time.sleep(args.every)
    out_text = run.communicate()[0]
    run_dir = next(reports.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    import pandas as pd

    hist = pd.read_csv(run_dir / "stages" / "soak" / "locust_stats_history.csv", na_values=["N/A"])
    agg = hist[hist["Name"] == "Aggregated"].copy()
    agg["minute"] = ((agg["Timestamp"] - agg["Timestamp"].min()) // 60).astype(int)
    per_min = agg.groupby("minute")["95%"].median()
    steady = per_min[per_min.index >= 2]
    frame = pd.DataFrame(samples).set_index("t")
    warm = frame[frame.index >= 120].iloc[0]
    end = frame.iloc[-6:].median()  # the last minute, before the stage winds down
    figures = {
        "wall_s": round(time.time() - t0), "time_scale": args.time_scale, "verdict": summary["verdict"],
        "sessions_peak": summary["stages"][0]["sessions"], "lost": summary["stages"][0]["dossiers"]["lost"],
        "requests": summary["stages"][0]["requests_total"]["count"],
        "rss_mb": {k: {"after_warmup": round(float(warm[k]), 1), "end": round(float(end[k]), 1),
                       "growth_mb": round(float(end[k] - warm[k]), 1), "max": round(float(frame[k].max()), 1)}
                   for k in ("harness", "locust", "portal") if k in frame},
        "p95_ms": {"first_3_min": float(steady.iloc[:3].median()), "last_3_min": float(steady.iloc[-3:].median())},
        "curve": samples,
    }
    figures["bounds"] = {"growth_mb_max": 50, "p95_ratio_max": 1.5}
    figures["pass"] = (all(v["growth_mb"] <= 50 for v in figures["rss_mb"].values())
                       and figures["p95_ms"]["last_3_min"] <= 1.5 * figures["p95_ms"]["first_3_min"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3))
    ax = fig.add_subplot()
    for k in ("harness", "locust", "portal"):
        if k in frame:
            ax.plot(frame.index / 60, frame[k], label=k)
    ax.set_xlabel("wall minutes")
    ax.set_ylabel("RSS, MB")
    ax.legend()
    fig.savefig(out.with_suffix(".png"), dpi=96, bbox_inches="tight")
    print(json.dumps({k: v for k, v in figures.items() if k != "curve"}, indent=1))
    print(out_text.strip().splitlines()[-3:] if out_text.strip() else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

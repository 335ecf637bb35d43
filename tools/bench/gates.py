#!/usr/bin/env python3
"""Benchmark: judging gates on the HDR latency log of a 2-hour real-time stage.

Generates the ``latency.jsonl`` such a stage leaves (720 intervals of 10 s,
21 request types, 90 requests per type and interval: ~1.36 million
requests), then measures in this process: building ``summary.json``'s
``latency`` block (every row decoded once), and judging seven gates of every
window kind (whole, ``last 30m``, ``every 10m``, a filter by name) in one
pass; plus the peak memory (``ru_maxrss``). This is what the end of a
rehearsal-night stage and ``rehearse gate`` cost.

    python3 tools/bench/gates.py [--out reports/bench/gates.json]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, publish  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402

from rehearsal.plan.gate_language import parse_gate  # noqa: E402
from rehearsal.results.gates import evaluate  # noqa: E402
from rehearsal.results.latency import stage_latency  # noqa: E402
from rehearsal.results.figures import gate_data  # noqa: E402

GATES = ["p95_ms <= 800", "p99_ms over every 10m <= 2000", "error_rate < 1%", 'p95_ms{name="GET /api/x3"} <= 500',
         "p95_ms over last 30m <= 700", "rps >= 100", "max_ms < 60000"]


def generate(stage_dir: Path, intervals: int = 720, types: int = 21, per: int = 90) -> int:
    rng = random.Random(1)
    start = 1_000_000.0
    with (stage_dir / "latency.jsonl").open("w") as f:
        f.write(json.dumps({"start": start, "interval_s": 10, "time_scale": 1}) + "\n")
        for k in range(intervals):
            for i in range(types):
                h = HdrHistogram(1, 3_600_000_000, 3)
                for _ in range(per):
                    h.record_value(int(rng.lognormvariate(11, 0.8)))
                f.write(json.dumps({"t0": start + 10 * k, "t": start + 10 * (k + 1), "name": f"GET /api/x{i}",
                                    "tag": "citizen", "count": per, "failures": 0,
                                    "hdr": h.encode().decode("ascii")}) + "\n")
    return intervals * types * per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench" / "gates.json"))
    args = ap.parse_args()
    stage_dir = Path(tempfile.mkdtemp(prefix="bench-gates-")) / "stages" / "s"
    stage_dir.mkdir(parents=True)
    requests = generate(stage_dir)
    t = time.perf_counter()
    latency = stage_latency(stage_dir / "latency.jsonl")
    summary_s = time.perf_counter() - t
    assert latency is not None and latency["total"]["count"] == requests
    t = time.perf_counter()
    results = evaluate([parse_gate(e) for e in GATES], gate_data(stage_dir, {"name": "s"}, 1.0))
    gates_s = time.perf_counter() - t
    publish({"machine": machine(), "requests": requests,
             "latency_log_mb": round((stage_dir / "latency.jsonl").stat().st_size / 1e6, 1),
             "summary_latency_s": round(summary_s, 2), "seven_gates_s": round(gates_s, 2),
             "gates": {r.expr: r.observed for r in results},
             "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}, args.out)


if __name__ == "__main__":
    main()

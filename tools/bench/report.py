#!/usr/bin/env python3
"""Benchmark: building the report of a 2-hour stage with 1,000+ sessions.

Generates the run directory such a stage leaves (real time, time scale 1):
2 hours of Locust per-second history for 25 request types (~2 million
requests in all), the 2-second time series, markers, and a ledger of
100,000 dossiers (~700,000 events) over the 168 units; then builds the
report in a fresh process and measures its wall time and peak memory
(``ru_maxrss`` of the child). Targets (issue 4): at most 20 s and 1.5 GB.

    python3 tools/bench/report.py [--dossiers 100000] [--out reports/bench/report.json]

Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import publish  # noqa: E402
from rehearsal.shared.catalogue import load_catalogue  # noqa: E402
from rehearsal.shared.wards import load_units  # noqa: E402

NAMES = [("GET", "/api/dossiers/[id]"), ("GET", "/api/officer/queue"), ("GET", "/api/procedures/[code]"),
         ("GET", "/api/procedures?q"), ("GET", "/pay/[id]"), ("POST", "/api/auth/logout"),
         ("POST", "/api/auth/officer"), ("POST", "/api/auth/vneid/otp"), ("POST", "/api/auth/vneid/verify"),
         ("POST", "/api/dossiers"), ("POST", "/api/dossiers/[id]/payment"), ("POST", "/api/dossiers/[id]/supplement")]
NAMES += [("POST", f"/api/officer/dossiers/[id]/{a}") for a in
          ("decide", "process", "receive", "refuse-intake", "request-supplement", "return", "take-back", "transfer")]
NAMES += [("GET", f"/api/extra/{i}") for i in range(25 - len(NAMES))]
STAGE = "full-25-06"
DURATION_S = 7200


def generate(run_dir: Path, dossiers: int, seed: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    units = [u.code for u in load_units()]
    procedures = [p.code for p in load_catalogue().procedures[:300]]
    sdir = run_dir / "stages" / STAGE
    sdir.mkdir(parents=True)
    (run_dir / "ledger").mkdir()
    t0 = 1_750_000_000.0
    rps_total = 2_000_000 / DURATION_S  # ~278 req/s: 2 million requests in two hours
    # Locust's per-second history: one row per request type per second, plus Aggregated.
    with (sdir / "locust_stats_history.csv").open("w") as f:
        f.write("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
                "99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
                "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
                "Total Average Content Size\n")
        totals = [0] * len(NAMES)
        for s in range(DURATION_S):
            ts = int(t0) + s
            for i, (method, name) in enumerate(NAMES):
                rps = rps_total / len(NAMES) * rng.uniform(0.7, 1.3)
                totals[i] += int(rps)
                p50 = rng.randint(3, 30)
                f.write(f"{ts},1336,{method},{name},{rps:.2f},0.00,{p50},{p50 + 2},{p50 + 4},{p50 + 6},{p50 + 20},"
                        f"{p50 + 60},{p50 + 100},{p50 + 140},{p50 + 300},{p50 + 400},{p50 + 500},{totals[i]},0,"
                        f"{p50},{p50 + 5}.0,1,900,512\n")
            f.write(f"{ts},1336,,Aggregated,{rps_total:.2f},0.00,12,15,18,20,40,90,130,170,400,500,900,"
                    f"{sum(totals)},0,12,17.0,1,900,512\n")
    with (sdir / "timeseries.jsonl").open("w") as f:
        for s in range(0, DURATION_S, 2):
            done = dossiers * s / DURATION_S
            f.write(json.dumps({"t": t0 + s, "users": 1336, "sessions_harness": 1300 + rng.randint(0, 30),
                                "sessions_portal": 1300 + rng.randint(0, 30), "submitted": int(done),
                                "complete": int(done * 0.96), "requests": int(rps_total * s), "failures": 0,
                                "rps": rps_total, "fail_per_s": 0.0, "portal_error": None}) + "\n")
    with (sdir / "markers.jsonl").open("w") as f:
        f.write(json.dumps({"t": t0 + 1800, "kind": "fault_start", "name": "slow", "fault": "latency"}) + "\n")
        f.write(json.dumps({"t": t0 + 2400, "kind": "fault_end", "name": "slow", "fault": "latency"}) + "\n")
    (sdir / "locust_failures.csv").write_text("Method,Name,Error,Occurrences,First Seen,Last Seen\n"
                                              "GET,/api/dossiers/[id],HTTP 503,12,0,0\n")
    events = 0
    unit_results: dict[str, dict] = {}
    with (run_dir / "ledger" / f"{STAGE}.jsonl").open("w") as f:
        for i in range(1, dossiers + 1):
            unit = rng.choice(units)
            t = t0 + rng.uniform(0, DURATION_S - 600)
            lines = [f'{{"t":{t:.3f},"kind":"submitted","stage":"{STAGE}","id":{i},"code":"H79.{unit}-{i}",'
                     f'"unit":{unit},"procedure":"{rng.choice(procedures)}","client_ref":"{i:032x}",'
                     f'"citizen":"079{i:09d}","home_unit":{unit},"attempt":1}}']
            for kind, status in (("received", 2), ("processing", 4), ("decided", 9), ("returned", 10)):
                t += rng.uniform(30, 300)
                lines.append(f'{{"t":{t:.3f},"kind":"{kind}","stage":"{STAGE}","id":{i},"unit":{unit},'
                             f'"officer":"cb{unit}-1","status":{status}}}')
            lines.append(f'{{"t":{t + 60:.3f},"kind":"seen_complete","stage":"{STAGE}","id":{i},"status":10}}')
            f.write("\n".join(lines) + "\n")
            events += len(lines)
            r = unit_results.setdefault(str(unit), {"submitted": 0, "complete": 0})
            r["submitted"] += 1
            r["complete"] += 1
    for r in unit_results.values():
        r["completion_rate"] = r["complete"] / r["submitted"]
        r["median_complete_s"] = 900.0
    requests = {f"{m} {n}": {"count": c, "failures": 0, "p50_ms": 12, "p95_ms": 90, "p99_ms": 170, "max_ms": 900}
                for (m, n), c in zip(NAMES, totals)}
    stage = {"name": STAGE, "verdict": "GO", "units": 168, "unit_codes": units,
             "sessions": {"peak_harness": 1330, "peak_portal": 1330},
             "dossiers": {"submitted": dossiers, "complete": dossiers, "lost": 0, "duplicated": 0, "inconsistent": 0,
                          "by_status": {"10": dossiers}},
             "completion_rate": 1.0, "completion_target": 0.96, "on_time_rate": 0.99, "units_below_target": [],
             "requests": requests, "requests_total": {"count": sum(totals), "failures": 0, "p50_ms": 12,
                                                      "p95_ms": 90, "p99_ms": 170, "max_ms": 900},
             "error_rate": 0.0, "gates": [], "lost_ids": [], "unit_results": unit_results,
             "duration_s": DURATION_S, "grace_s": 0, "faults": [], "markers": [], "cutover": None}
    summary = {"scenario": "bench", "run_id": "bench", "started_at": "2025-06-25T01:00:00Z",
               "finished_at": "2025-06-25T03:00:00Z", "time_scale": 1, "target": "reference", "verdict": "GO",
               "stages": [stage]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return {"history_rows": DURATION_S * (len(NAMES) + 1), "requests": sum(totals), "dossiers": dossiers,
            "ledger_events": events, "ledger_mb": round((run_dir / "ledger" / f"{STAGE}.jsonl").stat().st_size / 2**20, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dossiers", type=int, default=100_000)
    p.add_argument("--out", default=str(ROOT / "reports" / "bench" / "report.json"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        run_dir = Path(tmp) / "run"
        t = time.perf_counter()
        data = generate(run_dir, args.dossiers)
        gen_s = time.perf_counter() - t
        code = ("import sys, time, resource; t = time.perf_counter(); from rehearsal.report.page import build_report; "
                "p = build_report(sys.argv[1]); print(time.perf_counter() - t, "
                "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, p.stat().st_size)")
        proc = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, cwd=ROOT,
                              check=True)
        build_s, rss_kb, html_bytes = proc.stdout.split()
    figures = {**data, "generate_s": round(gen_s, 1), "build_s": round(float(build_s), 2),
               "peak_rss_mb": round(int(rss_kb) / 1024, 1), "html_kb": round(int(html_bytes) / 1024),
               "targets": {"build_s": 20, "peak_rss_mb": 1536},
               "machine": {"cpus": __import__("os").cpu_count()}}
    figures["pass"] = figures["build_s"] <= 20 and figures["peak_rss_mb"] <= 1536
    publish(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

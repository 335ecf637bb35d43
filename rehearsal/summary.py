"""`summary.json`: the run-directory contract's one object per run.

Built from what a stage left on disk (Locust's CSV stats, our time series,
the ledger) plus the reconciliation against the portal. The keys are the
contract of DESIGN.md and the README; add keys, never rename them.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from .gates import GateResult, evaluate
from .plan import Stage
from .reconcile import Reconciliation

DEFAULT_COMPLETION_TARGET = 0.96


def read_timeseries(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line after a kill
    return rows


def _num(value: str) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def read_locust_stats(path: Path) -> dict[str, dict[str, Any]]:
    """Locust's ``*_stats.csv`` as {name: {count, failures, p50_ms, p95_ms, p99_ms, max_ms}}."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = row["Name"] if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
            out[name] = {"count": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                         "p50_ms": _num(row["50%"]), "p95_ms": _num(row["95%"]),
                         "p99_ms": _num(row["99%"]), "max_ms": _num(row["Max Response Time"])}
    return out


def completion_target(stage: Stage) -> float:
    """The completion rate a unit must reach: the stage's completion gate, else 96%."""
    for gate in stage.gates:
        if gate.metric == "completion_rate" and gate.op in (">", ">="):
            return gate.threshold
    return DEFAULT_COMPLETION_TARGET


def portal_outages(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Windows in which the portal did not answer the harness's 2-second ``/api/stats`` poll.

    From the first failed poll to the first poll that worked again (or the
    last sample); ``seconds`` is wall time. The error seen first is kept.
    """
    out: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    for row in series:
        if row.get("portal_error"):
            if start is None:
                start = row
        elif start is not None:
            out.append({"from": start["t"], "to": row["t"], "seconds": round(row["t"] - start["t"], 1),
                        "error": start["portal_error"]})
            start = None
    if start is not None and series:
        out.append({"from": start["t"], "to": series[-1]["t"], "seconds": round(series[-1]["t"] - start["t"], 1),
                    "error": start["portal_error"]})
    return out


def _workers(series: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Distributed runs: the most workers connected, and those that went missing (None when local)."""
    rows = [r for r in series if "workers" in r]
    if not rows:
        return None
    lost = sorted({w for r in rows for w in r.get("workers_lost", [])})
    first_lost = next((r["t"] for r in rows if r.get("workers_lost")), None)
    return {"peak": max(r["workers"] for r in rows), "lost": lost, "first_lost_at": first_lost}


def read_markers(path: Path) -> list[dict[str, Any]]:
    """The stage's fault and cutover markers (``markers.jsonl``), torn last line ignored."""
    return read_timeseries(path)


def stage_summary(stage: Stage, stage_dir: Path, rec: Reconciliation | None, *,
                  finished: bool, cutover: dict[str, Any] | None = None,
                  counts: dict[str, int] | None = None) -> dict[str, Any]:
    """One stage's entry of ``summary.json``; ``verdict`` is INCOMPLETE if it did not finish.

    `cutover` is `rehearsal.cutover.cutover_summary`'s figures; `counts` the
    ledger's event counts by kind (for dropped arrivals and absences).
    """
    counts = counts or {}
    series = read_timeseries(stage_dir / "timeseries.jsonl")
    stats = read_locust_stats(stage_dir / "locust_stats.csv")
    total = stats.pop("Aggregated", {"count": 0, "failures": 0, "p50_ms": None, "p95_ms": None,
                                     "p99_ms": None, "max_ms": None})
    peak_harness = max((r.get("sessions_harness") or 0 for r in series), default=0)
    peak_portal = max((r.get("sessions_portal") or 0 for r in series), default=0)
    error_rate = total["failures"] / total["count"] if total["count"] else 0.0
    target = completion_target(stage)
    units_below = []
    if rec is not None:
        for code in stage.units:
            unit = rec.units.get(code)
            rate = unit.completion_rate if unit else None
            if rate is not None and rate < target:
                units_below.append(code)
    metrics: dict[str, float | None] = {
        "completion_rate": rec.completion_rate if rec else None,
        "on_time_rate": rec.on_time_rate if rec else None,
        "sessions_peak_harness": peak_harness, "sessions_peak_portal": peak_portal,
        "requests": total["count"], "failures": total["failures"], "error_rate": error_rate,
        "p50_ms": total["p50_ms"], "p95_ms": total["p95_ms"], "p99_ms": total["p99_ms"],
        "max_ms": total["max_ms"],
        "lost_dossiers": len(rec.lost) if rec else None,
        "duplicated_dossiers": rec.duplicated if rec else None,
        "submitted_dossiers": rec.submitted if rec else None,
        "complete_dossiers": rec.complete if rec else None,
        "interruption_s": cutover.get("interruption_s") if cutover else None,
        "migration_found_rate": cutover.get("migration_found_rate") if cutover else None,
        "arrivals_dropped": counts.get("arrival_dropped", 0),
    }
    gates: list[GateResult] = evaluate(stage.gates, metrics)
    if not finished or rec is None:
        verdict = "INCOMPLETE"
    else:
        verdict = "GO" if all(g.passed for g in gates) else "NO-GO"
    return {
        "name": stage.name,
        "verdict": verdict,
        "units": len(stage.units),
        "unit_codes": list(stage.units),
        "sessions": {"peak_harness": peak_harness, "peak_portal": peak_portal},
        "dossiers": {"submitted": rec.submitted if rec else 0, "complete": rec.complete if rec else 0,
                     "lost": len(rec.lost) if rec else 0, "duplicated": rec.duplicated if rec else 0,
                     "inconsistent": len(rec.inconsistent) if rec else 0,
                     "by_status": {str(k): v for k, v in sorted(rec.by_status.items())} if rec else {}},
        "completion_rate": rec.completion_rate if rec else 0.0,
        "completion_target": target,
        "on_time_rate": rec.on_time_rate if rec else None,
        "units_below_target": units_below,
        "requests": stats,
        "requests_total": total,
        "error_rate": error_rate,
        "gates": [g.as_dict() for g in gates],
        "lost_ids": rec.lost[:10_000] if rec else [],
        "unit_results": {str(k): v.as_dict() for k, v in sorted(rec.units.items())} if rec else {},
        "duration_s": stage.duration_s, "grace_s": stage.grace_s,
        "faults": [{"name": f.name, "kind": f.kind, "at_s": f.at_s, "for_s": f.for_s,
                    **({"units": list(f.units)} if f.kind == "absence" else {})} for f in stage.faults],
        "markers": read_markers(stage_dir / "markers.jsonl"),
        "cutover": cutover,
        "arrivals_dropped": counts.get("arrival_dropped", 0),
        "portal_outages": portal_outages(series),
        "workers": _workers(series),
    }


def run_verdict(stages: list[dict[str, Any]], *, complete: bool) -> str:
    """GO only if every stage ran and is GO."""
    if not complete or not stages or any(s["verdict"] == "INCOMPLETE" for s in stages):
        return "INCOMPLETE"
    return "GO" if all(s["verdict"] == "GO" for s in stages) else "NO-GO"

"""`summary.json`: the run-directory contract's one object per run.

Built from what a stage left on disk (Locust's CSV stats, our time series,
the ledger) plus the reconciliation against the portal. The keys are the
contract of DESIGN.md and the README; add keys, never rename them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..plan import Stage
from ..plan.gate_language import Gate
from .completion import completion_intervals
from .figures import gate_data, run_gate_data  # noqa: F401  (run_gate_data: the runner judges run gates)
from .gates import GateData, GateResult, evaluate, verdict_of
from .generator_share import mark_generator
from .latency import read_latency, stage_latency
from .reconcile import Reconciliation
from .runbook import runbook_reason
from .server_latency import add_server_figures
from .stage_files import read_abort, read_locust_stats, read_markers, read_timeseries
from .starved import mark_starved, stage_starved
from .sync import read_sync_steps, sessions_by_system, sync_summary

#: Most codes a stage keeps per list in ``summary.json`` (lost, not delivered, unsynced).
MAX_CODES = 10_000


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


def two_systems_figures(rec: Reconciliation | None, stage_dir: Path, series: list[dict[str, Any]],
                        time_scale: float) -> dict[str, Any]:
    """The keys a stage reconciled against two systems adds (`rehearsal.results.threeway`), and ``sync``.

    ``sync`` is always there (``unknown`` when nothing was measured); the
    dossier keys only for a two-system reconciliation: a single portal has
    nothing to be unsynced with, and the report says unknown.
    """
    steps = rec.sync if rec is not None else None
    lags = steps.lags if steps is not None else read_sync_steps(stage_dir)
    out: dict[str, Any] = {"sync": sync_summary(lags, series, time_scale=time_scale, steps=steps,
                                                error=rec.national_error if rec is not None else None)}
    if rec is None or not rec.two_systems:
        return out
    out.update(completion_rate_national=rec.completion_rate_national,
               lost_codes=rec.lost_codes[:MAX_CODES],
               not_delivered_codes=(rec.not_delivered or [])[:MAX_CODES],
               unsynced_codes=(rec.unsynced or [])[:MAX_CODES])
    out["dossiers"] = {"lost": len(rec.lost_codes),
                       "not_delivered": None if rec.not_delivered is None else len(rec.not_delivered),
                       "unsynced": None if rec.unsynced is None else len(rec.unsynced),
                       "complete_national": rec.complete_national, "withdrawn_national": rec.withdrawn_national}
    return out


def judge_stage(gates: tuple[Gate, ...] | list[Gate], data: GateData, *, baseline: dict[str, Any] | None,
                baseline_name: str | None, aborted: dict[str, Any] | None = None) -> list[GateResult]:
    """The stage's gates; the gate that aborted the stage stays failed whatever the figures say now, and a
    gate judged on a span in which the harness was starved says so (`rehearsal.results.starved`)."""
    results = evaluate(gates, data, baseline=baseline, baseline_name=baseline_name)
    if aborted:
        results = [GateResult(r.name, r.expr, aborted.get("observed", r.observed), "failed",
                              aborted.get("expected", r.expected),
                              f"aborted the stage at {aborted.get('at_s', 0):.0f} s (simulated)"
                              + (f"; {aborted['detail']}" if aborted.get("detail") else ""))
                   if r.name == aborted.get("gate") else r for r in results]
    results = mark_starved(gates, results, data)  # a figure measured while the harness was starved says so
    return mark_generator(gates, results, data)  # and one that is mostly the harness's own time


def stage_summary(stage: Stage, stage_dir: Path, rec: Reconciliation | None, *,
                  finished: bool, cutover: dict[str, Any] | None = None,
                  counts: dict[str, int] | None = None, time_scale: float = 1.0,
                  baseline: dict[str, Any] | None = None, baseline_name: str | None = None) -> dict[str, Any]:
    """One stage's entry of ``summary.json``; ``verdict`` is INCOMPLETE if it did not finish.

    `cutover` is `rehearsal.results.cutover.cutover_summary`'s figures; `counts` the
    ledger's event counts by kind (for dropped arrivals and absences);
    `baseline` the stored baseline's figures for this stage (gate key -> value).
    Request figures come from our HDR latency log when there is one (exact
    percentiles, merged across workers), else from Locust's CSV.
    """
    counts = counts or {}
    series = read_timeseries(stage_dir / "timeseries.jsonl")
    stats = read_locust_stats(stage_dir / "locust_stats.csv")
    total = stats.pop("Aggregated", {"count": 0, "failures": 0, "p50_ms": None, "p95_ms": None,
                                     "p99_ms": None, "max_ms": None})
    latency = stage_latency(stage_dir / "latency.jsonl")
    if latency is not None:
        if stage.citizens.arrival_rate_per_min:
            latency["basis"] = "open model: each visit's first request from its arrival's intended time"
        keys = ("count", "failures", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms")
        stats = {name: {k: f[k] for k in keys} for name, f in latency["requests"].items()}
        total = {k: latency["total"][k] for k in keys}
    peak_harness = max((r.get("sessions_harness") or 0 for r in series), default=0)
    peak_portal = max((r.get("sessions_portal") or 0 for r in series), default=0)
    error_rate = total["failures"] / total["count"] if total["count"] else 0.0
    target = stage.completion_target
    units_below = []
    if rec is not None:
        for code in stage.units:
            unit = rec.units.get(code)
            rate = unit.completion_rate if unit else None
            if rate is not None and rate < target:
                units_below.append(code)
    out: dict[str, Any] = {
        "name": stage.name,
        "verdict": "INCOMPLETE",
        "units": len(stage.units),
        "unit_codes": list(stage.units),
        "sessions": {"peak_harness": peak_harness, "peak_portal": peak_portal,
                     "by_system": sessions_by_system(series)},
        "dossiers": {"submitted": rec.submitted if rec else 0, "complete": rec.complete if rec else 0,
                     "lost": len(rec.lost) if rec else 0, "duplicated": rec.duplicated if rec else 0,
                     "inconsistent": len(rec.inconsistent) if rec else 0,
                     "withdrawn": rec.withdrawn if rec else 0,
                     "by_status": {str(k): v for k, v in sorted(rec.by_status.items())} if rec else {}},
        "completion_rate": rec.completion_rate if rec else 0.0,
        "completion_target": target,
        "reconciled": rec is not None,
        "on_time_rate": rec.on_time_rate if rec else None,
        "units_below_target": units_below,
        "requests": stats,
        "requests_total": total,
        "latency": latency,
        "error_rate": error_rate,
        "gates": [],
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
        "starved": stage_starved(stage_dir, series),
    }
    both = two_systems_figures(rec, stage_dir, series, time_scale)
    out["dossiers"].update(both.pop("dossiers", {}))
    out.update(both)
    out.update(completion_intervals(out, series))  # every completion rate with its 95 % interval
    add_server_figures(out, stage_dir, read_latency(stage_dir / "latency.jsonl").rows)  # the systems' own side
    aborted = read_abort(stage_dir)
    if aborted:
        out["aborted"] = aborted
    gates = judge_stage(stage.gates, gate_data(stage_dir, out, time_scale), baseline=baseline,
                        baseline_name=baseline_name, aborted=aborted)
    out["gates"] = [g.as_dict() for g in gates]
    if (finished or aborted) and rec is not None:
        out["verdict"] = "GO" if verdict_of(gates) else "NO-GO"
    reason = runbook_reason(cutover)  # NO-GO (rolled back: why): the verdict key stays GO / NO-GO / INCOMPLETE
    if reason:
        out["verdict_reason"] = reason
    return out


def run_verdict(stages: list[dict[str, Any]], *, complete: bool, run_gates: list[dict[str, Any]] | None = None) -> str:
    """GO only if every stage ran and is GO and no gate on the whole run failed.

    A stage that a gate aborted makes the run NO-GO (not INCOMPLETE): it
    stopped because it had failed, and the stages after it were not run.
    """
    if any(s.get("aborted") for s in stages) and stages[-1]["verdict"] != "INCOMPLETE":
        return "NO-GO"
    if not complete or not stages or any(s["verdict"] == "INCOMPLETE" for s in stages):
        return "INCOMPLETE"
    if run_gates and not verdict_of(run_gates):
        return "NO-GO"
    return "GO" if all(s["verdict"] == "GO" for s in stages) else "NO-GO"


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous summary whole."""
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(run_dir / "summary.json")


def read_summary_file(run_dir: Path) -> dict[str, Any]:
    """A run directory's ``summary.json``; `RunError` if there is none or it is unreadable."""
    path = Path(run_dir) / "summary.json"
    if not Path(run_dir).is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read the run summary: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("stages"), list) \
            or not all(isinstance(s, dict) for s in summary["stages"]) or not isinstance(summary.get("verdict"), str):
        raise RunError(f"{path}: not a run summary (expected an object with 'verdict' and a list of 'stages')")
    return summary

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

from ..plan.gate_language import Gate
from .gates import GateData, GateResult, evaluate, verdict_of
from .latency import read_latency, stage_latency
from ..errors import RehearsalError, RunError
from ..plan import Plan, Stage, load_plan
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
        if gate.metric == "completion_rate" and gate.op in (">", ">=") and not gate.filters \
                and not gate.uses_baseline:
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


def stage_figures(stage: dict[str, Any]) -> dict[str, float | None]:
    """The whole-stage figures a gate reads from a stage's summary entry."""
    d = stage.get("dossiers", {})
    reconciled = stage.get("reconciled", bool(stage.get("unit_results")))
    cut = stage.get("cutover") or {}
    return {
        "completion_rate": stage.get("completion_rate") if reconciled else None,
        "on_time_rate": stage.get("on_time_rate"),
        "lost_dossiers": d.get("lost") if reconciled else None,
        "duplicated_dossiers": d.get("duplicated") if reconciled else None,
        "submitted_dossiers": d.get("submitted") if reconciled else None,
        "complete_dossiers": d.get("complete") if reconciled else None,
        "interruption_s": cut.get("interruption_s"),
        "migration_found_rate": cut.get("migration_found_rate"),
        "arrivals_dropped": stage.get("arrivals_dropped", 0),
    }


def gate_data(stage_dir: Path, stage: dict[str, Any], time_scale: float) -> GateData:
    """What a gate measures a finished stage by: its latency log, its time series, its summary entry."""
    log = read_latency(stage_dir / "latency.jsonl")
    series = read_timeseries(stage_dir / "timeseries.jsonl")
    start = log.start if log.start is not None else (series[0]["t"] if series else None)
    ends = [x for x in (log.end, series[-1]["t"] if series else None) if x is not None]
    return GateData(time_scale=log.time_scale or time_scale, start=start, end=max(ends) if ends else start,
                    latency_rows=log.rows, series=series, figures=stage_figures(stage),
                    units={int(k): v for k, v in (stage.get("unit_results") or {}).items()})


def run_gate_data(run_dir: Path, stages: list[dict[str, Any]], time_scale: float) -> GateData:
    """The whole run as one: requests and sessions of every stage on one clock, dossiers summed."""
    parts = [gate_data(run_dir / "stages" / s["name"], s, time_scale) for s in stages]
    starts = [p.start for p in parts if p.start is not None]
    ends = [p.end for p in parts if p.end is not None]
    units: dict[int, dict[str, Any]] = {}
    for p in parts:
        for code, u in p.units.items():
            mine = units.setdefault(code, {})
            for k in ("submitted", "complete", "lost", "finished", "on_time"):
                mine[k] = int(mine.get(k) or 0) + int(u.get(k) or 0)
    figures: dict[str, float | None] = {}
    for key in ("lost_dossiers", "duplicated_dossiers", "submitted_dossiers", "complete_dossiers",
                "arrivals_dropped"):
        values = [p.figures.get(key) for p in parts]
        figures[key] = None if not values or any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]
    sub, comp = figures["submitted_dossiers"], figures["complete_dossiers"]
    figures["completion_rate"] = comp / sub if sub and comp is not None else None
    fin = sum(int(u.get("finished") or 0) for u in units.values())
    figures["on_time_rate"] = sum(int(u.get("on_time") or 0) for u in units.values()) / fin if fin else None
    cuts = [p.figures.get("interruption_s") for p in parts if p.figures.get("interruption_s") is not None]
    figures["interruption_s"] = max(cuts) if cuts else None  # type: ignore[type-var]
    found = [p.figures.get("migration_found_rate") for p in parts
             if p.figures.get("migration_found_rate") is not None]
    figures["migration_found_rate"] = min(found) if found else None  # type: ignore[type-var]
    return GateData(time_scale=time_scale, start=min(starts) if starts else None, end=max(ends) if ends else None,
                    latency_rows=[r for p in parts for r in p.latency_rows],
                    series=[r for p in parts for r in p.series], figures=figures, units=units)


def judge_stage(gates: tuple[Gate, ...] | list[Gate], data: GateData, *, baseline: dict[str, Any] | None,
                baseline_name: str | None, aborted: dict[str, Any] | None = None) -> list[GateResult]:
    """The stage's gates; the gate that aborted the stage stays failed whatever the figures say now."""
    results = evaluate(gates, data, baseline=baseline, baseline_name=baseline_name)
    if aborted:
        results = [GateResult(r.name, r.expr, aborted.get("observed", r.observed), "failed",
                              aborted.get("expected", r.expected),
                              f"aborted the stage at {aborted.get('at_s', 0):.0f} s (simulated)"
                              + (f"; {aborted['detail']}" if aborted.get("detail") else ""))
                   if r.name == aborted.get("gate") else r for r in results]
    return results


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
    target = completion_target(stage)
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
        "sessions": {"peak_harness": peak_harness, "peak_portal": peak_portal},
        "dossiers": {"submitted": rec.submitted if rec else 0, "complete": rec.complete if rec else 0,
                     "lost": len(rec.lost) if rec else 0, "duplicated": rec.duplicated if rec else 0,
                     "inconsistent": len(rec.inconsistent) if rec else 0,
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
    }
    aborted = read_abort(stage_dir)
    if aborted:
        out["aborted"] = aborted
    gates = judge_stage(stage.gates, gate_data(stage_dir, out, time_scale), baseline=baseline,
                        baseline_name=baseline_name, aborted=aborted)
    out["gates"] = [g.as_dict() for g in gates]
    if (finished or aborted) and rec is not None:
        out["verdict"] = "GO" if verdict_of(gates) else "NO-GO"
    return out


def read_abort(stage_dir: Path) -> dict[str, Any] | None:
    """``abort.json``: the gate that stopped the stage early (written by the Locust master), or None."""
    path = stage_dir / "abort.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"gate": None, "detail": "abort.json unreadable"}


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


# -- a finished run, judged again ------------------------------------------------

def read_summary_file(run_dir: Path) -> dict[str, Any]:
    """A run directory's ``summary.json``; `RunError` if there is none or it is unreadable."""
    path = Path(run_dir) / "summary.json"
    if not Path(run_dir).is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read the run summary: {exc}") from None


def load_run_plan(run_dir: Path, summary: dict[str, Any], scenario: str | Path | None = None) -> Plan:
    """The plan a run used (its copy ``scenario.yaml``), or `scenario` to judge it by other gates."""
    source = Path(scenario) if scenario else Path(run_dir) / "scenario.yaml"
    if not scenario and not source.exists():
        raise RunError(f"{run_dir}: no scenario.yaml in the run directory (give one with --scenario)")
    return load_plan(source, time_scale=summary.get("time_scale"))


def run_figures_and_gates(run_dir: Path, summary: dict[str, Any],
                          plan: Plan | None = None) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Baseline figures of each stage and of the whole run (`rehearsal.results.baseline.figures_of`)."""
    from .baseline import figures_of

    if plan is None:
        try:
            plan = load_run_plan(run_dir, summary)
        except RehearsalError:
            plan = None
    scale = float(summary.get("time_scale") or 1.0)
    stages: dict[str, dict[str, float]] = {}
    for entry in summary.get("stages", []):
        gates = plan.stage(entry["name"]).gates if plan and entry["name"] in {s.name for s in plan.stages} else ()
        stages[entry["name"]] = figures_of(gate_data(Path(run_dir) / "stages" / entry["name"], entry, scale), gates)
    run = figures_of(run_gate_data(Path(run_dir), summary.get("stages", []), scale), plan.gates if plan else ())
    return stages, run


def judge_run(run_dir: Path, summary: dict[str, Any], plan: Plan, *, baseline: dict[str, Any] | None = None,
              complete: bool = True) -> dict[str, Any]:
    """`summary` with every gate judged again (by `plan`'s gates, against `baseline`) and its verdicts redone.

    Reconciled figures come from the summary; requests and sessions from the
    stage directories. A stage that did not finish stays INCOMPLETE; the gate
    that aborted a stage stays failed.
    """
    name = baseline.get("name") if baseline else None
    scale = float(summary.get("time_scale") or plan.time_scale)
    out = {**summary, "stages": []}
    known = {s.name: s for s in plan.stages}
    for entry in summary.get("stages", []):
        entry = dict(entry)
        stage = known.get(entry["name"])
        if stage is not None:
            data = gate_data(Path(run_dir) / "stages" / stage.name, entry, scale)
            base = (baseline or {}).get("stages", {}).get(stage.name) if baseline else None
            results = judge_stage(stage.gates, data, baseline=base if baseline else None, baseline_name=name,
                                  aborted=entry.get("aborted"))
            if baseline is not None and base is None:
                results = [r if not any(g.name == r.name and g.uses_baseline for g in stage.gates) else
                           GateResult(r.name, r.expr, r.observed, "skipped", "",
                                      f"baseline {name!r} has no stage {stage.name!r}") for r in results]
            entry["gates"] = [r.as_dict() for r in results]
            if entry.get("verdict") != "INCOMPLETE" or entry.get("aborted"):
                entry["verdict"] = "GO" if verdict_of(results) else "NO-GO"
        out["stages"].append(entry)
    run_results = judge_stage(plan.gates, run_gate_data(Path(run_dir), out["stages"], scale),
                              baseline=(baseline or {}).get("run") if baseline else None, baseline_name=name)
    out["gates"] = [r.as_dict() for r in run_results]
    if name:
        out["baseline"] = name
    out["verdict"] = run_verdict(out["stages"], complete=complete and summary.get("verdict") != "INCOMPLETE",
                                 run_gates=out["gates"])
    return out

"""The figures gates and baselines read: a stage's (or the whole run's) `GateData`, and a baseline's figure set.

`gate_data` gathers what one finished stage left (latency log, time series,
its summary entry); `run_gate_data` puts every stage of a run on one clock;
`figures_of` measures every figure a baseline keeps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..plan.gate_language import BOUNDS, GATE_METRICS, INTERVAL_METRICS, Gate
from ..shared.status import completion_rate
from .gates import GateData, measure
from .latency import read_latency
from .runbook import runbook_figures
from .server_latency import server_gate_fields
from .stage_files import read_timeseries
from .starved import stage_windows
from .sync import read_sync_steps

#: Figures a baseline keeps per request type.
REQUEST_FIGURES = ("requests", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


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
        # A summary from before withdrawals existed has no key: nothing was withdrawn then.
        "withdrawn_dossiers": d.get("withdrawn", 0) if reconciled else None,
        "interruption_s": cut.get("interruption_s"),
        "migration_found_rate": cut.get("migration_found_rate"),
        **runbook_figures(stage.get("cutover")),  # the cutover's runbook (`rehearsal.results.runbook`)
        "arrivals_dropped": stage.get("arrivals_dropped", 0),
        # Two systems (`rehearsal.results.threeway`); absent from a single portal's run: not measured.
        "unsynced_dossiers": d.get("unsynced") if reconciled else None,
        "not_delivered_dossiers": d.get("not_delivered") if reconciled else None,
        "completion_rate_national": stage.get("completion_rate_national") if reconciled else None,
    }


def _sync_unknown(stage: dict[str, Any], rows: list[dict[str, Any]] | None) -> str:
    """Why a stage's sync lag cannot be judged ("" when it can)."""
    sync = stage.get("sync")
    if rows is None or not isinstance(sync, dict):
        return "sync lag unknown: no sync_steps.jsonl (a run before the two systems)"
    if sync.get("unknown"):
        return "sync lag unknown: " + str(sync.get("error") or "the national portal gives no receipt times")
    return ""


def gate_data(stage_dir: Path, stage: dict[str, Any], time_scale: float) -> GateData:
    """What a gate measures a finished stage by: its latency log, its time series, its summary entry."""
    log = read_latency(stage_dir / "latency.jsonl")
    series = read_timeseries(stage_dir / "timeseries.jsonl")
    start = log.start if log.start is not None else (series[0]["t"] if series else None)
    ends = [x for x in (log.end, series[-1]["t"] if series else None) if x is not None]
    sync_rows = read_sync_steps(stage_dir)
    return GateData(time_scale=log.time_scale or time_scale, start=start, end=max(ends) if ends else start,
                    latency_rows=log.rows, series=series, figures=stage_figures(stage),
                    units={int(k): v for k, v in (stage.get("unit_results") or {}).items()},
                    starved=stage_windows(stage_dir, series), sync_rows=sync_rows or [],
                    sync_unknown=_sync_unknown(stage, sync_rows),
                    codes={"unsynced_dossiers": stage.get("unsynced_codes") or [],
                           "not_delivered_dossiers": stage.get("not_delivered_codes") or []},
                    **server_gate_fields(stage_dir, log.rows))


def run_gate_data(run_dir: Path, stages: list[dict[str, Any]], time_scale: float) -> GateData:
    """The whole run as one: requests and sessions of every stage on one clock, dossiers summed."""
    parts = [gate_data(run_dir / "stages" / s["name"], s, time_scale) for s in stages]
    starts = [p.start for p in parts if p.start is not None]
    ends = [p.end for p in parts if p.end is not None]
    units: dict[int, dict[str, Any]] = {}
    for p in parts:
        for code, u in p.units.items():
            mine = units.setdefault(code, {})
            for k in ("submitted", "complete", "lost", "finished", "on_time", "withdrawn"):
                mine[k] = int(mine.get(k) or 0) + int(u.get(k) or 0)
            if "unsynced" in u:  # two systems: their keys, and a few codes
                for k in ("unsynced", "not_delivered", "complete_national", "withdrawn_national"):
                    mine[k] = int(mine.get(k) or 0) + int(u.get(k) or 0)
                for k in ("unsynced_codes", "not_delivered_codes"):
                    mine[k] = [*mine.get(k, []), *(u.get(k) or [])]
    figures: dict[str, float | None] = {}
    for key in ("lost_dossiers", "duplicated_dossiers", "submitted_dossiers", "complete_dossiers",
                "withdrawn_dossiers", "arrivals_dropped", "unsynced_dossiers", "not_delivered_dossiers"):
        values = [p.figures.get(key) for p in parts]
        figures[key] = None if not values or any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]
    sub, comp = figures["submitted_dossiers"], figures["complete_dossiers"]
    figures["completion_rate"] = (completion_rate(int(comp), int(sub), int(figures["withdrawn_dossiers"] or 0))
                                  if sub is not None and comp is not None else None)
    figures["completion_rate_national"] = None
    if figures["unsynced_dossiers"] is not None and sub is not None:
        nat = sum(int(u.get("complete_national") or 0) for u in units.values())
        figures["completion_rate_national"] = completion_rate(
            nat, int(sub), sum(int(u.get("withdrawn_national") or 0) for u in units.values()))
    fin = sum(int(u.get("finished") or 0) for u in units.values())
    figures["on_time_rate"] = sum(int(u.get("on_time") or 0) for u in units.values()) / fin if fin else None
    cuts = [p.figures.get("interruption_s") for p in parts if p.figures.get("interruption_s") is not None]
    figures["interruption_s"] = max(cuts) if cuts else None  # type: ignore[type-var]
    found = [p.figures.get("migration_found_rate") for p in parts
             if p.figures.get("migration_found_rate") is not None]
    figures["migration_found_rate"] = min(found) if found else None  # type: ignore[type-var]
    return GateData(time_scale=time_scale, start=min(starts) if starts else None, end=max(ends) if ends else None,
                    latency_rows=[r for p in parts for r in p.latency_rows],
                    series=[r for p in parts for r in p.series], figures=figures, units=units,
                    starved=[w for p in parts for w in p.starved],
                    sync_rows=sorted((r for p in parts for r in p.sync_rows), key=lambda r: r["t"]),
                    # Unknown for the run only when no stage measured it (a stage that did counts).
                    sync_unknown="" if any(not p.sync_unknown for p in parts) else
                    next((p.sync_unknown for p in parts), "sync lag unknown: no stage"),
                    codes={k: [c for p in parts for c in p.codes.get(k, ())]
                           for k in ("unsynced_dossiers", "not_delivered_dossiers")},
                    server_rows=sorted((r for p in parts for r in p.server_rows), key=lambda r: r["t"]),
                    server_unknown="" if any(not p.server_unknown for p in parts) else
                    next((p.server_unknown for p in parts), "server side unknown: no stage"))


def _probe(metric: str, filters: tuple[tuple[str, str], ...] = ()) -> Gate:
    return Gate(expr=metric, metric=metric, op=">=", threshold=0.0, name=metric, filters=filters)


def figures_of(data: GateData, gates: Iterable[Gate] = ()) -> dict[str, float]:
    """Every figure a baseline keeps for one stage (or the run): standard ones, per request type, the gates'."""
    out: dict[str, float] = {}
    probes = [_probe(m) for m in GATE_METRICS]
    probes += [replace(_probe(m), bound=b) for m in sorted(INTERVAL_METRICS) for b in BOUNDS]  # rates' intervals
    for name in sorted({r["name"] for r in data.latency_rows}):
        probes += [_probe(m, (("name", name),)) for m in REQUEST_FIGURES]
    probes += [g for g in gates]
    for gate in probes:
        if gate.key in out:
            continue
        value, _ = measure(gate, data)
        if value is not None and math.isfinite(value):
            out[gate.key] = round(float(value), 6)
    return out

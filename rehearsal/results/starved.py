"""The windows in which the harness was starved, and the gates whose figure comes from one.

A row of the stage's time series (every 2 s, the worst of every Locust
process) or of the harness's own ``harness.jsonl`` is starved when
`rehearsal.shared.starvation.starved_signals` finds a signal over its threshold. It covers the
interval since the row before it; a stall longer than that reaches further
back (an event loop 4 s late at ``lag_max_at`` was stuck for the 4 s before
it). Spans that overlap or touch merge into windows, ``{from, to, seconds,
why}`` in epoch seconds, which a stage's summary lists under ``starved``.

A gate is judged on a span of the stage: the whole of it, its last D, or
the worst of its ``every D`` windows (the one its detail names). When that
span overlaps a starved window the gate keeps its status (a latency gate that
failed while the harness was starved is still failed: the portal may be slow
too) but says so: ``starved_s`` on its record and a note in its detail, which
the CLI, ``rehearse gate`` and JUnit print. Counts of dossiers the portal
holds (lost, duplicated, found after a migration) are exact whatever the
harness's CPU, and are not marked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..plan.gate_language import Gate
from ..shared.formats import clock, duration, number
from ..shared.jsonl import read_jsonl
from ..shared.starvation import describe, starved_signals
from .gates import GateData, GateResult
from .windows import WindowedFigure

#: Wall seconds a time-series row covers when it is the first one.
SAMPLE_S = 2.0
#: Figures starvation cannot make wrong: what the portal holds, counted afterwards.
EXACT_METRICS = frozenset({"lost_dossiers", "duplicated_dossiers", "migration_found_rate"})


#: What each source of rows is judged by: the time series carries every Locust process's signals, the
#: harness's own rows its lateness and the machine's pressure (still there if Locust stopped writing).
SERIES_SIGNALS = ("lag_max_ms", "lag_p99_ms", "runqueue_share", "cpu_pressure")
HARNESS_SIGNALS = ("late_ms", "cpu_pressure")
#: A stall's length, and the key of when it ended.
_ENDED_AT = {"lag_max_ms": "lag_max_at", "late_ms": "late_at"}


def _spans(rows: Iterable[dict[str, Any]], signals: Sequence[str]) -> list[tuple[float, float, dict[str, float]]]:
    """(from, to, signals over their threshold) of every starved row, in time order.

    A stall is placed where it happened: from when it began to when it
    ended (``lag_max_at``, ``late_at``), even before the row before it. The
    other signals are shares of the row's interval: they cover all of it.
    """
    out = []
    prev: float | None = None
    for row in rows:
        t = float(row["t"])
        found = starved_signals(row, signals)
        spans = []
        for key in found:
            at = row.get(_ENDED_AT.get(key, ""))
            if at:
                spans.append((float(at) - found[key] / 1000.0, float(at)))
            else:
                spans.append((prev if prev is not None else t - SAMPLE_S, t))
        if spans:
            out.append((min(a for a, _ in spans), max(b for _, b in spans), found))
        prev = t
    return out


def starved_windows(series: Iterable[dict[str, Any]], harness: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The starved windows of a stage, from its time series and the harness's rows; ``why`` has each
    signal's worst value in the window."""
    spans = sorted(_spans(series, SERIES_SIGNALS) + _spans(harness, HARNESS_SIGNALS), key=lambda s: s[:2])
    merged: list[list[Any]] = []
    for start, end, found in spans:
        if merged and start <= merged[-1][1] + 1e-6:
            last = merged[-1]
            last[1] = max(last[1], end)
            for key, value in found.items():
                last[2][key] = max(value, last[2].get(key, value))
        else:
            merged.append([start, end, dict(found)])
    return [{"from": round(a, 3), "to": round(b, 3), "seconds": round(b - a, 1), "why": describe(found)}
            for a, b, found in merged]


def stage_windows(stage_dir: Path, series: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stage's starved windows, from its time series and the harness's ``harness.jsonl`` beside it."""
    return starved_windows(series, read_jsonl(stage_dir / "harness.jsonl"))


def stage_starved(stage_dir: Path, series: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A stage's ``starved`` entry in ``summary.json``: its windows, their seconds and their share of the stage."""
    windows = stage_windows(stage_dir, series)
    seconds = round(sum(w["seconds"] for w in windows), 1)
    span = series[-1]["t"] - series[0]["t"] + SAMPLE_S if series else 0.0
    return {"windows": windows, "seconds": seconds, "share": round(min(1.0, seconds / span), 4) if span > 0 else 0.0}


def untrustworthy(stages: Iterable[dict[str, Any]]) -> str:
    """``measurement untrustworthy: harness starved for 16.5 s`` over these stages' summaries; '' if never."""
    seconds = sum(float((s.get("starved") or {}).get("seconds") or 0) for s in stages)
    return f"measurement untrustworthy: harness starved for {number(round(seconds, 1))} s" if seconds else ""


def overlap(windows: Iterable[dict[str, Any]], a: float, b: float) -> float:
    """Seconds of the starved `windows` inside [a, b]."""
    return sum(max(0.0, min(b, w["to"]) - max(a, w["from"])) for w in windows)


def _judged_spans(gate: Gate, detail: str, data: GateData) -> list[tuple[float, float]]:
    """The wall span(s) the gate's figure comes from (several when an ``every`` label is ambiguous)."""
    start, end = data.start, data.end if data.end is not None else data.start
    if start is None or end is None:
        return []
    if gate.window == "last":
        return [(end - gate.window_s / data.time_scale, end)]
    if gate.window == "every":
        fig = WindowedFigure(gate, start=start, time_scale=data.time_scale, end=end)
        scale, found = data.time_scale, []
        for i in range(fig.windows or 0):
            a, b = i * gate.window_s, (i + 1) * gate.window_s
            if i == (fig.windows or 0) - 1:
                b = max(b, fig.end_s or b)  # the last window takes the remainder, as WindowedFigure does
            if detail.split(";")[0] == f"worst window {clock(a)}-{clock(b)}":
                found.append((start + a / scale, start + b / scale))
        if found:
            return found
    return [(start, end)]


def mark_starved(gates: Sequence[Gate], results: list[GateResult], data: GateData) -> list[GateResult]:
    """`results` with every gate judged on a span that overlaps a starved window marked (status unchanged)."""
    if not data.starved:
        return results
    by_name = {g.name: g for g in gates}
    out = []
    for r in results:
        gate = by_name.get(r.name)
        seconds = 0.0
        if gate is not None and gate.metric not in EXACT_METRICS and r.status != "skipped":
            seconds = max((overlap(data.starved, a, b) for a, b in _judged_spans(gate, r.detail, data)), default=0.0)
        if seconds > 0:
            note = f"harness starved {duration(round(seconds, 1))} in this window: measurement untrustworthy"
            r = dataclasses.replace(r, starved_s=round(seconds, 1),
                                    detail=f"{r.detail}; {note}" if r.detail else note)
        out.append(r)
    return out

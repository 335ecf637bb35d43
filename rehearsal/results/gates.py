"""Gates: measure what each gate names, over its window, and judge it. Exit codes are decided at the edge.

`evaluate(gates, data, baseline=...)` is the one judge, used after a stage
(`rehearsal.results.summary`), by `rehearse gate RUN_DIR` on a finished run, and, for
gates with ``abort_on_fail``, while the stage runs (`LiveGates`, fed by the
master's latency recorder and time series).

What a gate measures (`rehearsal.plan.gate_language` parses it):

- requests: the stage's HDR latency log (`rehearsal.results.latency`), the rows its
  filter selects, merged over its window;
- sessions: the 2-second time series, the most sessions seen in the window;
- dossiers: the stage's reconciliation (``summary.json``), summed over the
  units its filter selects;
- the rest (duplicates, cutover, dropped arrivals): the stage's summary.

Windows (``whole``, ``last D``, ``every D``) are `rehearsal.results.windows`'s.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from ..plan.gate_language import DOSSIER_METRICS, REQUEST_METRICS, SESSION_METRICS, Gate
from ..shared.formats import number
from ..shared.status import completion_rate
from ..shared.wards import units_by_code
from .windows import WindowedFigure

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class GateResult:
    """One gate against one stage (or the run)."""

    name: str
    expr: str
    observed: float | None
    status: str
    """``passed``, ``failed``, or ``skipped`` (a baseline gate with no baseline figure)."""
    expected: str = ""
    """The comparison with its threshold resolved, e.g. ``<= 880`` or ``<= 880 (baseline 800 × 1.1)``."""
    detail: str = ""
    """Where the figure comes from when it helps: the worst window, no data, the abort."""
    starved_s: float | None = None
    """Seconds the harness was starved inside the span judged (`rehearsal.results.starved`); None if not."""

    @property
    def passed(self) -> bool | None:
        return None if self.status == "skipped" else self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expr": self.expr, "observed": self.observed, "passed": self.passed,
                "status": self.status, "expected": self.expected, "detail": self.detail, "starved_s": self.starved_s}


@dataclass
class GateData:
    """What a stage (or the whole run) left to measure gates on."""

    time_scale: float
    start: float | None
    """Wall-clock start (epoch seconds); None if nothing was recorded."""
    end: float | None
    latency_rows: Sequence[dict[str, Any]] = ()
    """`rehearsal.results.latency` rows, in time order."""
    series: Sequence[dict[str, Any]] = ()
    """Time-series rows (``t``, ``sessions_harness``, ``sessions_portal``), in time order."""
    figures: Mapping[str, float | None] = field(default_factory=dict)
    """Whole-stage figures of the metrics that are counted once (dossiers, cutover, dropped arrivals)."""
    starved: Sequence[dict[str, Any]] = ()
    """Windows in which the harness was starved (`rehearsal.results.starved`): gates judged on them are marked."""
    units: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    """Per unit: submitted, complete, lost, on_time, finished, withdrawn (for dossier filters)."""


def _unit_matches(gate: Gate, code: int) -> bool:
    want = dict(gate.filters)
    if "unit" in want and code != int(want["unit"]):
        return False
    if "group" in want or "type" in want:
        unit = units_by_code().get(code)
        if unit is None:
            return False
        if "group" in want and unit.former_province.value != want["group"]:
            return False
        if "type" in want and unit.type.value != want["type"]:
            return False
    return True


def _dossier_value(gate: Gate, data: GateData) -> tuple[float | None, str]:
    if not gate.filters:
        return data.figures.get(gate.metric), ""
    chosen = [u for code, u in data.units.items() if _unit_matches(gate, int(code))]
    if not chosen:
        return None, "no unit of the stage matches the filter"

    def total(k: str) -> int:
        return sum(int(u.get(k) or 0) for u in chosen)
    m = gate.metric
    if m == "completion_rate":
        return completion_rate(total("complete"), total("submitted"), total("withdrawn")), f"{len(chosen)} units"
    if m == "on_time_rate":
        fin = total("finished")
        return (total("on_time") / fin if fin else None), f"{len(chosen)} units"
    key = {"submitted_dossiers": "submitted", "complete_dossiers": "complete", "lost_dossiers": "lost",
           "withdrawn_dossiers": "withdrawn"}[m]
    return float(total(key)), f"{len(chosen)} units"


def measure_all(gates: Sequence[Gate], data: GateData) -> list[tuple[float | None, str]]:
    """The figure each gate names in `data`, and where it comes from.

    Request gates share one pass over the latency log: each row is decoded
    once, whatever the number of gates, and only the rows a ``last`` window can
    still use are decoded at all.
    """
    out: list[tuple[float | None, str] | None] = [None] * len(gates)
    figures: list[tuple[int, Gate, WindowedFigure]] = []
    for i, gate in enumerate(gates):
        if gate.metric in DOSSIER_METRICS:
            out[i] = _dossier_value(gate, data)
        elif gate.metric not in REQUEST_METRICS and gate.metric not in SESSION_METRICS:
            out[i] = (data.figures.get(gate.metric), "")
        elif data.start is None:
            out[i] = (None, "nothing was recorded")
        else:
            figures.append((i, gate, WindowedFigure(gate, start=data.start, time_scale=data.time_scale,
                                                    end=data.end)))
    end = data.end if data.end is not None else data.start
    requests = [(g, f) for _, g, f in figures if g.metric in REQUEST_METRICS]
    for row in data.latency_rows if requests else ():
        decoded = None
        for gate, fig in requests:
            if gate.window == "last" and end is not None and row["t"] <= end - fig.window_wall + 1e-6:
                continue
            if gate.matches_request(row["name"], row.get("tag")):
                if decoded is None:
                    decoded = HdrHistogram.decode(row["hdr"])
                fig.feed(row, decoded)
    for _, gate, fig in figures:
        if gate.metric in SESSION_METRICS:
            for row in data.series:
                fig.feed(row)
    for i, _, fig in figures:
        out[i] = fig.finish(end if end is not None else fig.start)
    return [x if x is not None else (None, "not measured") for x in out]


def measure(gate: Gate, data: GateData) -> tuple[float | None, str]:
    """The figure `gate` names in `data`, and where it comes from."""
    return measure_all([gate], data)[0]


def judge(gate: Gate, observed: float | None, detail: str, *, baseline: Mapping[str, Any] | None,
          baseline_name: str | None) -> GateResult:
    """Compare one observed figure with the gate's threshold (fixed or from the baseline)."""
    if gate.uses_baseline:
        if baseline is None:
            return GateResult(gate.name, gate.expr, observed, "skipped", "",
                              "no baseline given (--baseline NAME, or baseline: in the scenario)")
        base = baseline.get(gate.key)
        if base is None:
            return GateResult(gate.name, gate.expr, observed, "skipped", "",
                              f"baseline {baseline_name!r} has no figure for {gate.key}")
        threshold = gate.threshold_from(float(base))
        how = {"=": "", "*": f" × {gate.baseline_arg:g}", "+": f" + {gate.baseline_arg:g}",
               "-": f" - {gate.baseline_arg:g}"}[gate.baseline_op or "="]
        expected = (f"{gate.op} {number(threshold, grouped=False)} "
                    f"(baseline {number(float(base), grouped=False)}{how})")
    else:
        threshold = gate.threshold
        expected = f"{gate.op} {number(threshold, grouped=False)}"
    if observed is None:
        return GateResult(gate.name, gate.expr, None, "failed", expected, detail or "not measured")
    ok = bool(_OPS[gate.op](observed, threshold))
    return GateResult(gate.name, gate.expr, observed, "passed" if ok else "failed", expected, detail)


def evaluate(gates: Iterable[Gate], data: GateData, *, baseline: Mapping[str, Any] | None = None,
             baseline_name: str | None = None) -> list[GateResult]:
    """Each gate against `data`; `baseline` is the baseline's figures for this stage (gate key -> value)."""
    gates = list(gates)
    return [judge(g, *m, baseline=baseline, baseline_name=baseline_name)
            for g, m in zip(gates, measure_all(gates, data))]


def verdict_of(results: Iterable[GateResult | Mapping[str, Any]]) -> bool:
    """True if no gate failed (skipped ones do not count)."""
    return not any((r.status if isinstance(r, GateResult) else gate_status(r)) == "failed" for r in results)


class LiveGates:
    """The stage's ``abort_on_fail`` gates, judged as the stage runs (in the Locust master or local runner).

    Fed every latency interval and every time-series sample; `check` returns
    the first gate that fails once its grace is over, or None. A gate on a
    whole-stage or ``last`` figure aborts when that figure fails at a check
    (as k6's ``abortOnFail`` does); an ``every`` gate when a window that has
    closed fails, since that window can no longer get better.
    """

    def __init__(self, gates: Iterable[Gate], *, start: float, time_scale: float) -> None:
        self.start = start
        self.time_scale = time_scale
        self.figures = [(g, WindowedFigure(g, start=start, time_scale=time_scale))
                        for g in gates if g.abort_on_fail and not g.uses_baseline]

    def __bool__(self) -> bool:
        return bool(self.figures)

    def feed_latency(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        for gate, fig in self.figures:
            if gate.metric in REQUEST_METRICS:
                for row in rows:
                    if gate.matches_request(row["name"], row.get("tag")):
                        fig.feed(row)

    def feed_sample(self, row: dict[str, Any]) -> None:
        for gate, fig in self.figures:
            if gate.metric in SESSION_METRICS:
                fig.feed(row)

    def check(self, now: float) -> GateResult | None:
        for gate, fig in self.figures:
            if (now - self.start) * self.time_scale < gate.abort_grace_s:
                continue
            observed, detail = fig.value(now)
            if observed is None:
                continue
            result = judge(gate, observed, detail, baseline=None, baseline_name=None)
            if result.status == "failed":
                return result
        return None


# -- a judged gate, as summary.json keeps it -------------------------------------------

#: How each status prints on a command line.
GATE_MARKS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def gate_status(record: Mapping[str, Any]) -> str:
    """``passed``, ``failed`` or ``skipped`` of a gate record (older summaries have only ``passed``)."""
    return str(record.get("status") or ("passed" if record.get("passed") else "failed"))


def gate_text(record: Mapping[str, Any], *, label: str = "name") -> str:
    """``NAME: observed X, expected Y (detail)``; with ``label="expr"`` the expression leads instead."""
    text = f"{record.get(label, '')}: observed {number(record.get('observed'), 'not measured')}"
    if record.get("expected"):
        text += f", expected {record['expected']}"
    if record.get("detail"):
        text += f" ({record['detail']})"
    return text


def gate_lines(records: Iterable[Mapping[str, Any]], indent: str = "  ") -> list[str]:
    """One line per gate for a terminal: ``PASS  name: observed …, expected … (detail)``."""
    return [f"{indent}{GATE_MARKS.get(gate_status(g), gate_status(g))}  {gate_text(g)}" for g in records]

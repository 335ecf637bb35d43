"""Gates: measure what each gate names, over its window, and judge it. Exit codes are decided at the edge.

`evaluate(gates, data, baseline=...)` is the one judge, used after a stage
(`rehearsal.results.summary`), by `rehearse gate RUN_DIR` on a finished run, and, for
gates with ``abort_on_fail``, while the stage runs (`LiveGates`, fed by the
master's latency recorder and time series).

What a gate measures (`rehearsal.plan.gate_language` parses it):

- requests: the stage's HDR latency log (`rehearsal.results.latency`), the rows its
  filter selects, merged over its window;
- sessions and the sync backlog: the 2-second time series, the most seen in
  the window;
- sync lag (``sync_lag_p50_s`` …): the stage's matched steps
  (``sync_steps.jsonl``, `rehearsal.results.sync`), the lags of the steps
  taken in the window, wall seconds;
- dossiers: the stage's reconciliation (``summary.json``), summed over the
  units its filter selects; ``unsynced_dossiers`` and
  ``not_delivered_dossiers`` name their first codes in the gate's detail, so a
  NO-GO says which dossiers;
- the rest (duplicates, cutover, dropped arrivals): the stage's summary.

Windows (``whole``, ``last D``, ``every D``) are `rehearsal.results.windows`'s.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hdrh.histogram import HdrHistogram

from ..plan.gate_language import DOSSIER_METRICS, INTERVAL_METRICS, REQUEST_METRICS, SERVER_METRICS, Gate
from ..plan.runbook import RUNBOOK_METRICS
from ..shared.formats import number
from ..shared.status import completion_rate
from ..shared.wards import units_by_code
from .completion import bound_value, summed_counts, thin_note
from .server_latency import measure_server
from .runbook import runbook_value
from .windows import SYNC_LAG_METRICS, WindowedFigure, is_series_metric

#: Dossier metrics of two systems: the unit_results key each sums (and the codes a gate names).
TWO_SYSTEM_KEYS = {"unsynced_dossiers": "unsynced", "not_delivered_dossiers": "not_delivered"}
#: Codes a gate's detail names before "+N more".
NAMED_CODES = 5

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
    few_dossiers: bool = False
    """A completion rate that passed on a 95 % interval wider than `rehearsal.results.completion.WIDE_INTERVAL`."""
    harness_ms: float | None = None
    """Client − server ms of the figure when the span judged is mostly the harness's own
    (`rehearsal.results.generator_share`); None if not."""

    @property
    def passed(self) -> bool | None:
        return None if self.status == "skipped" else self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expr": self.expr, "observed": self.observed, "passed": self.passed,
                "status": self.status, "expected": self.expected, "detail": self.detail, "starved_s": self.starved_s,
                "harness_ms": self.harness_ms, "few_dossiers": self.few_dossiers}


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
    """Per unit: submitted, complete, lost, on_time, finished, withdrawn (for dossier filters); with two systems
    also unsynced, not_delivered, complete_national, withdrawn_national and a few codes."""
    sync_rows: Sequence[dict[str, Any]] = ()
    """Matched sync steps ``{t, lag_s}`` in time order (`rehearsal.results.sync`)."""
    sync_unknown: str = ""
    """Why sync lag cannot be measured (a run before the two systems, no receipt times); "" when it can."""
    codes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Codes behind a whole-stage count (``unsynced_dossiers``, ``not_delivered_dossiers``), for the detail."""
    server_rows: Sequence[dict[str, Any]] = ()
    """The systems' own latency rows, named as our requests (`rehearsal.results.server_latency`), in time order."""
    server_unknown: str = ""
    """Why the server side cannot be judged (a real target without ``/api/timings``); "" when it can."""


def named_codes(count: float | None, codes: Sequence[str]) -> str:
    """``3 dossiers: A, B, C`` (the first few, ``+N more``); "" when there are none."""
    if not count:
        return ""
    shown = list(codes[:NAMED_CODES])
    more = int(count) - len(shown)
    noun = "dossier" if int(count) == 1 else "dossiers"
    return f"{int(count)} {noun}: " + ", ".join(shown) + (f" +{more} more" if more > 0 and shown else "")


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


def _rate_counts(gate: Gate, data: GateData) -> tuple[int, int, int] | str:
    """(complete, submitted, withdrawn) behind a completion rate gate, or why there are none."""
    m, f = gate.metric, data.figures
    national = m == "completion_rate_national"
    if not gate.filters and f.get(m) is None:
        return "not reconciled with the national portal" if national else "not reconciled"
    if not gate.filters and not national:  # the stage's (or run's) own counts: exact without unit_results
        return (int(f.get("complete_dossiers") or 0), int(f.get("submitted_dossiers") or 0),
                int(f.get("withdrawn_dossiers") or 0))
    chosen = [u for code, u in data.units.items() if _unit_matches(gate, int(code))]
    if not chosen:
        return "no unit of the stage matches the filter"
    if national and any("complete_national" not in u for u in chosen):
        return "not reconciled with the national portal"
    return summed_counts(chosen, national=national)


def _bound_value(gate: Gate, data: GateData) -> tuple[float | None, str]:
    """``completion_rate.lower`` …: a bound of the rate's 95 % interval, from the same counts as the rate."""
    counts = _rate_counts(gate, data)
    return (None, counts) if isinstance(counts, str) else bound_value(str(gate.bound), *counts)


def _few_dossiers(gate: Gate, result: GateResult, data: GateData) -> GateResult:
    """A completion rate gate that passed on an interval wider than `WIDE_INTERVAL` says so: a GO on too few."""
    if result.status != "passed" or gate.bound or gate.metric not in INTERVAL_METRICS:
        return result
    counts = _rate_counts(gate, data)
    note = "" if isinstance(counts, str) else thin_note(*counts)
    return replace(result, detail="; ".join(x for x in (result.detail, note) if x), few_dossiers=True) if note \
        else result


def _dossier_value(gate: Gate, data: GateData) -> tuple[float | None, str]:
    m = gate.metric
    if gate.bound:
        return _bound_value(gate, data)
    if not gate.filters:
        value = data.figures.get(m)
        if value is None and (m in TWO_SYSTEM_KEYS or m == "completion_rate_national"):
            return None, "not reconciled with the national portal"
        return value, named_codes(value, data.codes.get(m, ())) if m in TWO_SYSTEM_KEYS else ""
    chosen = [u for code, u in data.units.items() if _unit_matches(gate, int(code))]
    if not chosen:
        return None, "no unit of the stage matches the filter"

    def total(k: str) -> int:
        return sum(int(u.get(k) or 0) for u in chosen)
    if m in TWO_SYSTEM_KEYS or m == "completion_rate_national":
        if any("unsynced" not in u for u in chosen):
            return None, "not reconciled with the national portal"
        if m == "completion_rate_national":
            return (completion_rate(total("complete_national"), total("submitted"), total("withdrawn_national")),
                    f"{len(chosen)} units")
        key = TWO_SYSTEM_KEYS[m]
        codes = [c for u in chosen for c in u.get(f"{key}_codes") or []]
        count = float(total(key))
        return count, "; ".join(x for x in (f"{len(chosen)} units", named_codes(count, codes)) if x)
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
    for i, value in measure_server([(i, g) for i, g in enumerate(gates) if g.metric in SERVER_METRICS], data):
        out[i] = value  # the systems' own timings (`rehearsal.results.server_latency`)
    for i, gate in enumerate(gates):
        if out[i] is not None:
            continue
        if gate.metric in SYNC_LAG_METRICS and data.sync_unknown:
            out[i] = (None, data.sync_unknown)
        elif gate.metric in SYNC_LAG_METRICS or is_series_metric(gate.metric):
            start = data.start if data.start is not None else (data.sync_rows[0]["t"] if data.sync_rows else None)
            if start is None:
                out[i] = (None, "nothing was recorded")
            else:
                figures.append((i, gate, WindowedFigure(gate, start=start, time_scale=data.time_scale,
                                                        end=data.end)))
        elif gate.metric in DOSSIER_METRICS or gate.metric in TWO_SYSTEM_KEYS \
                or gate.metric == "completion_rate_national":
            out[i] = _dossier_value(gate, data)
        elif gate.metric in RUNBOOK_METRICS:
            out[i] = runbook_value(gate, data.figures)  # a phase of the cutover's runbook
        elif gate.metric not in REQUEST_METRICS:
            out[i] = (data.figures.get(gate.metric), "")
        elif data.start is None:
            out[i] = (None, "nothing was recorded")
        else:
            figures.append((i, gate, WindowedFigure(gate, start=data.start, time_scale=data.time_scale,
                                                    end=data.end)))
    end = data.end if data.end is not None else data.start
    requests = [(g, f) for _, g, f in figures if g.metric in REQUEST_METRICS and g.metric not in SYNC_LAG_METRICS
                and not is_series_metric(g.metric)]
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
        if gate.metric in SYNC_LAG_METRICS:
            for row in data.sync_rows:
                fig.feed(row)
        elif is_series_metric(gate.metric):
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
    return [_few_dossiers(g, judge(g, *m, baseline=baseline, baseline_name=baseline_name), data)
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
            if gate.metric in REQUEST_METRICS and gate.metric not in SYNC_LAG_METRICS \
                    and not is_series_metric(gate.metric):
                for row in rows:
                    if gate.matches_request(row["name"], row.get("tag")):
                        fig.feed(row)

    def feed_sample(self, row: dict[str, Any]) -> None:
        for gate, fig in self.figures:
            if is_series_metric(gate.metric) and gate.metric not in SYNC_LAG_METRICS:
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

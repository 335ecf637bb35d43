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

Windows: ``whole`` is the stage; ``last D`` the intervals that ended in its
last D; ``every D`` cuts the stage into D-long windows from its start (a
remainder shorter than D joins the window before it) and the worst window
is the figure: the highest for ``<``/``<=``, the lowest for ``>``/``>=``.
D is simulated time, like every duration of a plan.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from ..plan.gate_language import DOSSIER_METRICS, REQUEST_METRICS, SESSION_METRICS, Gate
from ..shared.formats import number
from .latency import Tally
from ..shared.wards import units_by_code

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

    @property
    def passed(self) -> bool | None:
        return None if self.status == "skipped" else self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "expr": self.expr, "observed": self.observed, "passed": self.passed,
                "status": self.status, "expected": self.expected, "detail": self.detail}


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
    units: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    """Per unit: submitted, complete, lost, on_time, finished (for dossier filters)."""


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1 else f"{x:,.6g}".replace(",", "")


def _worst(op: str, values: list[tuple[float, str]]) -> tuple[float, str]:
    """The window that counts: the lowest for ``>``/``>=``, else the highest."""
    if op in (">", ">="):
        return min(values, key=lambda v: v[0])
    return max(values, key=lambda v: v[0])


def _request_value(metric: str, t: Tally, seconds: float) -> float | None:
    if metric == "requests":
        return float(t.count)
    if metric == "failures":
        return float(t.failures)
    if metric == "rps":
        return t.count / seconds if seconds > 0 else None
    if metric == "error_rate":
        return t.failures / t.count if t.count else None
    if not t.count:
        return None
    f = t.figures()
    return f[metric]


class WindowedFigure:
    """One gate's figure, fed rows in time order, for its window; used live and after the stage.

    Requests are fed as latency rows, sessions as time-series rows. For
    ``every``, `value()` is the worst window that has closed; `finish(end)`
    also judges the last one. When `end` is known up front (after the stage),
    the windows are the stage's full D-long windows, a shorter remainder joining
    the last of them; a window with no rows at all counts as no requests.
    """

    def __init__(self, gate: Gate, *, start: float, time_scale: float, end: float | None = None) -> None:
        self.gate = gate
        self.start = start
        self.window_wall = gate.window_s / time_scale if gate.window != "whole" else 0.0
        self.sessions = gate.metric in SESSION_METRICS
        self.key = "sessions_harness" if gate.metric == "sessions_peak_harness" else "sessions_portal"
        self.whole: list[Any] | None = None
        self.recent: deque[tuple[float, Any]] = deque()
        self.closed: list[tuple[float, str]] = []
        self.index = 0
        self.cur: list[Any] | None = None
        self.last_t = start
        self.seen: set[int] = set()
        self.windows: int | None = None
        self.end_s = (end - start) * time_scale if end is not None else None
        if end is not None and gate.window == "every":
            self.windows = max(1, int(math.floor((end - start) / self.window_wall + 1e-9)))

    # -- feeding --------------------------------------------------------------
    def _merge(self, acc: list[Any] | None, item: Any, decoded: Any = None) -> list[Any]:
        """Add one item (a session count, or a latency row) to an accumulator ([max] or [Tally])."""
        if self.sessions:
            if acc is None:
                return [item]
            acc[0] = max(acc[0], item)
            return acc
        if acc is None:
            acc = [Tally()]
        acc[0].add_row(item, decoded)
        return acc

    def feed(self, row: dict[str, Any], decoded: Any = None) -> None:
        """One latency row (requests) or time-series row (sessions) that the gate's filter selects.

        `decoded` is the row's histogram when the caller decoded it once for several gates.
        """
        t = float(row["t"])
        if self.sessions:
            value = row.get(self.key)
            if value is None:
                return
            item: Any = float(value)
        else:
            item = row
        self.last_t = max(self.last_t, t)
        if self.gate.window == "whole":
            self.whole = self._merge(self.whole, item, decoded)
        elif self.gate.window == "last":
            # One accumulator per interval, not per row: memory stays at the window's intervals.
            if self.recent and self.recent[-1][0] == t:
                self._merge(self.recent[-1][1], item, decoded)
            else:
                self.recent.append((t, self._merge(None, item, decoded)))
            while self.recent and self.recent[0][0] <= t - self.window_wall + 1e-6:
                self.recent.popleft()
        else:
            index = max(0, int(math.floor((t - self.start - 1e-6) / self.window_wall)))
            if self.windows is not None:
                index = min(index, self.windows - 1)
            if self.cur is not None and index != self.index:
                self._close(self.index, self.cur)
                self.cur = None
            if self.cur is None:
                for empty in range(index):  # earlier windows nothing was fed in
                    if empty not in self.seen:
                        self._close(empty, None)
                self.index = index
            self.cur = self._merge(self.cur, item, decoded)

    def _close(self, index: int, acc: list[Any] | None) -> None:
        self.seen.add(index)
        a, b = index * self.gate.window_s, (index + 1) * self.gate.window_s
        if self.windows is not None and self.end_s is not None and index == self.windows - 1:
            b = max(b, self.end_s)  # the last window takes the remainder
        value = self._value_of(acc, (b - a) * self.window_wall / self.gate.window_s) if acc is not None \
            else self._empty_value()
        if value is not None:
            self.closed.append((value, f"window {_clock(a)}-{_clock(b)}"))

    def _empty_value(self) -> float | None:
        return 0.0 if self.gate.metric in ("requests", "failures", "rps") else None

    def _value_of(self, acc: list[Any] | None, seconds: float) -> float | None:
        if acc is None:
            return self._empty_value()
        if self.sessions:
            return acc[0]
        return _request_value(self.gate.metric, acc[0], seconds)

    # -- reading --------------------------------------------------------------
    def value(self, now: float | None = None) -> tuple[float | None, str]:
        """The figure so far and where it comes from."""
        now = self.last_t if now is None else now
        if self.gate.window == "whole":
            value = self._value_of(self.whole, max(0.0, now - self.start))
            return value, "" if value is not None else "nothing measured"
        if self.gate.window == "last":
            acc: list[Any] | None = None
            for _, part in self.recent:
                if acc is None:
                    acc = [part[0]] if self.sessions else [_copy(part[0])]
                elif self.sessions:
                    acc[0] = max(acc[0], part[0])
                else:
                    acc[0].add(part[0])
            value = self._value_of(acc, min(self.window_wall, max(0.0, now - self.start)))
            return value, "" if value is not None else "nothing measured in the window"
        if not self.closed:
            return None, "no window has closed yet"
        value, label = _worst(self.gate.op, self.closed)
        return value, f"worst {label}"

    def finish(self, end: float) -> tuple[float | None, str]:
        """The figure over the whole stage (for ``every``, every window judged, the last one included)."""
        if self.gate.window != "every":
            return self.value(end)
        if self.cur is not None:
            self._close(self.index, self.cur)
            self.cur = None
        last = self.windows if self.windows is not None else \
            max(1, int(math.floor((end - self.start) / self.window_wall + 1e-9)))
        for index in range(last):
            if index not in self.seen:
                self._close(index, None)
        if not self.closed:
            return None, "nothing measured"
        value, label = _worst(self.gate.op, self.closed)
        return value, f"worst {label}"


def _copy(t: Tally) -> Tally:
    out = Tally()
    out.add(t)
    return out


def _clock(seconds: float) -> str:
    m = int(round(seconds)) // 60
    return f"{m // 60}h{m % 60:02d}" if m >= 60 else f"{m}m"


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
        sub = total("submitted")
        return (total("complete") / sub if sub else None), f"{len(chosen)} units"
    if m == "on_time_rate":
        fin = total("finished")
        return (total("on_time") / fin if fin else None), f"{len(chosen)} units"
    key = {"submitted_dossiers": "submitted", "complete_dossiers": "complete", "lost_dossiers": "lost"}[m]
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
        expected = f"{gate.op} {_fmt(threshold)} (baseline {_fmt(float(base))}{how})"
    else:
        threshold = gate.threshold
        expected = f"{gate.op} {_fmt(threshold)}"
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
    for r in results:
        status = r.status if isinstance(r, GateResult) else r.get("status", "passed" if r.get("passed") else "failed")
        if status == "failed":
            return False
    return True


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

"""A gate's figure over its window, fed rows in time order: the same code judges a stage live and afterwards.

Windows (`rehearsal.plan.gate_language`): ``whole`` is the stage; ``last D``
the intervals that ended in its last D; ``every D`` cuts the stage into
D-long windows from its start (a remainder shorter than D joins the window
before it) and the worst window is the figure: the highest for ``<``/``<=``,
the lowest for ``>``/``>=``. D is simulated time, like every duration of a plan.

Three kinds of rows are fed: latency rows (request metrics), time-series
rows (`SERIES_KEYS`: the most of a sampled count, sessions and the sync
backlog) and matched sync steps (`SYNC_LAG_METRICS`: ``{t, lag_s}`` rows of
``sync_steps.jsonl``, a percentile of the lags whose provincial step time
falls in the window). The two sets are named here, not only in the gate
language, so that judging does not depend on how the plan room groups them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ..plan.gate_language import SESSION_METRICS, Gate
from ..shared.formats import clock
from .latency import Tally

#: Sync lag gates (wall seconds) and the percentile each takes of the steps' lags (100: the max).
SYNC_LAG_METRICS: dict[str, float] = {"sync_lag_p50_s": 50.0, "sync_lag_p95_s": 95.0, "sync_lag_max_s": 100.0}
#: Gates on the most of a time-series count, and the series key each reads.
SERIES_KEYS: dict[str, str] = {"sessions_peak_harness": "sessions_harness", "sessions_peak_portal": "sessions_portal",
                               "sync_backlog_max": "sync_backlog"}


def is_series_metric(metric: str) -> bool:
    """Measured as the most of a 2-second time-series count (sessions, the sync backlog)."""
    return metric in SERIES_KEYS or metric in SESSION_METRICS


def _lag_value(metric: str, lags: list[float]) -> float | None:
    if not lags:
        return None
    ordered = sorted(lags)
    rank = max(1, math.ceil(SYNC_LAG_METRICS[metric] / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


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
        self.lags = gate.metric in SYNC_LAG_METRICS
        self.sessions = not self.lags and is_series_metric(gate.metric)
        self.key = SERIES_KEYS.get(gate.metric, "sessions_portal")
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
        """Add one item (a count, a lag or a latency row) to an accumulator ([max], [[lags]] or [Tally])."""
        if self.lags:
            if acc is None:
                return [[item]]
            acc[0].append(item)
            return acc
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
        if self.lags:
            lag = row.get("lag_s")
            if not isinstance(lag, (int, float)):
                return
            item: Any = float(lag)
        elif self.sessions:
            value = row.get(self.key)
            if value is None:
                return
            item = float(value)
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
            self.closed.append((value, f"window {clock(a)}-{clock(b)}"))

    def _empty_value(self) -> float | None:
        return 0.0 if self.gate.metric in ("requests", "failures", "rps") else None

    def _value_of(self, acc: list[Any] | None, seconds: float) -> float | None:
        if acc is None:
            return self._empty_value()
        if self.lags:
            return _lag_value(self.gate.metric, acc[0])
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
                    acc = [list(part[0])] if self.lags else [part[0]] if self.sessions else [_copy(part[0])]
                elif self.lags:
                    acc[0].extend(part[0])
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

"""The portal's own view of itself: active sessions and server-side request timings.

Both live in memory and are bounded: a session's last activity is a float per
token (never a write to SQLite per request), and each route's timings are a
fixed set of log-spaced buckets, from which percentiles are read to within
5 % (the bucket width), plus Prometheus's standard ``le`` buckets.

Each route's times also go into one HDR histogram per fixed interval
(microseconds, 3 significant digits: the same form as the harness's
``locustfiles/latency.py``, so the two merge), served by ``GET /api/timings``.
Intervals are one simulated minute held between 1 and 10 wall seconds (the
harness's rule) and start at whole multiples of their length in epoch
seconds, so every process of a system cuts them at the same instants.

A system served by several processes (``--processes``) keeps this view per
process and publishes it every second through `rehearsal.portal.peers`;
`active`, `merged_timings` and `intervals_since` then answer for all of them.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

if TYPE_CHECKING:
    from .peers import Peers

#: Fine buckets: upper bounds in ms, 5 % apart, from 0.05 ms to ~10 min.
_FINE = [0.05 * 1.05 ** i for i in range(int(math.log(600_000 / 0.05, 1.05)) + 2)]
#: Prometheus buckets (seconds): the harness exporter's, 5 ms to a minute (``/metrics``, `rehearsal.portal.metrics`).
PROM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: HDR range: 1 µs to one hour, 3 significant digits (the harness's own, locustfiles/latency.py).
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
#: Intervals kept in memory (and in the shared file): an hour at 10 s.
KEEP_INTERVALS = 360


def new_histogram() -> HdrHistogram:
    """An empty HDR histogram of the harness's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def interval_for(time_scale: float) -> float:
    """Wall seconds per interval: one simulated minute, between 1 and 10 wall seconds (the harness's rule)."""
    return min(10.0, max(1.0, 60.0 / time_scale))


@dataclass
class Timing:
    """One endpoint's timings."""

    count: int = 0
    errors: int = 0
    total_s: float = 0.0
    fine: list[int] = field(default_factory=lambda: [0] * (len(_FINE) + 1))
    prom: list[int] = field(default_factory=lambda: [0] * (len(PROM_BUCKETS) + 1))

    def add(self, seconds: float, error: bool) -> None:
        self.count += 1
        self.errors += error
        self.total_s += seconds
        self.fine[bisect.bisect_left(_FINE, seconds * 1000)] += 1
        self.prom[bisect.bisect_left(PROM_BUCKETS, seconds)] += 1

    def merge(self, other: Timing) -> None:
        """Add another process's timings of the same route."""
        self.count += other.count
        self.errors += other.errors
        self.total_s += other.total_s
        self.fine = [a + b for a, b in zip(self.fine, other.fine)]
        self.prom = [a + b for a, b in zip(self.prom, other.prom)]

    def percentile_ms(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.fine):
            seen += n
            if seen >= rank:
                return round(_FINE[min(i, len(_FINE) - 1)], 3)
        return round(_FINE[-1], 3)


#: One route's interval: [histogram, count, errors].
IntervalEntry = list[Any]


class LiveView:
    """Sessions seen and request timings, shared by every request of one process."""

    def __init__(self, active_window_s: float, interval_s: float = 10.0, timed: bool = True) -> None:
        self.active_window_s = active_window_s
        self.timed = timed
        self.interval_s = interval_s
        self.started = time.time()
        self._seen: dict[str, tuple[float, str]] = {}
        self.timings: dict[str, Timing] = {}
        #: Interval start (epoch s) -> route -> [histogram, count, errors].
        self.intervals: dict[float, dict[str, IntervalEntry]] = {}
        self._lock = threading.Lock()
        #: Set when the system runs as several processes: then what changed is kept until it is published.
        self.peers: Peers | None = None
        self.scope = "main"
        self.dirty_seen: dict[str, tuple[float, str]] = {}
        self.forgotten: set[str] = set()
        self.dirty_routes: set[str] = set()
        self.dirty_intervals: set[tuple[float, str]] = set()

    def touch(self, token: str, role: str) -> None:
        seen = self._seen[token] = (time.monotonic(), role)
        if self.peers is not None:
            self.dirty_seen[token] = seen

    def forget(self, token: str) -> None:
        self._seen.pop(token, None)
        if self.peers is not None:
            self.dirty_seen.pop(token, None)
            self.forgotten.add(token)

    def active(self) -> dict[str, int]:
        """Active sessions by role (of every process of the system); drops the ones idle for long."""
        now = time.monotonic()
        by_role = {"citizen": 0, "officer": 0}
        stale = []
        for token, (t, role) in list(self._seen.items()):
            if now - t <= self.active_window_s:
                by_role[role] = by_role.get(role, 0) + 1
            elif now - t > 10 * self.active_window_s:
                stale.append(token)
        for token in stale:
            self._seen.pop(token, None)
        if self.peers is not None:
            self.peers.publish(self)
            self.peers.gather()
            return {**by_role, **self.peers.active(self.scope, self.active_window_s)}
        return by_role

    def record(self, endpoint: str, seconds: float, error: bool) -> None:
        if not self.timed:
            return
        t0 = math.floor(time.time() / self.interval_s) * self.interval_s
        with self._lock:
            timing = self.timings.get(endpoint)
            if timing is None:
                timing = self.timings[endpoint] = Timing()
            timing.add(seconds, error)
            routes = self.intervals.get(t0)
            if routes is None:
                routes = self.intervals[t0] = {}
                for old in sorted(self.intervals)[:-KEEP_INTERVALS]:
                    del self.intervals[old]
            entry = routes.get(endpoint)
            if entry is None:
                entry = routes[endpoint] = [new_histogram(), 0, 0]
            entry[0].record_value(min(HIGHEST_US, max(LOWEST_US, int(seconds * 1_000_000))))
            entry[1] += 1
            entry[2] += error
            if self.peers is not None:
                self.dirty_routes.add(endpoint)
                self.dirty_intervals.add((t0, endpoint))

    def merged_timings(self) -> dict[str, Timing]:
        """Each route's timings since the start, of every process of the system."""
        if self.peers is None:
            return dict(self.timings)
        self.peers.publish(self)
        self.peers.gather()
        return self.peers.totals(self.scope)

    def intervals_since(self, since: float) -> dict[float, dict[str, IntervalEntry]]:
        """The intervals starting at or after `since` (epoch s), of every process, the current one included."""
        if self.peers is not None:
            self.peers.publish(self)
            self.peers.gather()
            return self.peers.intervals(self.scope, since)
        with self._lock:
            return {t0: {r: [e[0], e[1], e[2]] for r, e in routes.items()}
                    for t0, routes in self.intervals.items() if t0 >= since}

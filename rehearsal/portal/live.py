"""The portal's own view of itself: active sessions and server-side request timings.

Both live in memory and are bounded: a session's last activity is a float per
token (never a write to SQLite per request), and each endpoint's timings are
a fixed set of log-spaced buckets, from which percentiles are read to within
5 % (the bucket width), plus Prometheus's standard ``le`` buckets.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field

#: Fine buckets: upper bounds in ms, 5 % apart, from 0.05 ms to ~10 min.
_FINE = [0.05 * 1.05 ** i for i in range(int(math.log(600_000 / 0.05, 1.05)) + 2)]
#: Prometheus buckets (seconds).
PROM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class LiveView:
    """Sessions seen and request timings, shared by every request of one process."""

    def __init__(self, active_window_s: float) -> None:
        self.active_window_s = active_window_s
        self.started = time.time()
        self._seen: dict[str, tuple[float, str]] = {}
        self.timings: dict[str, Timing] = {}
        self._lock = threading.Lock()

    def touch(self, token: str, role: str) -> None:
        self._seen[token] = (time.monotonic(), role)

    def forget(self, token: str) -> None:
        self._seen.pop(token, None)

    def active(self) -> dict[str, int]:
        """Active sessions by role; drops the ones idle for long."""
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
        return by_role

    def record(self, endpoint: str, seconds: float, error: bool) -> None:
        with self._lock:
            timing = self.timings.get(endpoint)
            if timing is None:
                timing = self.timings[endpoint] = Timing()
            timing.add(seconds, error)

"""Whether this Locust process is starved: its event loop's lag and its wait for a CPU, per sample interval.

A ticker greenlet asks to sleep `TICK_S` and notes how much longer it slept:
that is how late every other greenlet of the process (a user timing its
request, the sampler, the gate watch) was woken too. Each reading (every
sample interval, `Telemetry`) gives the worst lag, when it ended and the
99th percentile, the process's run-queue wait as a share of the interval
(`rehearsal.shared.starvation.RunQueueClock`) and the machine's CPU pressure.
Workers send theirs to the master with their session count; the master keeps
the worst of every node (`worst`). The thresholds that call a reading
starved, and the measurements behind them, are in `rehearsal.shared.starvation`.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import math
import time
from typing import Any

import gevent

from rehearsal.shared.starvation import RunQueueClock, cpu_pressure

#: How often the ticker wakes: up to 200 lags per 2-second sample, so the p99 is the second or third worst.
TICK_S = 0.01
#: The signals one reading holds (all "worse when higher"); ``lag_max_at`` goes with ``lag_max_ms``.
SIGNALS = ("lag_max_ms", "lag_p99_ms", "runqueue_share", "cpu_pressure")


class StarvationProbe:
    """This process's loop lag and run-queue wait since the last reading."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.worst = (0.0, 0.0)  # (lag s, epoch time it ended)
        self.sleeping_since: float | None = None
        self.clock = RunQueueClock()
        self.greenlet: gevent.Greenlet | None = None

    def _tick(self) -> None:
        while True:
            self.sleeping_since = time.monotonic()
            gevent.sleep(TICK_S)
            self._note(time.monotonic() - self.sleeping_since - TICK_S)

    def _note(self, lag: float) -> None:
        lag = max(0.0, lag)
        self.lags.append(lag)
        if lag >= self.worst[0]:
            self.worst = (lag, time.time())

    def reading(self) -> dict[str, Any]:
        """The interval's figures since the last reading (then a new interval starts)."""
        if self.sleeping_since is not None:
            # The ticker may not have run yet after a stall that the caller already woke from: count it now.
            overdue = time.monotonic() - self.sleeping_since - TICK_S
            if overdue > TICK_S:
                self._note(overdue)
                self.sleeping_since = time.monotonic()
        lags, worst = sorted(self.lags), self.worst
        self.lags, self.worst = [], (0.0, 0.0)
        p99 = lags[max(0, math.ceil(0.99 * len(lags)) - 1)] if lags else None
        return {"lag_max_ms": round(worst[0] * 1000, 1) if lags else None,
                "lag_max_at": round(worst[1], 3) if lags else None,
                "lag_p99_ms": None if p99 is None else round(p99 * 1000, 1),
                "runqueue_share": self.clock.share(), "cpu_pressure": cpu_pressure()}

    def start(self) -> None:
        self.reading()  # the first interval starts now
        self.greenlet = gevent.spawn(self._tick)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None
        self.sleeping_since = None  # no ticker now: nothing is overdue


def worst(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst of several readings (nodes, or one node's several reports), signal by signal."""
    out: dict[str, Any] = {k: None for k in (*SIGNALS, "lag_max_at")}
    for r in readings:
        for key in SIGNALS:
            value = r.get(key)
            if value is not None and (out[key] is None or value > out[key]):
                out[key] = value
                if key == "lag_max_ms":
                    out["lag_max_at"] = r.get("lag_max_at")
    return out

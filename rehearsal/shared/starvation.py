"""Is the harness itself starved? The signals, how they are read, and the thresholds that say "starved".

A busy machine is not a slow portal: when the harness cannot run on time,
what it measures is its own delay (and, with the reference portal on the
same machine, the machine's) as much as the system's. Every sample interval
(2 s) carries, from every Locust process (`locustfiles.starvation`), the
worst of them kept by the master:

- ``lag_max_ms``, ``lag_p99_ms``: how late a 10 ms ticker greenlet woke, the
  worst time and the 99th percentile: every greenlet (a user reading its
  answer, the sampler, the gate watch) was that late too;
- ``runqueue_share``: the process's threads' time runnable but waiting for a
  CPU (Linux schedstat), as a share of the interval's wall time;
- ``cpu_pressure``: the machine's PSI ``some avg10`` (% of the last 10 s in
  which a runnable task waited; smoothed, so it trails a load by seconds);

and the harness process's own half-second loop adds ``late_ms``
(`rehearsal.run.stage`). An interval is starved when any signal reaches its
threshold in `THRESHOLDS`.

Chosen by measurement, not guessed: ``rehearse demo`` (1,486 users, 2-second
rows) on this project's 2-core machine, quiet, beside one busy core
(``python3 -c 'while 1: pass'``) and beside two, each with nothing else
running (load checked before each):

=============== ====================== ====================== ======================
signal          quiet: 3 runs, 185     1 hog: 3 runs, 181     2 hogs: 1 run, 51
                p50 / p90 / max        p10 / p25 / p50        p10 / p25 / p50
=============== ====================== ====================== ======================
lag max ms      4.9 / 10.5 / 257       6.5 / 8.9 / 14         14 / 16 / 34
lag p99 ms      3.2 / 5.8 / 12         4.6 / 6.7 / 9.2        9.6 / 13 / 20
run-queue share 0.009 / 0.045 / 0.060  0.097 / 0.19 / 0.24    0.12 / 0.20 / 0.29
CPU pressure %  0.9 / 5.7 / 30         12 / 20 / 28           38 / 52 / 72
harness late ms 0.4 / 1.5 / 7.2        max 7.4                max 4.8
demo p95 ms     7, 9, 10               44, 85, 155            1,054
=============== ====================== ====================== ======================

Runs made earlier while other sessions' test suites ran beside them (so
"quiet" was not, and "one hog" was more) gave: "quiet" run-queue share p90
0.12, max 0.35, in spells whose intervals' p95 was 85–377 ms against 5–12 ms
around them; "one hog" p50 0.37 and CPU pressure p50 61 %, demo p95 1.2 s;
"two hogs" p50 0.49 and 81 %, the worst loop lag 1,009 ms, demo p95 4.3 s
and NO-GO (completion 94.7 %): the issue's failure, reproduced.

So: a run-queue share of 0.10 is over every quiet interval (0.06 at most,
the ramp and the stop included) and at the one-hog p10; CPU pressure 40 %
is over the quiet maximum (30 %, a spike of something else while Locust
itself waited 6 %: the machine's pressure alone is not the harness's) and
under the two-hog median. The loop lags are stalls: a second once in an
interval is four times the quiet maximum (the stop of 1,486 users at once),
a quarter of a second at p99 twenty times, and either is more than most
latency gates allow; the harness's own loop gets the same second.
With these thresholds the quiet runs had 0 s starved; one hog 108–111 s
(88–90 % of the stage); two hogs 121 s (98 %); the runs beside other test
suites 12–17 s (10–14 %) "quiet", 111–125 s beside hogs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PRESSURE_PATH = Path("/proc/pressure/cpu")
TASKS_PATH = Path("/proc/self/task")

#: Signal -> the value from which a sample interval is starved (every signal is "worse when higher").
#: Chosen by measurement: see this module's docstring.
THRESHOLDS: dict[str, float] = {
    "lag_max_ms": 1000.0,      # a Locust event loop once late by a second: every request in flight timed that long
    "lag_p99_ms": 250.0,       # ... or late by a quarter of a second at its 99th percentile: always behind
    "runqueue_share": 0.10,    # a Locust process waited for a CPU a tenth of the interval
    "cpu_pressure": 40.0,      # the machine: some runnable task waited 40 % of the last 10 s (PSI some avg10)
    "late_ms": 1000.0,         # the harness's own half-second loop woke a second late
}
#: How each signal reads in a window's ``why``.
_SAYS = {
    "lag_max_ms": "event loop {v:,.0f} ms late",
    "lag_p99_ms": "event loop {v:,.0f} ms late at p99",
    "runqueue_share": "Locust waited for a CPU {v:.0%} of the time",
    "cpu_pressure": "CPU pressure {v:.0f} %",
    "late_ms": "harness loop {v:,.0f} ms late",
}


def cpu_pressure(path: Path = PRESSURE_PATH) -> float | None:
    """The machine's CPU pressure: % of the last 10 s in which some runnable task waited for a CPU (PSI
    ``some avg10``); None where the kernel has no PSI."""
    try:
        first = path.read_text(encoding="ascii").splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=", 1) for part in first.split()[1:] if "=" in part)
    try:
        return float(fields["avg10"])
    except (KeyError, ValueError):
        return None


class RunQueueClock:
    """This process's time spent runnable but waiting for a CPU, as a share of the wall time between two readings.

    Linux ``/proc/self/task/<tid>/schedstat``: the second field is the
    nanoseconds a thread has spent on a run queue, waiting. Summed over every
    thread (a thread that appeared since the last reading counts from 0; one
    that ended drops out), so a process with two threads waiting at once can
    exceed 1.0. None where the file is missing (not Linux, or schedstats off).
    """

    def __init__(self, tasks: Path = TASKS_PATH) -> None:
        self.tasks = tasks
        self.last: dict[str, int] | None = self._waits()
        self.last_at = time.monotonic_ns()

    def _waits(self) -> dict[str, int] | None:
        out: dict[str, int] = {}
        try:
            tids = os.listdir(self.tasks)
        except OSError:
            return None
        for tid in tids:
            try:
                out[tid] = int((self.tasks / tid / "schedstat").read_text(encoding="ascii").split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the thread ended between the listing and the read
        return out or None

    def share(self) -> float | None:
        """Waiting share of the wall time since the previous call (or since this clock was made)."""
        now, waits = time.monotonic_ns(), self._waits()
        last, last_at = self.last, self.last_at
        self.last, self.last_at = waits, now
        if waits is None or last is None or now <= last_at:
            return None
        waited = sum(max(0, w - last.get(tid, 0)) for tid, w in waits.items())
        return round(waited / (now - last_at), 4)


def starved_signals(row: dict[str, Any], signals: Iterable[str] = THRESHOLDS) -> dict[str, float]:
    """The signals of a time-series (or harness) row at or over their threshold: empty if it was not starved."""
    out = {}
    for key in signals:
        value = row.get(key)
        if isinstance(value, (int, float)) and value >= THRESHOLDS[key]:
            out[key] = float(value)
    return out


def describe(signals: dict[str, float]) -> str:
    """``event loop 1,009 ms late; CPU pressure 92 %``: the signals in the order of `THRESHOLDS` (a loop's
    p99 only when its worst lag is not there to say more)."""
    said = [k for k in THRESHOLDS if k in signals and not (k == "lag_p99_ms" and "lag_max_ms" in signals)]
    return "; ".join(_SAYS[k].format(v=signals[k]) for k in said)


def why_starved(row: dict[str, Any]) -> str:
    """Why a row was measured on a starved harness, in words; empty if it was not."""
    return describe(starved_signals(row))

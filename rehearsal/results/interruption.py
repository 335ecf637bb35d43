"""The interruption a switch (or a rollback) causes: the burst of failed requests right after it.

From the first failed request at or after the moment to the last failed
request of the same burst (failures no more than `BURST_GAP_S` wall seconds
apart), in wall seconds; 0 if nothing failed. Failures long after belong to
something else and are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Two failed requests further apart than this (wall seconds) are not one interruption.
BURST_GAP_S = 10.0
#: A failure this long before the recorded close still belongs to it (clocks of two processes).
CLOCK_SLACK_S = 1.0


def interruption(failures: Iterable[float], closed_at: float) -> tuple[float, int, float | None, float | None]:
    """(window seconds, failed requests in it, first, last) of the burst of failures after `closed_at`."""
    times = sorted(t for t in failures if t >= closed_at - CLOCK_SLACK_S)
    if not times:
        return 0.0, 0, None, None
    first = last = times[0]
    count = 1
    for t in times[1:]:
        if t - last > BURST_GAP_S:
            break
        last, count = t, count + 1
    return round(last - first, 3), count, first, last

"""Reading a stage's HDR latency log (``stages/<stage>/latency.jsonl``, written by `locustfiles.latency`).

Each line after the header is one interval of one request type and tag,
with its histogram encoded as HdrHistogram's compressed base64. Histograms
add exactly, so the percentiles of any span of intervals, across workers,
are those of the sum. Values are microseconds; figures here are in ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from ..shared.jsonl import iter_jsonl

#: As recorded (locustfiles.latency): 1 µs to one hour, 3 significant digits.
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0, "p99_9_ms": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def _cumulative(histogram: HdrHistogram) -> np.ndarray:
    """The running total of the histogram's counts, index by index (numpy, over a view of hdrh's own array)."""
    return np.cumsum(np.ctypeslib.as_array(histogram.counts)[:histogram.counts_len], dtype=np.int64)


def value_at_percentile(histogram: HdrHistogram, p: float, cumulative: np.ndarray | None = None) -> int:
    """hdrh's ``get_value_at_percentile``, exactly, found by a binary search of the running total.

    hdrh walks its counts one index at a time in Python (up to 23,552 of them
    for our range), for each of the five percentiles of every request type.
    With `mean_value`: a two-minute stage's figures (twelve request types)
    took 0.50 s with hdrh's methods and take 0.01 s; the demo's 2.03 s, 0.50 s.
    """
    if cumulative is None:
        cumulative = _cumulative(histogram)
    index = int(np.searchsorted(cumulative, histogram.get_target_count_at_percentile(p), side="left"))
    if index >= len(cumulative):
        return 0
    value = histogram.get_value_from_index(index)
    return histogram.get_highest_equivalent_value(value) if p else histogram.get_lowest_equivalent_value(value)


def mean_value(histogram: HdrHistogram) -> float:
    """hdrh's ``get_mean_value``, exactly, reading only the counts that are not zero.

    Each value counts as the middle of its bucket, as hdrh does; hdrh gets there by
    iterating every bucket below the largest value in Python.
    """
    total_count = histogram.get_total_count()
    if not total_count:
        return 0.0
    counts = np.ctypeslib.as_array(histogram.counts)[:histogram.counts_len]
    total = 0
    for index in np.flatnonzero(counts).tolist():
        lowest = histogram.get_value_from_index(index)
        middle = lowest + ((histogram.get_highest_equivalent_value(lowest) - lowest + 1) >> 1)
        total += int(counts[index]) * middle
    return float(total) / total_count


@dataclass
class LatencyLog:
    """One stage's latency log: when it started, its interval, and its rows in order."""

    start: float | None = None
    interval_s: float | None = None
    time_scale: float | None = None
    basis: str = "service"
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def end(self) -> float | None:
        return self.rows[-1]["t"] if self.rows else self.start


def read_latency(path: Path) -> LatencyLog:
    """The log at `path` (empty if there is none); a torn last line after a kill is skipped."""
    log = LatencyLog()
    for row in iter_jsonl(path):
        if "start" in row:
            log.start, log.interval_s, log.time_scale = row["start"], row.get("interval_s"), row.get("time_scale")
        elif "hdr" in row:
            log.rows.append(row)
    return log


@dataclass
class Tally:
    """Requests of some span: their histogram, count and failures."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    count: int = 0
    failures: int = 0

    def add_row(self, row: dict[str, Any], decoded: HdrHistogram | None = None) -> None:
        """Add one latency row; `decoded` is its histogram if the caller has decoded it already."""
        self.histogram.add(decoded if decoded is not None else HdrHistogram.decode(row["hdr"]))
        self.count += int(row["count"])
        self.failures += int(row["failures"])

    def add(self, other: Tally) -> None:
        self.histogram.add(other.histogram)
        self.count += other.count
        self.failures += other.failures

    def percentile_ms(self, p: float, cumulative: np.ndarray | None = None) -> float | None:
        if not self.histogram.get_total_count():
            return None
        return value_at_percentile(self.histogram, p, cumulative) / 1000.0

    def figures(self, seconds: float | None = None) -> dict[str, Any]:
        """count, failures, error_rate, p50/p90/p95/p99/p99.9, max, mean (ms), and rps over `seconds`."""
        has = bool(self.histogram.get_total_count())
        out: dict[str, Any] = {"count": self.count, "failures": self.failures,
                               "error_rate": self.failures / self.count if self.count else None}
        cumulative = _cumulative(self.histogram) if has else None
        for key, p in PERCENTILES.items():
            out[key] = self.percentile_ms(p, cumulative)
        out["max_ms"] = self.histogram.get_max_value() / 1000.0 if has else None
        out["mean_ms"] = round(mean_value(self.histogram) / 1000.0, 3) if has else None
        if seconds is not None:
            out["rps"] = round(self.count / seconds, 3) if seconds > 0 else None
        return out


def tally(rows: Iterable[dict[str, Any]]) -> Tally:
    t = Tally()
    for row in rows:
        t.add_row(row)
    return t


def by_name(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Tally]]:
    """One tally per request type (tags merged), names sorted."""
    tallies: dict[str, Tally] = {}
    for row in rows:
        tallies.setdefault(row["name"], Tally()).add_row(row)
    yield from sorted(tallies.items())


def stage_latency(path: Path) -> dict[str, Any] | None:
    """``summary.json``'s ``latency`` of a stage: per request type and in total, or None without a log."""
    log = read_latency(path)
    if log.start is None:
        return None
    seconds = (log.end or log.start) - log.start
    total = Tally()
    requests: dict[str, Any] = {}
    for name, t in by_name(log.rows):
        requests[name] = t.figures(seconds)
        total.add(t)
    return {"source": "hdr", "significant_digits": DIGITS, "interval_s": log.interval_s,
            "basis": log.basis, "requests": requests, "total": total.figures(seconds)}

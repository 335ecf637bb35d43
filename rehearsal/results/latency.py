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

from hdrh.histogram import HdrHistogram

from ..shared.jsonl import iter_jsonl

#: As recorded (locustfiles.latency): 1 µs to one hour, 3 significant digits.
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0, "p99_9_ms": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


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

    def percentile_ms(self, p: float) -> float | None:
        if not self.histogram.get_total_count():
            return None
        return self.histogram.get_value_at_percentile(p) / 1000.0

    def figures(self, seconds: float | None = None) -> dict[str, Any]:
        """count, failures, error_rate, p50/p90/p95/p99/p99.9, max, mean (ms), and rps over `seconds`."""
        has = bool(self.histogram.get_total_count())
        out: dict[str, Any] = {"count": self.count, "failures": self.failures,
                               "error_rate": self.failures / self.count if self.count else None}
        for key, p in PERCENTILES.items():
            out[key] = self.percentile_ms(p)
        out["max_ms"] = self.histogram.get_max_value() / 1000.0 if has else None
        out["mean_ms"] = round(self.histogram.get_mean_value() / 1000.0, 3) if has else None
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

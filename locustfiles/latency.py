"""Latency we can trust: HDR histograms per request type and interval, merged on the master.

Locust keeps response times rounded to about two significant digits, and its
charts over time show only the aggregate. Here every process with users
records each request into an HDR histogram (microseconds, 3 significant
digits) kept per request type (``METHOD name``) and per tag (who sent it:
``citizen`` or ``officer``); once a second it sends them, compressed, with
``runner.send_message("rehearsal:latency", …)``. The master (or the local
runner) adds them into the current interval's histograms and, at the end of
every interval, writes one line per request type and tag to the stage's
``latency.jsonl``::

    {"t0": 1700000000.0, "t": 1700000010.0, "name": "POST /api/dossiers", "tag": "citizen",
     "count": 412, "failures": 0, "hdr": "HISTFAAAA..."}

Histograms add up exactly, so a figure over any span of intervals (the whole
stage, its last ten minutes, any 5-minute window) is the percentile of the
sum, across workers too. An interval is one simulated minute, held between 1
and 10 wall seconds; a worker's data lands in the interval in which the
master receives it (at most a second or two late).

What is recorded is each request's wire time (`locustfiles.wire`: from its
first byte handed to the kernel to the kernel's receipt of the answer's last
byte) when the kernel stamped the answer, else Locust's own timing (TLS, no
stamps): the generator's wait to read an answer that has arrived is not the
system's latency. Locust's statistics keep Locust's timing.

Coordinated omission: in the open model (arrivals per minute) the first
request of each visit is measured from the arrival's *intended* time, not
from when a citizen got round to sending it, so a slowing portal cannot hide
the wait behind fewer requests (the citizen passes ``context={"intended": t}``),
to the answer's wire arrival.

What it costs the requests it measures: the request hook only appends the
microseconds to a list (no histogram, no string built); once a second those
values go into histograms with the histogram's own index arithmetic
(`record_values`, ~0.3 µs a value against ~8 µs for ``record_value``). A
local runner is its own sink, so its values go straight into the current
interval (no encoding, no decoding); a worker encodes one reused histogram
per request type. Histograms are recycled between intervals (a new one is a
184 KiB array), and an interval is written a few request types at a time,
yielding to the users between them, so no stretch of this work holds the
event loop for long (tools/bench/accuracy.py, docs/benchmarks.md).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import ctypes
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from hdrh.histogram import HdrHistogram
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locustfiles.wire import take as take_wire

log = logging.getLogger("rehearsal.results.latency")
LATENCY = "rehearsal:latency"
#: Microseconds: 1 µs to one hour, 3 significant digits (0.1 % resolution).
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
SEND_EVERY_S = 1.0
#: Request types encoded between two yields to the users when an interval is written.
WRITE_CHUNK = 4


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def _record_slow(histogram: HdrHistogram, values: list[int]) -> None:
    for v in values:
        histogram.record_value(v)


def _make_record_fast(h: HdrHistogram) -> Callable[[HdrHistogram, list[int]], None]:
    """`record_values` for histograms shaped like `h`: hdrh's own index arithmetic, inlined."""
    unit, half_mag, mask, half = h.unit_magnitude, h.sub_bucket_half_count_magnitude, h.sub_bucket_mask, \
        h.sub_bucket_half_count
    shift = unit + half_mag + 1

    def record(histogram: HdrHistogram, values: list[int]) -> None:
        if not values:
            return
        counts = histogram.counts
        for v in values:
            bucket = (v | mask).bit_length() - shift  # HdrHistogram._get_bucket_index
            counts[((bucket + 1) << half_mag) + (v >> (bucket + unit)) - half] += 1
        histogram.total_count += len(values)
        histogram.min_value = min(histogram.min_value, min(values))
        histogram.max_value = max(histogram.max_value, max(values))
    return record


def _zero(histogram: HdrHistogram) -> None:
    """Empty `histogram` for reuse, as a new one is (hdrh's ``reset`` loops over 23,552 counts in Python)."""
    ctypes.memset(ctypes.addressof(histogram.counts), 0, ctypes.sizeof(histogram.counts))
    histogram.total_count, histogram.min_value, histogram.max_value = 0, sys.maxsize, 0
    histogram.start_time_stamp_msec = histogram.end_time_stamp_msec = 0


def _fast_path_agrees() -> bool:
    """Whether the inlined recording and the recycling give exactly what hdrh's own methods give."""
    try:
        values = [LOWEST_US, 2, 999, 1024, 2047, 2048, 4095, 50_000, 51_234, 987_654, 12_345_678, HIGHEST_US,
                  *(min(HIGHEST_US, int(1.37 ** i)) for i in range(1, 72))]
        fast, slow = new_histogram(), new_histogram()
        _make_record_fast(fast)(fast, values[:5])
        _zero(fast)
        _make_record_fast(fast)(fast, values)
        _record_slow(slow, values)
        return fast.encode() == slow.encode() and (fast.total_count, fast.min_value, fast.max_value) == \
            (slow.total_count, slow.min_value, slow.max_value)
    except Exception:  # noqa: BLE001 (an hdrh of another shape: keep its own, slower, methods)
        return False


if _fast_path_agrees():
    #: Record each microsecond value of `values` into a histogram (clamped to its range by the caller).
    record_values = _make_record_fast(new_histogram())
    recyclable = True
else:  # pragma: no cover (a future hdrh)
    record_values = _record_slow
    recyclable = False


def interval_for(time_scale: float) -> float:
    """Wall seconds per interval: one simulated minute, between 1 and 10 wall seconds."""
    return min(10.0, max(1.0, 60.0 / time_scale))


def _clamped(values: list[int]) -> list[int]:
    """`values` within the histograms' range (1 µs to an hour), as `record_values` needs them."""
    if values and (min(values) < LOWEST_US or max(values) > HIGHEST_US):
        return [min(HIGHEST_US, max(LOWEST_US, v)) for v in values]
    return values


class LatencyRecorder:
    """Records this process's requests; on the master or local runner, also merges and writes them."""

    def __init__(self, environment: Environment, *, stage_dir: Path | None, time_scale: float) -> None:
        self.env = environment
        self.interval_s = interval_for(time_scale)
        self.time_scale = time_scale
        #: (method, name, tag) -> [microseconds of each request, failures]: not yet sent to the sink.
        self.pending: dict[tuple[str, str, str], list[Any]] = {}
        #: (name, tag) -> [histogram, count, failures]: the sink's current interval.
        self.current: dict[tuple[str, str], list[Any]] = {}
        self.is_sink = not isinstance(environment.runner, WorkerRunner)
        self.records = not isinstance(environment.runner, MasterRunner)
        #: Emptied histograms of closed intervals, for the next ones.
        self.spare: list[HdrHistogram] = []
        #: A worker's histogram for encoding what it sends (reused: one request type at a time).
        self.scratch: HdrHistogram | None = None
        self.writing = False
        self.stopping = False
        #: Called with each interval's rows as it is written (the live gates).
        self.watchers: list[Callable[[list[dict[str, Any]]], None]] = []
        self.file = None
        self.interval_start = 0.0
        if self.is_sink and stage_dir is not None:
            stage_dir.mkdir(parents=True, exist_ok=True)
            self.file = (stage_dir / "latency.jsonl").open("a", encoding="utf-8")
        if self.records:
            environment.events.request.add_listener(self._on_request)
        assert environment.runner is not None
        environment.runner.register_message(LATENCY, self._on_latency)
        self._greenlets: list[gevent.Greenlet] = []
        self._writer: gevent.Greenlet | None = None

    # -- every process with users -------------------------------------------
    def _on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                    exception: Exception | None = None, context: dict[str, Any] | None = None, **_: Any) -> None:
        # On every request, after its time is taken: O(1), no histogram, no string (see the module docstring).
        # The wire time when the kernel stamped the answer (locustfiles/wire.py), else Locust's own timing.
        wire = take_wire(response_time)
        ms = (wire[1] - wire[0]) * 1000.0 if wire else response_time
        if context:
            key = (request_type, name, context.get("tag", ""))
            intended = context.get("intended")
            if intended:  # open model: from the arrival's intended time to the answer
                ms = ((wire[1] if wire else time.time()) - intended) * 1000.0
        else:
            key = (request_type, name, "")
        entry = self.pending.get(key)
        if entry is None:
            entry = self.pending[key] = [[], 0]
        entry[0].append(int(ms * 1000.0))
        if exception is not None:
            entry[1] += 1

    def send(self) -> None:
        """Hand this process's requests to the sink (itself when local: straight into the current interval)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        if self.is_sink:
            for (method, name, tag), (values, failures) in batch.items():
                self._add(f"{method} {name}", str(tag), values, failures)
            return
        if self.scratch is None or not recyclable:
            self.scratch = new_histogram()
        scratch, data = self.scratch, []
        for (method, name, tag), (values, failures) in batch.items():
            record_values(scratch, _clamped(values))
            data.append([f"{method} {name}", str(tag), len(values), failures, scratch.encode().decode("ascii")])
            if recyclable:
                _zero(scratch)
            else:  # pragma: no cover
                scratch = self.scratch = new_histogram()
        try:
            self.env.runner.send_message(LATENCY, data)
        except Exception:
            for key, (values, failures) in batch.items():  # keep them for the next attempt
                mine = self.pending.setdefault(key, [[], 0])
                mine[0][:0] = values
                mine[1] += failures
            raise

    def _add(self, name: str, tag: str, values: list[int], failures: int) -> None:
        entry = self.current.get((name, tag))
        if entry is None:
            entry = self.current[(name, tag)] = [self._histogram(), 0, 0]
        record_values(entry[0], _clamped(values))
        entry[1] += len(values)
        entry[2] += failures

    def _histogram(self) -> HdrHistogram:
        return self.spare.pop() if self.spare else new_histogram()

    def _send_loop(self) -> None:
        while True:
            gevent.sleep(SEND_EVERY_S)
            try:
                self.send()
            except Exception:  # noqa: BLE001 (one failed send must not silence this process)
                log.exception("rehearsal latency: sending to the master failed; retrying")

    # -- the sink -------------------------------------------------------------
    def _on_latency(self, environment: Environment, msg: Any, **_: Any) -> None:
        for name, tag, count, failures, encoded in msg.data or []:
            entry = self.current.get((name, tag))
            if entry is None:
                entry = self.current[(name, tag)] = [self._histogram(), 0, 0]
            entry[0].add(HdrHistogram.decode(encoded))
            entry[1] += count
            entry[2] += failures

    def write_interval(self, now: float | None = None, *, chunked: bool = False) -> None:
        """Close the current interval: one line per request type and tag, then tell the watchers.

        `chunked` (the interval loop): yield to the users every `WRITE_CHUNK` request types encoded.
        """
        now = time.time() if now is None else now
        batch, self.current = self.current, {}
        t0, self.interval_start = self.interval_start, now
        rows = []
        self.writing = True
        try:
            for i, ((name, tag), e) in enumerate(sorted(batch.items())):
                if e[1]:
                    rows.append({"t0": round(t0, 3), "t": round(now, 3), "name": name, "tag": tag,
                                 "count": e[1], "failures": e[2], "hdr": e[0].encode().decode("ascii")})
                if recyclable:
                    _zero(e[0])
                    self.spare.append(e[0])
                if chunked and i % WRITE_CHUNK == WRITE_CHUNK - 1:
                    gevent.sleep(0)
        finally:
            self.writing = False
        if self.file is not None:
            self.file.write("".join(json.dumps(r) + "\n" for r in rows) or "")
            self.file.flush()
        for watch in self.watchers:
            try:
                watch(rows)
            except Exception:  # noqa: BLE001 (a watcher's bug must not stop the measuring)
                log.exception("rehearsal latency: a watcher failed")

    def _interval_loop(self) -> None:
        while not self.stopping:
            gevent.sleep(max(0.0, self.interval_start + self.interval_s - time.time()))
            self.write_interval(chunked=True)

    # -- lifecycle ------------------------------------------------------------
    def start(self, started_at: float) -> None:
        self.interval_start = started_at
        if self.is_sink and self.file is not None:
            self.file.write(json.dumps({"start": started_at, "interval_s": self.interval_s,
                                        "time_scale": self.time_scale}) + "\n")
            self.file.flush()
        self.stopping = False
        if self.records:
            self._greenlets.append(gevent.spawn(self._send_loop))
        if self.is_sink:
            self._greenlets.append(gevent.spawn(self._interval_loop))
            self._writer = self._greenlets[-1]

    def stop(self) -> None:
        # An interval being written (it yields between request types) is finished, not cut: its rows would be lost.
        self.stopping = True
        if self.writing and self._writer is not None and self._writer is not gevent.getcurrent():
            self._writer.join(timeout=5)
        for g in self._greenlets:
            g.kill(block=False)
        self._writer = None
        self._greenlets.clear()
        if self.records:
            self.send()

    def close(self) -> None:
        """At quitting: whatever arrived after the last interval (workers' final sends) is written too."""
        if self.is_sink:
            self.write_interval()
        if self.file is not None:
            self.file.close()
            self.file = None

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

Coordinated omission: in the open model (arrivals per minute) the first
request of each visit is measured from the arrival's *intended* time, not
from when a citizen got round to sending it, so a slowing portal cannot hide
the wait behind fewer requests (the citizen passes ``context={"intended": t}``).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import gevent
from hdrh.histogram import HdrHistogram
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

log = logging.getLogger("rehearsal.results.latency")
LATENCY = "rehearsal:latency"
#: Microseconds: 1 µs to one hour, 3 significant digits (0.1 % resolution).
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
SEND_EVERY_S = 1.0


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def interval_for(time_scale: float) -> float:
    """Wall seconds per interval: one simulated minute, between 1 and 10 wall seconds."""
    return min(10.0, max(1.0, 60.0 / time_scale))


class LatencyRecorder:
    """Records this process's requests; on the master or local runner, also merges and writes them."""

    def __init__(self, environment: Environment, *, stage_dir: Path | None, time_scale: float) -> None:
        self.env = environment
        self.interval_s = interval_for(time_scale)
        self.time_scale = time_scale
        #: (name, tag) -> [histogram, count, failures]: not yet sent to the sink.
        self.pending: dict[tuple[str, str], list[Any]] = {}
        #: (name, tag) -> [histogram, count, failures]: the sink's current interval.
        self.current: dict[tuple[str, str], list[Any]] = {}
        self.is_sink = not isinstance(environment.runner, WorkerRunner)
        self.records = not isinstance(environment.runner, MasterRunner)
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

    # -- every process with users -------------------------------------------
    def _on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                    exception: Exception | None = None, context: dict[str, Any] | None = None, **_: Any) -> None:
        context = context or {}
        intended = context.get("intended")
        ms = (time.time() - intended) * 1000.0 if intended else response_time
        key = (f"{request_type} {name}", str(context.get("tag", "")))
        entry = self.pending.get(key)
        if entry is None:
            entry = self.pending[key] = [new_histogram(), 0, 0]
        entry[0].record_value(min(HIGHEST_US, max(LOWEST_US, int(ms * 1000.0))))
        entry[1] += 1
        if exception is not None:
            entry[2] += 1

    def send(self) -> None:
        """Hand this process's histograms to the sink (itself when local)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        data = [[name, tag, e[1], e[2], e[0].encode().decode("ascii")] for (name, tag), e in batch.items()]
        try:
            self.env.runner.send_message(LATENCY, data)
        except Exception:
            for (name, tag), e in batch.items():  # keep them for the next attempt
                mine = self.pending.setdefault((name, tag), [new_histogram(), 0, 0])
                mine[0].add(e[0])
                mine[1] += e[1]
                mine[2] += e[2]
            raise

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
                entry = self.current[(name, tag)] = [new_histogram(), 0, 0]
            entry[0].add(HdrHistogram.decode(encoded))
            entry[1] += count
            entry[2] += failures

    def write_interval(self, now: float | None = None) -> None:
        """Close the current interval: one line per request type and tag, then tell the watchers."""
        now = time.time() if now is None else now
        rows = [{"t0": round(self.interval_start, 3), "t": round(now, 3), "name": name, "tag": tag,
                 "count": e[1], "failures": e[2], "hdr": e[0].encode().decode("ascii")}
                for (name, tag), e in sorted(self.current.items()) if e[1]]
        self.current = {}
        self.interval_start = now
        if self.file is not None:
            self.file.write("".join(json.dumps(r) + "\n" for r in rows) or "")
            self.file.flush()
        for watch in self.watchers:
            try:
                watch(rows)
            except Exception:  # noqa: BLE001 (a watcher's bug must not stop the measuring)
                log.exception("rehearsal latency: a watcher failed")

    def _interval_loop(self) -> None:
        while True:
            gevent.sleep(max(0.0, self.interval_start + self.interval_s - time.time()))
            self.write_interval()

    # -- lifecycle ------------------------------------------------------------
    def start(self, started_at: float) -> None:
        self.interval_start = started_at
        if self.is_sink and self.file is not None:
            self.file.write(json.dumps({"start": started_at, "interval_s": self.interval_s,
                                        "time_scale": self.time_scale}) + "\n")
            self.file.flush()
        if self.records:
            self._greenlets.append(gevent.spawn(self._send_loop))
        if self.is_sink:
            self._greenlets.append(gevent.spawn(self._interval_loop))

    def stop(self) -> None:
        for g in self._greenlets:
            g.kill(block=False)
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

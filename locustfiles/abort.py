"""Gates with ``abort_on_fail``, judged while the stage runs, in the master (or the local runner) only.

Fed each latency interval (`locustfiles.latency`) and each time-series sample
(`locustfiles.telemetry`), `rehearsal.results.gates.LiveGates` says when a gate has
failed past its grace. The first one to fail stops the stage, as k6's
``abortOnFail`` does: ``abort.json`` says which gate, what was observed and
when; a marker goes on the stage's timeline; then Locust is told to quit
(on a master, that stops the workers too). The runner then reconciles the
stage as usual, marks it NO-GO and runs no further stage.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment

from rehearsal.results.gates import LiveGates
from rehearsal.plan import Stage

log = logging.getLogger("rehearsal.abort")


class GateWatch:
    """Watches one stage's abort-on-fail gates and stops the stage when one fails."""

    def __init__(self, environment: Environment, stage: Stage, *, time_scale: float, stage_dir: Path | None,
                 mark: Any = None) -> None:
        self.env = environment
        self.stage = stage
        self.time_scale = time_scale
        self.stage_dir = stage_dir
        self.mark = mark
        self.live: LiveGates | None = None
        self.fired = False

    def start(self, started_at: float) -> bool:
        """Begin watching; False if the stage has no gate that may abort it."""
        self.live = LiveGates(self.stage.gates, start=started_at, time_scale=self.time_scale)
        return bool(self.live)

    def on_latency(self, rows: list[dict[str, Any]]) -> None:
        if self.live:
            self.live.feed_latency(rows)
            self._check()

    def on_sample(self, row: dict[str, Any]) -> None:
        if self.live:
            self.live.feed_sample(row)
            self._check()

    def _check(self) -> None:
        if self.fired or not self.live:
            return
        now = time.time()
        result = self.live.check(now)
        if result is None:
            return
        self.fired = True
        at_s = (now - self.live.start) * self.time_scale
        record = {"gate": result.name, "expr": result.expr, "observed": result.observed,
                  "expected": result.expected, "detail": result.detail, "at_s": round(at_s, 1), "t": round(now, 3)}
        log.warning("gate %r failed (%s, expected %s): aborting the stage", result.name, result.observed,
                    result.expected)
        if self.stage_dir is not None:
            (self.stage_dir / "abort.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        if self.mark is not None:
            self.mark("abort", name=result.name, observed=result.observed, sim_s=round(at_s, 1))
        # Not from inside the caller's stack (a message handler or the interval loop): quitting kills them.
        gevent.spawn(self.env.runner.quit)

"""Our own measurements inside Locust, shaped for distributed mode from day one.

Every process that runs users buffers its dossier events and, once a second,
sends them with ``runner.send_message("rehearsal:events", …)``; every two
seconds it sends its count of active sessions (``rehearsal:tick``). On a
``LocalRunner`` that call reaches our own handler directly; on a worker it
goes to the master. Only the master (or the local runner) writes: the
ledger (`rehearsal.results.ledger.LedgerWriter`) and the time series of the stage
(``timeseries.jsonl``: users, sessions counted by the harness and by the
portal, dossiers submitted and complete, requests and failures per second,
and whether the harness itself was starved: `locustfiles.starvation`).
Counts are merged exactly: sessions are the sum of each node's latest count,
dossier counts come from the events themselves, the starvation signals are
the worst any node reported in the interval.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locustfiles.starvation import StarvationProbe, worst
from rehearsal.results.ledger import LedgerWriter
from rehearsal.shared.net import urlopen
from rehearsal.shared.status import COMPLETE_KINDS, WITHDRAWN_KINDS

log = logging.getLogger("rehearsal.telemetry")
EVENTS, TICK = "rehearsal:events", "rehearsal:tick"
FLUSH_EVERY_S = 1.0
SAMPLE_EVERY_S = 2.0


class Telemetry:
    """Buffers this process's events and, on the master or local runner, writes them."""

    def __init__(self, environment: Environment, *, stage: str, run_dir: Path | None,
                 portal_url: str | None, count_sessions: Callable[[float], int],
                 session_window_s: float = 60.0) -> None:
        self.env = environment
        self.stage = stage
        #: This process's sessions active within a window (`RunContext.active_sessions`).
        self.count_sessions = count_sessions
        self.session_window_s = session_window_s
        self.portal_url = portal_url
        self.buffer: list[dict[str, Any]] = []
        self.is_sink = not isinstance(environment.runner, WorkerRunner)
        self.node_sessions: dict[str, int] = {}
        #: This process's event-loop lag and CPU wait; on the sink, the other nodes' readings since the last sample.
        self.probe = StarvationProbe()
        self.node_health: list[dict[str, Any]] = []
        self.counts = {"submitted": 0, "complete": 0, "withdrawn": 0, "events": 0}
        self.filed: set[int] = set()
        #: Distributed: every worker the master has known, to tell the lost ones.
        self.workers_seen: set[str] = set()
        #: unit code -> [submitted, complete] of this stage's dossiers (the live 168-unit view).
        self.units: dict[int, list[int]] = {}
        #: The last time-series row (the live KPIs).
        self.last_row: dict[str, Any] = {}
        #: Called with each time-series row as it is written (the live gates).
        self.sample_watchers: list[Any] = []
        self.ledger: LedgerWriter | None = None
        self.series = None
        if self.is_sink and run_dir is not None:
            self.ledger = LedgerWriter(run_dir / "ledger" / f"{stage}.jsonl")
            stage_dir = run_dir / "stages" / stage
            stage_dir.mkdir(parents=True, exist_ok=True)
            self.series = (stage_dir / "timeseries.jsonl").open("a", encoding="utf-8")
        runner = environment.runner
        assert runner is not None
        runner.register_message(EVENTS, self._on_events)
        runner.register_message(TICK, self._on_tick)
        self._greenlets: list[gevent.Greenlet] = []

    # -- every process with users -------------------------------------------
    def emit(self, kind: str, **fields: Any) -> None:
        self.buffer.append({"t": round(time.time(), 3), "kind": kind, "stage": self.stage, **fields})

    def active_sessions(self) -> int:
        """This process's sessions used within the window, as the portal counts its own."""
        return self.count_sessions(self.session_window_s)

    def flush(self) -> None:
        if self.buffer:
            batch, self.buffer = self.buffer, []
            try:
                self.env.runner.send_message(EVENTS, batch)
            except Exception:
                self.buffer[:0] = batch  # keep them for the next attempt: the ledger must not miss any
                raise

    def _send_loop(self) -> None:
        last_tick = 0.0
        while True:
            gevent.sleep(FLUSH_EVERY_S)
            try:
                self.flush()
                if time.time() - last_tick >= SAMPLE_EVERY_S:
                    last_tick = time.time()
                    self.env.runner.send_message(TICK, self._tick_message())
            except Exception:  # noqa: BLE001 (one failed send must not silence this process for the rest of the stage)
                log.exception("rehearsal telemetry: sending to the master failed; retrying")

    def _tick_message(self) -> dict[str, Any]:
        """Sessions, and on a worker its starvation reading (the sink reads its own at each sample)."""
        if isinstance(self.env.runner, WorkerRunner):
            return {"sessions": self.active_sessions(), "health": self.probe.reading()}
        return {"sessions": self.active_sessions()}

    # -- the master / local runner --------------------------------------------
    def _on_events(self, environment: Environment, msg: Any, **_: Any) -> None:
        events = msg.data or []
        for e in events:
            if e["kind"] == "submitted":
                self.counts["submitted"] += 1
                self.filed.add(e["id"])
                self.units.setdefault(int(e.get("unit") or 0), [0, 0])[0] += 1
            elif e["kind"] in COMPLETE_KINDS and e.get("id") in self.filed:
                # Only this stage's dossiers: officers also finish what earlier stages left open.
                self.counts["complete"] += 1
                self.units.setdefault(int(e.get("unit") or 0), [0, 0])[1] += 1
            elif e["kind"] in WITHDRAWN_KINDS and e.get("id") in self.filed:
                self.counts["withdrawn"] += 1  # stopped at the citizen's request: out of the completion rate
        self.counts["events"] += len(events)
        if self.ledger is not None:
            self.ledger.write(events)

    def _on_tick(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.node_sessions[str(msg.node_id)] = int(msg.data["sessions"])
        if msg.data.get("health"):
            self.node_health.append(msg.data["health"])

    def portal_stats(self) -> tuple[dict[str, Any] | None, str | None]:
        if not self.portal_url:
            return None, None
        try:
            with urlopen(self.portal_url.rstrip("/") + "/api/stats", timeout=5) as r:  # follows no redirect
                return json.loads(r.read()), None
        except Exception as exc:  # the portal failing is data, not a crash
            return None, f"{type(exc).__name__}: {exc}"[:200]

    def _sample_loop(self) -> None:
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            self.sample()

    def sample(self) -> None:
        stats, error = self.portal_stats()
        total = self.env.stats.total
        row = {
            "t": round(time.time(), 3),
            "users": self.env.runner.user_count,
            "sessions_harness": sum(self.node_sessions.values()),
            "sessions_portal": stats.get("sessions_active") if stats else None,
            "portal_dossiers": stats.get("dossiers_total") if stats else None,
            "submitted": self.counts["submitted"],
            "complete": self.counts["complete"],
            "withdrawn": self.counts["withdrawn"],
            "requests": total.num_requests,
            "failures": total.num_failures,
            "rps": round(total.current_rps, 2),
            "fail_per_s": round(total.current_fail_per_sec, 2),
            "portal_error": error,
        }
        # The worst of this process and of every node that reported since the last sample.
        readings, self.node_health = [*self.node_health, self.probe.reading()], []
        row.update(worst(readings))
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            alive = {c.id for c in runner.clients.all if c.state != "missing"}
            self.workers_seen |= alive | {c.id for c in runner.clients.all}
            row["workers"] = len(alive)
            row["workers_lost"] = sorted(self.workers_seen - alive)
            for lost in row["workers_lost"]:  # a dead worker's last count is not sessions any more
                self.node_sessions.pop(lost, None)
            row["sessions_harness"] = sum(self.node_sessions.values())
        self.last_row = row
        if self.series is not None:
            self.series.write(json.dumps(row) + "\n")
            self.series.flush()
        for watch in self.sample_watchers:
            try:
                watch(row)
            except Exception:  # noqa: BLE001 (a watcher's bug must not stop the sampling)
                log.exception("rehearsal telemetry: a watcher failed")

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        self.probe.start()
        if not isinstance(self.env.runner, MasterRunner):
            self._greenlets.append(gevent.spawn(self._send_loop))
        if self.is_sink:
            self._greenlets.append(gevent.spawn(self._sample_loop))

    def stop(self) -> None:
        for g in self._greenlets:
            g.kill(block=False)
        self._greenlets.clear()
        self.flush()
        if not isinstance(self.env.runner, MasterRunner):
            self.env.runner.send_message(TICK, self._tick_message())
        self.probe.stop()
        if self.is_sink:
            self.sample()

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
        if self.series is not None:
            self.series.close()
            self.series = None

"""Our own measurements inside Locust, shaped for distributed mode from day one.

Every process that runs users buffers its dossier events and, once a second,
sends them with ``runner.send_message("rehearsal:events", …)``; every two
seconds it sends its count of active sessions (``rehearsal:tick``). On a
``LocalRunner`` that call reaches our own handler directly; on a worker it
goes to the master. Only the master (or the local runner) writes: the
ledger (`rehearsal.results.ledger.LedgerWriter`) and the time series of the stage
(``timeseries.jsonl``: users, sessions counted by the harness and by the
systems, dossiers submitted and complete, requests and failures per second,
and whether the harness itself was starved: `locustfiles.starvation`).
Each row polls every system of the run (`rehearsal.run.systems.Systems`)
for its own ``/api/stats`` at once: ``systems`` ``{name: {sessions, up,
error?}}`` (a front door counts apart from the system behind it: hcmc's is
``city``), ``sessions_portal`` the sum of the systems' sessions (a system
closed at a cutover is marked ``closed`` and left out of the sum: the
sessions it still counts for a minute are of people who moved, and are
counted again where they went), and from
the provincial systems with a link ``sync_backlog`` (their outboxes'
``outbox_pending`` summed), ``sync_oldest_s`` (the oldest unacknowledged
row), ``feed_behind`` and ``link_alive`` (every link agent up). A system
that fails or vanishes mid-run is a row with ``up: false`` and its error,
never a crash.
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
                 count_sessions: Callable[[float], int], session_window_s: float = 60.0) -> None:
        self.env = environment
        self.stage = stage
        #: This process's sessions active within a window (`RunContext.active_sessions`).
        self.count_sessions = count_sessions
        self.session_window_s = session_window_s
        #: The run's systems (`rehearsal.run.systems.Systems`), polled at each sample; set by the locustfile.
        self.systems: Any = None
        #: Addresses of systems closed at a cutover (told by `locustfiles.timeline.Timeline`).
        self.closed: set[str] = set()
        self.buffer: list[dict[str, Any]] = []
        self.is_sink = not isinstance(environment.runner, WorkerRunner)
        self.node_sessions: dict[str, int] = {}
        #: This process's event-loop lag and CPU wait; on the sink, the other nodes' readings since the last sample.
        self.probe = StarvationProbe()
        self.node_health: list[dict[str, Any]] = []
        self.counts = {"submitted": 0, "complete": 0, "withdrawn": 0, "events": 0}
        #: This stage's dossiers, by code (the key both systems share; the id where a code is missing).
        self.filed: set[Any] = set()
        #: The codes filed on each system (the cutover counts what was filed on the front door it closes).
        self.filed_on: dict[str, set[Any]] = {}
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
            key = e.get("code") or e.get("id")
            if e["kind"] == "submitted":
                self.counts["submitted"] += 1
                self.filed.add(key)
                self.filed_on.setdefault(str(e.get("system") or ""), set()).add(key)
                self.units.setdefault(int(e.get("unit") or 0), [0, 0])[0] += 1
            elif e["kind"] in COMPLETE_KINDS and key in self.filed:
                # Only this stage's dossiers: officers also finish what earlier stages left open.
                self.counts["complete"] += 1
                self.units.setdefault(int(e.get("unit") or 0), [0, 0])[1] += 1
            elif e["kind"] in WITHDRAWN_KINDS and key in self.filed:
                self.counts["withdrawn"] += 1  # stopped at the citizen's request: out of the completion rate
        self.counts["events"] += len(events)
        if self.ledger is not None:
            self.ledger.write(events)

    def _on_tick(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.node_sessions[str(msg.node_id)] = int(msg.data["sessions"])
        if msg.data.get("health"):
            self.node_health.append(msg.data["health"])

    def system_stats(self, url: str) -> tuple[dict[str, Any] | None, str | None]:
        """One system's own ``/api/stats`` (None and the error if it does not answer)."""
        try:
            with urlopen(url.rstrip("/") + "/api/stats", timeout=5) as r:  # follows no redirect
                return json.loads(r.read()), None
        except Exception as exc:  # the system failing is data, not a crash
            return None, f"{type(exc).__name__}: {exc}"[:200]

    def systems_now(self) -> dict[str, Any]:
        """The time-series fields the systems give: each one's sessions, their sum, the links' backlog."""
        if self.systems is None:
            return {"systems": {}, "sessions_portal": None, "portal_dossiers": None, "portal_error": None}
        urls = self.systems.stats_urls()
        asked = {url: gevent.spawn(self.system_stats, url) for names in urls.values() for url in names}
        gevent.joinall(list(asked.values()), timeout=6)
        answers = {url: g.value if g.successful() else (None, "no answer in 6 s") for url, g in asked.items()}
        systems: dict[str, dict[str, Any]] = {}
        for name, names in urls.items():
            found = [answers[u] for u in names]
            up = all(stats is not None for stats, _ in found)
            entry: dict[str, Any] = {"sessions": sum(int(stats.get("sessions_active") or 0)
                                                     for stats, _ in found if stats), "up": up}
            errors = [error for _, error in found if error]
            if errors:
                entry["error"] = errors[0]
            if all(u in self.closed for u in names):
                entry["closed"] = True
            systems[name] = entry
        national = answers.get(self.systems.national().url, (None, None))[0]
        row: dict[str, Any] = {
            "systems": systems,
            "sessions_portal": (sum(e["sessions"] for e in systems.values() if not e.get("closed"))
                                if any(e["up"] for e in systems.values()) else None),
            "portal_dossiers": national.get("dossiers_total") if national else None,
            "portal_error": next((f"{n}: {e['error']}" for n, e in systems.items() if e.get("error")), None),
        }
        links = [stats["link"] for e in self.systems.linked()
                 for stats, _ in [answers.get(e.url, (None, None))]
                 if stats and isinstance(stats.get("link"), dict) and stats["link"].get("configured")]
        if links:
            row.update(sync_backlog=sum(int(k.get("outbox_pending") or 0) for k in links),
                       sync_oldest_s=max(float(k.get("outbox_oldest_s") or 0.0) for k in links),
                       feed_behind=sum(int(k.get("feed_behind") or 0) for k in links),
                       link_alive=all(bool(k.get("agent_alive")) for k in links))
        return row

    def _sample_loop(self) -> None:
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            self.sample()

    def sample(self) -> None:
        polled = self.systems_now()
        total = self.env.stats.total
        row = {
            "t": round(time.time(), 3),
            "users": self.env.runner.user_count,
            "sessions_harness": sum(self.node_sessions.values()),
            "sessions_portal": polled.pop("sessions_portal"),
            "portal_dossiers": polled.pop("portal_dossiers"),
            "submitted": self.counts["submitted"],
            "complete": self.counts["complete"],
            "withdrawn": self.counts["withdrawn"],
            "requests": total.num_requests,
            "failures": total.num_failures,
            "rps": round(total.current_rps, 2),
            "fail_per_s": round(total.current_fail_per_sec, 2),
            **polled,
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

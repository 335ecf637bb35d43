"""The master's watch on its workers: which joined, went missing or quit, and where their users went.

Locust's master (locust/runners.py, ``MasterRunner.heartbeat_worker``) marks a
worker ``missing`` once it has sent no heartbeat for ``HEARTBEAT_LIVENESS``
intervals (3 × 1 s), forgets its users and, with ``--enable-rebalancing``,
dispatches the stage's users again over the workers left; a worker missing for
60 more intervals, or one that says it quits, is removed from
``runner.clients``. Locust fires an event only for a worker that connects
(``worker_connect``); going missing and being removed are changes of the
runner's state. So this watch takes ``worker_connect`` and looks at
``runner.clients`` (each `WorkerNode`'s ``state`` and ``user_count``) twice per
heartbeat interval while the stage runs, and writes one line per change to
``stages/<stage>/workers.jsonl``::

    {"t", "event": "missing"|"joined"|"quit", "worker", "index", "users_worker",
     "users_before", "users_after", "t_settled"}

``t`` is when the master noticed; ``users_worker`` the users that worker held
(its last report); ``users_before`` what the live workers held together just
before; ``users_after`` what they hold once the master has dispatched again
(measured at ``t_settled``: when they are back at the master's target, or
`SETTLE_MAX_S` later). A worker that comes back after going missing is
``joined`` with ``"was": "missing"``. Only the master watches (`install`).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import HEARTBEAT_INTERVAL, STATE_MISSING, MasterRunner

__all__ = ["SETTLE_MAX_S", "WorkersWatch", "install"]

#: The longest a line waits for the master to hand a lost worker's users to the others.
SETTLE_MAX_S = 15.0


class WorkersWatch:
    """On the master: the workers' comings and goings, written to ``workers.jsonl`` as they happen."""

    def __init__(self, environment: Environment, runner: MasterRunner, stage_dir: Path | None) -> None:
        self.env = environment
        self.runner = runner
        self.path = stage_dir / "workers.jsonl" if stage_dir is not None else None
        #: Each worker's state and users at the last look.
        self.known: dict[str, tuple[str, int]] = {}
        self.lines: list[dict[str, Any]] = []
        self._looking: gevent.Greenlet | None = None
        self._stopping = False
        events = environment.events
        events.worker_connect.add_listener(self._on_connect)
        events.test_start.add_listener(self._on_test_start)
        events.test_stopping.add_listener(self._on_test_stopping)

    # -- what the master holds ---------------------------------------------------
    def _live_users(self) -> int:
        """Users on the workers that are not missing, as they last reported them."""
        return sum(c.user_count for c in self.runner.clients.values() if c.state != STATE_MISSING)

    def _index(self, worker: str) -> int | None:
        return self.runner.worker_indexes.get(worker)

    # -- events and looks --------------------------------------------------------
    def _on_connect(self, client_id: str, **_: Any) -> None:
        if self._stopping:  # a worker ready again after the stage's end (Locust's "client_ready")
            return
        was = self.known.get(client_id, ("", 0))[0]
        self._noticed("joined", client_id, users_worker=0, users_before=self._live_users(),
                      **({"was": was} if was else {}))

    def _on_test_start(self, **_: Any) -> None:
        self.known = {c.id: (c.state, c.user_count) for c in self.runner.clients.values()}
        if self._looking is None:
            self._looking = gevent.spawn(self._look_loop)

    def _on_test_stopping(self, **_: Any) -> None:
        # At the stage's end every worker reports it has stopped and is forgotten for a moment (Locust's
        # "client_stopped", then "client_ready"): that is the end of the stage, not workers coming and going.
        self._stopping = True
        if self._looking is not None:
            self._looking.kill(block=False)
            self._looking = None

    def _look_loop(self) -> None:
        while True:
            gevent.sleep(HEARTBEAT_INTERVAL / 2)
            self.look()

    def look(self) -> None:
        """Compare the runner's workers with the last look; a line for each that went missing or left."""
        now = {c.id: (c.state, c.user_count) for c in self.runner.clients.values()}
        before = sum(users for state, users in self.known.values() if state != STATE_MISSING)
        for worker, (state, users) in self.known.items():
            if state == STATE_MISSING:
                continue
            if worker not in now:
                self._noticed("quit", worker, users_worker=users, users_before=before)
            elif now[worker][0] == STATE_MISSING:
                self._noticed("missing", worker, users_worker=users, users_before=before)
        for worker, (state, _) in now.items():
            # Back from missing: Locust takes its heartbeat again (it "self-healed") without a new connect.
            if state != STATE_MISSING and self.known.get(worker, ("", 0))[0] == STATE_MISSING:
                self._noticed("joined", worker, users_worker=0, users_before=before, was=STATE_MISSING)
        # A worker that joined since the last look keeps the state its connect left it in.
        self.known = {**{w: s for w, s in self.known.items() if w in now}, **now}

    # -- lines ---------------------------------------------------------------------
    def _noticed(self, event: str, worker: str, **fields: Any) -> None:
        line = {"t": round(time.time(), 3), "event": event, "worker": worker, "index": self._index(worker),
                **fields}
        self.known[worker] = (STATE_MISSING if event == "missing" else "gone" if event == "quit" else "ready",
                              fields.get("users_worker", 0))
        if event == "quit":
            self.known.pop(worker, None)
        gevent.spawn(self._settle_and_write, line)

    def _settle_and_write(self, line: dict[str, Any]) -> None:
        """Wait until the master has dispatched again (back at its target, or `SETTLE_MAX_S`), then write."""
        deadline = time.monotonic() + SETTLE_MAX_S
        target = self.runner.target_user_count
        while time.monotonic() < deadline and target and self._live_users() < target:
            gevent.sleep(HEARTBEAT_INTERVAL / 4)
            target = self.runner.target_user_count
        line.update(users_after=self._live_users(), t_settled=round(time.time(), 3))
        self.lines.append(line)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")


def install(environment: Environment, stage_dir: Path | None) -> WorkersWatch | None:
    """Watch the workers if this process is a master (else nothing); the watch, kept on the environment."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return None
    watch = WorkersWatch(environment, runner, stage_dir)
    environment.rehearsal_workers_watch = watch  # type: ignore[attr-defined]
    return watch

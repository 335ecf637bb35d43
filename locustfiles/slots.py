"""Which officer account each officer user takes: handed out by the master, so a lost worker's desks are refilled.

Officer accounts are slots: slot ``n`` is unit ``units[n % U]``, officer
number ``n // U + 1`` (all units' desk officers first, then the
specialists). A user asks the master (or the local runner) for a slot with
a custom message and waits for the answer; the master gives the lowest
slot that is free, and a slot held by a worker that has gone missing is
free again. So when a worker dies and Locust gives its users to the others,
the replacements sit down at the desks that were left empty, instead of
doubling up on desks that are staffed (numbering by worker index would).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import itertools
from typing import Any

from gevent.event import AsyncResult
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

CLAIM, GRANT = "rehearsal:claim", "rehearsal:grant"


class SlotBroker:
    """On every process: asks for slots. On the master or local runner: also hands them out."""

    def __init__(self, environment: Environment, total: int) -> None:
        self.env = environment
        self.total = total
        self.pending: dict[int, AsyncResult] = {}
        self.requests = itertools.count()
        self.held: dict[int, str] = {}  # slot -> node id (master side)
        runner = environment.runner
        assert runner is not None
        if not isinstance(runner, WorkerRunner):
            runner.register_message(CLAIM, self._on_claim)
        if not isinstance(runner, MasterRunner):
            runner.register_message(GRANT, self._on_grant)

    # -- the process with users ---------------------------------------------------
    def claim(self, timeout: float = 15.0) -> int | None:
        """A free slot for a new officer user, or None if the master did not answer."""
        request = next(self.requests)
        result = self.pending[request] = AsyncResult()
        self.env.runner.send_message(CLAIM, {"request": request})
        try:
            return int(result.get(timeout=timeout))
        except Exception:  # noqa: BLE001 (gevent Timeout: the caller falls back to its own numbering)
            return None
        finally:
            self.pending.pop(request, None)

    def _on_grant(self, environment: Environment, msg: Any, **_: Any) -> None:
        result = self.pending.get(msg.data["request"])
        if result is not None:
            result.set(msg.data["slot"])

    # -- the master ------------------------------------------------------------------
    def _alive(self) -> set[str] | None:
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            return {c.id for c in runner.clients.all if c.state != "missing"}
        return None  # local: one process, always alive

    def _on_claim(self, environment: Environment, msg: Any, **_: Any) -> None:
        alive = self._alive()
        if alive is not None:
            for slot, node in list(self.held.items()):
                if node not in alive:
                    del self.held[slot]
        slot = next((s for s in range(self.total) if s not in self.held), None)
        if slot is None:  # more officer users than accounts (should not happen): share the least recent
            slot = len(self.held) % max(1, self.total)
        self.held[slot] = msg.node_id
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            runner.send_message(GRANT, {"request": msg.data["request"], "slot": slot}, client_id=msg.node_id)
        else:
            runner.send_message(GRANT, {"request": msg.data["request"], "slot": slot})

"""The provincial process's watch over its link agent: start it, restart it when it dies, kill it on demand.

The agent is a child process (``python -m rehearsal.portal.link``), so
killing it (-9) is what a real outbox process's crash looks like, and its
state (cursor, outbox) is only ever in the database. `LinkSupervisor` starts
it once the provincial system listens, looks at it every `TICK_S`, and
starts it again when it exited on its own (counted in ``agent_restarts``).
It stays down while an operator wants it down (``POST /api/admin/link
{"action": "kill"}`` until ``"start"``) or the fault ``link-kill`` is on;
the fault ``link-duplicates`` is passed to the agent through the database
(``link_state.duplicates``), which it reads before every push. The agent
dies with the provincial process (``PR_SET_PDEATHSIG``): no agent outlives
the system it serves.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.lock

from . import outbox
from .db import connect
from .faults import FaultState
from .settings import PortalSettings

log = logging.getLogger("rehearsal.portal")
#: Wall seconds between two looks at the agent.
TICK_S = 0.25
#: Wall seconds to wait before starting again an agent that exited on its own.
RESTART_AFTER_S = 1.0
#: The environment variable the agent reads its password from (set only in its own environment).
PASSWORD_ENV = "REHEARSAL_LINK_PASSWORD"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _die_with_parent() -> Callable[[], None]:
    """A preexec function: the child gets SIGTERM when this process dies, even by kill -9 (Linux)."""
    def preexec() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass  # not Linux: the agent may outlive a killed system, as any orphan would
    return preexec


class LinkSupervisor:
    """Starts, watches, restarts and kills one provincial system's link agent."""

    def __init__(self, settings: PortalSettings, faults: FaultState) -> None:
        assert settings.link is not None
        self.settings, self.faults = settings, faults
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.held_by_operator = False
        self.started_at: float | None = None
        self._duplicates: bool | None = None
        self._watching: gevent.Greenlet | None = None
        self._next_start = 0.0
        # One look at a time: starting a process yields to other greenlets, which must not start a second one.
        self._lock = gevent.lock.RLock()

    # -- what the agent should be doing ---------------------------------------------------------

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wanted(self) -> bool:
        """Whether the agent should run now: not held by an operator nor by the fault ``link-kill``."""
        return not self.held_by_operator and not self.faults.active("link-kill")

    def as_dict(self) -> dict[str, Any]:
        """What ``/api/stats`` shows of the agent."""
        return {"configured": True, "agent_alive": self.alive(), "agent_pid": self.proc.pid if self.alive()
                and self.proc else None, "agent_restarts": self.restarts, "agent_held": not self.wanted(),
                "agent_up_s": round(time.time() - self.started_at, 1) if self.alive() and self.started_at else None}

    # -- acting ---------------------------------------------------------------------------------

    def watch(self) -> None:
        """Start the agent and look after it until `stop` (a greenlet of the provincial process)."""
        self._watching = gevent.spawn(self._loop)

    def kill(self) -> None:
        """Kill the agent (-9) and keep it down until `start`."""
        with self._lock:
            self.held_by_operator = True
            self._kill()

    def start(self) -> None:
        """Let the agent run again, now."""
        self.held_by_operator = False
        self._next_start = 0.0
        self.tick()

    def faults_changed(self, _state: FaultState) -> None:
        """The faults were replaced: apply ``link-kill`` and ``link-duplicates`` now."""
        self.tick()

    def stop(self) -> None:
        """Stop the agent for good (the provincial process is stopping)."""
        if self._watching is not None:
            self._watching.kill()
        with self._lock:
            self.held_by_operator = True
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tick(self) -> None:
        """One look: the duplicates switch, then the agent started or killed as it should be."""
        with self._lock:
            self._look()

    def _look(self) -> None:
        duplicates = bool(self.faults.active("link-duplicates"))
        if duplicates != self._duplicates:
            conn = connect(self.settings)
            try:
                outbox.set_state(conn, "duplicates", int(duplicates))
            finally:
                conn.close()
            self._duplicates = duplicates
        if not self.wanted():
            self._kill()
        elif not self.alive() and time.monotonic() >= self._next_start:
            if self.proc is not None:  # it was running and exited by itself
                self.restarts += 1
                log.warning("link agent exited (code %s); starting it again", self.proc.returncode)
            self._spawn()

    def _loop(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 (the watch must outlive any one bad look)
                log.exception("link supervisor")
            gevent.sleep(TICK_S)

    def _spawn(self) -> None:
        link = self.settings.link
        assert link is not None
        env = {**os.environ, PASSWORD_ENV: link.password,
               "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}
        argv = [sys.executable, "-m", "rehearsal.portal.link", "--db", str(Path(self.settings.db_path).absolute()),
                *link.as_args(PASSWORD_ENV)]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent())
        self.started_at = time.time()
        self._next_start = time.monotonic() + RESTART_AFTER_S
        log.info("link agent started (pid %d) towards %s", self.proc.pid, link.national_url)

    def _kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
            log.warning("link agent killed (pid %d)", self.proc.pid)
        self.proc = None  # killed on purpose: not a restart when it runs again

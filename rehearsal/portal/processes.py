"""One system, several processes: the listening sockets they share, starting them, and what they share.

``--processes N`` serves a system (and a provincial system's front door)
from N processes. Process 0 (the one started) binds every listening socket
with ``SO_REUSEPORT``, then starts processes 1…N-1 (`start_peers`: the same
interpreter, ``python -m rehearsal.portal.peer``, the settings handed
over a pipe, never an argument: they carry secrets), which bind the same
addresses and ports with ``SO_REUSEPORT`` too; the kernel spreads new
connections over the N listening sockets by a hash of their addresses.

Why ``SO_REUSEPORT`` rather than one socket opened before a fork: the
processes are plain new interpreters (no fork of a process whose gevent hub,
SQLite connections and threads already run), the kernel balances
connections evenly instead of waking every process for each one (and letting
the least busy win most), and a process that dies takes only its own accept
queue with it. The cost: a connection stays with the process that accepted
it, however busy that process is.

``--listeners K`` opens K listening ports on the host (the first the one
asked for, the others chosen by the kernel): one source address can hold
about 28,000 connections to one address and port (the ephemeral port range),
so a harness spreads users over the URLs ``GET /api/health`` lists in
``urls``. Process 0 supervises the link agent; the others answer for it
through `LinkProxy`. Every process dies with process 0.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from .errors import PortalStartError
from .faults import FaultState
from .live import LiveView
from .peers import FAULT_POLL_S, NoCache, Peers, SharedDict, SharedList
from .settings import PortalSettings

#: Connections the kernel may queue before the portal accepts them (see `rehearsal.portal.server`).
BACKLOG = 4096
#: Wall seconds process 0 waits for the others to listen.
START_TIMEOUT_S = 60.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class ProcessPlan:
    """What one process of a system serves: its place among the others and the addresses they share."""

    settings: PortalSettings
    host: str = "127.0.0.1"
    ports: list[int] = field(default_factory=lambda: [0])
    """The listening ports (the first the system's own; ``0`` for process 0: any free port)."""
    front_door_port: int | None = None
    index: int = 0
    count: int = 1

    @property
    def urls(self) -> list[str]:
        """Every URL the system listens on."""
        return [f"http://{self.host}:{p}" for p in self.ports]


def listen(host: str, port: int, shared: bool) -> socket.socket:
    """A listening TCP socket; with `shared`, ``SO_REUSEPORT`` (other processes of the system bind it too)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise PortalStartError(f"cannot listen on {host}:{port}: {why}") from None
    sock.setblocking(False)
    return sock


def share(app: Flask, peers: Peers, scope: str) -> None:
    """Make an app of this process keep what a request may need from another process in the shared file."""
    view: LiveView = app.config["LIVE"]
    view.peers, view.scope = peers, scope
    faults: FaultState = app.config["FAULTS"]
    faults.dropped = SharedList(peers, f"{scope}:dropped")  # type: ignore[assignment]
    app.config.update(PEERS=peers, PEERS_SCOPE=scope, SESSIONS=NoCache(), OTPS=SharedDict(peers, f"{scope}:otps"),
                      DVCQG_SESSIONS=SharedDict(peers, f"{scope}:dvcqg"))
    if peers.index and app.config.get("LINK") is not None:
        app.config.update(LINK=LinkProxy(peers), ON_FAULTS=None)


def keep_in_step(apps: list[Flask], peers: Peers) -> None:
    """This process's loop (a greenlet): faults others published played here, counts published, the link's state."""
    import gevent

    while True:
        try:
            peers.publish_asked([app.config["LIVE"] for app in apps])
        except Exception:  # noqa: BLE001
            import logging

            logging.getLogger("rehearsal.portal").exception("publishing the counts")
        for app in apps:
            try:
                scope, faults = app.config["PEERS_SCOPE"], app.config["FAULTS"]
                if peers.sync_faults(scope, faults) and app.config.get("ON_FAULTS") is not None:
                    app.config["ON_FAULTS"](faults)
                peers.publish_due(app.config["LIVE"])
                link = app.config.get("LINK")
                if peers.index == 0 and link is not None:
                    for key, action in peers.kv_items("link-cmd"):
                        peers.kv_pop("link-cmd", key)
                        link.kill() if action == "kill" else link.start()
                    peers.kv_put("link", "state", link.as_dict())
            except Exception:  # noqa: BLE001 (the loop must outlive one failed look; the next one retries)
                import logging

                logging.getLogger("rehearsal.portal").exception("keeping the processes in step")
        gevent.sleep(FAULT_POLL_S)


class LinkProxy:
    """The link agent's supervisor as processes 1…N-1 see it: its state as process 0 published it."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers

    def as_dict(self) -> dict[str, Any]:
        return self.peers.kv_get("link", "state") or {"configured": True, "agent_alive": False, "agent_restarts": 0}

    def _ask(self, action: str) -> None:
        import gevent

        self.peers.kv_put("link-cmd", f"{time.time():.6f}-{self.peers.index}", action)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.peers.kv_items("link-cmd"):
            gevent.sleep(0.05)
        gevent.sleep(2 * FAULT_POLL_S)  # process 0 publishes the new state on its next look

    def kill(self) -> None:
        self._ask("kill")

    def start(self) -> None:
        self._ask("start")

    def faults_changed(self, _state: FaultState) -> None:
        pass  # process 0 reads the faults itself


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_peers(plan: ProcessPlan) -> list[subprocess.Popen[bytes]]:
    """Start processes 1…N-1 of the system and wait until each listens; `PortalStartError` if one cannot."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}
    procs = []
    for index in range(1, plan.count):
        proc = subprocess.Popen([sys.executable, "-m", "rehearsal.portal.peer"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(ProcessPlan(**{**plan.__dict__, "index": index})))
        proc.stdin.close()
        procs.append(proc)
    for index, proc in enumerate(procs, 1):
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the child's "ready" (gevent makes this wait cooperative)
        if not line.startswith(b"ready"):
            stop_peers(procs)
            raise PortalStartError(f"process {index} of {plan.count} did not start (see the log above)")
    return procs


def stop_peers(procs: list[subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    """Stop processes 1…N-1 (SIGTERM: they finish their requests in flight), killing the ones that hang."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""What citizens and officers share: a person with a session on the system they use now.

`PortalUser` holds the adapter of the system it talks to now
(`locustfiles.clients`: the national portal, a city portal, a one-stop
system); journeys call its methods through `PortalUser.portal` and never
build a URL. When a system says it has moved (``X-Portal-Moved``, a front
door closed at a cutover) every user of this process that was on it takes
the adapter of the system it moved to, signs in again there and goes on
(as people learnt it from the answers, not from us). The user keeps the
time of its last request so the harness counts active sessions the way
the systems do (while it has a session it is in the run context's
``signed_in``), scales every think time by the plan's time scale, and hands
dossier events to the telemetry (which writes the ledger) with the system
they happened on. Importing this module fixes two habits of
geventhttpclient's connection pool that would put the generator's own
waits into response times (`locustfiles.connections`); each user's cookie
jar skips its work on requests that carry no cookies (`locustfiles.cookies`).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import random
import time
from typing import Any

import gevent
from locust import FastHttpUser
from locust.exception import RescheduleTask

from locustfiles import connections, cookies, wire
from locustfiles.clients import SystemClient, adapter_class
from locustfiles.context import RunContext
from rehearsal.run.systems import Place

connections.install()
wire.install()

#: Locust starts the users of one spawn step all at once: above one user per
#: second its dispatcher hands out a batch every second (100 citizens in the
#: same millisecond at ``spawn_rate: 100``). Each user first waits a random part
#: of this many wall seconds, so arrivals are spread as people's are; without
#: it tools/bench/accuracy.py saw every batch queue in the portal's accept and
#: read path (client p50 70 ms on a 50 ms page whose server time was 51 ms).
SPAWN_SPREAD_S = 1.0
#: Moves followed in a row before a user stops following (a loop of front doors pointing at each other).
MAX_HOPS = 5


class PortalUser(FastHttpUser):
    """A person with a session on one system. Subclasses say what they do."""

    abstract = True
    #: Set by the locustfile's init hook before any user starts.
    ctx: RunContext
    #: Who sends the requests: the ``tag`` a gate can filter on (``error_rate{tag=officer}``).
    tag = ""
    #: ``citizen`` or ``officer``: which adapter a system gets for this user (`rehearsal.run.systems.Systems.place`).
    role = ""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        cookies.install(self)  # the same jar, without its work on requests that carry no cookies
        self._portal: SystemClient | None = None
        self.session_lost = False
        self.last_active = 0.0
        self.rng = random.Random()
        #: Open model: when this visit's arrival was due; the next request is measured from it.
        self.intended: float | None = None
        self._context = {"tag": self.tag}

    def context(self) -> dict[str, Any]:
        """Sent with every request event: the latency recorder files the request under this tag."""
        return self._context  # built once: Locust copies it into each request's own context, never changes it

    # -- the system it talks to -------------------------------------------------
    def place(self, where: Place) -> SystemClient:
        """Talk to `where` from now on (a new adapter: no session there yet)."""
        self._portal = adapter_class(where.adapter)(self, where.system, where.url)
        return self._portal

    @property
    def portal(self) -> SystemClient:
        """The adapter of the system this user talks to now, after any move this process has learnt of."""
        current = self._portal
        assert current is not None, "a user is placed on a system at its start"
        moves = self.ctx.moves
        if not moves:  # (every request asks: nothing has moved in most of a rehearsal)
            return current
        hops = 0
        while current.url in moves and hops < MAX_HOPS:
            self.lose_session()  # the session was the old system's
            current = self.place(self.ctx.systems.moved(moves[current.url], self.role))
            hops += 1
        return current

    @property
    def token(self) -> str | None:
        """The session on the current system (None: signed out, or lost with a move)."""
        return self._portal.token if self._portal is not None else None

    @property
    def system(self) -> str:
        return self._portal.system if self._portal is not None else ""

    # -- time ---------------------------------------------------------------
    def spread_start(self) -> None:
        """Wait a random part of Locust's spawn step before the first request (see `SPAWN_SPREAD_S`)."""
        gevent.sleep(self.rng.uniform(0.0, SPAWN_SPREAD_S))

    def think(self, low_s: float, high_s: float) -> None:
        """Sleep a simulated think time, compressed by the time scale."""
        gevent.sleep(self.rng.uniform(low_s, high_s) / self.ctx.time_scale)

    # -- what happened ------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> None:
        """An event for the ledger, with the system this user talks to now (unless `fields` name it)."""
        fields.setdefault("system", self.system)
        self.ctx.telemetry.emit(kind, **fields)

    def moved(self, client: SystemClient, url: str) -> None:
        """`client`'s system answered that it moved to `url`: this process's users follow (if the list allows)."""
        if self.ctx.moved_to(client.url, url):
            self.emit("portal_moved", user=self.who(), portal=url, system=client.system)
        if client is self._portal:
            self.lose_session()

    # -- the session --------------------------------------------------------
    def signed_in(self, client: SystemClient) -> None:
        """`client`'s system gave this user a session."""
        if self.session_lost:
            # Signed in again after losing the session (a cutover), whichever way: restored before the next
            # call, or an officer's next round or a citizen's next visit signing in as it always does.
            self.emit("session_restored", user=self.who(), portal=client.url, system=client.system)
        self.session_lost = False
        self.last_active = time.time()
        self.ctx.signed_in.add(self)

    def who(self) -> str:
        return f"{type(self).__name__}:{getattr(self, 'identity', '?')}"

    def lose_session(self) -> None:
        """The session is gone with the system it was on; the next call signs in again first."""
        if self._portal is not None and self._portal.token:
            self.emit("session_lost", user=self.who())
            self._portal.forget_session()
            self.session_lost = True
            self.ctx.signed_in.discard(self)

    def restore_session(self) -> bool:
        """Sign in again as the same person after a cutover; True if it worked."""
        raise NotImplementedError

    def sign_out(self) -> None:
        if self._portal is not None and self._portal.token:
            self.portal.sign_out()
        self.ctx.signed_in.discard(self)

    def on_stop(self) -> None:
        # Sign out when the stage stops this user, as a person closing the tab would not, but as a
        # rehearsal must: otherwise the systems count these sessions as active into the next stage.
        try:
            self.sign_out()
        except Exception:  # noqa: BLE001 (stopping: a failed logout is not worth a traceback)
            pass
        self.ctx.signed_in.discard(self)

    def require(self, status: int, body: Any, *fields: str) -> dict[str, Any]:
        """The answer's body if the call worked; otherwise give up this task."""
        if status not in (200, 201) or not isinstance(body, dict) or any(f not in body for f in fields):
            self.think(5, 15)  # back off before the next attempt
            raise RescheduleTask()
        return body

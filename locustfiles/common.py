"""What citizens and officers share: a signed-in session against the portal.

`PortalUser` carries the session token in an ``Authorization`` header (not a
cookie, so FastHttpUser and HttpUser behave the same), keeps the time of its
last request so the harness can count active sessions the way the portal
does (while it has a session it is in the run context's ``signed_in``),
scales every think time by the plan's time scale, and hands dossier events
to the telemetry (which writes the ledger). Importing this module
fixes two habits of geventhttpclient's connection pool that would put the
generator's own waits into response times (`locustfiles.connections`).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import random
import time
from typing import Any

import gevent
from locust import FastHttpUser
from locust.exception import RescheduleTask

from locustfiles import connections
from locustfiles.context import RunContext

connections.install()

#: Locust starts the users of one spawn step all at once: above one user per
#: second its dispatcher hands out a batch every second (100 citizens in the
#: same millisecond at ``spawn_rate: 100``). Each user first waits a random part
#: of this many wall seconds, so arrivals are spread as people's are; without
#: it tools/bench/accuracy.py saw every batch queue in the portal's accept and
#: read path (client p50 70 ms on a 50 ms page whose server time was 51 ms).
SPAWN_SPREAD_S = 1.0


class PortalUser(FastHttpUser):
    """A person with a portal session. Subclasses say what they do."""

    abstract = True
    #: Set by the locustfile's init hook before any user starts.
    ctx: RunContext
    #: Who sends the requests: the ``tag`` a gate can filter on (``error_rate{tag=officer}``).
    tag = ""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.token: str | None = None
        self.token_portal = ""
        self.session_lost = False
        self.last_active = 0.0
        self.rng = random.Random()
        #: Open model: when this visit's arrival was due; the next request is measured from it.
        self.intended: float | None = None

    def context(self) -> dict[str, Any]:
        """Sent with every request event: the latency recorder files the request under this tag."""
        return {"tag": self.tag}

    # -- time ---------------------------------------------------------------
    def spread_start(self) -> None:
        """Wait a random part of Locust's spawn step before the first request (see `SPAWN_SPREAD_S`)."""
        gevent.sleep(self.rng.uniform(0.0, SPAWN_SPREAD_S))

    def think(self, low_s: float, high_s: float) -> None:
        """Sleep a simulated think time, compressed by the time scale."""
        gevent.sleep(self.rng.uniform(low_s, high_s) / self.ctx.time_scale)

    # -- requests -----------------------------------------------------------
    def call(self, method: str, path: str, name: str, *, ok: tuple[int, ...] = (200, 201),
             expect: tuple[int, ...] = (), **kwargs: Any) -> tuple[int, Any]:
        """One request; returns (status, parsed JSON or None).

        A status in `ok` counts as success; a status in `expect` (e.g. 409
        when another officer was quicker) is an answer we can act on and also
        counts as success; anything else is a failure in Locust's stats and a
        ``request_failed`` event in the ledger.
        """
        if self.token and self.token_portal != self.ctx.portal_url:
            self.lose_session()  # another user of this process learnt the portal moved: this token is for the old one
        if self.session_lost and self.token is None and not path.startswith("/api/auth/"):
            self.restore_session()  # `signed_in` counts it; if it failed, the next call tries again
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = path if path.startswith(("http://", "https://")) else self.ctx.portal_url + path
        context = {"intended": self.intended} if self.intended else {}
        self.intended = None
        with self.client.request(method, url, name=name, headers=headers, allow_redirects=path.startswith("/pay/"),
                                 catch_response=True, context=context, **kwargs) as resp:
            status = resp.status_code or 0
            body: Any = None
            try:
                if resp.content:
                    body = json.loads(resp.content)
            except (ValueError, TypeError):
                body = None
            if self.token:
                self.last_active = time.time()
            moved = resp.headers.get("X-Portal-Moved") if resp.headers else None
            if moved:
                # The legacy portal has closed (503 or a redirect): go to the new one, sign in again there.
                if self.ctx.moved_to(moved):
                    self.ctx.telemetry.emit("portal_moved", user=self.who(), portal=self.ctx.portal_url)
                self.lose_session()
            elif status == 401 and self.token and not path.startswith("/api/auth/"):
                # The portal no longer knows this session (expired, or a load balancer moved us to
                # another portal): sign in again before the next call.
                self.lose_session()
            if status in ok or status in expect:
                resp.success()
            else:
                error = (body or {}).get("error") if isinstance(body, dict) else None
                transport = getattr(resp, "error", None)  # a redirect answer (308) carries no .error
                message = error or (str(transport) if transport else f"HTTP {status}")
                resp.failure(message)
                self.ctx.telemetry.emit("request_failed", name=name, method=method,
                                        status=status, error=str(message)[:200])
            return status, body

    def signed_in(self, token: str) -> None:
        if self.session_lost:
            # Signed in again after losing the session (a cutover), whichever way: restored before the next
            # call, or an officer's next round or a citizen's next visit signing in as it always does.
            self.ctx.telemetry.emit("session_restored", user=self.who(), portal=self.ctx.portal_url)
        self.token = token
        self.token_portal = self.ctx.portal_url
        self.session_lost = False
        self.last_active = time.time()
        self.ctx.signed_in.add(self)

    def who(self) -> str:
        return f"{type(self).__name__}:{getattr(self, 'identity', '?')}"

    def lose_session(self) -> None:
        """The session is gone with the portal it was on; the next call signs in again first."""
        if self.token:
            self.ctx.telemetry.emit("session_lost", user=self.who())
            self.token = None
            self.session_lost = True
            self.ctx.signed_in.discard(self)

    def restore_session(self) -> bool:
        """Sign in again as the same person after a cutover; True if it worked."""
        raise NotImplementedError

    def sign_out(self) -> None:
        if self.token:
            self.call("POST", "/api/auth/logout", name="/api/auth/logout")
        self.token = None
        self.ctx.signed_in.discard(self)

    def on_stop(self) -> None:
        # Sign out when the stage stops this user, as a person closing the tab would not, but as a
        # rehearsal must: otherwise the portal counts these sessions as active into the next stage.
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

"""What every adapter shares: one system as one user speaks to it (its address, its session, its request names).

A `SystemClient` sends a user's requests to one system through the user's
Locust client (to one of the system's listeners when it lists several:
`locustfiles.clients.listeners`), so Locust's statistics, the latency recorder and the
allowed-list fence see every request as before. It carries the session
token the way its system wants it (`session_headers`), names each request
for Locust (`request_name`: the path template, prefixed with the system's
name for a former province's systems, ``brvt /api/officer/queue``, so
latency per request type still reads per system), reads the system's error
shape (`error_of`), and tells its user what the answers mean for the
session: ``X-Portal-Moved`` (a front door closed at a cutover: the user
moves, `PortalUser.moved`), a 401 (the session is gone: sign in again
before the next call). A failed request is a ``request_failed`` event in
the ledger, with the system it happened on.

Adapters never decide what a person does next (that is the journey:
`locustfiles.citizens`, `locustfiles.officers`); journeys never build a
URL (that is the adapter's job). A team rehearsing its own system writes one
subclass for its API (docs/targets.md).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from locustfiles import wire
from locustfiles.clients.listeners import listener_for

if TYPE_CHECKING:
    from locustfiles.common import PortalUser

#: Systems whose request names carry their name first (the main ones keep the bare path template).
MAIN_SYSTEMS = ("national", "hcmc", "city", "portal", "legacy")
_NO_CONTEXT: dict[str, Any] = {}


@dataclass
class Dossier:
    """A citizen's dossier as the harness keeps it: its code (the key both systems share) and where it was filed."""

    code: str
    """MaHoSo."""
    system: str
    """The system it was filed on (national, city, brvt, …)."""
    ref: Any = None
    """How that system addresses it (the national portal: its id; the city portal: the code)."""
    payment_required: bool = False
    id: int | None = None
    """The id the system it was filed on gave it (the ledger's ``id``)."""


class SystemClient:
    """One system of a target, as one user speaks to it. Subclasses are the adapters."""

    #: The adapter's kind (``national``, ``city``, ``onestop``): which journeys it serves.
    kind = ""
    #: Who uses it: ``citizen`` or ``officer``.
    role = ""

    def __init__(self, user: PortalUser, system: str, url: str) -> None:
        self.user = user
        #: The system's name (national, city, hcmc, brvt, binh-duong…): the ledger's ``system``.
        self.system = system
        #: Where it sends requests: `url`, or one of the system's listeners (`listeners.listener_for`).
        self.url = listener_for(url, getattr(user, "identity", None))
        self.token: str | None = None
        #: This system's own reference for a dossier, by code (e.g. the national portal's id).
        self.refs: dict[str, Any] = {}
        # `session_headers` for the token it was made for (made again when the token changes), and the prefix of
        # `request_name`: built once, not on every request (tools/bench/overhead.py counts every microsecond here).
        self._headers_token: str | None = None
        self._headers: dict[str, str] = {}
        self._named = system not in MAIN_SYSTEMS

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.system!r}, {self.url!r})"

    # -- what subclasses say about their system ----------------------------------------
    def session_headers(self) -> dict[str, str]:
        """The headers that carry this user's session on this system, made from `token`.

        Called once per token (`request` keeps them until the token changes), not on every request.
        """
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def error_of(self, body: Any) -> str | None:
        """The error message of an answer in this system's shape, if it has one."""
        return body.get("error") if isinstance(body, dict) else None

    def request_name(self, name: str) -> str:
        """Locust's name for a request (stable per system: the path template)."""
        return f"{self.system} {name}" if self._named else name

    # -- sending ---------------------------------------------------------------------------
    def request(self, method: str, path: str, name: str, *, ok: tuple[int, ...] = (200, 201),
                expect: tuple[int, ...] = (), signed: bool = True, **kwargs: Any) -> tuple[int, Any]:
        """One request; (status, parsed JSON or None).

        A status in `ok` counts as success; one in `expect` (e.g. 409 when
        another officer was quicker) is an answer the journey acts on and
        counts as success too; anything else is a failure in Locust's stats
        and a ``request_failed`` event. `signed` requests need the session:
        a user who lost it (a cutover) signs in again first.
        """
        user = self.user
        if signed and self.token is None and user.session_lost:
            user.restore_session()  # `signed_in` counts it; if it failed, the next call tries again
        headers = kwargs.pop("headers", None)
        if signed and self.token:
            if self._headers_token != self.token:
                self._headers, self._headers_token = self.session_headers(), self.token
            if headers:
                headers.update(self._headers)
            else:
                headers = self._headers  # (Locust copies the headers it is given: this dict is never changed)
        url = path if path.startswith(("http://", "https://")) else self.url + path
        if user.intended:
            context = {"intended": user.intended}
            user.intended = None
        else:
            context = _NO_CONTEXT  # (Locust merges it into a new dict: never changed)
        allow_redirects = kwargs.pop("allow_redirects", False)
        wire.reset()  # this request's stamps only (locustfiles/wire.py)
        with user.client.request(method, url, name=self.request_name(name), headers=headers,
                                 allow_redirects=allow_redirects, catch_response=True, context=context,
                                 **kwargs) as resp:
            status = resp.status_code or 0
            body: Any = None
            try:
                if resp.content:
                    body = json.loads(resp.content)
            except (ValueError, TypeError):
                body = None
            if self.token:
                user.last_active = time.time()
            headers = resp.headers  # (not its truth value: Headers.__len__ counts every header; and a look-up that
            # finds nothing raises and catches a KeyError inside Headers.get: asked with `in` first)
            moved = headers["X-Portal-Moved"] if headers is not None and "X-Portal-Moved" in headers else None
            if moved:
                # The front door has closed (503 or a redirect): go where it says, sign in again there.
                user.moved(self, moved)
            elif status == 401 and self.token and signed:
                # The system no longer knows this session (expired, or a load balancer moved us): sign in again.
                user.lose_session()
            if status in ok or status in expect:
                resp.success()
            else:
                transport = getattr(resp, "error", None)  # a redirect answer (308) carries no .error
                message = self.error_of(body) or (str(transport) if transport else f"HTTP {status}")
                resp.failure(message)
                user.emit("request_failed", name=self.request_name(name), method=method, status=status,
                          error=str(message)[:200])
            return status, body

    def signed_in(self, token: str) -> None:
        """This system gave the user a session."""
        self.token = token
        self.user.signed_in(self)

    def forget_session(self) -> None:
        self.token = None

    def sign_out(self) -> None:
        """End the session on this system (if there is one)."""
        self.token = None

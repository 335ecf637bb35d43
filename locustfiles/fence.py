"""The allowed list inside every Locust process: the hosts users start on, move to and connect to.

`rehearse run` checks its target before it starts Locust, but the
locustfile also runs on its own (``locust -f locustfiles/locustfile.py
--host …``), as a worker that learns its host from whatever master it joins,
and it reads what portals answer (``X-Portal-Moved`` at a cutover, a
payment's ``redirect_url``, the redirect the payment page answers). So each
process checks for itself, against the targets file's allowed list
(`rehearsal.run.targets.AllowedHosts`) with the hosts confirmed by
``--confirm-target`` (on a worker: the master's, sent with each spawn):

- `Fence.admit`, at init and at test_start: the host users start on and the
  national portal. Refused, the process prints one line and exits 2 before
  any request (`refuse`).
- `Fence.follow`: the address a portal says it has moved to. Refused, users
  stay where they are; the refusal is logged once and put in the ledger.
- `install`: the last door. Every request of every user, each redirect hop
  included, gets its connection from geventhttpclient's client pool; a host
  the list refuses gets none, and the request fails (`HostRefused`, which
  Locust counts as a failed request) instead of leaving.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import logging
import sys
from typing import Any, NoReturn

from geventhttpclient.client import HTTPClientPool
from geventhttpclient.url import URL
from locust.env import Environment
from locust.rpc import Message
from locust.runners import WorkerRunner

from rehearsal.errors import RehearsalError
from rehearsal.run.targets import AllowedHosts, load_allowed_hosts
from rehearsal.shared.net import host_key

log = logging.getLogger("rehearsal.fence")


class HostRefused(ConnectionRefusedError):
    """A request for a host the allowed list refuses: it was not sent."""


def refuse(message: str) -> NoReturn:
    """One line on stderr and exit code 2, instead of sending load where it may not go."""
    print(f"locustfile: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class Fence:
    """This process's allowed list; the confirmed hosts are read from the options at each check."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        try:
            self.allowed = load_allowed_hosts()
        except RehearsalError as exc:
            refuse(str(exc))
        self._confirmed_text: str | None = None
        self._permits: dict[str, bool] = {}
        self.refused_moves: set[str] = set()

    def _confirmed(self) -> str:
        text = str(getattr(self.env.parsed_options, "confirm_target", "") or "")
        if text != self._confirmed_text:  # a worker gets the master's options with its first spawn
            self._confirmed_text, self._permits = text, {}
        return text

    def hosts(self) -> AllowedHosts:
        """The allowed list with the hosts confirmed now (``--confirm-target``: comma-separated)."""
        confirmed = tuple(host_key(h) for h in self._confirmed().split(",") if h.strip())
        return AllowedHosts(self.allowed.hosts, confirmed, self.allowed.source)

    def admit(self, url: str, *, what: str) -> str:
        """`url` normalised; or, if load may not go there, one line and exit 2 (`refuse`)."""
        try:
            return self.hosts().check(url, what=what)
        except RehearsalError as exc:
            runner = self.env.runner
            if isinstance(runner, WorkerRunner):  # tell the master, rather than leave it waiting for a heartbeat
                runner.client.send(Message("quit", None, runner.client_id))
            refuse(str(exc))

    def follow(self, url: str) -> str | None:
        """The address a portal moved users to, normalised; None (users stay) if the list refuses it."""
        try:
            return self.hosts().check(url, what="X-Portal-Moved")
        except RehearsalError as exc:
            if url not in self.refused_moves:
                self.refused_moves.add(url)
                log.error("not following the portal's move: %s", exc)
                ctx: Any = getattr(self.env, "rehearsal", None)
                if ctx is not None:
                    ctx.telemetry.emit("portal_move_refused", portal=url[:200], error=str(exc)[:200])
            return None

    def permits(self, host: str) -> bool:
        """Whether a connection to `host` may be opened (cached per host: this runs on every request)."""
        self._confirmed()
        allowed = self._permits.get(host)
        if allowed is None:
            allowed = self._permits[host] = self.hosts().permits(host)
        return allowed

    def permits_url(self, url: URL) -> bool:
        """`permits` for the host of `url`, cached by its network location as written (no parsing per request)."""
        self._confirmed()
        key = "//" + url.netloc  # apart from the hosts: a netloc holds a port and may hold a user
        allowed = self._permits.get(key)
        if allowed is None:
            allowed = self._permits[key] = self.permits(url.host)
        return allowed


def install(fence: Fence) -> None:
    """Check every host the users ask geventhttpclient's client pool for against `fence`.

    The pool keeps one client per host and port, made on the first request
    there; a host is checked when its client would be made, and every time
    again while the list refuses it (no client is made). A host's client
    exists only if the list permitted it, so the requests after the first
    cost one lookup in the pool, as without the fence. The list only grows
    while a process runs (a worker's confirmed hosts arrive with its first
    spawn, before any user has started).
    """
    original = getattr(HTTPClientPool.get_client, "__wrapped__", HTTPClientPool.get_client)

    def get_client(self: HTTPClientPool, url: str | URL) -> Any:
        if not isinstance(url, URL):
            url = URL(url)
        client = self.clients.get((url.host, url.port))
        if client is not None:
            return client
        if not fence.permits_url(url):
            raise HostRefused(f"host {url.host!r} is not an allowed target host (config/targets.yaml): "
                              f"the request was not sent")
        return original(self, url)

    get_client.__wrapped__ = original  # type: ignore[attr-defined]
    HTTPClientPool.get_client = get_client  # type: ignore[method-assign]

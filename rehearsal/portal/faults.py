"""Faults the reference portal can be told to have, and the cutover's closed door.

The harness sets them at the planned minute through the admin API
(``PUT /api/admin/faults``, ``POST /api/admin/close``); the portal applies
them to every request before its handler runs. Kinds:

``latency``
    hold matching requests: ``delay_s`` fixed, ``delay_s: [low, high]``
    uniform, or ``mean_s`` exponential. Wall-clock seconds: latency is a
    property of the network and servers, it is not compressed by the time scale.
``errors``
    answer a share (``rate``) of matching requests with ``status`` (default 503).
``outage``
    answer every request 503 with ``Retry-After`` (health and admin still answer).
``slow-agency``
    the second agency keeps liên thông dossiers handed to it ``factor`` times longer.
``silent-drop``
    answer a submission 201 and then delete the dossier: a share ``rate`` of
    accepted dossiers vanish. It exists only to prove the reconciliation
    catches it; the ids dropped are kept (``GET /api/admin/faults``).

``link-slow``, ``link-errors``, ``link-down``, ``vneid-overload`` (the national portal)
    the integration API (``/api/dvcqg/*``) held like ``latency`` (``delay_s``
    or ``mean_s``); a share ``rate`` of integration calls answered HTTP 200
    ``{"error_code": "-1", "message": "Kết nối tới hệ thống thất bại"}``;
    every integration call answered 503; a share ``rate`` of VNeID sign-ins
    (``/api/auth/vneid/*``) answered 503 "Kết nối tới hệ thống thất bại", as on
    30/6/2025.
``link-duplicates``, ``link-kill`` (a provincial system)
    its link agent pushes every batch twice; its link agent is killed (-9)
    and stays down while the fault is on (``POST /api/admin/link`` does the
    same by hand).

Any fault may carry ``duration_s``: it ends by itself that many wall seconds
after it was set (a link down "for a window" without a second call). A kind
the system does not play (``link-kill`` on the national portal) is refused,
naming ``faults[i].kind``.

Endpoints are patterns on ``"METHOD /route"`` (Flask's route with its
``<int:id>`` placeholders), matched with `fnmatch`: ``"POST /api/dossiers"``,
``"* /api/auth/*"``, ``"*"``. No endpoints means all of them.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import FaultSpecError

KINDS = ("latency", "errors", "outage", "slow-agency", "silent-drop")
#: The kinds each system plays: the single portal of old the five above, and each system its link's.
SYSTEM_KINDS = {"portal": KINDS, "national": (*KINDS, "link-slow", "link-errors", "link-down", "vneid-overload"),
                "provincial": (*KINDS, "link-duplicates", "link-kill")}
#: What the national portal answers when a link or VNeID fault says it cannot reach its own systems.
CONNECTION_FAILED = "Kết nối tới hệ thống thất bại"
#: Paths a fault never touches: the portal must stay observable and controllable.
EXEMPT_PREFIXES = ("/api/admin/", "/api/health", "/api/stats", "/api/timings", "/metrics")


@dataclass
class PortalFault:
    """One active fault (the plan's `StageFault` is what a stage declares; this is what the portal plays)."""

    id: str
    kind: str
    endpoints: tuple[str, ...] = ()
    delay_s: tuple[float, float] | None = None
    mean_s: float | None = None
    rate: float = 1.0
    status: int = 503
    factor: float = 1.0
    duration_s: float | None = None
    until: float | None = None
    """When it ends by itself (``time.monotonic()``), for a fault given a ``duration_s``."""

    def live(self, now: float) -> bool:
        return self.until is None or now < self.until

    def matches(self, endpoint: str) -> bool:
        return not self.endpoints or any(fnmatch.fnmatchcase(endpoint, p) for p in self.endpoints)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "endpoints": list(self.endpoints),
                "delay_s": list(self.delay_s) if self.delay_s else None, "mean_s": self.mean_s,
                "rate": self.rate, "status": self.status, "factor": self.factor, "duration_s": self.duration_s}


def parse_fault(data: Any, index: int, kinds: tuple[str, ...] = KINDS) -> PortalFault:
    """A fault from its JSON form; `FaultSpecError` naming ``faults[i].field`` if it is wrong."""
    where = f"faults[{index}]"
    if not isinstance(data, dict):
        raise FaultSpecError(where, "expected an object")
    kind = data.get("kind")
    if kind not in kinds:
        raise FaultSpecError(f"{where}.kind", f"expected one of {', '.join(kinds)}; found {kind!r}")
    endpoints = data.get("endpoints") or []
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise FaultSpecError(f"{where}.endpoints", "expected a list of 'METHOD /route' patterns")

    def number(name: str, default: float, lo: float, hi: float) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise FaultSpecError(f"{where}.{name}", f"expected a number from {lo:g} to {hi:g}; found {value!r}")
        return float(value)

    fault = PortalFault(id=str(data.get("id") or f"{kind}-{index}"), kind=kind, endpoints=tuple(endpoints))
    if data.get("duration_s") is not None:
        fault.duration_s = number("duration_s", 0, 0, 86400)
        fault.until = time.monotonic() + fault.duration_s
    if kind in ("latency", "link-slow"):
        delay = data.get("delay_s")
        if isinstance(delay, list) and len(delay) == 2 and all(isinstance(x, (int, float)) for x in delay) \
                and 0 <= delay[0] <= delay[1] <= 600:
            fault.delay_s = (float(delay[0]), float(delay[1]))
        elif isinstance(delay, (int, float)) and not isinstance(delay, bool) and 0 <= delay <= 600:
            fault.delay_s = (float(delay), float(delay))
        elif delay is None and "mean_s" in data:
            fault.mean_s = number("mean_s", 0, 0, 600)
        else:
            raise FaultSpecError(f"{where}.delay_s", f"expected seconds, [low, high] or mean_s; found {delay!r}")
    elif kind in ("errors", "silent-drop", "link-errors", "vneid-overload"):
        fault.rate = number("rate", 1.0, 0, 1)
        fault.status = int(number("status", 503, 400, 599))
    elif kind == "slow-agency":
        fault.factor = number("factor", 4.0, 1, 1000)
    return fault


@dataclass
class Closed:
    """The legacy face after the cutover: it no longer takes anything."""

    mode: str
    """``503`` (Service Unavailable with Retry-After and the new address) or ``redirect`` (308 to it)."""
    moved_to: str
    retry_after_s: int = 30


@dataclass
class FaultState:
    """What the portal is told to suffer now; shared by all requests (guarded by a lock)."""

    faults: list[PortalFault] = field(default_factory=list)
    closed: Closed | None = None
    dropped: list[int] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, faults: list[PortalFault]) -> None:
        with self.lock:
            self.faults = faults

    def active(self, kind: str, endpoint: str | None = None) -> list[PortalFault]:
        now = time.monotonic()
        return [f for f in self.faults if f.kind == kind and f.live(now) and (endpoint is None or f.matches(endpoint))]

    def delay_for(self, endpoint: str, kind: str = "latency") -> float:
        total = 0.0
        for f in self.active(kind, endpoint):
            if f.mean_s is not None:
                total += self.rng.expovariate(1 / f.mean_s) if f.mean_s > 0 else 0.0
            elif f.delay_s:
                total += self.rng.uniform(*f.delay_s)
        return total

    def error_for(self, endpoint: str) -> int | None:
        for f in self.active("errors", endpoint):
            if self.rng.random() < f.rate:
                return f.status
        return None

    def hits(self, kind: str) -> bool:
        """Whether this call is one of the share (``rate``) a fault of `kind` takes."""
        return any(self.rng.random() < f.rate for f in self.active(kind))

    def outage(self) -> bool:
        return bool(self.active("outage"))

    def agency_factor(self) -> float:
        factor = 1.0
        for f in self.active("slow-agency"):
            factor *= f.factor
        return factor

    def drop_this(self) -> bool:
        return any(self.rng.random() < f.rate for f in self.active("silent-drop"))

    def as_dict(self) -> dict[str, Any]:
        return {"faults": [f.as_dict() for f in self.faults],
                "closed": None if self.closed is None else {"mode": self.closed.mode, "moved_to": self.closed.moved_to,
                                                            "retry_after_s": self.closed.retry_after_s},
                "dropped": list(self.dropped)}

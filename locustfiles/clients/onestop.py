"""`OneStop`: officers on a provincial one-stop system (hệ thống một cửa), in the reference's shape (docs/portal-api.md).

Sign-in with the officer's account, the unit's queue by status (oldest
first, leaving out what waits at the second agency), and one call per step
of the one-stop chain: receive, refuse at intake, process, ask for a
supplement, hand a liên thông dossier to the second agency and take it
back, decide, return the result, stop a dossier whose citizen withdrew it.

The journey (`locustfiles.officers`) reads a queue item as
`QueueItem` describes it; an adapter for another system's officer API
returns its dossiers in that shape and takes the same step names
(`STEPS`). That is the whole seam: plan, ledger, reconciliation and gates
stay as they are (docs/targets.md).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

from collections.abc import Iterable
from typing import Any, TypedDict

from locustfiles.clients.base import SystemClient

#: The steps a journey may ask for, by the reference's path names.
STEPS = ("receive", "refuse-intake", "process", "request-supplement", "transfer", "take-back", "decide", "return",
         "stop")


class QueueItem(TypedDict, total=False):
    """One dossier of an officer's queue, as every officer adapter returns it."""

    id: int
    """The system's id (what the step calls address)."""
    code: str
    """MaHoSo."""
    status: int
    """DossierStatus (1–10)."""
    agency_state: str | None
    """``at_agency`` while the second agency has it, ``back`` when it has answered."""
    lien_thong: bool
    agency_done: bool
    supplement_count: int


class OneStop(SystemClient):
    """A provincial one-stop system's officer API."""

    kind = "onestop"
    role = "officer"

    def sign_in(self, username: str, password: str) -> None:
        """Sign in as one officer account; the journey task is rescheduled if it fails."""
        status, body = self.request("POST", "/api/auth/officer", "/api/auth/officer", signed=False,
                                    json={"username": username, "password": password})
        self.signed_in(self.user.require(status, body, "token")["token"])

    def sign_out(self) -> None:
        if self.token:
            self.request("POST", "/api/auth/logout", "/api/auth/logout")
        self.token = None

    def queue(self, statuses: Iterable[int], limit: int = 20) -> tuple[int, list[QueueItem]]:
        """(HTTP status, the unit's dossiers in these statuses that can be stepped on now, oldest first)."""
        status, body = self.request("GET", "/api/officer/queue", "/api/officer/queue",
                                    params={"status": ",".join(str(int(s)) for s in statuses), "limit": limit,
                                            "actionable": 1})
        items = body.get("items", []) if isinstance(body, dict) else []
        return status, [i for i in items if isinstance(i, dict) and "id" in i and "status" in i]

    def step(self, item: QueueItem, action: str, body: dict[str, Any] | None = None) -> tuple[bool, Any]:
        """One step on one dossier: (taken, its status after). 409 (someone was quicker) is not a failure."""
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        status, answer = self.request("POST", f"/api/officer/dossiers/{item['id']}/{action}",
                                      f"/api/officer/dossiers/[id]/{action}", expect=(409,), **kwargs)
        if status in (200, 201):
            return True, (answer or {}).get("status") if isinstance(answer, dict) else None
        return False, None

"""Talking to a portal as its operator: admin calls and the migration of dossiers between portals.

Plain `urllib` (no gevent of its own): used by the Locust master's timeline
(where gevent has patched it) and by tools/cutover_nginx.py (where it has not).
`base` is a normalised base URL (`rehearsal.shared.net.parse_base_url`), already
checked against the allowed list; no redirect is followed.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from ..shared.net import urlopen
from ..shared.status import ENDED


def open_dossiers(base: str, *, token: str | None = None, page: int = 1000) -> list[dict[str, Any]]:
    """Every dossier still open on a system (its admin export, ``open=1``)."""
    after, rows = 0, []
    while True:
        body = admin_call(base, "GET", f"/api/admin/dossiers?open=1&after_id={after}&limit={page}", token=token)
        rows += body.get("items", [])
        after = body.get("next_after_id")
        if not body.get("items") or not after:
            return rows


def admin_call(base: str, method: str, path: str, body: Any = None, *, token: str | None = None,
               timeout: float = 60.0, headers: dict[str, str] | None = None) -> Any:
    """One admin request to a portal (`headers` added: a session for a smoke journey); the parsed JSON answer.
    Raises OSError on failure."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        headers["X-Admin-Token"] = token
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)
    with urlopen(req, timeout=timeout) as r:  # no redirect followed: the admin token stays with `base`
        return json.loads(r.read())


def migrate(legacy: str, national: str, *, token: str | None = None, page: int = 500) -> dict[str, Any]:
    """Copy the dossiers of `legacy` to `national`; the counts, and the ids and codes of those that were open.

    `national` is wherever they move to: the national portal of old, or HCMC's
    one-stop system for a former province's (which keeps their codes and
    ids, and pushes each to the national portal through its link).

    The open ones are what a migration must carry (their processing goes on
    on the national portal). The finished ones are copied too, as the record
    a citizen can still look up; they are counted apart (``finished_copied``).
    """
    after, ids, codes, imported, already, finished = 0, [], [], 0, 0, 0
    while True:
        body = admin_call(legacy, "GET", f"/api/admin/dossiers?full=1&after_id={after}&limit={page}", token=token)
        items = body.get("items", [])
        if items:
            answer = admin_call(national, "POST", "/api/admin/import", {"items": items}, token=token)
            imported += answer["imported"]
            already += answer["already"]
            opened = [i["id"] for i in items if i["status"] not in ENDED]
            ids += opened
            codes += [i.get("code") for i in items if i["status"] not in ENDED]
            finished += len(items) - len(opened)
        after = body.get("next_after_id")
        if not items or not after:
            return {"open_at_close": len(ids), "imported": imported, "already_there": already,
                    "finished_copied": finished, "ids": ids, "codes": codes}

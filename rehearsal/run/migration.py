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


def admin_call(base: str, method: str, path: str, body: Any = None, *, token: str | None = None,
               timeout: float = 60.0) -> Any:
    """One admin request to a portal; the parsed JSON answer. Raises OSError on failure."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Admin-Token"] = token
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)
    with urlopen(req, timeout=timeout) as r:  # no redirect followed: the admin token stays with `base`
        return json.loads(r.read())


def migrate(legacy: str, national: str, *, token: str | None = None, page: int = 500) -> dict[str, Any]:
    """Copy the dossiers of `legacy` to `national`; the counts, and the ids of those that were open.

    The open ones are what a migration must carry (their processing goes on
    on the national portal). The finished ones are copied too, as the record
    a citizen can still look up; they are counted apart (``finished_copied``).
    """
    after, ids, imported, already, finished = 0, [], 0, 0, 0
    while True:
        body = admin_call(legacy, "GET", f"/api/admin/dossiers?full=1&after_id={after}&limit={page}", token=token)
        items = body.get("items", [])
        if items:
            answer = admin_call(national, "POST", "/api/admin/import", {"items": items}, token=token)
            imported += answer["imported"]
            already += answer["already"]
            opened = [i["id"] for i in items if i["status"] not in ENDED]
            ids += opened
            finished += len(items) - len(opened)
        after = body.get("next_after_id")
        if not items or not after:
            return {"open_at_close": len(ids), "imported": imported, "already_there": already,
                    "finished_copied": finished, "ids": ids}

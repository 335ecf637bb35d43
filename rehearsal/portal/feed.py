"""The national portal's feed: every citizen-side change, in order, for the provincial systems to pull.

A dossier filed, a fee paid, a supplement given, a withdrawal asked: each
appends one item ``(seq, kind, code, at, payload)`` in the same transaction
as the change itself, so the feed holds exactly what was committed. ``seq``
only grows; a provincial system pulls the items after its cursor
(``LayThayDoiHoSo``, `rehearsal.portal.dvcqg_services`) and keeps the cursor
in its own database. Why pull rather than push: the feed is durable here, the
cursor there, and a link agent killed at any moment resumes where it was
(docs/integration-api.md, "Who pulls and who pushes").
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .records import now_iso

#: What a feed item can say.
KINDS = ("filed", "paid", "supplemented", "withdrawal_asked")


def append(db: sqlite3.Connection, kind: str, dossier_id: int, code: str, payload: dict[str, Any]) -> int:
    """Append one change (inside the caller's transaction); its ``seq``."""
    assert kind in KINDS, kind
    cur = db.execute("INSERT INTO feed (kind, dossier_id, code, at, payload) VALUES (?, ?, ?, ?, ?)",
                     (kind, dossier_id, code, now_iso(), json.dumps(payload, ensure_ascii=False)))
    assert cur.lastrowid is not None
    return cur.lastrowid


def head(db: sqlite3.Connection) -> int:
    """The last ``seq`` written (0 for an empty feed)."""
    return db.execute("SELECT ifnull(max(seq), 0) FROM feed").fetchone()[0]


def read(db: sqlite3.Connection, after: int, limit: int) -> list[dict[str, Any]]:
    """The items after ``seq`` `after`, oldest first, at most `limit`."""
    rows = db.execute("SELECT * FROM feed WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
    return [{"seq": r["seq"], "kind": r["kind"], "MaHoSo": r["code"], "at": r["at"], **json.loads(r["payload"])}
            for r in rows]

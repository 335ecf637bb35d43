"""Every change of a dossier, written once: its history line, and what the other system must learn.

Which system this app is decides the second half, inside the caller's
transaction: the national portal appends citizen-side changes to its feed
(`rehearsal.portal.feed`), a provincial system writes an outbox row for
every step and for every dossier the national portal may not know yet
(`rehearsal.portal.outbox`), and the single portal of old writes only the
history line, as it always did. The blueprints call `filed` and `changed`
and never ask which system they are in.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from . import feed, outbox
from .context import settings
from .dvcqg_fields import dossier_fields
from .filing import Upload
from .records import add_history


def filed(db: sqlite3.Connection, dossier_id: int, code: str, status: int, actor: str, note: str | None = None) -> None:
    """A dossier was filed here (inside the caller's transaction)."""
    add_history(db, dossier_id, status, actor, note)
    system = settings().system
    if system == "national":
        feed.append(db, "filed", dossier_id, code, filed_payload(db, dossier_id))
    elif system == "provincial":  # filed on its own front door: the national portal does not know it yet
        outbox.enqueue_dossier(db, dossier_id, code, status, actor, note)


def changed(db: sqlite3.Connection, row: sqlite3.Row, status: int, actor: str, note: str | None = None, *,
            kind: str = "step", payload: dict[str, Any] | None = None) -> None:
    """A dossier moved to `status`: a step, or a citizen-side change `kind` (the feed's), in the caller's transaction."""
    system = settings().system
    if system == "provincial":
        outbox.record_step(db, row["id"], row["code"], status, actor, note)
        return
    add_history(db, row["id"], status, actor, note)
    if system == "national" and kind in feed.KINDS:
        feed.append(db, kind, row["id"], row["code"], {"TrangThaiHoSo": str(status), **(payload or {})})


def filed_payload(db: sqlite3.Connection, dossier_id: int) -> dict[str, Any]:
    """What a provincial system needs of a dossier filed here: its API fields, our id, the form."""
    row = db.execute("SELECT d.*, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id "
                     "WHERE d.id = ?", (dossier_id,)).fetchone()
    out = dossier_fields(db, row)
    out.update(NgayNop=out["NgayTiepNhan"], id=row["id"], form=json.loads(row["form"]), client_ref=row["client_ref"],
               fingerprint=row["fingerprint"])
    return out


def attachment_names(files: list[Upload]) -> list[dict[str, Any]]:
    """Files just stored, as a feed item lists them (``TaiLieuNop``)."""
    return [{"TenGiayTo": u.name, "TenTepDinhKem": u.filename, "KichThuoc": len(u.content), "MaHash": u.sha256}
            for u in files]

"""Citizen-side changes pulled from the national feed, applied to the provincial database once each.

A page of feed items is applied in one transaction together with the cursor
that follows it: either the page and its cursor are both committed, or
neither is, so an agent killed at any point pulls the same page again and
finds nothing applied twice. Each item is idempotent on its own as well: a
``filed`` dossier whose code is already here is skipped, and a change is
applied only from the status it expects (``paid`` from 6, ``supplemented``
from 5, ``withdrawal_asked`` from a status a citizen may withdraw from).
What cannot be applied (the officers moved the dossier on first, an item
that is not whole) is counted in ``feed_ignored`` and logged, never retried:
the national portal's status then follows the provincial steps.

Every change applied writes its step to the outbox (`outbox.record_step`), so
the national portal hears the provincial system's word on it; a dossier
filed there gets its ``dossier`` row, pushed like any other.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from ...shared.catalogue import load_catalogue
from ...shared.status import WITHDRAWABLE, DossierStatus
from .. import outbox
from ..db import transaction
from ..dvcqg_fields import attachments, check_dossier
from ..errors import ApiError
from ..records import add_history, now_iso

log = logging.getLogger("rehearsal.portal.link")
#: Who a change pulled from the national portal is written as.
ACTOR = "citizen:dvcqg"


def _dossier(db: sqlite3.Connection, code: Any) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM dossiers WHERE code = ?", (code,)).fetchone() if isinstance(code, str) else None


def _filed(db: sqlite3.Connection, item: dict[str, Any]) -> bool:
    d = check_dossier(item, f"feed[{item.get('seq')}]")
    if _dossier(db, d["code"]) is not None:
        return False
    db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)", (d["id_number"], now_iso()))
    citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?", (d["id_number"],)).fetchone()[0]
    # The national portal's id is kept when it is free here (the systems number in disjoint ranges).
    wanted = item.get("id")
    free = isinstance(wanted, int) and not isinstance(wanted, bool) and 0 < wanted < 2**62 and \
        db.execute("SELECT 1 FROM dossiers WHERE id = ?", (wanted,)).fetchone() is None
    form = item.get("form")
    now = now_iso()
    proc = load_catalogue().get(d["procedure_code"])
    cur = db.execute(
        "INSERT INTO dossiers (id, code, citizen_id, client_ref, unit_code, procedure_code, lien_thong, fee_vnd, paid,"
        " status, form, submitted_at, updated_at, fingerprint, channel, owner_name)"
        " VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (wanted if free else None, d["code"], citizen_id, d["unit_code"], d["procedure_code"],
         int(bool(proc and proc.lien_thong)), d["fee_vnd"], d["paid"], d["status"],
         json.dumps(form if isinstance(form, dict) else {}, ensure_ascii=False), d["submitted_at"] or now, now,
         item.get("fingerprint") if isinstance(item.get("fingerprint"), str) else None, d["channel"], d["owner_name"]))
    dossier_id = cur.lastrowid
    assert dossier_id is not None
    db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                   "VALUES (?, ?, ?, ?, ?, NULL)", [(dossier_id, *a) for a in d["attachments"]])
    add_history(db, dossier_id, d["status"], ACTOR, "nộp trực tuyến trên Cổng DVCQG")
    outbox.enqueue_dossier(db, dossier_id, d["code"], d["status"], ACTOR, "nộp trực tuyến trên Cổng DVCQG")
    return True


def _change(db: sqlite3.Connection, item: dict[str, Any]) -> bool:
    """A paid fee, a supplement, a withdrawal: applied from the status it expects, with its step."""
    row = _dossier(db, item.get("MaHoSo"))
    if row is None:
        return False
    kind, status = item.get("kind"), row["status"]
    if kind == "paid" and status == DossierStatus.FEE_DUE and not row["paid"]:
        db.execute("UPDATE dossiers SET paid = 1, status = ?, updated_at = ? WHERE id = ?",
                   (DossierStatus.SUBMITTED, now_iso(), row["id"]))
        outbox.record_step(db, row["id"], row["code"], DossierStatus.SUBMITTED, ACTOR, "đã nộp phí trên Cổng DVCQG")
        return True
    if kind == "supplemented" and status == DossierStatus.SUPPLEMENT_REQUESTED:
        files = attachments(item, f"feed[{item.get('seq')}]")
        db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ?",
                   (DossierStatus.PROCESSING, now_iso(), row["id"]))
        db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                       "VALUES (?, ?, ?, ?, ?, NULL)", [(row["id"], *a) for a in files])
        outbox.record_step(db, row["id"], row["code"], DossierStatus.PROCESSING, ACTOR, "supplement given")
        return True
    if kind == "withdrawal_asked" and status in WITHDRAWABLE:
        asked = DossierStatus.WITHDRAWAL_ASKED
        db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ?", (asked, now_iso(), row["id"]))
        db.execute("UPDATE payments SET status = 'cancelled' WHERE dossier_id = ? AND status = 'pending'",
                   (row["id"],))
        outbox.record_step(db, row["id"], row["code"], asked, ACTOR, "công dân yêu cầu rút hồ sơ")
        return True
    return False


def apply_page(db: sqlite3.Connection, items: list[Any], head: int) -> tuple[int, int]:
    """Apply a page of feed items and move the cursor past it, in one transaction: (applied, ignored)."""
    applied = ignored = 0
    with transaction(db):
        cursor = int(outbox.get_state(db, "cursor"))
        last = cursor
        for item in items:
            seq = item.get("seq") if isinstance(item, dict) else None
            if not isinstance(seq, int) or isinstance(seq, bool) or seq <= cursor:
                continue  # seen before (a page pulled again after a crash), or not an item at all
            last = max(last, seq)
            db.execute("SAVEPOINT item")  # one item that cannot be applied leaves the others and the cursor
            try:
                done = _filed(db, item) if item.get("kind") == "filed" else _change(db, item)
            except (ApiError, sqlite3.IntegrityError) as exc:  # not whole, or at odds here: counted, never retried
                db.execute("ROLLBACK TO item")
                log.warning("feed item %s not applied: %s", seq, getattr(exc, "message", exc))
                done = False
            db.execute("RELEASE item")
            if done:
                applied += 1
            else:
                ignored += 1
        outbox.set_state(db, "cursor", last)
        outbox.set_state(db, "feed_head", max(head, last))
        outbox.add_to_state(db, "feed_applied", applied)
        outbox.add_to_state(db, "feed_ignored", ignored)
    return applied, ignored

"""What a citizen does to a dossier, whichever front door they use: file it, give a supplement, ask to withdraw.

The national portal's citizen API (`rehearsal.portal.citizen`) and the
city-style front door (`rehearsal.portal.city`) read their calls in their own
shapes and both come here. Fields are named by their logical names
(``procedure_code``, ``unit_code``, ``form``, ``client_ref``, ``reason``);
a front door with other names renames them in its answers.

A submission sent again with the same ``client_ref`` gets the same dossier
back (a retry); the same ``client_ref`` with another submission is a
conflict (409), never a silent answer about the first one. A citizen may ask
to withdraw a dossier until it is decided (status 7); an officer then stops
processing it (8, `rehearsal.portal.officer`). Each write is one transaction,
with what the other system must learn (`rehearsal.portal.journal`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..shared.status import WITHDRAWABLE, DossierStatus
from ..shared.wards import units_by_code
from . import journal
from .context import catalogue, dossier_view, fault_state, now_iso, settings
from .db import get_db, transaction
from .errors import Conflict, InvalidField, MissingField, WrongState
from .filing import Upload, check_form, fingerprint, read_attachments
from .inputs import whole_text

log = logging.getLogger("rehearsal.portal")


def _store_files(db: sqlite3.Connection, dossier_id: int, files: list[Upload]) -> None:
    db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [(dossier_id, u.name, u.filename, len(u.content), u.sha256, u.content) for u in files])


def _filed(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "code": row["code"], "status": row["status"], "fee_vnd": row["fee_vnd"],
            "payment_required": row["status"] == DossierStatus.FEE_DUE}


def file_dossier(sess: dict[str, Any], form: Mapping[str, str]) -> tuple[dict[str, Any], bool]:
    """File a dossier from `form` (and the call's files): what was filed, and whether it is new (not a retry)."""
    proc = catalogue().get(form.get("procedure_code", ""))
    if proc is None:
        raise InvalidField("unknown procedure (see the catalogue)", "procedure_code")
    unit_code = whole_text(form.get("unit_code", ""), "unit_code")
    if unit_code not in units_by_code():
        raise InvalidField(f"unknown unit {unit_code}", "unit_code")
    client_ref = form.get("client_ref") or None
    if client_ref is not None and len(client_ref) > 64:
        raise InvalidField("at most 64 characters", "client_ref")
    values = check_form(proc, form.get("form", "{}"))
    files = read_attachments({a.name for a in proc.attachments})
    given = {u.name for u in files}
    for a in proc.attachments:
        if a.required and a.name not in given:
            raise MissingField(f"attachment {a.label} ({a.name}) is required", a.name)
    submission = fingerprint(proc, unit_code, values, files)
    status = DossierStatus.FEE_DUE if proc.fee_vnd > 0 else DossierStatus.SUBMITTED
    db = get_db()
    now = now_iso()
    with transaction(db):  # the look-up and the insert together: two racing retries file one dossier
        if client_ref:
            row = db.execute("SELECT * FROM dossiers WHERE citizen_id = ? AND client_ref = ?",
                             (sess["citizen_id"], client_ref)).fetchone()
            if row is not None:
                if row["fingerprint"] not in (None, submission):  # None: filed before fingerprints, or imported
                    raise Conflict(f"client_ref was sent before with another submission (dossier {row['id']}); "
                                   "a new submission needs a new client_ref", "client_ref")
                return _filed(row), False  # the same submission again: the same dossier, never a second
        cur = db.execute(
            "INSERT INTO dossiers (code, citizen_id, client_ref, unit_code, procedure_code, lien_thong, fee_vnd,"
            " status, form, submitted_at, updated_at, fingerprint) VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sess["citizen_id"], client_ref, unit_code, proc.code, int(proc.lien_thong), proc.fee_vnd, status,
             json.dumps(values, ensure_ascii=False), now, now, submission))
        dossier_id = cur.lastrowid
        assert dossier_id is not None
        code = f"H79.{unit_code}-{datetime.now(timezone.utc):%y%m%d}-{dossier_id:07d}"
        db.execute("UPDATE dossiers SET code = ? WHERE id = ?", (code, dossier_id))
        _store_files(db, dossier_id, files)
        journal.filed(db, dossier_id, code, status, f"citizen:{sess['citizen_id']}")
    faults = fault_state()
    if faults.drop_this():  # fault silent-drop: accepted and answered, then gone (from the feed and outbox too)
        tables = [("attachments", "dossier_id"), ("history", "dossier_id"), ("dossiers", "id")]
        extra = {"national": ("feed", "dossier_id"), "provincial": ("outbox", "dossier_id")}.get(settings().system)
        with transaction(db):
            for table, column in ([extra] if extra else []) + tables:
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (dossier_id,))
        faults.dropped.append(dossier_id)
        log.warning("fault silent-drop: dossier %d answered 201 and deleted", dossier_id)
    return {"id": dossier_id, "code": code, "status": status, "fee_vnd": proc.fee_vnd,
            "payment_required": status == DossierStatus.FEE_DUE}, True


def give_supplement(sess: dict[str, Any], db: sqlite3.Connection, row: sqlite3.Row) -> None:
    """The citizen answers a supplement request with the call's files: 5 → 4 (409 from any other status)."""
    if row["status"] != DossierStatus.SUPPLEMENT_REQUESTED:
        raise WrongState(f"no supplement requested (status {row['status']})", "status")
    stored = db.execute("SELECT ifnull(sum(size), 0) FROM attachments WHERE dossier_id = ?", (row["id"],))
    files = read_attachments(None, stored.fetchone()[0])
    with transaction(db):
        cur = db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                         (DossierStatus.PROCESSING, now_iso(), row["id"], DossierStatus.SUPPLEMENT_REQUESTED))
        if cur.rowcount == 0:
            raise WrongState("the dossier changed meanwhile; read it again", "status")
        _store_files(db, row["id"], files)
        journal.changed(db, row, DossierStatus.PROCESSING, f"citizen:{sess['citizen_id']}", "supplement given",
                        kind="supplemented", payload={"TaiLieuNop": journal.attachment_names(files)})


def ask_withdrawal(sess: dict[str, Any], db: sqlite3.Connection, row: sqlite3.Row,
                   reason: str | None) -> sqlite3.Row:
    """Ask to withdraw a dossier not decided yet (1, 2, 4, 5 or 6 → 7); the dossier as it is now."""
    if row["status"] not in WITHDRAWABLE:
        raise WrongState(f"cannot withdraw: dossier is at status {row['status']} ({dossier_view(row)['status_name']});"
                         " a dossier can be withdrawn until it is decided (status 1, 2, 4, 5 or 6)", "status")
    asked = DossierStatus.WITHDRAWAL_ASKED
    with transaction(db):
        cur = db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                         (asked, now_iso(), row["id"], row["status"]))
        if cur.rowcount == 0:  # an officer moved it since we read it
            raise WrongState("the dossier changed meanwhile; read it again", "status")
        # A fee not paid yet will not be: its open payment is cancelled with the withdrawal.
        db.execute("UPDATE payments SET status = 'cancelled' WHERE dossier_id = ? AND status = 'pending'",
                   (row["id"],))
        journal.changed(db, row, asked, f"citizen:{sess['citizen_id']}", reason or "công dân yêu cầu rút hồ sơ",
                        kind="withdrawal_asked")
    return db.execute("SELECT * FROM dossiers WHERE id = ?", (row["id"],)).fetchone()

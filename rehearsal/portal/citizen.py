"""The citizen's side of the portal: the catalogue, filing and following dossiers, supplements, withdrawing.

A citizen may file at any unit of the province (the one-stop rule) and sees
only their own dossiers. A submission sent again with the same ``client_ref``
gets the same dossier back (a retry); the same ``client_ref`` with another
submission is a conflict (409), never a silent answer about the first one.
A citizen may ask to withdraw a dossier until it is decided (status 7); an
officer then stops processing it (8, `rehearsal.portal.officer`). Paying the
fee is `rehearsal.portal.payments`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..shared.status import DossierStatus
from ..shared.wards import units_by_code
from .context import add_history, catalogue, dossier_view, fault_state, now_iso, own_dossier, require_session
from .db import get_db, transaction
from .errors import Conflict, InvalidField, MissingField, NotFound, WrongState
from .filing import Upload, check_form, fingerprint, read_attachments
from .inputs import json_object, query_int, query_text, shown, text, whole_text

bp = Blueprint("citizen", __name__)
log = logging.getLogger("rehearsal.portal")

#: Statuses a citizen may withdraw from: every one before the dossier is decided or refused.
WITHDRAWABLE = frozenset({DossierStatus.SUBMITTED, DossierStatus.RECEIVED, DossierStatus.PROCESSING,
                          DossierStatus.SUPPLEMENT_REQUESTED, DossierStatus.FEE_DUE})


def _store_files(db: sqlite3.Connection, dossier_id: int, files: list[Upload]) -> None:
    db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [(dossier_id, u.name, u.filename, len(u.content), u.sha256, u.content) for u in files])


def _citizens_dossier(dossier_id: int, expected: DossierStatus,
                      otherwise: str) -> tuple[dict[str, Any], sqlite3.Row, sqlite3.Connection]:
    """The caller's own dossier, at status `expected` (409 saying `otherwise` if not)."""
    sess = require_session("citizen")
    db = get_db()
    row = own_dossier(db, sess, dossier_id)
    if row["status"] != expected:
        raise WrongState(f"{otherwise} (status {row['status']})", "status")
    return sess, row, db


def _filed(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "code": row["code"], "status": row["status"], "fee_vnd": row["fee_vnd"],
            "payment_required": row["status"] == DossierStatus.FEE_DUE}


# -- the catalogue ----------------------------------------------------------------

@bp.get("/api/procedures")
def procedures() -> Response:
    """The catalogue, searched (``q``) and paged."""
    q = query_text("q").strip()
    page = query_int("page", 1, 1, 2**62)
    per_page = query_int("per_page", 20, 1, 100)
    items = [p.summary() for p in catalogue().search(q)] if q else current_app.config["PROCEDURE_SUMMARIES"]
    return jsonify(total=len(items), page=page, items=items[(page - 1) * per_page: page * per_page])


@bp.get("/api/procedures/<code>")
def procedure(code: str) -> Response:
    """One procedure's form fields, attachments and steps."""
    proc = catalogue().get(code)
    if proc is None:
        raise NotFound(f"no procedure {shown(code)}", "code")
    return jsonify(proc.as_dict())


# -- dossiers ----------------------------------------------------------------------

@bp.post("/api/dossiers")
def submit() -> tuple[Response, int]:
    """File a dossier: 201; 200 and the same dossier for a ``client_ref`` sent before with the same submission."""
    sess = require_session("citizen")
    form = request.form
    proc = catalogue().get(form.get("procedure_code", ""))
    if proc is None:
        raise InvalidField("unknown procedure (see GET /api/procedures)", "procedure_code")
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
                return jsonify(_filed(row)), 200  # the same submission again: the same dossier, never a second
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
        add_history(db, dossier_id, status, f"citizen:{sess['citizen_id']}")
    faults = fault_state()
    if faults.drop_this():  # fault silent-drop: accepted and answered, then gone
        with transaction(db):
            for table, column in (("attachments", "dossier_id"), ("history", "dossier_id"), ("dossiers", "id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (dossier_id,))
        faults.dropped.append(dossier_id)
        log.warning("fault silent-drop: dossier %d answered 201 and deleted", dossier_id)
    return jsonify(id=dossier_id, code=code, status=status, fee_vnd=proc.fee_vnd,
                   payment_required=status == DossierStatus.FEE_DUE), 201


@bp.get("/api/dossiers")
def my_dossiers() -> Response:
    """The caller's own dossiers, newest first (at most 100)."""
    sess = require_session("citizen")
    rows = get_db().execute("SELECT * FROM dossiers WHERE citizen_id = ? ORDER BY id DESC LIMIT 100",
                            (sess["citizen_id"],)).fetchall()
    return jsonify(items=[dossier_view(r) for r in rows])


@bp.get("/api/dossiers/<int:dossier_id>")
def dossier(dossier_id: int) -> Response:
    """One dossier with its history (a citizen's own, or one of an officer's unit)."""
    sess = require_session()
    db = get_db()
    row = own_dossier(db, sess, dossier_id)
    history = db.execute("SELECT at, status, actor, note FROM history WHERE dossier_id = ? ORDER BY id",
                         (dossier_id,)).fetchall()
    return jsonify(dossier_view(row, history))


@bp.post("/api/dossiers/<int:dossier_id>/supplement")
def supplement(dossier_id: int) -> Response:
    """The citizen answers a supplement request: back to processing."""
    sess, _, db = _citizens_dossier(dossier_id, DossierStatus.SUPPLEMENT_REQUESTED, "no supplement requested")
    stored = db.execute("SELECT ifnull(sum(size), 0) FROM attachments WHERE dossier_id = ?", (dossier_id,))
    files = read_attachments(None, stored.fetchone()[0])
    with transaction(db):
        cur = db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                         (DossierStatus.PROCESSING, now_iso(), dossier_id, DossierStatus.SUPPLEMENT_REQUESTED))
        if cur.rowcount == 0:
            raise WrongState("the dossier changed meanwhile; read it again", "status")
        _store_files(db, dossier_id, files)
        add_history(db, dossier_id, DossierStatus.PROCESSING, f"citizen:{sess['citizen_id']}", "supplement given")
    return jsonify(id=dossier_id, status=DossierStatus.PROCESSING)


@bp.post("/api/dossiers/<int:dossier_id>/withdraw")
def withdraw(dossier_id: int) -> Response:
    """Ask to withdraw a dossier not decided yet (status 1, 2, 4, 5 or 6 → 7); an officer then stops it."""
    sess = require_session("citizen")
    reason = text(json_object(optional=True), "reason", required=False)
    db = get_db()
    row = own_dossier(db, sess, dossier_id)
    if row["status"] not in WITHDRAWABLE:
        raise WrongState(f"cannot withdraw: dossier is at status {row['status']} ({dossier_view(row)['status_name']});"
                         " a dossier can be withdrawn until it is decided (status 1, 2, 4, 5 or 6)", "status")
    asked = DossierStatus.WITHDRAWAL_ASKED
    with transaction(db):
        cur = db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
                         (asked, now_iso(), dossier_id, row["status"]))
        if cur.rowcount == 0:  # an officer moved it since we read it
            raise WrongState("the dossier changed meanwhile; read it again", "status")
        # A fee not paid yet will not be: its open payment is cancelled with the withdrawal.
        db.execute("UPDATE payments SET status = 'cancelled' WHERE dossier_id = ? AND status = 'pending'",
                   (dossier_id,))
        add_history(db, dossier_id, asked, f"citizen:{sess['citizen_id']}", reason or "công dân yêu cầu rút hồ sơ")
    return jsonify(dossier_view(db.execute("SELECT * FROM dossiers WHERE id = ?", (dossier_id,)).fetchone()))

"""The officer's side of the portal: the unit's queue and every step of a dossier's lifecycle.

The lifecycle is a state machine (docs/portal-api.md, "Officers"): each step
names the status it starts from and answers 409 from any other; an officer
acts only on dossiers filed at their own unit (403); a liên thông dossier goes
to the second agency and comes back before a decision. A step is one UPDATE
guarded by the status it read, so two officers racing on one dossier get one
success and one 409, never a lost step. When a citizen asks to withdraw a
dossier (status 7, `rehearsal.portal.citizen`), the officer stops processing
it (8, an end state: neither complete nor pending). On a provincial system
each step also writes its outbox row in the same transaction
(`rehearsal.portal.journal`): the link pushes it to the national portal.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..shared.status import DossierStatus
from . import journal
from .context import agency_state, catalogue, dossier_view, fault_state, now_iso, own_dossier, require_session, settings
from .db import get_db, transaction
from .errors import InvalidField, MissingField, WrongState
from .inputs import json_object, query_int, query_text, text

bp = Blueprint("officer", __name__)

#: The queue's statuses when the call names none: everything waiting for an officer's step.
_QUEUE_STATUSES = (DossierStatus.SUBMITTED, DossierStatus.RECEIVED, DossierStatus.PROCESSING,
                   DossierStatus.WITHDRAWAL_ASKED, DossierStatus.DONE)


def _queue_statuses() -> list[int]:
    """The ``status`` query: a comma-separated list of the ten codes (default `_QUEUE_STATUSES`)."""
    asked = query_text("status", 100)
    if not asked:
        return [int(s) for s in _QUEUE_STATUSES]
    codes = [c.strip() for c in asked.split(",") if c.strip()]
    if not codes or not all(c.isascii() and c.isdigit() and DossierStatus.known(int(c)) for c in codes):
        raise InvalidField("status is a comma-separated list of status codes from 1 to 10", "status")
    return [int(c) for c in codes]


@bp.get("/api/officer/queue")
def queue() -> Response:
    """The unit's dossiers in the given statuses, oldest first."""
    sess = require_session("officer")
    statuses = _queue_statuses()
    limit = query_int("limit", 20, 1, 200)
    marks = ",".join("?" * len(statuses))
    sql = f"SELECT * FROM dossiers WHERE unit_code = ? AND status IN ({marks})"
    params: list[Any] = [sess["unit_code"], *statuses]
    if request.args.get("actionable") == "1":  # leave out what waits at the second agency (only 4 can be stepped on)
        sql += " AND NOT (status = 4 AND ifnull(agency_state, '') = 'at_agency' AND agency_due > ?)"
        params.append(time.time())
    rows = get_db().execute(sql + " ORDER BY id LIMIT ?", (*params, limit)).fetchall()
    return jsonify(items=[dossier_view(r) for r in rows])


# -- one step ------------------------------------------------------------------------

def _officers_dossier(dossier_id: int) -> tuple[dict[str, Any], sqlite3.Row, sqlite3.Connection]:
    sess = require_session("officer")
    db = get_db()
    return sess, own_dossier(db, sess, dossier_id), db


def _require(row: sqlite3.Row, status: DossierStatus, action: str) -> None:
    if row["status"] != status:
        raise WrongState(f"cannot {action}: dossier is at status {row['status']} "
                         f"({DossierStatus(row['status']).label}), expected {int(status)}", "status")


def _update(db: sqlite3.Connection, row: sqlite3.Row, sess: dict[str, Any], expected: DossierStatus,
            new: DossierStatus, note: str | None = None, **fields: Any) -> Response:
    sets = ", ".join(f"{k} = ?" for k in ["status", "updated_at", *fields])
    with transaction(db):
        cur = db.execute(f"UPDATE dossiers SET {sets} WHERE id = ? AND status = ?",
                         (new, now_iso(), *fields.values(), row["id"], expected))
        if cur.rowcount == 0:  # someone else moved it since we read it
            raise WrongState("the dossier changed meanwhile; read it again", "status")
        journal.changed(db, row, new, f"officer:{sess['username']}", note)
    fresh = db.execute("SELECT * FROM dossiers WHERE id = ?", (row["id"],)).fetchone()
    return jsonify(dossier_view(fresh))


# -- the steps ------------------------------------------------------------------------

@bp.post("/api/officer/dossiers/<int:dossier_id>/receive")
def receive(dossier_id: int) -> Response:
    """Receive a submitted dossier: the phiếu hẹn sets its due time."""
    sess, row, db = _officers_dossier(dossier_id)
    _require(row, DossierStatus.SUBMITTED, "receive")
    proc = catalogue().get(row["procedure_code"])
    cfg = settings()
    now = time.time()
    due = now + (proc.due_days if proc else 1) * cfg.working_day_s / cfg.time_scale
    return _update(db, row, sess, DossierStatus.SUBMITTED, DossierStatus.RECEIVED, "phiếu hẹn",
                   received_at=now_iso(now), due_at=now_iso(due))


@bp.post("/api/officer/dossiers/<int:dossier_id>/refuse-intake")
def refuse_intake(dossier_id: int) -> Response:
    """Refuse a submitted dossier at intake, with a reason (final)."""
    sess, row, db = _officers_dossier(dossier_id)
    reason = text(json_object("reason"), "reason")
    _require(row, DossierStatus.SUBMITTED, "refuse at intake")
    now = now_iso()
    return _update(db, row, sess, DossierStatus.SUBMITTED, DossierStatus.REFUSED_INTAKE, reason, reason=reason,
                   decided_at=now, returned_at=now)


@bp.post("/api/officer/dossiers/<int:dossier_id>/process")
def process(dossier_id: int) -> Response:
    """Start processing a received dossier."""
    sess, row, db = _officers_dossier(dossier_id)
    _require(row, DossierStatus.RECEIVED, "start processing")
    return _update(db, row, sess, DossierStatus.RECEIVED, DossierStatus.PROCESSING)


@bp.post("/api/officer/dossiers/<int:dossier_id>/request-supplement")
def request_supplement(dossier_id: int) -> Response:
    """Ask the citizen for a supplement (not while the second agency has the dossier)."""
    sess, row, db = _officers_dossier(dossier_id)
    reason = text(json_object("reason"), "reason")
    _require(row, DossierStatus.PROCESSING, "request a supplement")
    if row["agency_state"]:
        raise WrongState("the dossier is with the second agency", "agency_state")
    return _update(db, row, sess, DossierStatus.PROCESSING, DossierStatus.SUPPLEMENT_REQUESTED, reason,
                   supplement_reason=reason, supplement_count=row["supplement_count"] + 1)


@bp.post("/api/officer/dossiers/<int:dossier_id>/transfer")
def transfer(dossier_id: int) -> Response:
    """Hand a liên thông dossier to the second agency; it comes back after the agency's delay."""
    sess, row, db = _officers_dossier(dossier_id)
    _require(row, DossierStatus.PROCESSING, "transfer")
    if not row["lien_thong"]:
        raise WrongState("not a liên thông procedure: no second agency", "procedure_code")
    if row["agency_state"] or row["agency_done"]:
        raise WrongState("already handed to the second agency", "agency_state")
    proc = catalogue().get(row["procedure_code"])
    cfg = settings()
    due = time.time() + cfg.agency_delay_s * fault_state().agency_factor() / cfg.time_scale
    return _update(db, row, sess, DossierStatus.PROCESSING, DossierStatus.PROCESSING,
                   f"chuyển {proc.second_agency if proc else 'cơ quan phối hợp'}",
                   agency_state="at_agency", agency_due=due)


@bp.post("/api/officer/dossiers/<int:dossier_id>/take-back")
def take_back(dossier_id: int) -> Response:
    """Take a dossier back from the second agency once it has returned it."""
    sess, row, db = _officers_dossier(dossier_id)
    _require(row, DossierStatus.PROCESSING, "take back")
    if agency_state(row) != "back":
        raise WrongState("the second agency has not returned it yet", "agency_state")
    return _update(db, row, sess, DossierStatus.PROCESSING, DossierStatus.PROCESSING, "nhận lại từ cơ quan phối hợp",
                   agency_state=None, agency_done=1)


@bp.post("/api/officer/dossiers/<int:dossier_id>/decide")
def decide(dossier_id: int) -> Response:
    """Approve or refuse (with a reason); a liên thông dossier only once back from the second agency."""
    sess, row, db = _officers_dossier(dossier_id)
    body = json_object("decision")
    decision, reason = text(body, "decision"), text(body, "reason", required=False)
    if decision not in ("approved", "refused"):
        raise InvalidField("expected approved or refused", "decision")
    if decision == "refused" and not reason:
        raise MissingField("a refusal needs a reason", "reason")
    _require(row, DossierStatus.PROCESSING, "decide")
    if row["agency_state"] or (row["lien_thong"] and not row["agency_done"]):
        raise WrongState("liên thông: the second agency must return it before a decision", "agency_state")
    return _update(db, row, sess, DossierStatus.PROCESSING, DossierStatus.DONE, decision, decision=decision,
                   reason=reason, decided_at=now_iso())


@bp.post("/api/officer/dossiers/<int:dossier_id>/return")
def return_result(dossier_id: int) -> Response:
    """Hand the result to the citizen: the dossier is complete."""
    sess, row, db = _officers_dossier(dossier_id)
    _require(row, DossierStatus.DONE, "return the result")
    return _update(db, row, sess, DossierStatus.DONE, DossierStatus.RETURNED, "trả kết quả", returned_at=now_iso())


@bp.post("/api/officer/dossiers/<int:dossier_id>/stop")
def stop(dossier_id: int) -> Response:
    """Stop processing a dossier its citizen asked to withdraw (7 → 8, an end state)."""
    sess, row, db = _officers_dossier(dossier_id)
    reason = text(json_object(optional=True), "reason", required=False)
    _require(row, DossierStatus.WITHDRAWAL_ASKED, "stop processing")
    return _update(db, row, sess, DossierStatus.WITHDRAWAL_ASKED, DossierStatus.STOPPED,
                   reason or "dừng xử lý: công dân rút hồ sơ")

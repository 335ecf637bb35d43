"""The citizen's side of the portal: the catalogue, filing and following dossiers, paying, supplements.

A citizen may file at any unit of the province (the one-stop rule), sees only
their own dossiers, and gets the same dossier back when a submission with the
same ``client_ref`` comes again. The payment intermediary is simulated here
too: its page takes the money and sends the citizen back with a signed result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import sqlite3
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from ..shared.catalogue import Procedure
from ..shared.status import DossierStatus
from ..shared.wards import units_by_code
from .context import (ID_NUMBER, add_history, catalogue, dossier_view, fault_state, now_iso, own_dossier,
                      require_session, settings)
from .db import get_db
from .errors import InvalidField, MissingField, NotFound, PaymentFailed, TooLarge, WrongState

bp = Blueprint("citizen", __name__)
log = logging.getLogger("rehearsal.portal")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE = re.compile(r"^0\d{9,10}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


# -- input ------------------------------------------------------------------------

def _check_form(proc: Procedure, form: Any) -> dict[str, str]:
    if not isinstance(form, dict):
        raise InvalidField("form must be a JSON object of field values", "form")
    out = {}
    for f in proc.fields:
        value = form.get(f.name)
        where = f"form.{f.name}"
        if value in (None, ""):
            if f.required:
                raise MissingField(f"{f.label} ({f.name}) is required", where)
            continue
        value = str(value)
        if f.type == "id_number" and not ID_NUMBER.match(value):
            raise InvalidField("expected a 12-digit personal ID number", where)
        if f.type == "date" and not _DATE.match(value):
            raise InvalidField("expected a date YYYY-MM-DD", where)
        if f.type == "number" and not _NUMBER.match(value):
            raise InvalidField("expected a number", where)
        if f.type == "phone" and not _PHONE.match(value):
            raise InvalidField("expected a phone number of 10–11 digits starting with 0", where)
        if f.type == "choice" and f.choices and value not in f.choices:
            raise InvalidField(f"expected one of: {', '.join(f.choices)}", where)
        out[f.name] = value[:500]
    return out


def _files(allowed: set[str] | None) -> list[tuple[str, str, bytes]]:
    limit = settings().max_attachment_bytes
    out = []
    for name, storage in request.files.items(multi=True):
        if allowed is not None and name not in allowed:
            raise InvalidField(f"unexpected attachment (expected: {', '.join(sorted(allowed))})", name)
        content = storage.read(limit + 1)
        if len(content) > limit:
            raise TooLarge(f"attachment is larger than {limit} bytes", name)
        out.append((name, storage.filename or name, content))
    return out


def _store_files(db: sqlite3.Connection, dossier_id: int, files: list[tuple[str, str, bytes]]) -> None:
    db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [(dossier_id, n, fn, len(c), hashlib.sha256(c).hexdigest(), c) for n, fn, c in files])


def _citizens_dossier(dossier_id: int, expected: DossierStatus,
                      otherwise: str) -> tuple[dict[str, Any], sqlite3.Row, sqlite3.Connection]:
    """The caller's own dossier, at status `expected` (409 saying `otherwise` if not)."""
    sess = require_session("citizen")
    db = get_db()
    row = own_dossier(db, sess, dossier_id)
    if row["status"] != expected:
        raise WrongState(f"{otherwise} (status {row['status']})", "status")
    return sess, row, db


# -- the catalogue ----------------------------------------------------------------

@bp.get("/api/procedures")
def procedures() -> Response:
    """The catalogue, searched (``q``) and paged."""
    q = request.args.get("q", "").strip()
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(100, max(1, int(request.args.get("per_page", 20))))
    except ValueError:
        raise InvalidField("page and per_page are whole numbers", "page") from None
    items = [p.summary() for p in catalogue().search(q)] if q else current_app.config["PROCEDURE_SUMMARIES"]
    return jsonify(total=len(items), page=page, items=items[(page - 1) * per_page: page * per_page])


@bp.get("/api/procedures/<code>")
def procedure(code: str) -> Response:
    """One procedure's form fields, attachments and steps."""
    proc = catalogue().get(code)
    if proc is None:
        raise NotFound(f"no procedure {code}", "code")
    return jsonify(proc.as_dict())


# -- dossiers ----------------------------------------------------------------------

@bp.post("/api/dossiers")
def submit() -> tuple[Response, int]:
    """File a dossier: 201, or 200 and the same dossier for a ``client_ref`` seen before."""
    sess = require_session("citizen")
    form = request.form
    proc = catalogue().get(form.get("procedure_code", ""))
    if proc is None:
        raise InvalidField("unknown procedure (see GET /api/procedures)", "procedure_code")
    try:
        unit_code = int(form.get("unit_code", ""))
    except ValueError:
        raise InvalidField("expected an official unit code", "unit_code") from None
    if unit_code not in units_by_code():
        raise InvalidField(f"unknown unit {unit_code}", "unit_code")
    client_ref = form.get("client_ref") or None
    if client_ref is not None and len(client_ref) > 64:
        raise InvalidField("at most 64 characters", "client_ref")
    try:
        values = _check_form(proc, json.loads(form.get("form", "{}")))
    except json.JSONDecodeError:
        raise InvalidField("expected a JSON object", "form") from None
    files = _files({a.name for a in proc.attachments})
    given = {name for name, _, _ in files}
    for a in proc.attachments:
        if a.required and a.name not in given:
            raise MissingField(f"attachment {a.label} ({a.name}) is required", a.name)
    db = get_db()
    if client_ref:
        row = db.execute("SELECT * FROM dossiers WHERE citizen_id = ? AND client_ref = ?",
                         (sess["citizen_id"], client_ref)).fetchone()
        if row is not None:  # the same submission again: the same dossier, never a second one
            return jsonify(id=row["id"], code=row["code"], status=row["status"], fee_vnd=row["fee_vnd"],
                           payment_required=row["status"] == DossierStatus.FEE_DUE), 200
    status = DossierStatus.FEE_DUE if proc.fee_vnd > 0 else DossierStatus.SUBMITTED
    now = now_iso()
    with db:
        cur = db.execute(
            "INSERT INTO dossiers (code, citizen_id, client_ref, unit_code, procedure_code, lien_thong, fee_vnd,"
            " status, form, submitted_at, updated_at) VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sess["citizen_id"], client_ref, unit_code, proc.code, int(proc.lien_thong), proc.fee_vnd, status,
             json.dumps(values, ensure_ascii=False), now, now))
        dossier_id = cur.lastrowid
        code = f"H79.{unit_code}-{datetime.now(timezone.utc):%y%m%d}-{dossier_id:07d}"
        db.execute("UPDATE dossiers SET code = ? WHERE id = ?", (code, dossier_id))
        _store_files(db, dossier_id, files)
        add_history(db, dossier_id, status, f"citizen:{sess['citizen_id']}")
    faults = fault_state()
    if faults.drop_this():  # fault silent-drop: accepted and answered, then gone
        with db:
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
    files = _files(None)
    with db:
        db.execute("UPDATE dossiers SET status = ?, updated_at = ? WHERE id = ?",
                   (DossierStatus.PROCESSING, now_iso(), dossier_id))
        _store_files(db, dossier_id, files)
        add_history(db, dossier_id, DossierStatus.PROCESSING, f"citizen:{sess['citizen_id']}", "supplement given")
    return jsonify(id=dossier_id, status=DossierStatus.PROCESSING)


# -- paying the fee ----------------------------------------------------------------

def _signature(payment_id: str, result: str) -> str:
    return hmac.new(settings().payment_secret, f"{payment_id}|{result}".encode(), hashlib.sha256).hexdigest()


@bp.post("/api/dossiers/<int:dossier_id>/payment")
def start_payment(dossier_id: int) -> Response:
    """Start paying a dossier's fee: where the payment intermediary's page is."""
    _, row, db = _citizens_dossier(dossier_id, DossierStatus.FEE_DUE, "no fee due")
    payment_id = secrets.token_urlsafe(12)
    with db:
        db.execute("INSERT INTO payments VALUES (?, ?, ?, 'pending', ?, NULL)",
                   (payment_id, dossier_id, row["fee_vnd"], now_iso()))
    return jsonify(payment_id=payment_id, redirect_url=f"/pay/{payment_id}", amount_vnd=row["fee_vnd"])


@bp.get("/pay/<payment_id>")
def intermediary(payment_id: str) -> Response:
    """The payment intermediary's page: it takes the money and sends the citizen back, signed."""
    result = "success"
    return redirect(f"/api/payments/callback?payment_id={payment_id}&result={result}"
                    f"&signature={_signature(payment_id, result)}", code=302)


@bp.get("/api/payments/callback")
def payment_callback() -> Response:
    """The intermediary's signed answer: a paid dossier moves from fee due to submitted."""
    payment_id = request.args.get("payment_id", "")
    result = request.args.get("result", "")
    if not hmac.compare_digest(request.args.get("signature", ""), _signature(payment_id, result)):
        raise InvalidField("bad signature from the payment intermediary", "signature")
    db = get_db()
    pay = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
    if pay is None:
        raise NotFound("unknown payment", "payment_id")
    if result != "success":
        raise PaymentFailed("the intermediary refused the payment", "result")
    with db:
        if pay["status"] != "paid":
            db.execute("UPDATE payments SET status = 'paid', paid_at = ? WHERE id = ?", (now_iso(), payment_id))
            cur = db.execute("UPDATE dossiers SET paid = 1, status = ?, updated_at = ? WHERE id = ? AND status = ?",
                             (DossierStatus.SUBMITTED, now_iso(), pay["dossier_id"], DossierStatus.FEE_DUE))
            if cur.rowcount:
                add_history(db, pay["dossier_id"], DossierStatus.SUBMITTED, "payment", f"paid {pay['amount']} VND")
    return jsonify(dossier_id=pay["dossier_id"], paid=True)

"""The citizen's side of the portal: the catalogue, filing and following dossiers, supplements, withdrawing.

A citizen may file at any unit of the province (the one-stop rule) and sees
only their own dossiers. What filing, a supplement and a withdrawal write is
`rehearsal.portal.dossiers` (the city-style front door files through it
too); this blueprint reads the calls and answers them. Paying the fee is
`rehearsal.portal.payments`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from ..shared.status import DossierStatus
from . import dossiers
from .context import catalogue, dossier_view, own_dossier, require_session
from .db import get_db
from .errors import NotFound
from .inputs import json_object, query_int, query_text, shown, text

bp = Blueprint("citizen", __name__)


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
    filed, created = dossiers.file_dossier(sess, request.form)
    return jsonify(filed), 201 if created else 200


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
    sess = require_session("citizen")
    db = get_db()
    dossiers.give_supplement(sess, db, own_dossier(db, sess, dossier_id))
    return jsonify(id=dossier_id, status=DossierStatus.PROCESSING)


@bp.post("/api/dossiers/<int:dossier_id>/withdraw")
def withdraw(dossier_id: int) -> Response:
    """Ask to withdraw a dossier not decided yet (status 1, 2, 4, 5 or 6 → 7); an officer then stops it."""
    sess = require_session("citizen")
    reason = text(json_object(optional=True), "reason", required=False)
    db = get_db()
    return jsonify(dossier_view(dossiers.ask_withdrawal(sess, db, own_dossier(db, sess, dossier_id), reason)))

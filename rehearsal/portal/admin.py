"""The operator's side of the reference portal: faults, the cutover's closed door, export and import.

Admin calls need ``X-Admin-Token`` when the portal was started with one, and
come from loopback otherwise (`is_admin`, checked once for every
``/api/admin/`` path by the hook that also plays the faults). They are:

``GET/PUT /api/admin/faults``
    the active faults (see `rehearsal.portal.faults`), replaced as a whole
    by PUT ``{"faults": [...]}``; GET also lists the dossiers a silent-drop
    fault deleted.
``POST /api/admin/close`` ``{"mode": "503" | "redirect", "moved_to": URL, "retry_after_s": 30}``
    the legacy face stops taking anything: 503 with ``Retry-After`` and the
    new address (in the body's ``moved_to`` and the ``X-Portal-Moved``
    header), or a 308 redirect to the same path on the new address.
    ``POST /api/admin/reopen`` undoes it.
``GET /api/admin/dossiers?after_id=0&limit=1000&open=1&full=1``
    every dossier, paged by id, for reconciliation; ``open=1`` leaves out
    the complete ones, ``full=1`` adds what a migration needs: form,
    history, attachment metadata.
``POST /api/admin/import`` ``{"items": [...]}``
    the national face takes dossiers exported from the legacy one, keeping
    their ids and codes (the faces number dossiers in disjoint ranges, see
    `rehearsal.portal.db.ID_BASE`), so a citizen following dossier 123 finds
    dossier 123. Import is idempotent: a dossier already there is counted,
    not copied twice. Citizens are matched by ID number (created if new).
    Attachments keep their name, size and checksum; the file content stays
    in the legacy document store (the reference portal does not copy blobs).
"""

from __future__ import annotations

import hmac
import ipaddress
import sqlite3
import time
from typing import Any

import gevent
from flask import Blueprint, Response, jsonify, redirect, request

from ..shared.status import COMPLETE_SQL
from .context import add_history, agency_state, fault_state, now_iso, settings
from .db import get_db
from .errors import BadRequest, Forbidden, InvalidField, error_body
from .faults import EXEMPT_PREFIXES, Closed, parse_fault

bp = Blueprint("admin", __name__)

#: Dossier columns an import copies as they are (citizen_id is mapped by ID number).
_DOSSIER_COLUMNS = ("id", "code", "client_ref", "unit_code", "procedure_code", "lien_thong", "fee_vnd", "paid",
                    "status", "agency_state", "agency_due", "agency_done", "decision", "reason", "supplement_reason",
                    "supplement_count", "form", "submitted_at", "received_at", "due_at", "decided_at",
                    "returned_at", "updated_at")
#: Columns of every export row (``full=1`` adds the rest of `_DOSSIER_COLUMNS`, history and attachments).
_EXPORT_COLUMNS = ("id", "code", "client_ref", "citizen_id", "unit_code", "procedure_code", "status",
                   "supplement_count", "submitted_at", "received_at", "due_at", "decided_at", "returned_at", "paid")


def is_admin() -> bool:
    """Whether the caller may make admin calls: the admin token if one is set, else loopback."""
    token = settings().admin_token
    if token:
        return hmac.compare_digest(request.headers.get("X-Admin-Token", ""), token)
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.before_app_request
def _apply_faults() -> Any:
    """Before every request of the app: the admin check, the closed door, then the active faults."""
    path = request.path
    if path.startswith("/api/admin/") and not is_admin():  # every admin call, in one place
        raise Forbidden("admin only (X-Admin-Token, or loopback when no token is set)", "X-Admin-Token")
    if path.startswith(EXEMPT_PREFIXES):
        return None
    state = fault_state()
    closed = state.closed
    if closed is not None:
        if closed.mode == "redirect":
            target = closed.moved_to.rstrip("/") + request.full_path.rstrip("?")
            response = redirect(target, code=308)
            response.headers["X-Portal-Moved"] = closed.moved_to
            return response
        return _moved_body(closed), 503, {"Retry-After": str(closed.retry_after_s), "X-Portal-Moved": closed.moved_to}
    if not state.faults:
        return None
    endpoint = f"{request.method} {request.url_rule.rule if request.url_rule else path}"
    delay = state.delay_for(endpoint)
    if delay > 0:
        gevent.sleep(delay)
    if state.outage():
        return jsonify(error_body("outage", "the portal is down for maintenance (fault: outage)")), 503, \
            {"Retry-After": "30"}
    status = state.error_for(endpoint)
    if status is not None:
        return jsonify(error_body("injected", f"injected error {status} (fault: errors)")), status
    return None


def _moved_body(closed: Closed) -> Response:
    return jsonify(moved_to=closed.moved_to, **error_body("moved", f"this portal has closed; use {closed.moved_to}"))


# -- faults and the closed door ---------------------------------------------------

@bp.get("/api/admin/faults")
def get_faults() -> Any:
    """The active faults, the closed door, and the dossiers a silent-drop deleted."""
    return jsonify(fault_state().as_dict())


@bp.put("/api/admin/faults")
def put_faults() -> Any:
    """Replace the active faults; a bad one is a `FaultSpecError` (400 naming ``faults[i].field``)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("faults"), list):
        raise BadRequest("expected {\"faults\": [...]}", "faults")
    faults = [parse_fault(f, i) for i, f in enumerate(body["faults"])]
    state = fault_state()
    state.replace(faults)
    return jsonify(state.as_dict())


@bp.post("/api/admin/close")
def close() -> Any:
    """Close this (legacy) face: 503 with the new address, or a 308 to it."""
    body = request.get_json(silent=True) or {}
    mode = str(body.get("mode", "503"))
    moved_to = body.get("moved_to")
    if mode not in ("503", "redirect"):
        raise InvalidField("expected 503 or redirect", "mode")
    if not isinstance(moved_to, str) or not moved_to.startswith(("http://", "https://")):
        raise InvalidField("expected the new portal's address (http://…)", "moved_to")
    retry = body.get("retry_after_s", 30)
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        raise InvalidField("expected whole seconds ≥ 0", "retry_after_s")
    state = fault_state()
    state.closed = Closed(mode=mode, moved_to=moved_to.rstrip("/"), retry_after_s=retry)
    return jsonify(at=time.time(), **state.as_dict())


@bp.post("/api/admin/reopen")
def reopen() -> Any:
    """Undo close."""
    fault_state().closed = None
    return jsonify(closed=False)


# -- export and import ------------------------------------------------------------

@bp.get("/api/admin/dossiers")
def export() -> Response:
    """Every dossier, paged by id (reconciliation; with ``full=1``, migration)."""
    try:
        after = int(request.args.get("after_id", 0))
        limit = min(5000, max(1, int(request.args.get("limit", 1000))))
        full, only_open = request.args.get("full") == "1", request.args.get("open") == "1"
    except ValueError:
        raise InvalidField("after_id and limit are whole numbers", "after_id") from None
    db = get_db()
    rows = db.execute(
        "SELECT d.*, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id WHERE d.id > ? "
        + (f"AND d.status NOT IN {COMPLETE_SQL} " if only_open else "") + "ORDER BY d.id LIMIT ?",
        (after, limit)).fetchall()
    items = []
    for r in rows:
        item = {k: r[k] for k in _EXPORT_COLUMNS}
        item["agency_state"] = agency_state(r)
        item["id_number"] = r["id_number"]
        if full:
            _export_full(db, r, item)
        items.append(item)
    return jsonify(items=items, next_after_id=rows[-1]["id"] if len(rows) == limit else None)


def _export_full(db: sqlite3.Connection, row: sqlite3.Row, item: dict[str, Any]) -> None:
    """Add what an import needs to one export row."""
    for c in _DOSSIER_COLUMNS:
        item.setdefault(c, row[c])
    item["history"] = [dict(h) for h in db.execute(
        "SELECT at, status, actor, note FROM history WHERE dossier_id = ? ORDER BY id", (row["id"],))]
    item["attachments"] = [dict(a) for a in db.execute(
        "SELECT name, filename, size, sha256 FROM attachments WHERE dossier_id = ?", (row["id"],))]


@bp.post("/api/admin/import")
def import_dossiers() -> Any:
    """Take dossiers exported by another face (``GET /api/admin/dossiers?full=1``), keeping ids and codes."""
    body = request.get_json(silent=True)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadRequest("expected {\"items\": [...]} from GET /api/admin/dossiers?full=1", "items")
    db = get_db()
    imported = already = 0
    with db:
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), int) or "form" not in item:
                db.rollback()
                raise InvalidField(f"items[{i}]: expected a full export row (GET /api/admin/dossiers?full=1)",
                                   f"items[{i}]")
            if db.execute("SELECT 1 FROM dossiers WHERE id = ?", (item["id"],)).fetchone():
                already += 1
                continue
            db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)",
                       (item["id_number"], now_iso()))
            citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?",
                                    (item["id_number"],)).fetchone()[0]
            cols = [c for c in _DOSSIER_COLUMNS if c in item]
            db.execute(f"INSERT INTO dossiers (citizen_id, {', '.join(cols)}) "
                       f"VALUES (?, {', '.join('?' * len(cols))})", (citizen_id, *(item[c] for c in cols)))
            for h in item.get("history", []):
                db.execute("INSERT INTO history (dossier_id, at, status, actor, note) VALUES (?, ?, ?, ?, ?)",
                           (item["id"], h["at"], h["status"], h["actor"], h.get("note")))
            add_history(db, item["id"], item["status"], "migration", "chuyển từ cổng cũ")
            for a in item.get("attachments", []):
                db.execute("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                           "VALUES (?, ?, ?, ?, ?, NULL)", (item["id"], a["name"], a.get("filename"),
                                                            a["size"], a["sha256"]))
            imported += 1
    return jsonify(imported=imported, already=already)

"""The operator's side of the reference portal: faults, the cutover's closed door, migration.

Admin calls need ``X-Admin-Token`` when the portal was started with one, and
come from loopback otherwise (`app._is_admin`). They are:

``GET/PUT /api/admin/faults``
    the active faults (see `rehearsal.portal.faults`), replaced as a whole
    by PUT ``{"faults": [...]}``; GET also lists the dossiers a silent-drop
    fault deleted.
``POST /api/admin/close`` ``{"mode": "503" | "redirect", "moved_to": URL, "retry_after_s": 30}``
    the legacy face stops taking anything: 503 with ``Retry-After`` and the
    new address (in the body's ``moved_to`` and the ``X-Portal-Moved``
    header), or a 308 redirect to the same path on the new address.
    ``POST /api/admin/reopen`` undoes it.
``GET /api/admin/dossiers?open=1&full=1``
    the export (in app.py), here with ``full=1`` adding what a migration
    needs: form, history, attachment metadata.
``POST /api/admin/import`` ``{"items": [...]}``
    the national face takes dossiers exported from the legacy one, keeping
    their ids and codes (the faces number dossiers in disjoint ranges, see
    `ID_BASE`), so a citizen following dossier 123 finds dossier 123. Import
    is idempotent: a dossier already there is counted, not copied twice.
    Citizens are matched by ID number (created if new). Attachments keep
    their name, size and checksum; the file content stays in the legacy
    document store (the reference portal does not copy blobs).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import gevent
from flask import Flask, Response, jsonify, redirect, request

from .faults import EXEMPT_PREFIXES, Closed, FaultSpecError, FaultState, parse_fault

#: First dossier id of each face: the faces never hand out the same id.
ID_BASE = {"legacy": 0, "national": 10_000_000}


def set_id_base(db: sqlite3.Connection, face: str) -> None:
    """Start this face's dossier ids at its base (once, on an empty database)."""
    base = ID_BASE.get(face, 0)
    if base and db.execute("SELECT count(*) FROM sqlite_sequence WHERE name = 'dossiers'").fetchone()[0] == 0:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('dossiers', ?)", (base,))


def _json_error(status: int, error: str, message: str, field: str | None = None) -> tuple[Response, int]:
    return jsonify(error=error, field=field, message=message), status


def register_admin(app: Flask, state: FaultState, *, is_admin: Any, get_db: Any, now_iso: Any) -> None:
    """Add the fault hook and the admin endpoints to the portal app."""

    @app.before_request
    def _apply_faults() -> Any:
        path = request.path
        if path.startswith("/api/admin/") and not is_admin():  # every admin call, in one place
            return _json_error(403, "forbidden", "admin only (X-Admin-Token, or loopback when no token is set)",
                               "X-Admin-Token")
        if path.startswith(EXEMPT_PREFIXES):
            return None
        closed = state.closed
        if closed is not None:
            if closed.mode == "redirect":
                target = closed.moved_to.rstrip("/") + request.full_path.rstrip("?")
                response = redirect(target, code=308)
                response.headers["X-Portal-Moved"] = closed.moved_to
                return response
            return _moved_body(closed), 503, {"Retry-After": str(closed.retry_after_s),
                                             "X-Portal-Moved": closed.moved_to}
        if not state.faults:
            return None
        endpoint = f"{request.method} {request.url_rule.rule if request.url_rule else path}"
        delay = state.delay_for(endpoint)
        if delay > 0:
            gevent.sleep(delay)
        if state.outage():
            return _json_error(503, "outage", "the portal is down for maintenance (fault: outage)")[0], 503, \
                {"Retry-After": "30"}
        status = state.error_for(endpoint)
        if status is not None:
            return _json_error(status, "injected", f"injected error {status} (fault: errors)")
        return None

    @app.get("/api/admin/faults")
    def get_faults() -> Any:
        return jsonify(state.as_dict())

    @app.put("/api/admin/faults")
    def put_faults() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("faults"), list):
            return _json_error(400, "bad_request", "expected {\"faults\": [...]}", "faults")
        try:
            faults = [parse_fault(f, i) for i, f in enumerate(body["faults"])]
        except FaultSpecError as exc:
            return _json_error(400, "invalid_field", str(exc), str(exc).split(":")[0])
        state.replace(faults)
        return jsonify(state.as_dict())

    @app.post("/api/admin/close")
    def close() -> Any:
        body = request.get_json(silent=True) or {}
        mode = str(body.get("mode", "503"))
        moved_to = body.get("moved_to")
        if mode not in ("503", "redirect"):
            return _json_error(400, "invalid_field", "expected 503 or redirect", "mode")
        if not isinstance(moved_to, str) or not moved_to.startswith(("http://", "https://")):
            return _json_error(400, "invalid_field", "expected the new portal's address (http://…)", "moved_to")
        retry = body.get("retry_after_s", 30)
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            return _json_error(400, "invalid_field", "expected whole seconds ≥ 0", "retry_after_s")
        state.closed = Closed(mode=mode, moved_to=moved_to.rstrip("/"), retry_after_s=retry)
        return jsonify(at=time.time(), **state.as_dict())

    @app.post("/api/admin/reopen")
    def reopen() -> Any:
        state.closed = None
        return jsonify(closed=False)

    @app.post("/api/admin/import")
    def import_dossiers() -> Any:
        body = request.get_json(silent=True)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return _json_error(400, "bad_request", "expected {\"items\": [...]} from GET /api/admin/dossiers?full=1",
                               "items")
        db = get_db()
        imported = already = 0
        with db:
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("id"), int) or "form" not in item:
                    db.rollback()
                    return _json_error(400, "invalid_field", f"items[{i}]: expected a full export row "
                                                             "(GET /api/admin/dossiers?full=1)", f"items[{i}]")
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
                db.execute("INSERT INTO history (dossier_id, at, status, actor, note) VALUES (?, ?, ?, ?, ?)",
                           (item["id"], now_iso(), item["status"], "migration", "chuyển từ cổng cũ"))
                for a in item.get("attachments", []):
                    db.execute("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                               "VALUES (?, ?, ?, ?, ?, NULL)", (item["id"], a["name"], a.get("filename"),
                                                                a["size"], a["sha256"]))
                imported += 1
        return jsonify(imported=imported, already=already)


#: Dossier columns an import copies as they are (citizen_id is mapped by ID number).
_DOSSIER_COLUMNS = ("id", "code", "client_ref", "unit_code", "procedure_code", "lien_thong", "fee_vnd", "paid",
                    "status", "agency_state", "agency_due", "agency_done", "decision", "reason", "supplement_reason",
                    "supplement_count", "form", "submitted_at", "received_at", "due_at", "decided_at",
                    "returned_at", "updated_at")


def _moved_body(closed: Closed) -> Response:
    return jsonify(error="moved", field=None, moved_to=closed.moved_to,
                   message=f"this portal has closed; use {closed.moved_to}")


def export_full(db: sqlite3.Connection, row: sqlite3.Row, item: dict[str, Any]) -> None:
    """Add what an import needs to one export row."""
    for c in _DOSSIER_COLUMNS:
        item.setdefault(c, row[c])
    item["history"] = [dict(h) for h in db.execute(
        "SELECT at, status, actor, note FROM history WHERE dossier_id = ? ORDER BY id", (row["id"],))]
    item["attachments"] = [dict(a) for a in db.execute(
        "SELECT name, filename, size, sha256 FROM attachments WHERE dossier_id = ?", (row["id"],))]

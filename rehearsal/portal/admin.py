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
    the ended ones (complete, or stopped after a withdrawal), ``full=1`` adds what a migration needs: form,
    history, attachment metadata. A provincial system adds each dossier's
    ``steps`` (ms times, and when each was pushed to and acknowledged by the
    national portal), the national portal its ``synced_steps`` (when each
    arrived); ``steps=1`` adds them without the rest of ``full=1``.
``POST /api/admin/import`` ``{"items": [...]}``
    the national face takes dossiers exported from the legacy one, keeping
    their ids and codes (the faces number dossiers in disjoint ranges, see
    `rehearsal.portal.db.ID_BASE`), so a citizen following dossier 123 finds
    dossier 123. Import is idempotent: a dossier already there is counted,
    not copied twice. Citizens are matched by ID number (created if new).
    Every row is checked before anything is written, and the rows are
    written in one transaction (`rehearsal.portal.importing`): a bad row is a
    400 naming ``items[i].field`` and nothing of that import is kept. A
    provincial system queues every imported dossier for ``DongBoHoSoMC``
    in the same transaction: the national portal learns it from the link.

The systems add their own (`rehearsal.portal.systems`): the answer of
``/api/stats`` gains what the app's ``STATS_EXTRA`` returns, and a change of
faults is passed on to the app's ``ON_FAULTS`` (a provincial system switches
its link agent's faults there).
"""

from __future__ import annotations

import ipaddress
import sqlite3
import time
from typing import Any

import gevent
from flask import Blueprint, Response, current_app, jsonify, request

from ..shared.status import ENDED_SQL
from . import outbox
from .context import agency_state, fault_state, now_iso, settings
from .db import get_db, transaction
from .doors import DOOR_MODES, closed_answer
from .errors import BadRequest, Forbidden, InvalidField, error_body
from .faults import CONNECTION_FAILED, EXEMPT_PREFIXES, SYSTEM_KINDS, Closed, FaultState, parse_fault
from .importing import DOSSIER_COLUMNS, check_rows, write_rows
from .inputs import INT64_MAX, json_object, query_int, read_json, same_secret, text, whole

bp = Blueprint("admin", __name__)

#: Columns of every export row (``full=1`` adds the rest of `DOSSIER_COLUMNS`, history and attachments).
_EXPORT_COLUMNS = ("id", "code", "client_ref", "citizen_id", "unit_code", "procedure_code", "status",
                   "supplement_count", "submitted_at", "received_at", "due_at", "decided_at", "returned_at", "paid")


def is_admin() -> bool:
    """Whether the caller may make admin calls: the admin token if one is set, else loopback."""
    token = settings().admin_token
    if token:
        return same_secret(request.headers.get("X-Admin-Token", ""), token)
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
    answer = closed_answer(state.closed)  # closed, redirected or frozen (`rehearsal.portal.doors`)
    if answer is not None:
        return answer
    if not state.faults:
        return None
    endpoint = f"{request.method} {request.url_rule.rule if request.url_rule else path}"
    answer = _link_fault(state, path, endpoint)
    if answer is not None:
        return answer
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


def _link_fault(state: FaultState, path: str, endpoint: str) -> Any:
    """The national portal's link and VNeID faults, for the calls they touch (None: carry on)."""
    if path.startswith("/api/dvcqg/"):
        delay = state.delay_for(endpoint, "link-slow")
        if delay > 0:
            gevent.sleep(delay)
        if state.active("link-down"):
            return jsonify(error_code="-1", **error_body("link_down", CONNECTION_FAILED)), 503, {"Retry-After": "30"}
        if state.hits("link-errors"):  # the national portal's style: HTTP 200, the failure in error_code
            return jsonify(error_code="-1", message=CONNECTION_FAILED)
    elif path.startswith("/api/auth/vneid/") and state.hits("vneid-overload"):
        return jsonify(error_body("overloaded", CONNECTION_FAILED)), 503, {"Retry-After": "30"}
    return None


# -- faults and the closed door ---------------------------------------------------

@bp.get("/api/admin/faults")
def get_faults() -> Any:
    """The active faults, the closed door, and the dossiers a silent-drop deleted."""
    return jsonify(fault_state().as_dict())


@bp.put("/api/admin/faults")
def put_faults() -> Any:
    """Replace the active faults; a bad one is a `FaultSpecError` (400 naming ``faults[i].field``)."""
    body = read_json()
    if not isinstance(body, dict) or not isinstance(body.get("faults"), list):
        raise BadRequest("expected {\"faults\": [...]}", "faults")
    kinds = SYSTEM_KINDS[settings().system]
    faults = [parse_fault(f, i, kinds) for i, f in enumerate(body["faults"])]
    state = fault_state()
    state.replace(faults)
    _tell_peers(state)
    on_faults = current_app.config.get("ON_FAULTS")
    if on_faults is not None:
        on_faults(state)
    return jsonify(state.as_dict())


def _tell_peers(state: FaultState) -> None:
    """With several processes, every one of them plays the new faults (or door) before the call answers."""
    peers = current_app.config.get("PEERS")
    if peers is not None:
        peers.put_faults(current_app.config["PEERS_SCOPE"], state)


@bp.post("/api/admin/close")
def close() -> Any:
    """Close this (legacy) face: 503 with the new address, or a 308 to it."""
    body = json_object(optional=True)
    mode = "503" if body.get("mode") in (None, "", 503) else text(body, "mode", max_len=10)  # 503 as a number too
    moved_to = text(body, "moved_to", required=False, max_len=2000)
    if mode not in DOOR_MODES:
        raise InvalidField("expected 503, redirect or freeze", "mode")
    # It goes out in a header (X-Portal-Moved, Location): printable ASCII only.
    if moved_to is None or not moved_to.startswith(("http://", "https://")) or not moved_to.isascii() \
            or not moved_to.isprintable():
        raise InvalidField("expected the new portal's address (http://…)", "moved_to")
    retry = whole(body.get("retry_after_s", 30), "retry_after_s", 0, 86400)
    state = fault_state()
    state.closed = Closed(mode=mode, moved_to=moved_to.rstrip("/"), retry_after_s=retry)
    _tell_peers(state)
    return jsonify(at=time.time(), **state.as_dict())


@bp.post("/api/admin/reopen")
def reopen() -> Any:
    """Undo close."""
    fault_state().closed = None
    _tell_peers(fault_state())
    return jsonify(closed=False)


# -- export and import ------------------------------------------------------------

@bp.get("/api/admin/dossiers")
def export() -> Response:
    """Every dossier, paged by id (reconciliation; with ``full=1``, migration)."""
    after = query_int("after_id", 0, 0, INT64_MAX)
    limit = query_int("limit", 1000, 1, 5000)
    full, only_open = request.args.get("full") == "1", request.args.get("open") == "1"
    system = settings().system
    db = get_db()
    rows = db.execute(
        "SELECT d.*, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id WHERE d.id > ? "
        + (f"AND d.status NOT IN {ENDED_SQL} " if only_open else "") + "ORDER BY d.id LIMIT ?",
        (after, limit)).fetchall()
    items = []
    for r in rows:
        item = {k: r[k] for k in _EXPORT_COLUMNS}
        item["agency_state"] = agency_state(r)
        item["id_number"] = r["id_number"]
        if full:
            _export_full(db, r, item)
        if system != "portal":
            item.update(channel=r["channel"], owner_name=r["owner_name"])
        items.append(item)
    if system != "portal" and (full or request.args.get("steps") == "1"):
        _export_steps(db, system, items)
    return jsonify(items=items, next_after_id=rows[-1]["id"] if len(rows) == limit else None)


def _export_steps(db: sqlite3.Connection, system: str, items: list[dict[str, Any]]) -> None:
    """A provincial system's steps with their push and ack; the national portal's synced steps with their arrival."""
    if system == "provincial":
        steps = outbox.steps_of(db, (i["id"] for i in items))
        for item in items:
            item["steps"] = steps[item["id"]]
        return
    for item in items:
        item["synced_steps"] = [
            {"MaBuocXuLy": s["step_key"].rsplit("|", 1)[-1], "ThoiDiemXuLy": s["at"], "status": s["status"],
             "actor": s["actor"], "note": s["note"], "received_at": now_iso(s["received_at"])}
            for s in db.execute("SELECT * FROM synced_steps WHERE dossier_id = ? ORDER BY order_key, id",
                                (item["id"],))]


def _export_full(db: sqlite3.Connection, row: sqlite3.Row, item: dict[str, Any]) -> None:
    """Add what an import needs to one export row."""
    for c in DOSSIER_COLUMNS:
        item.setdefault(c, row[c])
    item["history"] = [dict(h) for h in db.execute(
        "SELECT at, status, actor, note FROM history WHERE dossier_id = ? ORDER BY id", (row["id"],))]
    item["attachments"] = [dict(a) for a in db.execute(
        "SELECT name, filename, size, sha256 FROM attachments WHERE dossier_id = ?", (row["id"],))]


@bp.post("/api/admin/import")
def import_dossiers() -> Any:
    """Take dossiers exported by another face (``GET /api/admin/dossiers?full=1``), keeping ids and codes."""
    cfg = settings()
    rows = check_rows(read_json(cfg.max_import_bytes))
    db = get_db()
    with transaction(db):  # all the rows or none of them (and, on a provincial system, their outbox rows)
        imported, already = write_rows(db, rows, system=cfg.system)
    return jsonify(imported=imported, already=already)

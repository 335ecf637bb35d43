"""What every blueprint of the portal needs from the call it answers.

The caller's session (from the bearer token), the time as ISO text, the
app's parts (settings, live view, catalogue, faults), a dossier's history
line and its public view, and the rule that a citizen sees only their own
dossiers and an officer only their unit's. What the call sends is read
through `rehearsal.portal.inputs`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from flask import current_app, g, request

from ..shared.catalogue import Catalogue
from ..shared.status import DossierStatus
from .db import get_db
from .errors import Forbidden, NotFound, SessionExpired, Unauthorized
from .faults import FaultState
from .live import LiveView
from .records import add_history, now_iso
from .settings import PortalSettings

__all__ = ["add_history", "agency_state", "catalogue", "dossier_view", "fault_state", "live", "now_iso",
           "own_dossier", "require_session", "settings"]



def settings() -> PortalSettings:
    """The settings this app was built with."""
    return current_app.config["PORTAL"]


def live() -> LiveView:
    """The app's live view: active sessions and request timings."""
    return current_app.config["LIVE"]


def catalogue() -> Catalogue:
    """The procedure catalogue."""
    return current_app.config["CATALOGUE"]


def fault_state() -> FaultState:
    """The faults the portal is told to have now, and the closed door."""
    return current_app.config["FAULTS"]


# -- sessions -------------------------------------------------------------------

def _token() -> tuple[str, str]:
    """The session token the call carries, and the header it is in (the app's ``SESSION_HEADER``)."""
    header = current_app.config.get("SESSION_HEADER", "Authorization")
    if header != "Authorization":  # the city-style front door: the token alone in its own header
        return request.headers.get(header, "").strip(), header
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.startswith("Bearer ") else ""
    if not token:
        raise Unauthorized("sign in first: header Authorization: Bearer <token>", "Authorization")
    return token, header


def require_session(role: str | None = None) -> dict[str, Any]:
    """The caller's session, from its token (401 without one, 403 for the wrong role)."""
    token, header = _token()
    if not token:
        raise Unauthorized(f"sign in first: header {header}", header)
    cache: dict[str, dict[str, Any]] = current_app.config["SESSIONS"]
    sess = cache.get(token)
    if sess is None:  # after a restart the cache is empty; the database still knows the token
        row = get_db().execute("SELECT * FROM sessions WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise Unauthorized("unknown or signed-out session", header)
        sess = cache[token] = dict(row)
    if sess["expires_at"] < time.time():
        cache.pop(token, None)
        raise SessionExpired("the session has expired; sign in again", header)
    if role and sess["role"] != role:
        raise Forbidden(f"this call is for {role}s", None)
    live().touch(token, sess["role"])
    g.token = token
    return sess


# -- dossiers -----------------------------------------------------------------------

def agency_state(row: sqlite3.Row) -> str | None:
    """Where a liên thông dossier is: None, ``at_agency``, or ``back`` once the agency's delay has passed."""
    state = row["agency_state"]
    if state == "at_agency" and row["agency_due"] is not None and row["agency_due"] <= time.time():
        return "back"
    return state


def dossier_view(row: sqlite3.Row, history: list[sqlite3.Row] | None = None) -> dict[str, Any]:
    """A dossier as the API shows it (with its history when given)."""
    out = {k: row[k] for k in ("id", "code", "status", "unit_code", "procedure_code", "fee_vnd", "due_at",
                               "decision", "reason", "supplement_reason", "supplement_count", "submitted_at",
                               "received_at", "decided_at", "returned_at")}
    # A database written before imports were checked may hold a code outside the ten: shown, never a 500.
    name = DossierStatus(row["status"]).label if DossierStatus.known(row["status"]) else "?"
    out.update(status_name=name, paid=bool(row["paid"]),
               lien_thong=bool(row["lien_thong"]), agency_state=agency_state(row),
               agency_done=bool(row["agency_done"]))
    if history is not None:
        out["history"] = [dict(h) for h in history]
    return out


def own_dossier(db: sqlite3.Connection, sess: dict[str, Any], dossier_id: int) -> sqlite3.Row:
    """The dossier, if the caller may see it: a citizen their own, an officer their unit's (404, 403)."""
    row = db.execute("SELECT * FROM dossiers WHERE id = ?", (dossier_id,)).fetchone()
    if row is None:
        raise NotFound(f"no dossier {dossier_id}", "id")
    if sess["role"] == "citizen" and row["citizen_id"] != sess["citizen_id"]:
        raise Forbidden("this dossier belongs to another citizen", "id")
    if sess["role"] == "officer" and row["unit_code"] != sess["unit_code"]:
        raise Forbidden(f"this dossier was filed at unit {row['unit_code']}, not yours", "id")
    return row

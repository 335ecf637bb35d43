"""Signing in and out: the simulated VNeID for citizens, username and password for officers.

A session is a bearer token (a header, not a cookie, so Locust's two clients
behave the same), kept in SQLite so it survives a restart and cached in memory
so a request does not read it from the database. Three blueprints, so each
system takes the sign-ins of its own people: `vneid_bp` (citizens: the
national portal, and the single portal of old), `officer_bp` (officers: a
provincial system, and the single portal of old) and `bp` (signing out).
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify

from .context import live, now_iso, require_session, settings
from .db import get_db, hash_password, transaction
from .errors import InvalidField, Unauthorized
from .inputs import ID_NUMBER, json_object, same_secret, text

bp = Blueprint("auth", __name__)
vneid_bp = Blueprint("auth_vneid", __name__)
officer_bp = Blueprint("auth_officer", __name__)

#: Pending OTP requests kept before the expired ones are forgotten: bounded memory.
_OTP_SWEEP_AT = 50_000
#: Wall seconds an OTP stays valid.
_OTP_TTL_S = 300


def new_session(db: sqlite3.Connection, role: str, **ids: Any) -> dict[str, Any]:
    """A session row, written inside the caller's transaction; `remember` it once committed."""
    now = time.time()
    sess = {"token": secrets.token_urlsafe(24), "role": role, "citizen_id": ids.get("citizen_id"),
            "officer_id": ids.get("officer_id"), "unit_code": ids.get("unit_code"), "username": ids.get("username"),
            "created_at": now, "expires_at": now + settings().session_ttl_s}
    db.execute("INSERT INTO sessions VALUES (:token, :role, :citizen_id, :officer_id, :unit_code, :username, "
               ":created_at, :expires_at)", sess)
    return sess


def remember(sess: dict[str, Any]) -> None:
    """Cache a committed session and count it as active (never one whose transaction rolled back)."""
    current_app.config["SESSIONS"][sess["token"]] = sess
    live().touch(sess["token"], sess["role"])


@vneid_bp.post("/api/auth/vneid/otp")
def vneid_otp() -> Response:
    """VNeID step 1: an OTP for a 12-digit ID number (handed back: there is no phone)."""
    id_number = text(json_object("id_number"), "id_number")
    if not ID_NUMBER.fullmatch(id_number):  # ASCII digits and nothing after: one person, one citizen
        raise InvalidField("expected a 12-digit personal ID number (ASCII digits)", "id_number")
    otps: dict[str, tuple[str, str, float]] = current_app.config["OTPS"]
    if len(otps) > _OTP_SWEEP_AT:
        now = time.time()
        for k in [k for k, v in otps.items() if v[2] < now]:
            otps.pop(k, None)
    request_id, otp = secrets.token_urlsafe(12), f"{secrets.randbelow(10**6):06d}"
    otps[request_id] = (id_number, otp, time.time() + _OTP_TTL_S)
    # Simulated VNeID: the OTP that a phone would receive is handed back.
    return jsonify(otp_request_id=request_id, otp=otp)


@vneid_bp.post("/api/auth/vneid/verify")
def vneid_verify() -> Response:
    """VNeID step 2: the OTP gives a citizen's session (the citizen is created on first sign-in)."""
    body = json_object("otp_request_id", "otp")
    request_id, otp = text(body, "otp_request_id", max_len=64), text(body, "otp", max_len=64)
    pending = current_app.config["OTPS"].pop(request_id, None)
    if pending is None or pending[2] < time.time():
        raise InvalidField("unknown or expired OTP request", "otp_request_id")
    if not same_secret(otp, pending[1]):
        raise InvalidField("wrong OTP", "otp")
    db = get_db()
    with transaction(db):
        db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)", (pending[0], now_iso()))
        citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?", (pending[0],)).fetchone()[0]
        sess = new_session(db, "citizen", citizen_id=citizen_id)
    remember(sess)
    return jsonify(token=sess["token"], role="citizen", citizen_id=citizen_id, expires_at=now_iso(sess["expires_at"]))


@officer_bp.post("/api/auth/officer")
def officer_sign_in() -> Response:
    """An officer's session for their unit."""
    body = json_object("username", "password")
    username, password = text(body, "username", max_len=64), text(body, "password", max_len=256)
    db = get_db()
    row = db.execute("SELECT * FROM officers WHERE username = ?", (username,)).fetchone()
    if row is None or not hmac.compare_digest(hash_password(password, row["salt"]), row["password_hash"]):
        raise Unauthorized("wrong username or password", "password")
    with transaction(db):
        sess = new_session(db, "officer", officer_id=row["id"], unit_code=row["unit_code"], username=row["username"])
    remember(sess)
    return jsonify(token=sess["token"], role="officer", unit_code=row["unit_code"], officer_id=row["id"])


@bp.post("/api/auth/logout")
def logout() -> Response:
    """End the caller's session."""
    require_session()
    db = get_db()
    db.execute("DELETE FROM sessions WHERE token = ?", (g.token,))  # one statement: its own transaction
    current_app.config["SESSIONS"].pop(g.token, None)
    live().forget(g.token)
    return jsonify(ok=True)

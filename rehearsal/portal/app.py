"""The reference portal's Flask app: citizens, officers, payments, its own view.

`create_app(settings)` is the app factory; `docs/portal-api.md` is the
contract it implements. Rules kept here, not in the harness: a citizen sees
only their own dossiers, an officer acts only on dossiers of their own unit, a
citizen may file at any unit, the lifecycle is a state machine (409 on a wrong
step), and a 2xx on a write means the write is committed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, redirect, request

from ..shared.catalogue import Catalogue, Procedure, load_catalogue
from ..shared.wards import units_by_code
from .admin import export_full, register_admin
from .db import close_db, get_db, hash_password, init_db
from .faults import FaultState
from .live import PROM_BUCKETS, LiveView
from .settings import PortalSettings

STATUS_NAMES = {
    1: "Mới đăng ký", 2: "Được tiếp nhận", 3: "Không được tiếp nhận", 4: "Đang xử lý",
    5: "Yêu cầu bổ sung giấy tờ", 6: "Yêu cầu thực hiện nghĩa vụ tài chính", 7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý", 9: "Đã xử lý xong", 10: "Đã trả kết quả",
}
COMPLETE = (3, 10)
log = logging.getLogger("rehearsal.portal")
_ID_NUMBER = re.compile(r"^\d{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE = re.compile(r"^0\d{9,10}$")


class ApiError(Exception):
    """A 4xx answer: which field, and why."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.field = status, error, message, field


def _now_iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _settings() -> PortalSettings:
    return current_app.config["PORTAL"]


def _live() -> LiveView:
    return current_app.config["LIVE"]


def _catalogue() -> Catalogue:
    return current_app.config["CATALOGUE"]


# -- sessions -------------------------------------------------------------------

def _session(role: str | None = None) -> dict[str, Any]:
    """The caller's session, from the bearer token (401 without one, 403 for the wrong role)."""
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.startswith("Bearer ") else ""
    if not token:
        raise ApiError(401, "unauthorized", "sign in first: header Authorization: Bearer <token>", "Authorization")
    cache: dict[str, dict[str, Any]] = current_app.config["SESSIONS"]
    sess = cache.get(token)
    if sess is None:  # after a restart the cache is empty; the database still knows the token
        row = get_db().execute("SELECT * FROM sessions WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise ApiError(401, "unauthorized", "unknown or signed-out session", "Authorization")
        sess = cache[token] = dict(row)
    if sess["expires_at"] < time.time():
        cache.pop(token, None)
        raise ApiError(401, "session_expired", "the session has expired; sign in again", "Authorization")
    if role and sess["role"] != role:
        raise ApiError(403, "forbidden", f"this call is for {role}s", None)
    _live().touch(token, sess["role"])
    g.token = token
    return sess


def _new_session(db: sqlite3.Connection, role: str, **ids: Any) -> dict[str, Any]:
    now = time.time()
    sess = {"token": secrets.token_urlsafe(24), "role": role, "citizen_id": ids.get("citizen_id"),
            "officer_id": ids.get("officer_id"), "unit_code": ids.get("unit_code"), "username": ids.get("username"),
            "created_at": now, "expires_at": now + _settings().session_ttl_s}
    db.execute("INSERT INTO sessions VALUES (:token, :role, :citizen_id, :officer_id, :unit_code, :username, "
               ":created_at, :expires_at)", sess)
    current_app.config["SESSIONS"][sess["token"]] = sess
    _live().touch(sess["token"], role)
    return sess


# -- input ------------------------------------------------------------------------

def _json_body(*required: str) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "expected a JSON object body", None)
    for name in required:
        if body.get(name) in (None, ""):
            raise ApiError(400, "missing_field", f"{name} is required", name)
    return body


def _check_form(proc: Procedure, form: Any) -> dict[str, str]:
    if not isinstance(form, dict):
        raise ApiError(400, "invalid_field", "form must be a JSON object of field values", "form")
    out = {}
    for f in proc.fields:
        value = form.get(f.name)
        where = f"form.{f.name}"
        if value in (None, ""):
            if f.required:
                raise ApiError(400, "missing_field", f"{f.label} ({f.name}) is required", where)
            continue
        value = str(value)
        if f.type == "id_number" and not _ID_NUMBER.match(value):
            raise ApiError(400, "invalid_field", "expected a 12-digit personal ID number", where)
        if f.type == "date" and not _DATE.match(value):
            raise ApiError(400, "invalid_field", "expected a date YYYY-MM-DD", where)
        if f.type == "number" and not re.match(r"^-?\d+(\.\d+)?$", value):
            raise ApiError(400, "invalid_field", "expected a number", where)
        if f.type == "phone" and not _PHONE.match(value):
            raise ApiError(400, "invalid_field", "expected a phone number of 10–11 digits starting with 0", where)
        if f.type == "choice" and f.choices and value not in f.choices:
            raise ApiError(400, "invalid_field", f"expected one of: {', '.join(f.choices)}", where)
        out[f.name] = value[:500]
    return out


def _files(allowed: set[str] | None) -> list[tuple[str, str, bytes]]:
    limit = _settings().max_attachment_bytes
    out = []
    for name, storage in request.files.items(multi=True):
        if allowed is not None and name not in allowed:
            raise ApiError(400, "invalid_field", f"unexpected attachment (expected: {', '.join(sorted(allowed))})",
                           name)
        content = storage.read(limit + 1)
        if len(content) > limit:
            raise ApiError(413, "too_large", f"attachment is larger than {limit} bytes", name)
        out.append((name, storage.filename or name, content))
    return out


def _store_files(db: sqlite3.Connection, dossier_id: int, files: list[tuple[str, str, bytes]]) -> None:
    db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [(dossier_id, n, fn, len(c), hashlib.sha256(c).hexdigest(), c) for n, fn, c in files])


def _history(db: sqlite3.Connection, dossier_id: int, status: int, actor: str, note: str | None = None) -> None:
    db.execute("INSERT INTO history (dossier_id, at, status, actor, note) VALUES (?, ?, ?, ?, ?)",
               (dossier_id, _now_iso(), status, actor, note))


# -- views of a dossier ----------------------------------------------------------------

def _agency_state(row: sqlite3.Row) -> str | None:
    state = row["agency_state"]
    if state == "at_agency" and row["agency_due"] is not None and row["agency_due"] <= time.time():
        return "back"
    return state


def _dossier_view(row: sqlite3.Row, history: list[sqlite3.Row] | None = None) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "code", "status", "unit_code", "procedure_code", "fee_vnd", "due_at",
                               "decision", "reason", "supplement_reason", "supplement_count", "submitted_at",
                               "received_at", "decided_at", "returned_at")}
    out.update(status_name=STATUS_NAMES[row["status"]], paid=bool(row["paid"]), lien_thong=bool(row["lien_thong"]),
               agency_state=_agency_state(row), agency_done=bool(row["agency_done"]))
    if history is not None:
        out["history"] = [dict(h) for h in history]
    return out


def _own_dossier(db: sqlite3.Connection, sess: dict[str, Any], dossier_id: int) -> sqlite3.Row:
    row = db.execute("SELECT * FROM dossiers WHERE id = ?", (dossier_id,)).fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"no dossier {dossier_id}", "id")
    if sess["role"] == "citizen" and row["citizen_id"] != sess["citizen_id"]:
        raise ApiError(403, "forbidden", "this dossier belongs to another citizen", "id")
    if sess["role"] == "officer" and row["unit_code"] != sess["unit_code"]:
        raise ApiError(403, "forbidden", f"this dossier was filed at unit {row['unit_code']}, not yours", "id")
    return row


def _is_admin() -> bool:
    token = _settings().admin_token
    if token:
        return hmac.compare_digest(request.headers.get("X-Admin-Token", ""), token)
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


# -- the app ------------------------------------------------------------------------

def create_app(settings: PortalSettings) -> Flask:
    """The reference portal as a Flask app; `init_db` runs here (idempotent)."""
    init_db(settings)
    faults = FaultState()
    app = Flask(__name__)
    app.config.update(PORTAL=settings, LIVE=LiveView(settings.active_window_s), CATALOGUE=load_catalogue(),
                      SESSIONS={}, OTPS={}, FAULTS=faults, MAX_CONTENT_LENGTH=16 * settings.max_attachment_bytes + 65536,
                      JSON_AS_ASCII=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    units = units_by_code()
    catalogue = app.config["CATALOGUE"]
    summaries = [p.summary() for p in catalogue.procedures]
    app.teardown_appcontext(close_db)
    register_admin(app, faults, is_admin=_is_admin, get_db=get_db, now_iso=_now_iso)

    @app.after_request
    def _name_endpoint(response: Response) -> Response:
        # Named by route, not path, so dossier ids do not explode the table.
        rule = request.url_rule.rule if request.url_rule else "<unmatched>"
        request.environ["rehearsal.endpoint"] = (f"{request.method} {rule}", response.status_code >= 500)
        return response

    flask_app = app.wsgi_app
    live = app.config["LIVE"]

    def timed_wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        """Server-side timing of the whole WSGI call: routing, handler, database, response body."""
        t0 = time.perf_counter()
        body = flask_app(environ, start_response)
        endpoint, error = environ.get("rehearsal.endpoint", ("<unmatched>", False))
        live.record(endpoint, time.perf_counter() - t0, error)
        return body

    app.wsgi_app = timed_wsgi_app  # type: ignore[method-assign]

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(error=exc.error, field=exc.field, message=exc.message), exc.status

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> tuple[Response, int]:
        return jsonify(error="not_found", field=None, message=f"no such path {request.path}"), 404

    @app.errorhandler(405)
    def _bad_method(_exc: Exception) -> tuple[Response, int]:
        return jsonify(error="method_not_allowed", field=None, message=f"{request.method} not allowed here"), 405

    @app.errorhandler(500)
    def _server_error(_exc: Exception) -> tuple[Response, int]:
        return jsonify(error="internal", field=None, message="the portal failed; see its log"), 500

    @app.errorhandler(413)
    def _too_large(_exc: Exception) -> tuple[Response, int]:
        return jsonify(error="too_large", field=None, message="request body too large"), 413

    # -- health and sign-in --------------------------------------------------------
    @app.get("/openapi.json")
    def openapi() -> Response:
        from .openapi import spec

        return jsonify(spec())

    @app.get("/api/health")
    def health() -> Response:
        return jsonify(ok=True, face=settings.face)

    @app.post("/api/auth/vneid/otp")
    def vneid_otp() -> Response:
        body = _json_body("id_number")
        id_number = str(body["id_number"])
        if not _ID_NUMBER.match(id_number):
            raise ApiError(400, "invalid_field", "expected a 12-digit personal ID number", "id_number")
        otps: dict[str, tuple[str, str, float]] = app.config["OTPS"]
        if len(otps) > 50_000:  # forget expired requests; bounded memory
            now = time.time()
            for k in [k for k, v in otps.items() if v[2] < now]:
                otps.pop(k, None)
        request_id, otp = secrets.token_urlsafe(12), f"{secrets.randbelow(10**6):06d}"
        otps[request_id] = (id_number, otp, time.time() + 300)
        # Simulated VNeID: the OTP that a phone would receive is handed back.
        return jsonify(otp_request_id=request_id, otp=otp)

    @app.post("/api/auth/vneid/verify")
    def vneid_verify() -> Response:
        body = _json_body("otp_request_id", "otp")
        pending = app.config["OTPS"].pop(str(body["otp_request_id"]), None)
        if pending is None or pending[2] < time.time():
            raise ApiError(400, "invalid_field", "unknown or expired OTP request", "otp_request_id")
        if not hmac.compare_digest(str(body["otp"]), pending[1]):
            raise ApiError(400, "invalid_field", "wrong OTP", "otp")
        db = get_db()
        with db:
            db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)",
                       (pending[0], _now_iso()))
            citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?", (pending[0],)).fetchone()[0]
            sess = _new_session(db, "citizen", citizen_id=citizen_id)
        return jsonify(token=sess["token"], role="citizen", citizen_id=citizen_id,
                       expires_at=_now_iso(sess["expires_at"]))

    @app.post("/api/auth/officer")
    def officer_sign_in() -> Response:
        body = _json_body("username", "password")
        db = get_db()
        row = db.execute("SELECT * FROM officers WHERE username = ?", (str(body["username"]),)).fetchone()
        if row is None or not hmac.compare_digest(hash_password(str(body["password"]), row["salt"]),
                                                  row["password_hash"]):
            raise ApiError(401, "unauthorized", "wrong username or password", "password")
        with db:
            sess = _new_session(db, "officer", officer_id=row["id"], unit_code=row["unit_code"],
                                username=row["username"])
        return jsonify(token=sess["token"], role="officer", unit_code=row["unit_code"], officer_id=row["id"])

    @app.post("/api/auth/logout")
    def logout() -> Response:
        _session()
        db = get_db()
        with db:
            db.execute("DELETE FROM sessions WHERE token = ?", (g.token,))
        app.config["SESSIONS"].pop(g.token, None)
        _live().forget(g.token)
        return jsonify(ok=True)

    # -- catalogue ----------------------------------------------------------------
    @app.get("/api/procedures")
    def procedures() -> Response:
        q = request.args.get("q", "").strip()
        try:
            page = max(1, int(request.args.get("page", 1)))
            per_page = min(100, max(1, int(request.args.get("per_page", 20))))
        except ValueError:
            raise ApiError(400, "invalid_field", "page and per_page are whole numbers", "page") from None
        items = [p.summary() for p in catalogue.search(q)] if q else summaries
        return jsonify(total=len(items), page=page, items=items[(page - 1) * per_page: page * per_page])

    @app.get("/api/procedures/<code>")
    def procedure(code: str) -> Response:
        proc = catalogue.get(code)
        if proc is None:
            raise ApiError(404, "not_found", f"no procedure {code}", "code")
        return jsonify(proc.as_dict())

    # -- citizens' dossiers ------------------------------------------------------------
    @app.post("/api/dossiers")
    def submit() -> tuple[Response, int]:
        sess = _session("citizen")
        form = request.form
        proc = catalogue.get(form.get("procedure_code", ""))
        if proc is None:
            raise ApiError(400, "invalid_field", "unknown procedure (see GET /api/procedures)", "procedure_code")
        try:
            unit_code = int(form.get("unit_code", ""))
        except ValueError:
            raise ApiError(400, "invalid_field", "expected an official unit code", "unit_code") from None
        if unit_code not in units:
            raise ApiError(400, "invalid_field", f"unknown unit {unit_code}", "unit_code")
        client_ref = form.get("client_ref") or None
        if client_ref is not None and len(client_ref) > 64:
            raise ApiError(400, "invalid_field", "at most 64 characters", "client_ref")
        try:
            values = _check_form(proc, json.loads(form.get("form", "{}")))
        except json.JSONDecodeError:
            raise ApiError(400, "invalid_field", "expected a JSON object", "form") from None
        files = _files({a.name for a in proc.attachments})
        given = {name for name, _, _ in files}
        for a in proc.attachments:
            if a.required and a.name not in given:
                raise ApiError(400, "missing_field", f"attachment {a.label} ({a.name}) is required", a.name)
        db = get_db()
        if client_ref:
            row = db.execute("SELECT * FROM dossiers WHERE citizen_id = ? AND client_ref = ?",
                             (sess["citizen_id"], client_ref)).fetchone()
            if row is not None:  # the same submission again: the same dossier, never a second one
                return jsonify(id=row["id"], code=row["code"], status=row["status"], fee_vnd=row["fee_vnd"],
                               payment_required=row["status"] == 6), 200
        status = 6 if proc.fee_vnd > 0 else 1
        now = _now_iso()
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
            _history(db, dossier_id, status, f"citizen:{sess['citizen_id']}")
        if faults.drop_this():  # fault silent-drop: accepted and answered, then gone
            with db:
                for table, column in (("attachments", "dossier_id"), ("history", "dossier_id"), ("dossiers", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {column} = ?", (dossier_id,))
            faults.dropped.append(dossier_id)
            log.warning("fault silent-drop: dossier %d answered 201 and deleted", dossier_id)
        return jsonify(id=dossier_id, code=code, status=status, fee_vnd=proc.fee_vnd,
                       payment_required=status == 6), 201

    @app.get("/api/dossiers")
    def my_dossiers() -> Response:
        sess = _session("citizen")
        rows = get_db().execute("SELECT * FROM dossiers WHERE citizen_id = ? ORDER BY id DESC LIMIT 100",
                                (sess["citizen_id"],)).fetchall()
        return jsonify(items=[_dossier_view(r) for r in rows])

    @app.get("/api/dossiers/<int:dossier_id>")
    def dossier(dossier_id: int) -> Response:
        sess = _session()
        db = get_db()
        row = _own_dossier(db, sess, dossier_id)
        history = db.execute("SELECT at, status, actor, note FROM history WHERE dossier_id = ? ORDER BY id",
                             (dossier_id,)).fetchall()
        return jsonify(_dossier_view(row, history))

    @app.post("/api/dossiers/<int:dossier_id>/payment")
    def start_payment(dossier_id: int) -> Response:
        sess = _session("citizen")
        db = get_db()
        row = _own_dossier(db, sess, dossier_id)
        if row["status"] != 6:
            raise ApiError(409, "wrong_state", f"no fee due (status {row['status']})", "status")
        payment_id = secrets.token_urlsafe(12)
        with db:
            db.execute("INSERT INTO payments VALUES (?, ?, ?, 'pending', ?, NULL)",
                       (payment_id, dossier_id, row["fee_vnd"], _now_iso()))
        return jsonify(payment_id=payment_id, redirect_url=f"/pay/{payment_id}", amount_vnd=row["fee_vnd"])

    def _signature(payment_id: str, result: str) -> str:
        return hmac.new(settings.payment_secret, f"{payment_id}|{result}".encode(), hashlib.sha256).hexdigest()

    @app.get("/pay/<payment_id>")
    def intermediary(payment_id: str) -> Response:
        # The payment intermediary's page: it takes the money and sends the citizen back, signed.
        result = "success"
        return redirect(f"/api/payments/callback?payment_id={payment_id}&result={result}"
                        f"&signature={_signature(payment_id, result)}", code=302)

    @app.get("/api/payments/callback")
    def payment_callback() -> Response:
        payment_id = request.args.get("payment_id", "")
        result = request.args.get("result", "")
        if not hmac.compare_digest(request.args.get("signature", ""), _signature(payment_id, result)):
            raise ApiError(400, "invalid_field", "bad signature from the payment intermediary", "signature")
        db = get_db()
        pay = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
        if pay is None:
            raise ApiError(404, "not_found", "unknown payment", "payment_id")
        if result != "success":
            raise ApiError(402, "payment_failed", "the intermediary refused the payment", "result")
        with db:
            if pay["status"] != "paid":
                db.execute("UPDATE payments SET status = 'paid', paid_at = ? WHERE id = ?", (_now_iso(), payment_id))
                cur = db.execute("UPDATE dossiers SET paid = 1, status = 1, updated_at = ? WHERE id = ? AND status = 6",
                                 (_now_iso(), pay["dossier_id"]))
                if cur.rowcount:
                    _history(db, pay["dossier_id"], 1, "payment", f"paid {pay['amount']} VND")
        return jsonify(dossier_id=pay["dossier_id"], paid=True)

    @app.post("/api/dossiers/<int:dossier_id>/supplement")
    def supplement(dossier_id: int) -> Response:
        sess = _session("citizen")
        db = get_db()
        row = _own_dossier(db, sess, dossier_id)
        if row["status"] != 5:
            raise ApiError(409, "wrong_state", f"no supplement requested (status {row['status']})", "status")
        files = _files(None)
        with db:
            db.execute("UPDATE dossiers SET status = 4, updated_at = ? WHERE id = ?", (_now_iso(), dossier_id))
            _store_files(db, dossier_id, files)
            _history(db, dossier_id, 4, f"citizen:{sess['citizen_id']}", "supplement given")
        return jsonify(id=dossier_id, status=4)

    # -- officers --------------------------------------------------------------------
    @app.get("/api/officer/queue")
    def queue() -> Response:
        sess = _session("officer")
        try:
            statuses = [int(s) for s in request.args.get("status", "1,2,4,9").split(",") if s]
            limit = min(200, max(1, int(request.args.get("limit", 20))))
        except ValueError:
            raise ApiError(400, "invalid_field", "status is a comma-separated list of codes", "status") from None
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT * FROM dossiers WHERE unit_code = ? AND status IN ({marks})"
        params: list[Any] = [sess["unit_code"], *statuses]
        if request.args.get("actionable") == "1":  # leave out what waits at the second agency
            sql += " AND NOT (ifnull(agency_state, '') = 'at_agency' AND agency_due > ?)"
            params.append(time.time())
        rows = get_db().execute(sql + " ORDER BY id LIMIT ?", (*params, limit)).fetchall()
        return jsonify(items=[_dossier_view(r) for r in rows])

    def _transition(dossier_id: int, action: str) -> tuple[dict[str, Any], sqlite3.Row, sqlite3.Connection]:
        sess = _session("officer")
        db = get_db()
        return sess, _own_dossier(db, sess, dossier_id), db

    def _require(row: sqlite3.Row, status: int, action: str) -> None:
        if row["status"] != status:
            raise ApiError(409, "wrong_state", f"cannot {action}: dossier is at status {row['status']} "
                                               f"({STATUS_NAMES[row['status']]}), expected {status}", "status")

    def _update(db: sqlite3.Connection, row: sqlite3.Row, sess: dict[str, Any], expected: int, new: int,
                note: str | None = None, **fields: Any) -> Response:
        sets = ", ".join(f"{k} = ?" for k in ["status", "updated_at", *fields])
        with db:
            cur = db.execute(f"UPDATE dossiers SET {sets} WHERE id = ? AND status = ?",
                             (new, _now_iso(), *fields.values(), row["id"], expected))
            if cur.rowcount == 0:  # someone else moved it since we read it
                raise ApiError(409, "wrong_state", "the dossier changed meanwhile; read it again", "status")
            _history(db, row["id"], new, f"officer:{sess['username']}", note)
        fresh = db.execute("SELECT * FROM dossiers WHERE id = ?", (row["id"],)).fetchone()
        return jsonify(_dossier_view(fresh))

    @app.post("/api/officer/dossiers/<int:dossier_id>/receive")
    def receive(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "receive")
        _require(row, 1, "receive")
        proc = catalogue.get(row["procedure_code"])
        now = time.time()
        due = now + (proc.due_days if proc else 1) * settings.working_day_s / settings.time_scale
        return _update(db, row, sess, 1, 2, "phiếu hẹn", received_at=_now_iso(now), due_at=_now_iso(due))

    @app.post("/api/officer/dossiers/<int:dossier_id>/refuse-intake")
    def refuse_intake(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "refuse")
        body = _json_body("reason")
        _require(row, 1, "refuse at intake")
        now = _now_iso()
        return _update(db, row, sess, 1, 3, str(body["reason"])[:500], reason=str(body["reason"])[:500],
                       decided_at=now, returned_at=now)

    @app.post("/api/officer/dossiers/<int:dossier_id>/process")
    def process(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "process")
        _require(row, 2, "start processing")
        return _update(db, row, sess, 2, 4)

    @app.post("/api/officer/dossiers/<int:dossier_id>/request-supplement")
    def request_supplement(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "request a supplement")
        body = _json_body("reason")
        _require(row, 4, "request a supplement")
        if row["agency_state"]:
            raise ApiError(409, "wrong_state", "the dossier is with the second agency", "agency_state")
        return _update(db, row, sess, 4, 5, str(body["reason"])[:500], supplement_reason=str(body["reason"])[:500],
                       supplement_count=row["supplement_count"] + 1)

    @app.post("/api/officer/dossiers/<int:dossier_id>/transfer")
    def transfer(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "transfer")
        _require(row, 4, "transfer")
        if not row["lien_thong"]:
            raise ApiError(409, "wrong_state", "not a liên thông procedure: no second agency", "procedure_code")
        if row["agency_state"] or row["agency_done"]:
            raise ApiError(409, "wrong_state", "already handed to the second agency", "agency_state")
        proc = catalogue.get(row["procedure_code"])
        due = time.time() + settings.agency_delay_s * faults.agency_factor() / settings.time_scale
        return _update(db, row, sess, 4, 4, f"chuyển {proc.second_agency if proc else 'cơ quan phối hợp'}",
                       agency_state="at_agency", agency_due=due)

    @app.post("/api/officer/dossiers/<int:dossier_id>/take-back")
    def take_back(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "take back")
        _require(row, 4, "take back")
        if _agency_state(row) != "back":
            raise ApiError(409, "wrong_state", "the second agency has not returned it yet", "agency_state")
        return _update(db, row, sess, 4, 4, "nhận lại từ cơ quan phối hợp", agency_state=None, agency_done=1)

    @app.post("/api/officer/dossiers/<int:dossier_id>/decide")
    def decide(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "decide")
        body = _json_body("decision")
        decision = body["decision"]
        if decision not in ("approved", "refused"):
            raise ApiError(400, "invalid_field", "expected approved or refused", "decision")
        if decision == "refused" and not body.get("reason"):
            raise ApiError(400, "missing_field", "a refusal needs a reason", "reason")
        _require(row, 4, "decide")
        if row["agency_state"] or (row["lien_thong"] and not row["agency_done"]):
            raise ApiError(409, "wrong_state", "liên thông: the second agency must return it before a decision",
                           "agency_state")
        return _update(db, row, sess, 4, 9, decision, decision=decision, reason=body.get("reason") or None,
                       decided_at=_now_iso())

    @app.post("/api/officer/dossiers/<int:dossier_id>/return")
    def return_result(dossier_id: int) -> Response:
        sess, row, db = _transition(dossier_id, "return")
        _require(row, 9, "return the result")
        return _update(db, row, sess, 9, 10, "trả kết quả", returned_at=_now_iso())

    # -- the portal's own view ---------------------------------------------------------
    def _counts() -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
        db = get_db()
        by_status = {str(s): n for s, n in db.execute("SELECT status, count(*) FROM dossiers GROUP BY status")}
        by_unit = {str(u): {"submitted": n, "complete": c} for u, n, c in db.execute(
            "SELECT unit_code, count(*), sum(status IN (3, 10)) FROM dossiers GROUP BY unit_code")}
        return by_status, by_unit, sum(by_status.values())

    @app.get("/api/stats")
    def stats() -> Response:
        active = _live().active()
        by_status, by_unit, total = _counts()
        timings = {name: {"count": t.count, "errors": t.errors, "p50_ms": t.percentile_ms(0.5),
                          "p95_ms": t.percentile_ms(0.95), "p99_ms": t.percentile_ms(0.99)}
                   for name, t in sorted(_live().timings.items())}
        return jsonify(face=settings.face, sessions_active=sum(active.values()), sessions_by_role=active,
                       window_s=settings.active_window_s, dossiers_by_status=by_status, dossiers_by_unit=by_unit,
                       dossiers_total=total, requests=timings, uptime_s=round(time.time() - _live().started, 1))

    @app.get("/metrics")
    def metrics() -> Response:
        active = _live().active()
        by_status, _, _ = _counts()
        lines = ["# HELP portal_sessions_active Sessions with a request in the active window.",
                 "# TYPE portal_sessions_active gauge"]
        lines += [f'portal_sessions_active{{role="{r}"}} {n}' for r, n in sorted(active.items())]
        lines += ["# HELP portal_dossiers Dossiers by status code.", "# TYPE portal_dossiers gauge"]
        lines += [f'portal_dossiers{{status="{s}"}} {n}' for s, n in sorted(by_status.items(), key=lambda x: int(x[0]))]
        lines += ["# HELP portal_request_duration_seconds Server-side request time by endpoint.",
                  "# TYPE portal_request_duration_seconds histogram"]
        for name, t in sorted(_live().timings.items()):
            label = name.replace("\\", "\\\\").replace('"', '\\"')
            cumulative = 0
            for le, n in zip(PROM_BUCKETS, t.prom):
                cumulative += n
                lines.append(f'portal_request_duration_seconds_bucket{{endpoint="{label}",le="{le}"}} {cumulative}')
            lines.append(f'portal_request_duration_seconds_bucket{{endpoint="{label}",le="+Inf"}} {t.count}')
            lines.append(f'portal_request_duration_seconds_sum{{endpoint="{label}"}} {t.total_s:.6f}')
            lines.append(f'portal_request_duration_seconds_count{{endpoint="{label}"}} {t.count}')
        return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")

    @app.get("/api/admin/dossiers")
    def export() -> Response:
        if not _is_admin():
            raise ApiError(403, "forbidden", "admin only (X-Admin-Token, or loopback when no token is set)",
                           "X-Admin-Token")
        try:
            after = int(request.args.get("after_id", 0))
            limit = min(5000, max(1, int(request.args.get("limit", 1000))))
            full, only_open = request.args.get("full") == "1", request.args.get("open") == "1"
        except ValueError:
            raise ApiError(400, "invalid_field", "after_id and limit are whole numbers", "after_id") from None
        db = get_db()
        rows = db.execute(
            "SELECT d.*, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id WHERE d.id > ? "
            + ("AND d.status NOT IN (3, 10) " if only_open else "") + "ORDER BY d.id LIMIT ?", (after, limit)).fetchall()
        items = []
        for r in rows:
            item = {k: r[k] for k in ("id", "code", "client_ref", "citizen_id", "unit_code", "procedure_code",
                                      "status", "supplement_count", "submitted_at", "received_at", "due_at",
                                      "decided_at", "returned_at", "paid")}
            item["agency_state"] = _agency_state(r)
            item["id_number"] = r["id_number"]
            if full:
                export_full(db, r, item)
            items.append(item)
        return jsonify(items=items, next_after_id=rows[-1]["id"] if len(rows) == limit else None)

    return app

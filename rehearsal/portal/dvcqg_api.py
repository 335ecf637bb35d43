"""The national portal's integration API: sign-in, and the one service endpoint every provincial system calls.

``POST /api/dvcqg/auth`` takes ``{"username", "password"}`` with the unit's
code in header ``X-Ma-Don-Vi`` and answers ``{"error_code": "0", "message",
"session"}``; ``POST /api/dvcqg/service`` takes ``{"session", "madonvi",
"service", "data", "isUpdating"?}`` and answers ``{"error_code", "message",
"result"?}`` (`rehearsal.portal.dvcqg_services`). The national portal's
style: an answer is HTTP 200 and says what went wrong in ``error_code``
(docs/integration-api.md lists them); only a body that cannot be read at all
(not JSON, nested too deep, too large: the one input layer's refusals) is an
HTTP 4xx, and then its body carries both shapes, ``error_code`` and the
portal's ``{"error", "field", "message"}``.

Sessions live in memory for `SESSION_TTL_S`: a national portal that restarts
forgets them, and a provincial system signs in again on ``-4``, as real ones do.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .context import settings
from .db import get_db
from .dvcqg_services import SERVICES, answer
from .errors import ApiError
from .inputs import json_object, same_secret, shown

bp = Blueprint("dvcqg", __name__)

SIGN_IN_FAILED, BAD_SESSION, WRONG_UNIT, INVALID, NO_SERVICE = "-1", "-4", "-5", "-6", "-9"
#: Wall seconds an integration session lasts.
SESSION_TTL_S = 3600.0
#: Sessions kept before the expired ones are forgotten: bounded memory.
_SWEEP_AT = 10_000


def _sessions() -> dict[str, tuple[str, str, float]]:
    return current_app.config.setdefault("DVCQG_SESSIONS", {})


def _body() -> dict[str, Any] | tuple[Response, int]:
    """The call's JSON object, or the HTTP 4xx of a body that cannot be read (both shapes)."""
    try:
        return json_object()
    except ApiError as exc:
        return jsonify(error_code=INVALID, **exc.body()), exc.status


@bp.post("/api/dvcqg/auth")
def sign_in() -> Any:
    """An integration session for a provincial system's account and unit code."""
    body = _body()
    if not isinstance(body, dict):
        return body
    accounts = dict(settings().integration_accounts)
    username, password = body.get("username"), body.get("password")
    ma_don_vi = request.headers.get("X-Ma-Don-Vi", "").strip()
    if not isinstance(username, str) or not isinstance(password, str) or username not in accounts \
            or not same_secret(password, settings().link_password):
        return jsonify(answer(SIGN_IN_FAILED, "Tài khoản hoặc mật khẩu không đúng"))
    if ma_don_vi != accounts[username]:
        return jsonify(answer(SIGN_IN_FAILED, f"Mã đơn vị {shown(ma_don_vi, 40)!r} không thuộc tài khoản này",
                              field="X-Ma-Don-Vi"))
    sessions = _sessions()
    if len(sessions) > _SWEEP_AT:
        now = time.time()
        for token in [t for t, s in sessions.items() if s[2] < now]:
            sessions.pop(token, None)
    token = secrets.token_urlsafe(24)
    sessions[token] = (username, ma_don_vi, time.time() + SESSION_TTL_S)
    return jsonify(answer("0", "Thành công", session=token))


@bp.post("/api/dvcqg/service")
def service() -> Any:
    """One integration service: the session and unit checked, then the service's own answer."""
    body = _body()
    if not isinstance(body, dict):
        return body
    token = body.get("session")
    held = _sessions().get(token) if isinstance(token, str) else None
    if held is None or held[2] < time.time():
        return jsonify(answer(BAD_SESSION, "Phiên làm việc không hợp lệ hoặc đã hết hạn; đăng nhập lại",
                              field="session"))
    account, ma_don_vi, _ = held
    if body.get("madonvi") != ma_don_vi:
        return jsonify(answer(WRONG_UNIT, f"madonvi phải là mã đơn vị của phiên ({ma_don_vi})", field="madonvi"))
    name = body.get("service")
    run = SERVICES.get(name) if isinstance(name, str) else None
    if run is None:
        shown_name = shown(name, 40) if isinstance(name, str) else repr(type(name).__name__)
        return jsonify(answer(NO_SERVICE, f"Không có dịch vụ {shown_name} (có: {', '.join(SERVICES)})",
                              field="service"))
    return jsonify(run(get_db(), account, body))

"""The city-style front door a provincial process serves on its second port: its app, and its answers' shape.

`create_front_door_app(settings)` assembles the city portal's API
(`rehearsal.portal.city`), the payment intermediary, the operator's calls
(close and reopen with ``X-Portal-Moved``, freeze: no new dossiers while
a cutover's runbook drains and validates, `rehearsal.portal.doors`; faults) and the portal's own view
(health, stats, metrics, ``/openapi.json``), on the provincial system's
database and with sessions and timings of its own: it is its own system to
the people using it, and counts its own sessions.

Every error it gives, whoever gives it (a handler, the input layer, Flask,
the closed door, a fault), leaves in the city portal's shape (`to_city`):
``{"maLoi": <non-zero>, "thongDiep", "truong"}``, the HTTP status kept,
the field renamed to the city's name for it (``form.copies`` is
``thongTin.copies``), a closed door's ``moved_to`` kept.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response

from . import admin, city, ops, payments
from .app import assemble
from .faults import FaultState
from .live import LiveView, interval_for
from .settings import PortalSettings

#: The city portal's error numbers, by the portal's error code.
CITY_CODES = {"bad_request": 1, "missing_field": 2, "invalid_field": 3, "unauthorized": 4, "session_expired": 5,
              "payment_failed": 6, "forbidden": 7, "not_found": 8, "wrong_state": 9, "conflict": 10, "too_large": 11,
              "too_long": 12, "headers_too_large": 13, "method_not_allowed": 14, "moved": 20, "outage": 21,
              "injected": 22, "frozen": 23, "internal": 99}
#: The city's names for the logical fields (the first part of a field's path).
CITY_FIELDS = {"procedure_code": "maThuTuc", "unit_code": "maDonVi", "form": "thongTin", "client_ref": "maGiaoDich",
               "reason": "lyDo", "status": "trangThai", "dossier_id": "maHoSo", "Authorization": city.SESSION_HEADER}


def _city_field(name: str | None) -> str | None:
    if not name:
        return name
    head, sep, rest = name.partition(".")
    return CITY_FIELDS.get(head, head) + sep + rest


def to_city(body: dict[str, Any]) -> dict[str, Any]:
    """An error body in the portal's shape as the city portal writes it."""
    out = {"maLoi": CITY_CODES.get(str(body.get("error")), 1), "thongDiep": body.get("message", ""),
           "truong": _city_field(body.get("field"))}
    if "moved_to" in body:
        out["moved_to"] = body["moved_to"]
    return out


def create_front_door_app(settings: PortalSettings) -> Flask:
    """The city-style front door of a provincial system (its own sessions, timings, faults and closed door)."""
    app = assemble(settings, (admin.bp, city.bp, payments.intermediary_bp, ops.bp),
                   LiveView(settings.active_window_s, interval_for(settings.time_scale), settings.server_timing),
                   API="city", SESSION_HEADER=city.SESSION_HEADER,
                   FAULTS=FaultState())

    @app.after_request
    def _city_errors(response: Response) -> Response:
        if response.status_code >= 400 and response.is_json:
            body = response.get_json(silent=True)
            if isinstance(body, dict) and "error" in body and "maLoi" not in body:
                response.set_data(json.dumps(to_city(body), ensure_ascii=False))
        return response

    return app

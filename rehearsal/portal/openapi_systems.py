"""The OpenAPI document of each system, served at its ``GET /openapi.json``.

The national portal documents its citizens' share of the single portal's
paths and its integration API (docs/integration-api.md); a provincial system
its officers' share and the link's admin call; the city-style front door its
own API (docs/city-portal-api.md), whose errors are ``{"maLoi",
"thongDiep", "truong"}`` and whose session is header ``X-Ma-Phien``. Each is
checked against its running system by the same two fuzzes as the single
portal's (tests/test_systems_openapi.py).
"""

from __future__ import annotations

from typing import Any

from .openapi import document, json_content, obj, op, portal_paths
from .openapi import spec as portal_spec

_TEXT = {"type": "string"}
_INT = {"type": "integer"}
_WHO = obj("ok", "system", "name", ok={"type": "boolean"}, system=_TEXT, name=_TEXT)
#: The paths of the single portal each system keeps.
_ADMIN = ("/api/stats", "/metrics", "/api/admin/dossiers", "/api/admin/faults", "/api/admin/close",
          "/api/admin/reopen")
NATIONAL_PATHS = ("/api/auth/vneid/otp", "/api/auth/vneid/verify", "/api/auth/logout", "/api/procedures",
                  "/api/procedures/{code}", "/api/dossiers", "/api/dossiers/{dossier_id}",
                  "/api/dossiers/{dossier_id}/payment", "/api/dossiers/{dossier_id}/supplement",
                  "/api/dossiers/{dossier_id}/withdraw", "/pay/{payment_id}", "/api/payments/callback", *_ADMIN)
PROVINCIAL_PATHS = ("/api/auth/officer", "/api/auth/logout", "/api/officer/queue", "/api/admin/import", *_ADMIN)
_ANSWER = obj("error_code", "message", error_code=_TEXT, message=_TEXT, result={"type": "array"}, session=_TEXT,
              last_seq=_INT, field={"type": ["string", "null"]}, missing={"type": "array"})
SERVICES = ["DongBoHoSoMC", "CapNhatTienDoHoSoMC", "TraCuuHoSo", "LayThayDoiHoSo"]
CITY_ERROR = {"type": "object", "required": ["maLoi", "thongDiep"],
              "properties": {"maLoi": _INT, "thongDiep": _TEXT, "truong": {"type": ["string", "null"]},
                             "moved_to": _TEXT}}


def _kept(names: tuple[str, ...]) -> dict[str, Any]:
    paths = portal_paths()
    out = {name: paths[name] for name in names}
    out["/api/health"] = {"get": op("liveness and which system this is", _WHO, tag="view")}
    return out


def _integration() -> dict[str, Any]:
    return {
        "/api/dvcqg/auth": {"post": op(
            "integration sign-in: a session for a provincial system's account (error_code 0)", _ANSWER, tag="link",
            body=obj("username", "password", username=_TEXT, password=_TEXT),
            params=[{"name": "X-Ma-Don-Vi", "in": "header", "required": True, "schema": _TEXT}])},
        "/api/dvcqg/service": {"post": op(
            "one integration service: DongBoHoSoMC, CapNhatTienDoHoSoMC, TraCuuHoSo, LayThayDoiHoSo (ours)",
            _ANSWER, tag="link", body=obj("session", "madonvi", "service", "data", session=_TEXT, madonvi=_TEXT,
                                          service={"type": "string", "enum": SERVICES},
                                          data={"type": ["array", "object"]},
                                          isUpdating={"type": "string", "enum": ["True", "False"]}))},
    }


def _link() -> dict[str, Any]:
    return {"/api/admin/link": {"post": op(
        "kill (-9) or start the link agent", obj("action", "outbox_pending", "agent_alive"), tag="admin",
        body=obj("action", action={"type": "string", "enum": ["kill", "start"]}),
        conflict="this system has no link agent")}}


def _city_op(summary: str, data: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    ok = obj("maLoi", "thongDiep", maLoi=_INT, thongDiep=_TEXT, duLieu=data or {"type": ["object", "null"]})
    return op(summary, ok, error=CITY_ERROR, scheme="maPhien", **kw)


def _city() -> dict[str, Any]:
    code = {"name": "ma_ho_so", "in": "path", "required": True, "schema": _TEXT}
    dossier = obj("maHoSo", "trangThai", maHoSo=_TEXT, trangThai=_INT, tenTrangThai=_TEXT, quaTrinh={"type": "array"})
    admin = {"tag": "admin", "error": CITY_ERROR}
    return {
        "/dichvucong/api/taikhoan/dangnhap": {"post": _city_op(
            "sign in with the ID number and the password (the account is made at the first sign-in)",
            obj("maPhien", "hetHan", maPhien=_TEXT, hetHan=_TEXT), tag="auth",
            body=obj("tenDangNhap", "matKhau", tenDangNhap=_TEXT, matKhau=_TEXT))},
        "/dichvucong/api/taikhoan/dangxuat": {"post": _city_op("sign out", auth=True, tag="auth")},
        "/dichvucong/api/thutuc": {"get": _city_op("the catalogue, searched and paged",
                                                   obj("tongSo", "danhSach"), params=[
                                                       {"name": n, "in": "query", "schema": s} for n, s in
                                                       (("tuKhoa", _TEXT), ("trang", _INT), ("soLuong", _INT))])},
        "/dichvucong/api/thutuc/{ma_thu_tuc}": {"get": _city_op(
            "one procedure: its form fields and papers", obj("maThuTuc", "truongThongTin"),
            params=[{"name": "ma_thu_tuc", "in": "path", "required": True, "schema": _TEXT}])},
        "/dichvucong/api/hoso": {
            "post": _city_op("file a dossier (multipart; thongTin is the form as JSON; maGiaoDich the idempotency key)",
                             obj("maHoSo", "trangThai", "canThanhToan"), status="201", auth=True,
                             conflict="maGiaoDich sent before with another submission",
                             form=obj("maThuTuc", "maDonVi", maThuTuc=_TEXT, maDonVi=_TEXT, thongTin=_TEXT,
                                      maGiaoDich=_TEXT)),
            "get": _city_op("my dossiers", obj("danhSach"), auth=True)},
        "/dichvucong/api/hoso/{ma_ho_so}": {"get": _city_op("one of my dossiers, by code, with its history", dossier,
                                                            params=[code], auth=True)},
        "/dichvucong/api/hoso/{ma_ho_so}/thanhtoan": {"post": _city_op(
            "start paying the fee: the intermediary's address", obj("maThanhToan", "duongDan"), params=[code],
            auth=True, conflict="no fee due")},
        "/dichvucong/api/hoso/{ma_ho_so}/bosung": {"post": _city_op(
            "answer a supplement request (multipart files)", dossier, params=[code], auth=True, form=obj(),
            conflict="no supplement requested")},
        "/dichvucong/api/hoso/{ma_ho_so}/rut": {"post": _city_op(
            "ask to withdraw a dossier not decided yet", dossier, params=[code], auth=True,
            body=obj(lyDo=_TEXT), body_required=False, conflict="decided, refused or withdrawn already")},
        "/pay/{payment_id}": {"get": {"summary": "the payment intermediary's page: 302 to the signed callback",
                                      "tags": ["citizens"], "parameters": [{"name": "payment_id", "in": "path",
                                                                            "required": True, "schema": _TEXT}],
                                      "responses": {"302": {"description": "to /api/payments/callback"},
                                                    "4XX": {"description": "unknown payment",
                                                            **json_content(CITY_ERROR)}}}},
        "/api/payments/callback": {"get": op("the intermediary's signed answer", obj("dossier_id", "paid"),
                                             error=CITY_ERROR, params=[{"name": n, "in": "query", "schema": _TEXT}
                                                                       for n in ("payment_id", "result", "signature")],
                                             conflict="the dossier is not waiting for this fee")},
        "/api/health": {"get": op("liveness and which system this is", _WHO, tag="view", error=CITY_ERROR)},
        "/api/stats": {"get": op("the front door's own view: its sessions and request timings",
                                 obj("sessions_active", "requests"), tag="view", error=CITY_ERROR)},
        "/api/admin/faults": {"get": op("active faults", obj("faults"), **admin),
                              "put": op("replace the active faults", obj("faults"), **admin,
                                        body=obj("faults", faults={"type": "array", "items": {"type": "object"}}))},
        "/api/admin/close": {"post": op("close the front door: 503 (or 308) with X-Portal-Moved", obj("closed"),
                                        **admin, body=obj("moved_to", mode={"type": "string",
                                                                            "enum": ["503", "redirect"]},
                                                          moved_to=_TEXT, retry_after_s=_INT))},
        "/api/admin/reopen": {"post": op("undo close", obj("closed"), **admin)},
    }


def spec(api: str = "portal") -> dict[str, Any]:
    """The OpenAPI document of the API `api` names: ``portal``, ``national``, ``provincial`` or ``city``."""
    if api == "national":
        return document(_kept(NATIONAL_PATHS) | _integration(), "dvc-rehearsal national portal (Cổng DVCQG)",
                        "Citizens' API (docs/portal-api.md) and the integration API (docs/integration-api.md).")
    if api == "provincial":
        paths = _kept(PROVINCIAL_PATHS) | {k: v for k, v in portal_paths().items() if k.startswith("/api/officer/")}
        return document(paths | _link(), "dvc-rehearsal provincial one-stop system",
                        "Officers' API and the operator's (docs/portal-api.md).")
    if api == "city":
        return document(_city(), "dvc-rehearsal city portal (front door)",
                        "The city portal's own API: docs/city-portal-api.md.",
                        {"maPhien": {"type": "apiKey", "in": "header", "name": "X-Ma-Phien"}})
    return portal_spec()



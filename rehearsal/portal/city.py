"""The city's own portal API: the front door of a one-stop system before its cutover, in its own shape.

Deliberately not the national portal's shape, as a real city portal's was
not: its own paths under ``/dichvucong/api/``, Vietnamese field names,
its own sign-in (the citizen's ID number and a password; an account is made
at the first sign-in, the reference takes one password per run from the
environment), its session in header ``X-Ma-Phien``, dossiers followed by
code (``maHoSo``), answers ``{"maLoi": 0, "thongDiep", "duLieu"}`` and
errors ``{"maLoi": <non-zero>, "thongDiep", "truong"}`` with an HTTP 4xx
(`rehearsal.portal.frontdoor`). What it writes goes into the provincial
system's database through the same functions as the national portal's
citizen API (`rehearsal.portal.dossiers`), so a dossier filed here is
processed by the provincial officers, and its outbox row takes it to the
national portal. docs/city-portal-api.md is its contract.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..shared.catalogue import Procedure
from ..shared.status import DossierStatus
from . import dossiers
from .auth import new_session, remember
from .context import catalogue, live, now_iso, own_dossier, require_session, settings
from .db import get_db, transaction
from .errors import InvalidField, NotFound, Unauthorized
from .inputs import ID_NUMBER, json_object, query_int, query_text, same_secret, shown, text
from .payments import open_payment
from .records import dvcqg_time

bp = Blueprint("city", __name__, url_prefix="/dichvucong/api")
#: The session header of the city portal.
SESSION_HEADER = "X-Ma-Phien"


def ok(data: Any, message: str = "Thành công", status: int = 200) -> tuple[Response, int]:
    """A city portal answer."""
    return jsonify(maLoi=0, thongDiep=message, duLieu=data), status


def _procedure(p: Procedure, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"maThuTuc": p.code, "tenThuTuc": p.name, "lePhi": p.fee_vnd,
                           "thoiHanGiaiQuyet": p.due_days, "lienThong": p.lien_thong}
    if full:
        out["truongThongTin"] = [{"ma": f.name, "nhan": f.label, "kieu": f.type, "batBuoc": f.required,
                                  "luaChon": list(f.choices)} for f in p.fields]
        out["giayToKemTheo"] = [{"ma": a.name, "ten": a.label, "batBuoc": a.required} for a in p.attachments]
    return out


def _dossier(row: Any, history: list[Any] | None = None) -> dict[str, Any]:
    status = row["status"]
    out = {"maHoSo": row["code"], "maThuTuc": row["procedure_code"], "maDonVi": row["unit_code"],
           "trangThai": status, "tenTrangThai": DossierStatus(status).label if DossierStatus.known(status) else "?",
           "lePhi": row["fee_vnd"], "daThanhToan": bool(row["paid"]), "ngayNop": dvcqg_time(row["submitted_at"]),
           "ngayHenTra": dvcqg_time(row["due_at"]), "ngayTra": dvcqg_time(row["returned_at"]),
           "ketQua": row["decision"], "lyDoBoSung": row["supplement_reason"]}
    if history is not None:
        out["quaTrinh"] = [{"thoiDiem": dvcqg_time(h["at"]), "trangThai": h["status"], "nguoiXuLy": h["actor"],
                            "noiDung": h["note"]} for h in history]
    return out


def _by_code(code: str) -> tuple[dict[str, Any], Any, Any]:
    """The caller's session, and their own dossier by its code (404, 403)."""
    sess = require_session("citizen")
    db = get_db()
    found = db.execute("SELECT id FROM dossiers WHERE code = ?", (code,)).fetchone()
    if found is None:
        raise NotFound(f"no dossier {shown(code)}", "maHoSo")
    return sess, own_dossier(db, sess, found["id"]), db


# -- accounts -------------------------------------------------------------------------------------

@bp.post("/taikhoan/dangnhap")
def sign_in() -> tuple[Response, int]:
    """Sign in with the ID number and the password; the account is made at the first sign-in."""
    body = json_object("tenDangNhap", "matKhau")
    id_number = text(body, "tenDangNhap", max_len=12)
    password = text(body, "matKhau", max_len=256)
    if not ID_NUMBER.fullmatch(id_number):
        raise InvalidField("expected a 12-digit personal ID number (ASCII digits)", "tenDangNhap")
    if not same_secret(password, settings().city_password):
        raise Unauthorized("wrong ID number or password", "matKhau")
    db = get_db()
    with transaction(db):
        db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)", (id_number, now_iso()))
        citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?", (id_number,)).fetchone()[0]
        sess = new_session(db, "citizen", citizen_id=citizen_id)
    remember(sess)
    return ok({"maPhien": sess["token"], "hetHan": dvcqg_time(now_iso(sess["expires_at"]))},
              "Đăng nhập thành công")


@bp.post("/taikhoan/dangxuat")
def sign_out() -> tuple[Response, int]:
    """End the caller's session."""
    require_session()
    token = request.headers.get(SESSION_HEADER, "").strip()
    get_db().execute("DELETE FROM sessions WHERE token = ?", (token,))
    current_app.config["SESSIONS"].pop(token, None)
    live().forget(token)
    return ok(None, "Đã đăng xuất")


# -- the catalogue --------------------------------------------------------------------------------

@bp.get("/thutuc")
def procedures() -> tuple[Response, int]:
    """The catalogue, searched (``tuKhoa``) and paged (``trang``, ``soLuong``)."""
    q = query_text("tuKhoa").strip()
    page = query_int("trang", 1, 1, 2**62)
    per_page = query_int("soLuong", 20, 1, 100)
    found = catalogue().search(q) if q else catalogue().procedures
    return ok({"tongSo": len(found), "trang": page,
               "danhSach": [_procedure(p) for p in found[(page - 1) * per_page: page * per_page]]})


@bp.get("/thutuc/<ma_thu_tuc>")
def procedure(ma_thu_tuc: str) -> tuple[Response, int]:
    """One procedure: its form fields and the papers to attach."""
    proc = catalogue().get(ma_thu_tuc)
    if proc is None:
        raise NotFound(f"no procedure {shown(ma_thu_tuc)}", "maThuTuc")
    return ok(_procedure(proc, full=True))


# -- dossiers -------------------------------------------------------------------------------------

@bp.post("/hoso")
def file_dossier() -> tuple[Response, int]:
    """File a dossier (multipart ``maThuTuc``, ``maDonVi``, ``thongTin``, ``maGiaoDich``, files)."""
    sess = require_session("citizen")
    form = request.form
    filed, created = dossiers.file_dossier(sess, {"procedure_code": form.get("maThuTuc", ""),
                                                  "unit_code": form.get("maDonVi", ""),
                                                  "form": form.get("thongTin", "{}"),
                                                  "client_ref": form.get("maGiaoDich", "")})
    return ok({"maHoSo": filed["code"], "trangThai": filed["status"], "lePhi": filed["fee_vnd"],
               "canThanhToan": filed["payment_required"]}, "Nộp hồ sơ thành công" if created else "Hồ sơ đã nộp",
              201 if created else 200)


@bp.get("/hoso")
def my_dossiers() -> tuple[Response, int]:
    """The caller's own dossiers, newest first (at most 100)."""
    sess = require_session("citizen")
    rows = get_db().execute("SELECT * FROM dossiers WHERE citizen_id = ? ORDER BY id DESC LIMIT 100",
                            (sess["citizen_id"],)).fetchall()
    return ok({"danhSach": [_dossier(r) for r in rows]})


@bp.get("/hoso/<ma_ho_so>")
def dossier(ma_ho_so: str) -> tuple[Response, int]:
    """One of the caller's dossiers, by code, with its history."""
    _, row, db = _by_code(ma_ho_so)
    history = db.execute("SELECT at, status, actor, note FROM history WHERE dossier_id = ? ORDER BY id",
                         (row["id"],)).fetchall()
    return ok(_dossier(row, history))


@bp.post("/hoso/<ma_ho_so>/thanhtoan")
def pay(ma_ho_so: str) -> tuple[Response, int]:
    """Start paying the fee: the payment intermediary's address (the open payment, if one is)."""
    _, row, db = _by_code(ma_ho_so)
    payment_id = open_payment(db, row)
    return ok({"maThanhToan": payment_id, "duongDan": f"/pay/{payment_id}", "soTien": row["fee_vnd"]})


@bp.post("/hoso/<ma_ho_so>/bosung")
def supplement(ma_ho_so: str) -> tuple[Response, int]:
    """Answer a supplement request with files: back to processing."""
    sess, row, db = _by_code(ma_ho_so)
    dossiers.give_supplement(sess, db, row)
    return ok(_dossier(db.execute("SELECT * FROM dossiers WHERE id = ?", (row["id"],)).fetchone()))


@bp.post("/hoso/<ma_ho_so>/rut")
def withdraw(ma_ho_so: str) -> tuple[Response, int]:
    """Ask to withdraw a dossier not decided yet (``lyDo`` optional)."""
    body = json_object(optional=True)
    sess, row, db = _by_code(ma_ho_so)
    reason = text(body, "lyDo", required=False)
    return ok(_dossier(dossiers.ask_withdrawal(sess, db, row, reason)))

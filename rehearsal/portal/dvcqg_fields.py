"""The integration API's field names: a dossier or a step as the national portal's API writes and reads it.

Both systems use this one mapping: the provincial link builds ``DongBoHoSoMC``
dossiers and ``CapNhatTienDoHoSoMC`` steps from its rows (`dossier_fields`,
`step_fields`); the national portal checks what it is sent (`check_dossier`,
`check_step`) and answers ``TraCuuHoSo`` with the same names. Statuses are
the ten codes as text ("1"…"10"), times ``yyyyMMddHHmmss`` in
Asia/Ho_Chi_Minh (`rehearsal.portal.records`). A field that is wrong is an
`InvalidField`/`MissingField` naming its place (``data[2].TrangThai``); the
service turns it into that item's ``error_code``.

Ours, beyond the public shape (documented as such in docs/integration-api.md):
``MaBuocXuLy``, the provincial system's number of a step (its history line),
which makes a step's identity exact where two steps fall in one second.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from ..shared.catalogue import load_catalogue
from ..shared.status import DossierStatus
from ..shared.wards import units_by_code
from .errors import InvalidField, MissingField
from .inputs import ID_NUMBER, INT64_MAX, kind, text, whole
from .records import dvcqg_time, iso_of_dvcqg

#: LoaiDoiTuong of a citizen (công dân).
CITIZEN = "1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TITLES = {2: "Cán bộ một cửa", 3: "Cán bộ một cửa", 4: "Chuyên viên xử lý", 5: "Chuyên viên xử lý",
           8: "Chuyên viên xử lý", 9: "Lãnh đạo ký duyệt", 10: "Cán bộ trả kết quả"}


# -- out: our rows in the API's names ------------------------------------------------------------

def dossier_fields(db: sqlite3.Connection, row: sqlite3.Row, ma_don_vi: str = "") -> dict[str, Any]:
    """A dossier row (with its owner's ``id_number``) as ``DongBoHoSoMC`` and ``TraCuuHoSo`` write it."""
    proc = load_catalogue().get(row["procedure_code"])
    files = db.execute("SELECT name, filename, size, sha256 FROM attachments WHERE dossier_id = ? ORDER BY id",
                       (row["id"],)).fetchall()
    keys = row.keys()
    owner = row["owner_name"] if "owner_name" in keys and row["owner_name"] else f"Công dân {row['id_number']}"
    return {
        "MaHoSo": row["code"], "MaTTHC": row["procedure_code"], "TenTTHC": proc.name if proc else "",
        "ChuHoSo": owner, "SoGiayToChuHoSo": row["id_number"], "LoaiDoiTuong": CITIZEN,
        "NgayTiepNhan": dvcqg_time(row["received_at"] or row["submitted_at"]), "NgayHenTra": dvcqg_time(row["due_at"]),
        "NgayTra": dvcqg_time(row["returned_at"]), "TrangThaiHoSo": str(row["status"]),
        "DonViXuLy": str(row["unit_code"]), "MaDonVi": ma_don_vi,
        "KenhThucHien": str(row["channel"] if "channel" in keys else 2),
        "TaiLieuNop": [{"TenGiayTo": f["name"], "TenTepDinhKem": f["filename"] or f["name"], "KichThuoc": f["size"],
                        "MaHash": f["sha256"]} for f in files],
        "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "MucPhi": row["fee_vnd"], "DaThanhToan": "1" if row["paid"]
                           else "0"}] if row["fee_vnd"] else [],
    }


def step_fields(step: sqlite3.Row, dossier: sqlite3.Row) -> dict[str, Any]:
    """An outbox step row (with its dossier) as ``CapNhatTienDoHoSoMC`` takes it."""
    actor = step["actor"] or ""
    unit = units_by_code().get(dossier["unit_code"])
    return {
        "MaHoSo": step["code"], "NguoiXuLy": actor.split(":", 1)[-1], "ThoiDiemXuLy": dvcqg_time(step["at"]),
        "ChucDanh": "Công dân" if actor.startswith("citizen") else _TITLES.get(step["status"], "Cán bộ"),
        "PhongBanXuLy": unit.name if unit else str(dossier["unit_code"]),
        "NoiDungXuLy": step["note"] or DossierStatus(step["status"]).label, "TrangThai": str(step["status"]),
        "NgayBatDau": dvcqg_time(dossier["received_at"] or dossier["submitted_at"]),
        "NgayKetThucTheoQuyDinh": dvcqg_time(dossier["due_at"]), "MaBuocXuLy": str(step["step_seq"]),
    }


# -- in: the API's names checked into our columns -------------------------------------------------

def status_code(value: Any, where: str) -> int:
    """A status sent as "4" (or 4): one of the ten codes."""
    if value is None or value == "":
        raise MissingField("a status code is required", where)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 2:
        value = int(value)
    if not DossierStatus.known(value):
        raise InvalidField(f"expected one of the ten status codes \"1\" to \"10\", found {kind(value)}", where)
    return int(value)


def api_time(item: dict[str, Any], name: str, where: str, *, required: bool = False) -> str | None:
    """A time field (``yyyyMMddHHmmss`` in Asia/Ho_Chi_Minh) as our ISO UTC text; None if empty and allowed."""
    value = text(item, name, required=required, max_len=17, where=f"{where}.{name}")
    if value is None:
        return None
    try:
        return iso_of_dvcqg(value)
    except ValueError:
        raise InvalidField(f"expected a time yyyyMMddHHmmss (Asia/Ho_Chi_Minh), found {value!r}",
                           f"{where}.{name}") from None


def _digits(item: dict[str, Any], name: str, where: str, default: int | None = None) -> int:
    value = item.get(name)
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return whole(value, f"{where}.{name}", 0, INT64_MAX)
    raise (MissingField if value in (None, "") else InvalidField)(f"expected a code in ASCII digits, found "
                                                                 f"{kind(value)}", f"{where}.{name}")


def _objects(item: dict[str, Any], name: str, where: str, most: int) -> list[dict[str, Any]]:
    value = item.get(name) or []
    if not isinstance(value, list) or len(value) > most or not all(isinstance(v, dict) for v in value):
        raise InvalidField(f"expected a list of at most {most} objects", f"{where}.{name}")
    return value


def attachments(item: dict[str, Any], where: str) -> list[tuple[str, str | None, int, str]]:
    """``TaiLieuNop`` as attachment rows (name, file name, size, checksum); the content stays where it was filed."""
    out = []
    for j, f in enumerate(_objects(item, "TaiLieuNop", where, 100)):
        at = f"{where}.TaiLieuNop[{j}]"
        sha = text(f, "MaHash", required=False, max_len=64, where=f"{at}.MaHash") or ""
        if sha and not _HEX64.fullmatch(sha):
            raise InvalidField("expected 64 hexadecimal digits", f"{at}.MaHash")
        out.append((text(f, "TenGiayTo", max_len=100, where=f"{at}.TenGiayTo"),
                    text(f, "TenTepDinhKem", required=False, max_len=255, where=f"{at}.TenTepDinhKem"),
                    whole(f.get("KichThuoc", 0), f"{at}.KichThuoc", 0, INT64_MAX), sha))
    return out


def check_dossier(item: Any, where: str) -> dict[str, Any]:
    """One dossier of ``DongBoHoSoMC`` (or of a ``filed`` feed item) as our columns, checked whole."""
    if not isinstance(item, dict):
        raise InvalidField(f"expected a dossier object, found {kind(item)}", where)
    out: dict[str, Any] = {"code": text(item, "MaHoSo", max_len=64, where=f"{where}.MaHoSo"),
                           "procedure_code": text(item, "MaTTHC", max_len=64, where=f"{where}.MaTTHC"),
                           "owner_name": text(item, "ChuHoSo", required=False, max_len=200,
                                              where=f"{where}.ChuHoSo")}
    id_number = text(item, "SoGiayToChuHoSo", max_len=12, where=f"{where}.SoGiayToChuHoSo")
    if not ID_NUMBER.fullmatch(id_number):
        raise InvalidField("expected a 12-digit personal ID number (ASCII digits)", f"{where}.SoGiayToChuHoSo")
    out["id_number"] = id_number
    out["unit_code"] = _digits(item, "DonViXuLy", where)
    if out["unit_code"] not in units_by_code():
        raise InvalidField(f"unknown unit {out['unit_code']}", f"{where}.DonViXuLy")
    out["status"] = status_code(item.get("TrangThaiHoSo"), f"{where}.TrangThaiHoSo")
    out["channel"] = _digits(item, "KenhThucHien", where, default=2)
    if out["channel"] not in (1, 2, 3):
        raise InvalidField("expected 1 (in person), 2 (online) or 3 (postal)", f"{where}.KenhThucHien")
    for column, name in (("received_at", "NgayTiepNhan"), ("due_at", "NgayHenTra"), ("returned_at", "NgayTra"),
                         ("submitted_at", "NgayNop")):
        out[column] = api_time(item, name, where)
    out["attachments"] = attachments(item, where)
    fees = _objects(item, "DanhSachLePhi", where, 20)
    out["fee_vnd"] = sum(whole(f.get("MucPhi", 0), f"{where}.DanhSachLePhi[{j}].MucPhi", 0, 10**12)
                         for j, f in enumerate(fees))
    out["paid"] = int(bool(fees) and all(f.get("DaThanhToan") in ("1", 1, True) for f in fees))
    return out


def check_step(item: Any, where: str) -> dict[str, Any]:
    """One step of ``CapNhatTienDoHoSoMC`` as our columns, checked whole."""
    if not isinstance(item, dict):
        raise InvalidField(f"expected a step object, found {kind(item)}", where)
    out: dict[str, Any] = {"code": text(item, "MaHoSo", max_len=64, where=f"{where}.MaHoSo")}
    raw_at = text(item, "ThoiDiemXuLy", max_len=17, where=f"{where}.ThoiDiemXuLy")
    api_time(item, "ThoiDiemXuLy", where, required=True)
    out["at"] = raw_at[:14]
    out["status"] = status_code(item.get("TrangThai"), f"{where}.TrangThai")
    for column, name, most in (("actor", "NguoiXuLy", 100), ("title", "ChucDanh", 100),
                               ("department", "PhongBanXuLy", 200), ("note", "NoiDungXuLy", 1000),
                               ("step_no", "MaBuocXuLy", 40)):
        out[column] = text(item, name, required=False, max_len=most, where=f"{where}.{name}") or ""
    out["started"] = api_time(item, "NgayBatDau", where)
    out["due"] = api_time(item, "NgayKetThucTheoQuyDinh", where)
    number = out["step_no"]
    out["step_key"] = f"{out['at']}|{out['status']}|{out['note']}|{number}"
    # Steps sort by their time, then by the provincial system's own number when it sends one.
    out["order_key"] = out["at"] + (number.zfill(20) if number.isascii() and number.isdigit() else "")
    return out

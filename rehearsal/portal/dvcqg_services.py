"""The national portal's integration services: what each does with its ``data``, item by item.

`SERVICES` maps a service name to its function; each takes the database,
the signed-in account and the call's body, and returns the answer
``{"error_code", "message", "result"?}`` (`rehearsal.portal.dvcqg_api`
reads the call and checks the session). A service that takes a list answers
every item in ``result`` (``{"MaHoSo", "error_code", "message"}``): the
call's ``error_code`` is "0" only when every item's is, so a provincial
system acknowledges exactly the items that were taken. Every write of a call
is one transaction.

- ``DongBoHoSoMC``: dossiers. A code already here is ``-3`` "đã tồn tại"
  unless ``isUpdating`` is "True"; an update refreshes the dossier's dates
  and owner but never its status, which only steps move (an update built
  before a citizen paid must not undo the payment).
- ``CapNhatTienDoHoSoMC``: steps. Each new step is stored once (a step sent
  again is taken, and changes nothing: duplicate pushes are harmless) with
  the time it arrived (``ThoiDiemDongBo``); the dossier takes the step's
  status when the step is not older than the newest it has.
- ``TraCuuHoSo``: dossiers by code, with their steps (``QuaTrinhXuLy``).
- ``LayThayDoiHoSo`` (ours): the feed of citizen-side changes after a ``seq``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ..shared.catalogue import load_catalogue
from ..shared.status import DossierStatus
from . import feed
from .db import transaction
from .dvcqg_fields import check_dossier, check_step, dossier_fields
from .errors import ApiError
from .inputs import INT64_MAX, kind, shown, whole
from .records import add_history, dvcqg_time_ms, epoch_of, iso_of_dvcqg, now_iso

OK, NOT_FOUND, EXISTS, INVALID = "0", "-2", "-3", "-6"
#: Most items one call takes.
MAX_ITEMS = 100
#: Most feed items one pull takes.
MAX_FEED = 500


def answer(code: str, message: str, **more: Any) -> dict[str, Any]:
    """An integration answer."""
    return {"error_code": code, "message": message, **more}


def _items(body: dict[str, Any]) -> list[Any] | dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, list) or not data or len(data) > MAX_ITEMS:
        return answer(INVALID, f"data: expected a list of 1 to {MAX_ITEMS} items, found {kind(data)}", field="data")
    return data


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [r for r in results if r["error_code"] != OK]
    if not failed:
        return answer(OK, "Thành công", result=results)
    message = "; ".join(r["message"] for r in failed[:5]) + (f" (và {len(failed) - 5} lỗi khác)" if len(failed) > 5
                                                             else "")
    return answer(failed[0]["error_code"], message, result=results)


def _checked(items: list[Any], check: Callable[[Any, str], dict[str, Any]]) -> list[dict[str, Any] | dict[str, str]]:
    out: list[dict[str, Any] | dict[str, str]] = []
    for i, item in enumerate(items):
        try:
            out.append(check(item, f"data[{i}]"))
        except ApiError as exc:
            code = item.get("MaHoSo") if isinstance(item, dict) and isinstance(item.get("MaHoSo"), str) else ""
            out.append({"MaHoSo": shown(code, 64), "error_code": INVALID, "message": exc.message, "field": exc.field})
    return out


# -- DongBoHoSoMC ---------------------------------------------------------------------------------

def _insert_dossier(db: sqlite3.Connection, d: dict[str, Any], account: str) -> None:
    db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)", (d["id_number"], now_iso()))
    citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?", (d["id_number"],)).fetchone()[0]
    proc = load_catalogue().get(d["procedure_code"])
    now = now_iso()
    cur = db.execute(
        "INSERT INTO dossiers (code, citizen_id, unit_code, procedure_code, lien_thong, fee_vnd, paid, status, form,"
        " submitted_at, received_at, due_at, returned_at, updated_at, channel, owner_name)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?, ?, ?)",
        (d["code"], citizen_id, d["unit_code"], d["procedure_code"], int(bool(proc and proc.lien_thong)),
         d["fee_vnd"], d["paid"], d["status"], d["submitted_at"] or d["received_at"] or now, d["received_at"],
         d["due_at"], d["returned_at"], now, d["channel"], d["owner_name"]))
    db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                   "VALUES (?, ?, ?, ?, ?, NULL)", [(cur.lastrowid, *a) for a in d["attachments"]])
    assert cur.lastrowid is not None
    add_history(db, cur.lastrowid, d["status"], f"dvcqg:{account}", "đồng bộ từ hệ thống một cửa")


def _each(db: sqlite3.Connection, body: dict[str, Any], check: Callable[[Any, str], dict[str, Any]],
          take: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """A list service: every item checked, then the good ones taken in one transaction, each answered."""
    items = _items(body)
    if isinstance(items, dict):
        return items
    checked = _checked(items, check)
    with transaction(db):
        results = [item if "error_code" in item else take(item) for item in checked]
    return _summary(results)


def _result(code: str, error_code: str, message: str) -> dict[str, Any]:
    return {"MaHoSo": code, "error_code": error_code, "message": message}


def sync_dossiers(db: sqlite3.Connection, account: str, body: dict[str, Any]) -> dict[str, Any]:
    """``DongBoHoSoMC``: take new dossiers; update the ones here when ``isUpdating`` is "True"."""
    updating = body.get("isUpdating") in ("True", "true", True)

    def take(d: dict[str, Any]) -> dict[str, Any]:
        known = db.execute("SELECT id FROM dossiers WHERE code = ?", (d["code"],)).fetchone()
        if known is None:
            _insert_dossier(db, d, account)
            return _result(d["code"], OK, "Thêm mới thành công")
        if not updating:
            return _result(d["code"], EXISTS, f"Hồ sơ {d['code']} đã tồn tại")
        # Dates and owner; the status is the steps' to move.
        db.execute("UPDATE dossiers SET received_at = ifnull(?, received_at), due_at = ifnull(?, due_at), "
                   "returned_at = ifnull(?, returned_at), owner_name = ifnull(?, owner_name), updated_at = ? "
                   "WHERE id = ?", (d["received_at"], d["due_at"], d["returned_at"], d["owner_name"], now_iso(),
                                    known["id"]))
        return _result(d["code"], OK, "Cập nhật thành công")

    return _each(db, body, check_dossier, take)


# -- CapNhatTienDoHoSoMC --------------------------------------------------------------------------

def _apply_step(db: sqlite3.Connection, dossier_id: int, s: dict[str, Any]) -> None:
    """The dossier as the newest step leaves it: its status, and the dates and reasons that step sets."""
    at = iso_of_dvcqg(s["at"])
    status = s["status"]
    sets: dict[str, Any] = {"status": status, "updated_at": now_iso()}
    if status == DossierStatus.RECEIVED:
        sets.update(received_at=at, due_at=s["due"])
    elif status == DossierStatus.SUPPLEMENT_REQUESTED:
        sets["supplement_reason"] = s["note"]
    elif status == DossierStatus.DONE:
        sets["decided_at"] = at
        if s["note"] in ("approved", "refused"):
            sets["decision"] = s["note"]
    elif status in (DossierStatus.RETURNED, DossierStatus.REFUSED_INTAKE):
        sets["returned_at"] = at
    if status == DossierStatus.SUPPLEMENT_REQUESTED:
        db.execute("UPDATE dossiers SET supplement_count = supplement_count + 1 WHERE id = ?", (dossier_id,))
    db.execute(f"UPDATE dossiers SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
               (*sets.values(), dossier_id))


def sync_steps(db: sqlite3.Connection, account: str, body: dict[str, Any]) -> dict[str, Any]:
    """``CapNhatTienDoHoSoMC``: store each new step once; the dossier follows its newest step."""
    def take(s: dict[str, Any]) -> dict[str, Any]:
        dossier = db.execute("SELECT id FROM dossiers WHERE code = ?", (s["code"],)).fetchone()
        if dossier is None:
            return _result(s["code"], NOT_FOUND, f"Không tìm thấy hồ sơ {s['code']}")
        newest = db.execute("SELECT max(order_key) FROM synced_steps WHERE dossier_id = ?",
                            (dossier["id"],)).fetchone()[0]
        cur = db.execute(
            "INSERT OR IGNORE INTO synced_steps (dossier_id, code, step_key, at, order_key, status, actor, title,"
            " department, note, started, due, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (dossier["id"], s["code"], s["step_key"], s["at"], s["order_key"], s["status"], s["actor"], s["title"],
             s["department"], s["note"], s["started"], s["due"], time.time()))
        if cur.rowcount == 0:
            return _result(s["code"], OK, "Đã có bước xử lý này")
        add_history(db, dossier["id"], s["status"], s["actor"] or f"dvcqg:{account}", s["note"] or None,
                    at=iso_of_dvcqg(s["at"]))
        if newest is None or s["order_key"] >= newest:
            _apply_step(db, dossier["id"], s)
        return _result(s["code"], OK, "Cập nhật thành công")

    return _each(db, body, check_step, take)


# -- TraCuuHoSo and LayThayDoiHoSo ----------------------------------------------------------------

def _steps(db: sqlite3.Connection, dossier_id: int) -> list[dict[str, Any]]:
    return [{"NguoiXuLy": s["actor"], "ChucDanh": s["title"], "ThoiDiemXuLy": s["at"],
             "PhongBanXuLy": s["department"], "NoiDungXuLy": s["note"], "TrangThai": str(s["status"]),
             "MaBuocXuLy": s["step_key"].rsplit("|", 1)[-1], "ThoiDiemDongBo": dvcqg_time_ms(s["received_at"])}
            for s in db.execute("SELECT * FROM synced_steps WHERE dossier_id = ? ORDER BY order_key, id",
                                (dossier_id,))]


def look_up(db: sqlite3.Connection, account: str, body: dict[str, Any]) -> dict[str, Any]:
    """``TraCuuHoSo``: dossiers by code (one, or a list of up to 100), each with its steps."""
    data = body.get("data")
    codes = data.get("MaHoSo") if isinstance(data, dict) else data
    codes = [codes] if isinstance(codes, str) else codes
    if not isinstance(codes, list) or not codes or len(codes) > MAX_ITEMS or \
            not all(isinstance(c, str) and 0 < len(c) <= 64 for c in codes):
        return answer(INVALID, f"data.MaHoSo: expected a dossier code or a list of 1 to {MAX_ITEMS}",
                      field="data.MaHoSo")
    found, missing = [], []
    for code in dict.fromkeys(codes):
        row = db.execute("SELECT d.*, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id "
                         "WHERE d.code = ?", (code,)).fetchone()
        if row is None:
            missing.append(code)
            continue
        found.append({**dossier_fields(db, row), "QuaTrinhXuLy": _steps(db, row["id"])})
    if missing:
        return answer(NOT_FOUND, f"Không tìm thấy hồ sơ {', '.join(shown(c, 64) for c in missing[:10])}",
                      result=found, missing=missing)
    return answer(OK, "Thành công", result=found)


def changes(db: sqlite3.Connection, account: str, body: dict[str, Any]) -> dict[str, Any]:
    """``LayThayDoiHoSo`` (ours): citizen-side changes after ``data.after``, at most ``data.limit``."""
    data = body.get("data")
    if not isinstance(data, dict):
        return answer(INVALID, f"data: expected {{\"after\": seq, \"limit\": n}}, found {kind(data)}", field="data")
    try:
        after = whole(data.get("after", 0), "data.after", 0, INT64_MAX)
        limit = whole(data.get("limit", MAX_FEED), "data.limit", 1, MAX_FEED)
    except ApiError as exc:
        return answer(INVALID, exc.message, field=exc.field)
    items = feed.read(db, after, limit)
    for item in items:
        item["at"] = dvcqg_time_ms(epoch_of(item["at"]))
    return answer(OK, "Thành công", result=items, last_seq=feed.head(db))


#: The services by name.
SERVICES: dict[str, Callable[[sqlite3.Connection, str, dict[str, Any]], dict[str, Any]]] = {
    "DongBoHoSoMC": sync_dossiers, "CapNhatTienDoHoSoMC": sync_steps, "TraCuuHoSo": look_up,
    "LayThayDoiHoSo": changes,
}

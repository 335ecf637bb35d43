"""Taking dossiers exported by another face: every row checked whole, then all written in one transaction.

``POST /api/admin/import`` takes rows of ``GET /api/admin/dossiers?full=1``
from another portal (the cutover's migration). A row is checked field by
field before anything is written (`check_row`): a missing or mistyped field,
an unknown status or unit, an ID number that is not 12 ASCII digits, a date
that is not one, is a 400 naming ``items[i].field``, and nothing of the
import is kept. Rows are then written in one transaction (`write_rows`): a
row whose id is already there is counted, not copied twice; a row whose code
or ``client_ref`` belongs to another dossier is a 409 naming it, and again
nothing is kept. Attachments keep their name, size and checksum; the file
content stays in the legacy document store. Into a provincial system (the
migration of a former province's one-stop system onto HCMC's), each
imported dossier also gets its outbox row, so the link pushes it to the
national portal (``DongBoHoSoMC``); its channel and owner's name come along
when the export has them.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from typing import Any

from ..shared.status import DossierStatus
from ..shared.wards import units_by_code
from . import outbox
from .records import add_history, now_iso
from .errors import BadRequest, Conflict, InvalidField, MissingField
from .inputs import ID_NUMBER, INT64_MAX, MAX_TEXT, kind, parse_json, text, whole

#: Dossier columns an import copies as they are (citizen_id is mapped by ID number).
DOSSIER_COLUMNS = ("id", "code", "client_ref", "unit_code", "procedure_code", "lien_thong", "fee_vnd", "paid",
                   "status", "agency_state", "agency_due", "agency_done", "decision", "reason", "supplement_reason",
                   "supplement_count", "form", "submitted_at", "received_at", "due_at", "decided_at",
                   "returned_at", "updated_at", "fingerprint")
#: Most rows one import takes (an export page is at most 5,000).
MAX_ROWS = 5000
_TIMES = ("submitted_at", "updated_at", "received_at", "due_at", "decided_at", "returned_at")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _time(row: dict[str, Any], name: str, where: str, *, required: bool) -> str | None:
    value = text(row, name, required=required, max_len=40, where=f"{where}.{name}")
    if value is not None:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidField(f"expected an ISO 8601 time, found {value!r}", f"{where}.{name}") from None
    return value


def _flag(row: dict[str, Any], name: str, where: str) -> int:
    value = row.get(name, 0)
    if value not in (0, 1) or isinstance(value, float):  # True and False are 1 and 0
        raise InvalidField(f"expected 0 or 1, found {kind(value)}", f"{where}.{name}")
    return int(value)


def _list(row: dict[str, Any], name: str, where: str, most: int) -> list[dict[str, Any]]:
    value = row.get(name) or []
    if not isinstance(value, list) or len(value) > most:
        raise InvalidField(f"expected a list of at most {most} objects, found {kind(value)}", f"{where}.{name}")
    for j, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise InvalidField(f"expected an object, found {kind(entry)}", f"{where}.{name}[{j}]")
    return value


def _status(value: Any, where: str) -> int:
    if value is None:
        raise MissingField("status is required", where)
    if not DossierStatus.known(value):
        raise InvalidField(f"expected one of the ten status codes (1 to 10), found {value!r}", where)
    return int(value)


def check_row(item: Any, i: int) -> dict[str, Any]:
    """One export row checked whole: the dossier's columns, its citizen's ID number, history and attachments."""
    where = f"items[{i}]"
    if not isinstance(item, dict):
        raise InvalidField(f"expected a full export row (GET /api/admin/dossiers?full=1), found {kind(item)}", where)
    if item.get("id") is None:
        raise MissingField("id is required", f"{where}.id")
    out: dict[str, Any] = {"id": whole(item["id"], f"{where}.id", 1, INT64_MAX)}
    id_number = text(item, "id_number", max_len=12, where=f"{where}.id_number")
    if not ID_NUMBER.fullmatch(id_number):
        raise InvalidField("expected a 12-digit personal ID number (ASCII digits)", f"{where}.id_number")
    out["id_number"] = id_number
    out["code"] = text(item, "code", max_len=64, where=f"{where}.code")
    out["client_ref"] = text(item, "client_ref", required=False, max_len=64, where=f"{where}.client_ref")
    out["procedure_code"] = text(item, "procedure_code", max_len=64, where=f"{where}.procedure_code")
    if item.get("unit_code") is None:
        raise MissingField("unit_code is required", f"{where}.unit_code")
    out["unit_code"] = whole(item["unit_code"], f"{where}.unit_code", 1, INT64_MAX)
    if out["unit_code"] not in units_by_code():
        raise InvalidField(f"unknown unit {out['unit_code']}", f"{where}.unit_code")
    out["status"] = _status(item.get("status"), f"{where}.status")
    out["fee_vnd"] = whole(item.get("fee_vnd", 0), f"{where}.fee_vnd", 0, 10**12)
    out["supplement_count"] = whole(item.get("supplement_count", 0), f"{where}.supplement_count", 0, 1000)
    for name in ("lien_thong", "paid", "agency_done"):
        out[name] = _flag(item, name, where)
    out["agency_state"] = item.get("agency_state")
    if out["agency_state"] not in (None, "at_agency", "back"):
        raise InvalidField("expected null, at_agency or back", f"{where}.agency_state")
    due = item.get("agency_due")
    if due is not None and (isinstance(due, bool) or not isinstance(due, (int, float))):
        raise InvalidField(f"expected seconds since the epoch or null, found {kind(due)}", f"{where}.agency_due")
    out["agency_due"] = due
    out["decision"] = item.get("decision")
    if out["decision"] not in (None, "approved", "refused"):
        raise InvalidField("expected null, approved or refused", f"{where}.decision")
    for name in ("reason", "supplement_reason"):
        out[name] = text(item, name, required=False, max_len=MAX_TEXT, where=f"{where}.{name}")
    out["fingerprint"] = text(item, "fingerprint", required=False, max_len=64, where=f"{where}.fingerprint")
    out["form"] = text(item, "form", max_len=64 * 1024, where=f"{where}.form")
    if not isinstance(parse_json(out["form"], f"{where}.form"), dict):
        raise InvalidField("expected a JSON object's text", f"{where}.form")
    for name in _TIMES:
        out[name] = _time(item, name, where, required=name in ("submitted_at", "updated_at"))
    out["history"] = [_history_line(h, f"{where}.history[{j}]")
                      for j, h in enumerate(_list(item, "history", where, 1000))]
    out["attachments"] = [_attachment(a, f"{where}.attachments[{j}]")
                          for j, a in enumerate(_list(item, "attachments", where, 100))]
    out["channel"] = whole(item.get("channel") or 2, f"{where}.channel", 1, 3)
    out["owner_name"] = text(item, "owner_name", required=False, max_len=200, where=f"{where}.owner_name")
    return out


def _history_line(line: dict[str, Any], where: str) -> tuple[Any, ...]:
    return (_time(line, "at", where, required=True), _status(line.get("status"), f"{where}.status"),
            text(line, "actor", max_len=100, where=f"{where}.actor"),
            text(line, "note", required=False, max_len=2 * MAX_TEXT, where=f"{where}.note"))


def _attachment(a: dict[str, Any], where: str) -> tuple[Any, ...]:
    sha = text(a, "sha256", max_len=64, where=f"{where}.sha256")
    if not _SHA256.fullmatch(sha):
        raise InvalidField("expected 64 hexadecimal digits", f"{where}.sha256")
    if a.get("size") is None:
        raise MissingField("size is required", f"{where}.size")
    return (text(a, "name", max_len=100, where=f"{where}.name"),
            text(a, "filename", required=False, max_len=255, where=f"{where}.filename"),
            whole(a["size"], f"{where}.size", 0, INT64_MAX), sha)


def check_rows(body: Any) -> list[dict[str, Any]]:
    """Every row of an import body, checked before anything is written."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadRequest("expected {\"items\": [...]} from GET /api/admin/dossiers?full=1", "items")
    if len(items) > MAX_ROWS:
        raise InvalidField(f"at most {MAX_ROWS} rows per import", "items")
    return [check_row(item, i) for i, item in enumerate(items)]


def write_rows(db: sqlite3.Connection, rows: list[dict[str, Any]], system: str = "portal") -> tuple[int, int]:
    """Write checked rows inside the caller's transaction: (imported, already there)."""
    imported = already = 0
    columns = DOSSIER_COLUMNS if system == "portal" else (*DOSSIER_COLUMNS, "channel", "owner_name")
    for i, row in enumerate(rows):
        if db.execute("SELECT 1 FROM dossiers WHERE id = ?", (row["id"],)).fetchone():
            already += 1
            continue
        db.execute("INSERT OR IGNORE INTO citizens (id_number, created_at) VALUES (?, ?)",
                   (row["id_number"], now_iso()))
        citizen_id = db.execute("SELECT id FROM citizens WHERE id_number = ?", (row["id_number"],)).fetchone()[0]
        try:
            db.execute(f"INSERT INTO dossiers (citizen_id, {', '.join(columns)}) "
                       f"VALUES (?, {', '.join('?' * len(columns))})", (citizen_id, *(row[c] for c in columns)))
        except sqlite3.IntegrityError as exc:  # the code, or the citizen's client_ref, names another dossier
            field = "client_ref" if "client_ref" in str(exc) else "code"
            raise Conflict(f"{field} {row[field]!r} belongs to another dossier here", f"items[{i}].{field}") from None
        db.executemany("INSERT INTO history (dossier_id, at, status, actor, note) VALUES (?, ?, ?, ?, ?)",
                       [(row["id"], *line) for line in row["history"]])
        add_history(db, row["id"], row["status"], "migration", "chuyển từ cổng cũ")
        if system == "provincial":
            outbox.enqueue_dossier(db, row["id"], row["code"], row["status"], "migration", "chuyển từ hệ thống cũ")
        db.executemany("INSERT INTO attachments (dossier_id, name, filename, size, sha256, content) "
                       "VALUES (?, ?, ?, ?, ?, NULL)", [(row["id"], *a) for a in row["attachments"]])
        imported += 1
    return imported, already

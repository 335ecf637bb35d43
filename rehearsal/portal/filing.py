"""What a citizen files: the form checked against its procedure, the attachments within their limits, a fingerprint.

Each catalogue field type (config/procedures.yaml) has one rule: ``text`` (at
most 500 characters), ``id_number`` (12 ASCII digits), ``date`` (a real
calendar date, YYYY-MM-DD, years 1900 to 2100), ``number`` (within that
field's `NUMBER_BOUNDS`, whole for counts), ``phone``, ``choice``. The form
itself is JSON text read by `inputs.parse_json` (depth, 64-bit numbers,
surrogates), at most the portal's JSON limit.

Attachments: one file per attachment name, each at most
`PortalSettings.max_attachment_bytes`, and all of a dossier's together (the
submission's and every supplement's) at most `max_dossier_bytes`: 413 naming
the attachment that went over.

`fingerprint` is what a submission is: procedure, unit, form values and the
attachments' checksums. A ``client_ref`` sent again must come with the same
fingerprint (a retry), or it is a conflict.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import request

from ..shared.catalogue import FormField, Procedure
from .context import settings
from .errors import InvalidField, MissingField, TooLarge
from .inputs import ID_NUMBER, MAX_TEXT, kind, parse_json, shown

#: Bounds of the catalogue's number fields by name: (lowest, highest, whole numbers only). The catalogue
#: says that a field is a number, not its range; a number field not named here takes `DEFAULT_BOUNDS`.
NUMBER_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "copies": (1, 100, True),            # Số bản sao, Số bản
    "heirs": (1, 100, True),             # Số người thừa kế
    "members": (1, 100, True),           # Số nhân khẩu
    "floors": (1, 100, True),            # Số tầng
    "attendance": (1, 100_000, True),    # Số người dự kiến
    "capital": (0, 10**9, False),        # Vốn kinh doanh (triệu đồng)
    "income": (0, 10**9, False),         # Thu nhập bình quân (nghìn đồng/tháng)
    "area": (0.01, 10**9, False),        # Diện tích (m²)
}
DEFAULT_BOUNDS: tuple[float, float, bool] = (0, 10**12, False)
#: Years a date field may name.
YEARS = (1900, 2100)
#: Most files one supplement may carry (its names are free).
MAX_SUPPLEMENT_FILES = 10
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PHONE = re.compile(r"0[0-9]{9,10}")
_NUMBER_TEXT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,6})?")


# -- the form ----------------------------------------------------------------------

def _number(f: FormField, value: Any, where: str) -> str:
    lo, hi, whole_only = NUMBER_BOUNDS.get(f.name, DEFAULT_BOUNDS)
    if isinstance(value, str):
        if not _NUMBER_TEXT.fullmatch(value):
            raise InvalidField(f"expected a number, found {shown(value, 24)!r}", where)
        number = float(value)
        is_whole = "." not in value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number, is_whole = float(value), isinstance(value, int)
    else:
        raise InvalidField(f"expected a number, found {kind(value)}", where)
    if whole_only and not is_whole:
        raise InvalidField(f"{f.label} is a whole number", where)
    if not lo <= number <= hi:
        raise InvalidField(f"{f.label}: expected {lo:g} to {hi:g}", where)
    return str(value)


def _date(value: str, where: str) -> str:
    if not _DATE.fullmatch(value):
        raise InvalidField("expected a date YYYY-MM-DD", where)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidField(f"{value} is not a date of the calendar", where) from None
    if not YEARS[0] <= day.year <= YEARS[1]:
        raise InvalidField(f"expected a year from {YEARS[0]} to {YEARS[1]}", where)
    return value


def _value(f: FormField, value: Any, where: str) -> str:
    if f.type == "number":
        return _number(f, value, where)
    if not isinstance(value, str):
        raise InvalidField(f"expected text, found {kind(value)}", where)
    if f.type == "id_number" and not ID_NUMBER.fullmatch(value):
        raise InvalidField("expected a 12-digit personal ID number (ASCII digits)", where)
    if f.type == "date":
        return _date(value, where)
    if f.type == "phone" and not _PHONE.fullmatch(value):
        raise InvalidField("expected a phone number of 10–11 digits starting with 0", where)
    if f.type == "choice" and f.choices and value not in f.choices:
        raise InvalidField(f"expected one of: {', '.join(f.choices)}", where)
    if len(value) > MAX_TEXT:
        raise InvalidField(f"at most {MAX_TEXT} characters", where)
    return value


def check_form(proc: Procedure, form_text: str) -> dict[str, str]:
    """The form's values (JSON object text) checked against `proc`'s fields, as the text stored."""
    limit = settings().max_json_bytes
    if len(form_text) > limit:
        raise TooLarge(f"the form is at most {limit} characters", "form")
    form = parse_json(form_text, "form")
    if not isinstance(form, dict):
        raise InvalidField(f"form must be a JSON object of field values, found {kind(form)}", "form")
    out = {}
    for f in proc.fields:
        value = form.get(f.name)
        where = f"form.{f.name}"
        if value is None or value == "":
            if f.required:
                raise MissingField(f"{f.label} ({f.name}) is required", where)
            continue
        out[f.name] = _value(f, value, where)
    return out


# -- attachments -------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    """One attached file, read whole (it is within the limits)."""

    name: str
    filename: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def read_attachments(allowed: set[str] | None, stored_bytes: int = 0) -> list[Upload]:
    """The call's files: names in `allowed` (any if None), one per name, within the file and dossier limits."""
    cfg = settings()
    per_file, room = cfg.max_attachment_bytes, cfg.max_dossier_bytes - stored_bytes
    out: list[Upload] = []
    for name, storage in request.files.items(multi=True):
        if allowed is not None and name not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise InvalidField(f"unexpected attachment (expected: {expected})", shown(name))
        if allowed is None and (len(name) > 100 or len(out) >= MAX_SUPPLEMENT_FILES):
            raise InvalidField(f"at most {MAX_SUPPLEMENT_FILES} files, named in at most 100 characters", shown(name))
        if any(u.name == name for u in out):
            raise InvalidField("one file per attachment name", name)
        content = storage.read(per_file + 1)
        if len(content) > per_file:
            raise TooLarge(f"attachment is larger than {per_file} bytes", name)
        room -= len(content)
        if room < 0:
            raise TooLarge(f"a dossier's attachments total at most {cfg.max_dossier_bytes} bytes", name)
        out.append(Upload(name, (storage.filename or name)[:255], content))
    return out


def fingerprint(proc: Procedure, unit_code: int, values: dict[str, str], files: list[Upload]) -> str:
    """What a submission is, as a checksum: a retry with the same ``client_ref`` must match it."""
    what = {"procedure": proc.code, "unit": unit_code, "form": values,
            "attachments": sorted((u.name, u.sha256) for u in files)}
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

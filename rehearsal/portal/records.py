"""A dossier's history lines and the two clocks' notations, with nothing of Flask: the link agent writes them too.

Our databases hold times as ISO 8601 UTC text with milliseconds (`now_iso`);
the national portal's integration API speaks ``yyyyMMddHHmmss`` in
Asia/Ho_Chi_Minh (`dvcqg_time`), and ``yyyyMMddHHmmssfff`` where we added
milliseconds (`dvcqg_time_ms`: the sync lag needs them). The zone comes from
the system's time-zone database (`zoneinfo`), never from a fixed +07:00.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

#: The national portal's time zone.
VN = ZoneInfo("Asia/Ho_Chi_Minh")
#: A time in the integration API: 14 digits, or 17 with milliseconds.
DVCQG_TIME = re.compile(r"[0-9]{14}([0-9]{3})?")


def now_iso(ts: float | None = None) -> str:
    """`ts` (default: now) as ISO 8601 UTC text with milliseconds, ``…Z``."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(iso: str) -> float:
    """ISO 8601 text (ours: ``…Z``) as seconds since the epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def dvcqg_time(iso: str | None) -> str:
    """ISO text as the integration API writes a time (``yyyyMMddHHmmss``, Asia/Ho_Chi_Minh); "" for none."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(VN).strftime("%Y%m%d%H%M%S")


def dvcqg_time_ms(ts: float) -> str:
    """Seconds since the epoch as ``yyyyMMddHHmmssfff`` in Asia/Ho_Chi_Minh."""
    moment = datetime.fromtimestamp(ts, VN)
    return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"


def iso_of_dvcqg(text: str) -> str:
    """An integration API time (14 or 17 digits, Asia/Ho_Chi_Minh) as our ISO UTC text; ValueError if not one."""
    if not DVCQG_TIME.fullmatch(text):
        raise ValueError(f"expected yyyyMMddHHmmss, found {text[:20]!r}")
    moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=VN)
    millis = int(text[14:] or 0)
    return now_iso(moment.timestamp() + millis / 1000)


def add_history(db: sqlite3.Connection, dossier_id: int, status: int, actor: str, note: str | None = None,
                at: str | None = None) -> int:
    """One line of a dossier's history (inside the caller's transaction); its id, the step's number."""
    cur = db.execute("INSERT INTO history (dossier_id, at, status, actor, note) VALUES (?, ?, ?, ?, ?)",
                     (dossier_id, at or now_iso(), status, actor, note))
    assert cur.lastrowid is not None
    return cur.lastrowid

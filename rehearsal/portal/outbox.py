"""A provincial system's outbox: what the national portal must learn, written in the transaction that caused it.

Every step an officer takes, and every citizen-side change the system takes
in (from its own front door, or pulled from the national feed), writes its
history line and an outbox row ``(code, kind, step_seq, status, at, actor,
note)`` together, inside the caller's transaction: a step is never committed
without its row, nor a row without its step. A dossier the national portal
may not know yet (filed on the front door, pulled, migrated) gets one
``dossier`` row. The link agent pushes pending rows oldest first and stamps
``pushed_at``, ``attempts`` and, once the national portal answered
``error_code`` "0", ``acked_at``. ``step_seq`` is the history line's id: the
step's number, the key that makes a push idempotent (``MaBuocXuLy``).

The link's own state is here too, in ``link_state``: the feed cursor, the
national feed's head as last seen, counters, and the ``duplicates`` switch of
the fault that makes the agent push every batch twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from .records import add_history, epoch_of, now_iso

#: Item-level refusals after which a row is left aside (``outbox_dead``) rather than hold up the rows behind it.
MAX_FAILURES = 10
#: link_state keys and what they hold (all text; numbers as decimal text).
STATE_KEYS = ("cursor", "feed_head", "pushes_ok", "pushes_failed", "pulls_failed", "acked", "feed_applied",
              "feed_ignored", "duplicates", "last_error")


def enqueue_dossier(db: sqlite3.Connection, dossier_id: int, code: str, status: int, actor: str,
                    note: str | None = None) -> None:
    """Queue the dossier itself for ``DongBoHoSoMC`` (once per dossier; inside the caller's transaction)."""
    db.execute("INSERT OR IGNORE INTO outbox (code, dossier_id, kind, step_seq, status, at, actor, note, created_at) "
               "VALUES (?, ?, 'dossier', 0, ?, ?, ?, ?, ?)", (code, dossier_id, status, now_iso(), actor, note,
                                                              time.time()))


def record_step(db: sqlite3.Connection, dossier_id: int, code: str, status: int, actor: str,
                note: str | None = None) -> int:
    """A step: its history line and its outbox row, in the caller's transaction; the step's number."""
    at = now_iso()
    step_seq = add_history(db, dossier_id, status, actor, note, at=at)
    db.execute("INSERT INTO outbox (code, dossier_id, kind, step_seq, status, at, actor, note, created_at) "
               "VALUES (?, ?, 'step', ?, ?, ?, ?, ?, ?)", (code, dossier_id, step_seq, status, at, actor, note,
                                                         time.time()))
    return step_seq


def pending(db: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    """The oldest rows not acknowledged yet."""
    return db.execute("SELECT * FROM outbox WHERE acked_at IS NULL ORDER BY id LIMIT ?", (limit,)).fetchall()


def get_state(db: sqlite3.Connection, key: str, default: str = "0") -> str:
    """One value of the link's state."""
    row = db.execute("SELECT value FROM link_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_state(db: sqlite3.Connection, key: str, value: str | int) -> None:
    """Set one value of the link's state (one statement: its own transaction unless the caller has one)."""
    db.execute("INSERT INTO link_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
               "excluded.value", (key, str(value)))


def add_to_state(db: sqlite3.Connection, key: str, n: int) -> None:
    """Add `n` to a counter of the link's state."""
    if n:
        db.execute("INSERT INTO link_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                   "CAST(CAST(value AS INTEGER) + ? AS TEXT)", (key, str(n), n))


def link_block(db: sqlite3.Connection) -> dict[str, Any]:
    """The outbox and the link as ``/api/stats`` shows them (the agent's liveness is added by its supervisor)."""
    state = dict(db.execute("SELECT key, value FROM link_state").fetchall())
    count, oldest, dead = db.execute("SELECT count(*), min(created_at), ifnull(sum(failures >= ?), 0) FROM outbox "
                                     "WHERE acked_at IS NULL", (MAX_FAILURES,)).fetchone()
    cursor, head = int(state.get("cursor", 0)), int(state.get("feed_head", 0))
    return {"outbox_pending": count, "outbox_oldest_s": round(time.time() - oldest, 3) if oldest else 0.0,
            "outbox_acked": int(state.get("acked", 0)), "outbox_dead": dead,
            "pushes_ok": int(state.get("pushes_ok", 0)),
            "pushes_failed": int(state.get("pushes_failed", 0)), "pulls_failed": int(state.get("pulls_failed", 0)),
            "cursor": cursor,
            "feed_behind": max(0, head - cursor), "feed_applied": int(state.get("feed_applied", 0)),
            "feed_ignored": int(state.get("feed_ignored", 0)), "last_error": state.get("last_error") or None}


def _iso(ts: float | None) -> str | None:
    return now_iso(ts) if ts is not None else None


def steps_of(db: sqlite3.Connection, dossier_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each dossier's steps for the export: history lines with their ms times and their outbox push and ack."""
    ids = list(dossier_ids)
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            "SELECT h.id, h.dossier_id, h.at, h.status, h.actor, h.note, o.pushed_at, o.acked_at, o.attempts "
            f"FROM history h LEFT JOIN outbox o ON o.kind = 'step' AND o.step_seq = h.id "
            f"WHERE h.dossier_id IN ({marks}) ORDER BY h.id", chunk)
        for r in rows:
            out[r["dossier_id"]].append({
                "seq": r["id"], "at": r["at"], "at_ms": round(epoch_of(r["at"]) * 1000), "status": r["status"],
                "actor": r["actor"], "note": r["note"], "pushed_at": _iso(r["pushed_at"]),
                "acked_at": _iso(r["acked_at"]), "attempts": r["attempts"]})
    return out

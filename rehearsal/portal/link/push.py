"""Pushing a provincial system's outbox to the national portal, and acknowledging only what it took.

One round (`Pusher.round`) takes the oldest pending rows of its share of the
dossiers (the agent runs several pushers, `rehearsal.portal.link.agent`).
Dossiers go first, ``DongBoHoSoMC`` with ``isUpdating`` "False"; those the
national portal answers "đã tồn tại" (``-3``) are sent again with
``isUpdating`` "True", as real provincial systems do. Then the steps,
``CapNhatTienDoHoSoMC``, at most `LinkSettings.batch` (10) per call, oldest
first, leaving out the steps of a dossier whose own row is still pending (the
national portal would not know the code). A row is acknowledged
(``acked_at``) only when its item's ``error_code`` is "0" (items are answered
in the order they were sent); an item refused for its content counts a
failure on its row (after `outbox.MAX_FAILURES` the row is left aside rather
than hold up the rows behind it), and a call not taken at all (`LinkFailed`)
stamps its rows' attempt and goes back to the agent, which backs off. With
the fault ``link-duplicates`` on, every call is sent twice; the national
portal takes the second as a duplicate.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from .. import outbox
from ..db import transaction
from ..dvcqg_fields import dossier_fields, step_fields
from .client import IntegrationClient, LinkFailed
from .settings import LinkSettings

#: Rows looked at in one round.
WINDOW = 100
EXISTS = "-3"

Results = list[dict[str, Any]]


def _dossiers_of(db: sqlite3.Connection, rows: Sequence[sqlite3.Row]) -> dict[int, sqlite3.Row]:
    ids = sorted({r["dossier_id"] for r in rows})
    marks = ",".join("?" * len(ids))
    return {d["id"]: d for d in db.execute(
        f"SELECT d.*, c.id_number FROM dossiers d JOIN citizens c ON c.id = d.citizen_id WHERE d.id IN ({marks})",
        ids)}


def _stamp(db: sqlite3.Connection, rows: Sequence[sqlite3.Row], sent: float, results: Results | None,
           error: str | None = None) -> list[dict[str, Any] | None]:
    """Record one call's outcome on its rows, in one transaction; each row's item result (None: no answer)."""
    now = time.time()
    outcome: list[dict[str, Any] | None] = [
        results[i] if results is not None and i < len(results) and isinstance(results[i], dict) else None
        for i in range(len(rows))]
    acked = 0
    with transaction(db):
        for r, result in zip(rows, outcome, strict=True):
            if result is not None and result.get("error_code") == "0":
                acked += 1
                db.execute("UPDATE outbox SET acked_at = ?, pushed_at = ?, attempts = attempts + 1, last_error = NULL"
                           " WHERE id = ?", (now, sent, r["id"]))
            elif result is not None and result.get("error_code") == EXISTS:
                db.execute("UPDATE outbox SET pushed_at = ?, attempts = attempts + 1 WHERE id = ?", (sent, r["id"]))
            else:
                why = error or (f"{result.get('error_code')} {result.get('message')}" if result else "no answer")
                db.execute("UPDATE outbox SET pushed_at = ?, attempts = attempts + 1, failures = failures + ?, "
                           "last_error = ? WHERE id = ?", (sent, int(result is not None), str(why)[:300], r["id"]))
        outbox.add_to_state(db, "acked", acked)
        outbox.add_to_state(db, "pushes_ok" if error is None else "pushes_failed", 1)
        if error is not None:
            outbox.set_state(db, "last_error", error[:300])
    return outcome


class Pusher:
    """Pushes one provincial database's outbox through one client."""

    def __init__(self, db: sqlite3.Connection, client: IntegrationClient, settings: LinkSettings,
                 share: int = 0) -> None:
        self.db, self.client, self.settings = db, client, settings
        #: Which dossiers this pusher pushes: those whose id is `share` modulo the number of pushers.
        self.share = share
        #: Rows acknowledged since the agent started.
        self.acked = 0

    def _send(self, rows: Sequence[sqlite3.Row], service: str, data: list[dict[str, Any]],
              updating: bool | None = None) -> list[dict[str, Any] | None]:
        """One call (twice under ``link-duplicates``), stamped on its rows; `LinkFailed` if it was not taken."""
        sent = time.time()
        twice = outbox.get_state(self.db, "duplicates") == "1"
        try:
            answer = self.client.call(service, data, updating=updating)
            if twice:
                self.client.call(service, data, updating=updating)
        except LinkFailed as exc:
            _stamp(self.db, rows, sent, None, str(exc))
            raise
        outcome = _stamp(self.db, rows, sent, answer.get("result"))
        self.acked += sum(1 for o in outcome if o is not None and o.get("error_code") == "0")
        return outcome

    def _batches(self, rows: Sequence[sqlite3.Row]) -> list[Sequence[sqlite3.Row]]:
        n = self.settings.batch
        return [rows[i:i + n] for i in range(0, len(rows), n)]

    def _push_dossiers(self, rows: Sequence[sqlite3.Row]) -> None:
        for batch in self._batches(rows):
            dossiers = _dossiers_of(self.db, batch)
            fields = [dossier_fields(self.db, dossiers[r["dossier_id"]], self.settings.ma_don_vi) for r in batch]
            outcome = self._send(batch, "DongBoHoSoMC", fields, updating=False)
            known = [i for i, o in enumerate(outcome) if o is not None and o.get("error_code") == EXISTS]
            if known:  # "đã tồn tại": the same dossiers again, as an update
                self._send([batch[i] for i in known], "DongBoHoSoMC", [fields[i] for i in known], updating=True)

    def _push_steps(self, rows: Sequence[sqlite3.Row]) -> None:
        for batch in self._batches(rows):
            dossiers = _dossiers_of(self.db, batch)
            self._send(batch, "CapNhatTienDoHoSoMC", [step_fields(r, dossiers[r["dossier_id"]]) for r in batch])

    def round(self) -> int:
        """Push the oldest pending rows once; how many were acknowledged (`LinkFailed` if a call was not taken)."""
        before = self.acked
        rows = self.db.execute("SELECT * FROM outbox WHERE acked_at IS NULL AND failures < ? AND dossier_id % ? = ? "
                               "ORDER BY id LIMIT ?", (outbox.MAX_FAILURES, self.settings.workers, self.share,
                                                       WINDOW)).fetchall()
        dossier_rows = [r for r in rows if r["kind"] == "dossier"]
        if dossier_rows:
            self._push_dossiers(dossier_rows)
            ids = [r["id"] for r in dossier_rows]
            marks = ",".join("?" * len(ids))
            waiting = {r[0] for r in self.db.execute(
                f"SELECT code FROM outbox WHERE id IN ({marks}) AND acked_at IS NULL", ids)}
        else:
            waiting = set()
        steps = [r for r in rows if r["kind"] == "step" and r["code"] not in waiting]
        if steps:
            self._push_steps(steps)
        return self.acked - before

"""The cutover's figures, from what the stage left on disk and the national portal's records.

``stages/<stage>/cutover.json`` (written by `locustfiles.timeline`) says
when the legacy portal closed, which dossiers were open on it and were
migrated; the ledger has every failed request and every session lost and
re-established; the national portal's export says which migrated dossiers
it really holds and how far they have got.

**Interruption window** (`rehearsal.results.interruption`): the burst of
failed requests after the close, in wall seconds; 0 if nothing failed. A
runbook's phases and its rollback (`rehearsal.results.runbook`) join the
same entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..shared.status import COMPLETE
from .ledger import Event
from .interruption import interruption
from .runbook import runbook_summary
from .stage_files import read_cutover

def cutover_summary(stage_dir: Path, events: Iterable[Event], national_rows: Iterable[dict[str, Any]]
                    ) -> dict[str, Any] | None:
    """The ``cutover`` entry of a stage in summary.json, or None if the stage had no cutover."""
    record = read_cutover(stage_dir)
    if record is None:
        return None
    events, rows = list(events), list(national_rows)
    failures, lost, restored, moved = [], 0, 0, 0
    for e in events:
        kind = e.get("kind")
        if kind == "request_failed":
            failures.append(float(e["t"]))
        elif kind == "session_lost":
            lost += 1
        elif kind == "session_restored":
            restored += 1
        elif kind == "portal_moved":
            moved += 1
    national = {r["id"]: r for r in rows}
    ids = record.get("ids", [])
    found = [i for i in ids if i in national]
    out: dict[str, Any] = {
        "mode": record.get("mode"), "closed_at": record.get("closed_at"), "error": record.get("error"),
        "migration_s": (round(record["migrated_at"] - record["closed_at"], 3)
                        if record.get("migrated_at") and record.get("closed_at") else None),
        "open_at_close": record.get("open_at_close"), "migrated": record.get("imported"),
        "finished_copied": record.get("finished_copied"),
        "found_on_national": len(found),
        "migration_found_rate": (len(found) / len(ids) if ids else (1.0 if "ids" in record else None)),
        "migrated_complete": sum(1 for i in found if national[i]["status"] in COMPLETE),
        "sessions_lost": lost, "sessions_restored": restored, "processes_moved": moved,
        "interruption_s": None, "interruption_failures": 0,
    }
    if record.get("closed_at"):
        window, count, first, last = interruption(failures, float(record["closed_at"]))
        out.update(interruption_s=window, interruption_failures=count, interruption_first=first,
                   interruption_last=last)
    out.update(runbook_summary(record, events, rows))  # the phases, planned against actual; the rollback
    return out

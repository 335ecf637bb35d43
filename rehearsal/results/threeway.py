"""Reconciliation three ways: the harness's ledger × the provincial system(s) × the national portal, by code.

``MaHoSo`` (``code``) is the key both systems share, so everything here is
keyed by it: an event without a code takes it from an event of the same
dossier that had one (by system and id, else by id: the systems' ids are in
disjoint ranges). The ledger says which dossiers are ours (the stage's
``submitted`` events). Each is then, as a count and a list of codes:

- **lost**: the harness got its code and neither system has it;
- **not delivered**: on the national portal, on no provincial system (filed
  there, never reached the officers);
- **unsynced**: on a *linked* provincial system and the national portal shows
  another status, or does not show it at all (citizens cannot see what
  officers did). A dossier only on a system with no link (a former
  province's one-stop system before its units move) is not compared: its
  citizens follow it there;
- **duplicated**: one submission that became two dossiers (the same
  ``client_ref`` of the same citizen twice on a provincial system, or one
  ``client_ref`` of the ledger with two codes). The national side cannot be
  asked this through ``TraCuuHoSo`` (it carries no ``client_ref``).

A code on several provincial systems (a migrated dossier) is judged by its
row on the linked system, where it is worked now. The officers' figures
(completion, on time, withdrawn, by status, inconsistent) come from that
provincial row, the citizens' completion (``complete_national``) from the
national portal's status. With no national answer (``national=None``) the
national figures are None, never 0.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..shared.status import COMPLETE, RANK, DossierStatus
from .ledger import Event
from .reconcile import Reconciliation, UnitResult, _epoch, walk_ledger
from .sync import step_lags


@dataclass
class ProvincialExport:
    """One provincial system's dossiers (its admin export with ``steps``, or a real system adapter's listing)."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    linked: bool = True
    """Whether it has a link to the national portal (hcmc: yes; a former province's own system: no)."""


def _codes_of(events: Sequence[Event]) -> tuple[dict[tuple[Any, Any], str], dict[Any, str]]:
    by_system: dict[tuple[Any, Any], str] = {}
    by_id: dict[Any, str] = {}
    for e in events:
        code, did = e.get("code"), e.get("id")
        if isinstance(code, str) and code and did is not None:
            by_system.setdefault((e.get("system"), did), code)
            by_id.setdefault(did, code)
    return by_system, by_id


def _status(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _winning_rows(provincial: Sequence[ProvincialExport]) -> dict[str, tuple[dict[str, Any], bool]]:
    """Each code's provincial row and whether its system is linked; a linked system's row wins."""
    rows: dict[str, tuple[dict[str, Any], bool]] = {}
    for export in sorted(provincial, key=lambda x: not x.linked):
        for row in export.rows:
            code = row.get("code")
            if isinstance(code, str) and code not in rows:
                rows[code] = (row, export.linked)
    return rows


def reconcile_systems(events: Iterable[Event], provincial: Sequence[ProvincialExport],
                      national: Mapping[str, Mapping[str, Any]] | None, *,
                      national_error: str | None = None) -> Reconciliation:
    """One stage's ledger against the provincial system(s) and the national portal (`national`: code → TraCuuHoSo)."""
    events = list(events)
    by_system, by_id = _codes_of(events)

    def code_of(e: Event) -> str | None:
        code = e.get("code")
        if isinstance(code, str) and code:
            return code
        return by_system.get((e.get("system"), e.get("id"))) or by_id.get(e.get("id"))

    walk = walk_ledger(events, code_of)
    submitted, refs, last_status, waits = walk.submitted, walk.refs, walk.last_status, walk.waits

    rows = _winning_rows(provincial)
    duplicated = sum(len(codes) - 1 for codes in refs.values() if len(codes) > 1)
    for export in provincial:
        pairs = Counter((str(r.get("id_number") or r.get("citizen_id")), str(r.get("client_ref")))
                        for r in export.rows if r.get("client_ref"))
        duplicated += sum(n - 1 for n in pairs.values() if n > 1)

    known = national is not None
    seen = national or {}
    rec = Reconciliation(submitted=len(submitted), complete=0, lost=[], duplicated=duplicated, inconsistent=[],
                         on_time=0, finished=0, by_status={}, units={}, portal_total=len(rows), two_systems=True,
                         not_delivered=[] if known else None, unsynced=[] if known else None,
                         complete_national=0 if known else None, national_error=national_error)
    by_status: Counter[int] = Counter()
    units: dict[int, UnitResult] = defaultdict(lambda: UnitResult(national=known))
    linked_rows: list[dict[str, Any]] = []
    for code, event in submitted.items():
        found, on_national = rows.get(code), seen.get(code)
        row, linked = found if found else (None, False)
        unit = units[int(event.get("unit") or (row or {}).get("unit_code") or 0)]
        unit.submitted += 1
        theirs = _status((on_national or {}).get("TrangThaiHoSo"))
        if known and on_national is not None:
            if theirs in COMPLETE:
                rec.complete_national = (rec.complete_national or 0) + 1
                unit.complete_national += 1
            elif theirs == DossierStatus.STOPPED:
                rec.withdrawn_national += 1
                unit.withdrawn_national += 1
        if row is None:
            if on_national is None:
                if event.get("id") is not None:
                    rec.lost.append(event["id"])
                rec.lost_codes.append(code)
                unit.lost += 1
            else:
                rec.not_delivered.append(code)  # type: ignore[union-attr]
                unit.not_delivered += 1
                unit.not_delivered_codes.append(code)
                by_status[theirs or 0] += 1
            continue
        status = int(row["status"])
        if linked:
            linked_rows.append(row)
            if known and theirs != status:
                rec.unsynced.append(code)  # type: ignore[union-attr]
                unit.unsynced += 1
                unit.unsynced_codes.append(code)
        _officers_view(rec, unit, row, status, code, last_status, waits)
        by_status[status] += 1
    rec.by_status = dict(by_status)
    rec.units = dict(units)
    rec.lost.sort()
    if known:
        rec.sync = step_lags(linked_rows, seen)
    return rec


def _officers_view(rec: Reconciliation, unit: UnitResult, row: Mapping[str, Any], status: int, code: str,
                   last_status: Mapping[str, int], waits: Mapping[str, float]) -> None:
    """Completion, on time, withdrawn and consistency of one dossier, from its provincial row (as `reconcile`)."""
    if RANK.get(status, 0) < RANK.get(last_status.get(code, 6), 0):
        rec.inconsistent.append(code)  # type: ignore[arg-type]
    if status == DossierStatus.STOPPED:
        rec.withdrawn += 1
        unit.withdrawn += 1
        return
    if status not in COMPLETE:
        return
    rec.complete += 1
    unit.complete += 1
    done = _epoch(row.get("returned_at") or row.get("decided_at"))
    start = _epoch(row.get("submitted_at"))
    if done is not None and start is not None:
        unit.complete_seconds.append(done - start)
    rec.finished += 1
    unit.finished += 1
    due = _epoch(row.get("due_at"))
    # Decision 766 indicator 2.1: time waiting for the citizen's supplement does not count; a second
    # supplement request makes it overdue.
    if int(row.get("supplement_count") or 0) >= 2:
        return
    if due is None or (done is not None and done - waits.get(code, 0.0) <= due):
        rec.on_time += 1
        unit.on_time += 1

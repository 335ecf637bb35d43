"""Reconciliation: the ledger against the portal's own records.

Every dossier the harness got an ID for must be found on the portal
afterwards (else it is **lost**), exactly once per (citizen, client_ref) (else
it is **duplicated**), and in a state at least as far along as the last event
the harness saw (else it is **inconsistent**). Completion and on-time counts
come from the portal's records of those dossiers: the portal is the source
of truth, the ledger says which dossiers are ours. A dossier the portal shows
stopped after its citizen asked to withdraw it (8) is **withdrawn**: ended,
neither complete nor pending, counted apart and out of the completion rate's
count (complete ÷ (submitted − withdrawn)); not finished for the on-time
rate. One still at 7 is open: an officer owes the stop.
"""

from __future__ import annotations

import json
import statistics
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..errors import PortalError
from ..shared.net import urlopen
from ..shared.status import COMPLETE, RANK, STATUS_AFTER, DossierStatus, completion_rate
from .ledger import Event

K = TypeVar("K")

#: Codes kept per unit in ``unit_results`` (the stage keeps up to 10,000 in ``*_codes``).
UNIT_CODES = 20


def fetch_portal_dossiers(base_url: str, *, admin_token: str | None = None, page: int = 1000,
                          timeout: float = 30.0, steps: bool = False) -> list[dict[str, Any]]:
    """Every dossier the portal holds, through its admin export (a provincial system's with its ``steps``)."""
    rows: list[dict[str, Any]] = []
    after = 0
    headers = {"X-Admin-Token": admin_token} if admin_token else {}
    while True:
        url = (f"{base_url.rstrip('/')}/api/admin/dossiers?after_id={after}&limit={page}"
               + ("&steps=1" if steps else ""))
        try:
            # No redirect is followed: the admin token goes to this portal and nowhere else.
            with urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
                body = json.loads(r.read())
        except (OSError, ValueError) as exc:
            raise PortalError(f"cannot read the portal's dossiers for reconciliation ({url}): {exc}") from None
        items = body.get("items", [])
        rows.extend(items)
        after = body.get("next_after_id")
        if not items or not after:
            return rows


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class UnitResult:
    """One unit's dossiers in one stage."""

    submitted: int = 0
    complete: int = 0
    lost: int = 0
    finished: int = 0
    on_time: int = 0
    withdrawn: int = 0
    """Stopped (8) after the citizen asked to withdraw: out of the completion rate's count."""
    complete_seconds: list[float] = field(default_factory=list)
    national: bool = False
    """Reconciled against two systems (`rehearsal.results.threeway`): the fields below mean something."""
    unsynced: int = 0
    not_delivered: int = 0
    complete_national: int = 0
    """Complete as citizens see it (the national portal's status)."""
    withdrawn_national: int = 0
    unsynced_codes: list[str] = field(default_factory=list)
    not_delivered_codes: list[str] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        """complete ÷ (submitted − withdrawn); None when nothing is left to complete."""
        return completion_rate(self.complete, self.submitted, self.withdrawn)

    def as_dict(self) -> dict[str, Any]:
        return {"submitted": self.submitted, "complete": self.complete,
                "completion_rate": self.completion_rate, "lost": self.lost, "finished": self.finished,
                "on_time": self.on_time, "withdrawn": self.withdrawn,
                "median_complete_s": statistics.median(self.complete_seconds) if self.complete_seconds else None,
                **(self._national() if self.national else {})}

    def _national(self) -> dict[str, Any]:
        """The two-system keys (a few codes each, for the report and a gate that names them)."""
        return {"unsynced": self.unsynced, "not_delivered": self.not_delivered,
                "complete_national": self.complete_national, "withdrawn_national": self.withdrawn_national,
                "completion_rate_national": completion_rate(self.complete_national, self.submitted,
                                                            self.withdrawn_national),
                "unsynced_codes": self.unsynced_codes[:UNIT_CODES],
                "not_delivered_codes": self.not_delivered_codes[:UNIT_CODES]}


@dataclass
class Reconciliation:
    """What the portal says of the dossiers the harness filed in one stage."""

    submitted: int
    complete: int
    lost: list[int]
    duplicated: int
    inconsistent: list[int]
    on_time: int
    finished: int
    by_status: dict[int, int]
    units: dict[int, UnitResult]
    portal_total: int
    """Dossiers on the portal in all (other stages and other clients included)."""
    withdrawn: int = 0
    """Stopped (8) after the citizen asked to withdraw: neither complete nor pending."""
    two_systems: bool = False
    """Reconciled three ways (ledger × provincial × national, `rehearsal.results.threeway`)."""
    lost_codes: list[str] = field(default_factory=list)
    not_delivered: list[str] | None = None
    """Codes on the national portal never on a provincial system; None: the national side was not read."""
    unsynced: list[str] | None = None
    """Codes whose national status differs from the provincial one (or national lacks them); None: not read."""
    complete_national: int | None = None
    withdrawn_national: int = 0
    sync: Any = None
    """`rehearsal.results.sync.SyncSteps` of the stage's dossiers (two systems only)."""
    national_error: str | None = None
    """Why the national side could not be read (then its figures are None)."""

    @property
    def completion_rate_national(self) -> float | None:
        """Completion as citizens see it: national status complete ÷ (submitted − withdrawn there)."""
        if self.complete_national is None:
            return None
        rate = completion_rate(self.complete_national, self.submitted, self.withdrawn_national)
        return 0.0 if rate is None else rate

    @property
    def completion_rate(self) -> float:
        """complete ÷ (submitted − withdrawn); 0 when nothing is left to complete."""
        rate = completion_rate(self.complete, self.submitted, self.withdrawn)
        return 0.0 if rate is None else rate

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.finished if self.finished else None


@dataclass
class LedgerWalk(Generic[K]):
    """What one pass over a stage's ledger says of each dossier, keyed by its id (one system) or code (two)."""

    submitted: dict[K, Event] = field(default_factory=dict)
    """The first ``submitted`` event of each dossier."""
    refs: dict[tuple[str, str], set[K]] = field(default_factory=lambda: defaultdict(set))
    """(citizen, client_ref) → the dossiers filed under it: more than one is a duplicate."""
    last_status: dict[K, int] = field(default_factory=dict)
    """The status the ledger last saw each dossier reach."""
    waits: dict[K, float] = field(default_factory=lambda: defaultdict(float))
    """Seconds each dossier waited on the citizen for supplements."""


def walk_ledger(events: Iterable[Event], key: Callable[[Event], K | None]) -> LedgerWalk[K]:
    """One pass over the ledger (events without a key are skipped), for `reconcile` and the two-system one."""
    walk: LedgerWalk[K] = LedgerWalk()
    asked_at: dict[K, float] = {}
    for e in events:
        kind, k = e.get("kind"), key(e)
        if k is None:
            continue
        if kind == "submitted":
            walk.submitted.setdefault(k, e)
            if e.get("client_ref"):
                walk.refs[(str(e.get("citizen")), str(e.get("client_ref")))].add(k)
        if kind in STATUS_AFTER:
            walk.last_status[k] = STATUS_AFTER[kind]
        if kind == "supplement_requested":
            asked_at[k] = e["t"]
        elif kind == "supplemented" and k in asked_at:
            walk.waits[k] += e["t"] - asked_at.pop(k)
    return walk


def reconcile(events: Iterable[Event], portal_rows: list[dict[str, Any]]) -> Reconciliation:
    """Compare one stage's ledger events with the portal's dossiers."""
    walk = walk_ledger(events, lambda e: e.get("id"))
    submitted, refs, last_status, waits = walk.submitted, walk.refs, walk.last_status, walk.waits

    portal = {int(r["id"]): r for r in portal_rows}
    ref_counts = Counter((str(r.get("citizen_id")), str(r.get("client_ref"))) for r in portal_rows
                         if r.get("client_ref"))
    duplicated = sum(n - 1 for n in ref_counts.values() if n > 1)
    duplicated += sum(len(ids) - 1 for ids in refs.values() if len(ids) > 1)

    lost, inconsistent = [], []
    by_status: Counter[int] = Counter()
    units: dict[int, UnitResult] = defaultdict(UnitResult)
    complete = on_time = finished = withdrawn = 0
    for did, event in submitted.items():
        row = portal.get(did)
        unit = units[int(event.get("unit") or 0)]
        unit.submitted += 1
        if row is None:
            lost.append(did)
            unit.lost += 1
            continue
        status = int(row["status"])
        by_status[status] += 1
        if RANK.get(status, 0) < RANK.get(last_status.get(did, 6), 0):
            inconsistent.append(did)
        if status == DossierStatus.STOPPED:
            withdrawn += 1
            unit.withdrawn += 1
            continue
        if status not in COMPLETE:
            continue
        complete += 1
        unit.complete += 1
        done = _epoch(row.get("returned_at") or row.get("decided_at"))
        start = _epoch(row.get("submitted_at"))
        if done is not None and start is not None:
            unit.complete_seconds.append(done - start)
        finished += 1
        unit.finished += 1
        due = _epoch(row.get("due_at"))
        # Decision 766 indicator 2.1: time waiting for the citizen's supplement
        # does not count; a second supplement request makes it overdue.
        if int(row.get("supplement_count") or 0) >= 2:
            continue
        if due is None or (done is not None and done - waits.get(did, 0.0) <= due):
            on_time += 1
            unit.on_time += 1
    return Reconciliation(submitted=len(submitted), complete=complete, lost=sorted(lost),
                          duplicated=duplicated, inconsistent=sorted(inconsistent), on_time=on_time,
                          finished=finished, by_status=dict(by_status), units=dict(units),
                          portal_total=len(portal_rows), withdrawn=withdrawn)


def from_ledger(events: Iterable[Event]) -> Reconciliation:
    """The stage as the ledger alone tells it, for a run that crashed before it could ask the portal.

    Each dossier is taken to be where the last event the harness saw left
    it: nothing can be called lost or duplicated this way, and completion
    counts only the results the harness saw returned. Reports label it
    "not reconciled"; rerun reconciliation against the portal when it is up.
    """
    events = list(events)
    rows: dict[int, dict[str, Any]] = {}
    for e in events:
        did, kind = e.get("id"), e.get("kind")
        if did is None or kind not in STATUS_AFTER:
            continue
        row = rows.setdefault(did, {"id": did, "citizen_id": None, "client_ref": None,
                                    "submitted_at": None, "due_at": None, "returned_at": None})
        row["status"] = STATUS_AFTER[kind]
    return reconcile(events, list(rows.values()))

"""After a stage: its ledger against the systems' own records, keyed by the dossier's code.

Dossier ids are each system's own (a dossier filed on the national portal
has one id there and another on the provincial system the link brought it
to); the code (MaHoSo) is the key they share, and the ledger's events carry
it. The officers' systems hold the record that decides completion: HCMC's
one-stop system (and a former province's for a dossier that never moved),
or, on a target with one url, that portal (after a cutover between two
such portals, the national one first). `reconcile_stage` reads their
exports, keys rows and events by code, and hands them to
`rehearsal.results.reconcile.reconcile` as it is: a code no system has is
lost. A run with a national portal and a provincial system (the embedded
reference, or a target naming its systems) is reconciled three ways by
the results room instead (`rehearsal.results.two_systems`: ledger ×
provincial × national through ``TraCuuHoSo``: not delivered, unsynced, the
sync lag); this is the one place the runner calls either from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..plan import Stage
from ..results.ledger import read_events
from ..results.reconcile import Reconciliation, fetch_portal_dossiers, reconcile
from ..results.two_systems import reconcile_two_systems
from .systems import Systems


def officer_rows(systems: Systems, admin_token: str | None = None) -> list[dict[str, Any]]:
    """Every dossier of the officers' systems, the first system holding a code winning (HCMC's platform first)."""
    home = systems.provincial()
    order = [home, *[e for e in systems.entries.values() if e is not home and e.system in ("provincial", "portal")]]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in order:
        for row in fetch_portal_dossiers(entry.url, admin_token=admin_token):
            key = str(row.get("code") or f"#{entry.name}:{row['id']}")
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return rows


def by_code(events: list[dict[str, Any]], rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                             list[dict[str, Any]]]:
    """Events and rows renumbered so that one dossier is one number everywhere: its code's."""
    number: dict[str, int] = {}
    for row in rows:
        if row.get("code"):
            number.setdefault(str(row["code"]), int(row["id"]))
    unknown = -1
    out = []
    for e in events:
        code = e.get("code")
        if code:
            if str(code) not in number:  # on no officers' system: lost (or not delivered)
                number[str(code)] = unknown
                unknown -= 1
            e = {**e, "id": number[str(code)]}
        out.append(e)
    return out, rows


def two_systems(systems: Systems) -> bool:
    """Whether the run has a national portal and a provincial system apart (not one portal with both roles)."""
    kinds = {e.system for e in systems.entries.values()}
    return {"national", "provincial"} <= kinds


def reconcile_stage(run_dir: Path, stage: Stage, systems: Systems, *, admin_token: str | None = None,
                    env: Mapping[str, str] | None = None) -> Reconciliation:
    """The stage's ledger against the systems: three ways when there are two systems, else by code."""
    if two_systems(systems):
        return reconcile_two_systems(run_dir, stage.name, systems=systems.as_dict(), env=env,
                                     admin_token=admin_token)
    events = list(read_events(run_dir / "ledger" / f"{stage.name}.jsonl"))
    keyed, rows = by_code(events, officer_rows(systems, admin_token))
    return reconcile(keyed, rows)

"""One stage reconciled against a run's two systems: read ``systems.json``, ask each system, compare, keep the lags.

`reconcile_two_systems(run_dir, stage_name)` is what the runner calls after
a stage's grace (instead of the single portal's `reconcile`): every
provincial system's export (with steps), the national portal through
``TraCuuHoSo`` for the stage's codes (`rehearsal.results.national`), the
three-way comparison (`rehearsal.results.threeway`), and the matched steps
written to ``stages/<stage>/sync_steps.jsonl`` (`rehearsal.results.sync`).

``systems.json`` is the runner's: ``{name: {"system": "national" |
"provincial", "url", "front_door_url"?}}``. Read here as well (decided here,
the contract is silent): ``"linked"`` on a provincial entry (default: true
for ``hcmc``, or for the only provincial system; false for a former
province's own system, which has no link), and ``"integration"`` on the
national entry: the account reconciliation signs in with
(`rehearsal.results.national.NationalAccount.from_entry`; its password from
the environment variable it names, default ``REHEARSAL_LINK_PASSWORD``).
A national portal that cannot be read does not stop the stage's figures:
the officers' side is reconciled, the national figures are None and
``sync.error`` says why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import PortalError, RunError
from .ledger import read_events
from .national import NationalAccount, NationalReader
from .reconcile import Reconciliation, fetch_portal_dossiers
from .sync import write_sync_steps
from .threeway import ProvincialExport, reconcile_systems

SYSTEMS_FILE = "systems.json"


def read_systems(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The run's systems (``systems.json``): {} when there is none (a single-portal run); `RunError` if unreadable."""
    path = Path(run_dir) / SYSTEMS_FILE
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read the run's systems: {exc}") from None
    if not isinstance(body, dict):
        raise RunError(f"{path}: expected an object {{name: {{system, url}}}}")
    return {str(k): v for k, v in body.items() if isinstance(v, dict) and isinstance(v.get("url"), str)}


def is_linked(name: str, entry: Mapping[str, Any], systems: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a provincial system has a link to the national portal (its ``linked``, else the default)."""
    if isinstance(entry.get("linked"), bool):
        return bool(entry["linked"])
    provincial = [n for n, e in systems.items() if e.get("system") == "provincial"]
    return name == "hcmc" or provincial == [name]


def national_entry(systems: Mapping[str, Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]] | None:
    """The national portal's name and entry, or None."""
    return next(((n, e) for n, e in systems.items() if e.get("system") == "national"), None)


def reconcile_two_systems(run_dir: Path, stage_name: str, *, systems: Mapping[str, Mapping[str, Any]] | None = None,
                          env: Mapping[str, str] | None = None, account: NationalAccount | None = None,
                          admin_token: str | None = None,
                          provincial_rows: Mapping[str, list[dict[str, Any]]] | None = None) -> Reconciliation:
    """The stage's ledger × every provincial system × the national portal; writes the stage's ``sync_steps.jsonl``.

    `env` holds the integration password's variable (the runner passes its
    environment; None: this process's); `account` overrides ``systems.json``'s. `provincial_rows`
    (name → rows) replaces a system's admin export, for a real provincial
    system whose adapter lists its dossiers instead. `PortalError` if a
    provincial system cannot be read.
    """
    run_dir = Path(run_dir)
    systems = read_systems(run_dir) if systems is None else systems
    exports = []
    for name, entry in systems.items():
        if entry.get("system") != "provincial":
            continue
        rows = (provincial_rows or {}).get(name)
        if rows is None:
            rows = fetch_portal_dossiers(str(entry["url"]), admin_token=admin_token, steps=True)
        exports.append(ProvincialExport(name, rows, is_linked(name, entry, systems)))
    events = list(read_events(run_dir / "ledger" / f"{stage_name}.jsonl"))
    codes = [e["code"] for e in events if e.get("kind") == "submitted" and isinstance(e.get("code"), str)]
    national: dict[str, dict[str, Any]] | None = None
    error: str | None = None
    found = national_entry(systems)
    if found is None:
        error = f"no national portal in {SYSTEMS_FILE}"
    else:
        # No mapping given: the process's environment, where the reference systems read the same variable.
        who = account or NationalAccount.from_entry(found[1], os.environ if env is None else env)
        try:
            national = NationalReader(str(found[1]["url"]), who).look_up(codes)
        except PortalError as exc:
            error = str(exc)
    rec = reconcile_systems(events, exports, national, national_error=error)
    if rec.sync is not None:
        write_sync_steps(run_dir / "stages" / stage_name, rec.sync)
    return rec

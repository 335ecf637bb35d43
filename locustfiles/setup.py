"""What a Locust process must know before its users start: the run's systems and the target's accounts.

The writing process (the single local one, or the master) reads them from
its options: ``--systems FILE`` (``systems.json``, written by the runner),
or, for a locustfile run by hand, ``--host`` (one portal with both roles)
and, for a cutover between two such portals, ``--national-url`` (then
``--host`` is the legacy portal, named ``city``: the arrangement a cutover
moves users off by default); and the accounts files (``--officers-file``:
``unit,username`` lines; ``--citizens-file``: one ID number a line). It
puts them among its parsed options (`SHARED`), which Locust sends to every
worker with each spawn message, so a worker on another machine, which has
none of these files, learns them from its master. Every address is checked
against the allowed list in every process (`locustfiles.fence.Fence.admit`):
one that is not allowed ends the process with one line, before any request.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from locustfiles.context import RunContext
from locustfiles.fence import Fence, refuse
from rehearsal.errors import RunError
from rehearsal.run.systems import SystemEntry, Systems

#: The name, among the parsed options, of what the writing process read (sent to workers with each spawn).
SHARED = "rehearsal_shared"


def _officers(path: str) -> dict[str, list[str]]:
    """``unit,username`` lines (a header line is skipped): the usernames of each unit, in file order."""
    out: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 2 and row[0].strip().isdigit() and row[1].strip():
                    out.setdefault(str(int(row[0])), []).append(row[1].strip())
    except OSError as exc:
        raise RunError(f"--officers-file {path}: {exc}") from None
    return out


def _citizens(path: str) -> list[str]:
    """One 12-digit ID number a line (first column; other lines are skipped)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            ids = [row[0].strip() for row in csv.reader(f) if row and row[0].strip().isdigit()
                   and len(row[0].strip()) == 12]
    except OSError as exc:
        raise RunError(f"--citizens-file {path}: {exc}") from None
    if not ids:
        raise RunError(f"--citizens-file {path}: no 12-digit ID numbers in it")
    return ids


def read_shared(options: Any, host: str | None, fence: Fence) -> dict[str, Any] | None:
    """The systems and accounts from this process's options (None when it was given neither: a worker)."""
    if options.systems:
        systems = Systems.load(Path(options.systems))
    elif host:
        legacy = fence.admit(host, what="--host")
        if options.national_url:
            national = fence.admit(options.national_url, what="--national-url")
            systems = Systems([SystemEntry("national", "portal", national), SystemEntry("city", "portal", legacy)])
        else:
            systems = Systems.single(legacy)
    else:
        if options.national_url:
            fence.admit(options.national_url, what="--national-url")
        return None
    shared: dict[str, Any] = {"systems": systems.as_dict()}
    if options.officers_file:
        shared["officers"] = _officers(options.officers_file)
    if options.citizens_file:
        shared["citizens"] = _citizens(options.citizens_file)
    return shared


def take_shared(ctx: RunContext, shared: dict[str, Any], fence: Fence) -> None:
    """Put the systems and accounts on the run context, every address admitted by the allowed list."""
    try:
        systems = Systems.from_dict(shared.get("systems"))
    except RunError as exc:
        refuse(str(exc))
    for entry in systems.entries.values():
        fence.admit(entry.url, what=f"systems.{entry.name}.url")
        if entry.front_door_url:
            fence.admit(entry.front_door_url, what=f"systems.{entry.name}.front_door_url")
    ctx.systems = systems
    ctx.telemetry.systems = systems  # the writing process polls each system's own count
    ctx.officer_accounts = {int(u): list(names) for u, names in (shared.get("officers") or {}).items()}
    ctx.citizen_ids = list(shared.get("citizens") or [])

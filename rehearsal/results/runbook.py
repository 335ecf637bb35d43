"""The runbook's figures: each cutover phase planned against actual, the total, and the rollback's cost.

From ``stages/<stage>/cutover.json`` (written phase by phase by
`locustfiles.runbook`), the ledger and HCMC's platform's export, into the
stage's ``cutover`` entry of ``summary.json``:

- ``phases``: per phase its planned start and duration and its actual start,
  end and duration (simulated seconds from the stage's start, the plan's
  clock: a wall second counts ``time_scale`` of them), ``late_s`` (actual
  start − planned), the wall seconds it took, its outcome and the checks
  that failed;
- ``total_s``: simulated seconds from the first phase's start to the end of
  the last phase played (or of the rollback);
- ``rolled_back``, ``held`` and ``rollback``: its reason, the phase it
  happened in, its own duration (wall seconds), the interruption (failed
  or refused requests in the burst after it began, as `rehearsal.results.cutover`
  counts a switch's), ``no_filing_s`` (wall seconds from its start to the
  first dossier filed after it), and the dossiers filed on the national
  portal between the switch and the rollback: ``kept_on_national`` and how
  many of them HCMC's platform holds (``kept_synced``): kept, not carried back.
- ``no_filing_s``: the longest stretch without a dossier filed from the
  runbook's start to the first filing after its end (wall seconds).

`runbook_figures` gives the gate language's ``cutover_phase_s{phase=…}``,
``cutover_total_s`` and ``cutover_rolled_back``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..plan.gate_language import Gate
from .interruption import interruption
from .ledger import Event

#: The keys each phase keeps in summary.json, as cutover.json has them.
PHASE_KEYS = ("phase", "planned_start_s", "planned_s", "limit_s", "start_s", "end_s", "actual_s", "outcome",
              "checks", "failing", "on_national", "missing", "error")


def _first_after(times: list[float], t: float) -> float | None:
    return next((x for x in times if x >= t), None)


def _longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch without a filing from `start` to the first filing at or after `end` (to `end` if none)."""
    stop = _first_after(times, end)
    edges = [start] + [t for t in times if start <= t and (stop is None or t <= stop)] + ([end] if stop is None else [])
    return round(max((b - a for a, b in zip(edges, edges[1:])), default=0.0), 3)


def runbook_summary(record: Mapping[str, Any], events: Iterable[Event],
                    provincial_rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The runbook keys of a stage's ``cutover`` entry (see the module's docstring)."""
    raw = [p for p in record.get("phases") or [] if isinstance(p, dict)]
    phases = []
    for p in raw:
        entry = {k: p[k] for k in PHASE_KEYS if k in p}
        if p.get("started_at") and p.get("ended_at"):
            entry["actual_wall_s"] = round(p["ended_at"] - p["started_at"], 3)
        if "start_s" in p:
            entry["late_s"] = round(p["start_s"] - p["planned_start_s"], 3)
        phases.append(entry)
    played = [p for p in phases if "start_s" in p]
    rollback = dict(record.get("rollback") or {})
    ends = [p["end_s"] for p in played if "end_s" in p] + ([rollback["end_s"]] if "end_s" in rollback else [])
    out: dict[str, Any] = {
        "phases": phases, "rolled_back": bool(record.get("rolled_back")), "held": bool(record.get("held")),
        "total_s": round(max(ends) - played[0]["start_s"], 3) if played and ends else None,
        "rollback": None, "hold": record.get("hold"),
    }
    failures, filings, filed_national = [], [], []
    for e in events:
        if e.get("kind") == "request_failed":
            failures.append(float(e["t"]))
        elif e.get("kind") == "submitted":
            filings.append(float(e["t"]))
            if e.get("system") == record.get("to"):
                filed_national.append((float(e["t"]), e.get("code")))
    filings.sort()
    begun, ended = record.get("runbook_started_at"), record.get("runbook_ended_at")
    if begun:
        out["no_filing_s"] = _longest_gap(filings, float(begun), float(ended or begun))
    drained = [p for p in raw if p.get("phase") in ("drain", "migrate") and p.get("ended_at")]
    if drained:  # the runbook moves dossiers before the switch: the migration is that phase
        out["migration_s"] = round(drained[0]["ended_at"] - drained[0]["started_at"], 3)
    if rollback.get("started_at"):
        start, end = float(rollback["started_at"]), float(rollback.get("ended_at") or rollback["started_at"])
        window, count, _, _ = interruption(failures, start)
        first = _first_after(filings, start)
        switched = float(record.get("closed_at") or end)
        kept = {str(c) for t, c in filed_national if switched <= t <= end and c}
        on_platform = {str(r.get("code")) for r in provincial_rows}
        rollback.update(interruption_s=window, interruption_failures=count,
                        no_filing_s=round(first - start, 3) if first is not None else None,
                        kept_on_national=len(kept), kept_synced=len(kept & on_platform),
                        kept_not_synced=sorted(kept - on_platform)[:100])
        out["rollback"] = rollback
    return out


def runbook_reason(cutover: Mapping[str, Any] | None) -> str | None:
    """Why a stage is NO-GO because of its runbook (rolled back or held), for the verdict line; None if not."""
    if not cutover:
        return None
    if cutover.get("rolled_back"):
        return "rolled back: " + str((cutover.get("rollback") or {}).get("reason") or "")
    if cutover.get("held"):
        return "held: " + str((cutover.get("hold") or {}).get("reason") or "")
    return None


def runbook_figures(cutover: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Whole-stage figures of the runbook gates: ``cutover_phase_s:<phase>``, ``cutover_phase_s`` (the longest),
    ``cutover_total_s`` and ``cutover_rolled_back``."""
    cut = cutover or {}
    phases = [p for p in cut.get("phases") or [] if p.get("actual_s") is not None]
    out: dict[str, float | None] = {f"cutover_phase_s:{p['phase']}": p["actual_s"] for p in phases}
    out["cutover_phase_s"] = max((p["actual_s"] for p in phases), default=None)
    out["cutover_total_s"] = cut.get("total_s")
    out["cutover_rolled_back"] = (1.0 if cut.get("rolled_back") or cut.get("held") else 0.0) if cutover else None
    return out


def runbook_value(gate: Gate, figures: Mapping[str, float | None]) -> tuple[float | None, str]:
    """A runbook gate's figure (``cutover_phase_s{phase=validate}`` reads that phase's)."""
    phase = gate.filter("phase")
    if phase is not None:
        value = figures.get(f"cutover_phase_s:{phase}")
        return value, "" if value is not None else f"no {phase} phase was played"
    return figures.get(gate.metric), ""

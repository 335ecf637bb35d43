"""The cutover as a runbook: its phases, their planned durations, the validation's checks, and their gate metrics.

A stage's ``cutover.phases`` (read by `rehearsal.plan.timeline`) lists, in
this order, the phases a rehearsal night plays from ``cutover.at``:

- ``freeze``: the old front door stops taking new dossiers (following and
  paying still work); held for its planned time, so what is in flight lands;
- ``drain`` (from the city portal: its dossiers are on HCMC's platform
  already; the phase waits until the link has pushed the open ones to the
  national portal) or ``migrate`` (from a former province's system: its
  officers move to HCMC's platform and its dossiers are imported);
- ``validate``: named checks (`CHECKS`) tried again and again until all pass
  or the phase's ``limit`` is reached; a failure rolls the cutover back
  (from the city portal) or holds it (after a migration: the dossiers are on
  HCMC's platform already, there is nowhere to carry them back to);
- ``switch``: the old front door answers ``X-Portal-Moved`` to the national
  portal (today's one-minute cutover is a runbook of this phase alone);
- ``observe``: the gates with ``on_fail: rollback`` are judged live; one that
  fails sends traffic back to the city portal.

Every phase but ``switch`` may be left out. Durations are simulated seconds
(the plan's clock), like every time of the plan; a phase's ``limit`` is the
longest a working phase (drain, migrate, validate) may take before it is
given up, by default `DEFAULT_LIMIT_FACTOR` times its planned time.

This module is only the model and the names (the gate language reads them,
and it may not import the plan's readers).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The phases, in the order they are played.
PHASES: tuple[str, ...] = ("freeze", "drain", "migrate", "validate", "switch", "observe")
#: Phases that do work and end when it is done (or at their limit); the others hold for their planned time.
WORKING_PHASES: tuple[str, ...] = ("drain", "migrate", "validate")
#: What validation can check, and what each means.
CHECKS: dict[str, str] = {
    "open_dossiers_on_national": "every dossier open on the old front door is found on the national portal "
                                 "(TraCuuHoSo)",
    "sync_backlog_empty": "the provincial system's outbox to the national portal is empty",
    "smoke_journey": "a citizen's journey through the national portal works (VNeID sign-in, the catalogue, "
                     "a dossier looked up by code)",
}
#: A working phase's limit when none is written: this many times its planned duration.
DEFAULT_LIMIT_FACTOR = 2.0
#: What a gate on the runbook may measure (simulated seconds, like the plan's times).
RUNBOOK_METRICS: dict[str, str] = {
    "cutover_phase_s": "cutover: simulated seconds a runbook phase took ({phase=validate}; no filter: the longest)",
    "cutover_total_s": "cutover: simulated seconds from the runbook's first phase to the end of its last "
                       "(or of the rollback)",
    "cutover_rolled_back": "cutover: 1 if the runbook was rolled back (or held), else 0",
}
#: The runbook metrics written in time units (``5m``, ``90s``).
RUNBOOK_DURATION_METRICS: frozenset[str] = frozenset({"cutover_phase_s", "cutover_total_s"})
#: What a gate's ``on_fail`` may say: NO-GO at the end (the default), stop the stage, or roll the cutover back.
ON_FAIL: tuple[str, ...] = ("nogo", "abort", "rollback")


@dataclass(frozen=True)
class RunbookPhase:
    """One phase of a cutover's runbook, as planned."""

    phase: str
    """One of `PHASES`."""
    planned_s: float
    """Simulated seconds it is planned to take (0: as long as its work takes)."""
    limit_s: float = 0.0
    """Working phases: simulated seconds after which it is given up (drain, migrate: carry on; validate: failed)."""
    checks: tuple[str, ...] = ()
    """validate: the `CHECKS` that must pass."""

    def as_dict(self) -> dict[str, object]:
        return {"phase": self.phase, "planned_s": self.planned_s, "limit_s": self.limit_s, "checks": list(self.checks)}


#: The runbook of a cutover written without phases: one switch, at ``at``.
ONE_SWITCH: tuple[RunbookPhase, ...] = (RunbookPhase("switch", 0.0),)


def planned_starts(phases: tuple[RunbookPhase, ...], at_s: float) -> list[float]:
    """Each phase's planned start (simulated seconds from the stage's start): one after another from `at_s`."""
    out, t = [], at_s
    for p in phases:
        out.append(t)
        t += p.planned_s
    return out

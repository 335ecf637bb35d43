"""The plan's model: the frozen dataclasses a scenario becomes, with a docstring on every field.

Everything here is already validated (`rehearsal.plan.load` builds it); the run,
the people, the results and the report read these and nothing else of the
YAML. Durations are simulated seconds unless a field says wall-clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import PlanError
from .gate_language import Gate
from .runbook import ONE_SWITCH, RunbookPhase

#: The dossier completion rate the June 2025 trial reached after 2 hours: the target when a stage names none.
DEFAULT_COMPLETION_TARGET = 0.96
#: Officer accounts a unit may have (``officers.per_unit``, and a fault's ``officers`` away).
MAX_OFFICERS_PER_UNIT = 20
#: Citizens a stage may run at once (``citizens.users``).
MAX_CITIZENS = 100_000
#: The citizens' attachments are cut from one 64 KiB buffer (locustfiles/citizens.py).
MAX_ATTACHMENT_KB = 64
#: Fault kinds a stage can declare; all but ``absence`` are applied by a reference system (`rehearsal.portal.faults`):
#: the first five by any system that plays them, the ``link-*`` and ``vneid-overload`` ones by the system below.
FAULT_KINDS = ("latency", "errors", "outage", "slow-agency", "silent-drop", "absence",
               "link-slow", "link-errors", "link-down", "link-kill", "link-duplicates", "vneid-overload")
#: What a fault's ``system`` may name: the national portal, the provincial one-stop system (HCMC's platform, which
#: runs the link agent), the front doors a cutover moves citizens away from, and ``link`` (the link between the
#: two: national's integration endpoint for link-slow/-errors/-down, the provincial agent for link-kill/-duplicates).
FAULT_SYSTEMS = ("national", "provincial", "city", "brvt", "binh-duong", "link")
#: Where a cutover's units start (``cutover.from``): the city's own portal, or a former province's own system.
CUTOVER_FROM = ("city", "brvt", "binh-duong")
#: The former province (`rehearsal.shared.wards.FormerProvince` value) whose units each former system holds.
#: The city portal is HCMC's platform's front door: any unit may file there, so it is not listed.
FORMER_SYSTEM_PROVINCE = {"brvt": "ba-ria-vung-tau", "binh-duong": "binh-duong"}


@dataclass(frozen=True)
class ThinkTime:
    """A pause drawn uniformly between two simulated durations."""

    low_s: float
    """Shortest pause, simulated seconds."""
    high_s: float
    """Longest pause, simulated seconds (>= low_s)."""


@dataclass(frozen=True)
class UnitSelection:
    """How a stage chose its units, as written in the file (for the report)."""

    former_provinces: tuple[str, ...] = ()
    """`FormerProvince` values; empty means no filter."""
    types: tuple[str, ...] = ()
    """`UnitType` values; empty means no filter."""
    codes: tuple[int, ...] = ()
    """Units added by code to what the filters chose (exactly these if there is no filter)."""
    exclude: tuple[int, ...] = ()
    """Units removed after the filters and codes."""
    sample: int | None = None
    """A seeded random subset of this size; None takes the whole selection."""


@dataclass(frozen=True)
class RampStep:
    """One step of a load shape: go to ``to`` users over ``over_s``, or hold (``to`` None) for ``over_s``."""

    to: int | None
    """Citizens running at the end of the step; None for a hold."""
    over_s: float
    """Simulated seconds."""


@dataclass(frozen=True)
class CitizenLoad:
    """The citizens of a stage.

    Closed model (the default): ``users`` citizens started at ``spawn_rate``,
    each filing a dossier, following it to its result and coming back as the
    next citizen; ``ramp`` shapes the crowd in steps instead of holding it.
    Open model: with ``arrival_rate``, new citizens arrive at that rate
    whatever the portal's speed (like k6's arrival-rate executors); ``users``
    is then the most visits that can be under way at once, and an arrival
    that finds them all busy is counted as dropped. A share of citizens
    (``withdraw_share``) ask to withdraw their dossier while it is open and
    follow it until an officer stops it (status 7, then 8).
    """

    users: int
    """How many citizen users run at once (0..100000); with arrival_rate, the most at once."""
    spawn_rate: float
    """Users started per wall-clock second (not scaled)."""
    think_time: ThinkTime
    """Pause between a citizen's steps."""
    other_unit_share: float = 0.1
    """Share of dossiers filed at another unit than the citizen's own (one-stop rules)."""
    attachment_kb: tuple[int, int] = (2, 16)
    """Size range of each attachment, KiB."""
    follow_interval_s: float = 600.0
    """Simulated seconds between a citizen's checks of their dossier's status."""
    ramp: tuple[RampStep, ...] = ()
    """Steps from the start of filing; empty: start all users at spawn_rate and hold them."""
    arrival_rate_per_min: float | None = None
    """Open model: new citizens per simulated minute; None is the closed model."""
    withdraw_share: float = 0.01
    """Share of citizens who ask to withdraw their dossier after filing, before its result (status 7; 8 once
    stopped): withdrawn dossiers leave the completion rate's count."""


@dataclass(frozen=True)
class OfficerLoad:
    """The officers of a stage: ``per_unit`` accounts at each unit."""

    per_unit: int = 2
    """Officer accounts per unit (0..20); the 2025 trials had 2."""
    think_time: ThinkTime = ThinkTime(30.0, 90.0)
    """Time one step on one dossier takes."""
    poll_interval_s: float = 60.0
    """Simulated seconds an officer waits before looking at an empty queue again."""
    supplement_share: float = 0.05
    """Share of dossiers sent back once for a supplement."""
    refuse_share: float = 0.02
    """Share of dossiers refused at intake."""
    sign_in_lead_s: float = 0.0
    """Officers start this many simulated seconds before the citizens."""


@dataclass(frozen=True)
class StageFault:
    """A fault on the stage's timeline: from ``at_s`` for ``for_s`` (None: to the stage's end), on one system."""

    kind: str
    """One of `FAULT_KINDS`."""
    at_s: float
    """Simulated seconds from the start of the stage (the officers' sign-in)."""
    for_s: float | None
    """Simulated seconds it lasts; None: to the end of the stage."""
    name: str
    """As given in the file, else ``kind@at`` (``latency@5m``): the portal's id for it."""
    endpoints: tuple[str, ...] = ()
    """'METHOD /route' patterns (fnmatch); empty: every endpoint."""
    delay_s: tuple[float, float] | None = None
    """latency: fixed (low == high) or uniform, wall-clock seconds (network time is not compressed)."""
    mean_s: float | None = None
    """latency: exponential with this mean, wall-clock seconds."""
    rate: float = 1.0
    """errors / silent-drop: share of matching requests hit."""
    status: int = 503
    """errors: the status answered."""
    factor: float = 1.0
    """slow-agency: the second agency takes this many times longer."""
    units: tuple[int, ...] = ()
    """absence: units whose officers are away."""
    officers: int | None = None
    """absence: officers away per unit; None: all of them."""
    system: str = "national"
    """Where the runner sends it (``PUT /api/admin/faults``), already resolved by the plan reader: ``national``,
    ``provincial`` (HCMC's platform and its link agent), ``city`` (the city portal: the provincial system's front
    door), ``brvt`` or ``binh-duong`` (a former province's system: its front door for the citizens' kinds, its
    one-stop system for slow-agency). ``link`` as written becomes national or provincial. ``absence`` is played by
    the harness on its officers and is sent nowhere; it says ``provincial``, where they work."""

    def portal_spec(self) -> dict[str, object]:
        """What `PUT /api/admin/faults` takes for this fault (on the system `system` names)."""
        spec: dict[str, object] = {"id": self.name, "kind": self.kind, "endpoints": list(self.endpoints)}
        if self.kind in ("latency", "link-slow"):
            if self.mean_s is not None:
                spec["mean_s"] = self.mean_s
            else:
                spec["delay_s"] = list(self.delay_s or (0.0, 0.0))
        elif self.kind in ("errors", "silent-drop"):
            spec.update(rate=self.rate, status=self.status)
        elif self.kind in ("link-errors", "vneid-overload"):
            spec["rate"] = self.rate
        elif self.kind == "slow-agency":
            spec["factor"] = self.factor
        return spec


@dataclass(frozen=True)
class Cutover:
    """The switch of some of a stage's units (all by default) from their old arrangement to the national portal
    and HCMC's platform, in the middle of a stage.

    ``from_system`` says what those units start on: ``city`` (the city's own portal, HCMC's platform's front
    door, closed at 21:00 on 18/6/2025: citizens move to the national portal, dossiers stay where they are) or
    ``brvt`` / ``binh-duong`` (a former province's own one-stop system and front door: the units move onto
    HCMC's platform, their citizens to the national portal, and with ``migrate`` their dossiers are imported).
    The stage's other units are on the national portal and HCMC's platform from the start.
    """

    at_s: float
    """Simulated seconds from the start of the stage."""
    mode: str = "503"
    """How the legacy portal turns people away: ``503`` (with Retry-After) or ``redirect`` (308)."""
    retry_after_s: float = 60.0
    """Simulated; the header carries it divided by the time scale (at least 1 s)."""
    migrate: bool = True
    """Copy the old system's dossiers right after closing: every open one, and the finished ones as a record."""
    units: tuple[int, ...] = ()
    """Official codes of the units that move, sorted: the stage's own (all of them unless ``units`` chose some);
    empty only for a Cutover built by hand (then: all the stage's units)."""
    unit_selection: UnitSelection = UnitSelection()
    """How ``cutover.units`` chose them, as written (empty: all the stage's units)."""
    from_system: str = "city"
    """``cutover.from`` (``from`` is a Python keyword): one of `CUTOVER_FROM`; default ``city``."""
    phases: tuple[RunbookPhase, ...] = ()
    """``cutover.phases``: the runbook played from ``at_s`` (`rehearsal.plan.runbook`); empty: one switch."""

    @property
    def runbook(self) -> tuple[RunbookPhase, ...]:
        """The phases played: as written, or today's one switch."""
        return self.phases or ONE_SWITCH

    def phase(self, name: str) -> RunbookPhase | None:
        """The runbook's phase called `name`, or None."""
        return next((p for p in self.runbook if p.phase == name), None)


@dataclass(frozen=True)
class Stage:
    """One trial run of the plan (e.g. the 22/6 pilot or the 25/6 full trial)."""

    name: str
    """A slug, unique in the plan."""
    description: str
    units: tuple[int, ...]
    """Official codes of the units taking part, sorted, never empty."""
    unit_selection: UnitSelection
    duration_s: float
    """Simulated filing window (> 0)."""
    grace_s: float
    """Simulated time after the window: no new filing, officers keep working; completion is counted at its end."""
    citizens: CitizenLoad
    officers: OfficerLoad
    gates: tuple[Gate, ...]
    """What the stage must meet; any failed gate makes it NO-GO."""
    faults: tuple[StageFault, ...] = ()
    """Faults on the stage's timeline, in the order written."""
    cutover: Cutover | None = None
    """If set, the stage starts on the legacy portal and switches to the national one at ``cutover.at_s``."""

    @property
    def total_s(self) -> float:
        """Simulated length: officers' lead + filing window + grace."""
        return self.officers.sign_in_lead_s + self.duration_s + self.grace_s

    @property
    def completion_target(self) -> float:
        """The completion rate the stage and each of its units must reach: the threshold of the stage's
        plain completion gate (whole stage, no filter, a fixed number, ``>``/``>=``), else 96 %.

        The one rule for the report, the live view and Locust's Rehearsal tab.
        """
        for gate in self.gates:
            if gate.metric == "completion_rate" and gate.op in (">", ">=") and not gate.filters \
                    and not gate.uses_baseline:
                return gate.threshold
        return DEFAULT_COMPLETION_TARGET


@dataclass(frozen=True)
class Plan:
    """A whole scenario: its stages run in order."""

    name: str
    description: str
    target: str
    """A target name from config/targets.yaml (checked when the plan is run, not here)."""
    time_scale: float
    """Simulated seconds per wall-clock second; the --time-scale override if one was given."""
    seed: int
    """Seeds unit samples and the users' choices, so a plan repeats."""
    stages: tuple[Stage, ...]
    """Run in this order."""
    source: Path
    """The scenario file, absolute (safe to hand to another process)."""
    file: str = ""
    """The scenario file as the user named it (relative if they gave it relative), for messages."""
    gates: tuple[Gate, ...] = ()
    """Gates on the whole run: every stage's figures together (requests merged, dossiers summed)."""
    baseline: str | None = None
    """The stored baseline that ``baseline`` thresholds compare with (``--baseline`` overrides)."""

    def stage(self, name: str) -> Stage:
        """The stage called `name`; `PlanError` listing the stage names if there is none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise PlanError(f"unknown stage {name!r} (expected one of: {', '.join(s.name for s in self.stages)})",
                        file=self.file or str(self.source))

    def wall_s(self, simulated_s: float) -> float:
        """Wall-clock seconds that `simulated_s` take at this plan's time scale."""
        return simulated_s / self.time_scale

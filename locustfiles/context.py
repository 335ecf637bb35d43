"""The run context every user shares inside one Locust process.

Built once by the locustfile's ``init`` hook from the plan named on the
command line (``--plan``, ``--stage``, ``--time-scale``) and the run's
systems (``--systems``: `rehearsal.run.systems.Systems`), then handed to the
user classes as a class attribute: no module-level settings, no environment
variables read deep inside. Whatever the process's users share lives here,
the users signed in now included (the telemetry counts the active ones from
`RunContext.active_sessions`).
"""

from __future__ import annotations

import itertools
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rehearsal.shared.catalogue import Catalogue
    from rehearsal.plan import Plan, Stage
    from rehearsal.run.systems import Systems

    from locustfiles.telemetry import Telemetry


@dataclass
class RunContext:
    """One stage of one plan, as seen by the users of this process."""

    plan: "Plan"
    stage: "Stage"
    catalogue: "Catalogue"
    time_scale: float
    #: This process's events and samples (`locustfiles.telemetry.Telemetry`), set by the locustfile.
    telemetry: "Telemetry" = field(init=False, repr=False)
    #: The run's systems (who is where, which adapter speaks to each), set by the locustfile.
    systems: "Systems" = field(init=False, repr=False)
    #: Read at test_start, from the variable the master names (``--officer-password-env``).
    officer_password: str = "rehearsal"
    #: The citizens' password on a city portal, from the variable the master names (``--city-password-env``).
    city_password: str = "rehearsal"
    #: Officer usernames by unit, and citizen ID numbers, from the target's accounts files (empty: made up).
    officer_accounts: dict[int, list[str]] = field(default_factory=dict)
    citizen_ids: list[str] = field(default_factory=list)
    #: Rank of this process among the workers (0 when local; past the others for one that joined
    #: mid-stage), and their number when it started: both from the master, at test_start (see the
    #: locustfile's ``_on_test_start``).
    worker_index: int = 0
    worker_count: int = 1
    #: Wall-clock time the stage started, on this process's clock (set at test_start; on a worker,
    #: from how far into the stage the master was: the locustfile's ``STAGE_CLOCK``).
    started_at: float = 0.0
    #: The systems that said they moved (a front door closed at a cutover): their URL -> where they moved.
    moves: dict[str, str] = field(default_factory=dict)
    #: Checks an address a portal says it moved to (`locustfiles.fence.Fence.follow`, set by the
    #: locustfile): its normalised form, or None when the allowed list refuses it and users stay.
    follow: Any = None
    #: Open model: arrivals waiting for an idle citizen, and the greenlet scheduling them (set at test_start).
    arrivals: Any = None
    arrivals_loop: Any = None
    #: Freezes the heap as users grow (`rehearsal.shared.heap.HeapFreezer`), set at test_start.
    heap: Any = None
    #: Hands out officer accounts (`locustfiles.slots.SlotBroker`), set by the locustfile.
    slots: Any = None
    idle_citizens: int = 0
    #: This process's HDR latency recorder (`locustfiles.latency.LatencyRecorder`), set by the locustfile.
    latency: Any = None
    #: The users of this process with a session now (`locustfiles.common.PortalUser`); weak, so a
    #: user Locust has stopped and dropped is gone from it too.
    signed_in: "weakref.WeakSet[Any]" = field(default_factory=weakref.WeakSet, repr=False)
    _counters: dict[str, Any] = field(default_factory=lambda: {
        "officer": itertools.count(), "citizen": itertools.count()})

    # -- the stage's clock (wall seconds from its start) --------------------
    @property
    def lead_wall(self) -> float:
        """Officers sign in this long before citizens arrive."""
        return self.stage.officers.sign_in_lead_s / self.time_scale

    @property
    def window_wall(self) -> float:
        """The filing window: citizens file new dossiers during it."""
        return self.stage.duration_s / self.time_scale

    @property
    def grace_wall(self) -> float:
        return self.stage.grace_s / self.time_scale

    @property
    def total_wall(self) -> float:
        return self.lead_wall + self.window_wall + self.grace_wall

    def elapsed(self) -> float:
        return time.time() - self.started_at if self.started_at else 0.0

    def filing_open(self) -> bool:
        return self.elapsed() < self.lead_wall + self.window_wall

    def sim_elapsed(self) -> float:
        """Simulated seconds since the stage started (the timeline faults and the cutover use)."""
        return self.elapsed() * self.time_scale

    def active_sessions(self, window_s: float) -> int:
        """Sessions of this process used within the last `window_s` seconds (as the portal counts them)."""
        now = time.time()
        return sum(1 for u in list(self.signed_in) if u.token and now - u.last_active <= window_s)

    # -- the cutover and faults -------------------------------------------------
    def moved_to(self, old_url: str, url: str) -> bool:
        """The system at `old_url` said it has moved to `url`: from now on its users of this process go there.

        True the first time (this process learnt it now); False if it already knew, or if the allowed
        list refuses the address (`follow`): then users stay where they are.
        """
        url = self.follow(url) if self.follow is not None else url.rstrip("/")
        old_url = old_url.rstrip("/")
        if url is None or url == old_url or self.moves.get(old_url) == url:
            return False
        if self.moves.get(url) == old_url:
            del self.moves[url]  # a move back (a rolled-back cutover) undoes the move there
        self.moves[old_url] = url
        return True

    def absent(self, unit: int, number: int) -> bool:
        """Whether officer `number` of `unit` is away now (an absence fault of the stage)."""
        now = self.sim_elapsed()
        for f in self.stage.faults:
            if f.kind == "absence" and unit in f.units and f.at_s <= now and (f.for_s is None or now < f.at_s + f.for_s):
                # ``officers: n`` sends the last n officers of the unit away: the desk (officer 1) goes last.
                away = self.stage.officers.per_unit if f.officers is None else f.officers
                if number > self.stage.officers.per_unit - away:
                    return True
        return False

    # -- who is who ---------------------------------------------------------
    def next_identity(self, kind: str) -> int:
        """A number dense across all worker processes for this user kind (it spreads users over units).

        Each process numbers its own users 0, 1, 2, …; interleaving them by
        worker rank keeps the numbers unique and dense across the workers the
        stage started with. A worker that joins later has a rank past them
        (the master ranks it as it connects), so its numbers may meet others':
        they only choose home units. What must be unique goes through
        `next_person` instead.
        """
        return self.next_person(kind)[0]

    def next_person(self, kind: str) -> tuple[int, int]:
        """(identity, serial): `next_identity`'s number, and this process's own count of that kind.

        The pair (``worker_index``, serial) is unique across every process of
        the stage, late joiners included: a citizen's ID number is made of it.
        """
        serial = next(self._counters[kind])
        return serial * self.worker_count + self.worker_index, serial

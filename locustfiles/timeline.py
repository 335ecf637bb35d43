"""The stage's timeline: faults switched on and off, and the cutover, at their planned minutes.

Runs in one process only (the master, or the local runner), as one
greenlet started with the stage. At each planned time it tells each system
its faults (``PUT /api/admin/faults`` with every fault active on it then)
and writes a marker to ``stages/<stage>/markers.jsonl`` — ``{"t", "kind",
"name", "system", ...}`` — which the report draws on its time charts.
``absence`` needs no call: every process reads it from the plan
(`RunContext.absent`); it gets its markers here too. ``link-kill`` is the
operator's call on the provincial system (``POST /api/admin/link``
``{"action": "kill"}``, and ``start`` when it ends).

Which system a fault goes to (`fault_system`): the one it names
(``system``: national, provincial, link, a system's or a front door's
name; the plan reader resolves it, `rehearsal.plan.timeline`), else by kind: ``link-slow``, ``link-errors``, ``link-down`` and
``vneid-overload`` on the national portal; ``link-duplicates``,
``link-kill`` and ``slow-agency`` (the second agency works with the
officers) on the provincial system; the others (latency, errors, outage,
silent-drop) on the front door citizens use now: the one a stage's cutover
moves them off until it closes, the national portal after.

The cutover, at ``cutover.at``, is its runbook (`locustfiles.runbook`):
freeze, drain or migrate, validate, switch, observe, each as planned, and
a rollback when validation or a gate with ``on_fail: rollback`` fails;
written without phases, it is one switch (the front door closed, a former
province's dossiers migrated). Its record goes to
``stages/<stage>/cutover.json``. Users learn of a move from the answers
(``X-Portal-Moved``), not from here: the harness must not know more than a
citizen would.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import time
from pathlib import Path
from typing import Any

import gevent

from locustfiles.runbook import Runbook
from rehearsal.plan import Stage, StageFault
from rehearsal.results.gates import LiveGates
from rehearsal.run.migration import admin_call
from rehearsal.run.systems import Systems, cutover_from

#: Fault kinds played on the national portal, and on the provincial system, when the fault names no system.
ON_NATIONAL = ("link-slow", "link-errors", "link-down", "vneid-overload")
ON_PROVINCIAL = ("link-duplicates", "link-kill", "slow-agency")


def fault_spec(fault: StageFault) -> dict[str, Any]:
    """What ``PUT /api/admin/faults`` takes for `fault` (the link's kinds with their delay or rate)."""
    spec = fault.portal_spec()
    if fault.kind == "link-slow" and "delay_s" not in spec and "mean_s" not in spec:
        if fault.mean_s is not None:
            spec["mean_s"] = fault.mean_s
        else:
            spec["delay_s"] = list(fault.delay_s or (0.0, 0.0))
    elif fault.kind in ("link-errors", "vneid-overload"):
        spec.setdefault("rate", fault.rate)
    return spec


class Timeline:
    """Plays one stage's faults and cutover against the run's systems."""

    def __init__(self, stage: Stage, systems: Systems, *, time_scale: float, stage_dir: Path | None,
                 admin_token: str | None = None, telemetry: Any = None) -> None:
        self.stage = stage
        self.systems = systems
        self.time_scale = time_scale
        self.stage_dir = stage_dir
        self.admin_token = admin_token
        #: The master's telemetry: which codes were filed on which system (the cutover's record).
        self.telemetry = telemetry
        self.greenlet: gevent.Greenlet | None = None
        self.active: list[StageFault] = []
        #: Whether the stage's cutover has happened (citizens' faults then go to the national portal).
        self.cut = False
        #: Systems told of faults this stage (each is told again when its list changes, empty included).
        self.told: set[str] = set()
        self.markers = stage_dir.joinpath("markers.jsonl").open("a", encoding="utf-8") if stage_dir else None
        #: The cutover's runbook once it has begun, and the greenlet that plays it.
        self.runbook: Runbook | None = None
        self.runbook_greenlet: gevent.Greenlet | None = None
        self.started_at = 0.0

    def events(self) -> list[tuple[float, str, StageFault | None]]:
        """(simulated second, what, fault) in time order."""
        out: list[tuple[float, str, StageFault | None]] = []
        for f in self.stage.faults:
            out.append((f.at_s, "fault_start", f))
            if f.for_s is not None:
                out.append((f.at_s + f.for_s, "fault_end", f))
        if self.stage.cutover:
            out.append((self.stage.cutover.at_s, "cutover", None))
        return sorted(out, key=lambda e: (e[0], e[1] != "fault_end"))

    def mark(self, kind: str, **fields: Any) -> None:
        if self.markers:
            self.markers.write(json.dumps({"t": round(time.time(), 3), "kind": kind, **fields},
                                          ensure_ascii=False) + "\n")
            self.markers.flush()

    def start(self, started_at: float) -> None:
        self.started_at = started_at
        self.greenlet = gevent.spawn(self._run, started_at)
        gevent.spawn(self._closed_already)

    def _closed_already(self) -> None:
        """Tell the telemetry which front doors an earlier stage closed: their sessions are no one's now."""
        for url in (u for urls in self.systems.stats_urls().values() for u in urls):
            try:
                if admin_call(url, "GET", "/api/admin/faults", token=self.admin_token, timeout=5).get("closed"):
                    self._closed(url)
            except (OSError, ValueError, AttributeError):
                pass  # a system without the reference's admin calls: taken as open

    def _closed(self, url: str) -> None:
        if self.telemetry is not None:
            self.telemetry.closed.add(url)

    # -- what the runbook tells the timeline --------------------------------------------------------
    def closed_door(self, url: str) -> None:
        """A system's door closed (its sessions are no one's now)."""
        self._closed(url)

    def opened_door(self, url: str) -> None:
        """A system's door opened again (a rollback)."""
        if self.telemetry is not None:
            self.telemetry.closed.discard(url)

    def switched(self, cut: bool) -> None:
        """The citizens' front door is now the national portal (True) or the old one again (a rollback)."""
        self.cut = cut
        if self.active:  # faults planned for the rest of the stage now apply where citizens went
            self._push()

    def feed_watch(self, live: LiveGates) -> None:
        """Feed `live` (the runbook's rollback gates) every latency interval and time-series sample."""
        ctx = getattr(getattr(self.telemetry, "env", None), "rehearsal", None)
        if ctx is not None:
            ctx.latency.watchers.append(live.feed_latency)
            self.telemetry.sample_watchers.append(live.feed_sample)

    def stop(self) -> None:
        if self.greenlet:
            self.greenlet.kill(block=False)
        if self.runbook_greenlet:
            self.runbook_greenlet.kill(block=True, timeout=5)
        if self.runbook is not None:
            self.runbook.lift()
            self.runbook.write()
        if self.active:  # a fault still on at the end of the stage is switched off for the next one
            killed = [f for f in self.active if f.kind == "link-kill"]
            self.active = []
            self._push()
            for f in killed:
                self._link(f, "start")
        if self.markers:
            self.markers.close()
            self.markers = None

    # -- where a fault goes ---------------------------------------------------------------------
    def fault_system(self, fault: StageFault) -> tuple[str, str]:
        """(system name, URL) that plays `fault` now (see the module's docstring)."""
        named = getattr(fault, "system", None)
        if named == "link" or not named:
            named = ("national" if fault.kind in ON_NATIONAL else
                     "provincial" if fault.kind in ON_PROVINCIAL else None)
        if named == "national":
            entry = self.systems.national()
            return entry.name, entry.url
        if named == "provincial":
            entry = self.systems.provincial()
            return entry.name, entry.url
        if named:
            # A former province's name is its front door for the citizens' kinds, its one-stop system for
            # the officers' (slow-agency) and the link agent's; "city" is HCMC's front door.
            door = self.systems.place(named, "citizen") if fault.kind not in ON_PROVINCIAL else None
            if door is not None:
                return door.system, door.url
            if named in self.systems.entries:
                return named, self.systems.entries[named].url
        if self.stage.cutover and not self.cut:  # the front door citizens use until the cutover
            place = self.systems.place(cutover_from(self.stage.cutover), "citizen")
            if place is not None:
                return place.system, place.url
        home = self.systems.home("citizen")
        return home.system, home.url

    def _run(self, started_at: float) -> None:
        for at_s, what, fault in self.events():
            gevent.sleep(max(0.0, started_at + at_s / self.time_scale - time.time()))
            if what == "cutover":  # played beside the faults: a runbook takes minutes
                self.runbook = Runbook(self, started_at)
                self.runbook_greenlet = gevent.spawn(self.runbook.play)
                continue
            assert fault is not None
            if what == "fault_start":
                self.active.append(fault)
            else:
                self.active = [f for f in self.active if f is not fault]
            detail: dict[str, Any] = {"units": list(fault.units)} if fault.kind == "absence" else {}
            if fault.kind == "link-kill":
                detail["system"] = self._link(fault, "kill" if what == "fault_start" else "start")
            elif fault.kind != "absence":
                detail["system"] = self.fault_system(fault)[0]
                self._push()
            self.mark(what, name=fault.name, fault=fault.kind, sim_s=at_s, **detail)

    def _push(self) -> None:
        """Tell every system its faults now (those told before too: a fault that ended is switched off)."""
        by_url: dict[str, list[dict[str, Any]]] = {url: [] for url in self.told}
        for f in self.active:
            if f.kind not in ("absence", "link-kill"):
                by_url.setdefault(self.fault_system(f)[1], []).append(fault_spec(f))
        for url, specs in by_url.items():
            try:
                admin_call(url, "PUT", "/api/admin/faults", {"faults": specs}, token=self.admin_token)
                self.told.add(url)
            except (OSError, ValueError) as exc:  # the system failing is data, not a crash
                self.mark("control_error", error=f"faults on {url}: {exc}"[:200])

    def _link(self, fault: StageFault, action: str) -> str:
        """Kill or start a provincial system's link agent; the system's name."""
        name, url = self.fault_system(fault)
        try:
            admin_call(url, "POST", "/api/admin/link", {"action": action}, token=self.admin_token)
        except (OSError, ValueError) as exc:
            self.mark("control_error", error=f"link {action} on {name}: {exc}"[:200])
        return name

    def write_cutover(self, record: dict[str, Any]) -> None:
        """``cutover.json`` (atomically: a reader never sees half of it)."""
        if self.stage_dir:
            tmp = self.stage_dir / "cutover.json.tmp"
            tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(self.stage_dir / "cutover.json")

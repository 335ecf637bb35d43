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

The cutover, at ``cutover.at`` (`rehearsal.run.systems.cutover_from`
says from what): the front door of those units is closed (503 with
Retry-After, or 308 to the national portal); a former province's one-stop
system too (towards HCMC's), and its dossiers migrate onto HCMC's platform
(every one exported whole and imported page by page, keeping codes; the
open ones are what it must carry). The city portal has no database of its
own: what was filed through it is already on HCMC's platform, so nothing
migrates and the record lists the open dossiers filed through it. Its
figures go to ``stages/<stage>/cutover.json``: when it closed, from and
to what, how many dossiers were open, how many imported, their ids and
codes. Users learn of the move from the answers (``X-Portal-Moved``), not
from here: the harness must not know more than a citizen would.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import math
import time
from pathlib import Path
from typing import Any

import gevent

from rehearsal.plan import Stage, StageFault
from rehearsal.run.migration import admin_call, migrate, open_dossiers
from rehearsal.run.systems import Systems, cutover_from, cutover_units

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

    def stop(self) -> None:
        if self.greenlet:
            self.greenlet.kill(block=False)
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
            if what == "cutover":
                self._cutover()
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

    # -- the cutover ------------------------------------------------------------------------------
    def _close(self, url: str, moved_to: str, retry: int) -> None:
        mode = self.stage.cutover.mode if self.stage.cutover else "503"
        admin_call(url, "POST", "/api/admin/close", {"mode": mode, "moved_to": moved_to, "retry_after_s": retry},
                   token=self.admin_token)
        self._closed(url)

    def _cutover(self) -> None:
        cut = self.stage.cutover
        assert cut is not None
        source = cutover_from(cut)
        national, home = self.systems.home("citizen"), self.systems.home("officer")
        door, desk = self.systems.place(source, "citizen"), self.systems.place(source, "officer")
        record: dict[str, Any] = {"planned_sim_s": cut.at_s, "mode": cut.mode, "from": source,
                                  "to": national.system, "units": sorted(cutover_units(self.stage)),
                                  "legacy": door.url if door else None, "national": national.url}
        if door is None or door.url == national.url:
            record["error"] = f"no front door {source!r} among the run's systems: nothing to switch from"
            self.mark("control_error", error=record["error"])
            self._write_cutover(record)
            return
        retry = max(1, math.ceil(cut.retry_after_s / self.time_scale))
        own_desk = desk is not None and desk.url not in (door.url, home.url)
        try:
            self._close(door.url, national.url, retry)
            if own_desk:  # a former province's one-stop system: its officers move onto HCMC's platform
                assert desk is not None
                self._close(desk.url, home.url, retry)
                record["officers_to"] = home.system
        except (OSError, ValueError) as exc:
            record["error"] = f"closing {source} failed: {exc}"[:300]
            self.mark("control_error", error=record["error"])
            self._write_cutover(record)
            return
        record["closed_at"] = time.time()
        self.cut = True
        self.mark("cutover_close", name="cutover", mode=cut.mode, sim_s=cut.at_s, system=source)
        if self.active:  # faults planned for the rest of the stage now apply where citizens went
            self._push()
        entry = self.systems.entries.get(source)
        try:
            if entry is not None and cut.migrate:  # a system with a database of its own: its dossiers move
                record.update(migrate(entry.url, home.url if entry.system == "provincial" else national.url,
                                      token=self.admin_token))
            elif entry is None and desk is not None:  # a front door only: what it took is on the system behind it
                filed = self.telemetry.filed_on.get(source, set()) if self.telemetry is not None else set()
                still = [r for r in open_dossiers(desk.url, token=self.admin_token) if r.get("code") in filed]
                record.update(open_at_close=len(still), ids=[r["id"] for r in still],
                              codes=[r["code"] for r in still], imported=0)
        except (OSError, ValueError, KeyError) as exc:
            record["error"] = f"migration failed: {exc}"[:300]
            self.mark("control_error", error=record["error"])
        record["migrated_at"] = time.time()
        self.mark("migration_done", name="migration", open_at_close=record.get("open_at_close"),
                  imported=record.get("imported"), seconds=round(record["migrated_at"] - record["closed_at"], 3))
        self._write_cutover(record)

    def _write_cutover(self, record: dict[str, Any]) -> None:
        if self.stage_dir:
            tmp = self.stage_dir / "cutover.json.tmp"
            tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(self.stage_dir / "cutover.json")

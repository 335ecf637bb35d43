"""Playing a stage's cutover as its runbook, phase by phase, under load; rolling it back when it goes wrong.

Started by `locustfiles.timeline` at ``cutover.at`` in a greenlet of its own
(faults go on being played meanwhile). Each phase of
`rehearsal.plan.runbook` is played in turn:

- freeze: the old front door takes no new dossiers (``POST /api/admin/close``
  ``{"mode": "freeze"}``: following and paying still work), held for its
  planned time;
- drain (the city portal): the open dossiers filed through it are listed on
  HCMC's platform, then looked up on the national portal (``TraCuuHoSo``)
  until the link has pushed them all, or the phase's limit;
- migrate (a former province's system): its one-stop system is closed (its
  officers move to HCMC's platform) and its dossiers imported, then looked
  up on the national portal the same way;
- validate: the named checks, tried every `POLL_S` until all pass or the
  limit; one still failing then rolls the cutover back (the city portal) or
  holds it (after a migration: nowhere to carry the dossiers back to, the
  old door stays frozen and the switch is not played);
- switch: the old front door answers ``X-Portal-Moved`` to the national
  portal (with no drain or migrate phase, what today's one-minute cutover
  did after it: the migration, or the list of the city portal's open ones);
- observe: the gates with ``on_fail: rollback`` are judged live (as
  `locustfiles.abort` judges ``abort_on_fail``); one that fails rolls back.

**Rollback** (decision, docs/scenarios.md "Runbook and rollback"): the city
portal opens again and the national portal answers ``X-Portal-Moved`` back
to it (its integration API stays open: `rehearsal.portal.doors`). Dossiers
filed on the national portal meanwhile are KEPT there and synced, not carried
back: both front doors feed the same provincial one-stop system (the link
pulls national's filings into it; the city portal reads its database), so a
citizen following by code finds the dossier through either door and nothing
acknowledged is lost. Officers stay on the provincial system. The switch
back is lifted when the stage ends (`Timeline.stop`).

Every phase's planned and actual start and end (simulated seconds from the
stage's start, and wall times), outcome and failing checks go to
``stages/<stage>/cutover.json`` after each phase, beside today's keys.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import math
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gevent

from rehearsal.errors import RehearsalError
from rehearsal.plan.runbook import RunbookPhase, planned_starts
from rehearsal.results.gates import LiveGates
from rehearsal.results.national import NationalAccount, NationalReader
from rehearsal.run.migration import admin_call, migrate, open_dossiers
from rehearsal.run.systems import cutover_from, cutover_units

if TYPE_CHECKING:
    from locustfiles.timeline import Timeline

#: Wall seconds between two tries of a working phase (the drain's look-ups, the validation's checks, observing).
POLL_S = 1.0
#: The ID number of the validation's smoke citizen (a test identity no crowd citizen has: theirs start 079).
SMOKE_CITIZEN = "001099000001"


class Runbook:
    """Plays one stage's cutover runbook against the run's systems (see the module's docstring)."""

    def __init__(self, timeline: Timeline, started_at: float) -> None:
        self.tl = timeline
        self.cut = timeline.stage.cutover
        assert self.cut is not None
        self.started_at = started_at
        systems = timeline.systems
        self.source = cutover_from(self.cut)
        self.national, self.home = systems.home("citizen"), systems.home("officer")
        self.door, self.desk = systems.place(self.source, "citizen"), systems.place(self.source, "officer")
        self.retry = max(1, math.ceil(self.cut.retry_after_s / timeline.time_scale))
        self.record: dict[str, Any] = {
            "planned_sim_s": self.cut.at_s, "mode": self.cut.mode, "from": self.source, "to": self.national.system,
            "units": sorted(cutover_units(timeline.stage)), "legacy": self.door.url if self.door else None,
            "national": self.national.url, "runbook": [p.as_dict() for p in self.cut.phases], "phases": [],
            "rolled_back": False, "held": False}
        #: The codes of the open dossiers the runbook carries over (drained or migrated).
        self.codes: list[str] = []
        self.desk_closed = False
        self.stopped = False
        self.watch: LiveGates | None = None
        self.reader: NationalReader | None = None

    # -- the clock ------------------------------------------------------------------------------
    def sim(self, t: float) -> float:
        """Simulated seconds from the stage's start at wall time `t`."""
        return round((t - self.started_at) * self.tl.time_scale, 3)

    def wall(self, sim_s: float) -> float:
        return self.started_at + sim_s / self.tl.time_scale

    # -- playing ----------------------------------------------------------------------------------
    def play(self) -> None:
        """Every phase in turn; the record after each."""
        door = self.door
        if door is None or door.url == self.national.url:
            self.record["error"] = f"no front door {self.source!r} among the run's systems: nothing to switch from"
            self.tl.mark("control_error", error=self.record["error"])
            self.write()
            return
        self.record["runbook_started_at"] = time.time()
        phases = self.cut.runbook
        for p, planned_start in zip(phases, planned_starts(phases, self.cut.at_s)):
            entry: dict[str, Any] = {"phase": p.phase, "planned_start_s": planned_start, "planned_s": p.planned_s,
                                     "limit_s": p.limit_s}
            self.record["phases"].append(entry)
            if self.stopped:
                entry["outcome"] = "not played"
                continue
            gevent.sleep(max(0.0, self.wall(planned_start) - time.time()))  # never before its planned start
            entry.update(started_at=time.time(), start_s=self.sim(time.time()))
            self.tl.mark("phase_start", name=p.phase, sim_s=entry["start_s"])
            try:
                entry["outcome"] = getattr(self, f"_{p.phase}")(p, entry)
            except (OSError, ValueError, KeyError, RehearsalError) as exc:  # a system failing is data, not a crash
                entry.update(outcome="failed", error=f"{p.phase}: {exc}"[:300])
                self.tl.mark("control_error", error=entry["error"])
                if p.phase in ("freeze", "switch"):  # the doors did not do what the runbook says: stop here
                    self.record["error"] = entry["error"]
                    self.stopped = True
            entry.update(ended_at=time.time(), end_s=self.sim(time.time()))
            entry["actual_s"] = round(entry["end_s"] - entry["start_s"], 3)
            self.tl.mark("phase_end", name=p.phase, outcome=entry["outcome"], sim_s=entry["end_s"])
            self.write()
        self.record["runbook_ended_at"] = time.time()
        self.write()

    def _hold(self, entry: dict[str, Any], planned_s: float) -> None:
        """Wait out the rest of a phase's planned time (from its start)."""
        gevent.sleep(max(0.0, entry["started_at"] + planned_s / self.tl.time_scale - time.time()))

    def _close(self, url: str, moved_to: str, mode: str) -> None:
        admin_call(url, "POST", "/api/admin/close", {"mode": mode, "moved_to": moved_to, "retry_after_s": self.retry},
                   token=self.tl.admin_token)
        if mode != "freeze":
            self.tl.closed_door(url)

    def _freeze(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        assert self.door is not None
        self._close(self.door.url, self.national.url, "freeze")
        self.record["frozen_at"] = time.time()
        self._hold(entry, p.planned_s)
        return "done"

    def _drain(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        """The city portal's open dossiers, on HCMC's platform already: wait until national has them all."""
        self._list_open()
        return self._await_national(p, entry)

    def _migrate(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        """A former province's system: its officers move to HCMC's platform, its dossiers are imported."""
        self._close_desk()
        self._carry_over()
        return self._await_national(p, entry)

    def _close_desk(self) -> None:
        desk = self.desk
        if desk is not None and desk.url not in (self.home.url, self.door.url if self.door else "") \
                and not self.desk_closed:
            self._close(desk.url, self.home.url, "503")
            self.record["officers_to"] = self.home.system
            self.desk_closed = True

    def _list_open(self) -> None:
        """The city portal's open dossiers (what it took is on the system behind it): the record's ids and codes."""
        assert self.desk is not None
        filed = self.tl.telemetry.filed_on.get(self.source, set()) if self.tl.telemetry is not None else set()
        still = [r for r in open_dossiers(self.desk.url, token=self.tl.admin_token) if r.get("code") in filed]
        self.record.update(open_at_close=len(still), ids=[r["id"] for r in still],
                           codes=[r["code"] for r in still], imported=0)
        self.codes = [str(c) for c in self.record["codes"] if c]

    def _carry_over(self) -> None:
        """Today's cutover after the close: the migration of a system with a database, or the city's list."""
        entry = self.tl.systems.entries.get(self.source)
        started = time.time()
        if entry is not None and self.cut.migrate:
            target = self.home.url if entry.system == "provincial" else self.national.url
            self.record.update(migrate(entry.url, target, token=self.tl.admin_token))
            self.codes = [str(c) for c in self.record.get("codes", []) if c]
        elif entry is None and self.desk is not None:
            self._list_open()
        self.record["migrated_at"] = time.time()
        self.tl.mark("migration_done", name="migration", open_at_close=self.record.get("open_at_close"),
                     imported=self.record.get("imported"), seconds=round(self.record["migrated_at"] - started, 3))

    def _missing_on_national(self) -> list[str]:
        if not self.codes:
            return []
        if self.reader is None:
            account = NationalAccount.from_entry(self.tl.systems.as_dict().get(self.national.system), os.environ)
            self.reader = NationalReader(self.national.url, account, retries=1)
        found = self.reader.look_up(self.codes)
        return [c for c in self.codes if c not in found]

    def _await_national(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        deadline = entry["started_at"] + p.limit_s / self.tl.time_scale
        while True:
            missing = self._missing_on_national()
            entry["on_national"] = f"{len(self.codes) - len(missing)} of {len(self.codes)}"
            if not missing:
                return "done"
            if time.time() >= deadline:
                entry["missing"] = missing[:20]
                return "over limit"
            gevent.sleep(POLL_S)

    # -- validate -----------------------------------------------------------------------------------
    def _validate(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        if "open_at_close" not in self.record and self.source == "city":  # no drain phase: what is open now
            self._list_open()
        deadline = entry["started_at"] + p.limit_s / self.tl.time_scale
        while True:
            results = [self._check(name) for name in p.checks]
            entry["checks"] = results
            entry["failing"] = [r["name"] for r in results if not r["passed"]]
            if not entry["failing"]:
                return "passed"
            if time.time() >= deadline:
                break
            gevent.sleep(POLL_S)
        reason = "validate failed: " + "; ".join(f"{r['name']} ({r['detail']})" for r in results if not r["passed"])
        if self.source == "city":
            self.roll_back(reason, "validate")
        else:
            self.hold(reason)
        return "failed"

    def _check(self, name: str) -> dict[str, Any]:
        try:
            passed, detail = getattr(self, f"_check_{name}")()
        except (OSError, ValueError, KeyError, RehearsalError) as exc:
            passed, detail = False, f"could not check: {exc}"[:200]
        return {"name": name, "passed": passed, "detail": detail}

    def _check_open_dossiers_on_national(self) -> tuple[bool, str]:
        missing = self._missing_on_national()
        first = f"; missing {', '.join(missing[:3])}" if missing else ""
        return not missing, f"{len(self.codes) - len(missing)} of {len(self.codes)} found{first}"

    def _check_sync_backlog_empty(self) -> tuple[bool, str]:
        link = admin_call(self.home.url, "GET", "/api/stats", token=self.tl.admin_token, timeout=10).get("link")
        if not isinstance(link, dict):
            return False, "the provincial system gives no outbox figures"
        pending = int(link.get("outbox_pending") or 0)
        return pending == 0, f"{pending} pending" + ("" if link.get("agent_alive", True) else ", link agent down")

    def _check_smoke_journey(self) -> tuple[bool, str]:
        url, token = self.national.url, self.tl.admin_token
        otp = admin_call(url, "POST", "/api/auth/vneid/otp", {"id_number": SMOKE_CITIZEN}, token=token, timeout=10)
        signed = admin_call(url, "POST", "/api/auth/vneid/verify",
                            {"otp_request_id": otp["otp_request_id"], "otp": otp["otp"]}, token=token, timeout=10)
        session = {"Authorization": f"Bearer {signed['token']}"}
        admin_call(url, "GET", "/api/procedures?q=khai%20sinh", token=token, timeout=10, headers=session)
        admin_call(url, "GET", "/api/dossiers", token=token, timeout=10, headers=session)
        admin_call(url, "POST", "/api/auth/logout", {}, token=token, timeout=10, headers=session)
        return True, "sign-in, catalogue, own dossiers, sign-out"

    # -- switch and observe ----------------------------------------------------------------------
    def _switch(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        assert self.door is not None
        self._close(self.door.url, self.national.url, self.cut.mode)
        working = any(q.phase in ("drain", "migrate") for q in self.cut.runbook)
        if not working:
            self._close_desk()  # today's cutover: the old one-stop system closes with its front door
        self.record["closed_at"] = time.time()
        self.tl.switched(True)
        self.tl.mark("cutover_close", name="cutover", mode=self.cut.mode, sim_s=self.cut.at_s, system=self.source)
        if not working:
            try:
                self._carry_over()
            except (OSError, ValueError, KeyError) as exc:
                self.record["error"] = f"migration failed: {exc}"[:300]
                self.tl.mark("control_error", error=self.record["error"])
                self.record["migrated_at"] = time.time()
        self._watch_from(self.record["closed_at"])
        return "done"

    def _watch_from(self, start: float) -> None:
        """Judge the ``on_fail: rollback`` gates live from `start` (the switch), fed as abort_on_fail gates are."""
        gates = [replace(g, abort_on_fail=True, abort_grace_s=0.0) for g in self.tl.stage.gates
                 if g.on_fail == "rollback"]
        if not gates:
            return
        self.watch = LiveGates(gates, start=start, time_scale=self.tl.time_scale)
        self.tl.feed_watch(self.watch)

    def _observe(self, p: RunbookPhase, entry: dict[str, Any]) -> str:
        end = entry["started_at"] + p.planned_s / self.tl.time_scale
        while time.time() < end:
            failed = self.watch.check(time.time()) if self.watch is not None else None
            if failed is not None:
                self.roll_back(f"gate {failed.name!r} failed while observing: observed {failed.observed}, "
                               f"expected {failed.expected}", "observe")
                return "cut short"
            gevent.sleep(min(POLL_S, max(0.0, end - time.time())))
        return "done"

    # -- going back ----------------------------------------------------------------------------------
    def roll_back(self, reason: str, phase: str) -> None:
        """Traffic back to the city portal; national's filings meanwhile kept and synced (the module's docstring)."""
        assert self.door is not None
        started = time.time()
        self.stopped = True
        self.watch = None
        self.tl.mark("rollback_start", name="rollback", reason=reason[:200], sim_s=self.sim(started))
        rollback: dict[str, Any] = {"reason": reason, "phase": phase, "started_at": started,
                                    "start_s": self.sim(started), "dossiers": "kept on the national portal, synced"}
        try:
            admin_call(self.door.url, "POST", "/api/admin/reopen", {}, token=self.tl.admin_token)
            self.tl.opened_door(self.door.url)
            if self.record.get("closed_at"):  # citizens already sent to the national portal are sent back
                self._close(self.national.url, self.door.url, "503")
                rollback["national_moved_back"] = True
        except (OSError, ValueError) as exc:
            rollback["error"] = f"rollback: {exc}"[:300]
            self.tl.mark("control_error", error=rollback["error"])
        self.tl.switched(False)
        rollback.update(ended_at=time.time(), end_s=self.sim(time.time()))
        rollback["duration_s"] = round(rollback["ended_at"] - started, 3)
        self.record.update(rolled_back=True, rollback=rollback)
        self.tl.mark("rollback_done", name="rollback", seconds=rollback["duration_s"], sim_s=rollback["end_s"])
        self.write()

    def hold(self, reason: str) -> None:
        """After a migration: the switch is not played, the old door stays frozen (nowhere to carry dossiers back)."""
        self.stopped = True
        self.record.update(held=True, hold={"reason": reason, "at": time.time(), "at_s": self.sim(time.time())})
        self.tl.mark("runbook_held", name="runbook", reason=reason[:200])
        self.write()

    def lift(self) -> None:
        """At the stage's end: a switch back on the national portal is lifted (the next stage is another night)."""
        if self.record.get("rollback", {}).get("national_moved_back"):
            try:
                admin_call(self.national.url, "POST", "/api/admin/reopen", {}, token=self.tl.admin_token)
                self.tl.opened_door(self.national.url)
            except (OSError, ValueError) as exc:
                self.tl.mark("control_error", error=f"lifting the switch back: {exc}"[:200])

    def write(self) -> None:
        self.tl.write_cutover(self.record)

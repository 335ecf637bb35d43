"""The stage's timeline: faults switched on and off, and the cutover, at their planned minutes.

Runs in one process only (the master, or the local runner), as one
greenlet started with the stage. At each planned time it tells the portal
(``PUT /api/admin/faults`` with every portal fault active then) and writes a
marker to ``stages/<stage>/markers.jsonl`` — ``{"t", "kind", "name", ...}``
— which the report draws on its time charts. ``absence`` needs no call:
every process reads it from the plan (`RunContext.absent`); it gets its
markers here too.

The cutover, at ``cutover.at``: the legacy portal is closed (503 with
Retry-After, or 308 to the national portal), then every dossier still open
on it is exported whole and imported into the national portal, page by
page (the finished ones too, as the record citizens can still look up). Its figures go to ``stages/<stage>/cutover.json``: when it closed,
how many dossiers were open, how many were imported and their ids (the
reconciliation checks each of them is on the national portal). Users learn
of the move from the legacy portal's answers (``X-Portal-Moved``), not from
here: the harness must not know more than a citizen would.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import math
import time
from pathlib import Path
from typing import Any

import gevent

from rehearsal.run.migration import admin_call, migrate
from rehearsal.plan import StageFault, Stage


class Timeline:
    """Plays one stage's faults and cutover against the portal(s)."""

    def __init__(self, stage: Stage, *, time_scale: float, portal_url: str, national_url: str | None,
                 stage_dir: Path | None, admin_token: str | None = None) -> None:
        self.stage = stage
        self.time_scale = time_scale
        self.portal_url = portal_url.rstrip("/")
        self.national_url = (national_url or "").rstrip("/") or None
        self.stage_dir = stage_dir
        self.admin_token = admin_token
        self.greenlet: gevent.Greenlet | None = None
        #: Called with the national portal's URL once the legacy one has closed.
        self.on_switch: Any = None
        self.active: list[StageFault] = []
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

    def stop(self) -> None:
        if self.greenlet:
            self.greenlet.kill(block=False)
        if self.active:  # a fault still on at the end of the stage is switched off for the next one
            self.active = []
            self._push()
        if self.markers:
            self.markers.close()
            self.markers = None

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
            if fault.kind != "absence":
                self._push()
            detail = {"units": list(fault.units)} if fault.kind == "absence" else {}
            self.mark(what, name=fault.name, fault=fault.kind, sim_s=at_s, **detail)

    def _push(self) -> None:
        specs = [f.portal_spec() for f in self.active if f.kind != "absence"]
        try:
            admin_call(self.portal_url, "PUT", "/api/admin/faults", {"faults": specs}, token=self.admin_token)
        except (OSError, ValueError) as exc:  # the portal failing is data, not a crash
            self.mark("control_error", error=f"faults: {exc}"[:200])

    def _cutover(self) -> None:
        cut = self.stage.cutover
        assert cut is not None
        record: dict[str, Any] = {"planned_sim_s": cut.at_s, "mode": cut.mode, "legacy": self.portal_url,
                                  "national": self.national_url}
        if not self.national_url:
            record["error"] = "no national portal given (--national-url): nothing to switch to"
            self.mark("control_error", error=record["error"])
            self._write_cutover(record)
            return
        retry = max(1, math.ceil(cut.retry_after_s / self.time_scale))
        try:
            admin_call(self.portal_url, "POST", "/api/admin/close",
                       {"mode": cut.mode, "moved_to": self.national_url, "retry_after_s": retry},
                       token=self.admin_token)
        except (OSError, ValueError) as exc:
            record["error"] = f"closing the legacy portal failed: {exc}"[:300]
            self.mark("control_error", error=record["error"])
            self._write_cutover(record)
            return
        record["closed_at"] = time.time()
        self.mark("cutover_close", name="cutover", mode=cut.mode, sim_s=cut.at_s)
        # Faults planned for the rest of the stage now apply to the national portal,
        # and the portal's own count of sessions is read there.
        self.portal_url = self.national_url
        if self.on_switch:
            self.on_switch(self.national_url)
        if self.active:
            self._push()
        if cut.migrate:
            try:
                record.update(migrate(record["legacy"], self.national_url, token=self.admin_token))
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

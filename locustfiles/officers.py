"""Ward officers: work their unit's queue, oldest first.

Each unit has ``per_unit`` officer accounts (``cb<unit>-<n>``). The roles of
the one-stop chain are shared between them the way a two-person ward desk
shares them on a trial night: officer 1 is the one-stop desk (receive, return
the result, stop a dossier whose citizen asked to withdraw it), the others are
specialists who process, ask for supplements, hand liên thông dossiers to the
second agency and take them back, and decide (the leader's signature is part
of *decide*). With a single officer, that officer does everything.
Specialists split the dossiers by id so two of them never race for the same
one; the system still answers 409 if they do (a citizen's withdrawal too).

An officer works on the one-stop system of its unit now, through its
adapter (`locustfiles.clients.OneStop`, or the one a target names): HCMC's
platform, or before its units move onto it a former province's own system;
when that system closes at the cutover (``X-Portal-Moved``) the officer
signs in on HCMC's platform and works the migrated dossiers there. Account
names come from the target's accounts file when it has one.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

from typing import Any

import gevent
from locust import task
from locust.exception import RescheduleTask

from rehearsal.shared.status import DossierStatus

from locustfiles.clients import OneStop, QueueItem
from locustfiles.common import PortalUser


def _queue(*statuses: DossierStatus) -> tuple[int, ...]:
    """A queue filter: the statuses an officer looks for."""
    return tuple(int(s) for s in statuses)


#: The desk: submitted (to receive), withdrawal asked (to stop) and done (to return the result).
INTAKE = _queue(DossierStatus.SUBMITTED, DossierStatus.WITHDRAWAL_ASKED, DossierStatus.DONE)
#: The specialists: received (to process) and processing.
PROCESSING = _queue(DossierStatus.RECEIVED, DossierStatus.PROCESSING)
#: A unit's only officer does both.
EVERYTHING = _queue(DossierStatus.SUBMITTED, DossierStatus.RECEIVED, DossierStatus.PROCESSING,
                    DossierStatus.WITHDRAWAL_ASKED, DossierStatus.DONE)


class OfficerUser(PortalUser):
    """One officer account of one unit."""

    tag = "officer"
    role = "officer"

    def on_start(self) -> None:
        self.spread_start()
        stage = self.ctx.stage
        per_unit = stage.officers.per_unit
        slot = self.ctx.slots.claim() if self.ctx.slots is not None else None
        self.identity = slot if slot is not None else self.ctx.next_identity("officer")
        units = len(stage.units)
        self.unit = stage.units[self.identity % units]
        self.number = (self.identity // units) % per_unit + 1
        accounts = self.ctx.officer_accounts.get(self.unit)
        self.username = accounts[(self.number - 1) % len(accounts)] if accounts else f"cb{self.unit}-{self.number}"
        self.place(self.ctx.systems.start("officer", self.unit, stage))
        if per_unit == 1:
            self.statuses, self.specialist_slot = EVERYTHING, None
        elif self.number == 1:
            self.statuses, self.specialist_slot = INTAKE, None
        else:
            self.statuses, self.specialist_slot = PROCESSING, (self.number - 2, per_unit - 1)
        self.sign_in()

    @property
    def desk(self) -> OneStop:
        """The one-stop system this officer works on now (its adapter)."""
        return self.portal  # type: ignore[return-value]

    def sign_in(self) -> None:
        self.desk.sign_in(self.username, self.ctx.officer_password)

    def restore_session(self) -> bool:
        try:
            self.sign_in()
        except RescheduleTask:
            return False
        return True

    @task
    def work_queue(self) -> None:
        load = self.ctx.stage.officers
        if self.ctx.absent(self.unit, self.number):
            # Away (fault: absence): signed out, nothing done at the desk until they are back.
            if self.token:
                self.sign_out()
                self.emit("officer_away", officer=self.username, unit=self.unit)
            gevent.sleep(load.poll_interval_s / self.ctx.time_scale)
            return
        if self.token is None:
            self.sign_in()
        status, items = self.desk.queue(self.statuses, limit=20)
        if status == 401:
            return  # the session is gone (lost with it): signed in again at the next round
        worked = False
        # Work down the page fetched, oldest first, before looking at the queue again.
        for item in items:
            if self.specialist_slot and item["id"] % self.specialist_slot[1] != self.specialist_slot[0]:
                continue
            if self.act(item):
                worked = True
                self.think(load.think_time.low_s, load.think_time.high_s)
        if not worked:
            # Nothing to do: come back after the poll interval, as a person would.
            gevent.sleep(self.rng.uniform(0.5, 1.5) * load.poll_interval_s / self.ctx.time_scale)

    def act(self, item: QueueItem) -> bool:
        """Take the next step on one dossier; False if it is not ours to move now."""
        load = self.ctx.stage.officers
        status, agency = item["status"], item.get("agency_state")
        if status == DossierStatus.WITHDRAWAL_ASKED:  # the citizen asked to withdraw it: stop processing (→ 8)
            return self.step(item, "stop", "stopped", json={"reason": "Công dân yêu cầu rút hồ sơ"})
        if status == DossierStatus.SUBMITTED:
            if self.rng.random() < load.refuse_share:
                return self.step(item, "refuse-intake", "refused_intake",
                                 json={"reason": "Hồ sơ không thuộc thẩm quyền giải quyết"})
            return self.step(item, "receive", "received")
        if status == DossierStatus.RECEIVED:
            return self.step(item, "process", "processing")
        if status == DossierStatus.PROCESSING:
            if agency == "at_agency":
                return False
            if agency == "back":
                return self.step(item, "take-back", "taken_back")
            if item.get("lien_thong") and not item.get("agency_done"):
                return self.step(item, "transfer", "transferred")
            if item.get("supplement_count", 0) == 0 and self.rng.random() < load.supplement_share:
                return self.step(item, "request-supplement", "supplement_requested",
                                 json={"reason": "Bổ sung bản sao giấy tờ tùy thân"})
            approved = self.rng.random() >= 0.03
            return self.step(item, "decide", "decided",
                             json={"decision": "approved" if approved else "refused",
                                   "reason": "" if approved else "Không đủ điều kiện"})
        if status == DossierStatus.DONE:
            return self.step(item, "return", "returned")
        return False

    def step(self, item: QueueItem, action: str, event: str, **kwargs: Any) -> bool:
        taken, status = self.desk.step(item, action, kwargs.get("json"))
        if taken:
            extra = {"decision": kwargs["json"]["decision"]} if action == "decide" else {}
            self.emit(event, id=item["id"], code=item.get("code"), unit=self.unit, officer=self.username,
                      status=status, **extra)
            return True
        return False

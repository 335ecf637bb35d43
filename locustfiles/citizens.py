"""Citizens: sign in with VNeID, pick a procedure, file, pay, follow the dossier.

A citizen user is one person's visit: sign in, browse or search the
catalogue, open a procedure's form, fill it, attach the documents, submit,
pay the fee through the payment intermediary, then come back now and then to
follow the dossier (answering a supplement request when there is one) until
it ends: the result returned, or processing stopped. Then they sign out, and
the same Locust user comes back as the next citizen, as long as the stage's
filing window is open.

A citizen talks to the system its unit's citizens use now, through its
adapter (`locustfiles.clients`): the national portal, or, before a stage's
cutover, the city portal (or a former province's) in its own API shape;
when that front door closes it moves to the national portal and goes on
following its dossier there by code. Every event carries the dossier's code
and the system it happened on.

Most citizens file at their own unit; a share (``other_unit_share``) file
elsewhere, which the one-stop rules (Decree 118/2025) allow. A share
(``withdraw_share``) change their mind: right after filing (before paying)
or at one of their first checks, they ask to withdraw the dossier (status 7)
and follow it until an officer stops it (8). One who asks after the decision
is told no (409) and follows the dossier to its result like everyone else.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import os
import uuid
from typing import Any

import gevent
from locust import task
from locust.exception import RescheduleTask

from rehearsal.run.systems import cutover_units
from rehearsal.shared.status import COMPLETE, ENDED, WITHDRAWABLE, DossierStatus

from locustfiles.clients import Dossier
from locustfiles.common import PortalUser

#: Random bytes shared by all attachments of this process (slices of it).
_BLOB = os.urandom(64 * 1024)
_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ")
_GIVEN = ("An", "Bình", "Chi", "Dũng", "Hà", "Hương", "Khoa", "Lan", "Minh", "Ngọc", "Phúc", "Tâm")
_WITHDRAW_REASON = "Công dân không còn nhu cầu"


def citizen_id(ids: list[str], rank: int, serial: int, identity: int, visit: int) -> str:
    """The ID number a citizen user signs in as on its `visit`.

    With the target's test identities, a user keeps one (``ids[identity]``:
    a returning citizen filing again), so no two users share one while there
    are at least as many identities as citizen users. Made up, it is ``079``
    (HCMC) then the worker's rank (2 digits), the user's serial in its
    process (5) and the visit (2): unique across every process, workers that
    join mid-stage included, and a new person each visit (the 101st visit is
    the 1st's person again, long after that one signed out).
    """
    if ids:
        return ids[identity % len(ids)]
    return f"079{rank % 100:02d}{serial % 100_000:05d}{visit % 100:02d}"


class CitizenUser(PortalUser):
    """A citizen filing one dossier per visit and following it to its result."""

    tag = "citizen"
    role = "citizen"

    def on_start(self) -> None:
        self.spread_start()
        self.identity, self.serial = self.ctx.next_person("citizen")
        stage = self.ctx.stage
        self.home_unit = stage.units[self.identity % len(stage.units)]
        self.first_place = self.place(self.ctx.systems.start("citizen", self.home_unit, stage))
        # Before the cutover a citizen's front door takes dossiers of the units on the same system.
        moving = cutover_units(stage)
        self.neighbours = [u for u in stage.units if (u in moving) == (self.home_unit in moving)]
        self.visit = 0

    # -- the journey ----------------------------------------------------------
    @task
    def visit_portal(self) -> None:
        if not self.ctx.filing_open():
            gevent.sleep(1.0)  # the stage's filing window is closed: nothing new to file
            return
        if self.ctx.arrivals is not None:  # open model: wait to be the next citizen who arrives
            self.ctx.idle_citizens += 1
            try:
                self.intended = self.ctx.arrivals.get()
            finally:
                self.ctx.idle_citizens -= 1
        load = self.ctx.stage.citizens
        think = load.think_time
        self.sign_in()
        if self.rng.random() < 0.5:
            self.portal.search(self.rng.choice(("khai sinh", "chứng thực", "kết hôn", "hộ kinh doanh", "cư trú")))
            self.think(think.low_s / 3, think.high_s / 3)
        procedure = self.ctx.catalogue.pick(self.rng)
        form_spec = self.portal.procedure(procedure.code)
        self.think(think.low_s, think.high_s)  # filling the form
        unit = self.home_unit
        if self.rng.random() < load.other_unit_share:
            on_first = self.portal.url == self.first_place.url
            unit = self.rng.choice(self.neighbours if on_first else self.ctx.stage.units)
        dossier = self.submit(procedure.code, unit, form_spec)
        if dossier is None:
            return
        # Whether this citizen will ask to withdraw, and after how many checks (0: before paying).
        withdraw_after = self.rng.randint(0, 2) if self.rng.random() < load.withdraw_share else None
        asked = False
        if withdraw_after == 0:
            self.think(think.low_s / 3, think.high_s / 3)
            asked = self.withdraw(dossier)
        if not asked and dossier.payment_required:
            self.think(think.low_s / 3, think.high_s / 3)
            self.pay(dossier)
        self.follow(dossier, withdraw_after)
        self.sign_out()

    def sign_in(self) -> None:
        self.visit += 1
        self.citizen = citizen_id(self.ctx.citizen_ids, self.ctx.worker_index, self.serial, self.identity, self.visit)
        self.portal.sign_in(self.citizen)

    def restore_session(self) -> bool:
        try:
            self.portal.sign_in(self.citizen)
        except RescheduleTask:
            return False
        return True

    def submit(self, procedure_code: str, unit: int, spec: dict[str, Any]) -> Dossier | None:
        client_ref = uuid.UUID(int=self.rng.getrandbits(128)).hex
        form = json.dumps(self.fill(spec.get("fields", ())), ensure_ascii=False)
        files = self.attachments(spec.get("attachments", ()))
        # A lost answer is retried with the same client_ref: the system gives the
        # same dossier back, so a retry can never file it twice.
        for attempt in range(3):
            status, dossier = self.portal.file(procedure_code, unit, form, files, client_ref)
            if dossier is not None:
                self.emit("submitted", id=dossier.id, code=dossier.code, unit=unit, procedure=procedure_code,
                          client_ref=client_ref, citizen=self.citizen, home_unit=self.home_unit,
                          attempt=attempt + 1)
                return dossier
            if 400 <= status < 500 and status not in (408, 429):
                return None  # the system refused it: retrying the same form will not help
            self.think(10, 30)
        return None

    def pay(self, dossier: Dossier) -> None:
        if self.portal.pay(dossier):
            self.emit("paid", id=dossier.id, code=dossier.code, unit=None)

    def follow(self, dossier: Dossier, withdraw_after: int | None = None) -> None:
        """Come back every so often until the dossier ends (ENDED: complete, or stopped after a withdrawal).

        With `withdraw_after`, ask to withdraw it at that check if it is still open.
        """
        load = self.ctx.stage.citizens
        supplements = checks = 0
        while True:
            gevent.sleep(self.rng.uniform(0.5, 1.5) * load.follow_interval_s / self.ctx.time_scale)
            status = self.portal.look(dossier)
            if status is None:
                continue  # not readable now (or not on this portal yet: the link brings it)
            checks += 1
            if status in ENDED:
                seen = "seen_complete" if status in COMPLETE else "seen_stopped"
                self.emit(seen, id=dossier.id, code=dossier.code, status=status)
                return
            if checks == withdraw_after and status in WITHDRAWABLE:
                self.think(load.think_time.low_s / 3, load.think_time.high_s / 3)
                self.withdraw(dossier)
                continue
            if status == DossierStatus.SUPPLEMENT_REQUESTED and supplements < 3:
                supplements += 1
                self.think(load.think_time.low_s, load.think_time.high_s)
                self.supplement(dossier)

    def supplement(self, dossier: Dossier) -> None:
        form = json.dumps({"note": "Bổ sung giấy tờ theo yêu cầu"}, ensure_ascii=False)
        if self.portal.supplement(dossier, form, [("supplement", ("bo-sung.pdf", _BLOB[:4096], "application/pdf"))]):
            self.emit("supplemented", id=dossier.id, code=dossier.code)

    def withdraw(self, dossier: Dossier) -> bool:
        """Ask to withdraw the dossier (→ 7); refused (409) if it was decided meanwhile: then it runs to its result."""
        taken, status = self.portal.withdraw(dossier, _WITHDRAW_REASON)
        if taken:
            self.emit("withdrawal_asked", id=dossier.id, code=dossier.code, status=status)
        return taken

    # -- made-up but well-formed data ----------------------------------------
    def fill(self, fields: Any) -> dict[str, str]:
        form = {}
        for f in fields:
            kind = f.get("type", "text")
            if kind == "date":
                value = f"{self.rng.randint(1950, 2025)}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
            elif kind == "number":
                value = str(self.rng.randint(1, 5))
            elif kind == "id_number":
                value = "0" + "".join(str(self.rng.randint(0, 9)) for _ in range(11))
            elif kind == "phone":
                value = "09" + "".join(str(self.rng.randint(0, 9)) for _ in range(8))
            elif kind == "choice" and f.get("choices"):
                value = self.rng.choice(f["choices"])
            else:
                value = f"{self.rng.choice(_NAMES)} {self.rng.choice(_GIVEN)}"
            form[f["name"]] = value
        return form

    def attachments(self, specs: Any) -> list[tuple[str, tuple[str, bytes, str]]]:
        low, high = self.ctx.stage.citizens.attachment_kb
        out = []
        for a in specs:
            if a.get("required", True) or self.rng.random() < 0.5:
                size = min(self.rng.randint(low, high) * 1024, len(_BLOB))
                start = self.rng.randint(0, len(_BLOB) - size)
                out.append((a["name"], (f"{a['name']}.pdf", _BLOB[start:start + size], "application/pdf")))
        return out

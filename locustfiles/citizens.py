"""Citizens: sign in with VNeID, pick a procedure, file, pay, follow the dossier.

A citizen user is one person's visit: sign in, browse or search the
catalogue, open a procedure's form, fill it, attach the documents, submit,
pay the fee through the payment intermediary, then come back now and then to
follow the dossier (answering a supplement request when there is one) until
it ends: the result returned, or processing stopped. Then they sign out, and
the same Locust user comes back as the next citizen, as long as the stage's
filing window is open.

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
from urllib3 import encode_multipart_formdata

from rehearsal.shared.status import COMPLETE, ENDED, WITHDRAWABLE, DossierStatus

from locustfiles.common import PortalUser

#: Random bytes shared by all attachments of this process (slices of it).
_BLOB = os.urandom(64 * 1024)
_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ")
_GIVEN = ("An", "Bình", "Chi", "Dũng", "Hà", "Hương", "Khoa", "Lan", "Minh", "Ngọc", "Phúc", "Tâm")


class CitizenUser(PortalUser):
    """A citizen filing one dossier per visit and following it to its result."""

    tag = "citizen"

    def on_start(self) -> None:
        self.spread_start()
        self.identity = self.ctx.next_identity("citizen")
        units = self.ctx.stage.units
        self.home_unit = units[self.identity % len(units)]
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
            word = self.rng.choice(("khai sinh", "chứng thực", "kết hôn", "hộ kinh doanh", "cư trú"))
            self.call("GET", "/api/procedures", name="/api/procedures?q", params={"q": word})
            self.think(think.low_s / 3, think.high_s / 3)
        procedure = self.ctx.catalogue.pick(self.rng)
        status, body = self.call("GET", f"/api/procedures/{procedure.code}", name="/api/procedures/[code]")
        form_spec = self.require(status, body, "fields")
        self.think(think.low_s, think.high_s)  # filling the form
        unit = self.home_unit
        if self.rng.random() < load.other_unit_share:
            unit = self.rng.choice(self.ctx.stage.units)
        dossier = self.submit(procedure.code, unit, form_spec)
        if dossier is None:
            return
        # Whether this citizen will ask to withdraw, and after how many checks (0: before paying).
        withdraw_after = self.rng.randint(0, 2) if self.rng.random() < load.withdraw_share else None
        asked = False
        if withdraw_after == 0:
            self.think(think.low_s / 3, think.high_s / 3)
            asked = self.withdraw(dossier["id"])
        if not asked and dossier.get("payment_required"):
            self.think(think.low_s / 3, think.high_s / 3)
            self.pay(dossier)
        self.follow(dossier, withdraw_after)
        self.sign_out()

    def sign_in(self) -> None:
        self.visit += 1
        id_number = "079" + f"{self.identity:05d}{self.visit % 10000:04d}"[-9:]
        self.citizen = id_number
        self.vneid(id_number)

    def restore_session(self) -> bool:
        try:
            self.vneid(self.citizen)
        except RescheduleTask:
            return False
        return True

    def vneid(self, id_number: str) -> None:
        status, body = self.call("POST", "/api/auth/vneid/otp", name="/api/auth/vneid/otp",
                                 json={"id_number": id_number})
        otp = self.require(status, body, "otp_request_id", "otp")
        status, body = self.call("POST", "/api/auth/vneid/verify", name="/api/auth/vneid/verify",
                                 json={"otp_request_id": otp["otp_request_id"], "otp": otp["otp"]})
        self.signed_in(self.require(status, body, "token")["token"])

    def submit(self, procedure_code: str, unit: int, spec: dict[str, Any]) -> dict[str, Any] | None:
        client_ref = uuid.UUID(int=self.rng.getrandbits(128)).hex
        fields: list[tuple[str, Any]] = [
            ("procedure_code", procedure_code), ("unit_code", str(unit)),
            ("client_ref", client_ref), ("form", json.dumps(self.fill(spec.get("fields", ())),
                                                            ensure_ascii=False))]
        fields += self.attachments(spec.get("attachments", ()))
        body, content_type = encode_multipart_formdata(fields)
        # A lost answer is retried with the same client_ref: the portal gives the
        # same dossier back, so a retry can never file it twice.
        for attempt in range(3):
            status, answer = self.call("POST", "/api/dossiers", name="/api/dossiers", data=body,
                                       headers={"Content-Type": content_type})
            if status in (200, 201) and isinstance(answer, dict) and "id" in answer:
                self.ctx.telemetry.emit(
                    "submitted", id=answer["id"], code=answer.get("code"), unit=unit,
                    procedure=procedure_code, client_ref=client_ref, citizen=self.citizen,
                    home_unit=self.home_unit, attempt=attempt + 1)
                return answer
            if 400 <= status < 500 and status not in (408, 429):
                return None  # the portal refused it: retrying the same form will not help
            self.think(10, 30)
        return None

    def pay(self, dossier: dict[str, Any]) -> None:
        status, body = self.call("POST", f"/api/dossiers/{dossier['id']}/payment",
                                 name="/api/dossiers/[id]/payment")
        if status not in (200, 201) or not isinstance(body, dict) or "redirect_url" not in body:
            return
        # The intermediary's page redirects back to the portal's callback.
        status, answer = self.call("GET", body["redirect_url"], name="/pay/[id]")
        if status == 200 and isinstance(answer, dict) and answer.get("paid"):
            self.ctx.telemetry.emit("paid", id=dossier["id"], unit=None)

    def follow(self, dossier: dict[str, Any], withdraw_after: int | None = None) -> None:
        """Come back every so often until the dossier ends (ENDED: complete, or stopped after a withdrawal).

        With `withdraw_after`, ask to withdraw it at that check if it is still open.
        """
        load = self.ctx.stage.citizens
        supplements = checks = 0
        while True:
            gevent.sleep(self.rng.uniform(0.5, 1.5) * load.follow_interval_s / self.ctx.time_scale)
            status, body = self.call("GET", f"/api/dossiers/{dossier['id']}", name="/api/dossiers/[id]")
            if status != 200 or not isinstance(body, dict):
                continue
            checks += 1
            if body.get("status") in ENDED:
                seen = "seen_complete" if body["status"] in COMPLETE else "seen_stopped"
                self.ctx.telemetry.emit(seen, id=dossier["id"], status=body["status"])
                return
            if checks == withdraw_after and body.get("status") in WITHDRAWABLE:
                self.think(load.think_time.low_s / 3, load.think_time.high_s / 3)
                self.withdraw(dossier["id"])
                continue
            if body.get("status") == DossierStatus.SUPPLEMENT_REQUESTED and supplements < 3:
                supplements += 1
                self.think(load.think_time.low_s, load.think_time.high_s)
                self.supplement(dossier["id"])

    def supplement(self, dossier_id: int) -> None:
        fields = [("form", json.dumps({"note": "Bổ sung giấy tờ theo yêu cầu"}, ensure_ascii=False)),
                  ("supplement", ("bo-sung.pdf", _BLOB[:4096], "application/pdf"))]
        body, content_type = encode_multipart_formdata(fields)
        status, _ = self.call("POST", f"/api/dossiers/{dossier_id}/supplement",
                              name="/api/dossiers/[id]/supplement", data=body,
                              headers={"Content-Type": content_type}, expect=(409,))
        if status in (200, 201):
            self.ctx.telemetry.emit("supplemented", id=dossier_id)

    def withdraw(self, dossier_id: int) -> bool:
        """Ask to withdraw the dossier (→ 7); 409 if it was decided meanwhile: then it runs to its result."""
        status, body = self.call("POST", f"/api/dossiers/{dossier_id}/withdraw",
                                 name="/api/dossiers/[id]/withdraw", json={"reason": "Công dân không còn nhu cầu"},
                                 expect=(409,))
        if status in (200, 201):
            self.ctx.telemetry.emit("withdrawal_asked", id=dossier_id,
                                    status=body.get("status") if isinstance(body, dict) else None)
            return True
        return False

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

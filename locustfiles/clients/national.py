"""`NationalPortal`: citizens on the national portal (Cổng DVCQG), in its own shape (docs/portal-api.md).

VNeID sign-in (an OTP for the ID number, then its verification), the
catalogue, filing (multipart, ``client_ref`` as the idempotency key),
paying through the payment intermediary, following a dossier, giving a
supplement, asking to withdraw. The national portal addresses a dossier by
its own id; a dossier the citizen filed elsewhere (the city portal before
the cutover, a former province's portal) reaches the national portal
through the link under the same code, with an id of the national portal's
own: `find` looks it up in the citizen's list by code, once, and keeps it.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

from typing import Any

from urllib3 import encode_multipart_formdata

from locustfiles.clients.base import Dossier, SystemClient

Files = list[tuple[str, Any]]


class NationalPortal(SystemClient):
    """The national portal's citizen API."""

    kind = "national"
    role = "citizen"

    def sign_in(self, id_number: str) -> None:
        """VNeID: ask an OTP for the ID number, verify it; the journey task is rescheduled if it fails."""
        user = self.user
        status, body = self.request("POST", "/api/auth/vneid/otp", "/api/auth/vneid/otp",
                                    json={"id_number": id_number}, signed=False)
        otp = user.require(status, body, "otp_request_id", "otp")
        status, body = self.request("POST", "/api/auth/vneid/verify", "/api/auth/vneid/verify", signed=False,
                                    json={"otp_request_id": otp["otp_request_id"], "otp": otp["otp"]})
        self.signed_in(user.require(status, body, "token")["token"])

    def sign_out(self) -> None:
        if self.token:
            self.request("POST", "/api/auth/logout", "/api/auth/logout")
        self.token = None

    def search(self, word: str) -> None:
        """Search the catalogue (what a citizen reads, not used further)."""
        self.request("GET", "/api/procedures", "/api/procedures?q", params={"q": word})

    def procedure(self, code: str) -> dict[str, Any]:
        """A procedure's form: ``{"fields": [{name, type, choices, required}], "attachments": [{name, required}]}``."""
        status, body = self.request("GET", f"/api/procedures/{code}", "/api/procedures/[code]")
        return self.user.require(status, body, "fields")

    def file(self, procedure_code: str, unit: int, form: str, files: Files, client_ref: str
             ) -> tuple[int, Dossier | None]:
        """File a dossier; (HTTP status, the dossier if it was taken)."""
        fields: Files = [("procedure_code", procedure_code), ("unit_code", str(unit)), ("client_ref", client_ref),
                         ("form", form), *files]
        body, content_type = encode_multipart_formdata(fields)
        status, answer = self.request("POST", "/api/dossiers", "/api/dossiers", data=body,
                                      headers={"Content-Type": content_type})
        if status in (200, 201) and isinstance(answer, dict) and "id" in answer:
            code = str(answer.get("code") or answer["id"])
            self.refs[code] = answer["id"]
            return status, Dossier(code=code, system=self.system, ref=answer["id"], id=answer["id"],
                                   payment_required=bool(answer.get("payment_required")))
        return status, None

    def find(self, dossier: Dossier) -> Any:
        """The national portal's id of `dossier` (None while it has not reached the national portal)."""
        if dossier.system == self.system and dossier.ref is not None:
            return dossier.ref
        if dossier.code in self.refs:
            return self.refs[dossier.code]
        status, body = self.request("GET", "/api/dossiers", "/api/dossiers")
        items = body.get("items", []) if status == 200 and isinstance(body, dict) else []
        for item in items:
            if isinstance(item, dict) and item.get("code"):
                self.refs[str(item["code"])] = item.get("id")
        return self.refs.get(dossier.code)

    def pay(self, dossier: Dossier) -> bool:
        """Pay the fee through the intermediary; True once the portal says it is paid."""
        ref = self.find(dossier)
        if ref is None:
            return False
        status, body = self.request("POST", f"/api/dossiers/{ref}/payment", "/api/dossiers/[id]/payment")
        if status not in (200, 201) or not isinstance(body, dict) or "redirect_url" not in body:
            return False
        # The intermediary's page redirects back to the portal's callback.
        status, answer = self.request("GET", self._absolute(body["redirect_url"]), "/pay/[id]",
                                      allow_redirects=True)
        return status == 200 and isinstance(answer, dict) and bool(answer.get("paid"))

    def look(self, dossier: Dossier) -> int | None:
        """The dossier's status as this portal shows it now (None if it cannot be read now)."""
        ref = self.find(dossier)
        if ref is None:
            return None
        status, body = self.request("GET", f"/api/dossiers/{ref}", "/api/dossiers/[id]")
        if status != 200 or not isinstance(body, dict):
            return None
        return body.get("status")

    def supplement(self, dossier: Dossier, form: str, files: Files) -> bool:
        """Give what an officer asked for; False if the portal would not take it (409: not asked any more)."""
        ref = self.find(dossier)
        if ref is None:
            return False
        body, content_type = encode_multipart_formdata([("form", form), *files])
        status, _ = self.request("POST", f"/api/dossiers/{ref}/supplement", "/api/dossiers/[id]/supplement",
                                 data=body, headers={"Content-Type": content_type}, expect=(409,))
        return status in (200, 201)

    def withdraw(self, dossier: Dossier, reason: str) -> tuple[bool, int | None]:
        """Ask to withdraw (→ 7): (taken, status after); 409 if it was decided meanwhile."""
        ref = self.find(dossier)
        if ref is None:
            return False, None
        status, body = self.request("POST", f"/api/dossiers/{ref}/withdraw", "/api/dossiers/[id]/withdraw",
                                    json={"reason": reason}, expect=(409,))
        if status in (200, 201):
            return True, body.get("status") if isinstance(body, dict) else None
        return False, None

    def _absolute(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else self.url + url

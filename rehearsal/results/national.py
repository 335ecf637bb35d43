"""The national portal as reconciliation reads it: ``TraCuuHoSo`` through its integration API, batched.

The path that also works against a real national-portal staging: sign in
with an integration account (``POST /api/dvcqg/auth``, the unit's code in
``X-Ma-Don-Vi``), then look dossiers up 100 codes a call (a list of codes is
our reference's addition; a real staging that takes one code at a time is
asked with ``batch=1``). Answers are ``error_code`` in an HTTP 200: "0"
found, "-2" some codes missing (``missing`` lists them, ``result`` holds the
rest), "-4" the session expired (signed in again once), "-1" a connection
failure on their side (a link fault still on: retried with a short backoff).

Where the account comes from (decided here, the contract is silent):
`NationalAccount.from_entry` reads the ``integration`` object of the
national system's entry in ``systems.json`` (``{"username", "ma_don_vi",
"password_env"}``) or a target's same-named block; each has a default (the
reference's ``hcmc`` account of unit ``000.00.00.H29``, password from
``REHEARSAL_LINK_PASSWORD``, else the reference's ``rehearsal``). The
password is read once from the environment mapping the caller passes, never
from a file.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import PortalError
from ..shared.net import urlopen

VN = ZoneInfo("Asia/Ho_Chi_Minh")
#: Most codes one ``TraCuuHoSo`` call takes (the reference's limit; the service's own).
BATCH = 100
DEFAULT_USERNAME, DEFAULT_MA_DON_VI = "hcmc", "000.00.00.H29"
DEFAULT_PASSWORD_ENV = "REHEARSAL_LINK_PASSWORD"
#: The reference systems' password when the variable is not set (as `rehearsal.portal.cli`).
REFERENCE_PASSWORD = "rehearsal"


@dataclass(frozen=True)
class NationalAccount:
    """The integration account reconciliation signs in with."""

    username: str = DEFAULT_USERNAME
    ma_don_vi: str = DEFAULT_MA_DON_VI
    """The unit code sent in ``X-Ma-Don-Vi`` and ``madonvi``."""
    password_env: str = DEFAULT_PASSWORD_ENV
    password: str = field(default=REFERENCE_PASSWORD, repr=False)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any] | None, env: Mapping[str, str]) -> NationalAccount:
        """The account a ``systems.json`` national entry (or a target's block) names; defaults for what it omits."""
        block = (entry or {}).get("integration") or {}
        var = str(block.get("password_env") or DEFAULT_PASSWORD_ENV)
        return cls(username=str(block.get("username") or DEFAULT_USERNAME),
                   ma_don_vi=str(block.get("ma_don_vi") or DEFAULT_MA_DON_VI), password_env=var,
                   password=env.get(var) or REFERENCE_PASSWORD)


def receipt_time(text: Any) -> float | None:
    """An integration time (``yyyyMMddHHmmss[fff]``, Asia/Ho_Chi_Minh) as epoch seconds; None if not one."""
    if not isinstance(text, str) or len(text) not in (14, 17) or not text.isdigit():
        return None
    try:
        moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=VN)
    except ValueError:
        return None
    return moment.timestamp() + int(text[14:] or 0) / 1000.0


class NationalReader:
    """Looks dossiers up on the national portal through its integration API (``TraCuuHoSo``)."""

    def __init__(self, base_url: str, account: NationalAccount, *, timeout: float = 30.0, retries: int = 5,
                 batch: int = BATCH) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.timeout = timeout
        self.retries = retries
        self.batch = max(1, min(batch, BATCH))
        self.session = ""
        self.calls = 0

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        data = json.dumps(body, ensure_ascii=False).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        self.calls += 1
        with urlopen(req, timeout=self.timeout) as r:  # no redirect: the password goes here and nowhere else
            answer = json.loads(r.read())
        if not isinstance(answer, dict):
            raise ValueError(f"expected a JSON object, found {type(answer).__name__}")
        return answer

    def _call(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One call, retried while the national side says it cannot connect (-1 other than sign-in, 5xx, no answer)."""
        wait = 0.25
        for attempt in range(self.retries + 1):
            try:
                answer = self._post(path, body, headers)
            except (OSError, ValueError) as exc:
                if attempt == self.retries:
                    raise PortalError(f"cannot read the national portal for reconciliation "
                                      f"({self.base_url}{path}): {exc}") from None
            else:
                if str(answer.get("error_code")) != "-1" or path.endswith("/auth") or attempt == self.retries:
                    return answer
            time.sleep(wait)
            wait = min(wait * 2, 4.0)
        raise AssertionError("unreachable")

    def sign_in(self) -> None:
        """A session for the account; `PortalError` naming the password variable if refused."""
        a = self.account
        answer = self._call("/api/dvcqg/auth", {"username": a.username, "password": a.password},
                            {"X-Ma-Don-Vi": a.ma_don_vi})
        if str(answer.get("error_code")) != "0" or not answer.get("session"):
            raise PortalError(f"the national portal refused the integration account {a.username!r} of unit "
                              f"{a.ma_don_vi} ({answer.get('message', answer.get('error_code'))}); its password "
                              f"comes from ${a.password_env}")
        self.session = str(answer["session"])

    def _look_up(self, codes: list[str]) -> list[dict[str, Any]]:
        for fresh in (False, True):
            if not self.session or fresh:
                self.sign_in()
            data: Any = {"MaHoSo": codes if len(codes) > 1 or self.batch > 1 else codes[0]}
            answer = self._call("/api/dvcqg/service", {"session": self.session, "madonvi": self.account.ma_don_vi,
                                                       "service": "TraCuuHoSo", "data": data})
            code = str(answer.get("error_code"))
            if code == "-4" and not fresh:  # the session expired: once more with a new one
                continue
            if code in ("0", "-2"):
                found = answer.get("result") or []
                return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []
            raise PortalError(f"the national portal's TraCuuHoSo answered error_code {code}: "
                              f"{answer.get('message', '')}")
        raise AssertionError("unreachable")

    def look_up(self, codes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Every code the national portal has, as it shows it (with ``QuaTrinhXuLy``); a missing code is absent."""
        wanted = list(dict.fromkeys(c for c in codes if c))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), self.batch):
            for dossier in self._look_up(wanted[start:start + self.batch]):
                if isinstance(dossier.get("MaHoSo"), str):
                    out[dossier["MaHoSo"]] = dossier
        return out

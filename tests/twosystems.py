"""The two reference systems on loopback for the tests: a national portal, a provincial one-stop system with its
city-style front door and its link agent, each its own real process on its own SQLite file.

`start_systems` starts them the harness's way (`conftest.start_portal`:
port 0, a port file, ``/api/health`` polled); `Systems` holds a client for
each, an integration client for the national portal's API (`Integration`),
and the small journeys the tests share. `poll` waits for a condition to hold
(never a sleep that hopes): the tests run on two busy cores.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from conftest import PortalClient, start_portal, stop_portal

T = TypeVar("T")
VN = ZoneInfo("Asia/Ho_Chi_Minh")
U1 = 26506
MA_DON_VI = "000.00.00.H29"
#: A procedure with no fee and no second agency: receive, process, decide, return.
PLAIN = ("DD-03", {"applicant_name": "Nguyễn Văn A", "applicant_id": "079000000001", "other_party": "Trần Thị B",
                   "parcel": "Tờ 12, thửa 34"}, "petition")
#: A procedure with a fee (status 6 until paid).
PAID = ("CT-01", {"document_type": "Căn cước", "copies": "2"}, "original_scan")
#: Time compression of the tests' systems: the link pulls every 0.5 s; a failed call waits 0.08 s up to 1 s.
SCALE = "60"


def poll(what: str, check: Callable[[], T | None], timeout: float = 60.0, every: float = 0.1) -> T:
    """`check()` once it is truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {str(last)[:300]})")


def vn_time(text: str) -> float:
    """An integration API time (14 digits, or 17 with ms) in Asia/Ho_Chi_Minh, as seconds since the epoch."""
    moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=VN)
    return moment.timestamp() + int(text[14:] or 0) / 1000


@dataclass
class Integration:
    """A provincial system's account on the national portal's integration API."""

    national: PortalClient
    session: str = ""

    def sign_in(self, username: str = "hcmc", password: str = "rehearsal", ma_don_vi: str = MA_DON_VI) -> Any:
        _, answer = self.national.call("POST", "/api/dvcqg/auth", {"username": username, "password": password},
                                       headers={"X-Ma-Don-Vi": ma_don_vi})
        self.session = answer.get("session", "")
        return answer

    def call(self, service: str, data: Any, **more: Any) -> dict[str, Any]:
        if not self.session:
            self.sign_in()
        status, answer = self.national.call("POST", "/api/dvcqg/service", {"session": self.session,
                                                                          "madonvi": MA_DON_VI, "service": service,
                                                                          "data": data, **more})
        assert status == 200, answer
        return answer

    def look_up(self, *codes: str) -> dict[str, dict[str, Any]]:
        """TraCuuHoSo: the dossiers the national portal has, by code."""
        answer = self.call("TraCuuHoSo", {"MaHoSo": list(codes)})
        return {d["MaHoSo"]: d for d in answer.get("result", [])}


@dataclass
class Systems:
    """One national portal, one provincial system (its front door and link agent), and what the tests do there."""

    national: PortalClient
    provincial: PortalClient
    door: PortalClient
    integration: Integration
    extra: list[PortalClient] = field(default_factory=list)

    def stop(self) -> None:
        for p in (self.provincial, self.national, *self.extra):
            stop_portal(p, signal.SIGTERM)

    # -- the people --------------------------------------------------------------------------

    def file_on_national(self, citizen: str, procedure: tuple[str, dict[str, str], str] = PLAIN,
                         unit: int = U1) -> dict[str, Any]:
        code, form, paper = procedure
        status, d = self.national.call("POST", "/api/dossiers", token=citizen, files=[
            ("procedure_code", code), ("unit_code", str(unit)), ("form", json.dumps(form, ensure_ascii=False)),
            (paper, (f"{paper}.pdf", b"%PDF-1 " + code.encode(), "application/pdf"))])
        assert status == 201, d
        return d

    def file_on_door(self, door: PortalClient, id_number: str, procedure: tuple[str, dict[str, str], str] = PLAIN,
                     unit: int = U1) -> str:
        _, signed = door.call("POST", "/dichvucong/api/taikhoan/dangnhap", {"tenDangNhap": id_number,
                                                                           "matKhau": "rehearsal"})
        code, form, paper = procedure
        status, d = door.call("POST", "/dichvucong/api/hoso", headers={"X-Ma-Phien": signed["duLieu"]["maPhien"]},
                              files=[("maThuTuc", code), ("maDonVi", str(unit)), ("thongTin", json.dumps(form)),
                                     (paper, (f"{paper}.pdf", b"%PDF-1", "application/pdf"))])
        assert status == 201 and d["maLoi"] == 0, d
        return d["duLieu"]["maHoSo"]

    def on_provincial(self, code: str, portal: PortalClient | None = None) -> dict[str, Any] | None:
        """The provincial export row of `code` (with its steps), or None."""
        portal = portal or self.provincial
        after = 0
        while True:
            _, page = portal.call("GET", f"/api/admin/dossiers?steps=1&after_id={after}&limit=5000")
            for item in page["items"]:
                if item["code"] == code:
                    return item
            after = page["next_after_id"]
            if not after:
                return None

    def step(self, officer: str, dossier_id: int, action: str, body: dict[str, Any] | None = None,
             portal: PortalClient | None = None) -> dict[str, Any]:
        status, answer = (portal or self.provincial).call("POST", f"/api/officer/dossiers/{dossier_id}/{action}",
                                                          body or {}, token=officer)
        assert status == 200, (action, answer)
        return answer

    def work_to_the_end(self, officer: str, dossier_id: int) -> None:
        """Receive, process, approve and return a dossier of a plain procedure."""
        for action, body in (("receive", None), ("process", None), ("decide", {"decision": "approved"}),
                             ("return", None)):
            self.step(officer, dossier_id, action, body)

    def link(self) -> dict[str, Any]:
        return self.provincial.call("GET", "/api/stats")[1]["link"]

    def faults(self, portal: PortalClient, *faults: dict[str, Any]) -> None:
        status, answer = portal.call("PUT", "/api/admin/faults", {"faults": list(faults)})
        assert status == 200, answer

    def synced(self, code: str, status: int | None = None) -> dict[str, Any] | None:
        """The national portal's view of `code` once it shows the provincial status (or `status`) and every step
        the provincial system has for it in its outbox (None before)."""
        row = self.on_provincial(code)
        if row is None:
            return None
        want = str(status if status is not None else row["status"])
        seen = self.integration.look_up(code).get(code)
        if seen is None or seen["TrangThaiHoSo"] != want or str(row["status"]) != want:
            return None
        ours = {str(s["seq"]) for s in row["steps"] if s["attempts"] is not None}
        return seen if {s["MaBuocXuLy"] for s in seen["QuaTrinhXuLy"]} == ours else None


def start_systems(tmp: Path, *provincial_args: str, national_args: tuple[str, ...] = ()) -> Systems:
    """A national portal and an hcmc provincial system (front door, link agent) on loopback, ready."""
    national = start_portal(tmp / "national", "--system", "national", "--time-scale", SCALE, *national_args)
    door_port = tmp / "provincial" / "door.port"
    provincial = start_portal(tmp / "provincial", "--system", "provincial", "--name", "hcmc", "--time-scale", SCALE,
                              "--front-door-port", "0", "--front-door-port-file", str(door_port),
                              "--national-url", national.base_url, "--link-backoff-max", "60", *provincial_args)
    door = PortalClient(f"http://127.0.0.1:{door_port.read_text().strip()}", provincial.db_path, provincial.proc,
                        door_port)
    return Systems(national, provincial, door, Integration(national))


def start_former_province(tmp: Path, name: str = "brvt") -> tuple[PortalClient, PortalClient]:
    """A former province's one-stop system and its front door, with no link (before its units move)."""
    door_port = tmp / name / "door.port"
    system = start_portal(tmp / name, "--system", "provincial", "--name", name, "--time-scale", SCALE,
                          "--front-door-port", "0", "--front-door-port-file", str(door_port))
    return system, PortalClient(f"http://127.0.0.1:{door_port.read_text().strip()}", system.db_path, system.proc,
                                door_port)

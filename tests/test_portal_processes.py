"""A reference system served by several processes: one set of counts, one set of faults, every listener.

Real processes on loopback: ``python -m rehearsal.portal --processes 3
--listeners 2``. urllib opens a new connection for every call, so the
kernel (``SO_REUSEPORT``) spreads the calls over the processes; each answer
names its process in ``X-Portal-Process``. Nothing here depends on timing.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from conftest import PortalClient, start_portal, stop_portal

PREFIX = "/dichvucong/api"


def _call(url: str, method: str, path: str, body: Any = None, token: str | None = None
          ) -> tuple[int, Any, str | None]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read()), r.headers.get("X-Portal-Process")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers.get("X-Portal-Process")


@pytest.fixture
def national(tmp_path: Path):
    p = start_portal(tmp_path, "--system", "national", "--time-scale", "60", "--processes", "3", "--listeners", "2")
    yield p
    stop_portal(p)


def _sign_in(url: str, id_number: str) -> tuple[str, set[str]]:
    seen = set()
    _, otp, a = _call(url, "POST", "/api/auth/vneid/otp", {"id_number": id_number})
    status, body, b = _call(url, "POST", "/api/auth/vneid/verify",
                            {"otp_request_id": otp["otp_request_id"], "otp": otp["otp"]})
    assert status == 200, body  # the OTP asked for on one process is known to the one that verifies it
    seen.update(x for x in (a, b) if x is not None)
    return body["token"], seen


def test_sessions_and_timings_are_counted_once_over_every_process(national: PortalClient) -> None:
    _, health, _ = _call(national.base_url, "GET", "/api/health")
    assert health["processes"] == 3 and len(health["urls"]) == 2
    urls = health["urls"]
    processes: set[str] = set()
    tokens = []
    for i in range(30):
        token, seen = _sign_in(urls[i % 2], f"0791{i:08d}")
        tokens.append(token)
        processes |= seen
        for _ in range(2):  # the same session on several processes: still one session
            status, _, who = _call(urls[(i + 1) % 2], "GET", "/api/dossiers", token=token)
            assert status == 200
            processes.add(who)
    assert len(processes - {None}) >= 2, "the kernel should have spread 90+ connections over the processes"
    for url in urls:  # asked of any process, through any listener: the same exact figures
        _, stats, _ = _call(url, "GET", "/api/stats")
        assert stats["sessions_by_role"]["citizen"] == 30
        assert stats["requests"]["GET /api/dossiers"]["count"] == 60
        assert stats["requests"]["POST /api/auth/vneid/verify"]["count"] == 30
    # Signed out on one process: refused on every other one at once.
    status, _, _ = _call(urls[0], "POST", "/api/auth/logout", {}, token=tokens[0])
    assert status == 200
    for _ in range(6):
        status, _, _ = _call(urls[1], "GET", "/api/dossiers", token=tokens[0])
        assert status == 401
    _, stats, _ = _call(urls[1], "GET", "/api/stats")
    assert stats["sessions_by_role"]["citizen"] == 29
    # Server-side HDR histograms per interval and route, merged over the processes.
    _, timings, _ = _call(urls[0], "GET", "/api/timings?since=0")
    assert timings["interval_s"] == 1.0 and timings["processes"] == 3 and "accept queue" in timings["covers"]
    total = HdrHistogram(1, 3_600_000_000, 3)
    count = 0
    for interval in timings["intervals"]:
        route = interval["routes"].get("GET /api/dossiers")
        if route:
            total.add(HdrHistogram.decode(route["hdr"]))
            count += route["count"]
    assert count == 60 + 6 and total.get_total_count() == count
    last = timings["intervals"][-1]["t0"]
    _, later, _ = _call(urls[0], "GET", f"/api/timings?since={int(last)}")
    assert all(i["t0"] >= last for i in later["intervals"])


def test_faults_set_on_one_process_are_played_by_all(national: PortalClient) -> None:
    url = national.base_url
    status, body, _ = _call(url, "PUT", "/api/admin/faults",
                            {"faults": [{"kind": "errors", "rate": 1.0, "status": 502,
                                         "endpoints": ["GET /api/procedures"]}]})
    assert status == 200, body
    answered = set()
    for _ in range(12):  # the call answered once every process plays the fault: no request escapes it
        status, _, who = _call(url, "GET", "/api/procedures")
        assert status == 502
        answered.add(who)
    assert len(answered) >= 2
    _call(url, "PUT", "/api/admin/faults", {"faults": []})
    for _ in range(12):
        assert _call(url, "GET", "/api/procedures")[0] == 200


def test_a_provincial_system_and_its_front_door_on_several_processes(tmp_path: Path) -> None:
    door_port = tmp_path / "door.port"
    p = start_portal(tmp_path, "--system", "provincial", "--processes", "2", "--front-door-port", "0",
                     "--front-door-port-file", str(door_port))
    try:
        door = f"http://127.0.0.1:{door_port.read_text().strip()}"
        doors = set()
        for i in range(8):
            status, body, who = _call(door, "POST", PREFIX + "/taikhoan/dangnhap",
                                      {"tenDangNhap": f"0792{i:08d}", "matKhau": "rehearsal"})
            assert status == 200, body
            doors.add(who)
        _, health, _ = _call(door, "GET", "/api/health")
        assert health["processes"] == 2
        _, stats, _ = _call(door, "GET", "/api/stats")
        assert stats["sessions_by_role"]["citizen"] == 8  # the front door counts its own, over both processes
        officers = set()
        for unit_number in range(1, 3):
            for _ in range(3):
                status, body, who = _call(p.base_url, "POST", "/api/auth/officer",
                                          {"username": f"cb25747-{unit_number}", "password": "rehearsal"})
                assert status == 200, body
                officers.add(body["token"])
        _, stats, _ = _call(p.base_url, "GET", "/api/stats")
        assert stats["sessions_by_role"]["officer"] == len(officers) == 6
    finally:
        stop_portal(p)

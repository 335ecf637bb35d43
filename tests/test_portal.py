"""The reference portal through its real HTTP API: lifecycle, rules, errors, its own view."""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import statistics
import time
from pathlib import Path

import pytest

from conftest import PortalClient, start_portal, stop_portal

U1, U2 = 26506, 26536  # two units of Bà Rịa – Vũng Tàu
DEATH_FORM = {"deceased_name": "Nguyễn Văn A", "deceased_id": "079000000001", "date_of_death": "2025-06-20"}
COPY_FORM = {"document_type": "Căn cước", "copies": "2"}


def _submit_death(portal: PortalClient, token: str, multipart, unit: int = U1, ref: str | None = None):
    return portal.call("POST", "/api/dossiers", token=token,
                       files=multipart("HT-02", unit, DEATH_FORM, {"death_notice": b"%PDF" + b"x" * 500}, ref))


def test_whole_lifecycle_with_supplement_and_lien_thong(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    status, d = _submit_death(portal, citizen, multipart)
    assert status == 201 and d["status"] == 1 and not d["payment_required"]
    officer = portal.officer(U1)
    _, q = portal.call("GET", "/api/officer/queue?status=1&actionable=1", token=officer)
    assert [i["id"] for i in q["items"]] == [d["id"]]
    did = d["id"]

    def act(action: str, body: dict | None = None) -> tuple[int, dict]:
        return portal.call("POST", f"/api/officer/dossiers/{did}/{action}", body or {}, token=officer)

    assert act("receive")[1]["status"] == 2
    assert act("process")[1]["status"] == 4
    assert act("request-supplement", {"reason": "Thiếu giấy báo tử bản gốc"})[1]["status"] == 5
    _, seen = portal.call("GET", f"/api/dossiers/{did}", token=citizen)
    assert seen["status"] == 5 and seen["supplement_reason"] == "Thiếu giấy báo tử bản gốc"
    status, body = portal.call("POST", f"/api/dossiers/{did}/supplement", token=citizen,
                               files=[("form", "{}"), ("extra", ("bs.pdf", b"y" * 100, "application/pdf"))])
    assert (status, body["status"]) == (200, 4)
    # Liên thông: no decision before the second agency has had it and given it back.
    assert act("decide", {"decision": "approved"})[0] == 409
    assert act("transfer")[1]["agency_state"] == "at_agency"
    assert act("transfer")[0] == 409
    time.sleep(0.3)  # 600 s of agency delay / 3600
    assert act("take-back")[1]["agency_state"] is None
    assert act("decide", {"decision": "approved"})[1]["status"] == 9
    assert act("return")[1]["status"] == 10
    _, final = portal.call("GET", f"/api/dossiers/{did}", token=citizen)
    assert final["status_name"] == "Đã trả kết quả" and final["decision"] == "approved"
    assert [h["status"] for h in final["history"]] == [1, 2, 4, 5, 4, 4, 4, 9, 10]
    assert final["due_at"] > final["received_at"]


def test_fee_is_paid_through_the_intermediary(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    status, d = portal.call("POST", "/api/dossiers", token=citizen,
                            files=multipart("CT-01", U1, COPY_FORM, {"original_scan": b"scan"}))
    assert (status, d["status"], d["payment_required"]) == (201, 6, True)
    officer = portal.officer(U1)
    assert portal.call("POST", f"/api/officer/dossiers/{d['id']}/receive", {}, token=officer)[0] == 409
    _, pay = portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=citizen)
    # urllib follows the intermediary's redirect back to the portal's signed callback.
    status, done = portal.call("GET", pay["redirect_url"])
    assert (status, done) == (200, {"dossier_id": d["id"], "paid": True})
    _, seen = portal.call("GET", f"/api/dossiers/{d['id']}", token=citizen)
    assert seen["paid"] and seen["status"] == 1
    forged = portal.call("GET", f"/api/payments/callback?payment_id={pay['payment_id']}&result=success&signature=00")
    assert forged[0] == 400 and forged[1]["field"] == "signature"


def test_citizen_cannot_read_or_change_another_citizens_dossier(portal: PortalClient, multipart) -> None:
    alice, bob = portal.citizen("079000000011"), portal.citizen("079000000022")
    _, d = _submit_death(portal, alice, multipart)
    status, body = portal.call("GET", f"/api/dossiers/{d['id']}", token=bob)
    assert status == 403 and body["error"] == "forbidden"
    assert portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=bob)[0] == 403
    _, mine = portal.call("GET", "/api/dossiers", token=bob)
    assert mine["items"] == []


def test_officer_acts_only_in_their_own_unit(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    # A citizen may file at any unit of the province (one-stop rules)...
    status, d = _submit_death(portal, citizen, multipart, unit=U2)
    assert status == 201
    # ...but only that unit's officers may act on it.
    other = portal.officer(U1)
    status, body = portal.call("POST", f"/api/officer/dossiers/{d['id']}/receive", {}, token=other)
    assert status == 403 and "26536" in body["message"]
    _, q = portal.call("GET", "/api/officer/queue?status=1", token=other)
    assert q["items"] == []
    assert portal.call("POST", f"/api/officer/dossiers/{d['id']}/receive", {}, token=portal.officer(U2))[0] == 200
    # Citizens cannot call officer endpoints.
    assert portal.call("GET", "/api/officer/queue", token=citizen)[0] == 403


@pytest.mark.parametrize("change, status, field", [
    ({"procedure_code": "XX-99"}, 400, "procedure_code"),
    ({"unit_code": "99999"}, 400, "unit_code"),
    ({"unit_code": "abc"}, 400, "unit_code"),
    ({"form": '{"deceased_name": "A", "date_of_death": "2025-06-20"}'}, 400, "form.deceased_id"),
    ({"form": '{"deceased_name": "A", "deceased_id": "12", "date_of_death": "2025-06-20"}'}, 400, "form.deceased_id"),
    ({"form": '{"deceased_name": "A", "deceased_id": "079000000001", "date_of_death": "20/6/2025"}'}, 400,
     "form.date_of_death"),
    ({"form": "not json"}, 400, "form"),
    ({"client_ref": "x" * 65}, 400, "client_ref"),
    ({"drop_file": True}, 400, "death_notice"),
    ({"big_file": True}, 413, "death_notice"),
])
def test_bad_submissions_name_the_field(refusing_portal: PortalClient, change: dict, status: int,
                                        field: str) -> None:
    portal = refusing_portal
    citizen = portal.citizen()
    fields = {"procedure_code": "HT-02", "unit_code": str(U1),
              "form": '{"deceased_name": "A", "deceased_id": "079000000001", "date_of_death": "2025-06-20"}'}
    fields.update({k: v for k, v in change.items() if k in fields or k == "client_ref"})
    files = list(fields.items())
    if not change.get("drop_file"):
        size = 2 * 1024 * 1024 + 1 if change.get("big_file") else 100
        files.append(("death_notice", ("d.pdf", b"x" * size, "application/pdf")))
    got, body = portal.call("POST", "/api/dossiers", token=citizen, files=files)
    assert got == status, body
    assert body["field"] == field and body["message"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/auth/vneid/otp", {"id_number": "123"}, "id_number"),
    ("/api/auth/vneid/otp", {}, "id_number"),
    ("/api/auth/vneid/verify", {"otp_request_id": "nope", "otp": "000000"}, "otp_request_id"),
    ("/api/auth/officer", {"username": "cb26506-1", "password": "wrong"}, "password"),
])
def test_bad_sign_ins_name_the_field(refusing_portal: PortalClient, path: str, body: dict, field: str) -> None:
    portal = refusing_portal
    status, answer = portal.call("POST", path, body)
    assert 400 <= status < 500 and answer["field"] == field


def test_same_client_ref_gives_the_same_dossier(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    first = _submit_death(portal, citizen, multipart, ref="retry-1")
    again = _submit_death(portal, citizen, multipart, ref="retry-1")
    assert (first[0], again[0]) == (201, 200)
    assert first[1]["id"] == again[1]["id"]
    count = sqlite3.connect(portal.db_path).execute("SELECT count(*) FROM dossiers").fetchone()[0]
    assert count == 1


def test_wrong_step_is_409_with_the_current_status(portal: PortalClient, multipart) -> None:
    _, d = _submit_death(portal, portal.citizen(), multipart)
    status, body = portal.call("POST", f"/api/officer/dossiers/{d['id']}/return", {}, token=portal.officer(U1))
    assert status == 409 and "status 1" in body["message"]


def test_sessions_counted_and_logout_ends_them(portal: PortalClient) -> None:
    tokens = [portal.citizen(f"0790000001{i:02d}") for i in range(5)] + [portal.officer(U1), portal.officer(U1, 2)]
    _, stats = portal.call("GET", "/api/stats")
    assert stats["sessions_active"] == 7 and stats["sessions_by_role"] == {"citizen": 5, "officer": 2}
    assert portal.call("POST", "/api/auth/logout", token=tokens[0])[0] == 200
    assert portal.call("GET", "/api/dossiers", token=tokens[0])[0] == 401
    _, stats = portal.call("GET", "/api/stats")
    assert stats["sessions_active"] == 6
    assert portal.call("GET", "/api/dossiers", token="made-up")[0] == 401


def test_stats_and_metrics_count_dossiers_and_requests(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    for _ in range(3):
        _submit_death(portal, citizen, multipart)
    _, stats = portal.call("GET", "/api/stats")
    assert stats["dossiers_total"] == 3 and stats["dossiers_by_status"] == {"1": 3}
    assert stats["dossiers_by_unit"] == {str(U1): {"submitted": 3, "complete": 0}}
    timing = stats["requests"]["POST /api/dossiers"]
    assert timing["count"] == 3 and 0 < timing["p50_ms"] <= timing["p99_ms"]
    status, text = portal.call("GET", "/metrics")
    assert status == 200
    lines = text.splitlines()
    assert "# TYPE portal_request_duration_seconds histogram" in lines
    assert 'portal_dossiers{status="1",system="national"} 3.0' in lines
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$')
    assert all(line.startswith("# ") or sample.match(line) for line in lines), lines
    count = next(l for l in lines if l.startswith('portal_request_duration_seconds_count{endpoint="POST /api/dossiers",system="national"}'))
    inf = next(l for l in lines if 'endpoint="POST /api/dossiers",le="+Inf"' in l)
    assert count.split()[-1] == inf.split()[-1] == "3.0"


def test_admin_export_pages_through_everything(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    ids = [_submit_death(portal, citizen, multipart, ref=f"r{i}")[1]["id"] for i in range(7)]
    seen, after = [], 0
    while True:
        _, page = portal.call("GET", f"/api/admin/dossiers?after_id={after}&limit=3")
        seen += page["items"]
        after = page["next_after_id"]
        if not after:
            break
    assert [r["id"] for r in seen] == ids
    assert {r["client_ref"] for r in seen} == {f"r{i}" for i in range(7)}


def test_a_2xx_dossier_survives_kill_9_and_restart(tmp_path: Path, multipart) -> None:
    portal = start_portal(tmp_path / "a")
    citizen = portal.citizen()
    status, d = _submit_death(portal, citizen, multipart)
    assert status == 201
    stop_portal(portal, signal.SIGKILL)  # no clean shutdown: only what was committed survives
    again = start_portal(tmp_path / "b", db=portal.db_path)
    try:
        # The session and the dossier are both still there.
        status, seen = again.call("GET", f"/api/dossiers/{d['id']}", token=citizen)
        assert status == 200 and seen["code"] == d["code"]
    finally:
        stop_portal(again)


def test_no_nagle_delay_on_keep_alive_requests(portal: PortalClient) -> None:
    """50 sequential requests on one keep-alive connection: none waits for a delayed ACK (~40 ms)."""
    host, port = portal.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    times = []
    request = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        for _ in range(50):
            t0 = time.perf_counter()
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                data += sock.recv(65536)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        sock.close()
    assert statistics.median(times) < 20, times
    assert sum(t > 35 for t in times) <= 2, times

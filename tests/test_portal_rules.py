"""The portal's rules through its real API: one charge per dossier, one dossier per client_ref, withdrawal
and stop (all ten statuses reachable), writes that are whole or nothing, and a start and stop without a
traceback."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import PortalClient, free_port, start_portal, stop_portal
from test_portal_input import _import_row

from rehearsal.portal.db import transaction

U1 = 26506
DEATH_FORM = {"deceased_name": "Nguyễn Văn A", "deceased_id": "079000000001", "date_of_death": "2025-06-20"}
COPY_FORM = {"document_type": "Căn cước", "copies": "2"}
ROOT = Path(__file__).resolve().parent.parent


def _file(portal: PortalClient, token: str, multipart: Any, procedure: str = "HT-02", ref: str | None = None,
          form: dict | None = None, content: bytes = b"%PDF-1") -> tuple[int, Any]:
    name = "death_notice" if procedure == "HT-02" else "original_scan"
    fields = multipart(procedure, U1, form or (DEATH_FORM if procedure == "HT-02" else COPY_FORM), {name: content}, ref)
    return portal.call("POST", "/api/dossiers", token=token, files=fields)


# -- one charge per dossier ------------------------------------------------------------------

def test_a_dossier_has_one_open_payment_and_is_charged_once(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    _, d = _file(portal, citizen, multipart, "CT-01")
    _, first = portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=citizen)
    _, again = portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=citizen)
    assert first["payment_id"] == again["payment_id"] and first["amount_vnd"] == 2000
    assert portal.call("GET", first["redirect_url"]) == (200, {"dossier_id": d["id"], "paid": True})
    assert portal.call("GET", first["redirect_url"]) == (200, {"dossier_id": d["id"], "paid": True})  # no 2nd charge
    status, body = portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=citizen)
    assert status == 409 and body["field"] == "status"
    with sqlite3.connect(portal.db_path) as db:
        assert db.execute("SELECT count(*), sum(status = 'paid') FROM payments").fetchone() == (1, 1)
        history = [r[0] for r in db.execute("SELECT note FROM history WHERE dossier_id = ?", (d["id"],))]
    assert history.count("paid 2000 VND") == 1


def test_a_payment_left_open_by_a_withdrawal_is_never_charged(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    _, d = _file(portal, citizen, multipart, "CT-01")
    _, pay = portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=citizen)
    assert portal.call("POST", f"/api/dossiers/{d['id']}/withdraw", {}, token=citizen)[1]["status"] == 7
    status, body = portal.call("GET", pay["redirect_url"])
    assert 400 <= status < 500 and body["field"] == "payment_id", body
    with sqlite3.connect(portal.db_path) as db:
        assert db.execute("SELECT status FROM payments").fetchall() == [("cancelled",)]
        assert db.execute("SELECT paid FROM dossiers WHERE id = ?", (d["id"],)).fetchone() == (0,)


def test_the_payment_secret_comes_from_the_environment_and_is_random_without_it(tmp_path: Path, multipart) -> None:
    def signed(portal: PortalClient, key: bytes) -> int:
        citizen = portal.citizen()
        _, d = _file(portal, citizen, multipart, "CT-01")
        _, pay = portal.call("POST", f"/api/dossiers/{d['id']}/payment", token=citizen)
        sig = hmac.new(key, f"{pay['payment_id']}|success".encode(), hashlib.sha256).hexdigest()
        return portal.call("GET", f"/api/payments/callback?payment_id={pay['payment_id']}&result=success"
                                  f"&signature={sig}")[0]

    old_key = b"reference-portal-payment-secret"  # what was hard-coded: a citizen could sign their own success
    random_key = start_portal(tmp_path / "random")
    try:
        assert signed(random_key, old_key) == 400
    finally:
        stop_portal(random_key)
    os.environ["REHEARSAL_PAYMENT_SECRET"] = "pay-7c1d-secret"
    try:
        from_env = start_portal(tmp_path / "env")
    finally:
        del os.environ["REHEARSAL_PAYMENT_SECRET"]
    try:
        assert signed(from_env, b"pay-7c1d-secret") == 200
    finally:
        stop_portal(from_env)
    for log in tmp_path.rglob("*.log"):
        assert b"pay-7c1d-secret" not in log.read_bytes(), log


# -- one dossier per client_ref ---------------------------------------------------------------

def test_a_client_ref_sent_again_with_another_submission_is_409(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    first = _file(portal, citizen, multipart, ref="ref-1")
    assert _file(portal, citizen, multipart, ref="ref-1") == (200, first[1])  # a retry: the same dossier
    other = {**DEATH_FORM, "deceased_name": "Trần Thị B"}
    for status, body in (_file(portal, citizen, multipart, ref="ref-1", form=other),
                         _file(portal, citizen, multipart, ref="ref-1", content=b"%PDF-2"),
                         _file(portal, citizen, multipart, "CT-01", ref="ref-1")):
        assert (status, body["error"], body["field"]) == (409, "conflict", "client_ref"), body
    # Another citizen's client_ref is theirs: no conflict.
    assert _file(portal, portal.citizen("079000000077"), multipart, ref="ref-1", form=other)[0] == 201
    with sqlite3.connect(portal.db_path) as db:
        assert db.execute("SELECT count(*) FROM dossiers").fetchone()[0] == 2


# -- a dossier's attachments have a total ---------------------------------------------------

def test_a_dossiers_attachments_stop_at_their_total(portal: PortalClient, multipart) -> None:
    citizen, officer = portal.citizen(), portal.officer(U1)
    mib = 2**20
    _, d = _file(portal, citizen, multipart, content=b"x" * (2 * mib))
    for action, body in (("receive", {}), ("process", {}), ("request-supplement", {"reason": "Thiếu"})):
        assert portal.call("POST", f"/api/officer/dossiers/{d['id']}/{action}", body, token=officer)[0] == 200
    files = [(f"page{i}", (f"p{i}.pdf", b"y" * (2 * mib - 100), "application/pdf")) for i in range(5)]
    status, body = portal.call("POST", f"/api/dossiers/{d['id']}/supplement", token=citizen, files=files, timeout=60)
    assert (status, body["error"], body["field"]) == (413, "too_large", "page4"), body  # 2 + 4 × 2 MiB fit
    assert portal.call("POST", f"/api/dossiers/{d['id']}/supplement", token=citizen, files=files[:4],
                       timeout=60)[0] == 200
    with sqlite3.connect(portal.db_path) as db:
        assert db.execute("SELECT sum(size) FROM attachments WHERE dossier_id = ?", (d["id"],)).fetchone()[0] <= 10 * mib


# -- withdrawal and stop: the ten statuses ----------------------------------------------------

def _to_status(portal: PortalClient, citizen: str, officer: str, multipart, target: int) -> int:
    """A new dossier of `citizen` at U1, moved by the officer (and the citizen) to status `target`."""
    procedure = "CT-01" if target == 6 else "HT-02"
    _, d = _file(portal, citizen, multipart, procedure)
    did = d["id"]

    def act(action: str, body: dict | None = None) -> None:
        status, answer = portal.call("POST", f"/api/officer/dossiers/{did}/{action}", body or {}, token=officer)
        assert status == 200, answer

    steps = {1: [], 6: [], 2: ["receive"], 3: [("refuse-intake", {"reason": "Sai thẩm quyền"})],
             4: ["receive", "process"], 5: ["receive", "process", ("request-supplement", {"reason": "Thiếu"})],
             9: ["receive", "process", "transfer", "wait", "take-back", ("decide", {"decision": "approved"})]}
    steps[10] = [*steps[9], "return"]
    for step in steps.get(target, []):
        if step == "wait":
            time.sleep(0.3)  # the second agency's 600 s at 3600×
        else:
            act(*step) if isinstance(step, tuple) else act(step)
    if target in (7, 8):
        assert portal.call("POST", f"/api/dossiers/{did}/withdraw", {"reason": "Không cần nữa"},
                           token=citizen)[0] == 200
        if target == 8:
            act("stop")
    status, seen = portal.call("GET", f"/api/dossiers/{did}", token=citizen)
    assert status == 200 and seen["status"] == target, seen
    return did


@pytest.mark.parametrize("start", [1, 2, 4, 5, 6])
def test_a_citizen_may_withdraw_until_the_decision_and_the_officer_stops_it(portal: PortalClient, multipart,
                                                                           start: int) -> None:
    citizen, officer = portal.citizen(), portal.officer(U1)
    did = _to_status(portal, citizen, officer, multipart, start)
    status, body = portal.call("POST", f"/api/dossiers/{did}/withdraw", {"reason": "Đã nộp nhầm"}, token=citizen)
    assert (status, body["status"], body["status_name"]) == (200, 7, "Công dân yêu cầu rút hồ sơ")
    assert portal.call("POST", f"/api/dossiers/{did}/withdraw", token=citizen)[0] == 409  # asked already
    _, queue = portal.call("GET", "/api/officer/queue", token=officer)  # the default queue lists 7
    assert did in [i["id"] for i in queue["items"] if i["status"] == 7]
    assert portal.call("POST", f"/api/officer/dossiers/{did}/receive", {}, token=officer)[0] == 409
    status, body = portal.call("POST", f"/api/officer/dossiers/{did}/stop", {}, token=officer)
    assert (status, body["status"], body["status_name"]) == (200, 8, "Dừng xử lý")
    _, seen = portal.call("GET", f"/api/dossiers/{did}", token=citizen)
    assert [h["status"] for h in seen["history"]][-2:] == [7, 8]
    assert seen["history"][-2]["note"] == "Đã nộp nhầm"
    for action in ("stop", "receive", "process", "decide"):
        assert portal.call("POST", f"/api/officer/dossiers/{did}/{action}", {"decision": "approved"},
                           token=officer)[0] == 409


@pytest.mark.parametrize("start", [3, 7, 8, 9, 10])
def test_a_decided_or_withdrawn_dossier_cannot_be_withdrawn(portal: PortalClient, multipart, start: int) -> None:
    citizen, officer = portal.citizen(), portal.officer(U1)
    did = _to_status(portal, citizen, officer, multipart, start)
    status, body = portal.call("POST", f"/api/dossiers/{did}/withdraw", {}, token=citizen)
    assert (status, body["error"], body["field"]) == (409, "wrong_state", "status"), body


def test_only_a_withdrawal_can_be_stopped_and_only_by_its_unit(portal: PortalClient, multipart) -> None:
    citizen, officer = portal.citizen(), portal.officer(U1)
    did = _to_status(portal, citizen, officer, multipart, 4)
    assert portal.call("POST", f"/api/officer/dossiers/{did}/stop", {}, token=officer)[0] == 409
    portal.call("POST", f"/api/dossiers/{did}/withdraw", token=citizen)
    assert portal.call("POST", f"/api/officer/dossiers/{did}/stop", {}, token=portal.officer(26536))[0] == 403
    assert portal.call("POST", f"/api/dossiers/{did}/withdraw", token=portal.citizen("079000000088"))[0] == 403
    assert portal.call("POST", f"/api/officer/dossiers/{did}/stop", {}, token=citizen)[0] == 403


def test_all_ten_statuses_are_reachable(portal: PortalClient, multipart) -> None:
    citizen, officer = portal.citizen(), portal.officer(U1)
    for target in range(1, 11):
        _to_status(portal, citizen, officer, multipart, target)
    _, stats = portal.call("GET", "/api/stats")
    assert set(stats["dossiers_by_status"]) == {str(s) for s in range(1, 11)}
    assert stats["dossiers_by_unit"][str(U1)]["complete"] == 2  # 3 and 10; 8 is an end, not a completion


# -- whole writes ----------------------------------------------------------------------------

def test_a_transaction_keeps_all_or_nothing(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite", isolation_level=None)
    db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(ZeroDivisionError):
        with transaction(db):
            db.execute("INSERT INTO t VALUES (1)")
            db.execute("INSERT INTO t VALUES (?)", (1 // 0,))
    with transaction(db):
        db.execute("INSERT INTO t VALUES (2)")
        db.execute("INSERT INTO t VALUES (3)")
    assert [r[0] for r in db.execute("SELECT x FROM t")] == [2, 3] and not db.in_transaction


def test_no_dossier_is_ever_left_without_its_code(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    for i in range(5):
        _file(portal, citizen, multipart, ref=f"c{i}")
    with sqlite3.connect(portal.db_path) as db:
        assert db.execute("SELECT count(*) FROM dossiers WHERE code = '' OR fingerprint IS NULL").fetchone() == (0,)


def test_an_import_is_all_or_nothing(portal: PortalClient, multipart) -> None:
    good = _import_row(id=4444, code="H79-4444")
    status, body = portal.call("POST", "/api/admin/import", {"items": [good, _import_row(id=4445, code="H79-4445",
                                                                                         status="done")]})
    assert (status, body["field"]) == (400, "items[1].status"), body
    _, d = _file(portal, portal.citizen(), multipart)  # a code this portal gave a dossier of its own
    status, body = portal.call("POST", "/api/admin/import", {"items": [good, _import_row(id=4446, code=d["code"])]})
    assert (status, body["error"], body["field"]) == (409, "conflict", "items[1].code"), body
    with sqlite3.connect(portal.db_path) as db:
        assert db.execute("SELECT count(*) FROM dossiers WHERE id IN (4444, 4445, 4446)").fetchone()[0] == 0
    assert portal.call("POST", "/api/admin/import", {"items": [good]})[1] == {"imported": 1, "already": 0}


def test_a_full_export_page_fits_the_import_limit(portal: PortalClient) -> None:
    # The migration copies pages of 500 full rows; each row here is about as big as real ones get.
    row = _import_row(history=[{"at": "2025-06-18T10:00:00.000Z", "status": s, "actor": "officer:cb26506-1",
                                "note": "x" * 200} for s in (1, 2, 4, 5, 4, 4, 4, 9)])
    page = {"items": [{**row, "id": 50_000 + i, "code": f"H79-{50_000 + i}"} for i in range(500)]}
    assert len(json.dumps(page)) < 16 * 2**20 / 4
    assert portal.call("POST", "/api/admin/import", page, timeout=60) == (200, {"imported": 500, "already": 0})


# -- starting and stopping -------------------------------------------------------------------

@pytest.mark.parametrize("command", [["-m", "rehearsal.portal"], ["-m", "rehearsal.cli", "portal"]])
def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, *command, "--port", str(port), "--db", str(tmp_path / "p.sqlite")],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f"cannot listen on 127.0.0.1:{port}: Address already in use"), \
        proc.stderr


def test_a_clean_stop_leaves_a_clean_log(tmp_path: Path) -> None:
    log = tmp_path / "portal.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rehearsal.portal", "--port", str(port), "--db",
                                 str(tmp_path / "p.sqlite")], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    conns: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"reference portal" not in log.read_bytes():
            time.sleep(0.1)
        # 30 open connections: the heap freezer freezes the heap at its next check (every 5 s).
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        for c in conns:
            c.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            c.recv(4096)
        while time.monotonic() < deadline and b"froze the heap" not in log.read_bytes():
            time.sleep(0.2)
    finally:
        for c in conns:
            c.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log.read_text(errors="replace")
    assert "froze the heap" in text, text
    assert proc.returncode == 0 and "Exception ignored" not in text and "Traceback" not in text, text


def test_no_secret_reaches_the_portals_log(tmp_path: Path) -> None:
    secrets = {"REHEARSAL_OFFICER_PASSWORD": "Mk-4d2b-officers", "REHEARSAL_ADMIN_TOKEN": "tok-5e8f-admin",
               "REHEARSAL_PAYMENT_SECRET": "pay-6a0c-secret"}
    os.environ.update(secrets)
    try:
        portal = start_portal(tmp_path)
    finally:
        for name in secrets:
            del os.environ[name]
    try:
        token = portal.call("POST", "/api/auth/officer", {"username": f"cb{U1}-1", "password": secrets[
            "REHEARSAL_OFFICER_PASSWORD"]})[1]["token"]
        assert portal.call("GET", "/api/officer/queue", token=token)[0] == 200
        assert portal.call("GET", "/api/admin/faults", headers={"X-Admin-Token": "wrong"})[0] == 403
        assert portal.call("GET", "/api/admin/faults", headers={"X-Admin-Token": secrets[
            "REHEARSAL_ADMIN_TOKEN"]})[0] == 200
        assert portal.call("GET", "/api/admin/faults", headers={"X-Admin-Token": "é"})[0] == 403
    finally:
        stop_portal(portal)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".sqlite":
            data = path.read_bytes()
            assert not any(v.encode() in data for v in secrets.values()), path
    assert not any(v in " ".join(portal.args) for v in secrets.values())  # by the variable's name, never by value


def test_a_write_that_finds_the_disk_full_says_so() -> None:
    """SQLite ends the transaction itself on SQLITE_FULL: the error is the full disk, not 'cannot rollback'."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA max_page_count=2")  # a database this small is full at the next big row
    with pytest.raises(sqlite3.OperationalError, match="full"), transaction(db):
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    with transaction(db):  # and the connection is usable afterwards
        db.execute("INSERT INTO t VALUES (1)")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1

"""The two systems and the link between them, as real processes on loopback with their own SQLite files.

A dossier filed on the national portal reaches the provincial officers; every
step they take reaches the national portal, with its lag measurable from both
systems' clocks; citizen-side changes (a fee paid, a supplement, a
withdrawal) travel the other way; a dossier filed on the city-style front
door becomes visible on the national portal. Each waits for what it expects
(`twosystems.poll`), never on a guessed sleep.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from twosystems import PAID, U1, Systems, poll, start_systems, vn_time

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory):
    s = start_systems(tmp_path_factory.mktemp("systems"))
    yield s
    s.stop()


def _queued(systems: Systems, officer: str, code: str, status: int = 1) -> dict:
    """The dossier `code` once it is in the officer's queue at `status`."""
    def find() -> dict | None:
        _, q = systems.provincial.call("GET", f"/api/officer/queue?status={status}&limit=200", token=officer)
        return next((i for i in q["items"] if i["code"] == code), None)
    return poll(f"{code} in the provincial queue", find)


def test_each_system_says_what_it_is(systems: Systems) -> None:
    assert systems.national.call("GET", "/api/health")[1] == {"ok": True, "system": "national", "name": "national"}
    assert systems.provincial.call("GET", "/api/health")[1] == {"ok": True, "system": "provincial", "name": "hcmc"}
    assert systems.door.call("GET", "/api/health")[1] == {"ok": True, "system": "city", "name": "hcmc"}
    # Each takes its own people only: no officers on the national portal, no citizens on the provincial system.
    assert systems.national.call("POST", "/api/auth/officer", {"username": f"cb{U1}-1", "password": "rehearsal"}
                                 )[0] == 404
    assert systems.provincial.call("POST", "/api/auth/vneid/otp", {"id_number": "079000000001"})[0] == 404
    _, stats = systems.national.call("GET", "/api/stats")
    assert stats["system"] == "national" and "feed_seq" in stats
    link = systems.link()
    assert link["configured"] and link["agent_alive"] and {"outbox_pending", "outbox_oldest_s", "outbox_acked",
                                                           "pushes_failed", "cursor", "feed_behind",
                                                           "agent_restarts"} <= set(link)


def test_a_dossier_filed_on_national_reaches_the_officers_and_every_step_reaches_national(systems: Systems) -> None:
    citizen = systems.national.citizen("079100000001")
    filed = systems.file_on_national(citizen)
    officer = systems.provincial.officer(U1)
    queued = _queued(systems, officer, filed["code"])
    assert queued["id"] == filed["id"]  # the national portal's id is kept: the systems number apart
    systems.work_to_the_end(officer, queued["id"])
    seen = poll("status 10 on the national portal", lambda: systems.synced(filed["code"], 10))
    row = systems.on_provincial(filed["code"])
    assert row is not None and row["status"] == 10
    officer_steps = [s for s in row["steps"] if s["actor"].startswith("officer:")]
    assert [s["status"] for s in officer_steps] == [2, 4, 9, 10]
    assert all(s["acked_at"] and s["pushed_at"] and s["acked_at"] >= s["pushed_at"] >= s["at"]
               for s in officer_steps)
    # Each step's lag from both clocks: the national receipt (ThoiDiemDongBo, ms) minus the provincial step time.
    national_steps = {s["MaBuocXuLy"]: s for s in seen["QuaTrinhXuLy"]}
    assert set(national_steps) == {str(s["seq"]) for s in officer_steps}
    for s in officer_steps:
        theirs = national_steps[str(s["seq"])]
        assert theirs["TrangThai"] == str(s["status"])
        lag = vn_time(theirs["ThoiDiemDongBo"]) - s["at_ms"] / 1000
        assert 0 <= lag < 30, (s, theirs)
        assert abs(vn_time(theirs["ThoiDiemXuLy"]) - s["at_ms"] / 1000) < 1  # the same moment, in the national zone
    # The citizen follows it on the national portal, with the officers' steps in its history.
    _, mine = systems.national.call("GET", f"/api/dossiers/{filed['id']}", token=citizen)
    assert mine["status"] == 10 and mine["decision"] == "approved" and mine["due_at"]
    assert [h["status"] for h in mine["history"]] == [1, 2, 4, 9, 10]


def test_every_integration_answer_has_the_documented_shape(systems: Systems) -> None:
    citizen = systems.national.citizen("079100000002")
    filed = systems.file_on_national(citizen, PAID)
    seen = poll("the dossier on the national portal", lambda: systems.integration.look_up(filed["code"]))
    d = seen[filed["code"]]
    for name in ("MaHoSo", "MaTTHC", "TenTTHC", "ChuHoSo", "SoGiayToChuHoSo", "LoaiDoiTuong", "NgayTiepNhan",
                 "NgayHenTra", "NgayTra", "TrangThaiHoSo", "DonViXuLy", "MaDonVi", "KenhThucHien", "TaiLieuNop",
                 "DanhSachLePhi", "QuaTrinhXuLy"):
        assert name in d, name
    assert d["TrangThaiHoSo"] == "6" and d["SoGiayToChuHoSo"] == "079100000002" and d["KenhThucHien"] == "2"
    assert d["DanhSachLePhi"] == [{"TenPhiLePhi": "Lệ phí", "MucPhi": 2000, "DaThanhToan": "0"}]
    assert len(d["NgayTiepNhan"]) == 14 and d["NgayTiepNhan"].isdigit() and d["NgayHenTra"] == ""
    # yyyyMMddHHmmss in Asia/Ho_Chi_Minh: seven hours ahead of the portal's own UTC record of the filing.
    _, mine = systems.national.call("GET", f"/api/dossiers/{filed['id']}", token=citizen)
    submitted = datetime.fromisoformat(mine["submitted_at"].replace("Z", "+00:00"))
    assert d["NgayTiepNhan"] == (submitted + timedelta(hours=7)).strftime("%Y%m%d%H%M%S")
    assert abs(vn_time(d["NgayTiepNhan"]) - submitted.timestamp()) < 1
    feed = systems.integration.call("LayThayDoiHoSo", {"after": 0, "limit": 500})
    assert feed["error_code"] == "0" and feed["last_seq"] >= 1
    item = next(i for i in feed["result"] if i["MaHoSo"] == filed["code"])
    assert item["kind"] == "filed" and len(item["at"]) == 17 and item["form"] == PAID[1]


def test_citizen_side_changes_travel_to_the_officers_and_both_systems_agree(systems: Systems) -> None:
    citizen = systems.national.citizen("079100000003")
    officer = systems.provincial.officer(U1)
    # A fee paid on the national portal: the provincial dossier moves from 6 to 1.
    paid = systems.file_on_national(citizen, PAID)
    _queued(systems, officer, paid["code"], 6)
    _, pay = systems.national.call("POST", f"/api/dossiers/{paid['id']}/payment", token=citizen)
    assert systems.national.call("GET", pay["redirect_url"])[0] == 200
    _queued(systems, officer, paid["code"], 1)
    # A supplement asked by the officer and given on the national portal.
    supp = systems.file_on_national(citizen)
    sid = _queued(systems, officer, supp["code"])["id"]
    systems.step(officer, sid, "receive")
    systems.step(officer, sid, "process")
    systems.step(officer, sid, "request-supplement", {"reason": "Thiếu bản đồ"})
    poll("status 5 on national", lambda: systems.synced(supp["code"], 5))
    _, mine = systems.national.call("GET", f"/api/dossiers/{sid}", token=citizen)
    assert mine["supplement_reason"] == "Thiếu bản đồ"
    status, _ = systems.national.call("POST", f"/api/dossiers/{sid}/supplement", token=citizen,
                                      files=[("extra", ("bs.pdf", b"%PDF-2", "application/pdf"))])
    assert status == 200
    _queued(systems, officer, supp["code"], 4)
    # A withdrawal asked on the national portal, and the officer stops the dossier.
    gone = systems.file_on_national(citizen)
    gid = _queued(systems, officer, gone["code"])["id"]
    assert systems.national.call("POST", f"/api/dossiers/{gid}/withdraw", {"reason": "Không cần"},
                                 token=citizen)[0] == 200
    _queued(systems, officer, gone["code"], 7)
    systems.step(officer, gid, "stop")
    for code, status in ((paid["code"], 1), (supp["code"], 4), (gone["code"], 8)):
        poll(f"{code} at {status} on both systems", lambda c=code, s=status: systems.synced(c, s))
    with sqlite3.connect(systems.provincial.db_path) as db:
        assert db.execute("SELECT count(*) FROM attachments WHERE dossier_id = ? AND name = 'extra'",
                          (sid,)).fetchone()[0] == 1


def test_a_dossier_filed_on_the_city_front_door_is_visible_on_national(systems: Systems) -> None:
    code = systems.file_on_door(systems.door, "079100000004")
    seen = poll("the city dossier on the national portal", lambda: systems.integration.look_up(code))
    assert seen[code]["TrangThaiHoSo"] == "1" and seen[code]["SoGiayToChuHoSo"] == "079100000004"
    # The same person signs in on the national portal with VNeID and finds it among their dossiers.
    citizen = systems.national.citizen("079100000004")
    _, mine = systems.national.call("GET", "/api/dossiers", token=citizen)
    assert code in [d["code"] for d in mine["items"]]
    officer = systems.provincial.officer(U1)
    systems.work_to_the_end(officer, _queued(systems, officer, code)["id"])
    poll("status 10 on national", lambda: systems.synced(code, 10))


def test_the_old_single_portal_and_a_system_are_not_asked_for_together(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rehearsal.portal", "--system", "national", "--face", "legacy",
                           "--port", "0", "--db", str(tmp_path / "x.sqlite")], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--face" in proc.stderr


def test_secrets_stay_out_of_logs_and_a_clean_stop_takes_the_agent_with_it(tmp_path: Path) -> None:
    import os

    import psutil

    secrets = {"REHEARSAL_LINK_PASSWORD": "link-7c1e-secret", "REHEARSAL_CITY_PASSWORD": "city-2b9d-secret"}
    os.environ.update(secrets)
    try:
        s = start_systems(tmp_path)
    finally:
        for name in secrets:
            del os.environ[name]
    try:
        _, refused = s.door.call("POST", "/dichvucong/api/taikhoan/dangnhap", {"tenDangNhap": "079100000009",
                                                                              "matKhau": "rehearsal"})
        assert refused["maLoi"] == 4 and refused["truong"] == "matKhau"
        _, signed = s.door.call("POST", "/dichvucong/api/taikhoan/dangnhap", {
            "tenDangNhap": "079100000009", "matKhau": secrets["REHEARSAL_CITY_PASSWORD"]})
        assert signed["maLoi"] == 0
        code = s.file_on_national(s.national.citizen("079100000010"))["code"]
        poll("pulled with the link's password from the environment", lambda: s.on_provincial(code))
        agent = psutil.Process(s.link()["agent_pid"])
        assert not any(v in " ".join(agent.cmdline()) for v in secrets.values())
    finally:
        s.stop()
    assert not agent.is_running() or agent.status() == psutil.STATUS_ZOMBIE
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".sqlite":
            data = path.read_bytes()
            assert not any(v.encode() in data for v in secrets.values()), path
            if path.suffix == ".log":
                assert b"Traceback" not in data and b"Exception ignored" not in data, data[-2000:]

"""The link under the faults of the first weeks: down for a window, answering errors, killed mid-push, pushing twice.

Real processes on loopback: a national portal, the hcmc provincial system
with its front door and its link agent (a child process), and for the
migration a brvt system with its own front door. Whatever the fault, when
the link heals the backlog drains, and every step is on the national portal
exactly once (`_exactly_once`: its steps are the provincial outbox's, none
missing, none twice, one history line each).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter

import pytest

from twosystems import U1, Systems, poll, start_former_province, start_systems


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory):
    s = start_systems(tmp_path_factory.mktemp("link"))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def healed(systems: Systems):
    """Every test leaves both systems without faults and the agent running."""
    yield
    systems.faults(systems.national)
    systems.faults(systems.provincial)
    systems.provincial.call("POST", "/api/admin/link", {"action": "start"})


def _pushed_steps(systems: Systems, code: str) -> list[dict]:
    """The provincial steps of `code` that have an outbox row (every step since the national portal has it)."""
    return [s for s in systems.on_provincial(code)["steps"] if s["attempts"] is not None or s["pushed_at"]]


def _exactly_once(systems: Systems, codes: list[str]) -> int:
    """Every pushed step of these dossiers is on the national portal once; the number of steps checked."""
    seen = systems.integration.look_up(*codes)
    checked = 0
    with sqlite3.connect(systems.national.db_path) as db:
        for code in codes:
            ours = [str(s["seq"]) for s in _pushed_steps(systems, code)]
            theirs = [s["MaBuocXuLy"] for s in seen[code]["QuaTrinhXuLy"]]
            assert sorted(theirs, key=int) == sorted(ours, key=int), (code, ours, theirs)
            lines = Counter(r[0] for r in db.execute(
                "SELECT h.at || h.status || ifnull(h.note, '') FROM history h JOIN dossiers d ON d.id = h.dossier_id "
                "WHERE d.code = ? AND h.actor LIKE 'cb%'", (code,)))
            assert all(n == 1 for n in lines.values()), (code, lines)
            checked += len(ours)
    return checked


def _national_codes(systems: Systems, codes: list[str]) -> set[str]:
    """Which of `codes` the national portal's own database holds."""
    with sqlite3.connect(systems.national.db_path) as db:
        marks = ",".join("?" * len(codes))
        return {r[0] for r in db.execute(f"SELECT code FROM dossiers WHERE code IN ({marks})", codes)}


def _file_and_work(systems: Systems, n: int, id_base: int,
                   steps: tuple[str, ...] = ("receive", "process")) -> list[str]:
    """`n` dossiers filed on the front door and moved by an officer: their codes."""
    officer = systems.provincial.officer(U1)
    codes = [systems.file_on_door(systems.door, f"0793000{id_base + i:05d}") for i in range(n)]
    for code in codes:
        dossier_id = systems.on_provincial(code)["id"]
        for action in steps:
            systems.step(officer, dossier_id, action, {"decision": "approved"} if action == "decide" else None)
    return codes


def test_link_down_backlog_grows_then_drains_with_nothing_lost_or_twice(systems: Systems) -> None:
    before = systems.link()
    systems.faults(systems.national, {"kind": "link-down"})
    codes = _file_and_work(systems, 6, 100)
    online = systems.file_on_national(systems.national.citizen("079300000199"))
    link = poll("a backlog and failed pushes", lambda: (l := systems.link())["outbox_pending"] >= 18
                and l["pushes_failed"] > before["pushes_failed"] and l)
    assert link["outbox_oldest_s"] > 0 and "503" in (link["last_error"] or "")
    assert _national_codes(systems, codes) == set()  # nothing reached the national portal (its API is down too)
    assert systems.on_provincial(online["code"]) is None  # nor did the national filing reach the officers
    systems.faults(systems.national)
    poll("the backlog drained", lambda: systems.link()["outbox_pending"] == 0, timeout=90)
    poll("the online filing pulled", lambda: systems.on_provincial(online["code"]))
    assert poll("all six on national", lambda: len(systems.integration.look_up(*codes)) == 6)
    assert _exactly_once(systems, codes) == 12
    assert all(d["TrangThaiHoSo"] == "4" for d in systems.integration.look_up(*codes).values())


def test_the_agent_killed_9_mid_push_resumes_and_every_step_arrives_once(systems: Systems) -> None:
    systems.faults(systems.national, {"kind": "link-slow", "delay_s": 1.5})  # every call in flight for 1.5 s
    start = systems.link()["outbox_acked"]
    codes = _file_and_work(systems, 5, 200, ("receive", "process", "decide", "return"))
    poll("the first pushes acknowledged", lambda: systems.link()["outbox_acked"] > start, every=0.02)
    time.sleep(0.2)  # the next call is on its way
    killed = systems.provincial.call("POST", "/api/admin/link", {"action": "kill"})[1]
    assert killed["agent_alive"] is False and killed["agent_held"] is True
    left = systems.link()["outbox_pending"]
    assert left > 0, "the kill came after the backlog drained: nothing was mid-push"
    time.sleep(1.0)
    assert systems.link()["outbox_pending"] == left  # nobody pushes while the agent is down
    systems.faults(systems.national)
    assert systems.provincial.call("POST", "/api/admin/link", {"action": "start"})[1]["agent_alive"]
    poll("the backlog drained after the restart", lambda: systems.link()["outbox_pending"] == 0)
    assert _exactly_once(systems, codes) == 20
    assert {d["TrangThaiHoSo"] for d in systems.integration.look_up(*codes).values()} == {"10"}
    # Killed by the kernel's hand rather than the operator's: the supervisor starts it again by itself.
    link = systems.link()
    os.kill(link["agent_pid"], signal.SIGKILL)
    again = poll("the agent restarted", lambda: (l := systems.link())["agent_restarts"] > link["agent_restarts"]
                 and l["agent_alive"] and l)
    assert again["agent_pid"] != link["agent_pid"]
    more = _file_and_work(systems, 1, 299)
    poll("a new dossier synced by the restarted agent", lambda: systems.synced(more[0], 4))


def test_duplicate_pushes_are_harmless(systems: Systems) -> None:
    systems.faults(systems.provincial, {"kind": "link-duplicates"})
    start = systems.link()["pushes_ok"]
    codes = _file_and_work(systems, 3, 300, ("receive", "process", "decide", "return"))
    for code in codes:
        poll(f"{code} returned on national", lambda c=code: systems.synced(c, 10))
    assert _exactly_once(systems, codes) == 12
    with sqlite3.connect(systems.national.db_path) as db:
        counts = dict(db.execute("SELECT code, count(*) FROM synced_steps WHERE code IN (?, ?, ?) GROUP BY code",
                                 codes).fetchall())
    assert counts == {code: 4 for code in codes}
    assert systems.link()["pushes_ok"] > start


def test_error_answers_are_retried_until_taken(systems: Systems) -> None:
    systems.faults(systems.national, {"kind": "link-errors", "rate": 1.0})
    failed = systems.link()["pushes_failed"]
    codes = _file_and_work(systems, 2, 400)
    link = poll("failed pushes", lambda: (l := systems.link())["pushes_failed"] >= failed + 3 and l)
    assert "Kết nối tới hệ thống thất bại" in link["last_error"] and link["outbox_pending"] >= 6
    systems.faults(systems.national, {"kind": "link-errors", "rate": 0.5})  # half the calls fail: still all arrive
    for code in codes:  # (the test's own look-ups fail half the time too: it polls)
        poll(f"{code} on national", lambda c=code: systems.synced(c, 4))
    systems.faults(systems.national)
    assert _exactly_once(systems, codes) == 4


def test_the_link_kill_fault_holds_the_agent_down_while_it_is_on(systems: Systems) -> None:
    systems.faults(systems.provincial, {"kind": "link-kill"})
    held = poll("the agent down", lambda: (l := systems.link())["agent_alive"] is False and l)
    assert held["agent_held"]
    codes = _file_and_work(systems, 1, 500)
    time.sleep(0.5)
    assert _national_codes(systems, codes) == set()
    systems.faults(systems.provincial)
    poll("the agent up", lambda: systems.link()["agent_alive"])
    poll("synced once up", lambda: systems.synced(codes[0], 4))


def test_a_migration_from_brvt_is_found_on_hcmc_then_on_national(systems: Systems, tmp_path) -> None:
    brvt, brvt_door = start_former_province(tmp_path, "brvt")
    systems.extra.append(brvt)
    try:
        codes = [systems.file_on_door(brvt_door, f"07930000060{i}") for i in range(3)]
        officer = brvt.officer(U1)
        first = systems.on_provincial(codes[0], brvt)
        assert first["id"] > 30_000_000  # brvt numbers its own
        systems.step(officer, first["id"], "receive", portal=brvt)
        # The cutover of the former province: its front door closes, its open dossiers move onto hcmc.
        status, _ = brvt_door.call("POST", "/api/admin/close", {"mode": "503", "moved_to": systems.national.base_url})
        assert status == 200
        status, closed = brvt_door.call("GET", "/dichvucong/api/thutuc")
        assert status == 503 and closed["moved_to"] == systems.national.base_url and closed["maLoi"] == 20
        _, export = brvt.call("GET", "/api/admin/dossiers?open=1&full=1")
        assert sorted(i["code"] for i in export["items"]) == sorted(codes)
        assert systems.provincial.call("POST", "/api/admin/import", {"items": export["items"]})[1] == \
            {"imported": 3, "already": 0}
        assert systems.provincial.call("POST", "/api/admin/import", {"items": export["items"]})[1] == \
            {"imported": 0, "already": 3}
        moved = systems.on_provincial(codes[0])
        assert moved["id"] == first["id"] and moved["status"] == 2 and moved["channel"] == 2
        for code in codes:  # every migrated dossier reaches the national portal through the outbox
            poll(f"{code} on national", lambda c=code: systems.synced(c))
        hcmc_officer = systems.provincial.officer(U1)
        systems.step(hcmc_officer, moved["id"], "process")
        poll("the migrated dossier's next step on national", lambda: systems.synced(codes[0], 4))
    finally:
        brvt.proc.send_signal(signal.SIGTERM)

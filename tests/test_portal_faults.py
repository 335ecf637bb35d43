"""The portal's faults and the cutover's two faces, through the real admin API."""

from __future__ import annotations

import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import PortalClient, start_portal, stop_portal
from test_portal import U1, _submit_death


def _faults(portal: PortalClient, *faults: dict) -> dict:
    status, body = portal.call("PUT", "/api/admin/faults", {"faults": list(faults)})
    assert status == 200, body
    return body


def _timed(portal: PortalClient, path: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    status, _ = portal.call("GET", path)
    return time.perf_counter() - t0, status


def test_latency_on_chosen_endpoints_only(portal: PortalClient) -> None:
    _faults(portal, {"kind": "latency", "endpoints": ["GET /api/procedures"], "delay_s": 0.3})
    slow, status = _timed(portal, "/api/procedures")
    fast, _ = _timed(portal, "/api/procedures/HT-02")
    assert status == 200 and slow >= 0.3 and fast < 0.2
    _faults(portal, {"kind": "latency", "endpoints": ["GET /api/procedures/*"], "delay_s": [0.1, 0.2]})
    held, _ = _timed(portal, "/api/procedures/HT-02")
    assert 0.1 <= held < 0.5
    _faults(portal)
    assert _timed(portal, "/api/procedures")[0] < 0.2


def test_error_rate_hits_about_that_share(portal: PortalClient) -> None:
    _faults(portal, {"kind": "errors", "endpoints": ["GET /api/procedures/<code>"], "rate": 0.3, "status": 500})
    statuses = [portal.call("GET", "/api/procedures/HT-02")[0] for _ in range(300)]
    assert set(statuses) == {200, 500}
    # 300 draws at 30 %: the standard deviation is 8 requests; these bounds are 5 of them either side.
    assert 0.17 < statuses.count(500) / 300 < 0.43
    assert portal.call("GET", "/api/procedures")[0] == 200  # another endpoint: untouched


def test_outage_answers_503_but_stays_observable(portal: PortalClient) -> None:
    _faults(portal, {"kind": "outage"})
    status, body = portal.call("GET", "/api/procedures")
    assert status == 503 and body["error"] == "outage"
    assert portal.call("GET", "/api/health")[0] == 200 and portal.call("GET", "/api/stats")[0] == 200
    _faults(portal)
    assert portal.call("GET", "/api/procedures")[0] == 200


def test_slow_agency_keeps_lien_thong_dossiers_longer(portal: PortalClient, multipart) -> None:
    citizen, officer = portal.citizen(), portal.officer(U1)
    _faults(portal, {"kind": "slow-agency", "factor": 10})
    _, d = _submit_death(portal, citizen, multipart)
    for action in ("receive", "process", "transfer"):
        assert portal.call("POST", f"/api/officer/dossiers/{d['id']}/{action}", {}, token=officer)[0] == 200
    time.sleep(0.4)  # 600 s / 3600 = 0.17 s normally; ×10 = 1.7 s
    assert portal.call("POST", f"/api/officer/dossiers/{d['id']}/take-back", {}, token=officer)[0] == 409


def test_silent_drop_answers_201_and_keeps_nothing(portal: PortalClient, multipart) -> None:
    citizen = portal.citizen()
    _faults(portal, {"kind": "silent-drop", "rate": 1.0})
    status, d = _submit_death(portal, citizen, multipart)
    assert status == 201
    assert portal.call("GET", f"/api/dossiers/{d['id']}", token=citizen)[0] == 404
    assert portal.call("GET", "/api/admin/faults")[1]["dropped"] == [d["id"]]
    _faults(portal)
    status, e = _submit_death(portal, citizen, multipart)
    assert status == 201 and e["id"] > d["id"]  # an id dropped is never handed out again


@pytest.mark.parametrize("fault, field", [
    ({"kind": "earthquake"}, "faults[0].kind"),
    ({"kind": "errors", "rate": 2}, "faults[0].rate"),
    ({"kind": "latency"}, "faults[0].delay_s"),
])
def test_a_bad_fault_is_refused_with_its_field(refusing_portal: PortalClient, fault: dict, field: str) -> None:
    status, body = refusing_portal.call("PUT", "/api/admin/faults", {"faults": [fault]})
    assert status == 400 and body["field"] == field


def test_cutover_close_migrate_and_follow(tmp_path: Path, multipart) -> None:
    legacy = start_portal(tmp_path / "legacy", "--time-scale", "3600", "--face", "legacy")
    national = start_portal(tmp_path / "national", "--time-scale", "3600", "--face", "national")
    try:
        citizen = legacy.citizen("079000000042")
        officer = legacy.officer(U1)
        open_ids = [_submit_death(legacy, citizen, multipart, ref=f"r{i}")[1]["id"] for i in range(3)]
        done = _submit_death(legacy, citizen, multipart, ref="done")[1]["id"]
        assert legacy.call("POST", f"/api/officer/dossiers/{done}/refuse-intake", {"reason": "Sai thẩm quyền"},
                           token=officer)[1]["status"] == 3
        legacy.call("POST", f"/api/officer/dossiers/{open_ids[0]}/receive", {}, token=officer)

        status, body = legacy.call("POST", "/api/admin/close", {"mode": "503", "moved_to": national.base_url})
        assert status == 200
        status, body = legacy.call("GET", "/api/procedures")
        assert status == 503 and body["moved_to"] == national.base_url
        status, body = legacy.call("POST", "/api/dossiers", token=citizen,
                                   files=multipart("HT-02", U1, {}, {}, None))
        assert status == 503  # nothing new is taken once closed

        _, export = legacy.call("GET", "/api/admin/dossiers?open=1&full=1")
        assert sorted(i["id"] for i in export["items"]) == open_ids  # the refused one is complete: it stays
        assert national.call("POST", "/api/admin/import", {"items": export["items"]})[1] == {"imported": 3,
                                                                                            "already": 0}
        assert national.call("POST", "/api/admin/import", {"items": export["items"]})[1] == {"imported": 0,
                                                                                            "already": 3}
        # The same person signs in on the national portal and follows the same dossier ids.
        again = national.citizen("079000000042")
        status, seen = national.call("GET", f"/api/dossiers/{open_ids[0]}", token=again)
        assert status == 200 and seen["status"] == 2 and seen["history"][-1]["actor"] == "migration"
        # Officers carry on at their unit; new dossiers get ids the legacy face never used.
        officer2 = national.officer(U1)
        assert national.call("POST", f"/api/officer/dossiers/{open_ids[0]}/process", {},
                             token=officer2)[1]["status"] == 4
        status, new = _submit_death(national, again, multipart, ref="after")
        assert status == 201 and new["id"] > 10_000_000
        with sqlite3.connect(national.db_path) as db:
            assert db.execute("SELECT count(*) FROM attachments WHERE dossier_id IN (?, ?, ?)",
                              open_ids).fetchone()[0] == 3
        # Redirect mode: a 308 to the same path on the national portal.
        legacy.call("POST", "/api/admin/close", {"mode": "redirect", "moved_to": national.base_url})
        req = urllib.request.Request(legacy.base_url + "/api/procedures?q=sinh")
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(req, timeout=5)
        assert info.value.code == 308
        assert info.value.headers["Location"] == national.base_url + "/api/procedures?q=sinh"
    finally:
        stop_portal(legacy)
        stop_portal(national)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None

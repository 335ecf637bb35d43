"""The cutover as a runbook, and its rehearsed rollback (issue #17, items 1 and 2).

The plan reads the phases and ``on_fail``; the doors freeze (no new dossier,
following works) and the national portal sends citizens back to the city
portal while its integration API stays open; a real run whose validation is
made to fail (the link agent killed) ends rolled back, 0 lost, NO-GO with
the reason and every phase's planned and actual times in ``summary.json``;
a real run whose ``on_fail: rollback`` gate fails while observing sends the
citizens who had moved to the national portal back to the city portal, and
what they filed on the national portal meanwhile is kept and synced.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rehearsal.plan import load_plan, parse_gate
from rehearsal.plan.runbook import CHECKS, DEFAULT_LIMIT_FACTOR
from rehearsal.results.ledger import read_events
from rehearsal.results.runbook import runbook_figures, runbook_reason, runbook_summary, runbook_value
from twosystems import PLAIN, start_systems

ROOT = Path(__file__).resolve().parent.parent
HCMC = [26737, 26740, 26743, 26758]
STAGE = """\
name: p
stages:
  - name: one
    duration: 1h
    citizens: {users: 10, spawn_rate: 5, think_time: [30s, 90s]}
"""


def _plan(tmp_path: Path, extra: str):
    path = tmp_path / "plan.yaml"
    path.write_text(STAGE + extra, encoding="utf-8")
    return load_plan(path)


# -- the plan ---------------------------------------------------------------------------------------

def test_phases_are_read_in_order_with_their_limits_and_checks(tmp_path: Path) -> None:
    stage = _plan(tmp_path, """\
    cutover:
      at: 10m
      phases: {freeze: 2m, drain: {for: 5m, limit: 12m}, validate: 3m, switch: 1m, observe: 10m}
""").stages[0]
    phases = {p.phase: p for p in stage.cutover.runbook}
    assert list(phases) == ["freeze", "drain", "validate", "switch", "observe"]
    assert phases["drain"].limit_s == 720 and phases["validate"].limit_s == 180 * DEFAULT_LIMIT_FACTOR
    assert phases["validate"].checks == tuple(CHECKS) and phases["freeze"].limit_s == 0
    # A runbook that can roll back is NO-GO when it does: the plan adds the gate.
    assert [g.expr for g in stage.gates] == ["cutover_rolled_back == 0"]


def test_a_cutover_without_phases_is_one_switch(tmp_path: Path) -> None:
    stage = _plan(tmp_path, "    cutover: {at: 10m}\n").stages[0]
    assert [p.phase for p in stage.cutover.runbook] == ["switch"] and stage.cutover.phases == ()
    assert stage.gates == ()  # nothing can roll it back


def test_on_fail_reads_rollback_and_abort(tmp_path: Path) -> None:
    stage = _plan(tmp_path, """\
    cutover: {at: 10m, phases: {switch: 1m, observe: 5m}}
    gates:
      - {expr: p95_ms over every 1m <= 2000, on_fail: rollback}
      - {expr: error_rate <= 5%, on_fail: abort}
      - {expr: cutover_rolled_back == 0, name: mine}
""").stages[0]
    assert [(g.on_fail, g.abort_on_fail) for g in stage.gates] == [("rollback", False), ("abort", True),
                                                                    ("nogo", False)]


@pytest.mark.parametrize("extra, message", [
    ("    cutover: {at: 10m, phases: {switch: 1m}}\n    gates: [{expr: p95_ms <= 1, on_fail: rollback}]\n",
     "the runbook needs an observe phase"),
    ("    gates: [{expr: p95_ms <= 1, on_fail: later}]\n", "unknown on_fail 'later'"),
    ("    gates: [{expr: p95_ms <= 1, on_fail: nogo, abort_on_fail: true}]\n", "contradicts abort_on_fail"),
    ("    cutover: {at: 50m, phases: {freeze: 10m, switch: 1m}}\n", "longer than the 10m left in the stage"),
    ("    cutover: {at: 10m, phases: {migrate: 5m, switch: 1m}}\n", "name the phase drain"),
])
def test_a_runbook_that_cannot_be_played_is_refused(tmp_path: Path, extra: str, message: str) -> None:
    from rehearsal.errors import PlanError
    with pytest.raises(PlanError, match=message):
        _plan(tmp_path, extra)


def test_the_gate_language_reads_phase_times_written_like_the_plans() -> None:
    gate = parse_gate("cutover_phase_s{phase=validate} <= 5m")
    assert gate.filter("phase") == "validate" and gate.threshold == 300
    assert parse_gate("cutover_total_s < 1h30m").threshold == 5400
    with pytest.raises(Exception, match="unknown phase 'valdate'"):
        parse_gate("cutover_phase_s{phase=valdate} <= 5m")
    figures = runbook_figures({"phases": [{"phase": "validate", "actual_s": 240.0}, {"phase": "switch",
                                                                                   "actual_s": 3.0}],
                               "total_s": 900.0, "rolled_back": True})
    assert runbook_value(gate, figures) == (240.0, "")
    assert runbook_value(parse_gate("cutover_phase_s{phase=observe} <= 5m"), figures)[0] is None
    assert figures["cutover_phase_s"] == 240 and figures["cutover_rolled_back"] == 1


def test_the_rollbacks_figures_from_the_record_and_the_ledger() -> None:
    record = {"to": "national", "closed_at": 100.0, "runbook_started_at": 90.0, "runbook_ended_at": 130.0,
              "phases": [{"phase": "switch", "planned_start_s": 600, "planned_s": 60, "start_s": 610.0,
                          "end_s": 611.0, "actual_s": 1.0, "started_at": 100.0, "ended_at": 100.5,
                          "outcome": "done"}],
              "rolled_back": True, "rollback": {"reason": "gate 'x' failed", "started_at": 120.0,
                                                "ended_at": 120.5, "start_s": 1210.0, "end_s": 1215.0}}
    events = [{"kind": "submitted", "t": 85.0, "system": "city", "code": "A"},
              {"kind": "submitted", "t": 110.0, "system": "national", "code": "B"},
              {"kind": "submitted", "t": 115.0, "system": "national", "code": "C"},
              {"kind": "request_failed", "t": 121.0}, {"kind": "request_failed", "t": 123.0},
              {"kind": "submitted", "t": 126.0, "system": "city", "code": "D"}]
    out = runbook_summary(record, events, [{"code": "B"}, {"code": "A"}])
    rb = out["rollback"]
    assert (rb["kept_on_national"], rb["kept_synced"], rb["kept_not_synced"]) == (2, 1, ["C"])
    assert (rb["interruption_failures"], rb["interruption_s"], rb["no_filing_s"]) == (2, 2.0, 6.0)
    assert out["total_s"] == 605.0 and out["phases"][0]["late_s"] == 10.0 and out["no_filing_s"] == 20.0
    assert runbook_reason(out) == "rolled back: gate 'x' failed"


# -- the doors ----------------------------------------------------------------------------------------

def _send(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def test_a_frozen_door_takes_no_dossier_and_a_closed_national_portal_keeps_its_integration_api(
        tmp_path: Path) -> None:
    s = start_systems(tmp_path)
    try:
        code = s.file_on_door(s.door, "079100000041")
        status, _ = s.door.call("POST", "/api/admin/close", {"mode": "freeze", "moved_to": s.national.base_url})
        assert status == 200
        _, signed = s.door.call("POST", "/dichvucong/api/taikhoan/dangnhap", {"tenDangNhap": "079100000041",
                                                                              "matKhau": "rehearsal"})
        session = {"X-Ma-Phien": signed["duLieu"]["maPhien"]}
        status, head, body = _send(s.door.base_url + "/dichvucong/api/hoso", "POST", {}, session)
        assert status == 503 and body["maLoi"] == 23 and "X-Portal-Moved" not in head and head["Retry-After"]
        status, body = s.door.call("GET", f"/dichvucong/api/hoso/{code}", headers=session)  # following works
        assert status == 200 and body["duLieu"]["maHoSo"] == code
        # The rollback: the city door opens again, the national portal sends citizens back to it ...
        assert s.door.call("POST", "/api/admin/reopen")[0] == 200
        citizen = s.national.citizen("079100000042")
        filed = s.file_on_national(citizen, PLAIN)
        assert s.national.call("POST", "/api/admin/close", {"moved_to": s.door.base_url})[0] == 200
        status, head, _ = _send(s.national.base_url + "/api/dossiers", headers={"Authorization": f"Bearer {citizen}"})
        assert status == 503 and head["X-Portal-Moved"] == s.door.base_url
        # ... while its integration API stays open: the link still pulls what was filed there, and the
        # citizen finds it through the city door by its code (kept and synced, not carried back).
        assert s.integration.look_up(filed["code"])
        from twosystems import poll
        row = poll("the national filing on the provincial system", lambda: s.on_provincial(filed["code"]))
        assert row["code"] == filed["code"]
        _, signed = s.door.call("POST", "/dichvucong/api/taikhoan/dangnhap", {"tenDangNhap": "079100000042",
                                                                              "matKhau": "rehearsal"})
        status, body = s.door.call("GET", f"/dichvucong/api/hoso/{filed['code']}",
                                   headers={"X-Ma-Phien": signed["duLieu"]["maPhien"]})
        assert status == 200 and body["duLieu"]["maHoSo"] == filed["code"]
    finally:
        s.stop()


# -- real runs ----------------------------------------------------------------------------------------

LOAD = """\
    citizens: {users: 30, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}
    officers: {per_unit: 2, think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}
"""


@pytest.fixture(scope="module")
def rolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Two stages: validation made to fail (the link agent killed); a rollback gate failing while observing."""
    tmp = tmp_path_factory.mktemp("rolled")
    plan = tmp / "plan.yaml"
    plan.write_text(f"""\
name: rolled
target: reference
time_scale: 120
seed: 8
stages:
  - name: validation-fails
    units: {{codes: {HCMC}}}
    duration: 30m
    grace: 20m
{LOAD}    cutover:
      at: 10m
      from: city
      migrate: false
      retry_after: 1m
      phases:
        freeze: 1m
        drain: {{for: 2m, limit: 3m}}
        validate: {{for: 2m, limit: 3m}}
        switch: 1m
        observe: 5m
    faults:
      - {{name: link agent down, kind: link-kill, at: 9m, for: 14m}}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0, unsynced_dossiers == 0, not_delivered_dossiers == 0]
  - name: observe-fails
    units: {{codes: {HCMC}}}
    duration: 30m
    grace: 20m
{LOAD}    cutover:
      at: 10m
      from: city
      migrate: false
      retry_after: 1m
      phases:
        switch: 1m
        observe: 12m
    gates:
      - lost_dossiers == 0
      - duplicated_dossiers == 0
      - unsynced_dossiers == 0
      - {{name: too busy, expr: requests over every 6m <= 1, on_fail: rollback}}
""", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(tmp / "r")],
                          capture_output=True, text=True, timeout=400, cwd=ROOT)
    return proc, sorted((tmp / "r").iterdir())[-1]


def _stage(run: Path, name: str) -> dict:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return next(s for s in summary["stages"] if s["name"] == name)


def test_a_failing_validation_rolls_back_with_nothing_lost(rolled) -> None:
    proc, run = rolled
    assert proc.returncode == 1, proc.stderr[-2000:]
    stage = _stage(run, "validation-fails")
    cut = stage["cutover"]
    assert stage["verdict"] == "NO-GO" and stage["verdict_reason"].startswith("rolled back: validate failed")
    assert cut["rolled_back"] and cut["rollback"]["phase"] == "validate" and cut["rollback"]["duration_s"] < 5
    phases = {p["phase"]: p for p in cut["phases"]}
    assert [phases[p]["outcome"] for p in ("switch", "observe")] == ["not played", "not played"]
    assert phases["freeze"]["outcome"] == "done" and phases["validate"]["outcome"] == "failed"
    assert "sync_backlog_empty" in phases["validate"]["failing"]
    for p in ("freeze", "drain", "validate"):  # planned and actual, on the plan's clock
        assert phases[p]["planned_start_s"] >= 600 and phases[p]["start_s"] >= phases[p]["planned_start_s"] - 1
        assert phases[p]["end_s"] > phases[p]["start_s"]
    assert cut["total_s"] > 0
    gates = {g["name"]: g for g in stage["gates"]}
    assert gates["runbook: not rolled back"]["status"] == "failed"
    assert all(gates[n]["status"] == "passed" for n in ("lost_dossiers == 0", "duplicated_dossiers == 0",
                                                        "unsynced_dossiers == 0", "not_delivered_dossiers == 0"))
    assert (run / "stages" / "validation-fails" / "cutover.json").exists()
    html = (run / "index.html").read_text(encoding="utf-8")
    assert "data-kpi='rolled-back'" in html and "data-kpi='runbook'" in html


def test_a_rollback_gate_sends_citizens_back_and_keeps_what_they_filed_on_national(rolled) -> None:
    _, run = rolled
    stage = _stage(run, "observe-fails")
    cut = stage["cutover"]
    assert cut["rolled_back"] and cut["rollback"]["phase"] == "observe", cut
    assert "too busy" in cut["rollback"]["reason"] and cut["rollback"]["national_moved_back"]
    assert stage["dossiers"]["lost"] == 0 and stage["dossiers"]["unsynced"] == 0
    assert cut["rollback"]["kept_synced"] == cut["rollback"]["kept_on_national"]
    systems = json.loads((run / "systems.json").read_text(encoding="utf-8"))
    door = systems["hcmc"]["front_door_url"].rstrip("/")
    started = cut["rollback"]["started_at"]
    events = list(read_events(run / "ledger" / "observe-fails.jsonl"))
    back = [e for e in events if e["kind"] == "portal_moved" and e["t"] >= started - 1
            and str(e.get("portal", "")).rstrip("/") == door]
    assert back, "no citizen was sent back to the city portal"
    assert any(e["kind"] == "submitted" and e["t"] > cut["rollback"]["ended_at"] and e.get("system") == "city"
               for e in events), "nobody filed on the city portal after the rollback"


def test_a_night_that_expects_the_rollback_is_not_called_no_go() -> None:
    """A GO stage that rolled back as it meant to (its own cutover_rolled_back == 1 gate) is not labelled NO-GO."""
    from rehearsal.report.runbook import runbook_reason_html
    from rehearsal.report.text import TEXT

    stage = {"verdict": "GO", "verdict_reason": "rolled back: validate failed: sync_backlog_empty (3 pending)",
             "cutover": {"rolled_back": True}}
    said = runbook_reason_html(stage, TEXT["en"])
    assert "NO-GO" not in said and "as this night was to prove" in said and "sync_backlog_empty" in said
    assert "NO-GO (rolled back)" in runbook_reason_html({**stage, "verdict": "NO-GO"}, TEXT["en"])

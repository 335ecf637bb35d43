"""Real short runs: the reference portal on loopback, Locust in its own process.

Each run is bounded (well under 60 s): a few units, a few dozen citizens,
time compressed 120×. These prove the measurement end to end: the ledger
equals the portal's own database, a healthy stage is GO, and a stage whose
officers cannot keep up is NO-GO with exit code 1.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rehearsal.results.ledger import read_events
from rehearsal.plan import load_plan
from rehearsal.report.page import build_report
from rehearsal.run.runner import run_plan
from rehearsal.run.targets import resolve_target

UNITS = [26506, 26536, 25747, 26737, 27676, 26732]

SCENARIO = """\
name: tiny
target: reference
time_scale: 120
seed: 3
stages:
  - name: tiny
    units: {{codes: {units}}}
    duration: 30m
    grace: {grace}
    citizens:
      users: {citizens}
      spawn_rate: 50
      think_time: [30s, 1m]
      follow_interval: 1m
    officers:
      per_unit: {officers}
      think_time: [10s, 30s]
      poll_interval: 30s
      supplement_share: 0.2
      sign_in_lead: 1m
    gates:
      - completion_rate >= 0.9
      - lost_dossiers == 0
      - duplicated_dossiers == 0
"""

CONTRACT_STAGE_KEYS = {"name", "verdict", "units", "sessions", "dossiers", "completion_rate", "on_time_rate",
                       "units_below_target", "requests", "error_rate", "gates"}


def _scenario(tmp_path: Path, *, officers: int = 2, citizens: int = 30, grace: str = "20m") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO.format(units=UNITS, officers=officers, citizens=citizens, grace=grace), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("run")
    plan = load_plan(_scenario(tmp))
    result = run_plan(plan, resolve_target("reference"), reports_dir=tmp / "reports", progress=None)
    build_report(result.run_dir)  # run_plan returns what it measured; its caller writes the report (as the CLI does)
    return result


def test_summary_follows_the_contract(healthy_run) -> None:
    summary = json.loads((healthy_run.run_dir / "summary.json").read_text())
    assert {"scenario", "run_id", "started_at", "finished_at", "time_scale", "target", "verdict",
            "stages"} <= set(summary)
    assert summary["time_scale"] == 120 and summary["scenario"] == "tiny"
    stage = summary["stages"][0]
    assert CONTRACT_STAGE_KEYS <= set(stage)
    assert stage["units"] == len(UNITS)
    assert set(stage["dossiers"]) >= {"submitted", "complete", "lost", "duplicated"}
    assert set(stage["sessions"]) == {"peak_harness", "peak_portal", "by_system"}
    for name, r in stage["requests"].items():
        assert set(r) >= {"count", "failures", "p50_ms", "p95_ms", "p99_ms"}, name
    assert all({"name", "expr", "observed", "passed", "status", "expected", "detail", "starved_s", "harness_ms",
                "few_dossiers"} == set(g)
               for g in stage["gates"])
    assert set(stage["starved"]) == {"windows", "seconds", "share"}
    assert (healthy_run.run_dir / "index.html").exists()
    assert (healthy_run.run_dir / "stages" / "tiny" / "locust_stats_history.csv").exists()


def test_healthy_stage_is_go_and_accounts_for_every_dossier(healthy_run) -> None:
    summary = healthy_run.summary
    stage = summary["stages"][0]
    assert summary["verdict"] == "GO", stage["gates"]
    assert stage["dossiers"]["submitted"] >= 20
    assert stage["dossiers"]["lost"] == 0 and stage["dossiers"]["duplicated"] == 0
    # Sessions: every officer and citizen was signed in at the peak, counted on both sides.
    assert stage["sessions"]["peak_harness"] >= 30
    assert stage["sessions"]["peak_portal"] >= 30


def test_ledger_equals_the_portals_database(healthy_run) -> None:
    events = list(read_events(healthy_run.run_dir / "ledger" / "tiny.jsonl"))
    # Two systems: a dossier is one code on both (ids are each system's own); the officers' system decides.
    ledger_ids = {e["code"] for e in events if e["kind"] == "submitted"}
    db = sqlite3.connect(healthy_run.run_dir / "provincial.sqlite")
    portal = dict(db.execute("SELECT code, status FROM dossiers").fetchall())
    assert ledger_ids == set(portal)
    complete = sum(1 for i in ledger_ids if portal[i] in (3, 10))
    assert complete == healthy_run.summary["stages"][0]["dossiers"]["complete"]
    # Each returned event in the ledger is a returned dossier in the database.
    returned = {e["code"] for e in events if e["kind"] == "returned"}
    assert returned and all(portal[i] == 10 for i in returned)
    kinds = {e["kind"] for e in events}
    assert {"submitted", "received", "processing", "decided", "returned"} <= kinds


def test_officers_who_cannot_keep_up_give_no_go_and_exit_1(tmp_path: Path) -> None:
    # No officer: nothing is ever finished, so a grace (time for officers to finish) would change no figure.
    scenario = _scenario(tmp_path, officers=0, citizens=12, grace="0s")
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(scenario),
                           "--reports-dir", str(tmp_path / "reports")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: NO-GO" in proc.stdout
    assert "FAIL  completion_rate >= 0.9: observed" in proc.stdout
    run_dir = next((tmp_path / "reports").iterdir())
    stage = json.loads((run_dir / "summary.json").read_text())["stages"][0]
    assert stage["completion_rate"] < 0.5
    # A unit where nobody filed has no rate and is not "below"; every unit that took dossiers is.
    filed = sorted(int(code) for code, unit in stage["unit_results"].items() if unit["submitted"] > 0)
    assert filed and sorted(stage["units_below_target"]) == filed


def test_bad_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstages:\n  - name: x\n    duration: 1h\n    citizens: {users: 10, spawn_rate: 1,"
                   " think_time: 1m}\n    units: {codes: [99999]}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "99999" in lines[0], proc.stderr


def test_a_spawn_batch_arrives_spread_over_a_second(healthy_run) -> None:
    """Locust starts the 30 citizens of one spawn step together; their first sign-ins reach the portal
    spread over about a second (locustfiles.common.SPAWN_SPREAD_S), not in one burst."""
    db = sqlite3.connect(healthy_run.run_dir / "national.sqlite")  # citizens sign in on the national portal
    first_visits = [row[0] for row in db.execute("SELECT created_at FROM citizens ORDER BY id LIMIT 30")]
    from datetime import datetime
    times = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in first_visits)
    assert len(times) == 30
    assert times[-1] - times[0] >= 0.5, f"first sign-ins within {times[-1] - times[0]:.3f} s"


def test_the_portal_and_locust_freeze_their_heaps_as_users_arrive(healthy_run) -> None:
    """42 users (12 officers, 30 citizens) grow both processes past the freezer's step (rehearsal.shared.heap)."""
    locust_log = (healthy_run.run_dir / "stages" / "tiny" / "locust.log").read_text(encoding="utf-8")
    portal_log = (healthy_run.run_dir / "national.log").read_text(encoding="utf-8")
    assert "heap: froze" in locust_log and " users " in locust_log
    assert "heap: froze" in portal_log and " connections " in portal_log

"""Nothing lost, nothing let in: every bad input refused cleanly, a portal that dies mid-run,
secrets that never reach the run directory, and the portal's own doors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port, start_portal, stop_portal, wait_for_filing

from rehearsal.cli import main
from rehearsal.results.ledger import read_events

ROOT = Path(__file__).resolve().parent.parent
BAD = sorted((ROOT / "tests" / "bad_scenarios").glob("*.yaml"))
UNITS = [26506, 26536, 25747, 26737, 27676, 26732]
PLAN = """\
name: safe
target: local
time_scale: 120
seed: 13
stages:
  - name: safe
    units: {{codes: {units}}}
    duration: {duration}
    grace: 15m
    citizens: {{users: 30, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}}
    officers: {{think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
"""


def test_the_corpus_is_at_least_50_files() -> None:
    assert len(BAD) >= 50


@pytest.mark.parametrize("command", ["validate", "run"])
def test_every_bad_file_exits_2_with_one_line_naming_it(command: str, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for path in BAD:
        given = str(path.relative_to(ROOT))
        assert main([command, given]) == 2, given
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"rehearse: error: {given}"), (given, err)
        assert "Traceback" not in err and out == "", given


def _plan(tmp_path: Path, duration: str = "30m") -> Path:
    plan = tmp_path / "safe.yaml"
    plan.write_text(PLAN.format(units=UNITS, duration=duration), encoding="utf-8")
    return plan


def test_a_portal_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "portal" / "portal.sqlite"
    portal = start_portal(tmp_path / "portal", "--port", str(port), "--time-scale", "120", db=db)
    portal.port_file.unlink()
    reports = tmp_path / "reports"
    run = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(_plan(tmp_path, "40m")), "--target",
                            "local", "--target-url", f"http://127.0.0.1:{port}", "--reports-dir", str(reports)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for_filing(reports, "safe", 5, run)  # mid-stage: citizens are filing
        os.kill(portal.proc.pid, signal.SIGKILL)  # no goodbye: whatever was committed is in the WAL
        portal.proc.wait(10)
        time.sleep(5)
        portal = start_portal(tmp_path / "portal", "--port", str(port), "--time-scale", "120", db=db)
        out, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
        stop_portal(portal)
    assert run.returncode in (0, 1), out + err  # the run finishes with a verdict
    run_dir = next(reports.iterdir())
    stage = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["stages"][0]
    assert stage["verdict"] in ("GO", "NO-GO") and stage["dossiers"]["lost"] == 0
    assert stage["dossiers"]["duplicated"] == 0
    # The outage is on record: the portal stopped answering for about the 5 s it was down.
    outages = stage["portal_outages"]
    assert len(outages) == 1 and 3 <= outages[0]["seconds"] <= 15, outages
    failed = [e for e in read_events(run_dir / "ledger" / "safe.jsonl") if e["kind"] == "request_failed"]
    assert failed and all(outages[0]["from"] - 3 <= e["t"] <= outages[0]["to"] + 3 for e in failed
                          if e["status"] == 0)
    # Every dossier the harness got an id for is in the restarted portal's database.
    filed = {e["id"] for e in read_events(run_dir / "ledger" / "safe.jsonl") if e["kind"] == "submitted"}
    with sqlite3.connect(db) as conn:
        assert filed <= {r[0] for r in conn.execute("SELECT id FROM dossiers")}
    # And users came back: dossiers were filed after the restart.
    assert any(e["t"] > outages[0]["to"] for e in read_events(run_dir / "ledger" / "safe.jsonl")
               if e["kind"] == "submitted")


def test_no_secret_reaches_the_run_directory(tmp_path: Path) -> None:
    secrets = {"REHEARSAL_OFFICER_PASSWORD": "Mk-7f3a9-officers", "REHEARSAL_ADMIN_TOKEN": "tok-9c1e-admin",
               "REHEARSAL_PAYMENT_SECRET": "pay-3b8e-intermediary"}
    env = {**os.environ, **secrets}
    port = free_port()
    portal_dir = tmp_path / "portal"
    portal_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.portal", "--port", str(port), "--db",
                             str(portal_dir / "p.sqlite"), "--time-scale", "120"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        # Without the token even loopback is refused once the portal has one.
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/admin/dossiers", timeout=5)
        assert info.value.code == 403
        reports = tmp_path / "reports"
        run = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(_plan(tmp_path, "15m")), "--target",
                              "local", "--target-url", f"http://127.0.0.1:{port}", "--reports-dir", str(reports)],
                             capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert run.returncode == 0, run.stdout + run.stderr  # officers signed in with it, reconciliation used the token
    run_dir = next(reports.iterdir())
    stage = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["stages"][0]
    assert stage["dossiers"]["complete"] > 0
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 8
    for path in files:
        data = path.read_bytes()
        for name, value in secrets.items():
            assert value.encode() not in data, f"{name}'s value found in {path.relative_to(run_dir)}"
    assert all(v not in run.stdout + run.stderr for v in secrets.values())


def test_sessions_expire(tmp_path: Path) -> None:
    portal = start_portal(tmp_path, "--session-ttl", "1")
    try:
        token = portal.citizen()
        assert portal.call("GET", "/api/dossiers", token=token)[0] == 200
        time.sleep(1.5)
        status, body = portal.call("GET", "/api/dossiers", token=token)
        assert status == 401 and body["error"] == "session_expired"
    finally:
        stop_portal(portal)

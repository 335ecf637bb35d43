"""The cutover through a real nginx (tools/cutover_nginx.py) under load: nothing accepted is lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import ensure_system_package, free_port, start_portal, stop_portal, wait_for_filing

from rehearsal.results.cutover import interruption
from rehearsal.results.ledger import read_events

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import cutover_nginx  # noqa: E402

PLAN = """\
name: lb
target: reference
time_scale: 120
seed: 9
stages:
  - name: lb
    units: {codes: [26506, 26536, 25747, 26737, 27676, 26732]}
    duration: 40m
    grace: 20m
    citizens: {users: 40, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}
    officers: {per_unit: 2, think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
"""


def test_switch_on_nginx_under_load_loses_nothing(tmp_path: Path) -> None:
    ensure_system_package("nginx", "nginx-light")
    legacy = start_portal(tmp_path / "legacy", "--time-scale", "120", "--face", "legacy")
    national = start_portal(tmp_path / "national", "--time-scale", "120", "--face", "national")
    lb = cutover_nginx.NginxSwitch(legacy.base_url, f"127.0.0.1:{free_port()}", tmp_path / "nginx")
    try:
        url = lb.start()
        plan = tmp_path / "lb.yaml"
        plan.write_text(PLAN, encoding="utf-8")
        reports = tmp_path / "reports"
        run = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--target-url", url,
                                "--reports-dir", str(reports)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
        wait_for_filing(reports, "lb", 5, run)  # the switch comes while citizens are filing on the legacy portal
        record = cutover_nginx.cutover(lb, legacy.base_url, national.base_url, retry_after_s=1)
        out, err = run.communicate(timeout=120)
    finally:
        lb.stop()
        stop_portal(legacy)
        stop_portal(national)
    assert run.returncode == 0, out + err
    run_dir = next(reports.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    stage = summary["stages"][0]
    assert stage["verdict"] == "GO" and stage["dossiers"]["lost"] == 0 and stage["dossiers"]["duplicated"] == 0
    events = list(read_events(run_dir / "ledger" / "lb.jsonl"))
    filed = {e["id"] for e in events if e["kind"] == "submitted"}
    with sqlite3.connect(national.db_path) as db:
        on_national = {r[0] for r in db.execute("SELECT id FROM dossiers")}
    with sqlite3.connect(legacy.db_path) as db:
        on_legacy = {r[0] for r in db.execute("SELECT id FROM dossiers")}
    before = {i for i in filed if i in on_legacy}
    assert before and filed - before, "dossiers were filed both before and after the switch"
    assert filed <= on_national  # every accepted dossier, old or new, is on the national portal
    assert set(record["ids"]) <= on_national and record["open_at_close"] == len(record["ids"])
    window, failures, _, _ = interruption([e["t"] for e in events if e["kind"] == "request_failed"],
                                          record["closed_at"])
    assert window < 10 and record["reload_s"] < 5
    assert sum(e["kind"] == "session_restored" for e in events) > 0
    print(f"nginx cutover: migration {record['migration_s']} s, reload {record['reload_s']} s, "
          f"interruption {window} s ({failures} failed requests), {record['open_at_close']} open dossiers moved")

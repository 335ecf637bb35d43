"""Locust's distributed mode: a master and two worker processes, every dossier accounted for."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from rehearsal.results.ledger import read_events

ROOT = Path(__file__).resolve().parent.parent
PLAN = """\
name: dist
target: reference
time_scale: 120
seed: 17
stages:
  - name: dist
    units: {codes: [26506, 26536, 25747, 26737, 27676, 26732]}
    duration: 60m
    grace: 15m
    citizens: {users: 40, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}
    officers: {think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}
    gates: [lost_dossiers == 0, duplicated_dossiers == 0]
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    plan = tmp_path / "dist.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--workers", "2",
                             "--reports-dir", str(reports)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    return proc, reports


def _accounting(run_dir: Path) -> tuple[dict, set[int], set[int]]:
    stage = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["stages"][0]
    filed = {e["id"] for e in read_events(run_dir / "ledger" / "dist.jsonl") if e["kind"] == "submitted"}
    with sqlite3.connect(run_dir / "portal.sqlite") as db:
        on_portal = {r[0] for r in db.execute("SELECT id FROM dossiers")}
    return stage, filed, on_portal


def test_two_workers_account_for_every_dossier(tmp_path: Path) -> None:
    proc, reports = _start(tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    run_dir = next(reports.iterdir())
    stage, filed, on_portal = _accounting(run_dir)
    assert stage["workers"] == {"peak": 2, "lost": [], "first_lost_at": None}
    # The ledger (merged on the master from both workers) is exactly the portal's database.
    assert filed == on_portal and stage["dossiers"]["submitted"] == len(on_portal) > 0
    # Both workers ran users: each filed dossiers (citizens are numbered by worker, interleaved).
    citizens = {e["citizen"] for e in read_events(run_dir / "ledger" / "dist.jsonl") if e["kind"] == "submitted"}
    assert len(citizens) > 20
    assert sorted(p.name for p in (run_dir / "stages" / "dist").glob("worker-*.log")) == ["worker-0.log",
                                                                                            "worker-1.log"]
    # The HDR histograms from both workers are merged on the master: every request type counts what
    # Locust's own (master-merged) stats count; only the sign-outs at the very end, which Locust's CSV
    # is written before, may be more.
    import csv

    with (run_dir / "stages" / "dist" / "locust_stats.csv").open() as f:
        locust = {f"{r['Type']} {r['Name']}": int(r["Request Count"]) for r in csv.DictReader(f)
                  if r["Name"] != "Aggregated"}
    hdr = {name: fig["count"] for name, fig in stage["latency"]["requests"].items()}
    assert set(hdr) == set(locust)
    for name, count in locust.items():
        assert hdr[name] == count or (name == "POST /api/auth/logout" and hdr[name] >= count), name


def test_a_worker_killed_mid_run_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    proc, reports = _start(tmp_path)
    deadline = time.monotonic() + 60
    pids_file = None
    while time.monotonic() < deadline:
        runs = list(reports.iterdir()) if reports.exists() else []
        pids_file = runs[0] / "stages" / "dist" / "workers.json" if runs else None
        if pids_file and pids_file.exists():
            break
        time.sleep(0.3)
    time.sleep(8)  # early in the 30 s filing window
    os.kill(json.loads(pids_file.read_text())[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err  # the other worker carried the stage to its end
    run_dir = pids_file.parent.parent.parent
    stage, filed, on_portal = _accounting(run_dir)
    assert stage["workers"]["peak"] == 2 and len(stage["workers"]["lost"]) == 1
    assert stage["dossiers"]["lost"] == 0 and filed <= on_portal
    # Dossiers kept coming after the loss: the master gave the dead worker's users to the other one.
    lost_at = stage["workers"]["first_lost_at"]
    assert any(e["t"] > lost_at + 2 for e in read_events(run_dir / "ledger" / "dist.jsonl")
               if e["kind"] == "submitted")


def test_a_worker_from_another_machine_joins_with_rehearse_worker(tmp_path: Path) -> None:
    """`rehearse worker` as a second machine would run it (here on loopback): it joins and its users count."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    plan = tmp_path / "dist.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    worker = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "worker", str(plan), "--master",
                               f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT)
    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--workers", "1",
                          "--remote-workers", "1", "--master-bind", f"127.0.0.1:{port}", "--reports-dir",
                          str(reports)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    out, err = worker.communicate(timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert worker.returncode == 0 and "stage dist" in out, out + err
    stage, filed, on_portal = _accounting(next(reports.iterdir()))
    assert stage["workers"]["peak"] == 2 and filed == on_portal and filed

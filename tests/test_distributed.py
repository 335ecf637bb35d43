"""Locust's distributed mode: a master and its workers (its own, or `rehearse worker`'s), every dossier
and every citizen accounted for."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import free_port, wait_for_filing

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
#: The same stage with half the filing window (15 s wall), for the runs that only account for what was filed: a
#: worker killed mid-run keeps the full hour, room for the kill, its notice and the dossiers filed after it.
ACCOUNTING = PLAN.replace("duration: 60m", "duration: 30m")


def _start(tmp_path: Path, text: str = PLAN) -> tuple[subprocess.Popen[str], Path]:
    plan = tmp_path / "dist.yaml"
    plan.write_text(text, encoding="utf-8")
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--workers", "2",
                             "--reports-dir", str(reports)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    return proc, reports


def _accounting(run_dir: Path) -> tuple[dict, set[int], set[int]]:
    stage = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["stages"][0]
    filed = {e["id"] for e in read_events(run_dir / "ledger" / "dist.jsonl") if e["kind"] == "submitted"}
    with sqlite3.connect(run_dir / "national.sqlite") as db:  # where citizens file (the ids are its own)
        on_portal = {r[0] for r in db.execute("SELECT id FROM dossiers")}
    return stage, filed, on_portal


def test_two_workers_account_for_every_dossier(tmp_path: Path) -> None:
    proc, reports = _start(tmp_path, ACCOUNTING)
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
    # Early in the 30 s filing window: both workers are running users once dossiers are being filed (the
    # master starts the stage when all have joined).
    pids_file = wait_for_filing(reports, "dist", 5, proc) / "stages" / "dist" / "workers.json"
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


def _with_rehearse_worker(tmp_path: Path, text: str, *, processes: int, local_workers: int
                          ) -> tuple[subprocess.CompletedProcess[str], subprocess.Popen[str], str, Path]:
    """A run whose master waits for `processes` workers from `rehearse worker` (as another machine would
    start them, here on loopback) besides its `local_workers`; (run, worker, worker's output, reports)."""
    port = free_port()
    plan = tmp_path / "plan.yaml"
    plan.write_text(text, encoding="utf-8")
    worker = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "worker", str(plan), "--master",
                               f"127.0.0.1:{port}", "--processes", str(processes)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    reports = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--workers", str(local_workers),
                          "--remote-workers", str(processes), "--master-bind", f"127.0.0.1:{port}",
                          "--reports-dir", str(reports)], capture_output=True, text=True, timeout=240, cwd=ROOT)
    out, err = worker.communicate(timeout=60)
    return run, worker, out + err, reports


def test_a_worker_from_another_machine_joins_with_rehearse_worker(tmp_path: Path) -> None:
    """`rehearse worker` as a second machine would run it (here on loopback): it joins and its users count."""
    run, worker, out, reports = _with_rehearse_worker(tmp_path, ACCOUNTING, processes=1, local_workers=1)
    assert run.returncode == 0, run.stdout + run.stderr
    assert worker.returncode == 0 and "stage dist" in out, out
    stage, filed, on_portal = _accounting(next(reports.iterdir()))
    assert stage["workers"]["peak"] == 2 and filed == on_portal and filed


OPEN = """\
name: remote
target: reference
time_scale: 60
seed: 23
stages:
  - name: remote
    units: {codes: [26506, 26536, 25747, 26737]}
    duration: 30m
    grace: 10m
    citizens: {users: 24, spawn_rate: 50, arrival_rate: 4/min, think_time: [30s, 1m], follow_interval: 1m}
    officers: {think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}
"""


def test_remote_workers_share_the_identities_and_the_arrival_rate(tmp_path: Path) -> None:
    """Two `rehearse worker` processes: each learns its rank and the number of workers from the master.

    No citizen is used twice (their numbers interleave by worker), and the open model's arrivals of
    both workers add up to the plan's rate, not twice it.
    """
    run, worker, out, reports = _with_rehearse_worker(tmp_path, OPEN, processes=2, local_workers=0)
    assert run.returncode == 0, run.stdout + run.stderr
    assert worker.returncode == 0, out
    run_dir = next(reports.iterdir())
    stage = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["stages"][0]
    assert stage["workers"]["peak"] == 2 and not stage["workers"]["lost"]
    submitted = [e for e in read_events(run_dir / "ledger" / "remote.jsonl") if e["kind"] == "submitted"]
    citizens = [e["citizen"] for e in submitted]
    assert len(citizens) == len(set(citizens)) > 0, "a citizen identity was used by both workers"
    # A made-up id number is 079, the worker's rank (2 digits), the user's serial in its process (5) and
    # the visit (2): both workers ran visits, under ranks 0 and 1.
    assert {int(c[3:5]) for c in citizens} == {0, 1}
    # Every arrival is a visit (whose first request is the VNeID OTP) or is dropped for want of an idle
    # citizen. 4/min over a 30-minute window is 120 expected: Poisson, so sd = sqrt(120) ~ 11; four sd
    # either side fails a correct run about once in 16,000, and each worker taking the whole rate
    # (240 expected) is eleven sd away.
    expected = 4 * 30
    arrivals = stage["latency"]["requests"]["POST /api/auth/vneid/otp"]["count"] + stage["arrivals_dropped"]
    assert abs(arrivals - expected) <= 4 * math.sqrt(expected), (arrivals, expected)


def test_a_worker_that_joins_mid_stage_brings_citizens_of_its_own(tmp_path: Path) -> None:
    """A worker joining after the start is ranked as it connects: its citizens are new people, not
    another worker's (the master hands it users; their made-up id numbers carry its rank)."""
    port = free_port()
    plan = tmp_path / "dist.yaml"
    plan.write_text(PLAN.replace("duration: 60m", "duration: 100m"), encoding="utf-8")  # room to join, busy or not
    reports = tmp_path / "reports"
    run = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--workers", "2",
                            "--master-bind", f"127.0.0.1:{port}", "--reports-dir", str(reports)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        run_dir = wait_for_filing(reports, "dist", 5, run)
        late = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "worker", str(plan), "--master",
                                 f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        out, err = run.communicate(timeout=240)
        late_out, late_err = late.communicate(timeout=60)
    finally:
        for proc in (run, locals().get("late")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    (tmp_path / "late.out").write_text(late_out + late_err, encoding="utf-8")
    assert run.returncode == 0, out + err
    stage, filed, on_portal = _accounting(run_dir)
    # Locust hands the late worker users by stopping some elsewhere, mid-request if need be: a dossier
    # filed in that instant is on the portal with its answer lost (no ledger line). Never the reverse.
    assert stage["workers"]["peak"] == 3 and filed <= on_portal and stage["dossiers"]["lost"] == 0, \
        (stage["workers"], late_out + late_err)
    assert len(on_portal - filed) <= len(stage["unit_codes"]) * 2 + 40 // 3, on_portal - filed
    citizens = [e["citizen"] for e in read_events(run_dir / "ledger" / "dist.jsonl") if e["kind"] == "submitted"]
    assert len(citizens) == len(set(citizens)), "a citizen identity was used twice"
    assert {int(c[3:5]) for c in citizens} == {0, 1, 2}, "the late worker's citizens filed under their own rank"

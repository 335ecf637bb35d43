"""Staged plans for real: the cutover, faults on the timeline, ramps and arrivals, --from, Ctrl-C, a starved harness.

Every run is a real reference portal (two for a cutover) and a real Locust
process, a few units and a few dozen users, time compressed 120×, each
under 60 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import sigint_ignored

from rehearsal.results.ledger import read_events

ROOT = Path(__file__).resolve().parent.parent
UNITS = [26506, 26536, 25747, 26737, 27676, 26732]

HEAD = """\
name: {name}
target: reference
time_scale: 120
seed: 5
stages:
"""
STAGE = """\
  - name: {name}
    units: {{codes: {units}}}
    duration: {duration}
    grace: {grace}
    citizens:
      users: {citizens}
      spawn_rate: 50
      think_time: [30s, 1m]
      follow_interval: 1m
{citizens_extra}    officers:
      per_unit: 2
      think_time: [10s, 30s]
      poll_interval: 30s
      supplement_share: 0.1
      sign_in_lead: 1m
{extra}"""


def _stage(name: str, *, units: list[int] = UNITS, duration: str = "30m", grace: str = "20m", citizens: int = 30,
           citizens_extra: str = "", extra: str = "") -> str:
    return STAGE.format(name=name, units=units, duration=duration, grace=grace, citizens=citizens,
                        citizens_extra=citizens_extra, extra=extra)


def _plan(tmp_path: Path, name: str, *stages: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(HEAD.format(name=name) + "".join(stages), encoding="utf-8")
    return path


def _run(plan: Path, *args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], Path, dict]:
    reports = plan.parent / "reports"
    proc = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(reports),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    run_dir = sorted(reports.iterdir())[-1]
    return proc, run_dir, json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


def _portal_codes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT code FROM dossiers")}


def test_cutover_on_the_reference_portals(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "cut", _stage("cut", duration="40m", citizens=40, extra="""\
    cutover: {at: 20m, mode: redirect, retry_after: 1m}
    gates: [migration_found_rate == 100%, lost_dossiers == 0, duplicated_dossiers == 0, interruption_s <= 30]
"""), _stage("after", units=UNITS[:2], duration="10m", grace="10m", citizens=8,
             extra="    gates: [lost_dossiers == 0]\n"))
    proc, run_dir, summary = _run(plan)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cut, after = summary["stages"]
    c = cut["cutover"]
    assert c["mode"] == "redirect" and c["error"] is None
    assert c["open_at_close"] > 0 and c["found_on_national"] == c["open_at_close"]
    assert c["migration_found_rate"] == 1.0 and cut["dossiers"]["duplicated"] == 0
    # Everyone signed in on the legacy portal lost that session and signed in again on the national one: each
    # user the ledger says lost a session also says signed in again (however slow the machine made it).
    events = list(read_events(run_dir / "ledger" / "cut.jsonl"))
    lost_by = {e["user"] for e in events if e["kind"] == "session_lost"}
    assert c["sessions_lost"] > 0 and lost_by == {e["user"] for e in events if e["kind"] == "session_restored"}
    assert c["sessions_restored"] >= len(lost_by)
    assert c["interruption_s"] is not None and c["interruption_s"] <= 30
    # The single-minute cutover is a runbook of one switch phase: its phase marks beside the cutover's own.
    assert [m["kind"] for m in cut["markers"] if not m["kind"].startswith("phase_")] == \
        ["cutover_close", "migration_done"]
    assert [m["kind"] for m in cut["markers"] if m["kind"].startswith("phase_")] == ["phase_start", "phase_end"]
    # Dossiers filed before the close are on the legacy portal; after it, on the national one;
    # every open one of the legacy portal also on the national one; none lost.
    # (Two systems: the city portal writes into HCMC's platform, ``provincial.sqlite``; the code is the key.)
    filed = [(e["t"], e["code"]) for e in events if e["kind"] == "submitted"]
    national, legacy = _portal_codes(run_dir / "national.sqlite"), _portal_codes(run_dir / "provincial.sqlite")
    closed = c["closed_at"]
    assert any(t < closed for t, _ in filed) and any(t > closed for t, _ in filed)
    assert all(i in legacy for t, i in filed if t < closed - 1)
    assert all(i in national for t, i in filed if t > closed + 1)
    assert {i for _, i in filed} <= national | legacy
    # The next stage runs on the national portal only.
    assert after["verdict"] == "GO" and after["cutover"] is None
    after_filed = [e for e in read_events(run_dir / "ledger" / "after.jsonl") if e["kind"] == "submitted"]
    after_ids = {e["code"] for e in after_filed}
    # (HCMC's platform holds them too, pulled by its link: on the national portal only is where they were filed.)
    assert after_ids and after_ids <= national and {e["system"] for e in after_filed} == {"national"}


def test_officers_away_sink_the_stage_and_the_units_are_named(tmp_path: Path) -> None:
    away = UNITS[:3]
    plan = _plan(tmp_path, "absent", _stage("absent", citizens=36, extra=f"""\
    faults:
      - {{kind: absence, at: 0s, units: {{codes: {away}}}}}
    gates: [completion_rate >= 90%, lost_dossiers == 0]
"""))
    proc, run_dir, summary = _run(plan)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  completion_rate >= 90%: observed" in proc.stdout
    stage = summary["stages"][0]
    assert stage["verdict"] == "NO-GO" and stage["dossiers"]["lost"] == 0
    assert set(stage["units_below_target"]) == {u for u in away if stage["unit_results"][str(u)]["submitted"]}
    assert set(stage["units_below_target"]) and all(
        stage["unit_results"][str(u)]["completion_rate"] >= 0.9 for u in UNITS[3:]
        if stage["unit_results"].get(str(u), {}).get("submitted"))
    away_events = [e for e in read_events(run_dir / "ledger" / "absent.jsonl") if e["kind"] == "officer_away"]
    assert {e["unit"] for e in away_events} == set(away)


def test_silent_drop_is_reported_as_exactly_the_dropped_dossiers(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "drop", _stage("drop", duration="20m", grace="10m", citizens=30, extra="""\
    faults:
      - {kind: silent-drop, at: 1m, rate: 10%}
    gates: [lost_dossiers == 0]
"""))
    proc, run_dir, summary = _run(plan)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # The portal's own account of what it deleted, from its log, not from our reconciliation.
    dropped = {int(n) for n in re.findall(r"silent-drop: dossier (\d+)", (run_dir / "national.log").read_text())}
    stage = summary["stages"][0]
    assert dropped, "10% of the dossiers should have been dropped"
    assert set(stage["lost_ids"]) == dropped and stage["dossiers"]["lost"] == len(dropped)
    assert stage["gates"][0] == {"name": "lost_dossiers == 0", "expr": "lost_dossiers == 0",
                                 "observed": len(dropped), "passed": False, "status": "failed",
                                 "expected": "== 0", "detail": "", "starved_s": None, "harness_ms": None,
                                 "few_dossiers": False}


def test_latency_errors_outage_and_slow_agency_on_the_timeline(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "faults", _stage("faults", duration="30m", grace="10m", citizens=30, extra="""\
    faults:
      - {name: slow forms, kind: latency, at: 0s, endpoints: ["GET /api/procedures/<code>"], delay: 250ms}
      - {name: flaky search, kind: errors, at: 0s, endpoints: ["GET /api/procedures"], rate: 50%, status: 500}
      - {name: blackout, kind: outage, at: 15m, for: 2m}
      - {name: slow agency, kind: slow-agency, at: 0s, factor: 3}
"""))
    proc, run_dir, summary = _run(plan)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # no gates: GO whatever was measured
    stage = summary["stages"][0]
    requests = stage["requests"]
    assert requests["GET /api/procedures/[code]"]["p50_ms"] >= 250
    assert requests["GET /api/officer/queue"]["p50_ms"] < 250  # not a chosen endpoint
    search = requests["GET /api/procedures?q"]
    assert 0.3 < search["failures"] / search["count"] < 0.7
    markers = [(m["kind"], m["name"]) for m in stage["markers"]]
    assert ("fault_start", "blackout") in markers and ("fault_end", "blackout") in markers
    assert {name for _, name in markers} == {"slow forms", "flaky search", "blackout", "slow agency"}
    start = next(m["t"] for m in stage["markers"] if m["name"] == "blackout" and m["kind"] == "fault_start")
    end = next(m["t"] for m in stage["markers"] if m["name"] == "blackout" and m["kind"] == "fault_end")
    assert 0.5 < end - start < 1.5  # 2 simulated minutes at 120×
    failed = [e for e in read_events(run_dir / "ledger" / "faults.jsonl")
              if e["kind"] == "request_failed" and e.get("error") == "outage"]
    assert failed and all(start - 0.5 <= e["t"] <= end + 0.5 for e in failed)
    # Liên thông dossiers waited 3 × 10 min at the second agency (history: transfer to take-back).
    with sqlite3.connect(run_dir / "provincial.sqlite") as db:  # officers and the second agency work there
        waits = db.execute(
            "SELECT (julianday(b.at) - julianday(a.at)) * 86400 FROM history a JOIN history b "
            "ON a.dossier_id = b.dossier_id AND a.note LIKE 'chuyển %' AND b.note = 'nhận lại từ cơ quan phối hợp'"
        ).fetchall()
    assert waits and min(w for (w,) in waits) >= 3 * 600 / 120 - 0.1


def test_ramp_open_model_and_resume_from_a_stage(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path, "shapes",
        _stage("ramp", duration="30m", grace="5m", citizens=40, citizens_extra="""\
      ramp:
        - {to: 10, over: 4m}
        - {hold: 8m}
        - {to: 40, over: 4m}
"""),
        # Run twice (the whole plan, then --from it): 10 minutes of 6 arrivals a wall second to a pool of 6
        # already drop some, and no figure of it waits on the officers (a short grace).
        _stage("arrivals", duration="10m", grace="5m", citizens=6, citizens_extra="""\
      arrival_rate: 3/min
"""))
    proc, run_dir, summary = _run(plan)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ramp, arrivals = summary["stages"]
    series = [json.loads(line) for line in (run_dir / "stages" / "ramp" / "timeseries.jsonl").read_text().splitlines()]
    officers = 2 * len(UNITS)
    citizens = [r["users"] - officers for r in series]
    # Held at 10 in the middle (after 1m lead + 4m ramp, before 13m) and at 40 at the end.
    t0 = series[0]["t"] - 2
    middle = [c for r, c in zip(series, citizens) if t0 + 4 < r["t"] < t0 + 6]
    assert middle and set(middle) == {10}
    assert max(citizens) == 40
    # Open model: a pool of 6 citizens and arrivals at 3/min (6/s wall) cannot all be served.
    assert arrivals["dossiers"]["submitted"] > 0 and arrivals["arrivals_dropped"] > 0
    # ... and its visits' first requests are timed from when each arrival was due (coordinated omission).
    assert arrivals["latency"]["basis"].startswith("open model") and ramp["latency"]["basis"] == "service"
    assert arrivals["latency"]["requests"]["POST /api/auth/vneid/otp"]["count"] > 0
    # Resume: only the named stage and the ones after it.
    proc, run_dir, summary = _run(plan, "--from", "arrivals")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s["name"] for s in summary["stages"]] == ["arrivals"] and summary["started_from"] == "arrivals"


@pytest.mark.parametrize(("sig", "inherited"), [(signal.SIGINT, "default"), (signal.SIGINT, "ignored"),
                                                (signal.SIGTERM, "default")], ids=["ctrl-c", "ctrl-c-in-background",
                                                                                   "sigterm"])
def test_ctrl_c_mid_stage_keeps_what_was_measured(sig: int, inherited: str, tmp_path: Path) -> None:
    """Ctrl-C, or SIGTERM (a CI runner cancelling the job), or SIGINT to a run started with it ignored."""
    plan = _plan(tmp_path, "stop", _stage("stop", duration="2h", grace="0s", citizens=30))
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(reports)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=sigint_ignored if inherited == "ignored" else None)
    deadline = time.monotonic() + 60
    ledger = None
    while time.monotonic() < deadline:
        runs = list(reports.iterdir()) if reports.exists() else []
        ledger = runs[0] / "ledger" / "stop.jsonl" if runs else None
        if ledger and ledger.exists() and any(e["kind"] == "submitted" for e in read_events(ledger)):
            break
        time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, out + err
    assert "interrupted" in err and "Traceback" not in err
    run_dir = ledger.parent.parent
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "INCOMPLETE" and summary["finished_at"]
    stage = summary["stages"][0]
    assert stage["verdict"] == "INCOMPLETE" and stage["dossiers"]["submitted"] > 0
    assert stage["dossiers"]["lost"] == 0
    assert (run_dir / "stages" / "stop" / "locust_stats.csv").exists()
    assert "INCOMPLETE" in (run_dir / "index.html").read_text(encoding="utf-8")


def test_kill_9_mid_stage_leaves_a_report_of_what_was_measured(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "crash", _stage("crash", duration="2h", grace="0s", citizens=30))
    reports = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(reports)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 60
    ledger = None
    while time.monotonic() < deadline:
        runs = list(reports.iterdir()) if reports.exists() else []
        ledger = runs[0] / "ledger" / "crash.jsonl" if runs else None
        if ledger and ledger.exists() and sum(e["kind"] == "submitted" for e in read_events(ledger)) >= 20:
            break
        time.sleep(0.5)
    proc.kill()  # SIGKILL: no handler runs in the harness
    killed_at = time.time()
    proc.wait(10)
    run_dir = ledger.parent.parent
    port = int((run_dir / "national.port").read_text())
    deadline = time.monotonic() + 30  # the portal and Locust follow their parent (PR_SET_PDEATHSIG)
    serving = True
    while serving and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.5)
        except OSError:
            serving = False
    assert not serving, "the portal outlived the killed harness"
    events = list(read_events(ledger))
    assert max(e["t"] for e in events) >= killed_at - 5  # flushed at most 5 s before the kill
    filed = {e["id"] for e in events if e["kind"] == "submitted"}
    with sqlite3.connect(run_dir / "national.sqlite") as db:
        assert filed <= {r[0] for r in db.execute("SELECT id FROM dossiers")}  # every 2xx is on the portal
    report = subprocess.run([sys.executable, "-m", "rehearsal.cli", "report", str(run_dir)], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert report.returncode == 0, report.stderr
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    filed = {e["id"] for e in read_events(ledger) if e["kind"] == "submitted"}  # Locust flushed on its way out
    assert "INCOMPLETE" in html and "chưa đối soát" in html and f"{len(filed):,} · " in html


def test_a_starved_harness_says_where_and_marks_the_gates_judged_there(tmp_path: Path) -> None:
    # Starved for real: the Locust process is stopped (SIGSTOP) for 7 s mid-stage, then let go. The
    # requests gate's windows are 3 s (6m at 120x): one of them lies wholly in the stall, with no requests.
    plan = _plan(tmp_path, "starve", _stage("starve", duration="40m", grace="10m", citizens=20, extra="""\
    gates: ["requests over every 6m >= 1", p95_ms <= 60000, lost_dossiers == 0]
"""))
    reports = tmp_path / "reports"
    junit = tmp_path / "junit.xml"
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(reports),
                             "--junit", str(junit)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    series = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # mid-stage: once the time series shows dossiers being filed
        runs = list(reports.iterdir()) if reports.exists() else []
        series = runs[0] / "stages" / "starve" / "timeseries.jsonl" if runs else None
        if series and series.exists() and any(json.loads(line).get("submitted")
                                              for line in series.read_text().splitlines()[:-1]):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    locust = next(p for p in psutil.Process(proc.pid).children(recursive=True) if "locust" in " ".join(p.cmdline()))
    stopped_at = time.time()
    os.kill(locust.pid, signal.SIGSTOP)
    time.sleep(7)
    os.kill(locust.pid, signal.SIGCONT)
    resumed_at = time.time()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err  # the empty windows of the stall fail the requests gate
    run_dir = series.parent.parent.parent
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    stage = summary["stages"][0]
    # Where it happened: the row written after the stall says how long the event loop was stuck and when it
    # woke, and a starved window covers the stall (on a busy machine it may be part of a longer one).
    rows = [json.loads(line) for line in series.read_text().splitlines()]
    stall = max(rows, key=lambda r: r.get("lag_max_ms") or 0)
    assert 6500 <= stall["lag_max_ms"] <= 1000 * (resumed_at - stopped_at) + 500
    assert resumed_at - 0.5 <= stall["lag_max_at"] <= resumed_at + 2
    assert all(k in r for r in rows for k in ("lag_max_ms", "lag_p99_ms", "runqueue_share", "cpu_pressure"))
    starved = stage["starved"]
    covering = [w for w in starved["windows"] if w["from"] <= stopped_at + 0.5 and w["to"] >= resumed_at - 0.5]
    assert covering and "event loop" in covering[0]["why"] and covering[0]["seconds"] >= 6.5
    assert starved["seconds"] >= 6.5 and 0 < starved["share"] <= 1
    # The gates judged on it: the requests gate failed in a window of the stall and stays failed, marked; the
    # whole-stage latency gate passed, marked; lost dossiers are counted on the portal: not marked.
    gates = {g["name"]: g for g in stage["gates"]}
    every, p95, lost = gates["requests over every 6m >= 1"], gates["p95_ms <= 60000"], gates["lost_dossiers == 0"]
    assert every["status"] == "failed" and every["observed"] == 0 and every["starved_s"] > 0
    assert every["detail"].startswith("worst window ") and "measurement untrustworthy" in every["detail"]
    assert p95["status"] == "passed" and p95["starved_s"] >= 6.5 and "measurement untrustworthy" in p95["detail"]
    assert lost["status"] == "passed" and lost["starved_s"] is None and lost["detail"] == ""
    # Said on the stage line and the verdict line, in JUnit, by 'rehearse gate' and in the report.
    # (A note on the generator's share of latency may follow: `rehearsal.results.generator_share`.)
    late_note = r"(  \(latency mostly the harness's own: [^)]*\))?"
    assert re.search(r"^starve: NO-GO .*\(measurement untrustworthy: harness starved for [0-9.,]+ s\)" + late_note + "$",
                     out, re.M)
    assert re.search(r"^verdict: NO-GO  \(measurement untrustworthy: harness starved for [0-9.,]+ s\)" + late_note + "$",
                     out, re.M)
    assert "measurement untrustworthy" in junit.read_text(encoding="utf-8")
    again = subprocess.run([sys.executable, "-m", "rehearsal.cli", "gate", str(run_dir)], capture_output=True,
                           text=True, timeout=60, cwd=ROOT)
    assert again.returncode == 1 and re.search(r"FAIL  requests over every 6m >= 1: .*measurement untrustworthy",
                                               again.stdout), again.stdout + again.stderr
    html = (run_dir / "index.html").read_text(encoding="utf-8")
    assert "data-kpi='starved-run'" in html and "data-kpi='starved'" in html and "data-kpi='starved-gate'" in html

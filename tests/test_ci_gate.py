"""The CI gate for real: exit codes, JUnit XML, baselines, compare, and a stage aborted by a failing gate.

Small real runs (six units, a few dozen users, ×120, about 20 s each) on the
reference portal. The procedure page (``GET /api/procedures/[code]``) is
slowed by a fixed latency fault (2 s, then +20 %, then +5 %), so that its
p95 is set by the fault and a regression is a regression, not the noise of a
shared machine (the portal's own time there varies by 10-60 ms when the machine is busy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

ROOT = Path(__file__).resolve().parent.parent
UNITS = [26506, 26536, 25747, 26737, 27676, 26732]

PLAN = """\
name: {name}
target: reference
time_scale: 120
seed: 3
stages:
  - name: filing
    units: {{codes: {units}}}
    duration: 20m
    grace: 5m
    citizens: {{users: 24, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}}
    officers: {{per_unit: 2, think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}}
    faults:
      - {{kind: latency, at: 0s, delay: {delay}ms, endpoints: ["GET /api/procedures/*"]}}
    gates:
      - {{name: no lost dossiers, expr: lost_dossiers == 0}}
      - {{name: errors, expr: error_rate < 5%}}
      - {{name: p95 filing, expr: 'p95_ms{{name="POST /api/dossiers"}} <= 5000'}}
      - {{name: p95 every 5 minutes, expr: p95_ms over every 5m <= 5000}}
      - {{name: p95 against the baseline, expr: 'p95_ms{{name="GET /api/procedures/[code]"}} <= baseline * 1.10'}}
gates:
  - {{name: run requests, expr: requests > 100}}
"""


def _plan(tmp_path: Path, name: str, delay: float) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(PLAN.format(name=name, units=UNITS, delay=delay), encoding="utf-8")
    return path


def _rehearse(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rehearsal.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _run(plan: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    reports = plan.parent / f"reports-{plan.stem}"
    proc = _rehearse("run", plan, "--reports-dir", reports, *args)
    return proc, sorted(reports.iterdir())[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """A baseline run at 2 s, saved as a baseline; then +20 % and +5 % runs judged against it."""
    tmp = tmp_path_factory.mktemp("ci")
    out: dict[str, tuple[subprocess.CompletedProcess[str], Path]] = {}
    out["base"] = _run(_plan(tmp, "base", 2000), "--junit", tmp / "base.xml")
    saved = _rehearse("baseline", "save", out["base"][1], "b150", "--dir", tmp / "baselines")
    assert saved.returncode == 0, saved.stderr
    baseline = tmp / "baselines" / "b150.json"
    out["slower"] = _run(_plan(tmp, "slower", 2400), "--baseline", baseline, "--junit", tmp / "slower.xml")
    out["similar"] = _run(_plan(tmp, "similar", 2100), "--baseline", baseline)
    out["baseline"] = (saved, baseline)
    return out


def test_a_run_that_meets_its_gates_exits_0_and_skips_the_baseline_gate(runs) -> None:
    proc, run_dir = runs["base"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    gates = {g["name"]: g for g in summary["stages"][0]["gates"]}
    assert gates["p95 against the baseline"]["status"] == "skipped"
    assert all(g["status"] == "passed" for n, g in gates.items() if n != "p95 against the baseline")
    assert summary["gates"][0]["name"] == "run requests" and summary["gates"][0]["passed"]
    # HDR figures: the page's p95 is the fault's 2 s plus the portal's own time.
    assert 2000 <= summary["stages"][0]["latency"]["requests"]["GET /api/procedures/[code]"]["p95_ms"] < 2200


def test_junit_lists_every_gate_and_a_standard_parser_reads_it(runs, tmp_path: Path) -> None:
    _, run_dir = runs["base"]
    xml = JUnitXml.fromfile(str(run_dir.parent.parent / "base.xml"))
    cases = {(suite.name, case.name): case for suite in xml for case in suite}
    expected = {("base.filing", n) for n in ("stage ran to its end", "no lost dossiers", "errors", "p95 filing",
                                             "p95 every 5 minutes", "p95 against the baseline")}
    assert expected | {("base.run", "run requests")} == set(cases)
    assert isinstance(cases[("base.filing", "p95 against the baseline")].result[0], Skipped)
    assert all(not c.result for k, c in cases.items() if k[1] != "p95 against the baseline")
    assert xml.tests == 7 and xml.failures == 0 and xml.skipped == 1


def test_a_20_percent_p95_regression_fails_against_the_baseline(runs, tmp_path: Path) -> None:
    proc, run_dir = runs["slower"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  p95 against the baseline" in proc.stdout
    gate = next(g for g in json.loads((run_dir / "summary.json").read_text())["stages"][0]["gates"]
                if g["name"] == "p95 against the baseline")
    assert gate["status"] == "failed" and "baseline" in gate["expected"]
    xml = JUnitXml.fromfile(str(run_dir.parent.parent / "slower.xml"))
    failed = [c for s in xml for c in s if c.result and isinstance(c.result[0], Failure)]
    assert [c.name for c in failed] == ["p95 against the baseline"]
    assert "observed" in failed[0].result[0].message and "expected <=" in failed[0].result[0].message


def test_a_5_percent_change_passes_against_the_baseline(runs) -> None:
    proc, run_dir = runs["similar"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gate = next(g for g in json.loads((run_dir / "summary.json").read_text())["stages"][0]["gates"]
                if g["name"] == "p95 against the baseline")
    assert gate["status"] == "passed"


def test_rehearse_gate_rejudges_a_finished_run(runs, tmp_path: Path) -> None:
    _, baseline = runs["baseline"]
    _, base_dir = runs["base"]
    _, slow_dir = runs["slower"]
    ok = _rehearse("gate", base_dir, "--baseline", baseline, "--junit", tmp_path / "g.xml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS  p95 against the baseline" in ok.stdout
    assert JUnitXml.fromfile(str(tmp_path / "g.xml")).failures == 0
    bad = _rehearse("gate", slow_dir, "--baseline", baseline)
    assert bad.returncode == 1 and "FAIL  p95 against the baseline" in bad.stdout
    # Stricter gates from another scenario file, on the same finished run.
    strict = tmp_path / "strict.yaml"
    strict.write_text((base_dir / "scenario.yaml").read_text().replace("<= 5000", "<= 100"))
    judged = _rehearse("gate", base_dir, "--scenario", strict)
    assert judged.returncode == 1 and "FAIL  p95 every 5 minutes" in judged.stdout and "worst window" in judged.stdout
    missing = _rehearse("gate", base_dir, "--baseline", "no-such-baseline")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such baseline" in missing.stderr


def test_compare_prints_the_differences_and_draws_them(runs, tmp_path: Path) -> None:
    _, baseline = runs["baseline"]
    _, slow_dir = runs["slower"]
    chart = tmp_path / "compare.png"
    proc = _rehearse("compare", baseline, slow_dir, "--chart", chart)
    assert proc.returncode == 0, proc.stderr
    key = 'p95_ms{name="GET /api/procedures/[code]"}'
    row = next(line for line in proc.stdout.splitlines() if line.startswith("filing") and key in line)
    # Each side's figure as its source holds it (the baseline's file, the run's summary), each with its fault
    # (2 s, then 2.4 s: every request of the page waited that long), and the change computed from them. How
    # much of each figure is the portal's own time is the machine's business, not compare's.
    a = json.loads(baseline.read_text())["stages"]["filing"][key]
    b = json.loads((slow_dir / "summary.json").read_text())["stages"][0]["latency"]["requests"][key[13:-2]]["p95_ms"]
    shown_a, shown_b, _, pct = (float(x.rstrip("%").replace(",", "")) for x in row.split()[-4:])
    assert a >= 2000 and b >= 2400
    assert abs(shown_a - a) <= 0.051 and abs(shown_b - b) <= 0.051 and abs(pct - (b - a) / a * 100) <= 0.051
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_baseline_file_is_small_and_keyed_like_the_gates(runs) -> None:
    _, baseline = runs["baseline"]
    body = json.loads(baseline.read_text())
    figures = body["stages"]["filing"]
    assert {"p95_ms", "completion_rate", 'p95_ms{name="POST /api/dossiers"}', "p95_ms over every 5m"} <= set(figures)
    assert body["run"]["requests"] > 100
    assert baseline.stat().st_size < 50_000


def test_a_failing_gate_aborts_the_stage_and_the_run(tmp_path: Path) -> None:
    plan = tmp_path / "abort.yaml"
    stage = """\
  - name: {name}
    units: {{codes: {units}}}
    duration: {duration}
    citizens: {{users: 24, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}}
    officers: {{per_unit: 2, think_time: [10s, 30s], poll_interval: 30s}}
"""
    plan.write_text("name: abort\ntarget: reference\ntime_scale: 120\nstages:\n"
                    + stage.format(name="slowed", units=UNITS, duration="2h") + """\
    faults:
      - {kind: latency, at: 10m, delay: 3s}
    gates:
      - lost_dossiers == 0
      - {name: p95 now, expr: p95_ms over last 10m < 1500, abort_on_fail: true, abort_grace: 5m}
""" + stage.format(name="never", units=UNITS[:2], duration="10m"), encoding="utf-8")
    proc, run_dir = _run(plan, "--junit", tmp_path / "abort.xml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "NO-GO" and summary["not_run"] == ["never"]
    stage = summary["stages"][0]
    # Planned: 2 simulated hours (60 wall s). The fault starts at 10 min; the gate's 10-minute window
    # (5 wall s) fills with 3-second requests within a few wall seconds of it. The margin is wide on
    # purpose: a harness starved on a busy machine has shown p95s of some hundred ms over a wall
    # second, never 1.5 s over five (a narrower one aborted before the fault on a busy CI run).
    assert 10 * 60 <= stage["aborted"]["at_s"] < 30 * 60
    gate = next(g for g in stage["gates"] if g["name"] == "p95 now")
    assert gate["status"] == "failed" and "aborted the stage" in gate["detail"]
    assert stage["dossiers"]["lost"] == 0 and stage["verdict"] == "NO-GO"
    assert any(m["kind"] == "abort" for m in stage["markers"])
    assert "stage aborted" in proc.stdout and "not run: never" in proc.stdout
    xml = JUnitXml.fromfile(str(tmp_path / "abort.xml"))
    cases = {(s.name, c.name): c for s in xml for c in s}
    assert isinstance(cases[("abort.never", "stage ran to its end")].result[0], Skipped)
    assert isinstance(cases[("abort.slowed", "p95 now")].result[0], Failure)
    assert not any(isinstance(r, Error) for c in cases.values() for r in c.result)


def test_a_malformed_gate_exits_2_before_any_load(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "bad", 2000)
    plan.write_text(plan.read_text().replace("p95_ms over every 5m <= 5000", "p95_ms over each 5m <= 5000"))
    reports = tmp_path / "reports-bad"
    proc = _rehearse("run", plan, "--reports-dir", reports)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "expected a window" in proc.stderr
    assert not reports.exists()  # nothing started, nothing written

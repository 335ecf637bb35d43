"""Completion rates with their 95 % interval: a small stage whose rate passes 96 % and whose lower bound does not.

One short real stage on the reference systems (two units, a handful of
citizens, 120× time, a long grace so every dossier is finished): the point
estimate is 100 %, the interval of so few dossiers reaches far below 96 %.
``summary.json`` carries every rate's bounds (stage, unit, former province,
over time, national), ``completion_rate.lower >= 96%`` fails the stage while
``completion_rate >= 96%`` passes (and says it passed on too few dossiers),
``rehearse gate`` judges the run again by other bounds, and the report marks
the thin units. Bad spellings of a bound are refused with file:line and a
did-you-mean, like every gate error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rehearsal.plan.gate_language import parse_gate
from rehearsal.report.page import render
from rehearsal.results.completion import WIDE_INTERVAL, by_group, over_time, rate_interval
from rehearsal.results.confidence import wilson
from rehearsal.results.gates import GateData, evaluate

ROOT = Path(__file__).resolve().parent.parent
UNITS = [26506, 26536]  # two phường of former Bà Rịa – Vũng Tàu

SCENARIO = f"""\
name: few
target: reference
time_scale: 120
seed: 5
stages:
  - name: few
    units: {{codes: {UNITS}}}
    duration: 10m
    grace: 40m
    citizens:
      users: 6
      spawn_rate: 50
      think_time: [30s, 1m]
      follow_interval: 1m
      other_unit_share: 0
      withdraw_share: 0
    officers:
      per_unit: 2
      think_time: [10s, 20s]
      poll_interval: 20s
      supplement_share: 0
      sign_in_lead: 1m
    gates:
      - {{name: point, expr: completion_rate >= 96%}}
      - {{name: lower, expr: completion_rate.lower >= 96%}}
"""


def _rehearse(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rehearsal.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("few")
    plan = tmp / "few.yaml"
    plan.write_text(SCENARIO, encoding="utf-8")
    proc = _rehearse("run", str(plan), "--reports-dir", str(tmp / "reports"), timeout=240)
    run_dir = sorted((tmp / "reports").iterdir())[-1]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return {"proc": proc, "tmp": tmp, "run_dir": run_dir, "summary": summary, "stage": summary["stages"][0]}


def _gate(stage: dict, name: str) -> dict:
    return next(g for g in stage["gates"] if g["name"] == name)


def test_the_point_passes_and_the_lower_bound_fails_the_stage(run: dict) -> None:
    stage = run["stage"]
    d = stage["dossiers"]
    # The premise: a few dossiers, every one finished (a rate above 96 %), yet an interval far below it.
    assert 5 <= d["submitted"] <= 60 and d["lost"] == 0, d
    assert stage["completion_rate"] >= 0.96 and stage["completion_rate_lower"] < 0.96
    point, lower = _gate(stage, "point"), _gate(stage, "lower")
    assert point["status"] == "passed" and point["few_dossiers"] is True and "too few dossiers" in point["detail"]
    assert lower["status"] == "failed" and lower["observed"] == pytest.approx(stage["completion_rate_lower"], abs=1e-6)
    assert "95 % Wilson" in lower["detail"]
    assert stage["verdict"] == "NO-GO" and run["summary"]["verdict"] == "NO-GO"
    assert run["proc"].returncode == 1, run["proc"].stderr[-2000:]
    assert "FAIL  lower" in run["proc"].stdout


def test_every_rate_carries_its_interval(run: dict) -> None:
    stage = run["stage"]
    d = stage["dossiers"]
    n = d["submitted"] - d["withdrawn"]
    expected = wilson(d["complete"], n)
    assert expected is not None and stage["completion_rate_n"] == n
    assert stage["completion_rate_lower"] == pytest.approx(expected.low, abs=1e-6)
    assert stage["completion_rate_upper"] == pytest.approx(expected.high, abs=1e-6)
    assert stage["completion_interval"] == {"method": "wilson", "confidence": 0.95, "wide_above": WIDE_INTERVAL}
    # Two systems: the rate citizens see has its own interval, from the national portal's statuses.
    nat = wilson(d["complete_national"], d["submitted"] - d["withdrawn_national"])
    assert nat is not None and stage["completion_rate_national_lower"] == pytest.approx(nat.low, abs=1e-6)
    for code, r in stage["unit_results"].items():
        i = wilson(r["complete"], r["submitted"] - r["withdrawn"])
        assert i is not None and r["completion_rate_lower"] == pytest.approx(i.low, abs=1e-6), code
        assert r["completion_rate_upper"] == pytest.approx(i.high, abs=1e-6) and "completion_rate_national_lower" in r
    groups = stage["completion_by_group"]
    assert list(groups) == ["ba-ria-vung-tau"] and groups["ba-ria-vung-tau"]["units"] == 2
    assert groups["ba-ria-vung-tau"]["completion_rate_lower"] == stage["completion_rate_lower"]
    points = stage["completion_over_time"]
    assert points and all(p["completion_rate_lower"] <= p["completion_rate"] <= p["completion_rate_upper"]
                          for p in points)
    assert points[-1]["submitted"] == d["submitted"]  # the ledger's count at the end, as the harness saw it
    # Both units pass 96 % on a handful of dossiers each: listed, like units_below_target.
    assert stage["units_few_dossiers"] == UNITS


def test_rehearse_gate_judges_the_run_again_by_other_bounds(run: dict) -> None:
    other = run["tmp"] / "other.yaml"
    gates = ("      - completion_rate.upper >= 96%\n"
             f"      - completion_rate{{unit={UNITS[0]}}}.lower >= 30%\n"
             "      - completion_rate.lower{group=ba-ria-vung-tau} >= 50%\n"
             "      - completion_rate_national.lower >= 50%\n")
    other.write_text(SCENARIO.split("    gates:\n")[0] + "    gates:\n" + gates, encoding="utf-8")
    proc = _rehearse("gate", str(run["run_dir"]), "--scenario", str(other))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == 4 and "95 % Wilson" in proc.stdout
    strict = run["tmp"] / "strict.yaml"
    strict.write_text(SCENARIO.split("    gates:\n")[0] + "    gates:\n"
                      f"      - completion_rate{{unit={UNITS[1]}}}.lower >= 96%\n", encoding="utf-8")
    proc = _rehearse("gate", str(run["run_dir"]), "--scenario", str(strict))
    assert proc.returncode == 1 and f"FAIL  completion_rate{{unit={UNITS[1]}}}.lower >= 96%" in proc.stdout


def test_the_report_marks_the_units_and_the_go_on_few_dossiers(run: dict) -> None:
    html = (run["run_dir"] / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r"data-unit='\d+'", html)) == 168
    wide = re.findall(r"class='cell c\d wide' title='[^']*' data-unit='(\d+)' data-wide=1", html)
    assert sorted(int(c) for c in wide) == UNITS
    assert "KTC 95 %" in html and "rộng hơn 10 điểm" in html and "data-kpi='few-dossiers'" in html
    # The same stage had it passed: a GO that rests on too few dossiers says so under the verdict.
    summary = json.loads(json.dumps(run["summary"]))
    summary["verdict"] = summary["stages"][0]["verdict"] = "GO"
    summary["stages"][0]["gates"] = [g for g in summary["stages"][0]["gates"] if g["name"] == "point"]
    page = render(summary, lang="en")
    assert "data-kpi='few-dossiers-run'" in page and "GO rests on too few dossiers" in page
    assert "data-kpi='few-dossiers-gate'" in page and "95 % interval wider than 10 points" in page


def test_a_summary_from_before_the_intervals_still_renders(run: dict) -> None:
    old = json.loads(json.dumps(run["summary"]))
    for stage in old["stages"]:
        for key in [k for k in stage if k.startswith(("completion_rate_lower", "completion_rate_upper",
                                                      "completion_rate_n", "completion_rate_national_"))]:
            del stage[key]
        for key in ("completion_by_group", "completion_over_time", "units_few_dossiers", "completion_interval"):
            del stage[key]
        for r in stage["unit_results"].values():
            for key in [k for k in r if k.endswith(("_lower", "_upper", "_n"))]:
                del r[key]
        for g in stage["gates"]:
            g.pop("few_dossiers", None)
    page = render(old, lang="en")
    assert "data-wide" not in page and "few-dossiers" not in page and "100.0%" in page


# -- without a run: the language and the judge ----------------------------------------------------

@pytest.mark.parametrize(("expr", "key", "bound"), [
    ("completion_rate.lower >= 96%", "completion_rate.lower", "lower"),
    ("completion_rate.upper < 99%", "completion_rate.upper", "upper"),
    ("completion_rate.lower{group=hcmc} >= 90%", 'completion_rate.lower{group="hcmc"}', "lower"),
    ("completion_rate{unit=26506}.lower >= 0.9", 'completion_rate.lower{unit="26506"}', "lower"),
    ("completion_rate_national.lower >= 96%", "completion_rate_national.lower", "lower"),
    ("completion_rate.lower >= baseline - 1%", "completion_rate.lower", "lower"),
])
def test_bounds_parse(expr: str, key: str, bound: str) -> None:
    gate = parse_gate(expr)
    assert gate.key == key and gate.bound == bound and gate.metric.startswith("completion_rate")


@pytest.mark.parametrize(("expr", "message"), [
    ("completion_rate.lowr >= 96%", "unknown bound 'lowr' of completion_rate's 95 % interval (did you mean 'lower'?)"),
    ("completion_rate.hi >= 96%", "(did you mean 'upper'?)"),
    ("completion_rate_lower >= 96%", "unknown gate metric 'completion_rate_lower' (did you mean 'completion_rate.lower'?)"),
    ("p95_ms.lower <= 800", "p95_ms has no interval: '.lower' and '.upper' apply to the completion rates"),
    ("completion_rate.lower{unit=26506}.upper >= 1%", "the bound is given twice"),
    ("completion_rate.lower over last 10m >= 96%", "completion_rate is counted once, at the end of the stage"),
    ("completion_rate.lower >= 96", "completion_rate is a rate from 0 to 1: write 0.96 or 96%"),
    ("completion_rate.lower{group=binh-dong} >= 96%", "unknown group 'binh-dong' (did you mean 'binh-duong'?)"),
])
def test_a_bad_bound_says_file_line_and_what_was_meant(tmp_path: Path, expr: str, message: str) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("name: bad\nstages:\n  - name: one\n    duration: 1h\n    citizens:\n      users: 10\n"
                    "      spawn_rate: 5\n      think_time: [30s, 90s]\n    gates:\n"
                    f"      - completion_rate >= 90%\n      - '{expr}'\n", encoding="utf-8")
    proc = _rehearse("validate", str(plan))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"rehearse: error: {plan}:11: stages[0].gates[1]: "), proc.stderr
    assert message in proc.stderr, proc.stderr


def test_the_judge_reads_the_bound_from_the_same_counts_as_the_rate() -> None:
    # 96.4 % on 500 and 100 % on 3: both pass the point gate; neither lower bound reaches 96 %.
    units = {26506: {"submitted": 3, "complete": 3}, 26536: {"submitted": 500, "complete": 482},
             25747: {"submitted": 50_000, "complete": 48_150}}
    data = GateData(time_scale=1.0, start=0.0, end=1.0, units=units,
                    figures={"completion_rate": 48_635 / 50_503, "submitted_dossiers": 50_503,
                             "complete_dossiers": 48_635, "withdrawn_dossiers": 0})
    exprs = ["completion_rate{unit=26506} >= 96%", "completion_rate.lower{unit=26506} >= 96%",
             "completion_rate{unit=26536} >= 96%", "completion_rate.lower{unit=26536} >= 96%",
             "completion_rate.lower{unit=25747} >= 96%", "completion_rate.lower >= 96%",
             "completion_rate_national.lower >= 96%"]
    got = {r.expr: r for r in evaluate([parse_gate(e) for e in exprs], data)}
    assert got[exprs[0]].status == "passed" and got[exprs[0]].few_dossiers
    assert got[exprs[1]].status == "failed" and got[exprs[1]].observed == pytest.approx(0.4385, abs=1e-4)
    assert got[exprs[2]].status == "passed" and not got[exprs[2]].few_dossiers  # 500: an interval under 10 points
    assert got[exprs[3]].status == "failed" and got[exprs[4]].status == "passed" and got[exprs[5]].status == "passed"
    assert got[exprs[6]].observed is None and "national" in got[exprs[6]].detail


def test_groups_and_time_points_are_bounded_and_honest() -> None:
    units = {"26506": {"submitted": 3, "complete": 3, "withdrawn": 1}, "26536": {"submitted": 4, "complete": 2},
             "25747": {"submitted": 0, "complete": 0}, "0": {"submitted": 2, "complete": 0}}
    groups = by_group(units)
    assert set(groups) == {"ba-ria-vung-tau", "binh-duong"}  # unit 0 (unknown) belongs to no former province
    brvt = groups["ba-ria-vung-tau"]
    assert (brvt["complete"], brvt["completion_rate_n"]) == (5, 6)
    assert groups["binh-duong"]["completion_rate"] is None and groups["binh-duong"]["completion_rate_lower"] is None
    series = [{"t": float(i), "submitted": i, "complete": i // 2, "withdrawn": 0} for i in range(1000)]
    points = over_time(series)
    assert len(points) == 120 and points[-1]["submitted"] == 999 and points[0]["submitted"] >= 1
    assert rate_interval(0, 0) is None and rate_interval(2, 3, 3) is None

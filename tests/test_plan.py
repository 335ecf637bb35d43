"""The plan model: good scenarios load into the right types; bad ones say file, line, field and what was wrong.

The bad cases are files in ``tests/bad_scenarios/``, one mistake each. The first line
of each says what it tests and what the error must say::

    # <what it tests> | line <N or -> | field <path or -> | expect: <fragment of the message>
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rehearsal.plan
from rehearsal.errors import GateSyntaxError, PlanError
from rehearsal.plan import (GATE_METRICS, CitizenLoad, Gate, OfficerLoad, Plan, Stage, ThinkTime, UnitSelection,
                            describe_plan, load_plan, parse_duration)

ROOT = Path(__file__).resolve().parent.parent
BAD_DIR = ROOT / "tests" / "bad_scenarios"
BAD_FILES = sorted(BAD_DIR.glob("*.yaml"))

GOOD = """\
name: trials-2025
description: The two HCMC trials of June 2025.
target: reference
time_scale: 60
seed: 7
stages:
  - name: pilot-22-6
    description: 102 old-HCMC units and 30 from Bà Rịa – Vũng Tàu.
    units:
      former_province: [hcmc, ba-ria-vung-tau]
    duration: 2h
    grace: 30m
    citizens: &citizens
      users: 1200
      spawn_rate: 50
      think_time: [30s, 90s]
      other_unit_share: 10%
      attachment_kb: [4, 32]
      follow_interval: 10m
    officers:
      per_unit: 2
      think_time: 45s
      poll_interval: 1m
      supplement_share: 0.05
      refuse_share: 2%
      sign_in_lead: 2m
    gates:
      - completion_rate >= 96%
      - {name: no lost dossiers, expr: lost_dossiers == 0}
      - p95_ms < 2000
      - p95_ms >= 0
  - name: communes
    units: {type: xa, exclude: [26506], sample: 5}
    duration: 1h30m
    citizens: {<<: *citizens, users: 10}
"""


def _write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _good(tmp_path: Path) -> Path:
    return _write(tmp_path, GOOD)


def test_a_good_plan_loads_into_the_right_types(tmp_path: Path) -> None:
    plan = load_plan(_good(tmp_path))
    assert isinstance(plan, Plan)
    assert (plan.name, plan.target, plan.time_scale, plan.seed) == ("trials-2025", "reference", 60.0, 7)
    assert plan.description == "The two HCMC trials of June 2025."
    assert plan.source.is_absolute() and plan.source.name == "plan.yaml"
    pilot, communes = plan.stages
    assert isinstance(pilot, Stage) and pilot.name == "pilot-22-6"
    assert len(pilot.units) == 132 and list(pilot.units) == sorted(pilot.units)  # 102 + 30, as on 22/6
    assert pilot.unit_selection == UnitSelection(former_provinces=("hcmc", "ba-ria-vung-tau"))
    assert (pilot.duration_s, pilot.grace_s) == (7200.0, 1800.0)
    assert pilot.citizens == CitizenLoad(users=1200, spawn_rate=50.0, think_time=ThinkTime(30.0, 90.0),
                                         other_unit_share=0.1, attachment_kb=(4, 32), follow_interval_s=600.0)
    assert pilot.officers == OfficerLoad(per_unit=2, think_time=ThinkTime(45.0, 45.0), poll_interval_s=60.0,
                                         supplement_share=0.05, refuse_share=0.02, sign_in_lead_s=120.0)
    assert pilot.gates[0] == Gate(expr="completion_rate >= 96%", metric="completion_rate", op=">=",
                                  threshold=0.96, name="completion_rate >= 96%")
    assert pilot.gates[1].name == "no lost dossiers" and pilot.gates[1].threshold == 0
    # The merge key brings the pilot's citizens in; keys written beside it win.
    assert communes.citizens.users == 10 and communes.citizens.spawn_rate == 50.0
    assert communes.officers == OfficerLoad() and communes.gates == () and communes.grace_s == 0.0
    assert communes.duration_s == 5400.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.name = "other"  # type: ignore[misc]


def test_defaults(tmp_path: Path) -> None:
    plan = load_plan(_write(tmp_path, "name: x\nstages:\n  - name: a\n    duration: 90\n"
                                      "    citizens: {users: 1, spawn_rate: 10, think_time: 0}\n"))
    (stage,) = plan.stages
    assert (plan.target, plan.time_scale, plan.seed, plan.description) == ("reference", 1.0, 1, "")
    assert len(stage.units) == 168 and stage.unit_selection == UnitSelection()
    assert stage.duration_s == 90.0 and stage.citizens.think_time == ThinkTime(0.0, 0.0)
    assert stage.officers == OfficerLoad(per_unit=2, think_time=ThinkTime(30.0, 90.0), poll_interval_s=60.0,
                                         supplement_share=0.05, refuse_share=0.02, sign_in_lead_s=0.0)
    assert stage.citizens.other_unit_share == 0.1 and stage.citizens.attachment_kb == (2, 16)
    assert stage.citizens.follow_interval_s == 600.0
    assert stage.citizens.withdraw_share == 0.01


@pytest.mark.parametrize("written, share", [("0.2", 0.2), ("5%", 0.05), ("0", 0.0), ("100%", 1.0)])
def test_withdraw_share_is_a_share_or_a_percentage(tmp_path: Path, written: str, share: float) -> None:
    plan = load_plan(_write(tmp_path, "name: x\nstages:\n  - name: a\n    duration: 90\n"
                                      "    citizens: {users: 1, spawn_rate: 10, think_time: 0, "
                                      f"withdraw_share: {written}}}\n"))
    assert plan.stages[0].citizens.withdraw_share == pytest.approx(share)


@pytest.mark.parametrize("units, count", [
    ("{former_province: [hcmc]}", 102),
    ("{former_province: [binh-duong]}", 36),
    ("{former_province: ba-ria-vung-tau}", 30),   # a single value is a list of one
    ("{type: [phuong]}", 113),
    ("{type: [xa]}", 54),
    ("{type: [dac-khu]}", 1),
    ("{former_province: [binh-duong], type: [xa]}", None),  # filters AND: fewer than either
    ("{}", 168),
    ("", 168),
    ("{exclude: [26732]}", 167),
])
def test_unit_filters(tmp_path: Path, units: str, count: int | None) -> None:
    text = f"name: x\nstages:\n  - name: a\n    units: {units}\n    duration: 1h\n" \
           "    citizens: {users: 1, spawn_rate: 1, think_time: 1m}\n"
    chosen = load_plan(_write(tmp_path, text)).stages[0].units
    if count is None:
        assert 0 < len(chosen) < 36
    else:
        assert len(chosen) == count


def test_codes_alone_are_exactly_those_and_add_to_filters(tmp_path: Path) -> None:
    def units(selection: str) -> tuple[int, ...]:
        text = f"name: x\nstages:\n  - name: a\n    units: {selection}\n    duration: 1h\n" \
               "    citizens: {users: 1, spawn_rate: 1, think_time: 1m}\n"
        return load_plan(_write(tmp_path, text)).stages[0].units

    assert units("{codes: [26732, 26506]}") == (26506, 26732)
    assert units("{codes: [026506]}") == (26506,)  # decimal, not YAML 1.1 octal
    with_filter = units("{former_province: [binh-duong], codes: [26732]}")
    assert len(with_filter) == 37 and 26732 in with_filter


def test_sample_is_seeded_stable_and_per_stage(tmp_path: Path) -> None:
    text = ("name: x\nseed: {seed}\nstages:\n{other}  - name: s\n    units: {{type: [xa], sample: 8}}\n"
            "    duration: 1h\n    citizens: {{users: 1, spawn_rate: 1, think_time: 1m}}\n")
    other = "  - name: o\n    units: {sample: 3}\n    duration: 1h\n    citizens: {users: 1, spawn_rate: 1, " \
            "think_time: 1m}\n"
    first = load_plan(_write(tmp_path, text.format(seed=1, other=""))).stage("s").units
    again = load_plan(_write(tmp_path, text.format(seed=1, other=""))).stage("s").units
    with_other = load_plan(_write(tmp_path, text.format(seed=1, other=other))).stage("s").units
    reseeded = load_plan(_write(tmp_path, text.format(seed=2, other=""))).stage("s").units
    communes = set(load_plan(_write(tmp_path, text.format(seed=1, other="").replace(", sample: 8", "")))
                   .stage("s").units)
    assert len(first) == 8 and set(first) <= communes and list(first) == sorted(first)
    assert first == again == with_other  # a stage added before it does not reshuffle it
    assert first != reseeded


def test_time_scale_override_and_wall_clock(tmp_path: Path) -> None:
    path = _good(tmp_path)
    assert load_plan(path).time_scale == 60
    plan = load_plan(path, time_scale=120)
    assert plan.time_scale == 120 and plan.wall_s(7200) == 60
    with pytest.raises(PlanError, match=r"--time-scale: expected a number greater than 0"):
        load_plan(path, time_scale=0)
    with pytest.raises(PlanError, match=r"--time-scale"):
        load_plan(path, time_scale=float("nan"))


def test_stage_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _good(tmp_path)
    plan = load_plan("plan.yaml")
    assert plan.stage("communes").name == "communes"
    with pytest.raises(PlanError) as info:
        plan.stage("full-25-6")
    assert str(info.value) == "plan.yaml: unknown stage 'full-25-6' (expected one of: pilot-22-6, communes)"


def test_the_shipped_scenarios_load() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        plan = load_plan(path)
        assert plan.stages and all(s.units for s in plan.stages)


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example, "docs/scenarios.md has no ```yaml example"
    plan = load_plan(_write(tmp_path, example.group(1)))
    assert plan.stages
    for metric in GATE_METRICS:
        assert f"`{metric}`" in doc, f"gate metric {metric} is not documented in docs/scenarios.md"


def test_gate_metrics_are_the_agreed_ones() -> None:
    assert set(GATE_METRICS) == {
        "completion_rate", "on_time_rate", "sessions_peak_harness", "sessions_peak_portal", "requests",
        "failures", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "rps", "lost_dossiers",
        "duplicated_dossiers", "submitted_dossiers", "complete_dossiers", "interruption_s",
        "migration_found_rate", "arrivals_dropped", "withdrawn_dossiers", "unsynced_dossiers", "not_delivered_dossiers",
        "completion_rate_national", "sync_lag_p50_s", "sync_lag_p95_s", "sync_lag_max_s", "sync_backlog_max",
        "server_p50_ms", "server_p95_ms", "server_p99_ms", "cutover_phase_s", "cutover_total_s", "cutover_rolled_back"}
    assert all(isinstance(v, str) and v and "\n" not in v for v in GATE_METRICS.values())


def test_the_public_api_is_what_the_package_names() -> None:
    assert all(hasattr(rehearsal.plan, name) for name in rehearsal.plan.__all__)
    # A gate that does not parse is a plan mistake: the CLI says it in one line like any other.
    assert issubclass(GateSyntaxError, PlanError)


def test_gate_windows_under_10s_keep_their_fraction(tmp_path: Path) -> None:
    # Gate.key names a figure (baselines, contradictions): 1.5 s and 2 s windows are two figures.
    text = "name: x\nstages:\n  - name: a\n    duration: 1h\n" \
           "    citizens: {users: 1, spawn_rate: 1, think_time: 1m}\n" \
           "    gates: [p95_ms over every 1.5s < 100, p95_ms over every 2s > 200]\n"
    gates = load_plan(_write(tmp_path, text)).stages[0].gates
    assert [g.key for g in gates] == ["p95_ms over every 1.5s", "p95_ms over every 2s"]


def test_describe_plan_states_wall_clock(tmp_path: Path) -> None:
    lines = describe_plan(load_plan(_good(tmp_path)))
    assert "time scale x60" in lines[0]
    assert lines[1].startswith("  pilot-22-6: 132 units, 264 officers (2/unit), 1200 citizens;")
    assert "officers' lead 2m + filing 2h + grace 30m = 2h32m simulated, 2m32s wall-clock; 4 gate(s)" in lines[1]


# -- durations ---------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1h 30m", 5400), ("1.5h", 5400),
    ("2m30s", 150), ("0s", 0), ("45", 45), ("2.5", 2.5), (45, 45), (2.5, 2.5), (0, 0)])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, where="x") == seconds


@pytest.mark.parametrize("value, fragment", [
    ("two hours", "expected a duration like 90s"), ("", "expected a duration"), ("1:30", "not 1:30"),
    ("90 seconds", "expected a duration"), ("-5m", "cannot be negative"), (-1, "cannot be negative"),
    (True, "expected a duration"), (None, "expected a duration"), (float("inf"), "finite")])
def test_parse_duration_refuses(value: object, fragment: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_duration(value, where="stages[0].grace")
    assert info.value.field == "stages[0].grace" and fragment in str(info.value)


# -- bad plans ---------------------------------------------------------------------

def _expectation(path: Path) -> tuple[str, int | None, str | None, str]:
    head = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    match = re.fullmatch(r"# (.+) \| line (\d+|-) \| field (\S+) \| expect: (.+)", head)
    assert match, f"{path.name}: first line must be '# what | line N | field F | expect: fragment'"
    what, line, field, fragment = match.groups()
    return what, None if line == "-" else int(line), None if field == "-" else field, fragment


def test_the_bad_corpus_is_big_enough() -> None:
    assert len(BAD_FILES) >= 25


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_a_bad_scenario_says_file_line_field_and_what(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, line, field, fragment = _expectation(path)
    monkeypatch.chdir(ROOT)
    given = str(path.relative_to(ROOT))  # the path as a user would type it
    with pytest.raises(PlanError) as info:
        load_plan(given)
    err, message = info.value, str(info.value)
    assert err.file == given and message.startswith(f"{given}:"), message
    assert err.line == line, message
    assert err.field == field, message
    assert fragment in message, message
    assert "\n" not in message


def test_missing_unreadable_and_zero_byte_files(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: no such file (expected a scenario YAML, " \
                              f"e.g. scenarios/demo.yaml)"
    with pytest.raises(PlanError, match="cannot read the file"):
        load_plan(tmp_path)  # a directory
    with pytest.raises(PlanError, match="the file is empty") as info:
        load_plan(_write(tmp_path, ""))
    assert info.value.line is None


# -- the command line -------------------------------------------------------------

def _rehearse(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rehearsal.cli", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.mark.parametrize("name", ["unknown-unit-code", "yaml-syntax", "empty", "gate-contradictory",
                                  "bool-for-number", "not-utf8"])
def test_validate_a_bad_file_exits_2_with_one_line(name: str) -> None:
    given = f"tests/bad_scenarios/{name}.yaml"
    _, line, field, fragment = _expectation(ROOT / given)
    proc = _rehearse("validate", given)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    where = f"{given}:{line}: " if line else f"{given}: "
    assert lines[0].startswith(f"rehearse: error: {where}") and fragment in lines[0]


def test_validate_a_good_file_prints_a_summary(tmp_path: Path) -> None:
    proc = _rehearse("validate", "scenarios/demo.yaml", "--time-scale", "120")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("scenarios/demo.yaml: plan 'demo'") and "time scale x120" in proc.stdout
    assert "168 units" in proc.stdout and "wall-clock" in proc.stdout and proc.stderr == ""


def test_validate_debug_shows_the_traceback() -> None:
    proc = _rehearse("--debug", "validate", "tests/bad_scenarios/unknown-unit-code.yaml")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "PlanError" in proc.stderr

"""The plan of two systems: faults on a system, cutovers of some units from an old arrangement, the sync gates,
the June 2025 plan in that shape, and the docs that say so.

The plan room may not import the reference systems, so the kinds each system plays are written twice (the plan
reader's table, `rehearsal.portal.faults.SYSTEM_KINDS`): the tests hold them together, and send every fault a plan
can declare to the real systems on loopback, which must take it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conftest import PortalClient, stop_portal
from rehearsal.errors import PlanError
from rehearsal.plan import (BACKLOG_METRICS, DOSSIER_METRICS, FAULT_KINDS, GATE_METRICS, LIVE_METRICS, RATE_METRICS,
                            SYNC_LAG_METRICS, load_plan, parse_gate)
from rehearsal.plan.timeline import _FAULT_FIELDS, _PLAYED_BY
from rehearsal.portal.faults import SYSTEM_KINDS
from rehearsal.shared.wards import load_units
from twosystems import start_former_province, start_systems

ROOT = Path(__file__).resolve().parent.parent
SYNC_GATES = ("unsynced_dossiers", "not_delivered_dossiers", "sync_lag_p95_s", "completion_rate_national")
ALL_FAULTS = """\
name: faults
time_scale: 60
stages:
  - name: one
    units: {former_province: [hcmc, ba-ria-vung-tau]}
    duration: 1h
    grace: 10m
    citizens: {users: 10, spawn_rate: 10, think_time: 1m}
    cutover: {at: 30m, from: brvt, units: {former_province: ba-ria-vung-tau}}
    faults:
      - {kind: latency, at: 1m, delay: 300ms}
      - {kind: latency, at: 1m, delay: [1s, 2s], system: provincial, name: slow officers}
      - {kind: errors, at: 2m, rate: 10%, status: 502, system: city}
      - {kind: outage, at: 3m, for: 1m, system: brvt}
      - {kind: silent-drop, at: 4m, rate: 1%, system: brvt}
      - {kind: slow-agency, at: 0s, factor: 3, system: brvt}
      - {kind: absence, at: 0s, units: {sample: 2}}
      - {kind: link-slow, at: 5m, delay: {mean: 1s}}
      - {kind: link-errors, at: 6m, rate: 30%, system: link}
      - {kind: link-down, at: 7m, for: 5m}
      - {kind: link-kill, at: 8m, for: 1m, system: link}
      - {kind: link-duplicates, at: 9m}
      - {kind: vneid-overload, at: 10m, rate: 50%}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _stage(extra: str, units: str = "{former_province: [hcmc]}") -> str:
    return ("name: x\ntime_scale: 60\nstages:\n  - name: one\n"
            f"    units: {units}\n    duration: 1h\n    citizens: {{users: 10, spawn_rate: 10, think_time: 1m}}\n"
            + extra)


# -- faults on a system -----------------------------------------------------------------

def test_the_plan_and_the_systems_agree_on_who_plays_what() -> None:
    assert set(_PLAYED_BY) == set(_FAULT_FIELDS) == set(FAULT_KINDS)
    for kind, systems in _PLAYED_BY.items():
        for system in systems:
            played = {"link": ("national", "provincial"), "city": ("provincial",), "brvt": ("provincial",),
                      "binh-duong": ("provincial",)}.get(system, (system,))
            if kind != "absence":
                assert any(kind in SYSTEM_KINDS[s] for s in played), (kind, system)
    # Every kind a system plays can be declared somewhere (absence is the harness's own).
    for system in ("national", "provincial"):
        assert set(SYSTEM_KINDS[system]) <= set(FAULT_KINDS)


def test_each_fault_goes_to_its_system_and_link_is_resolved(tmp_path: Path) -> None:
    stage = load_plan(_write(tmp_path, ALL_FAULTS)).stages[0]
    assert [(f.kind, f.system) for f in stage.faults] == [
        ("latency", "national"),  # the cutover moves only some units: most citizens are on the national portal
        ("latency", "provincial"), ("errors", "city"), ("outage", "brvt"), ("silent-drop", "brvt"),
        ("slow-agency", "brvt"), ("absence", "provincial"), ("link-slow", "national"), ("link-errors", "national"),
        ("link-down", "national"), ("link-kill", "provincial"), ("link-duplicates", "provincial"),
        ("vneid-overload", "national")]


def test_defaults_by_kind_and_the_front_door_citizens_use_at_the_time(tmp_path: Path) -> None:
    text = _stage("    cutover: {at: 30m, from: city, migrate: false}\n    faults:\n"
                  "      - {kind: outage, at: 10m, for: 1m}\n      - {kind: outage, at: 40m, for: 1m}\n"
                  "      - {kind: silent-drop, at: 0s, rate: 1%}\n      - {kind: slow-agency, at: 0s, factor: 2}\n"
                  "      - {kind: link-kill, at: 5m}\n      - {kind: link-errors, at: 5m}\n")
    faults = load_plan(_write(tmp_path, text)).stages[0].faults
    assert [f.system for f in faults] == ["city", "national", "city", "provincial", "provincial", "national"]
    assert faults[5].rate == 1.0  # link-errors with no rate: every call


def test_faults_sit_on_the_front_door_of_the_whole_stage_only(tmp_path: Path) -> None:
    # The stage's cutover moves only BR-VT's units: before it, most citizens already use the national portal.
    text = _stage("    cutover: {at: 30m, from: brvt, units: {former_province: ba-ria-vung-tau}}\n"
                  "    faults: [{kind: latency, at: 10m, delay: 1s}, {kind: latency, at: 10m, delay: 1s, "
                  "system: brvt}]\n", units="{former_province: [hcmc, ba-ria-vung-tau]}")
    assert [f.system for f in load_plan(_write(tmp_path, text)).stages[0].faults] == ["national", "brvt"]


def test_the_portal_spec_of_each_new_kind_uses_the_portals_names(tmp_path: Path) -> None:
    specs = {f.kind: f.portal_spec() for f in load_plan(_write(tmp_path, ALL_FAULTS)).stages[0].faults}
    assert specs["link-slow"] == {"id": "link-slow@5m", "kind": "link-slow", "endpoints": [], "mean_s": 1.0}
    assert specs["link-errors"]["rate"] == 0.3 and specs["vneid-overload"]["rate"] == 0.5
    assert specs["link-down"] == {"id": "link-down@7m", "kind": "link-down", "endpoints": []}
    assert specs["link-kill"] == {"id": "link-kill@8m", "kind": "link-kill", "endpoints": []}


@pytest.mark.parametrize("extra, field, fragment", [
    ("    faults: [{kind: link-kill, at: 1m, system: city}]\n", "stages[0].faults[0].system",
     "a fault of kind link-kill is not played by city (expected one of: provincial, link)"),
    ("    faults: [{kind: slow-agency, at: 1m, system: national}]\n", "stages[0].faults[0].system",
     "a fault of kind slow-agency is not played by national (expected one of: provincial, brvt, binh-duong)"),
    ("    faults: [{kind: silent-drop, at: 1m, system: provincial}]\n", "stages[0].faults[0].system",
     "not played by provincial"),
    ("    cutover: {at: 30m, from: city}\n    faults: [{kind: outage, at: 1m, system: binh-duong}]\n",
     "stages[0].faults[0].system", "binh-duong runs only in a stage whose cutover moves units from it "
                                   "(cutover.from: binh-duong); this stage has cutover.from: city"),
    ("    faults: [{kind: link-down, at: 1m, delay: 1s}]\n", "stages[0].faults[0].delay",
     "a fault of kind link-down does not take 'delay'"),
    ("    faults: [{kind: vneid-overload, at: 1m, status: 500}]\n", "stages[0].faults[0].status",
     "a fault of kind vneid-overload does not take 'status'"),
    ("    faults: [{kind: link-slow, at: 1m, delay: fast}]\n", "stages[0].faults[0].delay",
     "expected a duration"),
    ("    faults: [{kind: link-errors, at: 1m, sytem: link}]\n", "stages[0].faults[0].sytem",
     "did you mean 'system'?"),
])
def test_a_fault_on_the_wrong_system_is_refused(tmp_path: Path, extra: str, field: str, fragment: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(_write(tmp_path, _stage(extra)))
    assert info.value.field == field and fragment in str(info.value) and info.value.line


# -- cutovers of some units -------------------------------------------------------------

def test_a_cutover_moves_the_units_it_names_from_where_it_says(tmp_path: Path) -> None:
    text = _stage("    cutover: {at: 20m, from: binh-duong, units: {former_province: binh-duong}}\n", units="{}")
    cut = load_plan(_write(tmp_path, text)).stages[0].cutover
    assert cut is not None and cut.from_system == "binh-duong" and cut.migrate
    binh_duong = {u.code for u in load_units() if u.former_province.value == "binh-duong"}
    assert set(cut.units) == binh_duong and len(cut.units) == 36 and cut.units == tuple(sorted(cut.units))
    assert cut.unit_selection.former_provinces == ("binh-duong",)


def test_a_cutover_by_default_moves_every_unit_off_the_city_portal(tmp_path: Path) -> None:
    plan = load_plan(_write(tmp_path, _stage("    cutover: {at: 20m}\n")))
    stage = plan.stages[0]
    assert stage.cutover is not None and stage.cutover.from_system == "city" and stage.cutover.units == stage.units
    assert len(stage.units) == 102


def test_a_sampled_cutover_repeats_and_stays_inside_the_stage(tmp_path: Path) -> None:
    text = _stage("    cutover: {at: 20m, units: {sample: 5}}\n")
    first = load_plan(_write(tmp_path, text)).stages[0]
    again = load_plan(_write(tmp_path, text)).stages[0]
    assert first.cutover and again.cutover and first.cutover.units == again.cutover.units
    assert len(first.cutover.units) == 5 and set(first.cutover.units) <= set(first.units)


# -- the sync gates --------------------------------------------------------------------

@pytest.mark.parametrize("expr, metric, threshold, window, window_s", [
    ("sync_lag_p95_s <= 60s", "sync_lag_p95_s", 60.0, "whole", 0.0),
    ("sync_lag_p95_s <= 1m", "sync_lag_p95_s", 60.0, "whole", 0.0),
    ("sync_lag_p50_s < 500ms", "sync_lag_p50_s", 0.5, "whole", 0.0),
    ("sync_lag_max_s over every 10m <= 1m30s", "sync_lag_max_s", 90.0, "every", 600.0),
    ("sync_lag_p95_s over last 5m <= 2.5", "sync_lag_p95_s", 2.5, "last", 300.0),
    ("sync_backlog_max over every 5m <= 500", "sync_backlog_max", 500.0, "every", 300.0),
    ("unsynced_dossiers == 0", "unsynced_dossiers", 0.0, "whole", 0.0),
    ("not_delivered_dossiers <= 3", "not_delivered_dossiers", 3.0, "whole", 0.0),
    ("completion_rate_national >= 96%", "completion_rate_national", 0.96, "whole", 0.0),
])
def test_sync_gates_parse(expr: str, metric: str, threshold: float, window: str, window_s: float) -> None:
    gate = parse_gate(expr)
    assert (gate.metric, gate.threshold, gate.window, gate.window_s) == (metric, threshold, window, window_s)


def test_the_sync_metrics_are_grouped_for_the_judge() -> None:
    assert SYNC_LAG_METRICS == {"sync_lag_p50_s", "sync_lag_p95_s", "sync_lag_max_s"}
    assert BACKLOG_METRICS == {"sync_backlog_max"}
    assert {"unsynced_dossiers", "not_delivered_dossiers", "completion_rate_national"} <= DOSSIER_METRICS
    assert "completion_rate_national" in RATE_METRICS
    assert (SYNC_LAG_METRICS | BACKLOG_METRICS) <= set(GATE_METRICS)
    assert not (SYNC_LAG_METRICS | BACKLOG_METRICS) & LIVE_METRICS  # no abort on them (yet)
    gate = parse_gate("completion_rate_national{group=binh-duong, type=xa} >= 90%")
    assert gate.filters == (("group", "binh-duong"), ("type", "xa"))
    assert parse_gate("sync_lag_p95_s <= baseline + 5s").baseline_arg == 5.0
    assert parse_gate("sync_lag_p95_s <= baseline * 1.5").baseline_arg == 1.5


# -- the shipped scenarios --------------------------------------------------------------

def test_the_june_plan_in_the_two_systems_shape() -> None:
    plan = load_plan(ROOT / "scenarios" / "hcmc-2025.yaml", time_scale=60)
    stages = {s.name: s for s in plan.stages}
    assert list(stages) == ["rehearsal-17-06", "cutover-18-06", "pilot-22-06", "full-25-06", "go-live-01-07"]
    moves = {name: (len(s.units), s.cutover and (s.cutover.from_system, len(s.cutover.units), s.cutover.migrate))
             for name, s in stages.items()}
    assert moves == {"rehearsal-17-06": (102, ("city", 102, False)), "cutover-18-06": (102, ("city", 102, False)), "pilot-22-06": (132, ("brvt", 30, True)),
                     "full-25-06": (168, ("binh-duong", 36, True)), "go-live-01-07": (168, None)}
    cut = stages["cutover-18-06"].cutover
    assert cut is not None and cut.at_s == 35 * 60  # 20:25 + 35m = 21:00
    for name in ("pilot-22-06", "full-25-06"):
        assert "migration_found_rate == 100%" in {g.expr for g in stages[name].gates}
    live = {g.expr for g in stages["go-live-01-07"].gates}
    assert {"unsynced_dossiers == 0", "not_delivered_dossiers == 0", "sync_lag_p95_s <= 60s",
            "completion_rate_national >= 96%"} <= live


@pytest.mark.parametrize("name", ["demo", "ci"])
def test_demo_and_ci_gate_the_link(name: str) -> None:
    metrics = {g.metric for g in load_plan(ROOT / "scenarios" / f"{name}.yaml").stages[0].gates}
    assert set(SYNC_GATES) <= metrics


def test_the_link_down_pair_differs_only_in_its_grace() -> None:
    short = load_plan(ROOT / "scenarios" / "link-down-short-grace.yaml").stages[0]
    drains = load_plan(ROOT / "scenarios" / "link-down-drains.yaml").stages[0]
    assert short.units == drains.units and short.faults == drains.faults and short.citizens == drains.citizens
    (fault,) = short.faults
    assert (fault.kind, fault.system) == ("link-down", "national") and fault.for_s
    heals = fault.at_s + fault.for_s
    assert short.total_s < heals < drains.total_s  # the short one ends with the link still down
    assert {"unsynced_dossiers", "not_delivered_dossiers"} <= {g.metric for g in short.gates}


# -- the docs ---------------------------------------------------------------------------

def test_the_docs_name_every_fault_kind_system_and_the_adapters() -> None:
    scenarios = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    for kind in FAULT_KINDS:
        assert f"`{kind}`" in scenarios, kind
    for word in ("`from`", "`system`", "wall", "`link`"):
        assert word in scenarios
    targets = (ROOT / "docs" / "targets.md").read_text(encoding="utf-8")
    for word in ("NationalPortal", "CityPortal", "OneStop", "QueueItem", "config/targets.yaml", "adapter:"):
        assert word in targets, word
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/targets.md" in readme and "## Two systems, one front door" in readme
    assert "wall seconds" in readme.lower()


# -- the real systems take every fault a plan can send ---------------------------------

def test_every_fault_of_a_plan_is_taken_by_the_system_it_names(tmp_path: Path) -> None:
    stage = load_plan(_write(tmp_path, ALL_FAULTS)).stages[0]
    systems = start_systems(tmp_path / "s")
    brvt, brvt_door = start_former_province(tmp_path / "f")
    try:
        # Where the runner sends each: a front door for the citizens' kinds, the one-stop system for the rest.
        where: dict[tuple[str, bool], PortalClient] = {
            ("national", True): systems.national, ("national", False): systems.national,
            ("provincial", True): systems.provincial, ("provincial", False): systems.provincial,
            ("city", True): systems.door, ("brvt", True): brvt_door, ("brvt", False): brvt}
        sent: dict[int, list[dict]] = {}
        for fault in stage.faults:
            if fault.kind == "absence":
                continue
            portal = where[(fault.system, fault.kind != "slow-agency")]
            sent.setdefault(id(portal), []).append(fault.portal_spec())
            status, answer = portal.call("PUT", "/api/admin/faults", {"faults": sent[id(portal)]})
            assert status == 200, (fault.kind, fault.system, answer)
        status, state = systems.national.call("GET", "/api/admin/faults")
        assert status == 200
        assert {f["kind"] for f in state["faults"]} == {"latency", "link-slow", "link-errors", "link-down",
                                                          "vneid-overload"}
        # link-down is on: the integration API answers 503 with the national portal's message.
        status, answer = systems.national.call("POST", "/api/dvcqg/auth", {"username": "hcmc", "password": "x"})
        assert status == 503 and answer.get("error_code") == "-1"
    finally:
        systems.stop()
        for p in (brvt,):
            stop_portal(p, signal.SIGTERM)

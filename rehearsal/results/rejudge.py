"""A finished run judged again: by its own scenario's gates or another's, against a baseline (`rehearse gate`).

Reconciled figures come from ``summary.json``; requests and sessions from
the stage directories. `run_figures_and_gates` gives a baseline its figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import RehearsalError, RunError
from ..plan import Plan, load_plan
from .figures import figures_of, gate_data, run_gate_data
from .gates import GateResult, verdict_of
from .summary import judge_stage, run_verdict


def load_run_plan(run_dir: Path, summary: dict[str, Any], scenario: str | Path | None = None) -> Plan:
    """The plan a run used (its copy ``scenario.yaml``), or `scenario` to judge it by other gates."""
    source = Path(scenario) if scenario else Path(run_dir) / "scenario.yaml"
    if not scenario and not source.exists():
        raise RunError(f"{run_dir}: no scenario.yaml in the run directory (give one with --scenario)")
    return load_plan(source, time_scale=summary.get("time_scale"))


def run_figures_and_gates(run_dir: Path, summary: dict[str, Any],
                          plan: Plan | None = None) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Baseline figures of each stage and of the whole run (`rehearsal.results.figures.figures_of`)."""
    if plan is None:
        try:
            plan = load_run_plan(run_dir, summary)
        except RehearsalError:
            plan = None
    scale = float(summary.get("time_scale") or 1.0)
    stages: dict[str, dict[str, float]] = {}
    for entry in summary.get("stages", []):
        gates = plan.stage(entry["name"]).gates if plan and entry["name"] in {s.name for s in plan.stages} else ()
        stages[entry["name"]] = figures_of(gate_data(Path(run_dir) / "stages" / entry["name"], entry, scale), gates)
    run = figures_of(run_gate_data(Path(run_dir), summary.get("stages", []), scale), plan.gates if plan else ())
    return stages, run


def judge_run(run_dir: Path, summary: dict[str, Any], plan: Plan, *, baseline: dict[str, Any] | None = None,
              complete: bool = True) -> dict[str, Any]:
    """`summary` with every gate judged again (by `plan`'s gates, against `baseline`) and its verdicts redone.

    Reconciled figures come from the summary; requests and sessions from the
    stage directories. A stage that did not finish stays INCOMPLETE; the gate
    that aborted a stage stays failed.
    """
    name = baseline.get("name") if baseline else None
    scale = float(summary.get("time_scale") or plan.time_scale)
    out = {**summary, "stages": []}
    known = {s.name: s for s in plan.stages}
    for entry in summary.get("stages", []):
        entry = dict(entry)
        stage = known.get(entry["name"])
        if stage is not None:
            data = gate_data(Path(run_dir) / "stages" / stage.name, entry, scale)
            base = (baseline or {}).get("stages", {}).get(stage.name) if baseline else None
            results = judge_stage(stage.gates, data, baseline=base if baseline else None, baseline_name=name,
                                  aborted=entry.get("aborted"))
            if baseline is not None and base is None:
                results = [r if not any(g.name == r.name and g.uses_baseline for g in stage.gates) else
                           GateResult(r.name, r.expr, r.observed, "skipped", "",
                                      f"baseline {name!r} has no stage {stage.name!r}") for r in results]
            entry["gates"] = [r.as_dict() for r in results]
            if entry.get("verdict") != "INCOMPLETE" or entry.get("aborted"):
                entry["verdict"] = "GO" if verdict_of(results) else "NO-GO"
        out["stages"].append(entry)
    run_results = judge_stage(plan.gates, run_gate_data(Path(run_dir), out["stages"], scale),
                              baseline=(baseline or {}).get("run") if baseline else None, baseline_name=name)
    out["gates"] = [r.as_dict() for r in run_results]
    if name:
        out["baseline"] = name
    out["verdict"] = run_verdict(out["stages"], complete=complete and summary.get("verdict") != "INCOMPLETE",
                                 run_gates=out["gates"])
    return out

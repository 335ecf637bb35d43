"""Running a plan: systems up, one Locust stage after another, each reconciled and summarised.

It starts the reference systems when the target is ``reference`` (the
national portal, HCMC's one-stop system with the city's front door and its
link, and a former province's system when a cutover moves units off it:
`rehearsal.run.reference`), or reaches a real target's systems; writes
``systems.json`` (`rehearsal.run.systems`) for the Locust processes, the
reconciliation and the report; runs each stage in Locust
(`rehearsal.run.stage`), reconciles the stage's ledger with the systems, and
writes ``summary.json`` after every stage, so whatever was measured stays on
disk whatever happens next. At the end it writes each reference system's
CPU seconds (``cpu.json``). It returns what it measured (`RunResult`); the
caller writes the report, JUnit and the exit code.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import REPORTS_DIR, __version__
from ..errors import PortalError, RehearsalError, RunError
from ..plan import Plan, Stage
from ..results.cutover import cutover_summary
from ..results.ledger import read_events
from ..results.reconcile import Reconciliation, fetch_portal_dossiers
from ..results.summary import judge_stage, run_gate_data, run_verdict, stage_summary, write_summary
from .migration import admin_call
from .reconciling import reconcile_stage
from .reference import ReferenceSystems, former_provinces, write_cpu
from .stage import Progress, print_progress, run_stage
from .systems import Systems, cutover_from
from .targets import Target, reach_systems


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_dir(plan: Plan, reports_dir: Path = REPORTS_DIR) -> Path:
    """``reports/<UTC time>-<scenario>/``, created."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = reports_dir / f"{stamp}-{plan.name}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = reports_dir / f"{stamp}-{plan.name}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def reopen(systems: Systems, stage: Stage, admin_token: str | None) -> None:
    """Open again what an earlier stage's cutover closed, when this stage cuts over from it too (embedded only)."""
    source = cutover_from(stage.cutover)
    for role in ("citizen", "officer"):
        place = systems.place(source, role)
        if place is not None and place.url not in (systems.home("citizen").url, systems.home("officer").url):
            try:
                admin_call(place.url, "POST", "/api/admin/reopen", {}, token=admin_token)
            except (OSError, ValueError):
                pass  # it was not closed, or it answers nothing: the stage's own figures will say so


@dataclass
class RunResult:
    """What `run_plan` leaves behind."""

    run_dir: Path
    summary: dict[str, Any]
    stages: dict[str, Reconciliation] = field(default_factory=dict)
    error: RehearsalError | None = None
    """What stopped the run before its end (the portal would not start, say); its figures so far are on disk."""
    interrupted: bool = False
    """Ctrl-C: the stage under way was stopped cleanly and reconciled; later stages were not run."""

    @property
    def verdict(self) -> str:
        return str(self.summary["verdict"])


def run_plan(plan: Plan, target: Target, *, only: Sequence[str] | None = None, start_from: str | None = None,
             reports_dir: Path = REPORTS_DIR, progress: Progress | None = print_progress,
             target_env: dict[str, str] | None = None, national_url: str | None = None,
             web_ui_port: int | None = None, workers: int = 0, remote_workers: int = 0,
             master_bind: tuple[str, int] | None = None, baseline: dict[str, Any] | None = None) -> RunResult:
    """Run the plan's stages in order (or only those named, or from one on) and write the run directory.

    On the embedded target the reference systems are started (and a former
    province's for a stage that cuts over from it); a real target's systems
    are checked and waited for. On a target with one url, `national_url`
    names the portal a cutover moves to (the target's own URL being the
    legacy one).

    `baseline` (`rehearsal.results.baseline.load_baseline`) gives ``baseline`` gates
    their figures. A stage that a gate aborts ends the run: the stages after
    it are not run and the verdict is NO-GO. Gates on the whole run are judged
    last. A harness error or Ctrl-C mid-run does not escape: it is kept in the
    result (`RunResult.error`, `RunResult.interrupted`) with everything measured
    so far written, and the caller writes the report, JUnit and the exit code.
    """
    names = [s.name for s in plan.stages]
    first = names.index(start_from) if start_from else 0
    stages = [s for s in plan.stages[first:] if not only or s.name in only]
    run_dir = new_run_dir(plan, reports_dir)
    shutil.copyfile(plan.source, run_dir / "scenario.yaml")
    started = time.time()
    summary: dict[str, Any] = {
        "scenario": plan.name, "run_id": run_dir.name, "started_at": _utc(started), "finished_at": None,
        "time_scale": plan.time_scale, "target": target.name if target.embedded else target.url,
        "verdict": "INCOMPLETE", "stages": [], "harness_version": __version__, "workers": workers,
    }
    write_summary(run_dir, summary)
    reference: ReferenceSystems | None = None
    result = RunResult(run_dir=run_dir, summary=summary)
    complete = False
    if start_from:
        summary["started_from"] = start_from
    base_name = baseline.get("name") if baseline else None
    if base_name:
        summary["baseline"] = base_name
    admin_token = os.environ.get(target.admin_token_env) if target.admin_token_env else None
    try:
        if target.embedded:
            reference = ReferenceSystems(run_dir, time_scale=plan.time_scale,
                                         officers_per_unit=max(s.officers.per_unit for s in plan.stages),
                                         former=former_provinces(stages))
            systems = reference.start()
        else:
            systems = reach_systems(target, national_url)  # allowed, normalised, answering; else TargetError
        systems_file = run_dir / "systems.json"
        systems.write(systems_file)
        for stage in stages:
            finished = False
            try:
                if stage.cutover and systems.place(cutover_from(stage.cutover), "citizen") in (
                        None, systems.home("citizen")):
                    raise RunError(f"stage {stage.name!r} has a cutover from {cutover_from(stage.cutover)!r}: "
                                   f"the target has no such front door (a target with one url: give the national "
                                   f"portal's address with --national-url)")
                if stage.cutover and target.embedded:
                    reopen(systems, stage, admin_token)
                finished = run_stage(plan, stage, run_dir, systems.national().url, progress=progress, env=target_env,
                                     systems=systems_file, web_ui_port=web_ui_port, target=target, workers=workers,
                                     remote_workers=remote_workers, master_bind=master_bind)
            finally:
                rec, cut = None, None
                stage_dir = run_dir / "stages" / stage.name
                events = list(read_events(run_dir / "ledger" / f"{stage.name}.jsonl"))
                try:
                    rec = reconcile_stage(run_dir, stage, systems, admin_token=admin_token,
                                          env={**os.environ, **(target_env or {})})
                    result.stages[stage.name] = rec
                    if stage.cutover:
                        moved_to = fetch_portal_dossiers(systems.provincial().url, admin_token=admin_token)
                        cut = cutover_summary(stage_dir, events, moved_to)
                except PortalError as exc:
                    summary.setdefault("errors", []).append(f"{stage.name}: {exc}")
                base = baseline["stages"].get(stage.name, {}) if baseline else None
                summary["stages"].append(stage_summary(stage, stage_dir, rec, finished=finished, cutover=cut,
                                                       counts=Counter(e.get("kind") for e in events),
                                                       time_scale=plan.time_scale, baseline=base,
                                                       baseline_name=base_name))
                write_summary(run_dir, summary)
            if summary["stages"][-1].get("aborted"):
                summary["aborted_by"] = {"stage": stage.name, **summary["stages"][-1]["aborted"]}
                summary["not_run"] = [s.name for s in stages[stages.index(stage) + 1:]]
                break
        complete = True
    except RehearsalError as exc:
        result.error = exc
        summary.setdefault("errors", []).append(str(exc))
    except KeyboardInterrupt:
        result.interrupted = True
        summary["interrupted"] = True
    finally:
        if reference is not None:
            write_cpu(run_dir / "cpu.json", reference)
            reference.stop()
        summary["finished_at"] = _utc(time.time())
        if plan.gates and summary["stages"]:
            results = judge_stage(plan.gates, run_gate_data(run_dir, summary["stages"], plan.time_scale),
                                  baseline=baseline.get("run", {}) if baseline else None, baseline_name=base_name)
            summary["gates"] = [r.as_dict() for r in results]
        ran_all = complete and len(summary["stages"]) == len(stages)
        summary["verdict"] = run_verdict(summary["stages"], complete=ran_all or bool(summary.get("aborted_by")),
                                         run_gates=summary.get("gates"))
        write_summary(run_dir, summary)
    return result

"""Running a plan: portals up, one Locust stage after another, each reconciled and summarised.

It starts the reference portal when the target is ``reference`` (two for a
plan with a cutover: `rehearsal.run.portals`), runs each stage in Locust
(`rehearsal.run.stage`), reconciles the stage's ledger with the portal, and
writes ``summary.json`` after every stage, so whatever was measured stays on
disk whatever happens next. It returns what it measured (`RunResult`); the
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
from ..results.reconcile import Reconciliation, fetch_portal_dossiers, reconcile
from ..results.summary import judge_stage, run_gate_data, run_verdict, stage_summary, write_summary
from .portals import PortalProcess
from .stage import Progress, print_progress, run_stage
from .targets import Target, reach_portals


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


def reference_portal(run_dir: Path, *, time_scale: float, officers_per_unit: int,
                     face: str = "national") -> PortalProcess:
    """The embedded reference portal of a run: ``portal.*`` files for the national face, ``legacy.*`` for
    the city portal's."""
    return PortalProcess(run_dir, "--time-scale", str(time_scale), "--officers-per-unit", str(officers_per_unit),
                         "--face", face, name="portal" if face == "national" else face)


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


def reconcile_stage(run_dir: Path, stage: Stage, url: str, admin_token: str | None = None,
                    legacy_url: str | None = None) -> Reconciliation:
    """The stage's ledger against the portal; after a cutover, against both portals.

    A dossier the national portal holds is judged by its national record (a
    migrated one has moved on there); one only the legacy portal holds (it
    was complete at the switch, so it was not migrated) by its legacy record.
    """
    rows = fetch_portal_dossiers(url, admin_token=admin_token)
    if legacy_url:
        national_ids = {r["id"] for r in rows}
        rows += [r for r in fetch_portal_dossiers(legacy_url, admin_token=admin_token) if r["id"] not in national_ids]
    return reconcile(read_events(run_dir / "ledger" / f"{stage.name}.jsonl"), rows)


def run_plan(plan: Plan, target: Target, *, only: Sequence[str] | None = None, start_from: str | None = None,
             reports_dir: Path = REPORTS_DIR, progress: Progress | None = print_progress,
             target_env: dict[str, str] | None = None, national_url: str | None = None,
             web_ui_port: int | None = None, workers: int = 0, remote_workers: int = 0,
             master_bind: tuple[str, int] | None = None, baseline: dict[str, Any] | None = None) -> RunResult:
    """Run the plan's stages in order (or only those named, or from one on) and write the run directory.

    On the embedded target, a plan with a cutover gets two reference portals:
    ``legacy`` (the city portal, ``legacy.sqlite``) for the stages up to and
    including the cutover, and ``national`` (``portal.sqlite``) for the rest.
    On another target, `national_url` names the portal the cutover moves to
    (the target's own URL being the legacy one).

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
    portals: list[PortalProcess] = []
    result = RunResult(run_dir=run_dir, summary=summary)
    complete = False
    if start_from:
        summary["started_from"] = start_from
    base_name = baseline.get("name") if baseline else None
    if base_name:
        summary["baseline"] = base_name
    admin_token = os.environ.get(target.admin_token_env) if target.admin_token_env else None
    try:
        legacy_url: str | None = None
        if target.embedded:
            per_unit = max(s.officers.per_unit for s in plan.stages)
            portals.append(reference_portal(run_dir, time_scale=plan.time_scale, officers_per_unit=per_unit))
            url = portals[0].start()
            if any(s.cutover for s in stages):
                portals.append(reference_portal(run_dir, time_scale=plan.time_scale, officers_per_unit=per_unit,
                                                face="legacy"))
                legacy_url = portals[1].start()
        else:
            url, legacy_url = reach_portals(target, national_url)  # allowed, normalised, answering; else TargetError
        # Before the cutover the city portal takes the load; after it, the national one.
        on_legacy = legacy_url is not None and any(s.cutover for s in stages)
        for stage in stages:
            finished = False
            stage_url = legacy_url if on_legacy and legacy_url else url
            try:
                if stage.cutover and not legacy_url:
                    raise RunError(f"stage {stage.name!r} has a cutover: give the national portal's address "
                                   f"with --national-url (the target is the legacy one)")
                finished = run_stage(plan, stage, run_dir, str(stage_url), progress=progress, env=target_env,
                                     national_url=url if stage.cutover else None, web_ui_port=web_ui_port,
                                     target=target, workers=workers, remote_workers=remote_workers,
                                     master_bind=master_bind)
            finally:
                rec, cut = None, None
                stage_dir = run_dir / "stages" / stage.name
                events = list(read_events(run_dir / "ledger" / f"{stage.name}.jsonl"))
                try:
                    rec = reconcile_stage(run_dir, stage, url if stage.cutover or not on_legacy else str(stage_url),
                                          admin_token=admin_token, legacy_url=legacy_url if stage.cutover else None)
                    result.stages[stage.name] = rec
                    if stage.cutover:
                        cut = cutover_summary(stage_dir, events, fetch_portal_dossiers(url, admin_token=admin_token))
                except PortalError as exc:
                    summary.setdefault("errors", []).append(f"{stage.name}: {exc}")
                base = baseline["stages"].get(stage.name, {}) if baseline else None
                summary["stages"].append(stage_summary(stage, stage_dir, rec, finished=finished, cutover=cut,
                                                       counts=Counter(e.get("kind") for e in events),
                                                       time_scale=plan.time_scale, baseline=base,
                                                       baseline_name=base_name))
                write_summary(run_dir, summary)
            if stage.cutover:
                on_legacy = False
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
        for portal in portals:
            portal.stop()
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

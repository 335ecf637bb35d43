"""The one locustfile a plan runs: citizens and officers of one stage.

Run by `rehearse run` (which passes every option), or by hand::

    locust -f locustfiles/locustfile.py --headless --host http://127.0.0.1:8000 \\
        --plan scenarios/demo.yaml --stage demo --time-scale 60 --run-dir /tmp/run

The stage's load shape drives the users: officers sign in first (the
stage's ``sign_in_lead``), then citizens arrive at ``spawn_rate`` and file
during the filing window (``duration``); in the ``grace`` that follows no one
files but officers keep working and citizens keep following their dossiers;
then the shape ends the test by itself.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import os
import time
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events
from locust.env import Environment

from locustfiles.citizens import CitizenUser
from locustfiles.context import RunContext
from locustfiles.officers import OfficerUser
from locustfiles.telemetry import Telemetry
from rehearsal.catalogue import load_catalogue
from rehearsal.plan import load_plan

__all__ = ["CitizenUser", "OfficerUser", "StageShape"]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("dvc-rehearsal")
    group.add_argument("--plan", default="scenarios/demo.yaml", help="scenario YAML")
    group.add_argument("--stage", default="", help="stage to run (default: the first)")
    group.add_argument("--time-scale", type=float, default=0.0,
                       help="compress simulated time by this factor (default: the plan's)")
    group.add_argument("--run-dir", default="", help="run directory for the ledger and time series")
    group.add_argument("--officer-password-env", default="REHEARSAL_OFFICER_PASSWORD",
                       help="environment variable holding the officers' password")


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None or environment.runner is None:
        return  # imported as a library, not run
    plan = load_plan(options.plan, time_scale=options.time_scale or None)
    stage = plan.stage(options.stage) if options.stage else plan.stages[0]
    run_dir = Path(options.run_dir) if options.run_dir else None
    telemetry = Telemetry(environment, stage=stage.name, run_dir=run_dir, portal_url=environment.host)
    ctx = RunContext(plan=plan, stage=stage, catalogue=load_catalogue(), telemetry=telemetry,
                     time_scale=plan.time_scale,
                     officer_password=os.environ.get(options.officer_password_env, "rehearsal"),
                     worker_index=getattr(environment.runner, "worker_index", 0),
                     worker_count=max(1, int(os.environ.get("REHEARSAL_WORKER_COUNT", "1"))))
    CitizenUser.ctx = ctx
    OfficerUser.ctx = ctx
    OfficerUser.fixed_count = len(stage.units) * stage.officers.per_unit
    environment.rehearsal = ctx  # type: ignore[attr-defined]


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is not None:
        ctx.started_at = time.time()
        ctx.worker_index = getattr(environment.runner, "worker_index", 0)
        ctx.telemetry.start()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is not None:
        ctx.telemetry.stop()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is not None:
        ctx.telemetry.close()


class StageShape(LoadTestShape):
    """Officers first, then citizens; hold through the window and the grace; stop."""

    def tick(self) -> tuple[int, float, list[type[locust.User]]] | None:
        ctx: RunContext | None = getattr(self.runner.environment, "rehearsal", None) if self.runner else None
        if ctx is None:
            return None
        t = self.get_run_time()
        officers = OfficerUser.fixed_count
        if t < ctx.lead_wall and officers:
            return officers, max(officers / max(ctx.lead_wall, 1.0), 50.0), [OfficerUser]
        if t < ctx.total_wall:
            citizens = ctx.stage.citizens.users
            return officers + citizens, ctx.stage.citizens.spawn_rate, [OfficerUser, CitizenUser]
        return None

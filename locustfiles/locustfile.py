"""The one locustfile a plan runs: citizens and officers of one stage.

Run by `rehearse run` (which passes every option, the run's systems among
them: ``--systems systems.json``, `locustfiles.setup`), or by hand against
one portal with both roles::

    locust -f locustfiles/locustfile.py --headless --host http://127.0.0.1:8000 \\
        --plan scenarios/demo.yaml --stage demo --time-scale 60 --run-dir /tmp/run

The stage's load shape drives the users: officers sign in first (the
stage's ``sign_in_lead``), then citizens arrive at ``spawn_rate`` and file
during the filing window (``duration``); in the ``grace`` that follows no one
files but officers keep working and citizens keep following their dossiers;
then the shape ends the test by itself. A ``ramp`` replaces "start them all
and hold" with steps; an ``arrival_rate`` starts a pool of citizens who each
wait for the next arrival (the open model, `_arrivals`). Faults and the
cutover are played by `locustfiles.timeline` in the master (or local) process.
Before anything else every process checks where its users will send
requests against the allowed list (`locustfiles.fence`): a host that is not
on it ends the process with one line and exit code 2, before any request.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import os
import random
import time
from functools import partial
from pathlib import Path
from typing import Any

import gevent
from gevent.queue import Queue
from locust import LoadTestShape, events
from locust.argument_parser import default_args_dict, get_parser
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from locustfiles.abort import GateWatch
from locustfiles.citizens import CitizenUser
from locustfiles.context import RunContext
from locustfiles.fence import Fence, refuse
from locustfiles.fence import install as install_fence
from locustfiles.latency import LatencyRecorder
from locustfiles.officers import OfficerUser
from locustfiles.server_timing import install as install_server_timing
from locustfiles.setup import SHARED, read_shared, take_shared
from locustfiles.telemetry import Telemetry
from locustfiles.slots import SlotBroker
from locustfiles.timeline import Timeline
from locustfiles.webui import install as install_web_ui
from locustfiles.workers_watch import install as install_workers_watch
from rehearsal.errors import RehearsalError
from rehearsal.shared.catalogue import load_catalogue
from rehearsal.shared.heap import HeapFreezer
from rehearsal.plan import load_plan
from rehearsal.run.systems import Systems

__all__ = ["CitizenUser", "OfficerUser", "StageShape"]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("dvc-rehearsal")
    group.add_argument("--plan", default="scenarios/demo.yaml", help="scenario YAML")
    group.add_argument("--stage", default="", help="stage to run (default: the first)")
    group.add_argument("--time-scale", type=float, default=0.0,
                       help="compress simulated time by this factor (default: the plan's)")
    group.add_argument("--run-dir", default="", help="run directory for the ledger and time series")
    group.add_argument("--systems", default="", metavar="FILE",
                       help="the run's systems (systems.json: rehearsal.run.systems); without it, --host is one "
                            "portal with both roles")
    group.add_argument("--officer-password-env", default="REHEARSAL_OFFICER_PASSWORD",
                       help="environment variable holding the officers' password")
    group.add_argument("--city-password-env", default="REHEARSAL_CITY_PASSWORD",
                       help="environment variable holding the citizens' password on a city portal")
    group.add_argument("--officers-file", default="", metavar="CSV",
                       help="officer accounts: unit,username lines (default: cb<unit>-<n>)")
    group.add_argument("--citizens-file", default="", metavar="CSV",
                       help="citizen test identities: one 12-digit ID number a line (default: made up)")
    group.add_argument("--national-url", default="",
                       help="for a stage with a cutover, without --systems: the national portal (--host is the "
                            "legacy one)")
    group.add_argument("--admin-token-env", default="REHEARSAL_ADMIN_TOKEN",
                       help="environment variable holding the portal's admin token (if it has one)")
    group.add_argument("--confirm-target", default="", metavar="HOST[,HOST]",
                       help="confirm hosts on allowed_hosts that are not loopback: exactly the hosts of --host, "
                            "--national-url and the systems (locustfiles.fence)")


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None or environment.runner is None:
        return  # imported as a library, not run
    early = _hold_early_spawn(environment)  # a worker joining a running master: its spawn came first
    # Before anything else, in every process: where users will send requests is on the allowed list.
    environment.rehearsal_fence = fence = Fence(environment)  # type: ignore[attr-defined]
    install_fence(fence)
    try:
        plan = load_plan(options.plan, time_scale=options.time_scale or None)
        stage = plan.stage(options.stage) if options.stage else plan.stages[0]
        shared = read_shared(options, environment.host, fence)
    except RehearsalError as exc:
        refuse(str(exc))
    run_dir = Path(options.run_dir) if options.run_dir else None
    ctx = RunContext(plan=plan, stage=stage, catalogue=load_catalogue(), time_scale=plan.time_scale)
    ctx.telemetry = telemetry = Telemetry(environment, stage=stage.name, run_dir=run_dir,
                                          count_sessions=ctx.active_sessions)
    ctx.follow = fence.follow
    if shared is not None:  # the writing process (or one given the files): its workers get it with each spawn
        setattr(options, SHARED, shared)
        take_shared(ctx, shared, fence)
    ctx.latency = LatencyRecorder(environment, stage_dir=run_dir / "stages" / stage.name if run_dir else None,
                                  time_scale=plan.time_scale)
    ctx.slots = SlotBroker(environment, len(stage.units) * stage.officers.per_unit)
    CitizenUser.ctx = ctx
    OfficerUser.ctx = ctx
    OfficerUser.fixed_count = len(stage.units) * stage.officers.per_unit
    environment.rehearsal = ctx  # type: ignore[attr-defined]
    install_workers_watch(environment, run_dir / "stages" / stage.name if run_dir else None)  # master only
    if isinstance(environment.runner, MasterRunner):
        environment.events.worker_connect.add_listener(partial(_rank_late_worker, environment))
    if not isinstance(environment.runner, WorkerRunner):
        install_web_ui(environment, ctx)
        if shared is None:
            refuse("no systems to talk to: give --host (one portal) or --systems FILE")
        environment.rehearsal_timeline = Timeline(  # type: ignore[attr-defined]
            stage, ctx.systems, time_scale=plan.time_scale,
            stage_dir=run_dir / "stages" / stage.name if run_dir else None,
            admin_token=os.environ.get(options.admin_token_env) or None, telemetry=telemetry)
        environment.rehearsal_gate_watch = GateWatch(  # type: ignore[attr-defined]
            environment, stage, time_scale=plan.time_scale,
            stage_dir=run_dir / "stages" / stage.name if run_dir else None,
            mark=environment.rehearsal_timeline.mark)
        install_server_timing(environment, ctx, run_dir / "stages" / stage.name if run_dir else None)
    if early is not None:
        _replay_early_spawn(environment, early)


#: The name, among the master's parsed options, of {worker client id: rank} for the workers it starts
#: the stage with. Locust's master sends its parsed options (ours included) to every worker in each
#: spawn message, and a worker takes them in before it fires test_start (locust/runners.py,
#: ``WorkerRunner.handle_message``, case "spawn"): so a worker started by the runner, by
#: ``rehearse worker`` on another machine or by hand learns its rank and how many there are alike.
WORKER_RANKS = "rehearsal_worker_ranks"
#: The name, among the master's parsed options, of the stage's clock as the master read it last:
#: ``{"started_at": …, "now": …}`` (its ``time.time()``), "now" renewed as a worker connects, just
#: before the spawn that starts it. A worker starts its stage clock ``now - started_at`` before it
#: got that spawn: one that joins late runs the stage's window, not one of its own, and clocks of
#: two machines need not agree.
STAGE_CLOCK = "rehearsal_stage_clock"


def _learn_workers(environment: Environment, ctx: RunContext) -> None:
    """At test_start: the master ranks its workers; each worker reads its rank and their number.

    Citizens are numbered by rank (`RunContext.next_identity`) and the open
    model's arrival rate is shared by their number (`_arrivals`). The ranks
    are 0..n-1 even where Locust's indexes are not (a worker that connected
    and left before the start used one up). A worker that joins after the
    start is ranked as it connects (`_rank_late_worker`), past the others:
    its citizens' ID numbers are its own (`locustfiles.citizens.citizen_id`).
    A rank once given is kept: a master's test_start again (a restart) ranks
    no one anew, and a worker that comes back keeps its rank.
    """
    runner, options = environment.runner, environment.parsed_options
    if isinstance(runner, MasterRunner):
        if getattr(options, WORKER_RANKS, None) is None:
            workers = sorted(runner.clients.ready, key=lambda c: runner.get_worker_index(c.id))
            setattr(options, WORKER_RANKS, {c.id: rank for rank, c in enumerate(workers)})
    elif isinstance(runner, WorkerRunner):
        ranks: dict[str, int] = getattr(options, WORKER_RANKS, None) or {}
        ctx.worker_count = max(1, len(ranks))
        ctx.worker_index = ranks.get(runner.client_id, runner.worker_index)


def _rank_late_worker(environment: Environment, client_id: str, **_: Any) -> None:
    """Master, once started: a worker that connects gets the next rank (or keeps its own) and the clock.

    Both travel with the spawn that follows (`WORKER_RANKS`, `STAGE_CLOCK`):
    Locust fires worker_connect before it hands the worker its users. Those
    users are taken from the other workers, stopped at once (stop_timeout 0),
    mid-request if need be: a dossier whose POST was under way is on the
    portal, but its ``submitted`` event never happened, so the ledger does
    not know it. Decided: such a dossier is not ours (reconciliation starts
    from the ledger: not lost, not duplicated); the portal may hold a few
    more than the ledger after a join, at most one per user moved. (A
    ``submitting`` event with the client_ref before the POST would let
    reconciliation claim them: not done, it is the citizens' filing and the
    reconciliation's, not this hook's.)
    """
    options = environment.parsed_options
    ranks = getattr(options, WORKER_RANKS, None)
    if ranks is None:
        return  # before the start: ranked with the others at test_start
    if client_id not in ranks:
        ranks[client_id] = max(ranks.values(), default=-1) + 1
    clock = getattr(options, STAGE_CLOCK, None)
    if clock is not None:
        clock["now"] = time.time()


def _stage_started_at(environment: Environment, received_at: float) -> float:
    """The stage's start on this process's clock: now on the master (which tells it), the master's on a worker."""
    options = environment.parsed_options
    if isinstance(environment.runner, MasterRunner):
        setattr(options, STAGE_CLOCK, {"started_at": received_at, "now": received_at})
        return received_at
    clock = getattr(options, STAGE_CLOCK, None)
    if isinstance(environment.runner, WorkerRunner) and clock:
        return received_at - max(0.0, float(clock["now"]) - float(clock["started_at"]))
    return received_at


def _hold_early_spawn(environment: Environment) -> tuple[dict[str, Any], str | None] | None:
    """A worker whose master's spawn came before init: the master's view set aside, this process's own back.

    A Locust worker connects inside its runner's constructor, before init
    fires; a master already running answers with a spawn that the worker can
    take in at once (same read as the ack): it fires test_start (no context
    to start yet) and overwrites our options with the master's (its paths,
    its host). So init builds this process's context from its own command
    line and host, as for a worker that connected before the start, and
    `_replay_early_spawn` then puts the master's view back and starts the
    stage. (A worker that connected mid-stage worked or not by luck before.)
    """
    runner = environment.runner
    if not isinstance(runner, WorkerRunner) or runner.worker_state not in (STATE_SPAWNING, STATE_RUNNING):
        return None
    options = environment.parsed_options
    master = dict(vars(options)), environment.host
    own = vars(get_parser().parse_args())  # as Locust's main parsed this process's command line
    for key in set(vars(options)) - set(default_args_dict()):  # the keys a spawn brings (locust's rule)
        if key in own:
            setattr(options, key, own[key])
        else:
            delattr(options, key)
    environment.host = own.get("host")
    return master


def _replay_early_spawn(environment: Environment, master: tuple[dict[str, Any], str | None]) -> None:
    """After init: the master's options and host back, and the test_start the spawn fired too early."""
    view, host = master
    vars(environment.parsed_options).update(view)
    environment.host = host
    _on_test_start(environment)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    """The stage starts in this process: on the master's clock, with this worker's rank.

    Locust fires it on a worker when a spawn finds it idle: its first (at the
    start, or when it joins late, maybe before init: `_hold_early_spawn`),
    or the first after the master stopped the test, which is a restart (the
    shape's clock starts again, and the master's with it). A worker that goes
    missing and heals by heartbeat gets none (it never stopped); one the
    master dropped (60 s missing) is told to quit. So the loops stopped at
    test_stop start again here, once each, and an open model's arrivals are
    rescheduled, not doubled.
    """
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is None or environment.runner is None:
        # A worker's spawn before init (`_hold_early_spawn`): init starts the stage, from this moment.
        environment.rehearsal_spawned_at = time.time()  # type: ignore[attr-defined]
        return
    received_at = getattr(environment, "rehearsal_spawned_at", None) or time.time()
    environment.rehearsal_spawned_at = None  # type: ignore[attr-defined]
    ctx.started_at = _stage_started_at(environment, received_at)
    _learn_workers(environment, ctx)
    # The variables' names are the master's too: a remote worker reads the ones the run's target names.
    options = environment.parsed_options
    ctx.officer_password = os.environ.get(options.officer_password_env, "rehearsal")
    ctx.city_password = os.environ.get(options.city_password_env, "rehearsal")
    if not hasattr(ctx, "systems"):  # a worker learns the systems (and accounts) from the master's spawn
        shared = getattr(options, SHARED, None)
        if not shared and environment.host:  # a master that is not ours: its --host is one portal
            host = environment.rehearsal_fence.admit(environment.host, what="the master's host")
            shared = {"systems": Systems.single(host).as_dict()}
        if not shared:
            refuse("the master sent no systems to talk to")
        take_shared(ctx, shared, environment.rehearsal_fence)
    ctx.telemetry.start()
    ctx.latency.start(ctx.started_at)
    timeline: Timeline | None = getattr(environment, "rehearsal_timeline", None)
    if timeline is not None:
        timeline.start(ctx.started_at)
    watch: GateWatch | None = getattr(environment, "rehearsal_gate_watch", None)
    if watch is not None and watch.start(ctx.started_at):
        ctx.latency.watchers.append(watch.on_latency)
        ctx.telemetry.sample_watchers.append(watch.on_sample)
    if ctx.stage.citizens.arrival_rate_per_min and not isinstance(environment.runner, MasterRunner):
        if ctx.arrivals_loop is not None:  # a restart: test_stop left the old schedule running
            ctx.arrivals_loop.kill(block=False)
        ctx.arrivals = Queue()
        ctx.arrivals_loop = gevent.spawn(_arrivals, ctx)
    if not isinstance(environment.runner, MasterRunner):  # the processes that hold users
        runner = environment.runner
        ctx.heap = HeapFreezer(lambda: runner.user_count).start()


def _arrivals(ctx: RunContext) -> None:
    """The open model: Poisson arrivals at the stage's rate (this process's share), one per idle citizen.

    An arrival that finds every citizen of the pool busy is not queued: it is
    dropped and counted (``arrival_dropped``), as k6 counts dropped iterations.
    """
    per_wall_s = ctx.stage.citizens.arrival_rate_per_min * ctx.time_scale / 60 / ctx.worker_count
    rng = random.Random()
    # The schedule is fixed in advance (each arrival's intended time), not "sleep, then arrive": a
    # process that falls behind does not quietly thin the arrivals, and each arrival carries the time
    # it was due, which its first request is measured from (locustfiles.latency).
    intended = max(ctx.started_at + ctx.lead_wall, time.time())  # a late worker: from now, no catching up
    while True:
        intended += rng.expovariate(per_wall_s)
        if intended >= ctx.started_at + ctx.lead_wall + ctx.window_wall:
            return
        gevent.sleep(max(0.0, intended - time.time()))
        if ctx.idle_citizens > ctx.arrivals.qsize():
            ctx.arrivals.put_nowait(intended)
        else:
            ctx.telemetry.emit("arrival_dropped")


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    # Before the users are stopped: their going is the end of the stage, not a ramp down worth a
    # collect-and-freeze pass (a 1.3 s pause at 16,000 users while the last requests are timed).
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is not None and ctx.heap is not None:
        ctx.heap.stop()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is not None:
        ctx.telemetry.stop()
        ctx.latency.stop()
    timeline: Timeline | None = getattr(environment, "rehearsal_timeline", None)
    if timeline is not None:
        timeline.stop()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    ctx: RunContext | None = getattr(environment, "rehearsal", None)
    if ctx is not None:
        ctx.telemetry.close()
        ctx.latency.close()


def citizens_at(ctx: RunContext, t: float) -> tuple[int, float]:
    """(citizens wanted, spawn rate) at `t` wall seconds into the stage, from the stage's ramp.

    Before the first step and without a ramp: all ``users`` at ``spawn_rate``.
    A step ``{to: N, over: D}`` asks for N at the rate that gets there in D;
    ``{hold: D}`` keeps the count; after the last step the count is held.
    """
    load = ctx.stage.citizens
    if not load.ramp:
        return load.users, load.spawn_rate
    at = ctx.lead_wall
    count = 0
    for step in load.ramp:
        span = step.over_s / ctx.time_scale
        if step.to is not None:
            rate = abs(step.to - count) / span if span > 0 else load.spawn_rate
            if t < at + span or span == 0 and t < at:
                return step.to, max(rate, 0.1)
            count = step.to
        elif t < at + span:
            return count, load.spawn_rate
        at += span
    return count, load.spawn_rate


class StageShape(LoadTestShape):
    """Officers first, then citizens (held, or shaped by the ramp) through the window and the grace; stop."""

    def tick(self) -> tuple[int, float, list[type[locust.User]]] | None:
        ctx: RunContext | None = getattr(self.runner.environment, "rehearsal", None) if self.runner else None
        if ctx is None:
            return None
        t = self.get_run_time()
        officers = OfficerUser.fixed_count
        if t < ctx.lead_wall and officers:
            return officers, max(officers / max(ctx.lead_wall, 1.0), 50.0), [OfficerUser]
        if t < ctx.total_wall:
            citizens, rate = citizens_at(ctx, t)
            return officers + citizens, rate, [OfficerUser, CitizenUser]
        return None

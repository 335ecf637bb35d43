"""`rehearse worker`: Locust worker processes on another machine, joining a run's master.

On the machine that runs the plan::

    rehearse run SCENARIO --workers 2 --remote-workers 2 --master-bind 0.0.0.0:5557 --target staging

and on a second machine (with the same checkout and scenario)::

    rehearse worker SCENARIO --master 10.0.0.5:5557 --processes 2

Each stage of a plan is its own Locust master (on the same address, one
after the other); the worker command follows the plan stage by stage: for
each stage it starts its processes, they connect (retrying for up to 5
minutes), run the stage's users and quit when the master does. Give it the
same ``--stage``/``--from``/``--time-scale`` as the run. Workers on another
machine need a target both machines can reach: the embedded reference
portal listens on the run machine's loopback only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from urllib.parse import urlsplit

from .. import LOCUSTFILES_DIR
from ..errors import TargetError


def parse_master(text: str) -> tuple[str, int]:
    parts = urlsplit(f"//{text}")
    if not parts.hostname:
        raise TargetError(f"--master: expected HOST[:PORT]; found {text!r}")
    return parts.hostname, parts.port or 5557


def cmd_worker(args: argparse.Namespace) -> int:
    from ..plan import load_plan

    plan = load_plan(args.scenario, time_scale=args.time_scale)
    host, port = parse_master(args.master)
    names = [s.name for s in plan.stages]
    if args.stage:
        for name in args.stage:
            plan.stage(name)
        names = [n for n in names if n in args.stage]
    if args.start_from:
        plan.stage(args.start_from)
        names = names[names.index(args.start_from):] if args.start_from in names else []
    for name in names:
        print(f"stage {name}: {args.processes} worker process(es) for master {host}:{port}", flush=True)
        procs = [subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES_DIR / "locustfile.py"), "--worker",
             "--master-host", host, "--master-port", str(port), "--plan", str(plan.source), "--stage", name,
             "--time-scale", str(plan.time_scale), "--loglevel", "WARNING"]) for _ in range(args.processes)]
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"stage {name}: a worker exited with {max(codes)}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="join a distributed run's master from another machine",
                       description="Start Locust worker processes that join the master of a run started with "
                                   "--remote-workers, stage after stage.")
    p.add_argument("scenario", help="the same scenario YAML as the run")
    p.add_argument("--master", required=True, metavar="HOST[:PORT]", help="the run's --master-bind address")
    p.add_argument("--processes", type=int, default=1, metavar="N", help="worker processes here (default 1)")
    p.add_argument("--stage", action="append", default=[], metavar="NAME", help="as given to the run")
    p.add_argument("--from", dest="start_from", default=None, metavar="NAME", help="as given to the run")
    p.add_argument("--time-scale", type=float, default=None, metavar="N", help="as given to the run")
    p.set_defaults(func=cmd_worker)

"""`rehearse worker`: Locust worker processes on another machine, joining a run's master.

On the machine that runs the plan::

    rehearse run SCENARIO --workers 2 --remote-workers 2 --master-bind 0.0.0.0:5557 --target staging

and on a second machine (with the same checkout and scenario)::

    rehearse worker SCENARIO --master 10.0.0.5:5557 --processes 2

Each stage of a plan is its own Locust master (on the same address, one
after the other); the worker command follows the plan stage by stage: for
each stage it starts its processes, they connect (retrying for up to 5
minutes), run the stage's users and quit when the master does. Give it the
same ``--stage``/``--from``/``--time-scale`` as the run. Its processes are
the same Locust workers as the run's local ones (`LocustCommand.worker`): the
master tells each the portal, the officers' password variable, its rank and
how many workers there are. Workers on another machine need a target both
machines can reach: the embedded reference portal listens on the run
machine's loopback only.

Started while a stage runs, its processes join it: the master ranks each as
it connects (past the others: its citizens are new people), tells it how far
into the stage it is, and hands it its share of the users, which Locust
takes from the other workers by stopping them, mid-request if need be. A
dossier filed in that instant is on the portal without its ``submitted``
line in the ledger (its answer was lost with the user): reconciliation
counts only the ledger's dossiers, so it is neither lost nor duplicated, and
a portal holding a few more dossiers than the ledger after a join is that
(`locustfiles.locustfile._rank_late_worker`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence

from ..errors import TargetError
from ..plan import Plan
from ..shared.net import UrlError, parse_address
from .locust_command import LocustCommand
from .processes import die_with_parent


def parse_master(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` as (host, port), read like every address (`parse_address`); the port defaults to 5557."""
    try:
        return parse_address(text, default_port=5557)
    except UrlError as exc:
        raise TargetError(f"--master {text!r}: {exc} (expected HOST[:PORT] like 10.0.0.5:5557)") from None


def stage_names(plan: Plan, only: Sequence[str] = (), start_from: str | None = None) -> list[str]:
    """The stages a run with these ``--stage``/``--from`` runs, in order (unknown names: `PlanError`)."""
    names = [s.name for s in plan.stages]
    for name in [*only, *([start_from] if start_from else [])]:
        plan.stage(name)
    if only:
        names = [n for n in names if n in only]
    if start_from:
        names = names[names.index(start_from):] if start_from in names else []
    return names


def run_remote_workers(plan: Plan, master: str, *, processes: int = 1, only: Sequence[str] = (),
                       start_from: str | None = None) -> int:
    """For each stage in turn, `processes` Locust workers joined to the run's master; 0, or the worst exit code."""
    host, port = parse_master(master)
    worst = 0
    for name in stage_names(plan, only, start_from):
        print(f"stage {name}: {processes} worker process(es) for master {host}:{port}", flush=True)
        command = LocustCommand(plan, name).worker((host, port))
        # Tied to this command: killing it stops its workers, as a killed run stops its own.
        procs = [subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(signal.SIGTERM))
                 for _ in range(processes)]
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"stage {name}: a worker exited with {max(codes)}", file=sys.stderr)
            worst = max(worst, *codes)
    return worst

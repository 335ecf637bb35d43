"""One stage in Locust: its process (or a master and workers), a progress line, stopped if it overruns.

Locust runs as its own processes (the gevent world); this module stays in the
plain-Python world: it starts them with the command lines of
`rehearsal.run.locust_command`, follows the stage's time series
(``timeseries.jsonl``, written by the master or the single process) for a
progress line, and stops Locust with SIGINT (it still writes its CSVs and
flushes the ledger) on Ctrl-C or when the stage runs far past its plan. Its
own half-second loop is a witness too: how late it wakes, every 2 s, goes to
``harness.jsonl`` beside the time series (`HarnessLateness`), so a machine
that starves every process is seen from outside Locust as well.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..plan import Plan, Stage
from ..shared.jsonl import JsonlTail
from ..shared.starvation import cpu_pressure, why_starved
from ..shared.status import completion_rate
from .locust_command import LocustCommand
from .processes import die_with_parent, free_port, stop_process
from .targets import Target

#: Extra wall seconds a stage may take beyond its plan before it is stopped.
STAGE_OVERRUN_S = 120.0
#: How long a distributed stage's master waits for all its workers before giving up on the stage.
WORKERS_MAX_WAIT_S = 120.0

Progress = Callable[[str, bool], None]
#: The progress loop's step, and how often its lateness is written.
TICK_S, HARNESS_EVERY_S = 0.5, 2.0


def progress_line(stage: Stage, plan: Plan, row: dict[str, Any] | None, elapsed: float) -> str:
    """The stage's figures now, from its latest time-series row, in one line."""
    total = stage.total_s / plan.time_scale
    if not row:
        return f"[{stage.name}] {elapsed:5.0f}/{total:.0f} s  starting…"
    sub, done = row.get("submitted", 0), row.get("complete", 0)
    share = completion_rate(done, sub, row.get("withdrawn", 0))  # withdrawn dossiers leave the count
    rate = f"{share:6.1%}" if share is not None else "     –"
    portal = row.get("sessions_portal")  # the sum of the systems' own counts
    starved = why_starved(row)
    return (f"[{stage.name}] {elapsed:5.0f}/{total:.0f} s  users {row.get('users', 0):5d}  "
            f"sessions {row.get('sessions_harness', 0):5d} harness / "
            f"{'–' if portal is None else portal:>5} portal  "
            f"dossiers {sub:6d} submitted {done:6d} complete {rate}  "
            f"{row.get('rps', 0):6.1f} req/s" + (f"  STARVED: {starved}" if starved else ""))


def print_progress(line: str, final: bool) -> None:
    """Rewrite one line on a terminal; print a line now and then elsewhere."""
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line[:shutil.get_terminal_size().columns - 1] + ("\n" if final else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _Series:
    """The stage's time series as it grows: only the lines added since the last look are read."""

    def __init__(self, path: Path) -> None:
        self.tail = JsonlTail(path)
        self.last: dict[str, Any] | None = None

    def latest(self) -> dict[str, Any] | None:
        rows = self.tail.read()
        if rows:
            self.last = rows[-1]
        return self.last


class HarnessLateness:
    """How late this process's own loop wakes, written every `HARNESS_EVERY_S` to ``harness.jsonl``.

    Each row: ``t``, ``late_ms`` (the worst oversleep of a `TICK_S` sleep in
    the interval), ``late_at`` (when it ended) and ``cpu_pressure`` (the machine's).
    """

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")
        self.worst = (0.0, time.time())
        self.next_write = time.monotonic() + HARNESS_EVERY_S

    def sleep(self) -> None:
        """One step of the loop: sleep `TICK_S`, note how late it woke, write a row when one is due."""
        before = time.monotonic()
        time.sleep(TICK_S)
        late = max(0.0, time.monotonic() - before - TICK_S)
        if late >= self.worst[0]:
            self.worst = (late, time.time())
        if time.monotonic() >= self.next_write:
            self.next_write = time.monotonic() + HARNESS_EVERY_S
            row = {"t": round(time.time(), 3), "late_ms": round(self.worst[0] * 1000, 1),
                   "late_at": round(self.worst[1], 3), "cpu_pressure": cpu_pressure()}
            self.worst = (0.0, time.time())
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        self.file.close()


def run_stage(plan: Plan, stage: Stage, run_dir: Path, url: str, *, progress: Progress | None = print_progress,
              env: dict[str, str] | None = None, systems: Path | None = None,
              web_ui_port: int | None = None, target: Target | None = None, workers: int = 0,
              remote_workers: int = 0, master_bind: tuple[str, int] | None = None) -> bool:
    """One stage in a Locust process; True if it ran to its planned end.

    `url` is Locust's host (the national portal); `systems` the run's
    ``systems.json``, where every process learns who is where.
    With `workers`, Locust runs distributed on this machine: one master (it
    writes the ledger, the time series and the CSVs, plays the timeline and
    stops the stage) and that many worker processes that run the users and
    send their events to it (`locustfiles.telemetry`). With `remote_workers`,
    the master also waits for that many ``rehearse worker`` processes to join
    on `master_bind`. A worker that dies is noticed by the master (no
    heartbeat for 3 s); the master hands its users to the others and the
    loss is reported.
    """
    stage_dir = run_dir / "stages" / stage.name
    stage_dir.mkdir(parents=True, exist_ok=True)
    command = LocustCommand(plan, stage.name, host=url, run_dir=run_dir, systems=systems, target=target)
    budget = stage.total_s / plan.time_scale + (WORKERS_MAX_WAIT_S if remote_workers else 0.0)
    child_env = {**os.environ, **(env or {})}
    worker_cmds: list[list[str]] = []
    if workers or remote_workers:
        bind_host, port = master_bind or ("127.0.0.1", free_port())
        cmd = command.master(stage_dir, bind=(bind_host, port), workers=workers + remote_workers,
                             max_wait_s=WORKERS_MAX_WAIT_S, web_ui_port=web_ui_port)
        local = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
        worker_cmds = [command.worker((local, port), logfile=stage_dir / f"worker-{i}.log") for i in range(workers)]
    else:
        cmd = command.single(stage_dir, web_ui_port=web_ui_port)
    series = _Series(stage_dir / "timeseries.jsonl")
    lateness = HarnessLateness(stage_dir / "harness.jsonl")
    started = time.monotonic()
    worker_procs: list[subprocess.Popen[bytes]] = []
    with (stage_dir / "locust.out").open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env, preexec_fn=die_with_parent(signal.SIGINT))
        for i, worker_cmd in enumerate(worker_cmds):
            with (stage_dir / f"worker-{i}.log").open("ab") as log:
                worker_procs.append(subprocess.Popen(
                    worker_cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env,
                    preexec_fn=die_with_parent(signal.SIGTERM)))
        (stage_dir / "workers.json").write_text(json.dumps([w.pid for w in worker_procs]))
        try:
            next_print = 0.0
            while proc.poll() is None:
                lateness.sleep()
                elapsed = time.monotonic() - started
                if progress and elapsed >= next_print:
                    progress(progress_line(stage, plan, series.latest(), elapsed), False)
                    next_print = elapsed + (2 if sys.stderr.isatty() else 10)
                if elapsed > budget + STAGE_OVERRUN_S:
                    stop_process(proc, signal.SIGINT, 30)
                    return False
        except KeyboardInterrupt:
            stop_process(proc, signal.SIGINT, 30)  # Locust writes its CSVs and flushes the ledger on SIGINT
            raise
        finally:
            lateness.close()
            for w in worker_procs:  # workers quit with their master; make sure of it
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
    if progress:
        progress(progress_line(stage, plan, series.latest(), time.monotonic() - started), True)
    return proc.returncode == 0

"""Running a plan: portal up, one Locust process per stage, reconcile, summarise.

Locust runs as its own process (the gevent world), this module stays in the
plain-Python world: it starts the reference portal when the target is
``reference``, runs each stage with ``locust --headless`` on the stage's
locustfile, shows a progress line from the stage's time series, reconciles
the ledger with the portal, and writes ``summary.json`` after every stage, so
whatever was measured stays on disk whatever happens next.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import LOCUSTFILES_DIR, REPORTS_DIR, __version__
from ..results.cutover import cutover_summary
from ..errors import PortalError, RehearsalError, RunError
from ..results.ledger import read_events
from ..plan import Plan, Stage
from ..results.reconcile import Reconciliation, fetch_portal_dossiers, reconcile
from ..results.summary import judge_stage, read_timeseries, run_gate_data, run_verdict, stage_summary
from .targets import Target

#: Extra wall seconds a stage may take beyond its plan before it is stopped.
STAGE_OVERRUN_S = 120.0
#: How long a distributed stage's master waits for all its workers before giving up on the stage.
WORKERS_MAX_WAIT_S = 120.0

Progress = Callable[[str, bool], None]


def _die_with_parent(sig: int) -> Callable[[], None]:
    """For Popen's preexec_fn: the child gets `sig` when the harness dies, even by kill -9 (Linux).

    So a killed harness never leaves a portal serving or a Locust process
    sending load; Locust gets SIGINT and still writes its CSVs and flushes the ledger.
    """
    def set_signal() -> None:
        # A harness started in the background (`cmd &` in a script) inherits SIGINT ignored, and so
        # would its children: give them the default back, so that our SIGINT stops Locust cleanly.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # not Linux: the child outlives a killed harness, as it would anyway
    return set_signal


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


class PortalProcess:
    """The embedded reference portal, in its own process, on an ephemeral loopback port."""

    def __init__(self, run_dir: Path, *, time_scale: float, officers_per_unit: int, face: str = "national") -> None:
        self.run_dir = run_dir
        self.time_scale = time_scale
        self.officers_per_unit = officers_per_unit
        self.face = face
        #: portal.sqlite / portal.log for the national face; legacy.sqlite / legacy.log for the city portal.
        self.stem = "portal" if face == "national" else face
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> str:
        port_file = self.run_dir / f"{self.stem}.port"
        port_file.unlink(missing_ok=True)
        log = (self.run_dir / f"{self.stem}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rehearsal.portal", "--host", "127.0.0.1", "--port", "0",
             "--port-file", str(port_file), "--db", str(self.run_dir / f"{self.stem}.sqlite"),
             "--time-scale", str(self.time_scale), "--officers-per-unit", str(self.officers_per_unit),
             "--face", self.face],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RunError(f"the reference portal exited at start (code {self.proc.returncode}); "
                               f"see {self.run_dir / (self.stem + '.log')}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text:
                self.url = f"http://127.0.0.1:{int(text)}"
                if _healthy(self.url):
                    return self.url
            time.sleep(0.1)
        self.stop()
        raise RunError(f"the reference portal did not answer within {timeout:.0f} s; "
                       f"see {self.run_dir / (self.stem + '.log')}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


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


def _progress_line(stage: Stage, plan: Plan, row: dict[str, Any] | None, elapsed: float) -> str:
    total = stage.total_s / plan.time_scale
    if not row:
        return f"[{stage.name}] {elapsed:5.0f}/{total:.0f} s  starting…"
    sub, done = row.get("submitted", 0), row.get("complete", 0)
    rate = f"{done / sub:6.1%}" if sub else "     –"
    portal = row.get("sessions_portal")
    return (f"[{stage.name}] {elapsed:5.0f}/{total:.0f} s  users {row.get('users', 0):5d}  "
            f"sessions {row.get('sessions_harness', 0):5d} harness / "
            f"{'–' if portal is None else portal:>5} portal  "
            f"dossiers {sub:6d} submitted {done:6d} complete {rate}  "
            f"{row.get('rps', 0):6.1f} req/s")


def print_progress(line: str, final: bool) -> None:
    """Rewrite one line on a terminal; print a line now and then elsewhere."""
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line[:shutil.get_terminal_size().columns - 1] + ("\n" if final else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run_stage(plan: Plan, stage: Stage, run_dir: Path, url: str, *, progress: Progress | None = print_progress,
              env: dict[str, str] | None = None, national_url: str | None = None,
              web_ui_port: int | None = None, target: Target | None = None, workers: int = 0,
              remote_workers: int = 0, master_bind: tuple[str, int] | None = None) -> bool:
    """One stage in a Locust process; True if it ran to its planned end.

    For a stage with a cutover, `url` is the legacy portal and `national_url` the one it moves to.
    With `workers`, Locust runs distributed on this machine: one master (it
    writes the ledger, the time series and the CSVs, plays the timeline and
    stops the stage) and that many worker processes that run the users and
    send their events to it (`locustfiles.telemetry`). A worker that dies is
    noticed by the master (no heartbeat for 3 s); the master hands its users
    to the others (``--enable-rebalancing``) and the loss is reported.
    """
    stage_dir = run_dir / "stages" / stage.name
    stage_dir.mkdir(parents=True, exist_ok=True)
    # With a web UI, Locust starts the stage by itself (--autostart) and quits when the shape ends it.
    mode = (["--autostart", "--autoquit", "3", "--web-host", "127.0.0.1", "--web-port", str(web_ui_port)]
            if web_ui_port else ["--headless"])
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES_DIR / "locustfile.py")]
    # What every process of the stage is told (master and workers alike).
    common = ["--host", url, "--plan", str(plan.source), "--stage", stage.name,
              "--time-scale", str(plan.time_scale), "--run-dir", str(run_dir), "--exit-code-on-error", "0"]
    if national_url:
        common += ["--national-url", national_url]
    # Secrets travel by the *names* of environment variables, never as values on a command line.
    if target is not None and target.officer_password_env:
        common += ["--officer-password-env", target.officer_password_env]
    if target is not None and target.admin_token_env:
        common += ["--admin-token-env", target.admin_token_env]
    # Only the master (or the single process) writes Locust's CSVs.
    cmd = [*locust, *mode, *common, "--csv", str(stage_dir / "locust"), "--csv-full-history", "--only-summary",
           "--loglevel", "WARNING", "--logfile", str(stage_dir / "locust.log")]
    budget = stage.total_s / plan.time_scale + (WORKERS_MAX_WAIT_S if remote_workers else 0.0)
    started = time.monotonic()
    worker_procs: list[subprocess.Popen[bytes]] = []
    child_env = {**os.environ, **(env or {})}
    worker_cmd: list[str] = []
    if workers or remote_workers:
        bind_host, port = master_bind or ("127.0.0.1", _free_port())
        child_env["REHEARSAL_WORKER_COUNT"] = str(workers + remote_workers)
        local = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
        worker_cmd = [*locust, "--worker", "--master-host", local, "--master-port", str(port), *common,
                      "--loglevel", "WARNING"]
        cmd += ["--master", "--expect-workers", str(workers + remote_workers), "--master-bind-host", bind_host,
                "--master-bind-port", str(port), "--enable-rebalancing",
                "--expect-workers-max-wait", str(int(WORKERS_MAX_WAIT_S))]
    with (stage_dir / "locust.out").open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env, preexec_fn=_die_with_parent(signal.SIGINT))
        for i in range(workers):
            log = (stage_dir / f"worker-{i}.log").open("ab")
            worker_procs.append(subprocess.Popen(
                [*worker_cmd, "--logfile", str(stage_dir / f"worker-{i}.log")], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=child_env, preexec_fn=_die_with_parent(signal.SIGTERM)))
        (stage_dir / "workers.json").write_text(json.dumps([w.pid for w in worker_procs]))
        try:
            next_print = 0.0
            while proc.poll() is None:
                time.sleep(0.5)
                elapsed = time.monotonic() - started
                if progress and elapsed >= next_print:
                    rows = read_timeseries(stage_dir / "timeseries.jsonl")
                    progress(_progress_line(stage, plan, rows[-1] if rows else None, elapsed), False)
                    next_print = elapsed + (2 if sys.stderr.isatty() else 10)
                if elapsed > budget + STAGE_OVERRUN_S:
                    _stop(proc)
                    return False
        except KeyboardInterrupt:
            _stop(proc)  # Locust writes its CSVs and flushes the ledger on SIGINT
            raise
        finally:
            for w in worker_procs:  # workers quit with their master; make sure of it
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
    if progress:
        rows = read_timeseries(stage_dir / "timeseries.jsonl")
        progress(_progress_line(stage, plan, rows[-1] if rows else None, time.monotonic() - started), True)
    return proc.returncode == 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous summary whole."""
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(run_dir / "summary.json")


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
            portals.append(PortalProcess(run_dir, time_scale=plan.time_scale, officers_per_unit=per_unit))
            url = portals[0].start()
            if any(s.cutover for s in stages):
                portals.append(PortalProcess(run_dir, time_scale=plan.time_scale, officers_per_unit=per_unit,
                                             face="legacy"))
                legacy_url = portals[1].start()
        else:
            url = national_url or str(target.url)
            legacy_url = str(target.url) if national_url else None
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

"""``rehearse validate``, ``run``, ``demo`` and ``worker``: a plan, checked or played.

`run_plan` returns what it measured; this edge prints the stage lines and
the verdict, writes the report and the JUnit file, and turns the verdict
into the exit code.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PlanError, TargetError
from .common import ExitCode, exit_for, print_gates, tcp_port

if TYPE_CHECKING:
    from ..plan import Plan
    from ..run.targets import Target


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a scenario file without sending any load."""
    from ..plan import describe_plan, load_plan

    print("\n".join(describe_plan(load_plan(args.scenario, time_scale=args.time_scale))))
    return ExitCode.GO


def _run(scenario: str, args: argparse.Namespace) -> int:
    from .. import REPORTS_DIR
    from ..plan import load_plan
    from ..results.baseline import load_baseline
    from ..results.metrics import new_run_in, parse_bind, serve_metrics
    from ..run.locust_command import otel_env
    from ..run.targets import resolve_target

    plan = load_plan(scenario, time_scale=args.time_scale)
    baseline = None
    if args.baseline:
        baseline = load_baseline(args.baseline)  # a missing baseline fails before any load is sent
    elif plan.baseline:
        try:
            baseline = load_baseline(plan.baseline)
        except PlanError as exc:  # the scenario's default: its first run has nothing to compare with yet
            print(f"rehearse: note: {exc}; 'baseline' gates are skipped", file=sys.stderr)
    for name in [*args.stage, *([args.start_from] if args.start_from else [])]:
        plan.stage(name)  # unknown names fail before any load is sent
    target = resolve_target(args.target or plan.target, url=args.target_url, national_url=args.national_url,
                            confirmed=args.confirm_target)
    national_url = target.national_url
    if args.remote_workers and not args.master_bind:
        raise TargetError("--remote-workers needs --master-bind HOST:PORT (where the other machines connect)")
    master_bind = _master_bind(args.master_bind) if args.master_bind else None
    reports_dir = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
    _check_output_paths(reports_dir, Path(args.junit) if args.junit else None)  # before any load, not after it
    if args.web_ui:
        print(f"Locust web UI (with the Rehearsal and Units tabs): http://127.0.0.1:{args.web_ui}", flush=True)
    target_env = otel_env() if args.otel else None  # Locust's own --otel, in every Locust process of the run
    metrics = serve_metrics(new_run_in(reports_dir, plan.name), parse_bind(args.metrics_port)) \
        if args.metrics_port else None
    if metrics is not None:
        print(f"metrics for Prometheus: {metrics.url}", flush=True)
    try:
        return _play(plan, target, args, national_url=national_url, master_bind=master_bind,
                     reports_dir=reports_dir, baseline=baseline, target_env=target_env)
    finally:
        if metrics is not None:  # up until the report is written: a last scrape sees the final summary
            metrics.close()


def _play(plan: Plan, target: Target, args: argparse.Namespace, *, national_url: str | None,
          master_bind: tuple[str, int] | None, reports_dir: Path, baseline: dict | None,
          target_env: dict[str, str] | None) -> int:
    """Run the plan, print its stages and verdict, write the report and JUnit; the exit code."""
    from ..report.page import build_report
    from ..results.junit import write_junit
    from ..run.runner import run_plan
    from ..shared.formats import percent

    result = run_plan(plan, target, only=args.stage or None, start_from=args.start_from, national_url=national_url,
                      web_ui_port=args.web_ui, workers=args.workers, remote_workers=args.remote_workers,
                      master_bind=master_bind, reports_dir=reports_dir, baseline=baseline, target_env=target_env)
    summary = result.summary
    for stage in summary["stages"]:
        d, s = stage["dossiers"], stage["sessions"]
        print(f"{stage['name']}: {stage['verdict']}  units {stage['units']}  "
              f"completion {percent(stage['completion_rate'])}  sessions {s['peak_harness']} harness / "
              f"{s['peak_portal']} portal  dossiers {d['submitted']} submitted, {d['complete']} complete, "
              f"{d.get('withdrawn', 0)} withdrawn, {d['lost']} lost, {d['duplicated']} duplicated"
              + _untrusted([stage]))
        print_gates([g for g in stage["gates"] if g.get("status") != "passed"])
        if stage.get("aborted"):
            print(f"  stage aborted at {stage['aborted'].get('at_s')} s (simulated) by gate "
                  f"{stage['aborted'].get('gate')!r}")
    if summary.get("not_run"):
        print(f"not run: {', '.join(summary['not_run'])}")
    if summary.get("gates"):
        print("whole run:")
        print_gates(summary["gates"])
    print(f"verdict: {summary['verdict']}" + _untrusted(summary["stages"]))
    if args.junit:
        write_junit(summary, Path(args.junit), plan)
    print(f"report: {build_report(result.run_dir)}")
    if result.interrupted:
        print("rehearse: interrupted; what was measured is on disk", file=sys.stderr)
        return ExitCode.ERROR
    if result.error is not None:
        print(f"rehearse: error: {result.error}; what was measured is in {result.run_dir}", file=sys.stderr)
        return ExitCode.ERROR
    if summary["verdict"] == "INCOMPLETE":
        print(f"rehearse: error: the run did not complete; what was measured is in {result.run_dir}",
              file=sys.stderr)
    return exit_for(summary["verdict"])


def _untrusted(stages: list[dict]) -> str:
    """``  (measurement untrustworthy: harness starved for N s)`` when the harness was starved in `stages`, and
    ``  (latency mostly the harness's own: …)`` when their client latency is (`rehearsal.results.generator_share`)."""
    from ..results.generator_share import harness_note
    from ..results.starved import untrustworthy

    return "".join(f"  ({note})" for note in (untrustworthy(stages), harness_note(stages)) if note)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario's stages against its target and write the run directory."""
    return _run(args.scenario, args)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run scenarios/demo.yaml on the embedded reference portal."""
    from .. import SCENARIOS_DIR

    return _run(str(SCENARIOS_DIR / "demo.yaml"), args)


def cmd_worker(args: argparse.Namespace) -> int:
    """Locust worker processes here, joining a distributed run's master stage by stage."""
    from ..plan import load_plan
    from ..run.worker import run_remote_workers

    plan = load_plan(args.scenario, time_scale=args.time_scale)
    worst = run_remote_workers(plan, args.master, processes=args.processes, only=args.stage,
                               start_from=args.start_from)
    return ExitCode.ERROR if worst else ExitCode.GO  # the failing stage and its code are already on stderr


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of worker processes; found {text!r}") from None
    if not 0 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected 0 to 64 worker processes; found {n}")
    return n


def _processes(text: str) -> int:
    """An argparse type: 1 to 64 processes."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected 1 to 64 worker processes; found {text!r}")
    return int(text)


def _master_bind(text: str) -> tuple[str, int]:
    from ..shared.net import UrlError, parse_address

    try:
        return parse_address(text)
    except UrlError as exc:
        raise TargetError(f"--master-bind {text!r}: {exc} (expected HOST:PORT like 0.0.0.0:5557)") from None


def _check_output_paths(reports_dir: Path, junit: Path | None) -> None:
    """Refuse (`RunError`) a reports directory or JUnit file that could not be written, before the run, not after it."""
    from ..errors import RunError

    for folder, option in ((reports_dir, "--reports-dir"), *([(junit.parent, "--junit")] if junit else [])):
        if folder.exists() and not folder.is_dir():
            raise RunError(f"{option} {folder}: not a directory")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"{option} {folder}: cannot make the directory: {exc.strerror or exc}") from None
    if junit is not None and junit.is_dir():
        raise RunError(f"--junit {junit}: is a directory (expected a file name, e.g. {junit / 'junit.xml'})")


def _add_time_scale(p: argparse.ArgumentParser, help: str = "compress simulated time N times (default: the "
                                                            "scenario's)") -> None:
    p.add_argument("--time-scale", type=float, default=None, metavar="N", help=help)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    _add_time_scale(p)
    p.add_argument("--stage", action="append", default=[], metavar="NAME",
                   help="run only this stage (repeatable)")
    p.add_argument("--from", dest="start_from", default=None, metavar="NAME",
                   help="resume the plan: run this stage and the ones after it")
    p.add_argument("--workers", type=_workers, default=0, metavar="N",
                   help="run Locust distributed: a master and N worker processes here (one per core is a good start)")
    p.add_argument("--remote-workers", type=_workers, default=0, metavar="N",
                   help="also wait for N workers from other machines ('rehearse worker'); needs --master-bind")
    p.add_argument("--master-bind", default=None, metavar="HOST:PORT",
                   help="where the Locust master listens for workers (default: loopback, any free port)")
    p.add_argument("--web-ui", type=tcp_port, default=None, metavar="PORT",
                   help="run each stage with Locust's web UI on 127.0.0.1:PORT (it starts and stops by itself)")
    p.add_argument("--national-url", default=None, metavar="URL",
                   help="for a cutover against real portals: the national portal (the target is the legacy one)")
    p.add_argument("--target", default=None, help="target name from config/targets.yaml (default: the scenario's)")
    p.add_argument("--target-url", default=None, help="override the target's URL (must be on the allowed list)")
    p.add_argument("--confirm-target", action="append", default=[], metavar="HOST",
                   help="confirm a target host that is allowed but not loopback: exactly the host of its URL "
                        "(repeat it for --national-url's host)")
    p.add_argument("--reports-dir", default=None, help="where run directories go (default: reports/)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="baseline (baselines/NAME.json, or a file) for gates written 'baseline * 1.10'")
    p.add_argument("--junit", default=None, metavar="FILE", help="also write the gates as JUnit XML here")
    p.add_argument("--metrics-port", default=None, metavar="[HOST:]PORT",
                   help="while it runs, serve the run's figures to Prometheus at http://HOST:PORT/metrics "
                        "(host 127.0.0.1 unless given; docs/metrics.md)")
    p.add_argument("--otel", action="store_true",
                   help="turn on Locust's own OpenTelemetry (its --otel: Locust 2.42+, pip install 'locust[otel]', "
                        "set up with the OTEL_* variables)")


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a scenario file without sending load",
                       description="Validate a scenario without sending any load: print what it would run and "
                                   "exit 0, or print one error line (file:line: field: message) and exit 2.")
    p.add_argument("scenario", help="scenario YAML, e.g. scenarios/demo.yaml")
    _add_time_scale(p)
    p.set_defaults(func=cmd_validate)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario (all its stages, in order)",
                       description="Run a scenario's stages in order against its target. "
                                   "Exit 0 GO, 1 NO-GO, 2 bad input or harness error.")
    p.add_argument("scenario", help="scenario YAML, e.g. scenarios/demo.yaml")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run scenarios/demo.yaml on the embedded reference portal",
                       description="All 168 units, 2 officers each, 1,000+ concurrent sessions, "
                                   "time compressed to finish within 3 minutes.")
    _add_run_options(p)
    p.set_defaults(func=cmd_demo)


def add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="join a distributed run's master from another machine",
                       description="Start Locust worker processes that join the master of a run started with "
                                   "--remote-workers, stage after stage.")
    p.add_argument("scenario", help="the same scenario YAML as the run")
    p.add_argument("--master", required=True, metavar="HOST[:PORT]", help="the run's --master-bind address")
    p.add_argument("--processes", type=_processes, default=1, metavar="N", help="worker processes here (default 1)")
    p.add_argument("--stage", action="append", default=[], metavar="NAME", help="as given to the run")
    p.add_argument("--from", dest="start_from", default=None, metavar="NAME", help="as given to the run")
    _add_time_scale(p, "as given to the run")
    p.set_defaults(func=cmd_worker)


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve a run directory's figures to Prometheus until Ctrl-C (a finished run, or one still running)."""
    from ..results.metrics import parse_bind, serve_metrics
    from ..results.summary import read_summary_file

    run_dir = Path(args.run_dir)
    read_summary_file(run_dir)  # a folder that is not a run directory: one line, exit 2
    server = serve_metrics(run_dir, parse_bind(args.port, "--port"))
    print(f"metrics of {run_dir}: {server.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return ExitCode.GO
    finally:
        server.close()


def add_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="serve a run directory's figures to Prometheus",
                       description="Serve a run's figures (rehearsal_* metrics, docs/metrics.md) in Prometheus "
                                   "text format at http://HOST:PORT/metrics until Ctrl-C.")
    p.add_argument("run_dir", help="a run directory, e.g. reports/20250625T010000Z-hcmc-2025")
    p.add_argument("--port", default="9464", metavar="[HOST:]PORT",
                   help="where to listen (default 9464 on 127.0.0.1)")
    p.set_defaults(func=cmd_metrics)

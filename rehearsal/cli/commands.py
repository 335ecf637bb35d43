"""`rehearse`: the command line, a thin layer over the library.

Each command parses its arguments and calls one library function. Every
`RehearsalError` becomes one line on stderr and exit code 2 (the traceback only
with `--debug`). Exit codes: 0 done / GO, 1 NO-GO, 2 bad input or harness error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from ..errors import PlanError, RehearsalError, TargetError

EXIT_GO, EXIT_NO_GO, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 like any bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def cmd_wards(args: argparse.Namespace) -> int:
    """Print the 168 units: code, name, type, former province."""
    from ..shared.wards import FormerProvince, UnitType, filter_units

    units = filter_units(
        former_provinces={FormerProvince(v) for v in args.former_province} or None,
        types={UnitType(v) for v in args.type} or None)
    if args.json:
        print(json.dumps([u.as_dict() for u in units], ensure_ascii=False, indent=1))
        return EXIT_GO
    print(f"{'code':>6}  {'name':<32} {'type':<8} former province")
    for u in units:
        print(f"{u.code:>6}  {u.name:<32} {u.type.label:<8} {u.former_province.label}")
    print(f"{len(units)} units")
    return EXIT_GO


def _exit_for(verdict: str) -> int:
    return {"GO": EXIT_GO, "NO-GO": EXIT_NO_GO}.get(verdict, EXIT_ERROR)


def _run(scenario: str, args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import REPORTS_DIR
    from ..plan import load_plan
    from ..run.runner import run_plan
    from ..run.targets import resolve_target

    from ..results.baseline import load_baseline

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
    target = resolve_target(args.target or plan.target, url=args.target_url, confirmed=args.confirm_target)
    national_url = None
    if args.national_url:
        if target.embedded:
            raise TargetError("--national-url is for a real target: on the embedded one the harness starts "
                              "both portals itself")
        national_url = str(resolve_target(args.target or plan.target, url=args.national_url,
                                          confirmed=args.confirm_target).url)
    from .results import format_gates
    from ..report.page import percent

    if args.remote_workers and not args.master_bind:
        raise TargetError("--remote-workers needs --master-bind HOST:PORT (where the other machines connect)")
    if args.web_ui:
        print(f"Locust web UI (with the Rehearsal and Units tabs): http://127.0.0.1:{args.web_ui}", flush=True)
    result = run_plan(plan, target, only=args.stage or None, start_from=args.start_from, national_url=national_url,
                      web_ui_port=args.web_ui, workers=args.workers, remote_workers=args.remote_workers,
                      master_bind=_master_bind(args.master_bind) if args.master_bind else None,
                      reports_dir=Path(args.reports_dir) if args.reports_dir else REPORTS_DIR,
                      baseline=baseline, junit=Path(args.junit) if args.junit else None)
    summary = result.summary
    for stage in summary["stages"]:
        d, s = stage["dossiers"], stage["sessions"]
        print(f"{stage['name']}: {stage['verdict']}  units {stage['units']}  "
              f"completion {percent(stage['completion_rate'])}  sessions {s['peak_harness']} harness / "
              f"{s['peak_portal']} portal  dossiers {d['submitted']} submitted, {d['complete']} complete, "
              f"{d['lost']} lost, {d['duplicated']} duplicated")
        for line in format_gates([g for g in stage["gates"] if g.get("status") != "passed"]):
            print(line)
        if stage.get("aborted"):
            print(f"  stage aborted at {stage['aborted'].get('at_s')} s (simulated) by gate "
                  f"{stage['aborted'].get('gate')!r}")
    if summary.get("not_run"):
        print(f"not run: {', '.join(summary['not_run'])}")
    if summary.get("gates"):
        print("whole run:\n" + "\n".join(format_gates(summary["gates"])))
    print(f"verdict: {summary['verdict']}")
    print(f"report: {result.run_dir / 'index.html'}")
    if summary["verdict"] == "INCOMPLETE":
        print(f"rehearse: error: the run did not complete; what was measured is in {result.run_dir}",
              file=sys.stderr)
    return _exit_for(summary["verdict"])


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario's stages against its target and write the run directory."""
    return _run(args.scenario, args)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run scenarios/demo.yaml on the embedded reference portal."""
    from .. import SCENARIOS_DIR

    return _run(str(SCENARIOS_DIR / "demo.yaml"), args)


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a run's index.html from its summary.json."""
    from ..report.page import build_report

    print(build_report(args.run_dir, lang=args.lang))
    return EXIT_GO


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of worker processes; found {text!r}") from None
    if not 0 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected 0 to 64 worker processes; found {n}")
    return n


def _master_bind(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise TargetError(f"--master-bind: expected HOST:PORT like 0.0.0.0:5557; found {text!r}")
    return host, int(port)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-scale", type=float, default=None, metavar="N",
                   help="compress simulated time N times (default: the scenario's)")
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
    p.add_argument("--web-ui", type=int, default=None, metavar="PORT",
                   help="run each stage with Locust's web UI on 127.0.0.1:PORT (it starts and stops by itself)")
    p.add_argument("--national-url", default=None, metavar="URL",
                   help="for a cutover against real portals: the national portal (the target is the legacy one)")
    p.add_argument("--target", default=None, help="target name from config/targets.yaml (default: the scenario's)")
    p.add_argument("--target-url", default=None, help="override the target's URL (must be on the allowed list)")
    p.add_argument("--confirm-target", action="store_true",
                   help="confirm a target that is allowed but not loopback")
    p.add_argument("--reports-dir", default=None, help="where run directories go (default: reports/)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="baseline (baselines/NAME.json, or a file) for gates written 'baseline * 1.10'")
    p.add_argument("--junit", default=None, metavar="FILE", help="also write the gates as JUnit XML here")


def build_parser() -> argparse.ArgumentParser:
    from ..shared.wards import FormerProvince, UnitType

    parser = _Parser(prog="rehearse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("wards", help="list the 168 units of province 79",
                       description="List the units (phường, xã, đặc khu) with their official codes.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--former-province", action="append", default=[],
                   choices=[v.value for v in FormerProvince], help="filter (repeatable)")
    p.add_argument("--type", action="append", default=[], choices=[v.value for v in UnitType],
                   help="filter (repeatable)")
    p.set_defaults(func=cmd_wards)

    p = sub.add_parser("run", help="run a scenario (all its stages, in order)",
                       description="Run a scenario's stages in order against its target. "
                                   "Exit 0 GO, 1 NO-GO, 2 bad input or harness error.")
    p.add_argument("scenario", help="scenario YAML, e.g. scenarios/demo.yaml")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run scenarios/demo.yaml on the embedded reference portal",
                       description="All 168 units, 2 officers each, 1,000+ concurrent sessions, "
                                   "time compressed to finish within 3 minutes.")
    _add_run_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="rebuild a run's report from its summary.json",
                       description="Rebuild reports/<run>/index.html, also for a run that crashed.")
    p.add_argument("run_dir", help="a run directory, e.g. reports/20250625T010000Z-demo")
    p.add_argument("--lang", choices=("vi", "en"), default="vi",
                   help="vi (default) writes index.html; en writes index.en.html beside it")
    p.set_defaults(func=cmd_report)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


def _register_portal(sub: argparse._SubParsersAction) -> None:
    from ..portal.cli import register

    register(sub)


#: Other modules add their sub-commands here (keeps this file a thin table).
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_register_portal]


def _register_validate(sub: argparse._SubParsersAction) -> None:
    from ..plan import register

    register(sub)


_EXTRA_COMMANDS.append(_register_validate)


def _register_dashboard(sub: argparse._SubParsersAction) -> None:
    from ..report.live import register

    register(sub)


_EXTRA_COMMANDS.append(_register_dashboard)


def _register_worker(sub: argparse._SubParsersAction) -> None:
    from ..run.worker import register

    register(sub)


_EXTRA_COMMANDS.append(_register_worker)


def _register_ci(sub: argparse._SubParsersAction) -> None:
    from .results import register

    register(sub)


_EXTRA_COMMANDS.append(_register_ci)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RehearsalError as exc:
        if args.debug:
            raise
        print(f"rehearse: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("rehearse: interrupted; what was measured is on disk", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

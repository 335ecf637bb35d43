"""``rehearse gate``, ``rehearse baseline save`` and ``rehearse compare``: a finished run judged again.

Thin, like the rest of the CLI: each calls `rehearsal.results.rejudge`,
`rehearsal.results.baseline` or `rehearsal.results.junit` and turns the
verdict into the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import ExitCode, exit_for, print_gates


def cmd_gate(args: argparse.Namespace) -> int:
    """Judge a finished run's gates again (optionally against a baseline, or by another scenario's gates)."""
    from ..results.baseline import baseline_for
    from ..results.junit import write_junit
    from ..results.rejudge import judge_run, load_run_plan
    from ..results.summary import read_summary_file

    run_dir = Path(args.run_dir)
    summary = read_summary_file(run_dir)
    plan = load_run_plan(run_dir, summary, args.scenario)
    baseline, note = baseline_for(plan, args.baseline)
    if note:
        print(f"rehearse: note: {note}", file=sys.stderr)
    judged = judge_run(run_dir, summary, plan, baseline=baseline)
    for stage in judged["stages"]:
        print(f"{stage['name']}: {stage['verdict']}")
        if stage.get("gates"):
            print_gates(stage["gates"])
        else:
            print("  (no gates)")
    if judged.get("gates"):
        print("whole run:")
        print_gates(judged["gates"])
    print(f"verdict: {judged['verdict']}")
    if args.junit:
        print(f"junit: {write_junit(judged, Path(args.junit), plan)}")
    return exit_for(judged["verdict"])


def cmd_baseline_save(args: argparse.Namespace) -> int:
    """Store a finished run's figures as baselines/NAME.json."""
    from ..results.baseline import save_baseline

    path = save_baseline(Path(args.run_dir), args.name, directory=Path(args.dir) if args.dir else None)
    print(f"baseline {args.name!r} saved: {path}")
    return ExitCode.GO


def cmd_compare(args: argparse.Namespace) -> int:
    """Print what changed between two runs (or baselines) and draw each request type's p95."""
    from .. import REPORTS_DIR
    from ..report.charts import compare_chart
    from ..results.baseline import compare, format_compare

    result = compare(args.a, args.b)
    print(format_compare(result))
    if args.chart:
        chart = Path(args.chart)
    else:
        b = Path(args.b)
        chart = (b if b.is_dir() else REPORTS_DIR) / f"compare-{Path(args.a).name.removesuffix('.json')}.png"
    print(f"chart: {compare_chart(result, chart)}")
    return ExitCode.GO


def add_gate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gate", help="judge a finished run's gates again; JUnit XML for CI",
                       description="Re-evaluate the gates of a finished run from its directory (the scenario "
                                   "copy in it, or --scenario), optionally against a stored baseline. "
                                   "Exit 0 GO, 1 NO-GO, 2 bad input.")
    p.add_argument("run_dir", help="a run directory, e.g. reports/20250625T010000Z-ci")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="baseline name (baselines/NAME.json) or file for 'baseline' thresholds")
    p.add_argument("--scenario", default=None, metavar="FILE",
                   help="judge by this scenario's gates instead of the run's own copy")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML here")
    p.set_defaults(func=cmd_gate)


def add_baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", help="store a finished run's figures as a baseline",
                       description="Baselines are small JSON files under baselines/ (commit them); gates "
                                   "compare with them as 'p95_ms <= baseline * 1.10'.")
    bsub = p.add_subparsers(dest="baseline_command", required=True, parser_class=type(p))
    s = bsub.add_parser("save", help="save RUN_DIR's figures as baseline NAME",
                        description="Save a finished run's figures as baselines/NAME.json.")
    s.add_argument("run_dir", help="a finished run directory")
    s.add_argument("name", help="baseline name, e.g. ci-main")
    s.add_argument("--dir", default=None, help="where to write it (default: baselines/)")
    s.set_defaults(func=cmd_baseline_save)


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="the differences between two runs (or baselines), with a chart",
                       description="Print a table of the figures of run (or baseline) B against A, per stage, "
                                   "and write a chart of each request type's p95.")
    p.add_argument("a", help="run directory or baseline name/file (the reference)")
    p.add_argument("b", help="run directory or baseline name/file (the one judged)")
    p.add_argument("--chart", default=None, metavar="PNG",
                   help="where to write the chart (default: B's run directory, else reports/)")
    p.set_defaults(func=cmd_compare)

"""``rehearse report`` and ``rehearse dashboard``: a run's page, finished or live."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import TargetError
from .common import ExitCode, tcp_port


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a run's index.html from its summary.json (and the stages a crash left out of it)."""
    from ..report.page import build_report

    print(build_report(args.run_dir, lang=args.lang))
    return ExitCode.GO


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the live view of a run directory until Ctrl-C."""
    from ..report.live import make_server
    from ..results.summary import read_summary_file
    from ..shared.net import is_loopback

    if not is_loopback(args.host) and not args.allow_remote:
        raise TargetError(f"refusing to serve on {args.host}: not loopback (pass --allow-remote)")
    run_dir = Path(args.run_dir)
    # A run starts its directory with scenario.yaml and summary.json: a broken summary, or neither file, is
    # refused; a directory with only the scenario so far is a run starting, which the live view waits for.
    if (run_dir / "summary.json").exists() or not (run_dir / "scenario.yaml").exists():
        read_summary_file(run_dir)
    try:
        server = make_server(Path(args.run_dir), args.host, args.port, args.lang)
    except OSError as exc:
        raise TargetError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"live view of {args.run_dir} on http://{args.host}:{server.server_port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return ExitCode.GO


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild a run's report from its summary.json",
                       description="Rebuild reports/<run>/index.html, also for a run that crashed.")
    p.add_argument("run_dir", help="a run directory, e.g. reports/20250625T010000Z-demo")
    p.add_argument("--lang", choices=("vi", "en"), default="vi",
                   help="vi (default) writes index.html; en writes index.en.html beside it")
    p.set_defaults(func=cmd_report)


def add_dashboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the live view of a run (during it and after it)",
                       description="Serve an auto-refreshing page with the headline KPIs and the 168 units, "
                                   "read from the run directory every 3 s; works during the run and after it.")
    p.add_argument("run_dir", help="a run directory, e.g. reports/20250625T010000Z-demo")
    p.add_argument("--port", type=tcp_port, default=8090, help="port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless --allow-remote)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback address")
    p.add_argument("--lang", choices=("vi", "en"), default="vi")
    p.set_defaults(func=cmd_dashboard)

"""`rehearse`: the command line, a thin layer over the library.

Every command is one line of `COMMANDS`: the function that adds its parser,
kept beside its command function in this package's module for its job
(`running`: validate, run, demo, worker; `judging`: gate, baseline, compare;
`viewing`: report, dashboard; `info`: wards, portal). Each command parses its
arguments and calls library functions. Every `RehearsalError` becomes one
line on stderr and exit code 2 (the traceback only with ``--debug``), and so
does anything else that escapes a command (a file that cannot be read or
written, a harness bug): no traceback for a user's action. The codes are
`common.ExitCode`: 0 done / GO, 1 NO-GO, 2 bad input or harness error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any


def _interrupted_while_starting(signum: int, frame: Any) -> None:
    print("rehearse: interrupted", file=sys.stderr)
    raise SystemExit(2)


# Ctrl-C while the commands below are imported (a fifth of a second) is one line too, not an import
# traceback; Python's own handler is back once they are (signals can be set from the main thread only).
_STARTING = threading.current_thread() is threading.main_thread()
_handler = signal.signal(signal.SIGINT, _interrupted_while_starting) if _STARTING else None

from ..errors import RehearsalError  # noqa: E402
from ..shared.catalogue import CatalogueError  # noqa: E402
from . import info, judging, running, viewing  # noqa: E402
from .common import ExitCode, Parser  # noqa: E402

if _STARTING:
    signal.signal(signal.SIGINT, _handler if _handler is not None else signal.default_int_handler)

#: Every sub-command of ``rehearse``, in the order ``--help`` lists them.
COMMANDS = (
    info.add_wards,
    running.add_validate,
    info.add_portal,
    running.add_run,
    running.add_demo,
    viewing.add_report,
    viewing.add_dashboard,
    running.add_metrics,
    running.add_worker,
    judging.add_gate,
    judging.add_baseline,
    judging.add_compare,
)


def build_parser() -> Parser:
    """The ``rehearse`` parser with every command of `COMMANDS`."""
    parser = Parser(prog="rehearse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop a command as Ctrl-C does: what was measured is kept, one line, exit 2.

    Also when the harness was started with SIGINT ignored (``rehearse run … &``
    in a script, a CI runner's job): its portals and Locust get SIGINT back
    (`run.processes.die_with_parent`) so that the harness can stop Locust
    cleanly, and a SIGINT to the whole group would otherwise stop them and
    not the harness, which then went on to the next stage or reported a
    portal "exited at start". A handler the caller installed is left alone,
    and both are put back afterwards (``main`` called from a program).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if before[signal.SIGINT] in (signal.SIG_IGN, signal.SIG_DFL, None):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if before[signal.SIGTERM] in (signal.SIG_IGN, signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code."""
    with _stop_signals():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("rehearse: interrupted", file=sys.stderr)
        return ExitCode.ERROR
    try:
        return int(args.func(args))
    except (RehearsalError, CatalogueError) as exc:
        if args.debug:
            raise
        print(f"rehearse: error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        print("rehearse: interrupted; what was measured is on disk", file=sys.stderr)
        return ExitCode.ERROR
    except BrokenPipeError:
        # The reader went away (`rehearse wards | head`): what it wanted it has. Point stdout at
        # /dev/null so that Python's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.GO
    except OSError as exc:  # a file or directory the user named that cannot be read or written
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"rehearse: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return ExitCode.ERROR
    except Exception as exc:  # noqa: BLE001 (no traceback for a user's action: DESIGN.md, exit codes)
        if args.debug:
            raise
        print(f"rehearse: error: {type(exc).__name__}: {exc} (a harness bug: rerun with --debug for the traceback, "
              f"and report it)", file=sys.stderr)
        return ExitCode.ERROR

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

from .errors import RehearsalError

EXIT_GO, EXIT_NO_GO, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 like any bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def cmd_wards(args: argparse.Namespace) -> int:
    """Print the 168 units: code, name, type, former province."""
    from .wards import FormerProvince, UnitType, filter_units

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


def build_parser() -> argparse.ArgumentParser:
    from .wards import FormerProvince, UnitType

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

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


#: Other modules add their sub-commands here (keeps this file a thin table).
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


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
        print("rehearse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

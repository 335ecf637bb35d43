"""``rehearse wards`` and ``rehearse portal``: the province's units, and the reference portal served by hand."""

from __future__ import annotations

import argparse
import json

from ..errors import RehearsalError
from .common import ExitCode


def cmd_wards(args: argparse.Namespace) -> int:
    """Print the 168 units: code, name, type, former province."""
    from ..shared.wards import FormerProvince, UnitType, filter_units

    units = filter_units(
        former_provinces={FormerProvince(v) for v in args.former_province} or None,
        types={UnitType(v) for v in args.type} or None)
    if args.json:
        print(json.dumps([u.as_dict() for u in units], ensure_ascii=False, indent=1))
        return ExitCode.GO
    print(f"{'code':>6}  {'name':<32} {'type':<8} former province")
    for u in units:
        print(f"{u.code:>6}  {u.name:<32} {u.type.label:<8} {u.former_province.label}")
    print(f"{len(units)} units")
    return ExitCode.GO


def cmd_portal(args: argparse.Namespace) -> int:
    """Serve the reference portal until stopped."""
    from ..portal.cli import PortalStartError, serve_from_args

    try:
        return serve_from_args(args)
    except PortalStartError as exc:
        raise RehearsalError(str(exc)) from None


def add_wards(sub: argparse._SubParsersAction) -> None:
    from ..shared.wards import FormerProvince, UnitType

    p = sub.add_parser("wards", help="list the 168 units of province 79",
                       description="List the units (phường, xã, đặc khu) with their official codes.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--former-province", action="append", default=[],
                   choices=[v.value for v in FormerProvince], help="filter (repeatable)")
    p.add_argument("--type", action="append", default=[], choices=[v.value for v in UnitType],
                   help="filter (repeatable)")
    p.set_defaults(func=cmd_wards)


def add_portal(sub: argparse._SubParsersAction) -> None:
    from ..portal.cli import add_arguments

    p = sub.add_parser("portal", help="serve the reference portal",
                       description="Serve the reference portal (Flask on gevent, SQLite WAL) on loopback.")
    add_arguments(p)
    p.set_defaults(func=cmd_portal)

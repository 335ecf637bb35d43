"""`python -m rehearsal.portal` (and `rehearse portal`, which adds the same arguments): serve the reference portal.

The portal is a service of its own: this module imports nothing of the
harness. A bad argument, an address it cannot listen on (a busy port) or a
database it cannot open is a `PortalStartError`, one line; `main` prints it
and exits 2, and `rehearse portal` turns it into the harness's own error line.
Secrets come from environment variables named by the ``--…-env`` options,
never from an argument's value (it would show in ``ps`` and in run logs).

Without ``--system`` it serves the single portal of old (``--face national``
or ``legacy``: citizens and officers in one app). ``--system national`` is
the national portal; ``--system provincial --name hcmc`` a provincial
one-stop system, with its city-style front door on ``--front-door-port``
and, given ``--national-url``, its link agent started and supervised.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..shared.net import is_loopback
from .errors import PortalStartError
from .link.settings import LinkSettings
from .settings import PROVINCIAL_NAMES, PortalSettings

#: The integration API's unit codes of the provincial systems (HCMC: the code of its procedures, …H29).
MA_DON_VI = {"hcmc": "000.00.00.H29"}

__all__ = ["PortalStartError", "add_arguments", "main", "serve_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the portal's arguments to `p` (``python -m rehearsal.portal`` and ``rehearse portal`` share them)."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback unless --allow-remote)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--db", default="reports/portal.sqlite", help="SQLite database file")
    p.add_argument("--time-scale", type=float, default=1.0, help="divide due times and agency delays by this")
    p.add_argument("--officers-per-unit", type=int, default=2)
    p.add_argument("--agency-delay", type=float, default=600.0,
                   help="simulated seconds the second agency keeps a dossier")
    p.add_argument("--face", choices=("national", "legacy"), default=None,
                   help="the single portal of old (no --system): national (default) or legacy")
    p.add_argument("--system", choices=("national", "provincial"), default=None,
                   help="serve one of the two systems instead of the single portal")
    p.add_argument("--name", choices=PROVINCIAL_NAMES, default="hcmc", help="the provincial system (default hcmc)")
    p.add_argument("--front-door-port", type=int, default=None,
                   help="provincial: also serve its city-style front door on this port (0: any free port)")
    p.add_argument("--front-door-port-file", default=None, help="write the front door's bound port here")
    p.add_argument("--national-url", default=None,
                   help="provincial: the national portal to keep in sync with (starts the link agent)")
    p.add_argument("--link-username", default=None, help="provincial: the integration account (default: --name)")
    p.add_argument("--ma-don-vi", default=None,
                   help=f"provincial: the unit code the link signs in for (default for hcmc: {MA_DON_VI['hcmc']})")
    p.add_argument("--link-password-env", "--link-account-env", dest="link_password_env",
                   default="REHEARSAL_LINK_PASSWORD", metavar="VAR",
                   help="environment variable with the integration accounts' password (national) or the link's "
                        "(provincial); default password: rehearsal")
    p.add_argument("--integration-account", action="append", default=None, metavar="NAME=MADONVI",
                   help=f"national: an account of the integration API (default hcmc={MA_DON_VI['hcmc']})")
    p.add_argument("--link-workers", type=int, default=4, metavar="N",
                   help="provincial: the link's pushers working at once, each on its share of the dossiers (default 4)")
    p.add_argument("--city-password-env", default="REHEARSAL_CITY_PASSWORD", metavar="VAR",
                   help="provincial: environment variable with the front door's citizen password "
                        "(default password: rehearsal)")
    for name, default, what in (("pull-every", 30.0, "between pulls of the national feed"),
                                ("push-poll", 1.0, "between looks at the outbox"),
                                ("backoff", 5.0, "to wait after a failed call (doubling)"),
                                ("backoff-max", 300.0, "the longest wait after failures")):
        p.add_argument(f"--link-{name}", type=float, default=default, metavar="SECONDS",
                       help=f"provincial: simulated seconds {what} (default {default:g})")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="serve from N processes sharing the listening sockets (SO_REUSEPORT); counts stay exact")
    p.add_argument("--listeners", type=int, default=1, metavar="K",
                   help="listen on K ports of --host (the first --port, the others any free ones; GET /api/health "
                        "lists them in 'urls'): one client address holds ~28,000 connections per port")
    p.add_argument("--no-server-timing", dest="server_timing", action="store_false",
                   help="do not time calls server-side (only to measure what the timing costs)")
    p.add_argument("--port-file", default=None, help="write the bound port here once listening")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    p.add_argument("--session-ttl", type=float, default=8 * 3600, metavar="SECONDS",
                   help="wall seconds a session token stays valid (default 8 h)")
    p.add_argument("--officer-password-env", default="REHEARSAL_OFFICER_PASSWORD", metavar="VAR",
                   help="environment variable with the officers' password (default password: rehearsal)")
    p.add_argument("--admin-token-env", default="REHEARSAL_ADMIN_TOKEN", metavar="VAR",
                   help="environment variable with the admin token; without one, admin calls are loopback-only")
    p.add_argument("--payment-secret-env", default="REHEARSAL_PAYMENT_SECRET", metavar="VAR",
                   help="environment variable with the key the payment intermediary signs with "
                        "(default: a random key each start)")


def serve_from_args(args: argparse.Namespace) -> int:
    """Serve with the settings `add_arguments` parsed, until stopped; `PortalStartError` first if they are wrong."""
    # gevent patches the standard library before the server opens sockets.
    from gevent import monkey

    monkey.patch_all()
    import logging

    # The portal's own log lines (faults played, heap freezes) go to stderr: portal.log in a run directory.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .server import serve

    if not is_loopback(args.host) and not args.allow_remote:
        raise PortalStartError(f"refusing to serve on {args.host}: not loopback (pass --allow-remote)")
    if args.time_scale <= 0 or args.officers_per_unit < 0:
        raise PortalStartError("--time-scale must be > 0 and --officers-per-unit ≥ 0")
    if not 1 <= args.processes <= 64 or not 1 <= args.listeners <= 64:
        raise PortalStartError("--processes and --listeners must be from 1 to 64")
    settings = settings_from_args(args)
    what = f"{args.system} system {settings.name}" if args.system else f"reference portal ({settings.face})"

    def ready(port: int) -> None:
        print(f"{what} on http://{args.host}:{port}  db {args.db}", flush=True)

    def door_ready(port: int) -> None:
        print(f"{what}: city-style front door on http://{args.host}:{port}", flush=True)

    serve(settings, args.host, args.port, ready=ready, port_file=Path(args.port_file) if args.port_file else None,
          front_door_port=args.front_door_port if args.system == "provincial" else None,
          front_door_port_file=Path(args.front_door_port_file) if args.front_door_port_file else None,
          front_door_ready=door_ready, processes=args.processes, listeners=args.listeners)
    return 0


def settings_from_args(args: argparse.Namespace) -> PortalSettings:
    """The settings `add_arguments` parsed, secrets read from the environment; `PortalStartError` if they clash."""
    if args.system and args.face:
        raise PortalStartError("--face is the single portal's; a system is chosen with --system alone")
    if args.system != "provincial" and (args.national_url or args.front_door_port is not None):
        raise PortalStartError("--national-url and --front-door-port are a provincial system's (--system provincial)")
    link_password = os.environ.get(args.link_password_env) or "rehearsal"
    link = None
    if args.system == "provincial" and args.national_url:
        if not args.national_url.startswith("http://"):
            raise PortalStartError(f"--national-url must be http://host:port, not {args.national_url!r}")
        if not 1 <= args.link_workers <= 64:
            raise PortalStartError("--link-workers must be from 1 to 64")
        ma_don_vi = args.ma_don_vi or MA_DON_VI.get(args.name)
        if not ma_don_vi:
            raise PortalStartError(f"--ma-don-vi is needed for a link from {args.name}")
        link = LinkSettings(national_url=args.national_url.rstrip("/"), username=args.link_username or args.name,
                            ma_don_vi=ma_don_vi, password=link_password, time_scale=args.time_scale,
                            pull_every_s=args.link_pull_every, push_poll_s=args.link_push_poll,
                            backoff_s=args.link_backoff, backoff_max_s=args.link_backoff_max,
                            workers=args.link_workers)
    accounts = tuple(tuple(a.split("=", 1)) for a in args.integration_account or [f"hcmc={MA_DON_VI['hcmc']}"])
    if any(len(a) != 2 or not all(a) for a in accounts):
        raise PortalStartError("--integration-account is NAME=MADONVI")
    secret = os.environ.get(args.payment_secret_env)
    return PortalSettings(db_path=Path(args.db), time_scale=args.time_scale,
                          officers_per_unit=args.officers_per_unit, agency_delay_s=args.agency_delay,
                          face=args.face or "national",
                          officer_password=os.environ.get(args.officer_password_env) or "rehearsal",
                          admin_token=os.environ.get(args.admin_token_env) or None,
                          session_ttl_s=args.session_ttl, system=args.system or "portal",
                          name=args.name if args.system == "provincial" else "national",
                          link_password=link_password, integration_accounts=accounts,  # type: ignore[arg-type]
                          city_password=os.environ.get(args.city_password_env) or "rehearsal", link=link,
                          server_timing=getattr(args, "server_timing", True),
                          **({"payment_secret": os.fsencode(secret)} if secret else {}))


def main(argv: list[str] | None = None) -> int:
    """``python -m rehearsal.portal``: the same arguments as ``rehearse portal``."""
    parser = argparse.ArgumentParser(prog="python -m rehearsal.portal",
                                     description="Serve the reference portal or one of the two systems (Flask on "
                                                 "gevent, SQLite WAL) on loopback.")
    add_arguments(parser)
    try:
        return serve_from_args(parser.parse_args(argv))
    except PortalStartError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2

"""`python -m rehearsal.portal` (and `rehearse portal`, which adds the same arguments): serve the reference portal.

The portal is a service of its own: this module imports nothing of the
harness. A bad argument, an address it cannot listen on (a busy port) or a
database it cannot open is a `PortalStartError`, one line; `main` prints it
and exits 2, and `rehearse portal` turns it into the harness's own error line.
Secrets come from environment variables named by the ``--…-env`` options,
never from an argument's value (it would show in ``ps`` and in run logs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..shared.net import is_loopback
from .errors import PortalStartError

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
    p.add_argument("--face", choices=("national", "legacy"), default="national")
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
    from .settings import PortalSettings

    if not is_loopback(args.host) and not args.allow_remote:
        raise PortalStartError(f"refusing to serve on {args.host}: not loopback (pass --allow-remote)")
    if args.time_scale <= 0 or args.officers_per_unit < 0:
        raise PortalStartError("--time-scale must be > 0 and --officers-per-unit ≥ 0")
    import os

    secret = os.environ.get(args.payment_secret_env)
    settings = PortalSettings(db_path=Path(args.db), time_scale=args.time_scale,
                              officers_per_unit=args.officers_per_unit, agency_delay_s=args.agency_delay,
                              face=args.face, officer_password=os.environ.get(args.officer_password_env) or "rehearsal",
                              admin_token=os.environ.get(args.admin_token_env) or None,
                              session_ttl_s=args.session_ttl,
                              **({"payment_secret": os.fsencode(secret)} if secret else {}))

    def ready(port: int) -> None:
        print(f"reference portal ({args.face}) on http://{args.host}:{port}  db {args.db}", flush=True)

    serve(settings, args.host, args.port, ready=ready, port_file=Path(args.port_file) if args.port_file else None)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rehearsal.portal``: the same arguments as ``rehearse portal``."""
    parser = argparse.ArgumentParser(prog="python -m rehearsal.portal",
                                     description="Serve the reference portal (Flask on gevent, SQLite WAL) on loopback.")
    add_arguments(parser)
    try:
        return serve_from_args(parser.parse_args(argv))
    except PortalStartError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2

"""``python -m rehearsal.portal.link``: run one provincial system's link agent until SIGTERM.

The provincial process starts it this way (`rehearsal.portal.supervisor`);
run by hand it does the same. The password comes from the environment
variable ``--password-env`` names, never from an argument.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from .agent import LinkAgent
from .settings import LinkSettings


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the agent; 2 for bad arguments."""
    p = argparse.ArgumentParser(prog="python -m rehearsal.portal.link",
                                description="Keep a provincial system's database and the national portal in sync.")
    p.add_argument("--db", required=True, help="the provincial system's SQLite database")
    p.add_argument("--national-url", required=True, help="the national portal (its integration API: /api/dvcqg/)")
    p.add_argument("--username", required=True, help="the integration account (hcmc)")
    p.add_argument("--ma-don-vi", required=True, help="the unit code the account signs in for")
    p.add_argument("--password-env", default="REHEARSAL_LINK_PASSWORD", metavar="VAR",
                   help="environment variable with the account's password (default password: rehearsal)")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--pull-every", type=float, default=30.0, help="simulated seconds between pulls of the feed")
    p.add_argument("--push-poll", type=float, default=1.0, help="simulated seconds between looks at the outbox")
    p.add_argument("--backoff", type=float, default=5.0, help="simulated seconds to wait after a failed call")
    p.add_argument("--backoff-max", type=float, default=300.0, help="the longest wait after failures")
    p.add_argument("--workers", type=int, default=4, help="pushers working at once (default 4)")
    args = p.parse_args(argv)
    if args.time_scale <= 0 or not 1 <= args.workers <= 64 or not Path(args.db).exists():
        print(f"{p.prog}: error: --time-scale must be > 0, --workers 1 to 64, and --db must exist ({args.db})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = LinkSettings(national_url=args.national_url, username=args.username, ma_don_vi=args.ma_don_vi,
                            password=os.environ.get(args.password_env) or "rehearsal", time_scale=args.time_scale,
                            pull_every_s=args.pull_every, push_poll_s=args.push_poll, backoff_s=args.backoff,
                            backoff_max_s=args.backoff_max, workers=args.workers)
    agent = LinkAgent(Path(args.db), settings)
    signal.signal(signal.SIGTERM, lambda *_: agent.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stopping.set())
    agent.run()
    return 0


sys.exit(main())

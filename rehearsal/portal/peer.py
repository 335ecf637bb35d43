"""``python -m rehearsal.portal.peer``: process 1…N-1 of a system served by several processes.

Process 0 (`rehearsal.portal.processes.start_peers`) starts it and writes its
`ProcessPlan` (settings included, secrets too: hence a pipe, not arguments)
on its stdin; it serves the same listening ports (``SO_REUSEPORT``), says
``ready`` on stdout once it listens, and serves until SIGTERM (which it also
gets when process 0 dies).
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    """Serve as the process the plan on stdin names, until SIGTERM."""
    from gevent import monkey

    monkey.patch_all()
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")
    from .errors import PortalStartError
    from .processes import ProcessPlan
    from .server import serve_process

    plan: ProcessPlan = pickle.loads(sys.stdin.buffer.read())

    def ready(_port: int) -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    try:
        serve_process(plan, ready=ready)
    except PortalStartError as exc:
        print(f"process {plan.index} of {plan.count}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

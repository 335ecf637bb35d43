#!/usr/bin/env python3
"""The reference portal with exact server-side timings, for tools/bench/accuracy.py.

Serves the same app as ``rehearse portal`` (`rehearsal.portal.server.make_server`:
gevent, TCP_NODELAY) on loopback, with one addition outside the product: the
whole WSGI call of every request under ``--prefix`` is timed with
``time.perf_counter`` (routing, the portal's fault hook, the handler, the
response body), and ``GET /__timings`` hands the durations recorded so far
(microseconds) back and clears them. The portal's own ``/api/stats`` keeps
5 %-wide buckets, too coarse to compare against a client within 2 ms at 50 ms.

    python3 tools/bench/portal_timed.py --port 0 --port-file P --db D [--prefix /api/procedures/]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the checkout, not tools/bench


def main() -> int:
    from rehearsal.portal.db import close_pool
    from rehearsal.portal.server import make_server
    from rehearsal.portal.settings import PortalSettings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--prefix", default="/api/procedures/", help="time the requests whose path starts with this")
    args = ap.parse_args()
    if args.host != "127.0.0.1":
        raise SystemExit("loopback only")
    server = make_server(PortalSettings(db_path=Path(args.db)), args.host, args.port)
    app = server.application
    inner = app.wsgi_app
    timings: list[int] = []

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/__timings":
            body = json.dumps({"us": timings[:]}).encode()
            timings.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if not path.startswith(args.prefix):
            return inner(environ, start_response)
        t0 = time.perf_counter()
        result = inner(environ, start_response)
        timings.append(int((time.perf_counter() - t0) * 1e6))
        return result

    app.wsgi_app = timed
    server.start()
    tmp = Path(args.port_file).with_suffix(".tmp")
    tmp.write_text(str(server.server_port))
    tmp.replace(args.port_file)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    server.stop(timeout=5)
    close_pool(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Serving the portal: gevent's WSGI server, TCP_NODELAY on every connection.

Without TCP_NODELAY a small answer written in two pieces (headers, body) can
wait ~40 ms for the client's delayed ACK (Nagle's algorithm); a load test
would then measure the kernel, not the portal.

The listen backlog is raised from gevent's default of 128 to `BACKLOG` (the
kernel caps it at ``net.core.somaxconn``): when thousands of users connect
at once, a full accept queue drops their SYNs and each client waits the 1 s
SYN retransmission before it is even accepted. tools/bench/capacity.py saw
exactly that: p99 ~1,000 ms on the client while the portal's own p95 stayed
at 1 ms.

The server counts its open connections, and `rehearsal.shared.heap.HeapFreezer`
freezes the heap as they grow: with 16,000 connections a full garbage
collection otherwise stopped the portal for 300–580 ms every 12–20 s.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gevent.pywsgi import WSGIServer

from ..shared.heap import HeapFreezer
from .app import create_app
from .db import close_pool
from .settings import PortalSettings

log = logging.getLogger("rehearsal.portal")
#: Connections the kernel may queue before the portal accepts them.
BACKLOG = 4096


class NoDelayWSGIServer(WSGIServer):
    """A WSGIServer that turns Nagle's algorithm off on each accepted socket and counts open connections."""

    open_connections = 0

    def handle(self, sock: socket.socket, address: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a unix socket in a test): nothing to turn off
        self.open_connections += 1
        try:
            super().handle(sock, address)  # every request of the connection, until it closes
        finally:
            self.open_connections -= 1


def make_server(settings: PortalSettings, host: str = "127.0.0.1", port: int = 0) -> NoDelayWSGIServer:
    """A bound, not yet started server for the portal (port 0: an ephemeral port)."""
    server = NoDelayWSGIServer((host, port), create_app(settings), log=None, error_log=log, backlog=BACKLOG)
    server.init_socket()
    return server


def serve(settings: PortalSettings, host: str = "127.0.0.1", port: int = 0,
          ready: Callable[[int], None] | None = None, port_file: Path | None = None) -> None:
    """Serve until SIGTERM or SIGINT; tell `ready` (and `port_file`) the bound port."""
    import gevent

    server = make_server(settings, host, port)
    bound = server.server_port
    server.start()
    freezer = HeapFreezer(lambda: server.open_connections, what="connections").start()
    if port_file is not None:
        tmp = Path(port_file).with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)  # atomically: a reader never sees a half-written port
    if ready is not None:
        ready(bound)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    freezer.stop()
    server.stop(timeout=5)  # stop accepting, let requests in flight finish
    close_pool(server.application)

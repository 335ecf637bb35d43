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
collection otherwise stopped the portal for 300–580 ms every 12–20 s. On a
clean stop the heap is unfrozen again: frozen objects outlive the
collection the interpreter runs while it shuts down, so the logging
handlers died after gevent's modules were torn down, and every portal.log
ended with ``Exception ignored in: <function _removeHandlerRef …>`` (their
weakref callback takes logging's lock, which gevent's patching had made
one of its own, and gevent was gone).

Some requests gevent refuses itself, before the app sees them: a request
line over 8,192 bytes (414), a header line over 64 KiB or more than 100
header lines (431; `http.client`'s limits), a request it cannot parse (400).
`JsonErrorHandler` answers those in the portal's JSON shape too, naming the
part that was too long (the longest query parameter, or ``path``), and logs
one line instead of gevent's traceback. A client still sending a very long
request line when the answer comes may see the connection reset instead.

Each request's server-side time (`JsonErrorHandler.run_application`) runs
from the request's arrival, the kernel's receive stamp of the segment that
completed its head (`rehearsal.portal.arrival`; where the kernel gives none,
from the moment gevent has read it), to the moment the answer's last write is
handed to the kernel: its wait in the socket for a busy process (and, for a
new connection whose request has arrived, in the accept queue), the body's
reading, routing, faults, the handler, the database and the writing of the
answer are in it; the wait for a connection's next request, a connection's
handshake and the network (the last write's own send) are not.

A provincial system may serve a second app from the same process: its
city-style front door (`rehearsal.portal.frontdoor`), on a port of its own
and with its own error shape (`CityErrorHandler`). Once both listen, the
provincial system starts its link agent's supervisor
(`rehearsal.portal.supervisor`), and stops it first when told to stop.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from gevent.pywsgi import WSGIHandler, WSGIServer

from ..shared.heap import HeapFreezer
from ..shared.stamps import turn_on
from flask import Flask

from .app import create_app
from .arrival import arrival, stamped_rfile
from .db import close_pool
from .errors import PortalStartError, error_body
from .frontdoor import create_front_door_app, to_city
from .inputs import shown
from .peers import Peers, peers_path
from .processes import BACKLOG, ProcessPlan, keep_in_step, listen, share, start_peers, stop_peers
from .settings import PortalSettings
from .supervisor import LinkSupervisor

log = logging.getLogger("rehearsal.portal")


_REASONS = {400: "Bad Request", 414: "Request-URI Too Long", 431: "Request Header Fields Too Large",
            500: "Internal Server Error"}


def _raw_answer(status: int, body: dict[str, Any], shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                ) -> bytes:
    """A whole HTTP answer (the connection closes after it), for what gevent answers before the app."""
    data = json.dumps(shape(body) if shape else body, ensure_ascii=False).encode()
    return (f"HTTP/1.1 {status} {_REASONS[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode("ascii") + data


def _longest_part(request_line: str) -> str:
    """What made a request line too long: the longest query parameter's name, or ``path``."""
    target = request_line.split(" ", 2)[1] if request_line.count(" ") else request_line
    path, _, query = target.partition("?")
    pairs = [p.partition("=") for p in query.split("&") if p]
    name, _, value = max(pairs, key=lambda p: len(p[2]), default=("", "", ""))
    return shown(unquote(name), 40) if name and len(value) > len(path) else "path"


class JsonErrorHandler(WSGIHandler):
    """gevent's request handler, answering the requests it refuses itself in the portal's JSON shape."""

    #: How an error body is written (the portal's shape as it is; the city door's `to_city`).
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        super().__init__(sock, address, server, rfile)
        if rfile is None:  # the kernel's receive stamps: a request is timed from its arrival (`arrival`)
            stamped = stamped_rfile(sock)
            if stamped is not None:
                self.rfile = stamped

    def run_application(self) -> None:
        """Run the app and write its answer, timed: from the request's arrival to the answer's last write."""
        self.environ["rehearsal.timed_by_server"] = True
        self._last_write: int | None = None
        arrived = arrival(self.rfile)  # one clock at both ends: the kernel's stamp and time.time_ns (`arrival`)
        began = time.time_ns() if arrived is None else arrived
        try:
            super().run_application()
        finally:
            arrival(self.rfile)  # a stamp of this request's body is not the next request's arrival
            ended = self._last_write if self._last_write is not None else time.time_ns()
            endpoint, error = self.environ.get("rehearsal.endpoint", ("<unmatched>", False))
            live = getattr(self.application, "config", {}).get("LIVE")
            if live is not None:
                live.record(endpoint, max(0, ended - began) / 1e9, error)  # a wall clock set back: 0, not negative

    def _sendall(self, data: bytes) -> None:
        # The answer's time ends as its last write is handed to the kernel, as the harness's wire time
        # begins as the request is: the send itself is the network's. On loopback the kernel delivers
        # to the reader inside the writer's send, so a clock read after it would fall after the
        # client's receive stamp (the portal's span came out 0.2 ms longer than the client's at p50).
        self._last_write = time.time_ns()
        super()._sendall(data)

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":
            part = _longest_part(self.requestline or "")
            return "414", _raw_answer(414, error_body("too_long", f"the request line is over 8,192 bytes ({part} is "
                                                                  "the longest part)", part), self.shape)
        return result

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        # gevent's own prints a traceback for what is not a ValueError (more than 100 headers): one line instead.
        log.warning("refused a request from %s: %s", self.client_address, shown(str(ex), 200))
        if isinstance(ex, http.client.HTTPException) or "Line too long" in str(ex):
            return "431", _raw_answer(431, error_body("headers_too_large", "more than 100 header lines, or one "
                                                      "over 64 KiB", "headers"), self.shape)
        return "400", _raw_answer(400, error_body("bad_request", "not an HTTP request the portal can read"),
                                  self.shape)

    def _send_error_response_if_possible(self, error_code: int) -> None:
        if self.response_length:  # the answer had begun: all that can be done is to close
            self.close_connection = True
            return
        status = error_code if error_code in _REASONS else 500
        message = "the request body could not be read" if status == 400 else "the portal failed; see its log"
        body = error_body("bad_request" if status == 400 else "internal", message)
        data = json.dumps(self.shape(body) if self.shape else body).encode()
        try:
            self.start_response(f"{status} {_REASONS[status]}", [("Content-Type", "application/json"),
                                                                  ("Connection", "close"),
                                                                  ("Content-Length", str(len(data)))])
            self.write(data)
        except OSError:
            self.close_connection = True


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


class CityErrorHandler(JsonErrorHandler):
    """The same, answering in the city portal's shape (its front door's refusals)."""

    shape = staticmethod(to_city)


def make_server(settings: PortalSettings, host: str = "127.0.0.1", port: int = 0, *,
                front_door: bool = False, listener: socket.socket | None = None,
                app: Flask | None = None) -> NoDelayWSGIServer:
    """A bound, not yet started server for the system (or its front door); `PortalStartError` if it cannot."""
    if app is None:
        try:
            app = create_front_door_app(settings) if front_door else create_app(settings)
        except (OSError, sqlite3.Error) as exc:
            raise PortalStartError(f"cannot open the database {settings.db_path}: {exc}") from None
    server = NoDelayWSGIServer(listener if listener is not None else (host, port), app, log=None, error_log=log,
                               backlog=None if listener is not None else BACKLOG,
                               handler_class=CityErrorHandler if front_door else JsonErrorHandler)
    try:
        server.init_socket()
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)  # gevent's strerror also repeats the address
        raise PortalStartError(f"cannot listen on {host}:{port}: {why}") from None
    turn_on(server.socket)  # accepted connections inherit the stamps (`arrival`); without, timed from the head read
    return server


def _write_port(port_file: Path | None, port: int) -> None:
    if port_file is not None:
        tmp = Path(port_file).with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(port_file)  # atomically: a reader never sees a half-written port


def serve(settings: PortalSettings, host: str = "127.0.0.1", port: int = 0,
          ready: Callable[[int], None] | None = None, port_file: Path | None = None, *,
          front_door_port: int | None = None, front_door_port_file: Path | None = None,
          front_door_ready: Callable[[int], None] | None = None, processes: int = 1, listeners: int = 1) -> None:
    """Serve until SIGTERM or SIGINT; tell `ready` (and `port_file`) the bound port, and the front door's likewise.

    With `processes` > 1 the system is served by that many processes sharing its listening sockets, and with
    `listeners` > 1 on that many ports (`rehearsal.portal.processes`); `ready` is told once all of them listen.
    """
    plan = ProcessPlan(settings, host, [port] + [0] * (listeners - 1), front_door_port, 0, processes)
    serve_process(plan, ready, port_file, front_door_port_file=front_door_port_file,
                  front_door_ready=front_door_ready)


def serve_process(plan: ProcessPlan, ready: Callable[[int], None] | None = None, port_file: Path | None = None, *,
                  front_door_port_file: Path | None = None,
                  front_door_ready: Callable[[int], None] | None = None) -> None:
    """Serve one process of the system (process 0 starts the others and stops them last)."""
    import gevent

    settings, many = plan.settings, plan.count > 1
    try:
        app = create_app(settings)
        door_app = create_front_door_app(settings) if plan.front_door_port is not None else None
    except (OSError, sqlite3.Error) as exc:
        raise PortalStartError(f"cannot open the database {settings.db_path}: {exc}") from None
    sockets = [listen(plan.host, p, many) for p in plan.ports]
    plan.ports = [s.getsockname()[1] for s in sockets]
    servers = [make_server(settings, plan.host, listener=s, app=app) for s in sockets]
    door = None
    if door_app is not None and plan.front_door_port is not None:
        door_socket = listen(plan.host, plan.front_door_port, many)
        plan.front_door_port = door_socket.getsockname()[1]
        door = make_server(settings, plan.host, front_door=True, listener=door_socket, app=door_app)
    apps = [a for a in (app, door_app) if a is not None]
    for a in apps:
        a.config.update(URLS=plan.urls, PROCESS_INDEX=plan.index, PROCESSES=plan.count)
    peers = None
    if many:
        peers = Peers(peers_path(settings.db_path), plan.index, plan.count, fresh=plan.index == 0)
        share(app, peers, "main")
        if door_app is not None:
            share(door_app, peers, "door")
    all_servers = servers + ([door] if door is not None else [])
    for s in all_servers:
        s.start()
    children = start_peers(plan) if many and plan.index == 0 else []
    step = gevent.spawn(keep_in_step, apps, peers) if peers is not None else None
    freezer = HeapFreezer(lambda: sum(s.open_connections for s in all_servers), what="connections").start()
    supervisor = app.config.get("LINK")
    if isinstance(supervisor, LinkSupervisor):
        supervisor.watch()
    if door is not None:
        _write_port(front_door_port_file, door.server_port)
        if front_door_ready is not None:
            front_door_ready(door.server_port)
    _write_port(port_file, servers[0].server_port)  # last: whoever waits on it finds everything listening
    if ready is not None:
        ready(servers[0].server_port)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    stop_peers(children)
    if isinstance(supervisor, LinkSupervisor):
        supervisor.stop()
    if step is not None:
        step.kill()
    freezer.stop()  # unfreezes too: see the module's docstring, a clean stop leaves a clean log
    for s in all_servers:
        s.stop(timeout=5)  # stop accepting, let requests in flight finish
    for a in apps:
        close_pool(a)


"""Serving a run's metrics over HTTP: `prometheus_client`'s own server with one `RunCollector`.

`serve_metrics` starts it in a thread and returns at once (``rehearse run
--metrics-port`` keeps it up for the whole run; ``rehearse metrics RUN_DIR``
for as long as it is left running). It listens on loopback unless told an
address; the run's directory is read at each scrape, nothing else is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from ...errors import RunError
from ...shared.net import UrlError, parse_address
from .collector import RunCollector


@dataclass
class MetricsServer:
    """A running exporter: where it listens, and how to stop it."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop listening and wait for the serving thread."""
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]
        self._thread.join(5)


def parse_bind(text: str, option: str = "--metrics-port") -> tuple[str, int]:
    """``PORT`` (on 127.0.0.1) or ``HOST:PORT`` as (host, port); `RunError` with the expected shape otherwise."""
    if text.isascii() and text.isdigit():
        port = int(text)
        host = "127.0.0.1"
    else:
        try:
            host, port = parse_address(text)
        except UrlError as exc:
            raise RunError(f"{option} {text!r}: {exc} (expected PORT, or HOST:PORT like 0.0.0.0:9464)") \
                from None
    if not 0 <= port <= 65535:
        raise RunError(f"{option} {text!r}: expected a TCP port, 0 to 65535")
    return host, port


def serve_metrics(run: Path | Callable[[], Path | None], bind: tuple[str, int]) -> MetricsServer:
    """Serve `run`'s metrics on `bind` (port 0: any free one); `RunError` if the address cannot be had."""
    registry = CollectorRegistry()
    registry.register(RunCollector(run))
    host, port = bind
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise RunError(f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return MetricsServer(host, int(server.server_address[1]), server, thread)


def new_run_in(reports_dir: Path, scenario: str) -> Callable[[], Path | None]:
    """A finder for the run directory that a run about to start will make under `reports_dir`.

    The run names it only once it starts (`rehearsal.run.runner.new_run_dir`):
    the newest folder for `scenario` that was not there when this was called.
    """
    before = {p.name for p in reports_dir.iterdir()} if reports_dir.is_dir() else set()

    def locate() -> Path | None:
        if not reports_dir.is_dir():
            return None
        new = sorted(p for p in reports_dir.iterdir()
                     if p.name not in before and p.is_dir() and scenario in p.name)
        return new[-1] if new else None
    return locate

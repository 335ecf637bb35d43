"""The systems' own latency beside ours: the master pulls each system's ``GET /api/timings`` into the stage's log.

Every reference system times each request itself (from its request line and
headers read to the answer's last byte handed to the kernel; no accept queue)
into HDR histograms per route and interval, in the harness's own form
(`rehearsal.portal.ops`). The master (or the local runner) of a stage asks
each system for them every `PULL_EVERY_S` wall seconds and once more when
the stage ends, and writes ``stages/<stage>/server_latency.jsonl``: a header
like ``latency.jsonl``'s, one ``status`` line per system and pull (known or
not, what it covers, the error), and one row per closed interval, system and
route, in ``latency.jsonl``'s row shape plus ``system``::

    {"t0": 1700000000.0, "t": 1700000001.0, "name": "POST /api/dossiers", "tag": "citizen",
     "count": 412, "failures": 0, "hdr": "HISTFAAAA...", "system": "national"}

``name`` is the system's route (``GET /api/dossiers/<int:dossier_id>``),
``failures`` its 5xx answers, ``tag`` who uses that address (``citizen``: the
national portal and the front doors; ``officer``: a provincial system; "" for
one portal with both roles). `rehearsal.results.server_latency` reads it and
matches routes to our request names.

Why pull, and why every 15 s: the pull is one call per system from the master,
never on a worker or a request's path; the systems keep an hour of 10-s
intervals (six minutes of 1-s ones), so 15 s loses nothing, and a stage killed
midway still has its server side on disk up to its last pull. A system that
has no ``/api/timings`` (a real target) is written down as unknown, never
fatal: the stage runs on and the report says the server side is unknown.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError

import gevent
from locust.env import Environment
from locust.runners import WorkerRunner

from locustfiles.latency import interval_for
from rehearsal.shared.net import urlopen

if TYPE_CHECKING:
    from locustfiles.context import RunContext
    from rehearsal.run.systems import Systems

log = logging.getLogger("rehearsal.server_timing")
#: Wall seconds between two pulls (see the module's docstring).
PULL_EVERY_S = 15.0
#: How long one system may take to answer a pull.
PULL_TIMEOUT_S = 10.0
#: Wall seconds after its end before an interval is written: a system of several processes merges each
#: process's timings within a second or so (`rehearsal.portal.peers`), so a just-closed one may still grow.
SETTLE_S = 3.0


def addresses(systems: Systems) -> list[tuple[str, str, str]]:
    """(system name, URL, tag) of every address whose ``/api/timings`` the master pulls, each URL once."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for e in systems.entries.values():
        tag = {"national": "citizen", "provincial": "officer"}.get(e.system, "")
        for name, url, who in ((e.name, e.url, tag), (e.door_name, e.front_door_url, "citizen")):
            if name and url and url not in seen:
                seen.add(url)
                out.append((name, url, who))
    return out


class ServerTiming:
    """Pulls the systems' server-side timings into ``server_latency.jsonl`` (master or local runner only)."""

    def __init__(self, systems: Systems, stage_dir: Path, time_scale: float) -> None:
        self.addresses = addresses(systems)
        self.interval_s = interval_for(time_scale)
        self.time_scale = time_scale
        self.path = stage_dir / "server_latency.jsonl"
        self.since = 0.0
        #: URL -> the start of the last closed interval written (later pulls write only newer ones).
        self.written: dict[str, float] = {}
        self.file: Any = None
        self._greenlet: gevent.Greenlet | None = None

    def start(self, started_at: float) -> None:
        """Open the log and pull every `PULL_EVERY_S` from the interval the stage starts in."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a", encoding="utf-8")
        self.since = math.floor(started_at / self.interval_s) * self.interval_s
        self._write([{"start": started_at, "interval_s": self.interval_s, "time_scale": self.time_scale}])
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(PULL_EVERY_S)
            try:
                self.pull(final=False)
            except Exception:  # noqa: BLE001 (a failed pull must not end the pulling)
                log.exception("rehearsal server timing: a pull failed")

    def pull(self, *, final: bool) -> None:
        """Ask every system at once; write their closed intervals (all of them when `final`)."""
        asked = [gevent.spawn(self._ask, url) for _, url, _ in self.addresses]
        gevent.joinall(asked, timeout=PULL_TIMEOUT_S + 2)
        lines: list[dict[str, Any]] = []
        for (name, url, tag), g in zip(self.addresses, asked):
            body, error = g.value if g.successful() and g.value else (None, "no answer in time")
            status: dict[str, Any] = {"system": name, "url": url, "known": body is not None, "final": final}
            if body is None:
                status["error"] = error
                lines.append({"status": status})
                continue
            status.update(covers=body.get("covers"), interval_s=body.get("interval_s"),
                          processes=body.get("processes"), unit=body.get("unit"))
            lines.append({"status": status})
            lines += self._rows(name, url, tag, body, final)
        self._write(lines)

    def _ask(self, url: str) -> tuple[dict[str, Any] | None, str | None]:
        since = math.floor(self.written.get(url, self.since))  # the last one written comes again: skipped
        try:
            with urlopen(f"{url}/api/timings?since={since}", timeout=PULL_TIMEOUT_S) as r:  # follows no redirect
                body = json.loads(r.read())
        except HTTPError as exc:  # e.g. 404: a real system with no /api/timings
            return None, f"HTTP {exc.code} from /api/timings"
        except Exception as exc:  # noqa: BLE001 (a system that does not answer is data, not a crash)
            return None, f"{type(exc).__name__}: {exc}"[:200]
        if not isinstance(body, dict) or not isinstance(body.get("intervals"), list):
            return None, "/api/timings answered without intervals"
        return body, None

    def _rows(self, name: str, url: str, tag: str, body: dict[str, Any], final: bool) -> list[dict[str, Any]]:
        done = self.written.get(url, -math.inf)
        rows = []
        for interval in body["intervals"]:
            t0 = float(interval.get("t0", 0))
            settled = final or float(interval.get("t", math.inf)) <= float(body.get("now") or 0) - SETTLE_S
            if t0 <= done or t0 < self.since or not settled:
                continue
            for route, e in sorted((interval.get("routes") or {}).items()):
                if e.get("count"):
                    rows.append({"t0": t0, "t": float(interval["t"]), "name": route, "tag": tag,
                                 "count": int(e["count"]), "failures": int(e.get("errors") or 0),
                                 "hdr": e["hdr"], "system": name})
            self.written[url] = max(self.written.get(url, -math.inf), t0)
        return rows

    def _write(self, lines: list[dict[str, Any]]) -> None:
        if self.file is not None and lines:
            self.file.write("".join(json.dumps(x) + "\n" for x in lines))
            self.file.flush()

    def close(self) -> None:
        """At quitting: stop pulling, pull the last intervals (the open one too), close the log."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self.file is None:
            return
        try:
            self.pull(final=True)
        except Exception:  # noqa: BLE001 (the stage ends whatever the last pull does)
            log.exception("rehearsal server timing: the last pull failed")
        self.file.close()
        self.file = None


def install(environment: Environment, ctx: RunContext, stage_dir: Path | None) -> ServerTiming | None:
    """On the master or local runner of a run with a directory: pull the systems' timings through the stage."""
    if isinstance(environment.runner, WorkerRunner) or stage_dir is None or not hasattr(ctx, "systems"):
        return None
    timing = ServerTiming(ctx.systems, stage_dir, ctx.time_scale)
    environment.events.test_start.add_listener(lambda **_: timing.start(time.time()))
    environment.events.quitting.add_listener(lambda **_: timing.close())
    return timing

"""Keep full garbage collections short in a process that holds thousands of connections.

CPython's cycle collector walks every tracked object on a full (generation 2)
collection, and while it walks, nothing else in the process runs: no greenlet
sends, reads or times a request. A Locust process or a reference portal
holding ten thousand users' greenlets, sockets and buffers has millions of
such objects. Measured here (``tools/bench/capacity.py`` with a ``gc.callbacks``
probe): at 16,000 users each full collection took 300–580 ms in the portal
and 320–350 ms in Locust, one every 12–20 s in each, and every request in
flight during one was that much slower. That, not CPU, was the p99 of 550 ms.

`HeapFreezer` uses `gc.freeze()`, the remedy the `gc` docs give for
long-lived heaps: everything alive moves to the permanent generation, which
collections skip, so a full collection walks only what was allocated since.
Every 5 s it freezes

- when the number of users (Locust) or open connections (portal) has grown
  (at least 20, or 5 %): their greenlets, sockets and buffers are new;
- when a full collection has run since the last check: what survived it is
  alive, and a connection's objects turn over with every request (the portal
  keeps each idle connection's last request headers, input and waiter: 16,336
  of each at 16,000 users, new ones every think time), so freezing once is
  not enough. The next full collection then walks only what was promoted
  since: ~50 ms at 16,000 connections instead of 250–580 ms.

What it costs: a reference cycle among frozen objects that later becomes
garbage is not collected while frozen (most objects die by reference counting
and are freed at once either way). So the freezer unfreezes, collects once
(one full-length pause, as without it) and freezes again when the count
drops (users stopped by a ramp down, connections closed) and when the
process's resident memory has doubled since the last such pass.

A check must itself be cheap: `gc.get_freeze_count()` walks the whole frozen
list (a million objects in Locust at 18,000 users, 8 % of its CPU in a py-spy
profile when every check called it), so the checks read only counters and
the process's resident size (psutil, which Locust depends on).

Decision: checked every 5 s; a change of at least 20 or 5 % (whichever is
more) counts as growth or a drop; "doubled" is measured from the resident
size after the last collect-and-freeze pass (at first: at start), and never
below 256 MB, so a small process is never made to pause for it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import psutil

log = logging.getLogger("rehearsal.shared.heap")
# One line per freeze, kept in locust.log / portal.log even where Locust logs at WARNING (rehearse run).
log.setLevel(logging.INFO)

CHECK_EVERY_S = 5.0
MIN_CHANGE = 20
MIN_CHANGE_SHARE = 0.05
RECLAIM_FLOOR_BYTES = 256 * 2**20


def _full_collections() -> int:
    return gc.get_stats()[2]["collections"]


class HeapFreezer:
    """Freeze the heap as `count()` grows and after full collections; collect and refreeze on a drop."""

    def __init__(self, count: Callable[[], int], *, what: str = "users", every_s: float = CHECK_EVERY_S,
                 reclaim_floor_bytes: int = RECLAIM_FLOOR_BYTES) -> None:
        self.count = count
        self.what = what
        self.every_s = every_s
        self.frozen_at = 0
        self._process = psutil.Process()
        self.reclaim_floor_bytes = reclaim_floor_bytes
        self.reclaimed_rss = self._rss()  # resident bytes after the last collect-and-freeze pass
        self.full_collections = _full_collections()
        self._greenlet = None

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def check(self) -> str | None:
        """Act now: "froze", "refroze", "collected", "reclaimed" or None (nothing worth doing)."""
        n = self.count()
        step = max(MIN_CHANGE, MIN_CHANGE_SHARE * self.frozen_at)
        if n <= self.frozen_at - step:
            self._collect_and_freeze(n, f"{self.what} dropped to {n}")
            return "collected"
        if self._rss() > 2 * max(self.reclaimed_rss, self.reclaim_floor_bytes):
            self._collect_and_freeze(n, "resident memory doubled")
            return "reclaimed"
        if n >= self.frozen_at + step:
            self._freeze()
            self.frozen_at = n
            log.info("heap: froze the heap at %d %s (full collections skip it)", n, self.what)
            return "froze"
        if _full_collections() != self.full_collections:
            self._freeze()  # what survived the full collection is alive; the next one walks only what is newer
            return "refroze"
        return None

    def _freeze(self) -> None:
        gc.freeze()
        self.full_collections = _full_collections()  # a full collection after this one is news

    def _collect_and_freeze(self, n: int, why: str) -> None:
        gc.unfreeze()
        collected = gc.collect()
        self._freeze()
        self.frozen_at = n
        self.reclaimed_rss = self._rss()
        log.info("heap: %s: collected %d objects, froze %d, resident %d MB", why, collected,
                 gc.get_freeze_count(), self.reclaimed_rss // 2**20)  # rare: the walk of the count is affordable

    def start(self) -> HeapFreezer:
        """Check every `every_s` seconds in a greenlet of this (gevent) process."""
        import gevent

        def loop() -> None:
            while True:
                gevent.sleep(self.every_s)
                try:
                    self.check()
                except Exception:  # noqa: BLE001 (a failed check must not end the process's other work)
                    log.exception("heap: check failed")

        self._greenlet = gevent.spawn(loop)
        return self

    def stop(self) -> None:
        """Stop checking and unfreeze: frozen objects would outlive the collection the interpreter runs at
        shutdown, and logging's handlers would then die after gevent is torn down (a log ending in
        ``Exception ignored in: <function _removeHandlerRef …>``)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        gc.unfreeze()

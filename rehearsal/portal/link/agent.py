"""The link agent's loops: pull the national feed, push the outbox, back off when the national portal fails.

`LinkAgent.run` runs one puller and `LinkSettings.workers` pushers, each a
thread with its own database connection and its own keep-alive connection to
the national portal, until told to stop. The puller pulls the feed every
`LinkSettings.pull_every_s` (at once again while a page came back full, so a
backlog drains). Each pusher pushes the outbox rows of its share of the
dossiers (``dossier_id % workers``): a dossier's rows always go through one
pusher, oldest first, so its steps leave in order, while the calls of
different dossiers overlap (a call waits on the national portal far more than
it works). A loop with nothing to do waits `LinkSettings.push_poll_s`; a loop
whose call failed waits the backoff: 5 s, doubling to 5 min (simulated
seconds, divided by the time scale), reset by the first call that is taken.
All the state is in the provincial database: killed at any moment and started
again, the agent carries on where the database says.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from .. import outbox
from ..db import connect, transaction
from ..settings import PortalSettings
from .apply import apply_page
from .client import IntegrationClient, LinkFailed
from .push import Pusher
from .settings import LinkSettings

log = logging.getLogger("rehearsal.portal.link")


class LinkAgent:
    """One provincial database, one national portal: the agent between them."""

    def __init__(self, db_path: Path, settings: LinkSettings) -> None:
        self.db_path, self.settings = Path(db_path), settings
        self.stopping = threading.Event()

    def _connect(self) -> sqlite3.Connection:
        return connect(PortalSettings(db_path=self.db_path, system="provincial"))

    def backoff_s(self, failures: int) -> float:
        """Wall seconds to wait after `failures` failed turns in a row."""
        s = self.settings
        return s.wall(min(s.backoff_max_s, s.backoff_s * 2 ** max(0, failures - 1)))

    def _loop(self, name: str, turn: Callable[[], float]) -> None:
        """Call `turn` (which returns how long to wait after it) until stopping; back off while it fails."""
        failures = 0
        while not self.stopping.is_set():
            try:
                wait = turn()
            except LinkFailed as exc:
                failures += 1
                wait = self.backoff_s(failures)
                if failures == 1 or failures % 10 == 0:
                    log.warning("link %s: %s (failure %d in a row; next try in %.2f s)", name, exc, failures, wait)
            else:
                if failures:
                    log.info("link %s: the national portal answers again after %d failed turns", name, failures)
                failures = 0
            if wait > 0:
                self.stopping.wait(wait)

    def _puller(self) -> None:
        db, client = self._connect(), IntegrationClient(self.settings)
        s = self.settings

        def turn() -> float:
            cursor = int(outbox.get_state(db, "cursor"))
            try:
                answer = client.call("LayThayDoiHoSo", {"after": cursor, "limit": s.feed_page})
            except LinkFailed as exc:
                with transaction(db):
                    outbox.add_to_state(db, "pulls_failed", 1)
                    outbox.set_state(db, "last_error", str(exc)[:300])
                raise
            items, head = answer.get("result") or [], answer.get("last_seq")
            applied, ignored = apply_page(db, items, head if isinstance(head, int) else 0)
            if ignored:
                log.info("feed: %d applied, %d not applicable (seq %d..)", applied, ignored, cursor + 1)
            return 0 if len(items) >= s.feed_page else s.wall(s.pull_every_s)

        try:
            self._loop("pull", turn)
        finally:
            client.close()
            db.close()

    def _pusher(self, share: int) -> None:
        db, client = self._connect(), IntegrationClient(self.settings)
        pusher = Pusher(db, client, self.settings, share)
        try:
            self._loop(f"push {share}", lambda: 0 if pusher.round() else self.settings.wall(self.settings.push_poll_s))
        finally:
            client.close()
            db.close()

    def run(self) -> None:
        """Pull and push until `stopping` is set."""
        s = self.settings
        log.info("link agent up: %s as %s (%s), time scale %g, %d pushers", s.national_url, s.username, s.ma_don_vi,
                 s.time_scale, s.workers)
        threads = [threading.Thread(target=self._pusher, args=(i,), name=f"push-{i}", daemon=True)
                   for i in range(s.workers)]
        for t in threads:
            t.start()
        self._puller()
        for t in threads:
            t.join(timeout=s.timeout_s + 1)

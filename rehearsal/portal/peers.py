"""Several processes of one system, one set of counts: what they share through a small SQLite file.

A system served with ``--processes N`` is N processes accepting on the same
listening sockets (`rehearsal.portal.processes`). Whatever a request may
need from another process lives here, in ``<db>-processes`` (SQLite, WAL,
beside the system's database and apart from it, so publishing never waits
for a dossier's write lock):

- sessions seen: each process publishes the tokens it saw since it last did
  (once a second, and when another process is about to answer
  ``/api/stats``, ``/metrics`` or ``/api/timings``: that one asks, and waits
  until all have, `Peers.gather`); the active count
  is the number of distinct tokens seen in the window by any process, so a
  user whose connections land on two processes is one session, not two;
- request timings since the start (`Timing`, per process and route, summed
  when read) and the HDR histograms per interval (merged when read);
- OTP requests, integration-API sessions and the ids a silent-drop deleted
  (`SharedDict`, `SharedList`): asked for on one process, used on another;
- the faults and the closed door: written with a version by the process
  that is told, played by each process once it has read that version (it
  looks every `FAULT_POLL_S`), and the admin call answers only when every
  process has (`Peers.put_faults`);
- the link agent's state, published by process 0 (which supervises it),
  and the operator's kill/start handed to it.

So a count read from any process is exact as of the moment it was asked
for (each process looks for such a request every `FAULT_POLL_S`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from .live import KEEP_INTERVALS, IntervalEntry, LiveView, Timing, new_histogram

if TYPE_CHECKING:
    from .faults import FaultState

#: Wall seconds between two publications of a process's counts, and between looks at the faults' version.
PUBLISH_EVERY_S, FAULT_POLL_S = 1.0, 0.1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value TEXT NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS seen (scope TEXT, token TEXT, t REAL NOT NULL, role TEXT NOT NULL,
                                 PRIMARY KEY (scope, token));
CREATE INDEX IF NOT EXISTS seen_t ON seen (scope, t);
CREATE TABLE IF NOT EXISTS totals (scope TEXT, proc INTEGER, route TEXT, data TEXT NOT NULL,
                                   PRIMARY KEY (scope, proc, route));
CREATE TABLE IF NOT EXISTS intervals (scope TEXT, t0 REAL, proc INTEGER, route TEXT, count INTEGER NOT NULL,
                                      errors INTEGER NOT NULL, hdr TEXT NOT NULL,
                                      PRIMARY KEY (scope, t0, proc, route));
CREATE TABLE IF NOT EXISTS faults (scope TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acks (scope TEXT, proc INTEGER, version INTEGER NOT NULL, PRIMARY KEY (scope, proc));
"""


def peers_path(db_path: Path) -> Path:
    """The shared file of a system whose database is `db_path`."""
    return Path(db_path).with_name(Path(db_path).name + "-processes")


class Peers:
    """This process's door to the counts and state the system's processes share."""

    def __init__(self, path: Path, index: int, count: int, *, fresh: bool = False) -> None:
        self.path, self.index, self.count = Path(path), index, count
        if fresh:  # process 0, before the others start: nothing of a previous run may count
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                p.unlink(missing_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")  # counts of a running system: nothing to keep past a crash
        self.conn.executescript(_SCHEMA)
        self._fault_versions: dict[str, int] = {}
        self._last_publish: dict[str, float] = {}
        self._answered = 0

    # -- small shared values --------------------------------------------------------------------

    def kv_get(self, ns: str, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def kv_put(self, ns: str, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, json.dumps(value)))

    def kv_pop(self, ns: str, key: str) -> Any:
        row = self.conn.execute("DELETE FROM kv WHERE ns = ? AND key = ? RETURNING value", (ns, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def kv_items(self, ns: str) -> list[tuple[str, Any]]:
        return [(k, json.loads(v)) for k, v in self.conn.execute("SELECT key, value FROM kv WHERE ns = ?", (ns,))]

    # -- sessions and timings -------------------------------------------------------------------

    def publish(self, view: LiveView) -> None:
        """Write what this process's view saw since it last did, in one transaction."""
        seen, view.dirty_seen = view.dirty_seen, {}
        gone, view.forgotten = view.forgotten, set()
        routes, view.dirty_routes = view.dirty_routes, set()
        cells, view.dirty_intervals = view.dirty_intervals, set()
        scope, me = view.scope, self.index
        self._last_publish[scope] = time.monotonic()
        if not (seen or gone or routes or cells):
            return
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany("INSERT INTO seen VALUES (?, ?, ?, ?) ON CONFLICT (scope, token) DO UPDATE SET "
                          "t = max(t, excluded.t), role = excluded.role",
                          [(scope, tok, t, role) for tok, (t, role) in seen.items()])
            c.executemany("DELETE FROM seen WHERE scope = ? AND token = ?", [(scope, tok) for tok in gone])
            c.executemany("INSERT OR REPLACE INTO totals VALUES (?, ?, ?, ?)",
                          [(scope, me, r, json.dumps(_timing_data(view.timings[r]))) for r in routes])
            rows = []
            for t0, route in cells:
                entry = view.intervals.get(t0, {}).get(route)
                if entry is not None:
                    rows.append((scope, t0, me, route, entry[1], entry[2], entry[0].encode().decode("ascii")))
            c.executemany("INSERT OR REPLACE INTO intervals VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if cells:
                oldest = max(t0 for t0, _ in cells) - KEEP_INTERVALS * view.interval_s
                c.execute("DELETE FROM intervals WHERE scope = ? AND t0 < ?", (scope, oldest))
            c.execute("DELETE FROM seen WHERE scope = ? AND t < ?",
                      (scope, time.monotonic() - 10 * view.active_window_s))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def active(self, scope: str, window_s: float) -> dict[str, int]:
        """Distinct sessions with a request in the window, by role, over every process."""
        # CLOCK_MONOTONIC is one clock for the whole machine (Linux): the processes' times compare.
        return {role: n for role, n in self.conn.execute(
            "SELECT role, count(*) FROM seen WHERE scope = ? AND t >= ? GROUP BY role",
            (scope, time.monotonic() - window_s))}

    def totals(self, scope: str) -> dict[str, Timing]:
        """Each route's timings, summed over the processes."""
        out: dict[str, Timing] = {}
        for route, data in self.conn.execute("SELECT route, data FROM totals WHERE scope = ?", (scope,)):
            out.setdefault(route, Timing()).merge(Timing(**json.loads(data)))
        return out

    def intervals(self, scope: str, since: float) -> dict[float, dict[str, IntervalEntry]]:
        """HDR histograms per interval and route, merged over the processes."""
        out: dict[float, dict[str, IntervalEntry]] = {}
        for t0, route, count, errors, hdr in self.conn.execute(
                "SELECT t0, route, count, errors, hdr FROM intervals WHERE scope = ? AND t0 >= ?", (scope, since)):
            entry = out.setdefault(t0, {}).setdefault(route, [new_histogram(), 0, 0])
            entry[0].add(HdrHistogram.decode(hdr))
            entry[1] += count
            entry[2] += errors
        return out

    def gather(self, wait_s: float = 2.0) -> bool:
        """Ask every other process to publish now, and wait until they have (False: one did not in time)."""
        import gevent

        asked = self.conn.execute(
            "INSERT INTO kv VALUES ('publish', 'asked', '1') ON CONFLICT (ns, key) DO UPDATE SET "
            "value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)").fetchone()[0]
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            done = self.conn.execute("SELECT count(*) FROM kv WHERE ns = 'published' AND key != ? AND "
                                     "CAST(value AS INTEGER) >= ?", (str(self.index), asked)).fetchone()[0]
            if done >= self.count - 1:
                return True
            gevent.sleep(0.01)
        return False

    def publish_asked(self, views: list[LiveView]) -> None:
        """Publish every view now if another process asked since this one last did (the loop's call)."""
        row = self.conn.execute("SELECT CAST(value AS INTEGER) FROM kv WHERE ns = 'publish' AND key = 'asked'"
                                ).fetchone()
        if row is None or row[0] <= self._answered:
            return
        for view in views:
            self.publish(view)
        self._answered = row[0]
        self.kv_put("published", str(self.index), row[0])

    def publish_due(self, view: LiveView) -> None:
        """Publish if the view has not been for `PUBLISH_EVERY_S` (the loop's call)."""
        if time.monotonic() - self._last_publish.get(view.scope, 0.0) >= PUBLISH_EVERY_S:
            self.publish(view)

    # -- faults ---------------------------------------------------------------------------------

    def put_faults(self, scope: str, state: FaultState, wait_s: float = 5.0) -> bool:
        """Publish this process's faults and closed door; wait until every process plays them (False: not all did)."""
        import gevent

        with_version = self.conn.execute(
            "INSERT INTO faults VALUES (?, 1, ?) ON CONFLICT (scope) DO UPDATE SET version = version + 1, "
            "state = excluded.state RETURNING version", (scope, json.dumps(fault_data(state)))).fetchone()[0]
        self._fault_versions[scope] = with_version
        self._ack(scope, with_version)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            n = self.conn.execute("SELECT count(*) FROM acks WHERE scope = ? AND version >= ?",
                                  (scope, with_version)).fetchone()[0]
            if n >= self.count:
                return True
            gevent.sleep(0.02)
        return False

    def sync_faults(self, scope: str, state: FaultState) -> bool:
        """Take the faults another process published, if newer than the ones played here; True if they changed."""
        row = self.conn.execute("SELECT version, state FROM faults WHERE scope = ?", (scope,)).fetchone()
        if row is None or row[0] <= self._fault_versions.get(scope, 0):
            return False
        apply_fault_data(state, json.loads(row[1]))
        self._fault_versions[scope] = row[0]
        self._ack(scope, row[0])
        return True

    def _ack(self, scope: str, version: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO acks VALUES (?, ?, ?)", (scope, self.index, version))


def _timing_data(t: Timing) -> dict[str, Any]:
    return {"count": t.count, "errors": t.errors, "total_s": t.total_s, "fine": t.fine, "prom": t.prom}


def fault_data(state: FaultState) -> dict[str, Any]:
    """The faults and the closed door as JSON, each fault's end kept (monotonic: one clock for the machine)."""
    closed = state.closed
    return {"faults": [{**f.as_dict(), "until": f.until} for f in state.faults],
            "closed": None if closed is None else {"mode": closed.mode, "moved_to": closed.moved_to,
                                                   "retry_after_s": closed.retry_after_s}}


def apply_fault_data(state: FaultState, data: dict[str, Any]) -> None:
    """Play the faults and closed door of `fault_data` (already checked by the process that was told)."""
    from .faults import SYSTEM_KINDS, Closed, parse_fault

    kinds = tuple({k for ks in SYSTEM_KINDS.values() for k in ks})
    faults = []
    for i, f in enumerate(data["faults"]):
        until = f.pop("until", None)
        spec = {k: v for k, v in f.items() if v is not None}
        if spec.get("kind") in ("latency", "link-slow") and spec.get("delay_s") is None:
            spec.pop("delay_s", None)
        fault = parse_fault(spec, i, kinds)
        fault.until = until
        faults.append(fault)
    state.replace(faults)
    state.closed = Closed(**data["closed"]) if data.get("closed") else None


class SharedDict(MutableMapping[str, Any]):
    """A dict of JSON values kept in the shared file (tuples come back as tuples): OTPs, integration sessions."""

    def __init__(self, peers: Peers, ns: str) -> None:
        self.peers, self.ns = peers, ns

    def __getitem__(self, key: str) -> Any:
        value = self.peers.kv_get(self.ns, key)
        if value is None:
            raise KeyError(key)
        return tuple(value) if isinstance(value, list) else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.peers.kv_put(self.ns, key, value)

    def __delitem__(self, key: str) -> None:
        if self.peers.kv_pop(self.ns, key) is None:
            raise KeyError(key)

    def pop(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self.peers.kv_pop(self.ns, key)
        return default if value is None else tuple(value) if isinstance(value, list) else value

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self.peers.kv_items(self.ns)])

    def __len__(self) -> int:
        return self.peers.conn.execute("SELECT count(*) FROM kv WHERE ns = ?", (self.ns,)).fetchone()[0]


class SharedList:
    """An append-only list of JSON values in the shared file (the ids a silent-drop deleted)."""

    def __init__(self, peers: Peers, ns: str) -> None:
        self.peers, self.ns, self._n = peers, ns, 0

    def append(self, value: Any) -> None:
        self._n += 1
        self.peers.kv_put(self.ns, f"{time.time():017.6f}-{self.peers.index}-{self._n}", value)

    def __iter__(self) -> Iterator[Any]:
        return iter([v for _, v in sorted(self.peers.kv_items(self.ns))])


class NoCache(dict):  # type: ignore[type-arg]
    """A session cache that keeps nothing: with several processes a sign-out on one must hold on all at once."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

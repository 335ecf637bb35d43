"""The run's ledger: every dossier event as it happened, append-only.

One JSON object per line in ``reports/<run>/ledger/<stage>.jsonl``. Only one
process writes a stage's file (the Locust master, or the single local
runner); workers send their events to it as Locust custom messages. The
writer flushes every batch to the OS (batches leave the users at least once a
second), so a ``kill -9`` of the harness loses at most the last second, well
inside the 5 s of the run-directory contract. The reader tolerates a torn
last line, which is what such a kill leaves.

Event kinds (field ``kind``): ``submitted`` (with the portal's dossier ``id``,
``code``, ``unit``, ``procedure``, ``client_ref``, ``citizen``), ``paid``,
``received``, ``refused_intake``, ``processing``, ``supplement_requested``,
``supplemented``, ``transferred``, ``taken_back``, ``decided``, ``returned``,
``withdrawal_asked`` (the citizen, → 7), ``stopped`` (an officer, 7 → 8),
``seen_complete``, ``seen_stopped`` (the citizen saw it end), ``request_failed``
(``name``, ``status``, ``error``).
Every event has ``t`` (Unix time, seconds) and ``stage``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..shared.jsonl import iter_jsonl

Event = dict[str, Any]

class LedgerWriter:
    """Appends events to one JSON-lines file; every `write` ends with a flush."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self.count = 0

    def write(self, events: Iterable[Event]) -> None:
        if self._file is None:
            return
        lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in events]
        if lines:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
            self.count += len(lines)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(path: Path) -> Iterator[Event]:
    """The events of one ledger file (`rehearsal.shared.jsonl`: a torn last line is skipped)."""
    return iter_jsonl(path)

"""JSON-lines files, read the one tolerant way: the run directory's ledger, time series, latency log, markers.

Every such file is appended to by one writer that flushes whole lines. A
process killed mid-write leaves a *torn last line* (no newline at its end):
it is not yet a record and is skipped, and so is any line that is not a JSON
object. `JsonlTail` reads a file that is still growing, from where it stopped,
whole lines only, for the live views.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _decode(line: bytes | str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file in order; nothing if it does not exist."""
    try:
        f = Path(path).open("rb")
    except (FileNotFoundError, NotADirectoryError):
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # a torn write from a killed process
            row = _decode(line)
            if row is not None:
                yield row


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """`iter_jsonl` as a list."""
    return list(iter_jsonl(path))


class JsonlTail:
    """A JSON-lines file that keeps growing: each `read` returns the whole lines added since the last one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [row for row in map(_decode, data[:end].splitlines()) if row is not None]

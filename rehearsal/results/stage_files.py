"""What a stage leaves in its directory, read back: time series, markers, abort note, cutover record, Locust's CSV.

Each reader tolerates what a crash leaves (a torn last line, a missing or
half-written file): the run-directory contract promises that whatever was
measured up to a crash stays readable.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from ..shared.jsonl import read_jsonl


def read_timeseries(path: Path) -> list[dict[str, Any]]:
    """The stage's 2-second samples (``timeseries.jsonl``)."""
    return read_jsonl(path)


def read_markers(path: Path) -> list[dict[str, Any]]:
    """The stage's fault and cutover markers (``markers.jsonl``)."""
    return read_jsonl(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON file, None if it is missing; `ValueError` if it is there but unreadable."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    return body if isinstance(body, dict) else None


def read_abort(stage_dir: Path) -> dict[str, Any] | None:
    """``abort.json``: the gate that stopped the stage early (written by the Locust master), or None."""
    try:
        return _read_json(stage_dir / "abort.json")
    except ValueError:
        return {"gate": None, "detail": "abort.json unreadable"}


def read_cutover(stage_dir: Path) -> dict[str, Any] | None:
    """``cutover.json``: the cutover as the Locust master recorded it, or None (no cutover, or unreadable)."""
    try:
        return _read_json(stage_dir / "cutover.json")
    except ValueError:
        return None


def _num(value: str) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def read_locust_stats(path: Path) -> dict[str, dict[str, Any]]:
    """Locust's ``*_stats.csv`` as {name: {count, failures, p50_ms, p95_ms, p99_ms, max_ms}}."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = row["Name"] if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
            out[name] = {"count": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                         "p50_ms": _num(row["50%"]), "p95_ms": _num(row["95%"]),
                         "p99_ms": _num(row["99%"]), "max_ms": _num(row["Max Response Time"])}
    return out

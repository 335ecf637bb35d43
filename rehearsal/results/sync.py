"""Sync between the two systems, measured: lag per step, its course over the stage, the outbox backlog, sessions.

**Lag** of a processing step = the national portal's receipt time of it
(``ThoiDiemDongBo`` in ``TraCuuHoSo``'s ``QuaTrinhXuLy``) − the provincial
system's time of the step (its export's ``at_ms``), each from its own clock,
matched by (``MaHoSo``, ``MaBuocXuLy`` = the provincial step's ``seq``). In
WALL seconds, like latency (the lead's decision: it is the systems' speed;
the link's own intervals are compressed by the time scale). Only steps the
provincial system put in its outbox count (``attempts`` not null): a step
pulled from the national feed started there. A step national does not show
is counted as ``steps_missing``; the dossier is then unsynced anyway.

Each matched step is kept in ``stages/<stage>/sync_steps.jsonl`` (``t`` = the
step's provincial time, ``code``, ``seq``, ``lag_s``) so that gates with
windows (``sync_lag_p95_s over every 5m``) are judged again later from the
run directory, like latency. ``sync.unknown`` is true when the national side
gives no receipt time at all (a real national staging has no
``ThoiDiemDongBo``), when it could not be read, or for a run from before the
two systems (no file, no key).

**Backlog** is the time series' ``sync_backlog`` (the provincial systems'
``link.outbox_pending`` summed, sampled every 2 s); ``link_restarts`` the
growth of ``link_restarts`` when the series carries it, else the times
``link_alive`` came back after being false.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..shared.jsonl import read_jsonl
from .national import receipt_time

#: File of a stage's matched steps (one JSON line each).
SYNC_FILE = "sync_steps.jsonl"
#: Simulated seconds of one interval of ``sync.series`` (never shorter than the 2-second sample).
INTERVAL_SIM_S = 60.0
MAX_INTERVALS = 300


@dataclass
class SyncSteps:
    """The stage's processing steps as both systems saw them."""

    lags: list[dict[str, Any]] = field(default_factory=list)
    """``{t, code, seq, lag_s}`` per matched step, in time order."""
    pushed: int = 0
    """Outbox steps of the stage's dossiers on the linked provincial system."""
    missing: int = 0
    """Of those, steps the national portal does not show."""
    receipt_times: bool = False
    """Whether the national side gave a receipt time (``ThoiDiemDongBo``) for any step."""


def step_lags(provincial: Iterable[Mapping[str, Any]], national: Mapping[str, Mapping[str, Any]]) -> SyncSteps:
    """Match the provincial rows' outbox steps with the national portal's steps of the same dossiers."""
    out = SyncSteps()
    for row in provincial:
        code = row.get("code")
        seen = national.get(code) if isinstance(code, str) else None
        theirs: dict[str, float | None] = {}
        for s in (seen or {}).get("QuaTrinhXuLy") or []:
            got = receipt_time(s.get("ThoiDiemDongBo"))
            out.receipt_times = out.receipt_times or got is not None
            theirs[str(s.get("MaBuocXuLy"))] = got
        for step in row.get("steps") or []:
            if step.get("attempts") is None or step.get("at_ms") is None:
                continue  # not one the provincial system pushes (a citizen-side change pulled from national)
            out.pushed += 1
            key = str(step.get("seq"))
            if key not in theirs:
                out.missing += 1
                continue
            got = theirs[key]
            if got is not None:
                at = float(step["at_ms"]) / 1000.0
                out.lags.append({"t": round(at, 3), "code": code, "seq": key, "lag_s": round(got - at, 3)})
    out.lags.sort(key=lambda r: r["t"])
    return out


def write_sync_steps(stage_dir: Path, steps: SyncSteps) -> None:
    """``sync_steps.jsonl``: the matched steps (written whole, atomically)."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    tmp = stage_dir / (SYNC_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in steps.lags), encoding="utf-8")
    tmp.replace(stage_dir / SYNC_FILE)


def read_sync_steps(stage_dir: Path) -> list[dict[str, Any]] | None:
    """The stage's matched steps, in time order; None when it has no such file (a run before the two systems)."""
    path = stage_dir / SYNC_FILE
    if not path.exists():
        return None
    return sorted((r for r in read_jsonl(path) if isinstance(r.get("lag_s"), (int, float))), key=lambda r: r["t"])


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` = 100 is the max); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def lag_figures(lags: Sequence[float]) -> dict[str, Any]:
    """p50, p95, max and count of some lags (seconds)."""
    return {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": percentile(lags, 100),
            "count": len(lags)}


def link_restarts(series: Sequence[Mapping[str, Any]]) -> int | None:
    """Times the link agent was restarted in the stage, from the time series (None: the series does not say)."""
    counted = [int(r["link_restarts"]) for r in series if isinstance(r.get("link_restarts"), (int, float))]
    if counted:
        return max(counted) - min(counted)
    alive = [r["link_alive"] for r in series if isinstance(r.get("link_alive"), bool)]
    if not alive:
        return None
    # Back up after having been up: an agent still starting when the first samples came (a busy machine) is not
    # restarted by coming up.
    first_up = alive.index(True) if True in alive else len(alive)
    return sum(1 for a, b in pairwise(alive[first_up:]) if not a and b)


def _series(lags: Sequence[Mapping[str, Any]], series: Sequence[Mapping[str, Any]],
            time_scale: float) -> list[dict[str, Any]]:
    """Lag and backlog per interval (``t`` = the interval's start, wall epoch seconds)."""
    times = [float(r["t"]) for r in lags] + [float(r["t"]) for r in series if "t" in r]
    if not times:
        return []
    start, end = min(times), max(times)
    width = max(2.0, INTERVAL_SIM_S / max(time_scale, 1e-9), (end - start) / MAX_INTERVALS)
    count = int((end - start) // width) + 1
    lag_parts: list[list[float]] = [[] for _ in range(count)]
    backlog: list[int | None] = [None] * count
    for r in lags:
        lag_parts[min(count - 1, int((float(r["t"]) - start) // width))].append(float(r["lag_s"]))
    for r in series:
        value = r.get("sync_backlog")
        if "t" in r and isinstance(value, (int, float)):
            i = min(count - 1, int((float(r["t"]) - start) // width))
            backlog[i] = max(int(value), backlog[i] or 0)
    out = []
    for i in range(count):
        f = lag_figures(lag_parts[i])
        out.append({"t": round(start + i * width, 3), "p50": f["p50"], "p95": f["p95"], "max": f["max"],
                    "count": f["count"], "backlog": backlog[i]})
    return out


def sync_summary(lags: Sequence[Mapping[str, Any]] | None, series: Sequence[Mapping[str, Any]], *,
                 time_scale: float, steps: SyncSteps | None = None, error: str | None = None) -> dict[str, Any]:
    """``summary.json``'s ``sync`` of a stage.

    `lags` are the matched steps (None: not measured); `steps` the stage's
    step counts when it was just reconciled; `error` why the national side
    could not be read.
    """
    backlogs = [int(r["sync_backlog"]) for r in series if isinstance(r.get("sync_backlog"), (int, float))]
    unknown = lags is None or error is not None or (steps is not None and not steps.receipt_times and
                                                    steps.pushed > 0)
    values = [float(r["lag_s"]) for r in lags or []]
    out: dict[str, Any] = {
        "lag_s": lag_figures(values) if not unknown else {"p50": None, "p95": None, "max": None, "count": 0},
        "series": _series(lags if not unknown and lags else [], series, time_scale),
        "backlog_max": max(backlogs) if backlogs else None,
        "backlog_end": backlogs[-1] if backlogs else None,
        "link_restarts": link_restarts(series),
        "unknown": unknown,
        "basis": "wall seconds: national receipt time − provincial step time, each system's own clock",
    }
    if steps is not None:
        out.update(steps_pushed=steps.pushed, steps_missing=steps.missing)
    if error:
        out["error"] = error
    return out


def sessions_by_system(series: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Peak sessions each system counted itself (the time series' ``systems``), by system name."""
    peaks: dict[str, int] = {}
    for row in series:
        for name, seen in (row.get("systems") or {}).items():
            if isinstance(seen, Mapping) and isinstance(seen.get("sessions"), (int, float)):
                peaks[str(name)] = max(peaks.get(str(name), 0), int(seen["sessions"]))
    return peaks

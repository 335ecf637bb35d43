"""What a report draws, read from a run directory into pandas frames.

The figures printed on the page (KPI tiles, gates, unit tables, the funnel)
come from ``summary.json`` only: one source of truth. The charts need the
time course, which ``summary.json`` does not hold; it comes from the files
the stage left beside it:

- ``stages/<s>/timeseries.jsonl`` — every 2 s: users, sessions (harness and
  portal), dossiers submitted / complete, requests, failures, req/s;
- ``stages/<s>/locust_stats_history.csv`` — Locust's own per-second rows,
  per request type, with its current response-time percentiles;
- ``stages/<s>/markers.jsonl`` — faults and cutover;
- ``stages/<s>/locust_failures.csv`` — the top errors;
- ``ledger/<s>.jsonl`` — time to complete per procedure group.

Every reader tolerates a missing or torn file (a crashed run): it returns
an empty frame, and the chart says there is no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..shared.catalogue import load_catalogue
from ..shared.jsonl import read_jsonl
from ..shared.status import COMPLETE_KINDS

_HISTORY_COLUMNS = {"Timestamp": "t", "Type": "method", "Name": "name", "Requests/s": "rps",
                    "Failures/s": "fail_per_s", "50%": "p50", "95%": "p95", "99%": "p99",
                    "Total Request Count": "count"}


def jsonl_frame(path: Path) -> pd.DataFrame:
    """A JSON-lines file as a frame (`rehearsal.shared.jsonl`: a torn last line is skipped)."""
    return pd.DataFrame(read_jsonl(path))


def read_history(path: Path) -> pd.DataFrame:
    """Locust's ``*_stats_history.csv``: t, method, name, rps, fail_per_s, p50, p95, p99, count."""
    if not path.exists():
        return pd.DataFrame()
    try:
        frame = pd.read_csv(path, usecols=list(_HISTORY_COLUMNS), na_values=["N/A"])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return pd.DataFrame()
    frame = frame.rename(columns=_HISTORY_COLUMNS)
    frame["method"] = frame["method"].fillna("")
    return frame


def read_failures(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def ledger_completion_times(path: Path, groups: dict[str, str], time_scale: float) -> pd.DataFrame:
    """Per dossier of the stage: procedure group and simulated minutes from submission to completion.

    Read with pandas' JSON-lines reader in chunks, only the columns needed:
    a 2-hour stage with 100,000 dossiers has some 700,000 events.
    """
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["group", "minutes"])
    parts = []
    try:
        reader = pd.read_json(path, lines=True, chunksize=200_000, dtype=False)
        for chunk in reader:
            cols = [c for c in ("t", "kind", "id", "procedure") if c in chunk.columns]
            chunk = chunk[cols]
            parts.append(chunk[chunk["kind"].isin(("submitted", *COMPLETE_KINDS))])
    except ValueError:  # a torn last line: fall back to the tolerant reader
        frame = jsonl_frame(path)
        parts = [frame[frame["kind"].isin(("submitted", *COMPLETE_KINDS))]] if not frame.empty else []
    events = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if events.empty or not {"t", "kind", "id", "procedure"} <= set(events.columns):
        # Nothing was filed (the target was down, say): the ledger holds only failed requests.
        return pd.DataFrame(columns=["group", "minutes"])
    submitted = events[events["kind"] == "submitted"].drop_duplicates("id").set_index("id")
    done = events[events["kind"].isin(COMPLETE_KINDS)].groupby("id")["t"].min()
    both = submitted.join(done.rename("t_done"), how="inner")
    out = pd.DataFrame({
        "group": both["procedure"].map(groups).fillna("khác"),
        "minutes": (both["t_done"] - both["t"]) * time_scale / 60.0,
    })
    return out[out["minutes"] >= 0]


@dataclass
class StageData:
    """The time course of one stage."""

    name: str
    timeseries: pd.DataFrame
    history: pd.DataFrame
    markers: list[dict[str, Any]]
    failures: pd.DataFrame
    completion_times: pd.DataFrame
    t0: float | None = None
    """Wall time of the stage's first sample: charts count seconds from here."""
    starved: list[dict[str, Any]] = field(default_factory=list)
    """Windows in which the harness was starved (``summary.json``'s ``starved``): shaded on every time chart."""

    def rel(self, t: Any) -> Any:
        return t - (self.t0 or 0.0)


@dataclass
class RunData:
    summary: dict[str, Any]
    stages: dict[str, StageData] = field(default_factory=dict)


def load_run(run_dir: Path, summary: dict[str, Any]) -> RunData:
    """Everything the report draws, for the stages `summary` lists."""
    try:
        groups = {p.code: p.group for p in load_catalogue().procedures}
    except Exception:  # noqa: BLE001 (a broken catalogue must not stop a report of what was measured)
        groups = {}
    data = RunData(summary=summary)
    scale = float(summary.get("time_scale") or 1.0)
    for stage in summary.get("stages", []):
        name = stage["name"]
        sdir = run_dir / "stages" / name
        ts = jsonl_frame(sdir / "timeseries.jsonl")
        history = read_history(sdir / "locust_stats_history.csv")
        t0 = None
        if not ts.empty and "t" in ts:
            t0 = float(ts["t"].min()) - 2.0  # the first sample comes one interval after the start
        elif not history.empty:
            t0 = float(history["t"].min())
        data.stages[name] = StageData(
            name=name, timeseries=ts, history=history,
            markers=stage.get("markers") or read_jsonl(sdir / "markers.jsonl"),
            failures=read_failures(sdir / "locust_failures.csv"),
            completion_times=ledger_completion_times(run_dir / "ledger" / f"{name}.jsonl", groups, scale),
            t0=t0, starved=(stage.get("starved") or {}).get("windows") or [])
    return data

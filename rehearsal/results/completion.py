"""Completion rates with their 95 % Wilson interval, wherever ``summary.json`` has a completion rate.

A rate keeps its old key (``completion_rate``, ``completion_rate_national``:
a plain number 0..1, so every reader of an older summary still works) and
gains three siblings: ``<key>_lower`` and ``<key>_upper`` (the 95 % Wilson
score interval, `rehearsal.results.confidence`; None when nothing is left to
count) and ``<key>_n`` (the dossiers counted: submitted − withdrawn). They sit
beside the stage's rates, each unit's in ``unit_results``, each former
province's in ``completion_by_group``, and each point of
``completion_over_time`` (the ledger's running counts, as the harness saw
them, at most `MAX_POINTS`). The gate language's ``completion_rate.lower`` /
``.upper`` read the same counts (`bound_value`).

A GO can rest on too few dossiers: a unit at 100 % of 3 passes 96 % while
its interval runs from 43.8 % to 100 %. `WIDE_INTERVAL` is the width past which
the summary lists such a unit (``units_few_dossiers``), a completion gate that
passed on such an interval carries ``few_dossiers`` (`thin_note`,
`rehearsal.results.gates`) and the report flags them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..shared.formats import percent
from ..shared.status import completion_rate
from ..shared.wards import units_by_code
from .confidence import Interval, wilson

#: An interval wider than this (10 percentage points) says the rate rests on too few dossiers.
WIDE_INTERVAL = 0.10
#: Points ``completion_over_time`` keeps (evenly spread, the last one always kept).
MAX_POINTS = 120
#: How the summary names its intervals (``completion_interval``), so a reader knows what the bounds are.
METHOD = {"method": "wilson", "confidence": 0.95, "wide_above": WIDE_INTERVAL}


def rate_interval(complete: int, submitted: int, withdrawn: int = 0) -> Interval | None:
    """The completion rate's Wilson interval: complete of (submitted − withdrawn); None when that is 0."""
    n = submitted - withdrawn
    if n <= 0:
        return None
    return wilson(min(max(complete, 0), n), n)


def interval_keys(key: str, complete: int, submitted: int, withdrawn: int = 0) -> dict[str, Any]:
    """``{key_lower, key_upper, key_n}`` for one rate (bounds None when nothing is left to count)."""
    i = rate_interval(complete, submitted, withdrawn)
    return {f"{key}_lower": None if i is None else round(i.low, 6),
            f"{key}_upper": None if i is None else round(i.high, 6),
            f"{key}_n": max(0, submitted - withdrawn)}


def interval_text(low: float | None, high: float | None) -> str:
    """``43.8–100.0%``: the lower bound rounded down, the upper up, so the text never narrows the interval."""
    if low is None or high is None:
        return ""
    return f"{math.floor(low * 1000 + 1e-9) / 10:.1f}–{math.ceil(high * 1000 - 1e-9) / 10:.1f}%"


def bound_value(bound: str, complete: int, submitted: int, withdrawn: int = 0) -> tuple[float | None, str]:
    """A gate's ``.lower`` / ``.upper`` of complete ÷ (submitted − withdrawn), and a detail naming the rate."""
    i = rate_interval(complete, submitted, withdrawn)
    if i is None:
        return None, "no dossiers left to count"
    detail = f"{percent(i.rate)} of {i.n:,}, 95 % Wilson {interval_text(i.low, i.high)}"
    return (i.low if bound == "lower" else i.high), detail


def summed_counts(units: Sequence[Mapping[str, Any]], *, national: bool = False) -> tuple[int, int, int]:
    """(complete, submitted, withdrawn) summed over `units` (``unit_results`` entries; national: citizens' view)."""
    complete = submitted = withdrawn = 0
    for u in units:
        c, s, w = _counts(u, national)
        complete, submitted, withdrawn = complete + c, submitted + s, withdrawn + w
    return complete, submitted, withdrawn


def thin_note(complete: int, submitted: int, withdrawn: int = 0) -> str:
    """``too few dossiers: 100.0% of 3, 95 % Wilson 43.8–100.0%`` when the interval is wider than `WIDE_INTERVAL`."""
    i = rate_interval(complete, submitted, withdrawn)
    if i is None or i.width <= WIDE_INTERVAL + 1e-12:
        return ""
    return f"too few dossiers: {percent(i.rate)} of {i.n:,}, 95 % Wilson {interval_text(i.low, i.high)}"


def _counts(row: Mapping[str, Any], national: bool = False) -> tuple[int, int, int]:
    if national:
        return (int(row.get("complete_national") or 0), int(row.get("submitted") or 0),
                int(row.get("withdrawn_national") or 0))
    return int(row.get("complete") or 0), int(row.get("submitted") or 0), int(row.get("withdrawn") or 0)


def _with_rates(row: dict[str, Any]) -> dict[str, Any]:
    """`row` (counts) with its completion rate(s) and their intervals added in place."""
    row.update(interval_keys("completion_rate", *_counts(row)))
    if "complete_national" in row:
        row.update(interval_keys("completion_rate_national", *_counts(row, national=True)))
    return row


def by_group(unit_results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each former province's counts, rate and interval, from the stage's units (in official order)."""
    known = units_by_code()
    out: dict[str, dict[str, Any]] = {}
    for code, r in sorted(unit_results.items(), key=lambda cr: int(cr[0])):
        unit = known.get(int(code))
        if unit is None:
            continue
        g = out.setdefault(unit.former_province.value, {"units": 0, "submitted": 0, "complete": 0, "withdrawn": 0})
        g["units"] += 1
        for k in ("submitted", "complete", "withdrawn"):
            g[k] += int(r.get(k) or 0)
        if "complete_national" in r:
            for k in ("complete_national", "withdrawn_national"):
                g[k] = int(g.get(k, 0)) + int(r.get(k) or 0)
    for g in out.values():
        g["completion_rate"] = completion_rate(g["complete"], g["submitted"], g["withdrawn"])
        if "complete_national" in g:
            g["completion_rate_national"] = completion_rate(g["complete_national"], g["submitted"],
                                                            g["withdrawn_national"])
        _with_rates(g)
    return out


def over_time(series: Sequence[Mapping[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """The running completion rate of the time series (the ledger's counts), with its interval per point."""
    rows = [r for r in series if isinstance(r.get("submitted"), (int, float)) and r.get("submitted")]
    if len(rows) > limit:
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit - 1)] + [rows[-1]]
    out = []
    for r in rows:
        point = {"t": r["t"], "submitted": int(r["submitted"]), "complete": int(r.get("complete") or 0),
                 "withdrawn": int(r.get("withdrawn") or 0)}
        point["completion_rate"] = completion_rate(point["complete"], point["submitted"], point["withdrawn"])
        out.append(_with_rates(point))
    return out


def is_wide(row: Mapping[str, Any], key: str = "completion_rate") -> bool:
    """Whether a rate's interval is wider than `WIDE_INTERVAL` (an old summary without bounds: no)."""
    low, high = row.get(f"{key}_lower"), row.get(f"{key}_upper")
    return low is not None and high is not None and float(high) - float(low) > WIDE_INTERVAL + 1e-12


def few_dossiers(unit_results: Mapping[str, Mapping[str, Any]], target: float) -> list[int]:
    """Units whose rate meets `target` on an interval wider than `WIDE_INTERVAL`: a pass on too few dossiers."""
    return sorted(int(c) for c, r in unit_results.items()
                  if r.get("completion_rate") is not None and r["completion_rate"] >= target and is_wide(r))


def completion_intervals(stage: dict[str, Any], series: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The keys a stage's summary entry gains: its rates' bounds, per group, over time, the thin units.

    Each ``unit_results`` entry gets its siblings in place.
    """
    d = stage.get("dossiers") or {}
    units = stage.get("unit_results") or {}
    for r in units.values():
        _with_rates(r)
    out: dict[str, Any] = {"completion_interval": dict(METHOD),
                           **interval_keys("completion_rate", *_counts(d))}
    if stage.get("completion_rate_national") is not None and d.get("complete_national") is not None:
        out.update(interval_keys("completion_rate_national", *_counts(d, national=True)))
    out["completion_by_group"] = by_group(units)
    out["completion_over_time"] = over_time(list(series))
    out["units_few_dossiers"] = few_dossiers(units, float(stage.get("completion_target") or 0.0))
    return out

"""The bound part of the gate language: ``completion_rate.lower >= 96%`` judges the rate's 95 % interval.

A completion rate carries its 95 % Wilson interval (`rehearsal.results.completion`);
a gate may ask for either end of it instead of the rate: ``.lower`` (the rate is
at least this, 95 % sure: what a GO on few dossiers needs) or ``.upper``. The
bound follows the metric's name, or its filter (``completion_rate{unit=26506}.lower``),
and takes the rate's filters; no window, like the rate. Here only the names and
their messages; `rehearsal.plan.gate_language` parses the rest of the line.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import GateSyntaxError
from .notation import did_you_mean

#: Rates that carry a 95 % interval: a gate may ask for its bound (``completion_rate.lower``).
INTERVAL_METRICS: frozenset[str] = frozenset({"completion_rate", "completion_rate_national"})
#: The bounds a gate may ask for.
BOUNDS: tuple[str, ...] = ("lower", "upper")
#: Spellings people reach for, and the bound each means.
BOUND_SLIPS: dict[str, str] = {"low": "lower", "lo": "lower", "min": "lower", "lb": "lower", "high": "upper",
                               "hi": "upper", "max": "upper", "ub": "upper", "up": "upper"}


def metric_hint(metric: str, known: Sequence[str]) -> str:
    """Did-you-mean for an unknown metric; ``completion_rate_lower`` is pointed to ``completion_rate.lower``."""
    stem, _, tail = metric.rpartition("_")
    if stem in INTERVAL_METRICS and (tail in BOUNDS or tail in BOUND_SLIPS):
        return f"did you mean '{stem}.{BOUND_SLIPS.get(tail, tail)}'?"
    return did_you_mean(metric, known)


def parse_bound(metric: str, before: str | None, after: str | None) -> str | None:
    """The ``.lower`` / ``.upper`` a gate asks for (None: the rate itself); written once, on a completion rate."""
    if before and after:
        raise GateSyntaxError(f"the bound is given twice ('.{before}' and '.{after}'): write "
                              f"'{metric}.{before}{{...}}' or '{metric}{{...}}.{after}'")
    bound = before or after
    if bound is None:
        return None
    if metric not in INTERVAL_METRICS:
        raise GateSyntaxError(f"{metric} has no interval: '.lower' and '.upper' apply to the completion rates "
                              f"({', '.join(sorted(INTERVAL_METRICS))})")
    if bound not in BOUNDS:
        hint = f"did you mean {BOUND_SLIPS[bound]!r}?" if bound in BOUND_SLIPS else did_you_mean(bound, BOUNDS)
        raise GateSyntaxError(f"unknown bound {bound!r} of {metric}'s 95 % interval ({hint})")
    return bound

"""How the harness writes numbers, rates and durations for people: one formatter of each.

Used by the CLI's gate lines, JUnit messages, the plan's messages, the gate
details, the report, the live view and Locust's extra tabs, so that one
figure reads the same wherever it is printed.
"""

from __future__ import annotations

import math
from typing import Any

#: What a missing figure prints as on a page (the CLI and JUnit say "not measured").
DASH = "–"


def percent(x: float | None, missing: str = DASH) -> str:
    """A rate as a percentage, rounded *down* to 0.1 %: 4,785 of 4,786 is 99.9 %, never 100.0 %."""
    if x is None:
        return missing
    return f"{math.floor(x * 1000 + 1e-9) / 10:.1f}%"


def number(x: Any, missing: str = DASH, *, grouped: bool = True) -> str:
    """A figure as a person reads it: whole numbers as they are (with thousands separators when
    `grouped`), small fractions to 4 significant digits, larger ones to 6; None as `missing`."""
    if x is None:
        return missing
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int) or (math.isfinite(x) and x.is_integer() and abs(x) >= 1):
        return f"{int(x):,}" if grouped else str(int(x))
    if not math.isfinite(x):
        return str(x)
    text = f"{x:.4g}" if abs(x) < 1 else f"{x:,.6g}"
    return text if grouped else text.replace(",", "")


def millis(x: float | None, missing: str = DASH) -> str:
    """Milliseconds, whole: ``1,234 ms``."""
    return missing if x is None else f"{x:,.0f} ms"


def duration(seconds: float) -> str:
    """Seconds as ``1h30m``, ``2m5s``, ``45s``; under 10 s with a fraction as ``1.5s``."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return ((f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")) or "0s"


def clock(seconds: float) -> str:
    """A time into a stage, to the minute: ``45m``, ``1h05``."""
    m = int(round(seconds)) // 60
    return f"{m // 60}h{m % 60:02d}" if m >= 60 else f"{m}m"

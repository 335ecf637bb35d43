"""How a plan is written: numbers, durations and names, as the YAML reader and the gate language both read them.

Numbers are plain decimals (``96%`` where a rate or a share is expected);
``1_000`` and ``1,000`` are refused by both readers, each in its own words.
Durations are ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h`` or plain seconds;
`parse_duration` reads one from a value that did not come from a YAML node
(``--grace`` and the like). A name that is not one of the known ones gets a
"did you mean" when it is a near miss.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence

from ..errors import PlanError

DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")
#: Digits grouped with ``_`` or ``,`` (YAML reads 1_000 as 1000 but 1,000 as text): see `has_separators`.
SEPARATED = re.compile(r"[+-]?\d[\d_,]*(?:\.\d+)?\s*%?")
DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?")
DURATION_EXAMPLES = "like 90s, 30m, 2h, 1h30m, 1.5h or a number of seconds"


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """For an unknown name: "did you mean 'x'?" if one of `known` is close, else "expected one of: a, b, c"."""
    close = difflib.get_close_matches(word, known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(known)}"


def unknown_choice(label: str, word: str, known: Sequence[str]) -> str:
    """"unknown fault kind 'x' (expected one of: a, b, c)", with "; did you mean 'y'?" for a near miss."""
    close = difflib.get_close_matches(word, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {label} {word!r} (expected one of: {', '.join(known)}){hint}"


def has_separators(text: str) -> bool:
    """Whether `text` is a number written with thousands separators (``1_000``, ``1,000``, ``2,5%``)."""
    return bool(SEPARATED.fullmatch(text)) and ("_" in text or "," in text)


def duration_seconds(text: str) -> float | None:
    """Seconds from ``1h30m``-style text (at least one part), or None if it is not written so."""
    match = DURATION.fullmatch(text)
    if not text or not match or not any(match.groups()):
        return None
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s


def parse_duration(value: object, *, where: str = "duration") -> float:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h`` or a plain number of seconds.

    Raises `PlanError` (field `where`, no file) for anything else or a negative duration.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PlanError(f"expected a duration {DURATION_EXAMPLES}; found {value!r}", field=where)
    if isinstance(value, str):
        text = value.strip()
        body = text[1:].lstrip() if text.startswith("-") else text
        if DECIMAL.fullmatch(body):
            seconds = float(body)
        else:
            parsed = duration_seconds(body)
            if parsed is None:
                hint = " (write 1h30m or 1m30s, not 1:30)" if ":" in body else ""
                raise PlanError(f"expected a duration {DURATION_EXAMPLES}; found {value!r}{hint}", field=where)
            seconds = parsed
        if text.startswith("-"):
            seconds = -seconds
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise PlanError(f"expected a finite duration {DURATION_EXAMPLES}; found {value!r}", field=where)
    if seconds < 0:
        raise PlanError(f"a duration cannot be negative; found {value!r}", field=where)
    return seconds

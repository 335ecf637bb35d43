"""How sure a completion rate is: the 95 % Wilson score interval of a share of dossiers.

A rate of 96.3 % on 500 dossiers and on 50,000 is the same point and very
different evidence. Wilson's interval (Wilson 1927; Agresti & Coull 1998 show
it keeps close to its nominal 95 % coverage at every share, unlike the normal
approximation, which collapses to a zero-width interval at 0 % and 100 % and
overshoots [0, 1] near them) is what the summary, the report and the gate
language's ``.lower`` / ``.upper`` use. With no dossiers there is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: z for a two-sided 95 % interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A share with its 95 % interval: ``low <= rate <= high``, all in 0..1."""

    rate: float
    low: float
    high: float
    n: int

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_dict(self) -> dict[str, float | int]:
        return {"rate": self.rate, "lower": round(self.low, 6), "upper": round(self.high, 6), "n": self.n}


def wilson(successes: int, n: int, z: float = Z_95) -> Interval | None:
    """The Wilson score interval of `successes` out of `n`; None when `n` is 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..{n}; found {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 and n the formula's bound is exactly the point; clamp rounding either side.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(rate=p, low=low, high=high, n=n)

"""The Wilson interval against published values, its edges, and its coverage measured by simulation."""

from __future__ import annotations

import random

import pytest

from rehearsal.results.confidence import wilson


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Reference values: Newcombe (1998), Table I, method 3 (Wilson without continuity correction).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    i = wilson(k, n)
    assert i is not None
    assert i.low == pytest.approx(low, abs=1e-4) and i.high == pytest.approx(high, abs=1e-4)


def test_a_few_dossiers_make_a_wide_interval() -> None:
    three = wilson(3, 3)
    assert three is not None and three.rate == 1.0 and three.high == 1.0 and three.low < 0.5
    big = wilson(48_150, 50_000)  # 96.3 %
    small = wilson(482, 500)  # 96.4 %
    assert big is not None and small is not None
    assert big.low > 0.96 and small.low < 0.96 < small.rate  # the same point, different evidence


def test_edges() -> None:
    assert wilson(0, 0) is None
    zero = wilson(0, 10)
    assert zero is not None and zero.low == 0.0 and 0 < zero.high < 1
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_coverage_is_near_95_percent() -> None:
    rng = random.Random(7)
    for p, n in ((0.96, 200), (0.5, 30), (0.99, 1000)):
        trials = 4000
        hits = 0
        for _ in range(trials):
            k = sum(rng.random() < p for _ in range(n))
            i = wilson(k, n)
            hits += i is not None and i.low <= p <= i.high
        assert 0.92 <= hits / trials <= 0.98, (p, n, hits / trials)

"""Our percentiles and means of HDR histograms are hdrh's own, exactly (only faster: numpy over its counts)."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from rehearsal.results.latency import (
    HIGHEST_US,
    Tally,
    mean_value,
    new_histogram,
    value_at_percentile,
)

EDGES = [1, 2, 3, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 999_999, 1_000_000, HIGHEST_US]


@pytest.mark.parametrize("seed", range(40))
def test_percentiles_and_mean_are_hdrhs_own(seed: int) -> None:
    rng = random.Random(seed)
    h = new_histogram()
    for _ in range(rng.choice([1, 2, 7, 300])):
        h.record_value(rng.choice([rng.choice(EDGES), rng.randint(1, HIGHEST_US), int(rng.lognormvariate(8, 2)) + 1]),
                       rng.choice([1, 1, 1, 1000]))
    merged = new_histogram()  # as the summary reads them: decoded from the log, then added
    merged.add(HdrHistogram.decode(h.encode()))
    for histogram in (h, merged):
        assert mean_value(histogram) == histogram.get_mean_value()
        for p in (0.0, 0.1, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0):
            assert value_at_percentile(histogram, p) == histogram.get_value_at_percentile(p), p


def test_an_empty_tally_has_no_figures() -> None:
    figures = Tally().figures(seconds=10.0)
    assert figures["count"] == 0 and figures["p95_ms"] is None and figures["mean_ms"] is None
    assert mean_value(new_histogram()) == 0.0

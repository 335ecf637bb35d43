"""A starved harness, in pieces: the thresholds, the windows placed where the stall was, the gates marked.

The whole of it, for real (a Locust process stopped mid-stage), is in
test_plan_run.py; these are the rules, on rows written as the harness
writes them, and the readers on this very process.
"""

from __future__ import annotations

import pytest

from rehearsal.plan.gate_language import parse_gate
from rehearsal.results.gates import GateData, evaluate
from rehearsal.results.starved import mark_starved, starved_windows
from rehearsal.shared.starvation import THRESHOLDS, RunQueueClock, cpu_pressure, starved_signals, why_starved

#: The worst of each signal over three quiet demos (rehearsal.shared.starvation's docstring).
QUIET = {"lag_max_ms": 256.6, "lag_p99_ms": 12.0, "runqueue_share": 0.0595, "cpu_pressure": 29.65, "late_ms": 7.2}


def test_the_quiet_maxima_measured_are_not_starved_and_each_threshold_is() -> None:
    assert starved_signals(QUIET) == {} and why_starved(QUIET) == ""
    for key, threshold in THRESHOLDS.items():
        assert starved_signals({**QUIET, key: threshold}) == {key: threshold}
    assert why_starved({"lag_max_ms": 1009.3, "lag_p99_ms": 648.0, "cpu_pressure": 91.2}) == \
        "event loop 1,009 ms late; CPU pressure 91 %"


def test_a_stall_is_placed_where_it_was_and_shares_cover_their_interval() -> None:
    series = [{"t": 100.0, **QUIET}, {"t": 102.0, **QUIET},
              # the loop was stuck 5 s and woke at 108.4: the stall, not the 6.5 s since the row before
              {"t": 108.5, "lag_max_ms": 4980.0, "lag_max_at": 108.4},
              {"t": 110.5, "runqueue_share": 0.5}, {"t": 112.5, "runqueue_share": 0.8, "cpu_pressure": 55.0},
              {"t": 114.5, **QUIET}]
    harness = [{"t": 130.0, "late_ms": 1500.0, "late_at": 129.9}]
    assert starved_windows(series, harness) == [
        {"from": 103.42, "to": 108.4, "seconds": 5.0, "why": "event loop 4,980 ms late"},
        {"from": 108.5, "to": 112.5, "seconds": 4.0,
         "why": "Locust waited for a CPU 80% of the time; CPU pressure 55 %"},
        {"from": 128.4, "to": 129.9, "seconds": 1.5, "why": "harness loop 1,500 ms late"},
    ]


def _latency_row(t: float, count: int) -> dict:
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 3_600_000_000, 3)
    for _ in range(count):
        h.record_value(5_000)
    return {"t0": t - 1, "t": t, "name": "GET /x", "tag": "", "count": count, "failures": 0,
            "hdr": h.encode().decode("ascii")}


@pytest.mark.parametrize("starved_from, marked", [(104.5, True), (100.5, False)])
def test_a_gate_is_marked_only_when_the_span_it_was_judged_on_was_starved(starved_from: float, marked: bool) -> None:
    # 10 s at 60x: "every 2m" is five 2-second windows; the one with no requests (104-106) is the worst.
    rows = [_latency_row(t, 0 if 104 < t <= 106 else 10) for t in (101, 102, 103, 104, 105, 106, 107, 108, 109, 110)]
    data = GateData(time_scale=60, start=100.0, end=110.0, latency_rows=[r for r in rows if r["count"]],
                    figures={"lost_dossiers": 0},
                    starved=[{"from": starved_from, "to": starved_from + 1.0, "seconds": 1.0, "why": "x"}])
    gates = [parse_gate("requests over every 2m >= 1"), parse_gate("p95_ms <= 1000"), parse_gate("lost_dossiers == 0")]
    every, whole, lost = mark_starved(gates, evaluate(gates, data), data)
    assert every.status == "failed" and every.observed == 0 and every.detail.startswith("worst window 4m-6m")
    assert (every.starved_s == 1.0) is marked and ("measurement untrustworthy" in every.detail) is marked
    assert whole.status == "passed" and whole.starved_s == 1.0  # the whole stage holds either window
    assert lost.status == "passed" and lost.starved_s is None and lost.detail == ""  # counted on the portal


def test_the_readers_on_this_process() -> None:
    clock = RunQueueClock()
    sum(i * i for i in range(200_000))
    share = clock.share()
    assert share is None or 0.0 <= share < 10.0  # None where the kernel keeps no schedstat
    pressure = cpu_pressure()
    assert pressure is None or 0.0 <= pressure <= 100.0

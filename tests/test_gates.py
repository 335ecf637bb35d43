"""The gate language and its judge, on stage directories written the way a run writes them.

A stage of ten simulated minutes at ×10 (one interval per simulated minute,
6 wall seconds), with two request types from two kinds of user; minute 5 is
slow and minute 7 has failures. Latency rows are real HDR histograms encoded
as `locustfiles.latency` encodes them; the expected figures are computed
here from the raw values, independently of `rehearsal.results.latency`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from rehearsal.plan.gate_language import GATE_METRICS, GateSyntaxError, parse_gate
from rehearsal.results.gates import GateData, LiveGates, evaluate
from rehearsal.results.figures import gate_data, run_gate_data

START, STEP, SCALE = 1_000_000.0, 6.0, 10.0
FILE = "POST /api/dossiers"
READ = "GET /api/dossiers/[id]"
BD_UNIT, HCMC_UNIT = 25747, 26737  # a Bình Dương phường and an old-HCMC one


def _values(minute: int, name: str) -> list[float]:
    """Milliseconds of the requests of one interval: 100 per interval per type; minute 5 is slow for FILE."""
    base = 100.0 if name == FILE else 20.0
    if minute == 5 and name == FILE:
        base = 400.0
    return [base + i * 0.5 for i in range(100)]


def _hdr(values: list[float]) -> str:
    h = HdrHistogram(1, 3_600_000_000, 3)
    for v in values:
        h.record_value(int(v * 1000))
    return h.encode().decode("ascii")


def _stage_dir(tmp_path: Path, name: str = "s", start: float = START) -> Path:
    d = tmp_path / "stages" / name
    d.mkdir(parents=True)
    lines = [json.dumps({"start": start, "interval_s": STEP, "time_scale": SCALE})]
    for minute in range(10):
        for req, tag in ((FILE, "citizen"), (READ, "officer")):
            vals = _values(minute, req)
            failures = 10 if (minute == 7 and req == READ) else 0
            lines.append(json.dumps({"t0": start + STEP * minute, "t": start + STEP * (minute + 1), "name": req,
                                     "tag": tag, "count": len(vals), "failures": failures, "hdr": _hdr(vals)}))
    (d / "latency.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The systems' own timings of the same requests (`locustfiles.server_timing`), routes named as Flask's.
    routes = {FILE: "POST /api/dossiers", READ: "GET /api/dossiers/<int:dossier_id>"}
    server = [lines[0], json.dumps({"status": {"system": "national", "known": True, "covers": "request read to answer"}})]
    server += [json.dumps({**row, "name": routes[row["name"]], "system": "national"})
               for row in map(json.loads, lines[1:])]
    (d / "server_latency.jsonl").write_text("\n".join(server) + "\n", encoding="utf-8")
    series = [{"t": start + 2 * k, "sessions_harness": 100 + k, "sessions_portal": 90 + k, "sync_backlog": k % 7}
              for k in range(31)]
    (d / "timeseries.jsonl").write_text("\n".join(json.dumps(r) for r in series) + "\n", encoding="utf-8")
    # Two systems: one matched step per simulated minute, lags 1 … 10 wall seconds.
    steps = [{"t": start + STEP * k + 1, "code": f"C{k}", "seq": str(k), "lag_s": k + 1.0} for k in range(10)]
    (d / "sync_steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps), encoding="utf-8")
    return d


STAGE_ENTRY = {
    "name": "s", "reconciled": True, "completion_rate": 0.95, "on_time_rate": 0.9,
    "dossiers": {"submitted": 200, "complete": 190, "lost": 1, "duplicated": 2, "unsynced": 2, "not_delivered": 1},
    "completion_rate_national": 0.9, "sync": {"unknown": False}, "unsynced_codes": ["A", "B"],
    "unit_results": {str(BD_UNIT): {"submitted": 100, "complete": 99, "lost": 0, "finished": 99, "on_time": 90},
                     str(HCMC_UNIT): {"submitted": 100, "complete": 91, "lost": 1, "finished": 91, "on_time": 81}},
    "cutover": {"interruption_s": 0.4, "migration_found_rate": 1.0, "total_s": 900.0, "rolled_back": True,
                "phases": [{"phase": "validate", "actual_s": 240.0}]}, "arrivals_dropped": 3,
}


def _pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile: what an HDR histogram reports, to its 0.1 % precision."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _all(name: str | None = None, minutes: range = range(10)) -> list[float]:
    names = [name] if name else [FILE, READ]
    return [v for m in minutes for n in names for v in _values(m, n)]


@pytest.fixture
def data(tmp_path: Path) -> GateData:
    return gate_data(_stage_dir(tmp_path), STAGE_ENTRY, SCALE)


def _observed(data: GateData, expr: str) -> float | None:
    return evaluate([parse_gate(expr)], data)[0].observed


# -- every metric ------------------------------------------------------------------

def test_every_metric_is_measured(data: GateData) -> None:
    every = _all()
    expected = {
        "completion_rate": 0.95, "on_time_rate": 0.9,
        "sessions_peak_harness": 130, "sessions_peak_portal": 120,
        "requests": 2000, "rps": 2000 / 60, "failures": 10, "error_rate": 10 / 2000,
        "p50_ms": _pct(every, 50), "p90_ms": _pct(every, 90), "p95_ms": _pct(every, 95), "p99_ms": _pct(every, 99),
        "max_ms": max(every), "mean_ms": sum(every) / len(every),
        "lost_dossiers": 1, "duplicated_dossiers": 2, "submitted_dossiers": 200, "complete_dossiers": 190,
        "interruption_s": 0.4, "migration_found_rate": 1.0, "arrivals_dropped": 3,
        "withdrawn_dossiers": 0,  # a summary without the key is from before withdrawals: none
        "unsynced_dossiers": 2, "not_delivered_dossiers": 1, "completion_rate_national": 0.9,
        "sync_lag_p50_s": 5, "sync_lag_p95_s": 10, "sync_lag_max_s": 10, "sync_backlog_max": 6,
        "server_p50_ms": _pct(every, 50), "server_p95_ms": _pct(every, 95), "server_p99_ms": _pct(every, 99),
        "cutover_phase_s": 240, "cutover_total_s": 900, "cutover_rolled_back": 1,
    }
    assert set(expected) == set(GATE_METRICS), "a metric without a test"
    for metric, want in expected.items():
        got = _observed(data, f"{metric} >= 0")
        assert got == pytest.approx(want, rel=2e-3), metric


def test_request_filters_by_name_method_and_tag(data: GateData) -> None:
    assert _observed(data, f'p95_ms{{name="{FILE}"}} >= 0') == pytest.approx(_pct(_all(FILE), 95), rel=2e-3)
    assert _observed(data, 'p95_ms{name="GET /api/dossiers/*"} >= 0') == pytest.approx(_pct(_all(READ), 95), rel=2e-3)
    assert _observed(data, "requests{method=post} >= 0") == 1000
    assert _observed(data, "error_rate{tag=officer} >= 0") == pytest.approx(10 / 1000)
    assert _observed(data, "failures{tag=citizen} >= 0") == 0
    # A filter that matches nothing is "not measured", and fails: a typo cannot pass.
    result = evaluate([parse_gate('p95_ms{name="GET /nothing"} <= 100')], data)[0]
    assert result.status == "failed" and result.observed is None


def test_dossier_filters_by_group_type_and_unit(data: GateData) -> None:
    assert _observed(data, "completion_rate{group=binh-duong} >= 0") == pytest.approx(0.99)
    assert _observed(data, "completion_rate{group=hcmc} >= 0") == pytest.approx(0.91)
    assert _observed(data, f"lost_dossiers{{unit={HCMC_UNIT}}} >= 0") == 1
    assert _observed(data, "on_time_rate{group=binh-duong} >= 0") == pytest.approx(90 / 99)
    assert _observed(data, "submitted_dossiers{type=phuong} >= 0") == 200  # both are phường
    assert _observed(data, "submitted_dossiers{type=xa} >= 0") is None
    result = evaluate([parse_gate("completion_rate{group=ba-ria-vung-tau} >= 96%")], data)[0]
    assert result.status == "failed" and "no unit" in result.detail


# -- windows -----------------------------------------------------------------------

def test_whole_last_and_every_windows(data: GateData) -> None:
    whole = _observed(data, f'p95_ms{{name="{FILE}"}} <= 1000')
    last = _observed(data, f'p95_ms{{name="{FILE}"}} over last 3m <= 1000')
    assert last == pytest.approx(_pct(_all(FILE, range(7, 10)), 95), rel=2e-3)
    every = evaluate([parse_gate(f'p95_ms{{name="{FILE}"}} over every 2m <= 150')], data)[0]
    # Minute 5 is slow: the window 4m-6m is the worst, and it fails although the whole stage passes.
    assert every.observed == pytest.approx(_pct(_all(FILE, range(4, 6)), 95), rel=2e-3)
    assert every.status == "failed" and every.detail == "worst window 4m-6m"
    assert whole is not None and whole < every.observed
    # For ">" the worst window is the lowest.
    low = evaluate([parse_gate("sessions_peak_portal over every 5m >= 110")], data)[0]
    assert low.observed == 105 and low.detail == "worst window 0m-5m" and low.status == "failed"
    # A 4-minute window over a 10-minute stage: two windows, the remainder joins the second.
    rem = evaluate([parse_gate("requests over every 4m <= 5000")], data)[0]
    assert rem.observed == 1200 and rem.detail == "worst window 4m-10m"


def test_a_window_with_no_requests_counts_as_none(tmp_path: Path) -> None:
    d = _stage_dir(tmp_path)
    lines = (d / "latency.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if "hdr" not in ln or json.loads(ln)["t0"] != START + STEP * 3]
    (d / "latency.jsonl").write_text("\n".join(kept) + "\n")
    data = gate_data(d, STAGE_ENTRY, SCALE)
    result = evaluate([parse_gate("requests over every 1m >= 100")], data)[0]
    assert result.observed == 0 and result.detail == "worst window 3m-4m"


def test_whole_run_merges_the_stages(tmp_path: Path) -> None:
    _stage_dir(tmp_path, "a")
    _stage_dir(tmp_path, "b", start=START + 100)
    entries = [{**STAGE_ENTRY, "name": "a"}, {**STAGE_ENTRY, "name": "b"}]
    run = run_gate_data(tmp_path, entries, SCALE)
    assert _observed(run, "requests >= 0") == 4000
    assert _observed(run, "lost_dossiers >= 0") == 2
    assert _observed(run, "completion_rate >= 0") == pytest.approx(380 / 400)
    assert _observed(run, "completion_rate{group=binh-duong} >= 0") == pytest.approx(198 / 200)
    assert _observed(run, "p95_ms >= 0") == pytest.approx(_pct(_all() * 2, 95), rel=2e-3)


def test_withdrawn_dossiers_leave_the_completion_rate_of_stage_filter_and_run(tmp_path: Path) -> None:
    _stage_dir(tmp_path, "a")
    _stage_dir(tmp_path, "b", start=START + 100)
    # Stage b: 10 of Bình Dương's dossiers were stopped after their citizens asked to withdraw them,
    # and every one of old HCMC's (nothing is left to complete there).
    b = {**STAGE_ENTRY, "name": "b", "completion_rate": 90 / 90,
         "dossiers": {"submitted": 110, "complete": 90, "lost": 0, "duplicated": 0, "withdrawn": 20},
         "unit_results": {str(BD_UNIT): {"submitted": 100, "complete": 90, "withdrawn": 10, "finished": 90,
                                         "on_time": 90},
                          str(HCMC_UNIT): {"submitted": 10, "complete": 0, "withdrawn": 10}}}
    stage = gate_data(tmp_path / "stages" / "b", b, SCALE)
    assert _observed(stage, "withdrawn_dossiers >= 0") == 20
    assert _observed(stage, "withdrawn_dossiers{group=binh-duong} >= 0") == 10
    assert _observed(stage, "completion_rate{group=binh-duong} >= 0") == 1.0
    assert _observed(stage, "completion_rate{group=hcmc} >= 0") is None
    assert _observed(stage, "on_time_rate{group=binh-duong} >= 0") == 1.0
    run = run_gate_data(tmp_path, [{**STAGE_ENTRY, "name": "a"}, b], SCALE)
    assert _observed(run, "withdrawn_dossiers >= 0") == 20
    assert _observed(run, "completion_rate >= 0") == pytest.approx((190 + 90) / (200 + 110 - 20))
    assert _observed(run, "completion_rate{group=binh-duong} >= 0") == pytest.approx((99 + 90) / (100 + 100 - 10))


# -- baselines -----------------------------------------------------------------------

def test_baseline_thresholds(data: GateData) -> None:
    p95 = _observed(data, "p95_ms >= 0")
    assert p95 is not None
    gate = parse_gate("p95_ms <= baseline * 1.10")
    ok, bad = evaluate([gate], data, baseline={"p95_ms": p95 / 1.05}, baseline_name="b")[0], \
        evaluate([gate], data, baseline={"p95_ms": p95 / 1.20}, baseline_name="b")[0]
    assert ok.status == "passed" and bad.status == "failed"
    assert "baseline" in bad.expected and "× 1.1" in bad.expected
    assert evaluate([gate], data)[0].status == "skipped"
    missing = evaluate([gate], data, baseline={}, baseline_name="b")[0]
    assert missing.status == "skipped" and "no figure for p95_ms" in missing.detail
    plus = parse_gate("error_rate <= baseline + 1%")
    assert plus.baseline_arg == pytest.approx(0.01)


# -- abort early -----------------------------------------------------------------------

def _rows(tmp_path: Path) -> list[dict]:
    return [json.loads(ln) for ln in (_stage_dir(tmp_path) / "latency.jsonl").read_text().splitlines()
            if "hdr" in ln]


def test_live_gates_abort_after_the_grace_and_not_before(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    gate = parse_gate(f'p95_ms{{name="{FILE}"}} over last 1m < 300', abort_on_fail=True, abort_grace_s=0)
    late = parse_gate(f'p95_ms{{name="{FILE}"}} over last 1m < 300', name="late", abort_on_fail=True,
                      abort_grace_s=7 * 60)
    for gates, fails_at in (([gate], 6), ([late], None)):
        live = LiveGates(gates, start=START, time_scale=SCALE)
        fired = None
        for minute in range(10):
            live.feed_latency([r for r in rows if r["t"] == START + STEP * (minute + 1)])
            result = live.check(START + STEP * (minute + 1))
            if result and fired is None:
                fired = minute + 1
        assert fired == fails_at


def test_live_every_window_aborts_when_a_closed_window_failed(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    live = LiveGates([parse_gate("error_rate over every 2m < 0.4%", abort_on_fail=True)], start=START,
                     time_scale=SCALE)
    fired = None
    for minute in range(10):
        live.feed_latency([r for r in rows if r["t"] == START + STEP * (minute + 1)])
        if live.check(START + STEP * (minute + 1)) and fired is None:
            fired = minute + 1
    # Minute 7 has the failures; its window (6m-8m) closes when minute 9's interval arrives.
    assert fired == 9


def test_no_live_gates_without_abort_on_fail() -> None:
    assert not LiveGates([parse_gate("p95_ms < 1")], start=START, time_scale=SCALE)


# -- the language ------------------------------------------------------------------------

@pytest.mark.parametrize("expr, key", [
    ("completion_rate >= 96%", "completion_rate"),
    ('p95_ms{name="POST /api/dossiers"} <= 800', 'p95_ms{name="POST /api/dossiers"}'),
    ("error_rate{tag=citizen} over every 5m < 1%", 'error_rate{tag="citizen"} over every 5m'),
    ("sessions_peak_portal over last 30m >= 1000", "sessions_peak_portal over last 30m"),
    ("p99_ms{method=get, tag=officer} over whole < 2000", 'p99_ms{method="GET",tag="officer"}'),
    ("p95_ms over every 1h30m<=baseline*1.1", "p95_ms over every 1h30m"),
])
def test_expressions_parse(expr: str, key: str) -> None:
    assert parse_gate(expr).key == key


@pytest.mark.parametrize("expr, fragment", [
    ("p95 <= 3", "unknown gate metric 'p95' (did you mean 'p95_ms'?)"),
    ("p95_ms => 3", "did you mean '>='?"),
    ("p95_ms{group=hcmc} < 3", "unknown filter 'group' for p95_ms"),
    ("completion_rate{nam=x} > 0.5", "unknown filter 'nam'"),
    ("completion_rate over last 5m >= 90%", "a window ('over last ...') only applies to requests and sessions"),
    ("p95_ms over sometimes 5m < 3", "expected a window"),
    ("p95_ms over every < 3", "needs a duration"),
    ("p95_ms <= baseline ** 2", "expected a number after 'baseline *'"),
    ("p95_ms <= baselin * 2", "expected a number after '<='"),
    ("error_rate{tag=robot} < 1%", "unknown tag 'robot'"),
    ("duplicated_dossiers{unit=26506} == 0", "takes no filter"),
    ("p95_ms{name=dossiers} < 3", "'METHOD /path'"),
    ("error_rate < 5", "write 0.96 or 96%"),
])
def test_malformed_expressions_say_what_was_expected(expr: str, fragment: str) -> None:
    with pytest.raises(GateSyntaxError) as err:
        parse_gate(expr)
    assert fragment in str(err.value)


def test_abort_on_fail_needs_a_live_metric() -> None:
    with pytest.raises(GateSyntaxError, match="abort_on_fail needs a metric measured while the stage runs"):
        parse_gate("completion_rate >= 96%", abort_on_fail=True)

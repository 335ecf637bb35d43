"""The run directory as Prometheus metrics: a `prometheus_client` collector that reads it on every scrape.

`RunCollector` is handed where the run is (a folder, or a function that finds
it once the run has made it) and, at each scrape, reads ``summary.json`` and
each stage's files (`reading.StageReading`: the time series, the ledger, the
HDR latency log, the markers). A stage that ``summary.json`` already holds is
exported with the summary's figures (reconciled: the values a scrape shows
after the run equal the summary's); a stage still running with what its
files say so far. So one exporter serves a live run and a finished one, and a
restarted exporter shows the same. Every metric is named ``rehearsal_*`` and
has a ``stage`` label where it belongs to one; `docs/metrics.md` lists them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ...plan import Plan, load_plan
from ...shared.jsonl import read_jsonl
from ...shared.status import completion_rate
from ...shared.wards import units_by_code
from ..completion import rate_interval
from ..gates import GateResult, gate_status
from ..latency import Tally
from .reading import StageReading

log = logging.getLogger("rehearsal.results.metrics")
#: Latency histogram bounds, seconds (Prometheus's ``le``): 5 ms to a minute.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Verdicts and gate states as numbers, for panels and alerts (Grafana maps them back to words).
VERDICT = {"GO": 1.0, "NO-GO": 0.0, "INCOMPLETE": -1.0}
GATE_STATE = {"passed": 1.0, "failed": 0.0, "skipped": -1.0}
#: Marker kinds a stage may write (`locustfiles.timeline`, `locustfiles.abort`): each counted from 0.
MARKER_KINDS = ("fault_start", "fault_end", "cutover_close", "migration_done", "abort")

Locate = Callable[[], Path | None]


def _count(value: Any) -> float | None:
    """A count that may be given as a list of codes (two-system keys) or a number."""
    if isinstance(value, (list, tuple)):
        return float(len(value))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def buckets_of(t: Tally) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs of a request type's merged HDR histogram, and its sum in seconds.

    Read straight from the histogram's counts (its own iterators take seconds
    per scrape in pure Python); a value counts in the first bucket whose bound
    its equivalence range does not pass, its sum at the range's middle (as
    HdrHistogram's mean does).
    """
    h = t.histogram
    counts = list(h.counts)  # one copy of the ctypes array, read as a list
    out: list[tuple[str, float]] = []
    for le in BUCKETS_S:
        upto = min(len(counts) - 1, h._counts_index_for(int(le * 1_000_000)))  # noqa: SLF001
        out.append((str(le), float(sum(counts[:upto + 1]))))
    out.append(("+Inf", float(sum(counts))))
    total_us = sum(n * h._hdr_median_equiv_value(h.get_value_from_index(i))  # noqa: SLF001
                   for i, n in enumerate(counts) if n)
    return out, total_us / 1_000_000.0


#: A reading younger than this is served again instead of read anew (seconds).
FRESH_S = 2.0


class RunCollector(Collector):
    """Every ``rehearsal_*`` metric of one run, read from its directory at each scrape.

    Reading is costly (gates judged over all that was measured) and runs in
    the harness's own process: scrapes are served one at a time, and one
    within `fresh_s` of the last reading gets that reading, so scrapes every
    second, or two scrapers, cannot pile readings up and starve the run.
    """

    def __init__(self, run: Path | Locate, *, fresh_s: float = FRESH_S) -> None:
        self.locate: Locate = (lambda: run) if isinstance(run, Path) else run
        self.readings: dict[Path, StageReading] = {}
        self.plans: dict[Path, tuple[float, Plan | None]] = {}
        self.fresh_s = fresh_s
        self._lock = threading.Lock()
        self._last: tuple[float, list[Metric]] | None = None

    # -- what is on disk -----------------------------------------------------------
    def _summary(self, run_dir: Path) -> dict[str, Any]:
        try:
            body = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # not written yet, or caught between two atomic writes: the next scrape has it
        return body if isinstance(body, dict) else {}

    def _plan(self, run_dir: Path, time_scale: float | None) -> Plan | None:
        path = run_dir / "scenario.yaml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        cached = self.plans.get(run_dir)
        if cached is None or cached[0] != mtime:
            try:
                plan = load_plan(path, time_scale=time_scale)
            except Exception:  # noqa: BLE001 (a plan this harness no longer reads: the figures still export)
                log.warning("metrics: cannot read %s; gates are taken from summary.json only", path)
                plan = None
            self.plans[run_dir] = cached = (mtime, plan)
        return cached[1]

    def _reading(self, run_dir: Path, name: str, plan: Plan | None, time_scale: float) -> StageReading:
        stage_dir = run_dir / "stages" / name
        reading = self.readings.get(stage_dir)
        if reading is None:
            gates = ()
            if plan is not None and any(s.name == name for s in plan.stages):
                gates = plan.stage(name).gates
            reading = self.readings[stage_dir] = StageReading(stage_dir, run_dir / "ledger" / f"{name}.jsonl",
                                                              gates, time_scale)
        reading.refresh()
        return reading

    # -- the scrape ----------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one reading at a time; those who waited get it if it is fresh
            if self._last is not None and time.monotonic() - self._last[0] < self.fresh_s:
                return iter(self._last[1])
            metrics = list(self._read())
            self._last = (time.monotonic(), metrics)
            return iter(metrics)

    def _read(self) -> Iterator[Metric]:
        run_dir = self.locate()
        if run_dir is None or not run_dir.is_dir():
            return iter(())
        summary = self._summary(run_dir)
        time_scale = _num(summary.get("time_scale")) or 1.0
        plan = self._plan(run_dir, time_scale)
        done = {s.get("name"): s for s in summary.get("stages") or [] if isinstance(s, dict)}
        names = [s.name for s in plan.stages] if plan is not None else []
        on_disk = sorted(p.name for p in (run_dir / "stages").iterdir() if p.is_dir()) \
            if (run_dir / "stages").is_dir() else []
        names = [n for n in names if n in done or n in on_disk] + \
            [n for n in [*done, *on_disk] if n not in names]
        m = _Families()
        m.run(summary, run_dir)
        for name in dict.fromkeys(names):
            try:
                reading = self._reading(run_dir, name, plan, time_scale)
                stage_plan = plan.stage(name) if plan is not None and name in [s.name for s in plan.stages] \
                    else None
                m.stage(name, done.get(name), reading, stage_plan, run_dir / "stages" / name)
            except Exception:  # noqa: BLE001 (one unreadable stage must not empty the whole scrape)
                log.exception("metrics: stage %r could not be read", name)
        return iter(m.all())


class _Families:
    """The metric families of one scrape, filled stage by stage."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        st = ["stage"]
        self.f: dict[str, Metric] = {
            "info": g("rehearsal_run_info", "The run: scenario, run id, target (always 1).",
                      labels=["scenario", "run_id", "target"]),
            "verdict": g("rehearsal_run_verdict", "The run's verdict: 1 GO, 0 NO-GO, -1 INCOMPLETE or running."),
            "scale": g("rehearsal_time_scale", "Simulated seconds per wall second."),
            "run_gate": g("rehearsal_run_gate_state", "A gate on the whole run: 1 passed, 0 failed, -1 skipped.",
                          labels=["gate", "expr"]),
            "stage_verdict": g("rehearsal_stage_verdict",
                               "The stage's verdict: 1 GO, 0 NO-GO, -1 INCOMPLETE or still running.", labels=st),
            "running": g("rehearsal_stage_running", "1 while the stage runs, 0 once summary.json holds it.",
                         labels=st),
            "users": g("rehearsal_users", "Locust users running now.", labels=st),
            "workers": g("rehearsal_workers", "Locust workers connected (distributed runs).", labels=st),
            "sessions": g("rehearsal_sessions", "Concurrent sessions now, as each witness counts them.",
                          labels=["stage", "counted_by"]),
            "peak": g("rehearsal_sessions_peak", "Most concurrent sessions in one sample, as each witness counts.",
                      labels=["stage", "counted_by"]),
            "up": g("rehearsal_system_up", "Whether the system answered the last 2-second poll.",
                    labels=["stage", "system"]),
            "dossiers": g("rehearsal_dossiers", "Dossiers of the stage by state (lost, unsynced, not_delivered, "
                          "duplicated once reconciled).", labels=["stage", "state"]),
            "rate": g("rehearsal_completion_rate", "complete / (submitted - withdrawn), 0..1.", labels=st),
            "rate_national": g("rehearsal_completion_rate_national",
                               "Completion as citizens see it on the national portal, 0..1.", labels=st),
            "rate_bound": g("rehearsal_completion_rate_bound", "The completion rate's 95 % Wilson interval "
                            "(bound=lower|upper), 0..1.", labels=["stage", "bound"]),
            "target": g("rehearsal_completion_target", "The stage's completion target, 0..1.", labels=st),
            "province": g("rehearsal_province_completion_rate", "Completion rate per former province, 0..1.",
                          labels=["stage", "province"]),
            "province_bound": g("rehearsal_province_completion_rate_bound", "Its 95 % Wilson interval, 0..1.",
                                labels=["stage", "province", "bound"]),
            "unit_rate": g("rehearsal_unit_completion_rate", "Completion rate per unit, 0..1.",
                           labels=["stage", "unit", "unit_name", "province"]),
            "unit_dossiers": g("rehearsal_unit_dossiers", "Dossiers per unit by state.",
                               labels=["stage", "unit", "state"]),
            "requests": c("rehearsal_requests", "Requests per request type.", labels=["stage", "request"]),
            "failures": c("rehearsal_request_failures", "Failed requests per request type.",
                          labels=["stage", "request"]),
            "latency": HistogramMetricFamily("rehearsal_request_duration_seconds",
                                             "Response time per request type (HDR log, merged).",
                                             labels=["stage", "request"]),
            "quantile": g("rehearsal_request_latency_seconds", "Response time percentiles per request type.",
                          labels=["stage", "request", "quantile"]),
            "error_rate": g("rehearsal_error_rate", "Failed / all requests of the stage, 0..1.", labels=st),
            "gate": g("rehearsal_gate_state", "A stage gate now: 1 passing, 0 failing, -1 skipped or not "
                      "measurable yet.", labels=["stage", "gate", "expr"]),
            "gate_observed": g("rehearsal_gate_observed", "The figure a stage gate judges.",
                               labels=["stage", "gate"]),
            "markers": c("rehearsal_markers", "Fault and cutover markers on the stage's timeline.",
                         labels=["stage", "kind"]),
            "marker_time": g("rehearsal_marker_timestamp_seconds", "When the last marker of a kind was set "
                             "(Unix seconds): Grafana annotations at the exact time.",
                             labels=["stage", "kind", "name"]),
            "fault": g("rehearsal_fault_active", "1 while a fault of the timeline is on.",
                       labels=["stage", "fault", "kind"]),
            "cutover": g("rehearsal_cutover", "The cutover's figures (interruption_s, open_at_close, "
                         "found_on_national, migration_found_rate, sessions_lost, sessions_restored).",
                         labels=["stage", "figure"]),
            "backlog": g("rehearsal_sync_backlog", "Processing steps waiting in the provincial outbox.", labels=st),
            "backlog_oldest": g("rehearsal_sync_oldest_seconds", "Age of the oldest step waiting to be pushed.",
                                labels=st),
            "feed_behind": g("rehearsal_sync_feed_behind", "National feed items the link has not pulled yet.",
                             labels=st),
            "link_up": g("rehearsal_sync_link_up", "Whether the link agent was alive at the last poll.",
                         labels=st),
            "lag": g("rehearsal_sync_lag_seconds", "Sync lag per step (wall seconds): p50, p95, max.",
                     labels=["stage", "stat"]),
            "backlog_max": g("rehearsal_sync_backlog_max", "Most steps waiting in the outbox during the stage.",
                             labels=st),
        }

    def all(self) -> list[Metric]:
        return [f for f in self.f.values() if f.samples]

    def put(self, key: str, labels: list[str], value: Any) -> None:
        v = _num(value)
        if v is not None:
            self.f[key].add_metric(labels, v)

    # -- the run -------------------------------------------------------------------
    def run(self, summary: Mapping[str, Any], run_dir: Path) -> None:
        self.put("info", [str(summary.get("scenario", "")), str(summary.get("run_id", run_dir.name)),
                          str(summary.get("target", ""))], 1)
        self.put("verdict", [], VERDICT.get(str(summary.get("verdict")), -1.0) if summary.get("finished_at")
                 else -1.0)
        self.put("scale", [], summary.get("time_scale"))
        for g in summary.get("gates") or []:
            self.put("run_gate", [str(g.get("name")), str(g.get("expr"))], GATE_STATE.get(gate_status(g)))

    # -- one stage -----------------------------------------------------------------
    def stage(self, name: str, done: Mapping[str, Any] | None, r: StageReading, stage_plan: Any,
              stage_dir: Path) -> None:
        row = r.last_row
        self.put("stage_verdict", [name], VERDICT.get(str(done.get("verdict")), -1.0) if done else -1.0)
        self.put("running", [name], 0 if done else 1)
        self.put("users", [name], row.get("users"))
        self.put("workers", [name], row.get("workers"))
        self.put("sessions", [name, "harness"], row.get("sessions_harness"))
        self.put("sessions", [name, "portal"], row.get("sessions_portal"))
        for system, seen in (row.get("systems") or {}).items():
            if isinstance(seen, Mapping):
                self.put("sessions", [name, str(system)], seen.get("sessions"))
                self.put("up", [name, str(system)], 1 if seen.get("up") else 0)
        peaks = dict(r.peaks)
        if done:  # the summary's peaks are the stage's figures of record
            s = done.get("sessions") or {}
            peaks.update(harness=s.get("peak_harness"), portal=s.get("peak_portal"))
            peaks.update(s.get("by_system") or {})
        for who, n in peaks.items():
            self.put("peak", [name, who], n)
        self._dossiers(name, done, r, stage_plan)
        self._requests(name, done, r)
        self._gates(name, done, r)
        self._timeline(name, done, stage_dir)
        self._sync(name, done, row)

    def _dossiers(self, name: str, done: Mapping[str, Any] | None, r: StageReading, stage_plan: Any) -> None:
        if done and done.get("reconciled", True):
            d = done.get("dossiers") or {}
            for state in ("submitted", "complete", "lost", "duplicated", "withdrawn", "unsynced", "not_delivered",
                          "inconsistent"):
                self.put("dossiers", [name, state], _count(d.get(state)))
            self.put("rate", [name], done.get("completion_rate"))
            self.put("rate_national", [name], done.get("completion_rate_national"))
            units = {int(k): v for k, v in (done.get("unit_results") or {}).items()}
        else:
            d = r.dossiers()
            for state, n in d.items():
                self.put("dossiers", [name, state], n)
            self.put("rate", [name], completion_rate(d["complete"], d["submitted"], d["withdrawn"]))
            units = r.unit_results()
        self._bounds("rate_bound", [name], d)
        target = (done or {}).get("completion_target")
        if target is None and stage_plan is not None:
            target = stage_plan.completion_target
        self.put("target", [name], target)
        known = units_by_code()
        provinces: dict[str, list[int]] = {}
        for code, u in units.items():
            unit = known.get(code)
            province = unit.former_province.value if unit else "unknown"
            self.put("unit_rate", [name, str(code), unit.name if unit else "", province], u.get("completion_rate"))
            for state in ("submitted", "complete", "lost", "unsynced"):
                self.put("unit_dossiers", [name, str(code), state], _count(u.get(state)))
            tot = provinces.setdefault(province, [0, 0, 0])
            for i, key in enumerate(("submitted", "complete", "withdrawn")):
                tot[i] += int(u.get(key) or 0)
        for province, (s, c, w) in sorted(provinces.items()):
            self.put("province", [name, province], completion_rate(c, s, w))
            self._bounds("province_bound", [name, province], {"submitted": s, "complete": c, "withdrawn": w})

    def _bounds(self, key: str, labels: list[str], d: Mapping[str, Any]) -> None:
        """The 95 % interval of complete / (submitted - withdrawn) as two samples (none while that is 0)."""
        complete, submitted, withdrawn = (int(_count(d.get(k)) or 0) for k in ("complete", "submitted", "withdrawn"))
        interval = rate_interval(complete, submitted, withdrawn)
        if interval is not None:
            self.put(key, [*labels, "lower"], interval.low)
            self.put(key, [*labels, "upper"], interval.high)

    def _requests(self, name: str, done: Mapping[str, Any] | None, r: StageReading) -> None:
        figures = (done or {}).get("requests") or {}
        for request, t in sorted(r.requests.items()):
            f = figures.get(request) or t.figures()
            self.put("requests", [name, request], f.get("count"))
            self.put("failures", [name, request], f.get("failures"))
            for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                ms = _num(f.get(key))
                self.put("quantile", [name, request, quantile], ms / 1000.0 if ms is not None else None)
            if t.histogram.get_total_count():
                buckets, total = buckets_of(t)
                self.f["latency"].add_metric([name, request], buckets, total)
        if done:
            self.put("error_rate", [name], done.get("error_rate"))
        else:
            count = sum(t.count for t in r.requests.values())
            self.put("error_rate", [name], sum(t.failures for t in r.requests.values()) / count if count else None)

    def _gates(self, name: str, done: Mapping[str, Any] | None, r: StageReading) -> None:
        if done:
            for g in done.get("gates") or []:
                self.put("gate", [name, str(g.get("name")), str(g.get("expr"))], GATE_STATE.get(gate_status(g)))
                self.put("gate_observed", [name, str(g.get("name"))], g.get("observed"))
            return
        results: list[GateResult | None] = r.gate_results(time.time())
        for gate, result in zip(r.gates, results):
            self.put("gate", [name, gate.name, gate.expr], GATE_STATE[result.status] if result else -1.0)
            if result is not None:
                self.put("gate_observed", [name, gate.name], result.observed)

    def _timeline(self, name: str, done: Mapping[str, Any] | None, stage_dir: Path) -> None:
        markers = read_jsonl(stage_dir / "markers.jsonl")
        kinds = {k: 0 for k in MARKER_KINDS}
        active: dict[tuple[str, str], int] = {}
        last: dict[tuple[str, str], Any] = {}
        for m in markers:
            kind = str(m.get("kind"))
            kinds[kind] = kinds.get(kind, 0) + 1
            last[(kind, str(m.get("name", "")))] = m.get("t")
            if kind in ("fault_start", "fault_end"):
                key = (str(m.get("name", "")), str(m.get("fault_kind") or m.get("fault") or ""))
                active[key] = 1 if kind == "fault_start" else 0
        for kind, n in kinds.items():
            self.put("markers", [name, kind], n)
        for (kind, marker), t in sorted(last.items()):
            self.put("marker_time", [name, kind, marker], t)
        for (fault, kind), on in sorted(active.items()):
            self.put("fault", [name, fault, kind], 0 if done else on)
        for figure, value in ((done or {}).get("cutover") or {}).items():
            self.put("cutover", [name, figure], value)

    def _sync(self, name: str, done: Mapping[str, Any] | None, row: Mapping[str, Any]) -> None:
        self.put("backlog", [name], row.get("sync_backlog"))
        self.put("backlog_oldest", [name], row.get("sync_oldest_s"))
        self.put("feed_behind", [name], row.get("feed_behind"))
        if "link_alive" in row:
            self.put("link_up", [name], 1 if row.get("link_alive") else 0)
        sync = (done or {}).get("sync") or {}
        for stat, value in (sync.get("lag_s") or {}).items():
            if stat != "count":
                self.put("lag", [name, stat], value)
        self.put("backlog_max", [name], sync.get("backlog_max"))

"""The night in the ops team's own tools: a real Prometheus scrapes a real short run.

Debian's ``prometheus`` (installed by the test set-up if missing) runs on
loopback with a temporary configuration scraping the harness every second.
A tiny staged run (six units, a fault, a cutover, ~20 wall seconds) is
played with ``rehearse run --metrics-port``; afterwards ``rehearse metrics
RUN_DIR`` serves the finished run on the same port. Through Prometheus's
HTTP API: the run was seen live, the last scraped values equal
``summary.json``'s figures, and every PromQL expression of the Grafana
dashboard (``examples/grafana/``) returns data over the run. Everything is
started here and stopped here; nothing leaves loopback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import ensure_system_package, free_port

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana" / "dashboards" / "rehearsal.json"
UNITS = [26506, 26536, 25747, 26737, 27676, 26732]
PLAN = f"""\
name: prom
target: reference
time_scale: 120
seed: 5
stages:
  - name: prom
    units: {{codes: {UNITS}}}
    duration: 30m
    grace: 10m
    citizens: {{users: 30, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}}
    officers: {{per_unit: 2, think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}}
    cutover: {{at: 15m, mode: redirect, retry_after: 1m}}
    faults:
      - {{name: slow forms, kind: latency, at: 2m, for: 12m, endpoints: ["GET /api/procedures/<code>"], delay: 50ms}}
    gates:
      - {{name: completion, expr: completion_rate >= 50%}}
      - {{name: no lost dossiers, expr: lost_dossiers == 0}}
      - {{name: p95, expr: p95_ms <= 5000}}
      - {{name: sessions, expr: sessions_peak_harness >= 1}}
"""
#: Panels that show the two systems' link: they have data once the run's time series carries it.
SYNC_ONLY = re.compile(r"rehearsal_sync_|unsynced|rehearsal_system_up")


class Prometheus:
    """A Prometheus on loopback with its own data folder, queried through its HTTP API."""

    def __init__(self, tmp: Path, scrape: str) -> None:
        binary = ensure_system_package("prometheus", "prometheus")
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                          f"scrape_configs:\n  - job_name: rehearsal\n"
                          f"    static_configs: [{{targets: ['{scrape}']}}]\n", encoding="utf-8")
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        pytest.fail("prometheus did not become ready within 60 s")

    def api(self, path: str, **params: Any) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=20) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: {labels without __name__/job/instance: value}."""
        out = {}
        for series in self.api("query", query=expr):
            labels = tuple(sorted((k, v) for k, v in series["metric"].items()
                                  if k not in ("__name__", "job", "instance")))
            out[labels] = float(series["value"][1])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory):
    """(Prometheus, run directory, summary, run start): a short run scraped live, then its finished figures."""
    tmp = tmp_path_factory.mktemp("prom")
    plan = tmp / "prom.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    port = free_port()
    prom = Prometheus(tmp, f"127.0.0.1:{port}")
    server = None
    try:
        started = time.time()
        run = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir",
                              str(tmp / "reports"), "--metrics-port", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=420, cwd=ROOT)  # a busy machine: minutes
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"metrics for Prometheus: http://127.0.0.1:{port}/metrics" in run.stdout
        run_dir = sorted((tmp / "reports").iterdir())[-1]
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        # The finished run, served on the same address: Prometheus's next scrapes are its final figures.
        served_at = time.time()
        server = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "metrics", str(run_dir), "--port",
                                   f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = prom.value("timestamp(rehearsal_run_verdict)")
            if seen and min(seen.values()) > served_at + 1:
                break
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus did not scrape 'rehearse metrics' within 30 s")
        yield prom, run_dir, summary, started
    finally:
        if server is not None:
            _stop(server)
        prom.stop()


def test_the_run_was_scraped_while_it_ran(scraped) -> None:
    prom, _, summary, _ = scraped
    stage = summary["stages"][0]["name"]
    assert prom.value(f'max_over_time(rehearsal_stage_running{{stage="{stage}"}}[10m])') == {(("stage", stage),): 1.0}
    live = prom.value(f'max_over_time(rehearsal_sessions{{stage="{stage}", counted_by="harness"}}[10m])')
    assert list(live.values())[0] > 0
    submitted = prom.value(f'max_over_time(rehearsal_dossiers{{stage="{stage}", state="submitted"}}[10m])')
    assert list(submitted.values())[0] > 0


def test_last_scraped_values_equal_the_summary(scraped) -> None:
    prom, _, summary, _ = scraped
    st = summary["stages"][0]
    name = st["name"]
    assert st["dossiers"]["submitted"] > 0 and st["cutover"] and st["markers"]
    assert prom.value("rehearsal_run_verdict") == {(): {"GO": 1.0, "NO-GO": 0.0}[summary["verdict"]]}
    assert prom.value("rehearsal_stage_verdict") == {(("stage", name),): {"GO": 1.0, "NO-GO": 0.0}[st["verdict"]]}
    dossiers = prom.value(f'rehearsal_dossiers{{stage="{name}"}}')
    for state in ("submitted", "complete", "lost", "duplicated", "withdrawn"):
        assert dossiers[(("stage", name), ("state", state))] == st["dossiers"][state], state
    assert prom.value("rehearsal_completion_rate") == {(("stage", name),): st["completion_rate"]}
    bounds = prom.value("rehearsal_completion_rate_bound")
    assert bounds[(("bound", "lower"), ("stage", name))] == pytest.approx(st["completion_rate_lower"], abs=1e-6)
    assert bounds[(("bound", "upper"), ("stage", name))] == pytest.approx(st["completion_rate_upper"], abs=1e-6)
    peaks = prom.value("rehearsal_sessions_peak")
    assert peaks[(("counted_by", "harness"), ("stage", name))] == st["sessions"]["peak_harness"]
    assert peaks[(("counted_by", "portal"), ("stage", name))] == st["sessions"]["peak_portal"]
    requests = prom.value("rehearsal_requests_total")
    failures = prom.value("rehearsal_request_failures_total")
    p95 = prom.value('rehearsal_request_latency_seconds{quantile="0.95"}')
    assert {dict(k)["request"] for k in requests} == set(st["requests"])
    for request, figures in st["requests"].items():
        key = (("request", request), ("stage", name))
        assert requests[key] == figures["count"] and failures[key] == figures["failures"], request
        assert p95[(("quantile", "0.95"), *key)] == pytest.approx(figures["p95_ms"] / 1000.0, rel=1e-9)
        buckets = prom.value(f'rehearsal_request_duration_seconds_count{{request="{request}"}}')
        assert list(buckets.values()) == [figures["count"]]
    gates = prom.value("rehearsal_gate_state")
    assert {dict(k)["gate"]: v for k, v in gates.items()} == \
        {g["name"]: {"passed": 1.0, "failed": 0.0, "skipped": -1.0}[g["status"]] for g in st["gates"]}
    units = prom.value("rehearsal_unit_completion_rate")
    assert {int(dict(k)["unit"]): v for k, v in units.items()} == \
        {int(u): r["completion_rate"] for u, r in st["unit_results"].items() if r["completion_rate"] is not None}
    cut = prom.value("rehearsal_cutover")
    assert cut[(("figure", "interruption_s"), ("stage", name))] == st["cutover"]["interruption_s"]


def _expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"]]
    exprs += [v["query"]["query"] for v in board["templating"]["list"]]
    return exprs


def test_every_dashboard_expression_returns_data(scraped) -> None:
    prom, run_dir, _, started = scraped
    has_sync = any('"sync_backlog"' in line for line in
                   (run_dir / "stages" / "prom" / "timeseries.jsonl").read_text().splitlines())
    empty, waiting = [], []
    for expr in _expressions():
        if expr.startswith("label_values("):  # a Grafana variable: the label's values must be there
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", expr).groups()
            got = bool(prom.value(f"count by ({label}) ({metric})"))
        else:
            query = expr.replace('"$stage"', '".*"').replace("$__rate_interval", "10s")
            got = any(s.get("values") for s in prom.api("query_range", query=query, start=started - 5,
                                                         end=time.time(), step="1s"))
        if not got and SYNC_ONLY.search(expr) and not has_sync:
            waiting.append(expr)  # this run has no second system: its link has nothing to show
        elif not got:
            empty.append(expr)
    # Those of `waiting` are the link's panels, on a run without a second system; with one, every panel counts.
    assert not empty, f"dashboard expressions without data: {empty}"


def test_otel_is_locusts_own_switch(tmp_path: Path) -> None:
    """``--otel`` sets the variable Locust's own parser reads for its ``--otel``; without the SDK, one line."""
    from rehearsal.run.locust_command import OTEL_ENV

    read = subprocess.run([sys.executable, "-c", "import locust.argument_parser as a; "
                           "print(a.parse_options(['-f', 'x.py']).otel)"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, OTEL_ENV: "true"})
    assert read.stdout.strip().splitlines()[-1] == "True", read.stdout + read.stderr
    if importlib.util.find_spec("opentelemetry") is not None:
        pytest.skip("the OpenTelemetry SDK is installed here: the refusal cannot be shown")
    plan = tmp_path / "prom.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--otel", "--reports-dir",
                          str(tmp_path / "reports")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 2 and "--otel needs Locust's OpenTelemetry packages" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "reports").exists() or \
        not any((tmp_path / "reports").iterdir())

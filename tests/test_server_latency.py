"""Both sides of every latency figure: the systems' own timings beside the harness's, per request type.

A real short run against two systems this test starts itself (national, hcmc
with the city's front door and its link), so that after the run their own
``GET /api/timings`` can still be read and set against ``summary.json``: every
request type has server figures, they are not above the client's for the same
requests, our own reading agrees with them, and the server gates judge them.
A second run goes to one portal behind a proxy that has no ``/api/timings``
(a real target's case): the server side is unknown, the stage still runs.
Matching and the generator's share are checked on rows made here, with real
HDR histograms. No timing asserts beyond "server ≤ client".
"""

from __future__ import annotations

import http.client
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hdrh.histogram import HdrHistogram

from conftest import start_portal, stop_portal
from rehearsal.plan import load_plan
from rehearsal.plan.gate_language import parse_gate
from rehearsal.report.page import build_report
from rehearsal.results.gates import GateData, evaluate
from rehearsal.results.latency import Tally, by_name, read_latency
from rehearsal.results.generator_share import harness_note, mark_generator
from rehearsal.results.server_latency import RouteMap, ServerLog, named_rows, read_server_latency, route_map
from rehearsal.run.runner import run_plan
from rehearsal.run.targets import resolve_target
from twosystems import start_systems

PLAN = """\
name: both-sides
target: {target}
time_scale: 120
seed: 5
stages:
  - name: s
    units: {{codes: [26506, 26536, 25747]}}
    duration: 20m
    grace: 10m
    citizens: {{users: 20, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}}
    officers: {{per_unit: 2, think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}}
    gates:
      - server_p95_ms <= 5000
      - server_p99_ms{{tag=officer}} over every 5m <= 5000
      - server_p50_ms{{name="POST /api/dossiers"}} <= 5000
      - p95_ms <= 5000
"""


def _run(tmp: Path, target_yaml: str, name: str) -> tuple[Path, dict[str, Any]]:
    (tmp / "targets.yaml").write_text(target_yaml, encoding="utf-8")
    (tmp / "plan.yaml").write_text(PLAN.format(target=name), encoding="utf-8")
    result = run_plan(load_plan(tmp / "plan.yaml"), resolve_target(name, path=tmp / "targets.yaml"),
                      reports_dir=tmp / "reports", progress=None)
    build_report(result.run_dir, lang="en")
    return result.run_dir, json.loads((result.run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def both_sides(tmp_path_factory: pytest.TempPathFactory):
    """(run dir, summary, {system: the /api/timings answer read after the run})."""
    tmp = tmp_path_factory.mktemp("both")
    systems = start_systems(tmp)
    urls = {"national": systems.national.base_url, "hcmc": systems.provincial.base_url, "city": systems.door.base_url}
    try:
        run_dir, summary = _run(tmp, f"""\
allowed_hosts: [127.0.0.1]
targets:
  mine:
    systems:
      national: {{url: {urls['national']}, adapter: national}}
      provincial: {{url: {urls['hcmc']}, adapter: onestop, name: hcmc}}
      city: {{url: {urls['city']}, adapter: city}}
""", "mine")
        ours = {}
        for name, url in urls.items():
            client = systems.national if name == "national" else systems.provincial if name == "hcmc" else systems.door
            status, ours[name] = client.call("GET", "/api/timings?since=0")
            assert status == 200
    finally:
        for p in (systems.provincial, systems.national):
            stop_portal(p)
    return run_dir, summary, ours


def test_every_request_type_has_its_server_figures_and_they_are_not_above_the_clients(both_sides) -> None:
    run_dir, summary, _ = both_sides
    stage = summary["stages"][0]
    server = stage["server_latency"]
    assert server["known"] is True and "accept queue" in server["covers"]
    assert set(server["systems"]) == {"national", "hcmc", "city"}
    assert stage["requests"] and server["unmatched_names"] == []  # every request type found its route
    assert "national GET /api/timings" in server["unmatched_routes"]  # our own pulls are not our users' requests
    for name, client in stage["requests"].items():
        mine = client["server"]
        assert mine == {k: server["by_name"][name][k] for k in ("p50_ms", "p95_ms", "p99_ms", "count")}
        assert stage["latency"]["requests"][name]["server"] == mine
        # The same requests: a request cut off as the stage stopped may reach the server and not the client.
        assert client["count"] <= mine["count"] <= client["count"] + 3, name
    # Each request's server span lies inside the client's, so (request by request) the server's k-th fastest is
    # not slower than the client's k-th fastest. The server may hold more (cut off at the stop, a redirect's
    # second hop), which only lowers its k-th; a client's failure may never have reached it: rank + failures.
    client_rows = read_latency(run_dir / "stages" / "s" / "latency.jsonl").rows
    clients = dict(by_name(client_rows))
    log = read_server_latency(run_dir / "stages" / "s" / "server_latency.jsonl")
    assert log is not None
    servers: dict[str, Tally] = {}
    for row in named_rows(log, route_map(log, client_rows)):
        for name in row["names"]:
            servers.setdefault(name, Tally()).add_row(row)
    compared = 0
    for name, client in clients.items():
        n = client.histogram.get_total_count()
        if n < 20:
            continue
        for p in (50.0, 95.0, 99.0):
            k = max(1, int(p / 100.0 * n + 0.5))  # the rank hdrh's get_value_at_percentile takes
            theirs = _at_rank(servers[name].histogram, k)
            ours = _at_rank(client.histogram, min(n, k + client.failures))
            assert theirs <= ours, (name, p, k, client.failures, theirs, ours)
            compared += 1
    assert compared >= 9  # at least three request types had twenty requests
    assert any(p["server_p95_ms"] is not None and p["client_p95_ms"] is not None for p in server["series"])
    g = server["generator"]
    assert g["gap_p95_ms"] == pytest.approx(g["client_p95_ms"] - g["server_p95_ms"], abs=1e-3)
    assert "data-kpi='server-latency'" in (run_dir / "index.en.html").read_text()


def _at_rank(histogram: HdrHistogram, k: int) -> int:
    """The k-th smallest value recorded (its bucket's highest equivalent, as hdrh's percentiles give)."""
    seen = 0
    for item in histogram.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        if seen >= k:
            return histogram.get_highest_equivalent_value(item.value_iterated_to)
    raise AssertionError(f"rank {k} of {histogram.get_total_count()}")


def test_our_own_reading_of_the_systems_agrees_with_the_summary(both_sides) -> None:
    run_dir, summary, ours = both_sides
    stage = summary["stages"][0]
    log = read_server_latency(run_dir / "stages" / "s" / "server_latency.jsonl")
    assert log is not None and log.start is not None and log.interval_s
    since = math.floor(log.start / log.interval_s) * log.interval_s
    for name, figures in stage["server_latency"]["by_name"].items():
        merged, count = HdrHistogram(1, 3_600_000_000, 3), 0
        for route in figures["routes"]:
            system, _, path = route.partition(" ")
            for interval in ours[system]["intervals"]:
                entry = interval["routes"].get(path)
                if interval["t0"] >= since and entry:
                    merged.add(HdrHistogram.decode(entry["hdr"]))
                    count += entry["count"]
        assert count == figures["count"], name
        for key, p in (("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0)):
            assert merged.get_value_at_percentile(p) / 1000.0 == figures[key], (name, key)


def test_the_server_gates_judge_the_systems_own_figures(both_sides) -> None:
    _, summary, _ = both_sides
    stage = summary["stages"][0]
    gates = {g["expr"]: g for g in stage["gates"]}
    whole = gates["server_p95_ms <= 5000"]
    assert whole["status"] == "passed" and whole["observed"] == stage["server_latency"]["generator"]["server_p95_ms"]
    officers = gates["server_p99_ms{tag=officer} over every 5m <= 5000"]
    assert officers["status"] == "passed" and officers["observed"] is not None
    assert officers["detail"].startswith("worst window")
    filing = gates['server_p50_ms{name="POST /api/dossiers"} <= 5000']
    assert filing["observed"] == stage["requests"]["POST /api/dossiers"]["server"]["p50_ms"]
    assert not whole.get("harness_ms") and not filing.get("harness_ms")  # the system's own figure: never marked


class _NoTimings(BaseHTTPRequestHandler):
    """A proxy in front of one portal that has no ``/api/timings`` (as a real system has none)."""

    upstream = ""

    def _forward(self) -> None:
        if self.path.startswith("/api/timings"):
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        up = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        conn.request(self.command, self.path, body=body,
                     headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")})
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, *_: Any) -> None:
        pass


def test_a_target_without_timings_says_the_server_side_is_unknown(tmp_path: Path) -> None:
    portal = start_portal(tmp_path / "portal", "--time-scale", "120")
    handler = type("Proxy", (_NoTimings,), {"upstream": portal.base_url})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        run_dir, summary = _run(tmp_path, f"allowed_hosts: [127.0.0.1]\ntargets:\n  behind:\n"
                                          f"    url: http://127.0.0.1:{proxy.server_address[1]}\n", "behind")
    finally:
        proxy.shutdown()
        stop_portal(portal)
    stage = summary["stages"][0]
    assert stage["verdict"] != "INCOMPLETE" and stage["requests"]  # never fatal: the stage ran
    server = stage["server_latency"]
    assert server["known"] is False and "HTTP 404" in server["unknown"] and server["by_name"] == {}
    assert all("server" not in r for r in stage["requests"].values())
    gate = next(g for g in stage["gates"] if g["expr"] == "server_p95_ms <= 5000")
    assert gate["observed"] is None and gate["detail"].startswith("server side unknown")
    assert "data-kpi='server-unknown'" in (run_dir / "index.en.html").read_text()


def test_request_names_match_routes_and_the_rest_is_listed() -> None:
    names = ["GET /api/procedures/[code]", "GET /api/procedures?q", "POST /api/officer/dossiers/[id]/receive",
             "GET brvt /api/officer/queue", "GET /api/officer/queue", "GET /nowhere/[x]"]
    routes = [("national", "GET /api/procedures/<code>"), ("national", "GET /api/procedures"),
              ("hcmc", "POST /api/officer/dossiers/<int:dossier_id>/receive"),
              ("hcmc", "POST /api/officer/dossiers/<int:dossier_id>/decide"),
              ("brvt", "GET /api/officer/queue"), ("hcmc", "GET /api/officer/queue"), ("national", "GET /api/stats")]
    found = RouteMap(names, routes)
    assert found.by_route[("national", "GET /api/procedures/<code>")] == ["GET /api/procedures/[code]"]
    assert found.by_route[("national", "GET /api/procedures")] == ["GET /api/procedures?q"]
    assert found.by_route[("brvt", "GET /api/officer/queue")] == ["GET brvt /api/officer/queue"]
    assert found.by_route[("hcmc", "GET /api/officer/queue")] == ["GET /api/officer/queue"]
    assert found.routes_of("POST /api/officer/dossiers/[id]/receive") == \
        ["hcmc POST /api/officer/dossiers/<int:dossier_id>/receive"]  # a literal action is not a parameter
    assert found.unmatched_names == ["GET /nowhere/[x]"]
    assert found.unmatched_routes == ["hcmc POST /api/officer/dossiers/<int:dossier_id>/decide",
                                      "national GET /api/stats"]


def _row(t: float, name: str, ms: list[float], **extra: Any) -> dict[str, Any]:
    h = HdrHistogram(1, 3_600_000_000, 3)
    for x in ms:
        h.record_value(int(x * 1000))
    return {"t0": t - 1, "t": t, "name": name, "tag": "citizen", "count": len(ms), "failures": 0,
            "hdr": h.encode().decode("ascii"), **extra}


def test_a_latency_gate_on_a_span_that_is_mostly_the_harnesss_own_is_marked(tmp_path: Path) -> None:
    start, name = 1_000.0, "GET /api/dossiers"
    client = [_row(start + i, name, [120.0] * 20 if i > 5 else [3.0] * 20) for i in range(1, 11)]
    server = [_row(start + i, "GET /api/dossiers", [1.0] * 20, system="national") for i in range(1, 11)]
    assert read_server_latency(tmp_path / "none.jsonl") is None  # a run from before server timings
    gates = [parse_gate(x) for x in ("p95_ms <= 1000", "p95_ms over every 5m <= 1000", "server_p95_ms <= 1000",
                                     "requests >= 1")]

    def judged(server_rows: list[dict[str, Any]]) -> dict[str, Any]:
        server_log = ServerLog(start=start, interval_s=1.0, rows=server_rows)
        rows = named_rows(server_log, route_map(server_log, client))
        data = GateData(time_scale=60.0, start=start, end=start + 10, latency_rows=client, server_rows=rows)
        return {r.expr: r for r in mark_generator(gates, evaluate(gates, data), data)}

    marked = judged(server)
    assert marked["p95_ms <= 1000"].harness_ms == pytest.approx(119.0, rel=0.01)
    assert "latency mostly the harness's own" in marked["p95_ms <= 1000"].detail
    assert marked["p95_ms <= 1000"].status == "passed"  # marked, not changed
    assert marked["p95_ms over every 5m <= 1000"].harness_ms  # its worst window (the second) is the harness's
    assert marked["server_p95_ms <= 1000"].harness_ms is None and marked["requests >= 1"].harness_ms is None
    # The same requests slow on the server too: the figure is the system's, nothing is said.
    slow = judged([_row(start + i, "GET /api/dossiers", [110.0] * 20, system="national") for i in range(1, 11)])
    assert slow["p95_ms <= 1000"].harness_ms is None
    stages = [{"name": "s", "server_latency": {"generator": {"over": True, "client_p95_ms": 120.0,
                                                             "server_p95_ms": 1.0}}}]
    assert harness_note(stages) == "latency mostly the harness's own: s client p95 120 ms, server 1 ms"


def test_the_reference_systems_timing_words_have_a_vietnamese_rendering() -> None:
    """The Vietnamese report says what the server's time covers in Vietnamese, not in the portal's English."""
    from rehearsal.portal.ops import TIMING_COVERS
    from rehearsal.report.server_side import COVERS_VI

    assert TIMING_COVERS in COVERS_VI and "accept" in COVERS_VI[TIMING_COVERS]

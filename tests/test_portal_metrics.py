"""The reference systems' ``/metrics`` read by Prometheus's own parser, and users spread over a system's listeners.

Real systems on loopback (`twosystems.start_systems`: a national portal
served by two processes on two ports, hcmc's provincial system with its
front door and link agent; a former province's system without a link):
after citizens file and an officer finishes a dossier, each system's
``/metrics`` is parsed with ``prometheus_client.parser`` and compared with
its ``/api/stats``, asked just before and just after (the link agent keeps
calling the national portal meanwhile: a route's count lies between the
two, and equals both where nothing else called it). Then a short real run
(``rehearse run --target-url``) against a portal with ``--listeners 2``:
established connections on each listening port, read from the kernel's
table during the run, show both ports took users.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import PortalClient, start_portal, stop_portal
from rehearsal.portal.live import PROM_BUCKETS
from rehearsal.results.metrics.collector import BUCKETS_S
from twosystems import U1, Systems, poll, start_former_province, start_systems

ROOT = Path(__file__).resolve().parent.parent
#: Routes that the test's own looks (and the link agent's polling) add calls to between two looks.
MOVING = ("GET /api/stats", "GET /metrics")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(portal: PortalClient) -> Samples:
    """The portal's ``/metrics`` through Prometheus's own parser: (name, labels) → value."""
    status, text = portal.call("GET", "/metrics")
    assert status == 200 and isinstance(text, str), text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def look(portal: PortalClient) -> tuple[dict[str, Any], Samples, dict[str, Any]]:
    """``/api/stats``, ``/metrics``, ``/api/stats`` again: the metrics bracketed by the two stats."""
    before = portal.call("GET", "/api/stats")[1]
    samples = scrape(portal)
    after = portal.call("GET", "/api/stats")[1]
    return before, samples, after


def assert_same_as_stats(portal: PortalClient, system: str) -> tuple[dict[str, Any], Samples]:
    """Every figure ``/api/stats`` gives, in ``/metrics`` under the ``system`` label; the stats and samples."""
    before, m, after = look(portal)
    s = {"system": system}
    assert before["sessions_by_role"] == after["sessions_by_role"]
    for role, n in before["sessions_by_role"].items():
        assert value(m, "portal_sessions_active", role=role, **s) == n, role
    assert value(m, "portal_sessions_window_seconds", **s) == before["window_s"]
    assert before["dossiers_by_status"] == after["dossiers_by_status"]
    assert {dict(k[1])["status"]: v for k, v in m.items() if k[0] == "portal_dossiers" and (("system", system)
                                                                                             in k[1])} == \
        {status: float(n) for status, n in before["dossiers_by_status"].items()}
    for unit, counts in before["dossiers_by_unit"].items():
        for state in ("submitted", "complete"):
            assert value(m, "portal_unit_dossiers", unit=unit, state=state, **s) == counts[state], (unit, state)
    for route, t in after["requests"].items():
        low = before["requests"].get(route, {"count": 0, "errors": 0})
        count = value(m, "portal_request_duration_seconds_count", endpoint=route, **s)
        if count is None and route in MOVING and low["count"] == 0:
            continue  # the look's own first call: timed once it has answered
        assert count is not None and low["count"] <= count <= t["count"], (route, low, count, t)
        if route not in MOVING and low["count"] == t["count"]:
            assert count == t["count"]  # nothing called it between the looks: exactly the stats' figure
        assert value(m, "portal_request_errors_total", endpoint=route, **s) in range(low["errors"], t["errors"] + 1)
        buckets = [value(m, "portal_request_duration_seconds_bucket", endpoint=route, le=str(le), **s)
                   for le in PROM_BUCKETS]
        inf = value(m, "portal_request_duration_seconds_bucket", endpoint=route, le="+Inf", **s)
        assert all(b is not None for b in buckets) and buckets == sorted(buckets) and buckets[-1] <= inf == count
        assert (value(m, "portal_request_duration_seconds_sum", endpoint=route, **s) or 0) > 0
    # Each process its own start (process 0 starts the others): seconds apart at most.
    assert abs(value(m, "portal_uptime_seconds", **s) - before["uptime_s"]) < 10
    return before, m


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("metrics")
    two = start_systems(tmp, national_args=("--processes", "2", "--listeners", "2"))
    brvt, brvt_door = start_former_province(tmp)
    two.extra.append(brvt)
    yield two, brvt, brvt_door
    two.stop()


def test_the_harness_and_the_portal_use_the_same_histogram_bounds() -> None:
    assert PROM_BUCKETS == BUCKETS_S and PROM_BUCKETS[0] == 0.005 and PROM_BUCKETS[-1] == 60.0


def test_each_system_says_in_metrics_what_it_says_in_stats(systems: tuple[Systems, PortalClient, PortalClient]
                                                          ) -> None:
    two, brvt, brvt_door = systems
    citizens = [two.national.citizen(f"07920000{i:04d}") for i in range(4)]
    filed = [two.file_on_national(c) for c in citizens[:3]]
    codes = [d["code"] for d in filed]
    rows = poll("the link delivers the dossiers", lambda: [two.on_provincial(c) for c in codes]
                if all(two.on_provincial(c) for c in codes) else None)
    officer = two.provincial.officer(U1)
    two.work_to_the_end(officer, rows[0]["id"])
    two.file_on_door(two.door, "079300000001")
    poll("the national portal shows the result", lambda: two.synced(codes[0], 10))

    def idle() -> bool:
        link = two.link()
        return link["outbox_pending"] == link["feed_behind"] == 0

    poll("the link is idle", idle)

    stats, m = assert_same_as_stats(two.national, "national")
    # Two processes: every filing counted once, whichever process took it and whichever answers.
    assert value(m, "portal_request_duration_seconds_count", endpoint="POST /api/dossiers", system="national") == 3
    assert value(m, "portal_sessions_active", role="citizen", system="national") == 4
    assert value(m, "portal_processes", system="national") == 2 and value(m, "portal_listeners", system="national") == 2
    assert value(m, "portal_feed_seq", system="national") == stats["feed_seq"] > 0
    assert not any(name.startswith("portal_link_") for name, _ in m)

    stats, m = assert_same_as_stats(two.provincial, "hcmc")
    link = stats["link"]
    assert value(m, "portal_sessions_active", role="officer", system="hcmc") == 1
    assert value(m, "portal_dossiers", status="10", system="hcmc") == 1
    for name, key in (("portal_link_outbox_pending", "outbox_pending"), ("portal_link_outbox_dead", "outbox_dead"),
                      ("portal_link_feed_behind", "feed_behind"), ("portal_link_outbox_acked_total", "outbox_acked"),
                      ("portal_link_pushes_failed_total", "pushes_failed"),
                      ("portal_link_agent_restarts_total", "agent_restarts")):
        assert value(m, name, system="hcmc") == link[key], name
    assert link["outbox_acked"] >= 4 and value(m, "portal_link_agent_alive", system="hcmc") == 1 == link["agent_alive"]
    assert value(m, "portal_link_outbox_oldest_seconds", system="hcmc") is not None
    assert "feed_seq" not in stats and value(m, "portal_feed_seq", system="hcmc") is None

    # hcmc's front door is the harness's "city"; it counts its own sessions and shows hcmc's dossiers.
    stats, m = assert_same_as_stats(two.door, "city")
    assert value(m, "portal_sessions_active", role="citizen", system="city") == 1
    assert value(m, "portal_request_duration_seconds_count", endpoint="POST /dichvucong/api/hoso", system="city") == 1
    assert not any(name.startswith("portal_link_") for name, _ in m)

    # A former province without a link: its outbox figures, nothing about an agent it does not run.
    assert_same_as_stats(brvt_door, "brvt")
    stats, m = assert_same_as_stats(brvt, "brvt")
    assert stats["link"]["configured"] is False and value(m, "portal_link_outbox_pending", system="brvt") == 0
    assert value(m, "portal_link_agent_alive", system="brvt") is None
    assert value(m, "portal_link_agent_restarts_total", system="brvt") is None


# -- users spread over a system's listeners ------------------------------------------------------------------

PLAN = """\
name: listeners
target: reference
time_scale: 120
seed: 3
stages:
  - name: listeners
    units: {codes: [26506, 26536]}
    duration: 10m
    grace: 2m
    citizens: {users: 8, spawn_rate: 50, think_time: [5s, 10s], follow_interval: 30s}
    officers: {think_time: [5s, 10s], poll_interval: 10s, sign_in_lead: 1m}
    gates:
      - {name: no lost dossiers, expr: lost_dossiers == 0}
"""


def established_on(ports: set[int]) -> dict[int, int]:
    """Established TCP connections whose local port is one of `ports` (the server's side), from the kernel."""
    found = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port, state = int(fields[1].rsplit(":", 1)[1], 16), fields[3]
            if state == "01" and port in found:  # 01: ESTABLISHED
                found[port] += 1
    return found


def test_users_spread_over_the_listeners_a_system_lists(tmp_path: Path) -> None:
    portal = start_portal(tmp_path, "--time-scale", "120", "--listeners", "2")
    try:
        health = portal.call("GET", "/api/health")[1]
        urls = health["urls"]
        assert len(urls) == 2 and urls[0] == portal.base_url
        ports = {int(u.rsplit(":", 1)[1]) for u in urls}
        plan = tmp_path / "listeners.yaml"
        plan.write_text(PLAN, encoding="utf-8")
        log = tmp_path / "run.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody reads a pipe while the run writes
            run = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--target-url",
                                    portal.base_url, "--reports-dir", str(tmp_path / "reports")], cwd=ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
        most = dict.fromkeys(ports, 0)
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:
            now = established_on(ports)
            most = {p: max(most[p], now[p]) for p in ports}
            time.sleep(0.2)
        if run.poll() is None:
            run.kill()
        run.wait()
        assert run.returncode == 0, log.read_text(errors="replace")[-3000:]
        # 8 citizens and 4 officers, user n on urls[n % 2]: both ports held several users' connections at once.
        assert all(n >= 3 for n in most.values()), most
        stats = portal.call("GET", "/api/stats")[1]
        assert stats["dossiers_total"] > 0 and all(t["errors"] == 0 for t in stats["requests"].values())
    finally:
        stop_portal(portal)


def test_a_system_listing_no_urls_or_not_its_own_keeps_its_url() -> None:
    """A list without the run's own URL (a proxy in front) or on another host is not followed."""
    program = """
import locust  # gevent patches the standard library first: this test process is no gevent program
from locustfiles.clients.listeners import listed_urls
url = "http://127.0.0.1:8000"
assert listed_urls(url, {"ok": True}) == [url]
assert listed_urls(url, {"urls": ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]}) == [url]
assert listed_urls(url, {"urls": [url, "http://10.0.0.9:8001", "http://127.0.0.1:8001/"]}) == \\
    [url, "http://127.0.0.1:8001"]
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

"""The portal's own latency per request type: HDR histograms per interval at ``GET /api/timings``.

A real portal on loopback (one process); the histograms are the harness's form
(microseconds, 3 significant digits, base64 as ``hdr.encode()`` writes it), so
they add to the harness's own. Counts and shapes, and one lower bound: a
request held half a second in a stopped portal's socket is timed at least
that long (a busy machine only makes it longer).
"""

from __future__ import annotations

import http.client
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hdrh.histogram import HdrHistogram

from conftest import start_portal, stop_portal


def test_timings_per_route_and_interval_match_the_calls_made(tmp_path: Path) -> None:
    p = start_portal(tmp_path, "--system", "national", "--time-scale", "60")
    try:
        status, health = p.call("GET", "/api/health")
        assert status == 200 and "urls" not in health  # one process, one URL: answered as always
        token = p.citizen()
        for _ in range(5):
            assert p.call("GET", "/api/dossiers", token=token)[0] == 200
        assert p.call("GET", "/api/dossiers/12345", token=token)[0] == 404
        status, body = p.call("GET", "/api/timings?since=0")
        assert status == 200
        assert body["interval_s"] == 1.0 and body["unit"] == "us" and body["processes"] == 1
        assert "accept queue" in body["covers"]
        merged, count = HdrHistogram(1, 3_600_000_000, 3), 0
        for interval in body["intervals"]:
            assert interval["t"] - interval["t0"] == body["interval_s"] and interval["t0"] % 1 == 0
            route = interval["routes"].get("GET /api/dossiers")
            if route:
                merged.add(HdrHistogram.decode(route["hdr"]))
                count += route["count"]
                assert route["errors"] == 0
        assert count == merged.get_total_count() == 5
        assert any("GET /api/dossiers/<int:dossier_id>" in i["routes"] or
                   any(r.startswith("GET /api/dossiers/<") for r in i["routes"]) for i in body["intervals"])
        _, stats = p.call("GET", "/api/stats")
        assert stats["requests"]["GET /api/dossiers"]["count"] == 5  # the same calls in /api/stats
        # since= leaves out the intervals before it; a bad since is a 400, never a 5xx
        last = body["intervals"][-1]["t0"]
        _, later = p.call("GET", f"/api/timings?since={int(last)}")
        assert [i["t0"] for i in later["intervals"]] and all(i["t0"] >= last for i in later["intervals"])
        assert p.call("GET", "/api/timings?since=yesterday")[0] == 400
    finally:
        stop_portal(p)


@pytest.mark.parametrize("connection", ["kept", "new"])
def test_a_request_is_timed_from_its_arrival_not_from_when_a_busy_portal_reads_it(connection: str,
                                                                                 tmp_path: Path) -> None:
    """The portal stopped (SIGSTOP) while a request arrives: its server time holds the wait (the kernel's stamp).

    On a connection kept from an earlier request (the wait in its socket), and
    on a new one (the wait in the accept queue, once its request is there).
    """
    p = start_portal(tmp_path, "--system", "national", "--time-scale", "60")
    try:
        token = p.citizen()
        url = urlsplit(p.base_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        if connection == "kept":
            conn.request("GET", "/api/dossiers", headers=headers)
            assert conn.getresponse().read()
        os.kill(p.proc.pid, signal.SIGSTOP)
        try:
            conn.request("GET", "/api/dossiers", headers=headers)  # in the portal's socket, nobody reading it
            time.sleep(0.5)
        finally:
            os.kill(p.proc.pid, signal.SIGCONT)
        answer = conn.getresponse()
        assert answer.status == 200 and answer.read()
        conn.close()
        _, body = p.call("GET", "/api/timings?since=0")
        assert "arrival" in body["covers"]
        merged = HdrHistogram(1, 3_600_000_000, 3)
        for interval in body["intervals"]:
            route = interval["routes"].get("GET /api/dossiers")
            if route:
                merged.add(HdrHistogram.decode(route["hdr"]))
        assert merged.get_total_count() == (2 if connection == "kept" else 1)
        assert merged.get_max_value() >= 450_000  # µs: the half second it waited to be read is the portal's time
    finally:
        stop_portal(p)

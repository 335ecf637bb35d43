"""The report and the live view, as a person sees them: headless Chromium, two widths, real data.

One real run (six units, a fault and its markers, Locust's web UI on) feeds
every test here. While it runs, the live page and Locust's extra tabs are
read; after it, the report is built in Vietnamese and English. Screenshots
are kept in the run directory (``screenshots/``) for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ensure_system_package, free_port

from rehearsal.report.page import build_report
from rehearsal.results.completion import interval_text
from rehearsal.shared.formats import percent

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
PLAN = """\
name: dash
target: reference
time_scale: 120
seed: 11
stages:
  - name: dash
    units: {codes: [26506, 26536, 25747, 26737, 27676, 26732]}
    duration: 30m
    grace: 20m
    citizens: {users: 30, spawn_rate: 50, think_time: [30s, 1m], follow_interval: 1m}
    officers: {think_time: [10s, 30s], poll_interval: 30s, sign_in_lead: 1m}
    faults:
      - {name: chậm biểu mẫu, kind: latency, at: 10m, for: 10m, endpoints: ["GET /api/procedures/<code>"], delay: 100ms}
    gates: [completion_rate >= 90%, lost_dossiers == 0]
"""


def chromium(*args: str, timeout: float = 90) -> str:
    binary = ensure_system_package("chromium", "chromium")
    proc = subprocess.run([binary, *CHROMIUM_FLAGS, *args], capture_output=True, text=True, timeout=timeout)
    return proc.stdout


# Headless Chromium will not lay a window out narrower than 500 px, so a phone is a 390 px wide
# iframe: its viewport is then 390 px for media queries and layout, as on a phone.
PHONE = 390


class _Wrappers:
    """Serves the frame pages of http:// pages from 127.0.0.1 itself (a folder of their own), started on first use.

    A file:// page framing an http:// one puts the frame in another renderer,
    whose painting Chromium's virtual time does not wait for: on a busy
    machine the shot came out blank (8,213 bytes, every try). Framed from the
    same site, the frame is drawn in the page's own renderer before the shot.
    """

    folder: Path | None = None
    port = 0

    @classmethod
    def write(cls, name: str, html: str) -> str:
        """Write the frame page `name` and return its http:// URL."""
        if cls.folder is None:
            cls.folder = Path(tempfile.mkdtemp(prefix="frames-"))
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(_QuietFiles, directory=str(cls.folder)))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            cls.port = server.server_address[1]
        (cls.folder / name).write_text(html, encoding="utf-8")
        return f"http://127.0.0.1:{cls.port}/{name}"


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


def _framed(url: str, width: int, height: int, where: Path, probe: bool = False) -> str:
    """The URL of a page holding `url` in a `width`-wide iframe: file:// in `where` for a file, else http://."""
    script = ("<script>onload=()=>{const d=document.querySelector('iframe').contentDocument;"
              "document.title='W'+d.documentElement.scrollWidth}</script>") if probe else ""
    name = f".frame-{width}-{abs(hash(url))}.html"
    html = (f"<html><body style='margin:0'><iframe src='{url}' width='{width}' height='{height}' "
            f"style='border:0'></iframe>{script}</body></html>")
    if not url.startswith("file:"):
        return _Wrappers.write(name, html)
    (where / name).write_text(html, encoding="utf-8")
    return (where / name).as_uri()


def screenshot(url: str, out: Path, width: int, height: int = 2400) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    target = url
    if width < 500:
        target = _framed(url, width, height, out.parent)
    # On a busy machine (the suite runs two files at once) a page may not have painted within the
    # budget: try again with more time before calling the page blank.
    for budget in (5000, 10000, 20000):
        out.unlink(missing_ok=True)
        chromium(f"--user-data-dir={out.parent / '.chromium'}", f"--window-size={max(width, 500)},{height}",
                 "--allow-file-access-from-files", f"--virtual-time-budget={budget}", f"--screenshot={out}", target)
        if out.exists() and out.stat().st_size > 10_000:
            break
    assert out.exists() and out.stat().st_size > 10_000, f"no screenshot of {url}"
    return out


def dom(url: str, width: int, user_dir: Path) -> str:
    return chromium(f"--user-data-dir={user_dir}", f"--window-size={width},900", "--virtual-time-budget=5000",
                    "--dump-dom", url)


def page_width(html_file: Path, width: int, user_dir: Path) -> int:
    """The page's scroll width in Chromium in a `width`-wide viewport (wider: it scrolls sideways)."""
    url = _framed(html_file.as_uri(), width, 900, html_file.parent, probe=True)
    text = chromium(f"--user-data-dir={user_dir}", "--window-size=1000,1000", "--allow-file-access-from-files",
                    "--virtual-time-budget=5000", "--dump-dom", url)
    Path(urllib.request.url2pathname(url.removeprefix("file://"))).unlink()
    match = re.search(r"<title>W(\d+)</title>", text)
    assert match, text[:500]
    return int(match.group(1))


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real run, watched while it runs; what was seen, and the run directory."""
    tmp = tmp_path_factory.mktemp("dash")
    ensure_system_package("chromium", "chromium")
    plan = tmp / "dash.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    reports = tmp / "reports"
    web_port, dash_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "run", str(plan), "--reports-dir", str(reports),
                             "--web-ui", str(web_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    seen: dict = {}
    dash = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (reports.exists() and any(reports.iterdir())):
            time.sleep(0.3)
        run_dir = next(reports.iterdir())
        dash = subprocess.Popen([sys.executable, "-m", "rehearsal.cli", "dashboard", str(run_dir), "--port",
                                 str(dash_port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        while time.monotonic() < deadline:  # until dossiers are being filed
            try:
                live = _get(f"http://127.0.0.1:{dash_port}/api/live")
                if live["current"] and live["current"]["submitted"] >= 20:
                    seen["live"] = live
                    break
            except OSError:
                pass
            time.sleep(0.5)
        seen["live_dom"] = dom(f"http://127.0.0.1:{dash_port}/", 1366, tmp / ".chromium-live")
        screenshot(f"http://127.0.0.1:{dash_port}/", run_dir / "screenshots" / "live-during-1366.png", 1366, 1600)
        seen["locust_stats"] = _get(f"http://127.0.0.1:{web_port}/stats/requests")
        screenshot(f"http://127.0.0.1:{web_port}/?tab=rehearsal", run_dir / "screenshots" / "locust-tab-1366.png",
                   1366, 900)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        seen["after"] = _get(f"http://127.0.0.1:{dash_port}/api/live")
        seen["after_dom"] = dom(f"http://127.0.0.1:{dash_port}/", 390, tmp / ".chromium-live")
        screenshot(f"http://127.0.0.1:{dash_port}/", run_dir / "screenshots" / "live-after-390.png", PHONE, 2400)
    finally:
        if proc.poll() is None:
            proc.kill()
        if dash is not None:
            dash.terminate()
            dash.wait(10)
    seen["run_dir"] = run_dir
    seen["summary"] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    seen["tmp"] = tmp
    return seen


def test_report_in_chromium_at_both_widths(run: dict) -> None:
    run_dir, summary = run["run_dir"], run["summary"]
    report = build_report(run_dir)
    html = report.read_text(encoding="utf-8")
    stage = summary["stages"][0]
    # The numbers on the page are summary.json's.
    tile = re.search(r"data-kpi='completion_rate'><div class='k'>[^<]*</div><b>([^<]*)</b>", html)
    assert tile and tile.group(1) == percent(stage["completion_rate"])
    assert f"{stage['dossiers']['submitted']:,} · {stage['dossiers']['complete']:,}" in html
    assert f"{stage['sessions']['peak_harness']:,} · {stage['sessions']['peak_portal']:,}" in html
    # The charts, all 168 units, Vietnamese, the fault's marker.
    assert html.count("src='data:image/png;base64,") >= 6
    assert len(re.findall(r"data-unit='\d+'", html)) == 168
    for text in ("Tỷ lệ hồ sơ hoàn thành", "Đơn vị chậm nhất", "Phễu hồ sơ", "Bà Rịa – Vũng Tàu cũ", "chậm biểu mẫu"):
        assert text in html, text
    assert "http://" not in html.replace("http://www.w3.org", "") and "<link" not in html  # self-contained
    shots = run_dir / "screenshots"
    for width in (1366, PHONE):
        screenshot(report.as_uri(), shots / f"report-{width}.png", width)
        assert page_width(report, width, run["tmp"] / ".chromium") <= width, f"the page scrolls sideways at {width}"


def test_report_in_english(run: dict) -> None:
    report = build_report(run["run_dir"], lang="en")
    assert report.name == "index.en.html"
    html = report.read_text(encoding="utf-8")
    assert "<html lang='en'>" in html and "Completion rate" in html and "Worst units first" in html
    assert "Tỷ lệ hồ sơ hoàn thành" not in html
    screenshot(report.as_uri(), run["run_dir"] / "screenshots" / "report-en-390.png", PHONE)


def test_live_view_during_the_run_and_after(run: dict) -> None:
    live = run["live"]
    assert live["verdict"] == "RUNNING" and live["current"]["live"] and live["current"]["submitted"] >= 20
    assert "RUNNING" in run["live_dom"] and len(re.findall(r"data-unit=\"\d+\"", run["live_dom"])) == 168
    after, stage = run["after"], run["summary"]["stages"][0]
    assert after["verdict"] == run["summary"]["verdict"] and not after["current"]["live"]
    # After the run the live page shows the reconciled figures of summary.json.
    assert after["current"]["completion_rate"] == stage["completion_rate"]
    assert f">{percent(stage['completion_rate'])}<" in run["after_dom"]
    assert "Tỷ lệ hồ sơ hoàn thành" in run["after_dom"]
    # With its 95 % interval, as the report writes it, live and after.
    ci = interval_text(stage["completion_rate_lower"], stage["completion_rate_upper"])
    assert after["current"]["ci"] == ci and f"KTC 95 % {ci}" in run["after_dom"]
    assert live["current"]["ci"] and "KTC 95 % " in run["live_dom"]


def test_locust_web_ui_has_the_rehearsal_tabs(run: dict) -> None:
    extended = {x["key"]: x["data"] for x in run["locust_stats"]["extended_stats"]}
    assert {"rehearsal", "units"} <= set(extended)
    metrics = {row["metric"]: row["value"] for row in extended["rehearsal"]}
    assert metrics["stage"] == "dash" and metrics["completion rate"] != "–"
    assert len(extended["units"]) == 6

"""The allowed list holds wherever requests leave: one strict reader of addresses, and refusals before any request.

Hostile and ambiguous URLs go through `rehearse run --target-url` and
``--national-url``, the master addresses of `rehearse worker --master` and
``--master-bind``, and plain ``locust -f locustfiles/locustfile.py`` (on its
own, and as a worker that learns its host from a master). "Before any
request" is shown by running them in an empty network namespace, where not
even loopback is up: what comes out must be the refusal, not a connection
error (a control run with an allowed URL there gets the connection error).
A portal cannot send users elsewhere: a cutover's ``X-Portal-Moved`` to a host
off the list is not followed, and a redirect to one is never connected to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import start_portal, stop_portal

from rehearsal.errors import TargetError
from rehearsal.run.targets import check_url
from rehearsal.shared.net import UrlError, parse_address

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = ("127.0.0.1", "::1", "localhost")
PLAN = """\
name: fence
target: local
time_scale: 120
stages:
  - name: fence
    units: {codes: [26506, 26536]}
    duration: 5m
    grace: 1m
    citizens: {users: 6, spawn_rate: 50, think_time: [5s, 10s], follow_interval: 30s}
    officers: {think_time: [5s, 10s], poll_interval: 10s, sign_in_lead: 1m}
"""

#: Each refused by the one parser, or by the allowed list, before anything is sent.
HOSTILE_URLS = [
    "http://192.0.2.10:8000",  # simply not allowed
    "http://192.0.2.10\\@127.0.0.1:8000/",  # urlsplit reads 127.0.0.1, urllib connects to 192.0.2.10\
    "http://127.0.0.1:8000\\@192.0.2.10/",
    "http://user:secret@127.0.0.1:8000",
    "http://127.0.0.1:8000@192.0.2.10",
    "http://127.0.0.1%2f@192.0.2.10",
    "http://127.0.0.1%00.example:8000",
    "http://127.1:8000",  # numeric spellings the C resolver reads as 127.0.0.1 (or elsewhere)
    "http://2130706433:8000",
    "http://0x7f000001:8000",
    "http://0x7f.0.0.1:8000",
    "http://0177.0.0.1:8000",
    "http://127.0.0.01:8000",
    "http://0.0.0.0:8000",
    "http://[::ffff:192.0.2.10]:8000",
    "http://[::1%25lo]:8000",
    "http://[::1:8000",
    "http://ｌocalhost:8000",  # full-width l
    "http://locаlhost:8000",  # Cyrillic a
    "http://127.0.0.1 :8000",
    " http://127.0.0.1:8000",
    "http://127.0.0.1:8000\t",
    "http://127.0.0.1\n:8000",
    "http://127.0.0.1:8000/api",  # a base URL has no path, query or fragment
    "http://127.0.0.1:8000/?x=1",
    "http://127.0.0.1:8000#frag",
    "http://127.0.0.1:0",
    "http://127.0.0.1:65536",
    "http://127.0.0.1:-1",
    "http://localhost.:8000",
    "http://:8000",
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/",
    "//127.0.0.1:8000",
    "http:/127.0.0.1:8000",
    "127.0.0.1:8000",
    "",
]
#: One of each kind, for the slower paths (a Locust process each).
SAMPLE = [HOSTILE_URLS[i] for i in (0, 1, 3, 7, 9, 15, 17, 19, 23, 31)]
HOSTILE_ADDRESSES = ["a b", "1.2.3.4:99999", "127.0.0.1:0", "[::1", "127.0.0.1:5557/x", "user@127.0.0.1:5557",
                     "http://127.0.0.1:5557", "::1:5557", "127.1:5557", "0x7f.1:5557", "127.0.0.1\\@h:5557",
                     "ｌocalhost:5557", "127.0.0.1:5557\n"]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_the_one_parser_refuses_every_hostile_url(url: str) -> None:
    with pytest.raises(TargetError, match="refusing"):
        check_url(url, ALLOWED)


@pytest.mark.parametrize("text", HOSTILE_ADDRESSES)
def test_the_same_reader_refuses_hostile_master_addresses(text: str) -> None:
    with pytest.raises(UrlError):
        parse_address(text, default_port=5557)


def test_master_addresses_are_read_like_urls() -> None:
    assert parse_address("0.0.0.0:5557") == ("0.0.0.0", 5557)
    assert parse_address("[::]:5557") == ("::", 5557)
    assert parse_address("Machine-A", default_port=5557) == ("machine-a", 5557)


class Namespace:
    """A network namespace of this test run: no interface up (empty), or only loopback."""

    def __init__(self, name: str, *, loopback: bool) -> None:
        self.ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin")
        if self.ip is None or os.geteuid() != 0:
            pytest.skip("making a network namespace needs root and iproute2's 'ip'")
        self.name = name
        made = subprocess.run([self.ip, "netns", "add", name], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
        if loopback:
            subprocess.run([self.ip, "netns", "exec", name, self.ip, "link", "set", "lo", "up"], check=True)

    def argv(self, *argv: str) -> list[str]:
        return [str(self.ip), "netns", "exec", self.name, *argv]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout, cwd=ROOT)

    def delete(self) -> None:
        subprocess.run([str(self.ip), "netns", "del", self.name], capture_output=True)


@pytest.fixture(scope="module")
def empty_ns() -> Iterator[Namespace]:
    ns = Namespace(f"rehearsal-empty-{os.getpid()}", loopback=False)
    yield ns
    ns.delete()


@pytest.fixture(scope="module")
def loopback_ns() -> Iterator[Namespace]:
    ns = Namespace(f"rehearsal-lo-{os.getpid()}", loopback=True)
    yield ns
    ns.delete()


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fence") / "fence.yaml"
    path.write_text(PLAN, encoding="utf-8")
    return path


def _one_refusal(proc: subprocess.CompletedProcess[str] | dict[str, Any], prefix: str) -> str:
    """The one line the refusal printed (Locust's own log lines, which start with '[', aside)."""
    code, out, err = ((proc.returncode, proc.stdout, proc.stderr) if isinstance(proc, subprocess.CompletedProcess)
                      else (proc["code"], proc["stdout"], proc["stderr"]))
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    assert "Traceback" not in err
    for connection_error in ("unreachable", "never answered", "Connection refused", "Errno"):
        assert connection_error not in err, err
    return lines[0]


def _rehearse(*argv: str) -> list[str]:
    return [sys.executable, "-m", "rehearsal.cli", *argv]


def _locust(plan: Path, *argv: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", "locustfiles/locustfile.py", "--headless", "--plan", str(plan),
            "--loglevel", "WARNING", *argv]


#: Runs `rehearse` command lines one after the other in one process (the CLI's own `main`, as the
#: console script calls it): the whole table costs one interpreter start, not one per line.
DRIVER = """
import contextlib, io, json, sys
from rehearsal.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def _command_lines(plan: Path, reports: Path) -> list[list[str]]:
    run = ["run", str(plan), "--reports-dir", str(reports)]
    local = [*run, "--target-url", "http://127.0.0.1:8000"]
    return ([[*run, "--target-url", url] for url in HOSTILE_URLS]
            + [[*local, "--national-url", url] for url in SAMPLE]
            + [["worker", str(plan), "--master", address] for address in HOSTILE_ADDRESSES]
            + [[*local, "--master-bind", address] for address in HOSTILE_ADDRESSES])


@pytest.fixture(scope="module")
def refusals(empty_ns: Namespace, plan: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Any]:
    """What each hostile `rehearse` command line printed and returned, inside the empty namespace."""
    reports = tmp_path_factory.mktemp("reports")
    lines = _command_lines(plan, reports)
    proc = empty_ns.run(sys.executable, "-c", DRIVER, json.dumps(lines), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not any(reports.iterdir())  # no run directory was made: nothing was started
    return {tuple(argv): result for argv, result in zip(lines, json.loads(proc.stdout))}


def test_the_namespace_is_empty_an_allowed_url_gets_a_connection_error(empty_ns: Namespace, plan: Path,
                                                                       tmp_path: Path) -> None:
    """The control: in the empty namespace an allowed target is tried, and nothing answers."""
    proc = empty_ns.run(*_rehearse("run", str(plan), "--target-url", "http://127.0.0.1:8000", "--reports-dir",
                                   str(tmp_path)))
    assert proc.returncode == 2 and "the target never answered" in proc.stderr.splitlines()[-1], proc.stderr
    assert "unreachable" in proc.stderr.lower() or "cannot assign" in proc.stderr.lower(), proc.stderr


def _result(refusals: dict[tuple[str, ...], Any], *tail: str) -> dict[str, Any]:
    return next(result for argv, result in refusals.items() if argv[-len(tail):] == tail)


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_rehearse_run_refuses_before_any_request(refusals: dict[tuple[str, ...], Any], url: str) -> None:
    result = _result(refusals, "--target-url", url)
    assert "refusing" in _one_refusal(result, "rehearse: error:") and result["stdout"] == ""


@pytest.mark.parametrize("url", SAMPLE)
def test_rehearse_run_refuses_a_hostile_national_url(refusals: dict[tuple[str, ...], Any], url: str) -> None:
    assert "refusing" in _one_refusal(_result(refusals, "--national-url", url), "rehearse: error:")


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_master_addresses_are_refused_in_one_line(refusals: dict[tuple[str, ...], Any], address: str) -> None:
    assert _one_refusal(_result(refusals, "--master", address), "rehearse: error: --master ")
    assert _one_refusal(_result(refusals, "--master-bind", address), "rehearse: error: --master-bind ")


@pytest.mark.parametrize("url", SAMPLE)
def test_plain_locust_refuses_a_hostile_host_before_any_request(empty_ns: Namespace, plan: Path, url: str) -> None:
    proc = empty_ns.run(*_locust(plan, "--host", url))
    assert "refusing" in _one_refusal(proc, "locustfile: error:")


def test_plain_locust_refuses_a_hostile_national_url_and_an_unconfirmed_host(empty_ns: Namespace,
                                                                           plan: Path) -> None:
    proc = empty_ns.run(*_locust(plan, "--host", "http://127.0.0.1:8000", "--national-url",
                                 "http://192.0.2.10\\@127.0.0.1:8001"))
    assert "--national-url" in _one_refusal(proc, "locustfile: error:")
    # The README's example, on a host that is not loopback: refused, whatever is on the command line after it.
    proc = empty_ns.run(*_locust(plan, "--host", "http://192.0.2.10:8000", "--confirm-target", "192.0.2.10"))
    assert "not in allowed_hosts" in _one_refusal(proc, "locustfile: error:")


def test_a_worker_refuses_the_host_its_master_sends(loopback_ns: Namespace, plan: Path, tmp_path: Path) -> None:
    """Any Locust master can be started with any --host: a worker checks what it is sent."""
    master_file = tmp_path / "master.py"
    master_file.write_text(
        "from locust import User, events, task\n\n"
        "@events.init_command_line_parser.add_listener\n"
        "def _arguments(parser):\n"
        "    parser.add_argument('--plan', default='')\n\n"
        "class OfficerUser(User):\n"
        "    @task\n"
        "    def idle(self):\n"
        "        pass\n\n"
        "class CitizenUser(OfficerUser):\n"
        "    pass\n", encoding="utf-8")
    master = subprocess.Popen(loopback_ns.argv(
        sys.executable, "-m", "locust", "-f", str(master_file), "--master", "--master-bind-host", "127.0.0.1",
        "--master-bind-port", "5557", "--headless", "--expect-workers", "1", "-u", "1", "-r", "1", "-t", "30s",
        "--host", "http://192.0.2.10:8000", "--plan", str(plan)), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # the master binds before the worker's first try; a worker retries anyway
        worker = loopback_ns.run(sys.executable, "-m", "locust", "-f", "locustfiles/locustfile.py", "--worker",
                                 "--master-host", "127.0.0.1", "--master-port", "5557", "--plan", str(plan),
                                 "--loglevel", "WARNING")
    finally:
        master.kill()
        master.wait(10)
    line = _one_refusal(worker, "locustfile: error:")
    assert "'192.0.2.10' (the master's host) is not in allowed_hosts" in line


@pytest.mark.parametrize("mode", ["503", "redirect"])
def test_users_do_not_follow_a_portal_that_moves_them_off_the_list(mode: str, plan: Path, tmp_path: Path) -> None:
    portal = start_portal(tmp_path / "portal", "--time-scale", "120")
    try:
        status, body = portal.call("POST", "/api/admin/close", {"mode": mode, "moved_to": "http://192.0.2.10:8000"})
        assert status == 200, body
        proc = subprocess.run(_locust(plan, "--host", portal.base_url, "--run-dir", str(tmp_path / "run")),
                              capture_output=True, text=True, timeout=90, cwd=ROOT)
    finally:
        stop_portal(portal)
    assert "locustfile: error" not in proc.stderr  # the portal's own (loopback) address was admitted
    events = [json.loads(line) for line in (tmp_path / "run" / "ledger" / "fence.jsonl").read_text().splitlines()]
    kinds = {e["kind"] for e in events}
    assert "portal_move_refused" in kinds and "portal_moved" not in kinds, kinds
    refused = next(e for e in events if e["kind"] == "portal_move_refused")
    assert refused["portal"] == "http://192.0.2.10:8000" and "not in allowed_hosts" in refused["error"]
    # Every request went to the closed portal and got its answer: none was tried elsewhere (status 0).
    failed = [e for e in events if e["kind"] == "request_failed"]
    assert all(e["status"] == (503 if mode == "503" else 308) for e in failed), failed
    assert failed or mode == "redirect"


def test_a_redirect_off_the_list_is_never_connected_to(tmp_path: Path) -> None:
    """The last door: a hop (or a URL a portal names) to a host off the list gets no connection."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    followed, not_followed, named, allowed = proc.stdout.splitlines()
    assert followed.startswith("HostRefused host '192.0.2.10'") and "not sent" in followed
    assert not_followed == "302"
    assert named.startswith("HostRefused host '192.0.2.10'")
    assert allowed.startswith("ConnectionRefusedError")  # loopback is tried (and nothing listens on port 9)


PROBE = '''
import locust  # noqa: F401

import http.server
import threading
from types import SimpleNamespace

from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from locustfiles.fence import Fence, install


class Hostile(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", "http://192.0.2.10:8000/pay/1/callback")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = Environment()
env.parsed_options = SimpleNamespace(confirm_target="")
install(Fence(env))
base = f"http://127.0.0.1:{server.server_port}"
session = FastHttpSession(base, env.events.request, None)
for url, follow in ((base + "/pay/1", True), (base + "/pay/1", False), ("http://192.0.2.10:8000/pay/1", False),
                    ("http://127.0.0.1:9/", False)):
    r = session.request("GET", url, allow_redirects=follow)
    error = getattr(r, "error", None)
    print(f"{type(error).__name__} {error}" if error else r.status_code)
'''

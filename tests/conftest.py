"""Shared fixtures: a real reference portal on an ephemeral loopback port.

The portal runs in its own process (it is a gevent program; the tests are
not), on a real SQLite file under the test's tmp directory, started the way
the harness starts its own (`rehearsal.run.portals.PortalProcess`: it polls
``/api/health`` until the portal answers rather than sleeping).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from urllib3 import encode_multipart_formdata

from rehearsal.errors import RunError
from rehearsal.run.portals import PortalProcess


@dataclass
class PortalClient:
    """A tiny JSON client for one running portal."""

    base_url: str
    db_path: Path
    proc: subprocess.Popen[bytes]
    port_file: Path
    args: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
             files: list[tuple[str, Any]] | None = None, headers: dict[str, str] | None = None,
             timeout: float = 10.0) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        data = None
        if files is not None:
            data, hdrs["Content-Type"] = encode_multipart_formdata(files)
        elif body is not None:
            data, hdrs["Content-Type"] = json.dumps(body).encode(), "application/json"
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def citizen(self, id_number: str = "079123456789") -> str:
        _, otp = self.call("POST", "/api/auth/vneid/otp", {"id_number": id_number})
        status, body = self.call("POST", "/api/auth/vneid/verify",
                                 {"otp_request_id": otp["otp_request_id"], "otp": otp["otp"]})
        assert status == 200, body
        return body["token"]

    def officer(self, unit: int, number: int = 1) -> str:
        status, body = self.call("POST", "/api/auth/officer", {"username": f"cb{unit}-{number}",
                                                               "password": "rehearsal"})
        assert status == 200, body
        return body["token"]


def start_portal(tmp: Path, *extra: str, db: Path | None = None, timeout: float = 30.0) -> PortalClient:
    """Start `python -m rehearsal.portal` on port 0 and wait until it answers (the harness's own way)."""
    # A name of its own each time: a test may start a second portal (or the same one again) in one folder.
    portal = PortalProcess(tmp, *extra, name=f"portal-{time.monotonic_ns()}", db=db or tmp / "portal.sqlite")
    try:
        url = portal.start(timeout)
    except RunError as exc:
        pytest.fail(f"{exc}:\n{portal.log_path.read_text(errors='replace')[-2000:]}")
    assert portal.proc is not None
    return PortalClient(url, portal.db, portal.proc, portal.port_file, portal.argv)


def stop_portal(portal: PortalClient, sig: int = signal.SIGTERM) -> None:
    if portal.proc.poll() is None:
        os.kill(portal.proc.pid, sig)
        portal.proc.wait(15)


@pytest.fixture
def portal(tmp_path: Path):
    """A fresh reference portal; time compressed 3600× so the second agency answers in 0.17 s."""
    p = start_portal(tmp_path, "--time-scale", "3600")
    yield p
    stop_portal(p)


@pytest.fixture(scope="module")
def refusing_portal(tmp_path_factory: pytest.TempPathFactory):
    """One portal for a module's refused-input cases: a refusal changes nothing, so the cases need no fresh one."""
    p = start_portal(tmp_path_factory.mktemp("refusing"), "--time-scale", "3600")
    yield p
    stop_portal(p)


@pytest.fixture
def multipart():
    """Build the multipart fields of a dossier submission."""
    def build(procedure: str, unit: int, form: dict[str, Any], files: dict[str, bytes],
              client_ref: str | None = None) -> list[tuple[str, Any]]:
        fields: list[tuple[str, Any]] = [("procedure_code", procedure), ("unit_code", str(unit)),
                                         ("form", json.dumps(form, ensure_ascii=False))]
        if client_ref:
            fields.append(("client_ref", client_ref))
        fields += [(name, (f"{name}.pdf", content, "application/pdf")) for name, content in files.items()]
        return fields
    return build


def ensure_system_package(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` first if it is missing (the test set-up's job).

    CI runs in a fresh machine where only Python is there; the README's test
    command must still find nginx and chromium, so the tests that need them
    install them (as root, with apt-get) the first time. A machine where that
    cannot be done fails the test with the reason: never a silent skip.
    """
    import shutil

    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{binary} is needed and not installed; install Debian's {package} (apt-get install {package})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(cmd, capture_output=True, env=env, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=900)
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"apt-get install {package} failed: {result.stderr[-500:]}")
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if not found:
        pytest.fail(f"{package} installed but {binary} is not on the PATH")
    return found


def sigint_ignored() -> None:
    """Popen's preexec_fn: start as ``cmd &`` in a script does, with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_filing(reports: Path, stage: str, count: int, run: subprocess.Popen[Any], timeout: float = 90.0) -> Path:
    """The run directory under `reports` once its ledger holds `count` dossiers filed in `stage`.

    For a test that does something to a run mid-stage: the stage is under
    way when its users file, however long this machine took to start it (a
    fixed sleep is a guess that a busy machine proves wrong). Fails if the run
    ends or the time runs out first.
    """
    from rehearsal.results.ledger import read_events

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sorted(reports.iterdir()) if reports.exists() else []
        ledger = runs[-1] / "ledger" / f"{stage}.jsonl" if runs else None
        if ledger is not None and ledger.exists() and \
                sum(e["kind"] == "submitted" for e in read_events(ledger)) >= count:
            return runs[-1]
        if run.poll() is not None:
            pytest.fail(f"the run ended before {count} dossiers were filed: {run.communicate()}")
        time.sleep(0.2)
    pytest.fail(f"no {count} dossiers filed in {stage!r} within {timeout:.0f} s")


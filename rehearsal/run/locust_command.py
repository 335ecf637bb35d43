"""The command lines of a stage's Locust processes: the one builder for the single process, the master and workers.

Every process of a stage runs the one locustfile with the plan, the stage
and the time scale. The process that writes (a single local process, or the
master) is also told the run's systems (``--systems``: ``systems.json``),
the run directory, the target's accounts files, the names of the
variables holding secrets, and where Locust's CSVs and log go. A worker is told only where its master is: whatever else it
needs, the master sends it in every spawn message (Locust passes the
master's parsed options on to its workers before their test_start), so a
worker that the runner starts here and one that ``rehearse worker`` starts on
another machine are the same command and learn the same things: the portal,
their rank among the workers and how many there are (`locustfiles.locustfile`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from .. import LOCUSTFILES_DIR
from ..errors import RunError
from ..plan import Plan
from .targets import Target

LOCUSTFILE = LOCUSTFILES_DIR / "locustfile.py"
#: Locust's own variable for its ``--otel`` switch (Locust ≥ 2.42), read by every Locust process it reaches.
OTEL_ENV = "LOCUST_ENABLE_OPENTELEMETRY"


def otel_env() -> dict[str, str]:
    """The environment that turns on Locust's own OpenTelemetry (``--otel``) in every process of a stage.

    Through the environment rather than a flag, so the single process, the
    master and the local workers all get it alike. `RunError` before any load
    if this Locust has no ``--otel`` or its OpenTelemetry SDK is missing
    (Locust itself would only log that and run without it).
    """
    version = tuple(int(p) for p in metadata.version("locust").split(".")[:2] if p.isdigit())
    if version < (2, 42):
        raise RunError(f"--otel needs Locust 2.42 or newer (installed: {metadata.version('locust')})")
    try:
        sdk = find_spec("opentelemetry.sdk") is not None
    except ModuleNotFoundError:
        sdk = False
    if not sdk:
        raise RunError("--otel needs Locust's OpenTelemetry packages: pip install 'locust[otel]'")
    return {OTEL_ENV: "true"}


@dataclass(frozen=True)
class LocustCommand:
    """What the Locust processes of one stage of a plan are told."""

    plan: Plan
    stage: str
    """The stage's name."""
    host: str = ""
    """Locust's ``--host``: the national portal (the users' addresses come from the systems file)."""
    run_dir: Path | None = None
    """Where the writing process puts the ledger, the time series and the stage's files."""
    systems: Path | None = None
    """The run's ``systems.json`` (`rehearsal.run.systems`)."""
    target: Target | None = None
    """The target's accounts files and names of the variables holding the passwords and the admin token."""

    def _everyone(self) -> list[str]:
        """The locustfile and the options every process of the stage is given."""
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--plan", str(self.plan.source),
                "--stage", self.stage, "--time-scale", str(self.plan.time_scale), "--exit-code-on-error", "0",
                "--loglevel", "WARNING"]

    def _writer(self, stage_dir: Path, web_ui_port: int | None) -> list[str]:
        """The single process's or the master's: it reaches the portal, writes, and runs the stage."""
        # With a web UI, Locust starts the stage by itself (--autostart) and quits when the shape ends it.
        mode = (["--autostart", "--autoquit", "3", "--web-host", "127.0.0.1", "--web-port", str(web_ui_port)]
                if web_ui_port else ["--headless"])
        cmd = [*self._everyone(), *mode, "--host", self.host]
        if self.run_dir is not None:
            cmd += ["--run-dir", str(self.run_dir)]
        if self.systems is not None:
            cmd += ["--systems", str(self.systems)]
        if self.target is not None and self.target.confirmed:  # the locustfile checks the hosts again
            cmd += ["--confirm-target", ",".join(self.target.confirmed)]
        # Secrets travel by the *names* of environment variables, never as values on a command line.
        if self.target is not None and self.target.officer_password_env:
            cmd += ["--officer-password-env", self.target.officer_password_env]
        if self.target is not None and self.target.admin_token_env:
            cmd += ["--admin-token-env", self.target.admin_token_env]
        if self.target is not None and self.target.city_password_env:
            cmd += ["--city-password-env", self.target.city_password_env]
        for kind, path in self.target.accounts if self.target is not None else ():
            cmd += [f"--{kind}-file", str(path)]
        return cmd + ["--csv", str(stage_dir / "locust"), "--csv-full-history", "--only-summary",
                      "--logfile", str(stage_dir / "locust.log")]

    def single(self, stage_dir: Path, *, web_ui_port: int | None = None) -> list[str]:
        """One local process that runs the users and writes everything."""
        return self._writer(stage_dir, web_ui_port)

    def master(self, stage_dir: Path, *, bind: tuple[str, int], workers: int, max_wait_s: float,
               web_ui_port: int | None = None) -> list[str]:
        """The master: waits for `workers` workers on `bind` (up to `max_wait_s`), writes, runs no users.

        A worker that goes missing has its users handed to the others
        (``--enable-rebalancing``).
        """
        host, port = bind
        return [*self._writer(stage_dir, web_ui_port), "--master", "--expect-workers", str(workers),
                "--master-bind-host", host, "--master-bind-port", str(port), "--enable-rebalancing",
                "--expect-workers-max-wait", str(int(max_wait_s))]

    def worker(self, master: tuple[str, int], *, logfile: Path | None = None) -> list[str]:
        """A worker joining the master at `master` (host, port), here or on another machine."""
        host, port = master
        cmd = [*self._everyone(), "--worker", "--master-host", host, "--master-port", str(port)]
        return cmd + (["--logfile", str(logfile)] if logfile else [])

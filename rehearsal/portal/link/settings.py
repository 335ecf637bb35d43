"""What the link agent is told: where the national portal is, its account, and its rhythm (one frozen object).

Durations are *simulated* seconds, divided by the time scale like every
other duration of a rehearsal (DESIGN.md, "Time"): by default the agent
pulls the national feed every 30 s, looks at the outbox every second (a step
is pushed about as soon as it is written), and after a failed call waits 5 s,
doubling up to 5 min. No wait is shorter than `min_wait_s` wall seconds, so a
large time scale cannot turn the agent into a busy loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LinkSettings:
    """How a provincial system's link agent reaches the national portal's integration API."""

    national_url: str
    """The national portal's base URL (its integration API is under ``/api/dvcqg/``)."""
    username: str
    """The provincial system's integration account (``hcmc``)."""
    ma_don_vi: str
    """The unit code the account signs in for (header ``X-Ma-Don-Vi``, field ``madonvi``)."""
    password: str = field(default="rehearsal", repr=False)
    """The account's password (from the environment, never an argument)."""
    time_scale: float = 1.0
    """Simulated seconds per wall second."""
    pull_every_s: float = 30.0
    """Simulated seconds between two pulls of the national feed (``LayThayDoiHoSo``)."""
    push_poll_s: float = 1.0
    """Simulated seconds between two looks at the outbox when it was empty."""
    backoff_s: float = 5.0
    """Simulated seconds to wait after a failed call; doubled after each failure in a row."""
    backoff_max_s: float = 300.0
    """The longest wait after failures (simulated seconds)."""
    batch: int = 10
    """Most dossiers or steps in one call (real provincial systems push steps 10 at a time)."""
    workers: int = 4
    """Pushers working at once, each on its own share of the dossiers (one dossier's rows stay in order)."""
    feed_page: int = 500
    """Most feed items asked for in one pull."""
    timeout_s: float = 10.0
    """Wall seconds one call to the national portal may take before it counts as failed."""
    min_wait_s: float = 0.05
    """The shortest wall-clock wait between two looks, whatever the time scale."""

    def wall(self, simulated_s: float) -> float:
        """Simulated seconds as wall seconds at this time scale, never below `min_wait_s`."""
        return max(self.min_wait_s, simulated_s / self.time_scale)

    def as_args(self, password_env: str) -> list[str]:
        """These settings as ``python -m rehearsal.portal.link`` arguments (the password by its variable's name)."""
        return ["--national-url", self.national_url, "--username", self.username, "--ma-don-vi", self.ma_don_vi,
                "--password-env", password_env, "--time-scale", repr(self.time_scale),
                "--pull-every", repr(self.pull_every_s), "--push-poll", repr(self.push_poll_s),
                "--backoff", repr(self.backoff_s), "--backoff-max", repr(self.backoff_max_s),
                "--workers", str(self.workers)]

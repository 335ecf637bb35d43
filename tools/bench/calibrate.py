"""Locust users of the capacity benchmark, and the calibration of the machine it runs on.

Run by tools/bench/capacity.py as ``locust -f tools/bench/calibrate.py``:

- `BareUser`: a bare ``FastHttpUser`` asking ``GET /api/health`` with no
  wait: its requests per CPU-second of the Locust process is the machine's
  calibration (how fast this machine makes requests), measured in the same
  run as the figures it is printed beside.
- `SessionCitizen`: one signed-in citizen at real-time think times: VNeID
  sign-in (OTP, then verify), then every 40–55 s (``CAPACITY_THINK``) a look
  at their own dossiers (``GET /api/dossiers``, a database read with the
  session checked): every gap under the portal's 60 s window, so each user is
  one active session all the time. Each user takes the next of the portal's
  listener URLs (``CAPACITY_URLS``, comma-separated, as ``GET /api/health``
  lists them), so no listener holds more connections than one source
  address has ephemeral ports for.
- `Steps`: the load shape: ``CAPACITY_STEPS`` users, each asked for at
  ``CAPACITY_RATE`` users/s and held ``CAPACITY_HOLD`` seconds from the
  moment Locust runs them.

Our connection pool fix (``locustfiles/connections.py``) is installed: without
it geventhttpclient's idle check cannot take descriptors >= 1024.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent patches the standard library)

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, between, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from locustfiles import connections  # noqa: E402

connections.install()

_URLS = [u for u in os.environ.get("CAPACITY_URLS", "").split(",") if u]
_NEXT = itertools.count(int(os.environ.get("CAPACITY_WORKER_INDEX", "0")))
_THINK = tuple(float(x) for x in os.environ.get("CAPACITY_THINK", "40,55").split(","))


class BareUser(FastHttpUser):
    """The calibration: as many requests as one process can make, nothing else."""

    @task
    def health(self) -> None:
        self.client.get("/api/health")


class SessionCitizen(FastHttpUser):
    """One signed-in citizen looking at their dossiers every 40-55 s (CAPACITY_THINK)."""

    wait_time = between(*_THINK)
    connection_timeout = 60.0
    network_timeout = 60.0

    def __init__(self, environment: Any) -> None:
        if _URLS:  # spread over the portal's listeners: each user keeps one connection to one of them
            self.host = _URLS[next(_NEXT) % len(_URLS)]
        super().__init__(environment)
        self.token = ""

    def on_start(self) -> None:
        number = f"0{random.randrange(10**10, 10**11)}"
        with self.client.post("/api/auth/vneid/otp", json={"id_number": number}, catch_response=True) as r:
            otp = r.json() if r.status_code == 200 else None
        if otp is None:
            return
        r = self.client.post("/api/auth/vneid/verify", json={"otp_request_id": otp["otp_request_id"],
                                                             "otp": otp["otp"]})
        if r.status_code == 200:
            self.token = r.json()["token"]

    @task
    def my_dossiers(self) -> None:
        if not self.token:
            self.on_start()
            return
        self.client.get("/api/dossiers", headers={"Authorization": f"Bearer {self.token}"})


class Steps(LoadTestShape):  # only when CAPACITY_STEPS is set (see the end): the calibration runs without
    """Users stepped up: each step asked for at CAPACITY_RATE users/s, held CAPACITY_HOLD s once Locust runs them.

    The hold counts from the moment the workers report the step's users, not
    from when the ramp should have ended: on a saturated machine spawning is
    slower than asked (30,000 to 40,000 took 80 s at 250 users/s, not 40), and
    a hold counted from the plan would be measured while users still arrive.
    Each step's moment is appended to ``CAPACITY_PROGRESS`` (one JSON line:
    ``users``, ``asked``, ``reached``, epoch seconds) for tools/bench/capacity.py
    to measure the hold's end. A step not reached within
    `REACH_GRACE_S` + 4 × its planned ramp is held from then all the same.
    """

    use_common_options = True
    REACH_GRACE_S = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.steps = [int(s) for s in os.environ.get("CAPACITY_STEPS", "").split(",") if s]
        self.rate = float(os.environ.get("CAPACITY_RATE", "200"))
        self.hold = float(os.environ.get("CAPACITY_HOLD", "90"))
        self.progress = os.environ.get("CAPACITY_PROGRESS", "")
        self.index, self.asked, self.reached = 0, None, None

    def _note(self, users: int) -> None:
        if self.progress:
            with open(self.progress, "a", encoding="utf-8") as f:
                f.write(json.dumps({"users": users, "asked": self.asked, "reached": self.reached}) + "\n")

    def tick(self) -> tuple[int, float] | None:
        now = time.time()
        while self.index < len(self.steps):
            users = self.steps[self.index]
            if self.asked is None:
                self.asked = now
            if self.reached is None:
                previous = self.steps[self.index - 1] if self.index else 0
                late = now - self.asked > self.REACH_GRACE_S + 4 * (users - previous) / self.rate
                if (self.runner is not None and self.runner.user_count >= users) or late:
                    self.reached = now
                    self._note(users)
                return users, self.rate
            if now - self.reached < self.hold:
                return users, self.rate
            self.index, self.asked, self.reached = self.index + 1, None, None
        return None


if not os.environ.get("CAPACITY_STEPS"):
    del Steps  # Locust would use any shape it finds
else:
    # The workers are local processes on this machine: one cannot be cut off, only starved. Locust's master
    # marks a worker missing after 3 heartbeats (3 s) and, without rebalancing, lets the others take its users
    # while it keeps running its own: a 40,000-user step ran 53,083 users that way (the CPU, saturated by the
    # step's sign-ins, delayed one worker's heartbeats). A starved worker is late, not gone: 30 s here.
    import locust.runners

    locust.runners.HEARTBEAT_LIVENESS = int(os.environ.get("CAPACITY_HEARTBEAT_LIVENESS", "30"))
